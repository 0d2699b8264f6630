//! `/healthz` (alive), `/ready` (database reachable, schema current, not draining), `/metrics`,
//! `/backlog` (the flow queue's work, for autoscalers such as KEDA's metrics-api trigger).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::http::AppError;
use crate::openapi::ApiRouter;

pub fn routes() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(ready))
        .routes(routes!(metrics))
        .routes(routes!(backlog))
}

/// The shared flow queue's backlog, read now (one statement of index ranges):
/// `{"queuedDeliveries", "due", "scheduled", "running", "oldestMs", "waiting"}`, where
/// `waiting` (queued deliveries plus due executions) is what an autoscaler should drain.
/// Every replica answers the same numbers. 503 when the database cannot answer in 2 s.
#[utoipa::path(
    get, path = "/backlog", tag = "operations",
    responses(
        (status = 200, description = "The queue's backlog (every replica answers the same)", body = super::schema::BacklogAnswer),
        (status = 503, description = "The database did not answer within 2 s", body = crate::openapi::ErrorBody),
    )
)]
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
            AppError::Unavailable("the database is unavailable".into()).into_response()
        }
        Err(_) => {
            AppError::Unavailable("the database did not answer within 2s".into()).into_response()
        }
    }
}

#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is alive", body = super::schema::Health))
)]
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

#[utoipa::path(
    get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = super::schema::Readiness),
        (status = 503, description = "Not ready, and why", body = super::schema::Readiness),
    )
)]
async fn ready(State(state): State<AppState>) -> Response {
    match readiness(&state).await {
        Ok(schema) => Json(json!({"status": "ready", "schema": schema})).into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unready", "reason": reason})),
        )
            .into_response(),
    }
}

/// Whether this process is ready to serve: not draining, the database answers within 2 s, no
/// migration failed and none is missing. Sets the `addon_ready` gauge either way; `Ok` holds
/// the schema versions, `Err` the reason.
pub async fn readiness(state: &AppState) -> Result<serde_json::Value, String> {
    let answer = check(state).await;
    state.metrics.ready.set(i64::from(answer.is_ok()));
    answer
}

async fn check(state: &AppState) -> Result<serde_json::Value, String> {
    if state.draining.is_cancelled() || state.shutdown.is_cancelled() {
        return Err("shutting down".into());
    }
    match tokio::time::timeout(
        Duration::from_secs(2),
        state.def.migrations.status(&state.db),
    )
    .await
    {
        Err(_) => Err("database did not answer within 2s".into()),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database check failed");
            Err("database unreachable".into())
        }
        Ok(Ok(s)) if s.failed => Err("a migration failed; see the migrate job".into()),
        Ok(Ok(s)) if !s.missing.is_empty() => Err(format!(
            "database schema is behind this release: migrations {:?} not applied (run `clockify-addons migrate {}`)",
            s.missing, state.def.slug
        )),
        Ok(Ok(s)) => Ok(json!({"current": s.current, "required": s.required})),
    }
}

/// How often readiness is re-checked for the `addon_ready` gauge (besides every `/ready`).
pub const READINESS_SAMPLE: Duration = Duration::from_secs(15);

/// Keeps `addon_ready` current when nothing probes `/ready`.
pub async fn readiness_loop(state: AppState) {
    loop {
        let _ = readiness(&state).await;
        tokio::select! {
            _ = tokio::time::sleep(READINESS_SAMPLE) => {}
            _ = state.shutdown.cancelled() => {
                state.metrics.ready.set(0);
                return;
            }
        }
    }
}

#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus metrics (text exposition format 0.0.4)", content_type = "text/plain", body = String))
)]
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
