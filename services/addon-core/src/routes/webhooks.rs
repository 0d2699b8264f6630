//! `POST /webhooks/clockify`: verified, stored, de-duplicated by delivery, then handed to the
//! flow worker. The answer comes only after the delivery is stored.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::lifecycle::sha256_hex;
use crate::addon::WEBHOOK_PATH;
use crate::app::AppState;
use crate::auth::{AuthError, HEADER_EVENT_TYPE, HEADER_SIGNATURE, TokenKind, header_str};
use crate::flows::model::is_event_name;
use crate::http::extract::parse_json;
use crate::http::{AppError, AppResult, RawBody};
use crate::metrics::event_label;
use crate::store::new_id;
use crate::store::webhooks::{self, IncomingWebhook, IngestOutcome};
use crate::time::now_millis;

pub fn routes() -> Router<AppState> {
    Router::new().route(WEBHOOK_PATH, post(clockify_webhook))
}

/// The delivery key: one per (token, event type, body), so a Clockify retry is recognised and an
/// update to an entity after its creation is not.
pub fn delivery_key(token_hash: &str, event_type: &str, body: &[u8]) -> String {
    sha256_hex(format!("{token_hash}\n{event_type}\n{}", sha256_hex(body)))
}

async fn clockify_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> AppResult<Json<Value>> {
    let reject = |e: AuthError| {
        state
            .metrics
            .auth_failures
            .with_label_values(&["webhook", e.reason()])
            .inc();
        AppError::Unauthorized(e)
    };
    let event_type = header_str(&headers, HEADER_EVENT_TYPE)
        .ok_or_else(|| AppError::BadRequest("missing Clockify-Webhook-Event-Type header".into()))?
        .to_owned();
    if !is_event_name(&event_type) {
        return Err(AppError::BadRequest(
            "Clockify-Webhook-Event-Type: expected an event name such as NEW_TIME_ENTRY".into(),
        ));
    }
    let token = header_str(&headers, HEADER_SIGNATURE)
        .ok_or(AuthError::Missing)
        .map_err(reject)?;
    let claims = state
        .verifier
        .verify(token, TokenKind::Webhook)
        .map_err(reject)?;

    let json: Value = parse_json(&body)?;
    let Some(obj) = json.as_object() else {
        return Err(AppError::BadRequest(
            "expected the webhook body to be a JSON object".into(),
        ));
    };
    if let Some(ws) = obj.get("workspaceId").and_then(Value::as_str)
        && ws != claims.workspace_id
    {
        return Err(reject(AuthError::WorkspaceMismatch));
    }
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| AppError::BadRequest("the body is not UTF-8".into()))?;
    let token_hash = sha256_hex(token);
    let incoming = IncomingWebhook {
        id: new_id(),
        workspace_id: claims.workspace_id.clone(),
        delivery_key: delivery_key(&token_hash, &event_type, &body),
        event_type,
        entity_id: obj.get("id").and_then(Value::as_str).map(str::to_owned),
        body: text,
        received_at: now_millis(),
    };
    let label = event_label(&incoming.event_type);
    match webhooks::ingest(&state.db, &incoming, &token_hash).await? {
        IngestOutcome::Accepted { pending } => {
            state
                .metrics
                .webhooks_received
                .with_label_values(&[label, "accepted"])
                .inc();
            if pending {
                state.flow_work.notify_one();
            }
            tracing::debug!(workspace_id = %incoming.workspace_id, event_type = %incoming.event_type, id = %incoming.id, "webhook stored");
            Ok(Json(json!({"status": "accepted", "id": incoming.id})))
        }
        IngestOutcome::Duplicate { id } => {
            state
                .metrics
                .webhooks_received
                .with_label_values(&[label, "duplicate"])
                .inc();
            tracing::info!(workspace_id = %incoming.workspace_id, event_type = %incoming.event_type, id = %id, "duplicate delivery ignored");
            Ok(Json(json!({"status": "duplicate", "id": id})))
        }
        IngestOutcome::UnknownToken => {
            state
                .metrics
                .webhooks_received
                .with_label_values(&[label, "rejected"])
                .inc();
            Err(reject(AuthError::UnknownWebhookToken))
        }
    }
}
