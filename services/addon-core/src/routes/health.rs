//! `/healthz` (alive), `/ready` (database reachable, schema current, not draining), `/metrics`,
//! `/backlog` (the flow queue's work, for autoscalers such as KEDA's metrics-api trigger).

use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::app::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/backlog", get(backlog))
}

/// The shared flow queue's backlog, read now (one statement of index ranges):
/// `{"queuedDeliveries", "due", "scheduled", "running", "oldestMs", "waiting"}`, where
/// `waiting` (queued deliveries plus due executions) is what an autoscaler should drain.
/// Every replica answers the same numbers. 503 when the database cannot answer in 2 s.
async fn backlog(State(state): State<AppState>) -> Response {
    match tokio::time::timeout(
        Duration::from_secs(2),
        crate::worker::sample_backlog(&state),
    )
    .await
    {
        Ok(Ok(b)) => {
            let mut body = serde_json::to_value(b).unwrap_or_default();
            body["waiting"] = json!(b.waiting());
            Json(body).into_response()
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "backlog: database check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "2")],
                Json(json!({"error": "database unavailable"})),
            )
                .into_response()
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "2")],
            Json(json!({"error": "the database did not answer within 2s"})),
        )
            .into_response(),
    }
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn ready(State(state): State<AppState>) -> Response {
    let unready = |reason: String| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unready", "reason": reason})),
        )
            .into_response()
    };
    if state.draining.is_cancelled() || state.shutdown.is_cancelled() {
        return unready("shutting down".into());
    }
    match tokio::time::timeout(
        Duration::from_secs(2),
        state.def.migrations.status(&state.db),
    )
    .await
    {
        Err(_) => unready("database did not answer within 2s".into()),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database check failed");
            unready("database unreachable".into())
        }
        Ok(Ok(s)) if s.failed => unready("a migration failed; see the migrate job".into()),
        Ok(Ok(s)) if !s.missing.is_empty() => unready(format!(
            "database schema is behind this release: migrations {:?} not applied (run `clockify-addons migrate {}`)",
            s.missing, state.def.slug
        )),
        Ok(Ok(s)) => Json(
            json!({"status": "ready", "schema": {"current": s.current, "required": s.required}}),
        )
        .into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
