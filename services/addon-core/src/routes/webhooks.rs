//! `POST /webhooks/clockify`: verified, stored, de-duplicated by delivery, then handed to the
//! flow worker. The answer comes only after the delivery is stored.

use axum::Json;
use axum::extract::{FromRequest, Request, State};
use axum::http::HeaderMap;
use axum::routing::{MethodRouter, post};
use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{Value, json};

use super::lifecycle::sha256_hex;
use crate::addon::WEBHOOK_PATH;
use crate::app::AppState;
use crate::auth::{AuthError, HEADER_EVENT_TYPE, HEADER_SIGNATURE, header_str};
use crate::flows::model::is_event_name;
use crate::http::{AppError, AppResult, RawBody};
use crate::ingest::IngestError;
use crate::metrics::event_label;
use crate::openapi::ApiRouter;
use crate::store::new_id;
use crate::store::webhooks::{IncomingWebhook, IngestOutcome};
use crate::time::now_millis;

pub fn routes() -> ApiRouter {
    ApiRouter::new().routes(crate::openapi::documented::<__path_clockify_webhook_doc>(
        WEBHOOK_PATH,
        receiver(None),
        |_| {},
    ))
}

/// A delivery from Clockify: verified from the headers before its body is read (the token's
/// signature, its webhook, the event type it was registered for), stored, de-duplicated by
/// delivery, then handed to the flows. The answer comes only after the delivery is stored.
/// Deliveries while the add-on is inactive are stored and run no flow.
#[utoipa::path(
    post, path = "/webhooks/clockify", tag = "webhooks", operation_id = "clockify_webhook",
    security(("webhookToken" = [])),
    params(("Clockify-Webhook-Event-Type" = String, Header, description = "The event, e.g. NEW_TIME_ENTRY")),
    request_body(content = Object, description = "The event's entity, as Clockify sends it (up to 5 MB)"),
    responses(
        (status = 200, description = "Stored (or recognised as stored before)", body = super::schema::Receipt),
        (status = 400, description = "No or unknown event type, an event this route does not take, a body that is not JSON or names another workspace", body = crate::openapi::ErrorBody),
        (status = 413, description = "Larger than 5 MB", body = crate::openapi::ErrorBody),
    )
)]
#[allow(dead_code)] // describes the receivers `receiver` builds
pub fn clockify_webhook_doc() {}

/// A webhook route. With `events`, the route receives only those event types (the reference
/// add-on's per-event routes): any other `Clockify-Webhook-Event-Type` is refused with 400 and
/// nothing is stored.
pub fn receiver(events: Option<&'static [&'static str]>) -> MethodRouter<AppState> {
    post(
        move |State(state): State<AppState>, req: Request| async move {
            // Authentication first, from the headers alone: a caller without a valid token is
            // refused before a byte of its body is read or buffered.
            let (parts, body) = req.into_parts();
            let begun = std::time::Instant::now();
            let caller = authenticate(&state, &parts.headers, events);
            stage(&state, "verify", begun);
            let caller = caller?;
            let RawBody(body) =
                RawBody::from_request(Request::from_parts(parts, body), &state).await?;
            clockify_webhook(state, caller, body).await
        },
    )
}

/// The delivery key: one per (token, event type, body), so a Clockify retry is recognised and an
/// update to an entity after its creation is not.
pub fn delivery_key(token_hash: &str, event_type: &str, body: &[u8]) -> String {
    sha256_hex(format!("{token_hash}\n{event_type}\n{}", sha256_hex(body)))
}

/// The two fields ingestion reads, borrowed from the body: parsing the whole document into a
/// `Value` would allocate every node. Unknown fields are skipped but still validated.
#[derive(Debug, Deserialize)]
struct Peek<'a> {
    #[serde(rename = "workspaceId", default, borrow)]
    workspace_id: Option<Scalar<'a>>,
    #[serde(default, borrow)]
    id: Option<Scalar<'a>>,
}

/// A string, or any other JSON value (kept only as "not a string").
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Scalar<'a> {
    Str(#[serde(borrow)] Cow<'a, str>),
    Other(serde::de::IgnoredAny),
}

impl Scalar<'_> {
    fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            Self::Other(_) => None,
        }
    }
}

impl<'a> Peek<'a> {
    fn parse(body: &'a [u8]) -> Result<Self, AppError> {
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(AppError::BadRequest(
                if body.iter().all(u8::is_ascii_whitespace) {
                    "the request body is empty; expected a JSON object".into()
                } else {
                    "expected the webhook body to be a JSON object".into()
                },
            ));
        }
        serde_json::from_slice(body)
            .map_err(|e| AppError::BadRequest(format!("invalid JSON body: {e}")))
    }
}

/// A webhook caller whose token and event type were checked from the headers.
#[derive(Debug)]
struct WebhookCaller {
    claims: std::sync::Arc<crate::auth::ClockifyClaims>,
    token_hash: String,
    event_type: String,
}

fn reject(state: &AppState, e: AuthError) -> AppError {
    state
        .metrics
        .auth_failures
        .with_label_values(&["webhook", e.reason()])
        .inc();
    AppError::Unauthorized(e)
}

/// Adds the time since `begun` to a pipeline stage.
fn stage(state: &AppState, name: &str, begun: std::time::Instant) {
    state
        .metrics
        .stage_seconds
        .with_label_values(&[name])
        .inc_by(begun.elapsed().as_secs_f64());
}

fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    events: Option<&'static [&'static str]>,
) -> Result<WebhookCaller, AppError> {
    let token = header_str(headers, HEADER_SIGNATURE)
        .ok_or(AuthError::Missing)
        .map_err(|e| reject(state, e))?;
    let claims = state
        .verifier
        .verify_webhook(token)
        .map_err(|e| reject(state, e))?;
    let event_type = header_str(headers, HEADER_EVENT_TYPE)
        .ok_or_else(|| AppError::BadRequest("missing Clockify-Webhook-Event-Type header".into()))?
        .to_owned();
    if !is_event_name(&event_type) {
        return Err(AppError::BadRequest(
            "Clockify-Webhook-Event-Type: expected an event name such as NEW_TIME_ENTRY".into(),
        ));
    }
    if let Some(events) = events
        && !events.contains(&event_type.as_str())
    {
        return Err(AppError::BadRequest(format!(
            "Clockify-Webhook-Event-Type {event_type} does not belong on this route; it receives {}",
            events.join(", ")
        )));
    }
    Ok(WebhookCaller {
        claims,
        token_hash: sha256_hex(token),
        event_type,
    })
}

async fn clockify_webhook(
    state: AppState,
    caller: WebhookCaller,
    body: bytes::Bytes,
) -> AppResult<Json<Value>> {
    let reject = |e: AuthError| reject(&state, e);
    let WebhookCaller {
        claims,
        token_hash,
        event_type,
    } = caller;
    let begun = std::time::Instant::now();
    let peek = Peek::parse(&body);
    stage(&state, "verify", begun);
    let peek = peek?;
    if let Some(ws) = peek.workspace_id.as_ref().and_then(Scalar::as_str)
        && ws != claims.workspace_id
    {
        return Err(reject(AuthError::WorkspaceMismatch));
    }
    let entity_id = peek.id.as_ref().and_then(Scalar::as_str).map(str::to_owned);
    // `Peek::parse` validated the whole document, so the bytes are UTF-8 JSON.
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| AppError::BadRequest("the body is not UTF-8".into()))?;
    let incoming = IncomingWebhook {
        id: new_id(),
        workspace_id: claims.workspace_id.clone(),
        delivery_key: delivery_key(&token_hash, &event_type, &body),
        event_type,
        entity_id,
        body: text,
        received_at: now_millis(),
    };
    // The bytes are a slice of the connection's read buffer (8 KiB or more) and would keep it
    // alive while the delivery waits for its commit, beside the buffer the connection reads
    // into next: the stored copy is all that is needed from here on.
    drop(body);
    let (workspace_id, event_type, id) = (
        incoming.workspace_id.clone(),
        incoming.event_type.clone(),
        incoming.id.clone(),
    );
    let label = event_label(&event_type);
    let begun = std::time::Instant::now();
    let outcome = state.ingest.ingest(incoming, token_hash).await;
    stage(&state, "store", begun);
    let outcome = outcome.map_err(|e| match e {
        IngestError::Stopped => AppError::Unavailable("shutting down; retry".into()),
        IngestError::Unavailable(cause) => {
            tracing::warn!(error = %cause, "database unavailable");
            AppError::Unavailable("the database is unavailable; retry shortly".into())
        }
        e @ IngestError::Unstorable => AppError::BadRequest(e.to_string()),
        IngestError::Database(cause) => AppError::Internal(format!("storing a delivery: {cause}")),
    })?;
    match outcome {
        IngestOutcome::Accepted { pending } => {
            state
                .metrics
                .webhooks_received
                .with_label_values(&[label, "accepted"])
                .inc();
            if pending {
                state.flow_work.notify_one();
            }
            tracing::debug!(workspace_id = %workspace_id, event_type = %event_type, id = %id, "webhook stored");
            Ok(Json(json!({"status": "accepted", "id": id})))
        }
        IngestOutcome::Duplicate { id } => {
            state
                .metrics
                .webhooks_received
                .with_label_values(&[label, "duplicate"])
                .inc();
            tracing::info!(workspace_id = %workspace_id, event_type = %event_type, id = %id, "duplicate delivery ignored");
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
