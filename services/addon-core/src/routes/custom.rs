//! Custom webhooks (Universal Webhook): `POST /webhooks/custom/{source}` lets any system send
//! events into a workspace's flows. Never unauthenticated: the body must carry an HMAC-SHA256
//! signature made with the workspace's secret (created at install, shown to admins and
//! rotatable in the UI; the previous secret stays valid for a grace period after a rotation).
//!
//! Request: the workspace in `X-Workspace-Id` (or `?workspaceId=`), the signature in
//! `X-Signature-256: sha256=<hex>` (`X-Hub-Signature-256` is accepted too, so GitHub-style
//! senders work unchanged), the event type in `X-Event-Type` (else the body's `event_type` or
//! `eventType`, else `CUSTOM_EVENT`), and an optional delivery id in `X-Delivery-Id`
//! (`X-GitHub-Delivery`, `Idempotency-Key`) that de-duplicates retries; without one, identical
//! bodies of one source and event are one delivery. The delivery is stored before the answer.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

use super::lifecycle::sha256_hex;
use super::ui::UiUser;
use crate::app::AppState;
use crate::auth::{AuthError, header_str};
use crate::flows::model::{is_custom_event_name, is_source_name};
use crate::http::{ApiJson, AppError, AppResult, RawBody};
use crate::outbound::normalise_rule;
use crate::store::installations::{self, InstallStatus};
use crate::store::webhooks::{CLOCKIFY_SOURCE, IncomingCustom, IngestOutcome};
use crate::store::{allowlist, new_id, secrets};
use crate::time::{now_millis, rfc3339, rfc3339_opt};

/// The custom webhook route (5 MB limit, like every webhook route).
pub fn webhook_routes() -> Router<AppState> {
    Router::new().route("/webhooks/custom/{source}", post(receive))
}

/// The UI routes that manage custom webhooks and the GENERIC_HTTP allowlist.
pub fn ui_routes() -> Router<AppState> {
    Router::new()
        .route("/ui/custom-webhooks", get(show_secret))
        .route("/ui/custom-webhooks/rotate", post(rotate_secret))
        .route(
            "/ui/http-allowlist",
            get(show_allowlist).put(save_allowlist),
        )
}

const SECRET_PREFIX: &str = "whsec_";
/// Event type when the sender names none.
pub const DEFAULT_EVENT: &str = "CUSTOM_EVENT";

/// A new random secret: `whsec_` and 32 random bytes in URL-safe base64.
pub fn new_secret() -> SecretString {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    SecretString::from(format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// `sha256=<hex>` of the body under `secret` (what senders put in `X-Signature-256`).
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Constant-time check of a presented signature (`sha256=<hex>` or bare hex).
pub fn verify(secret: &str, body: &[u8], presented: &str) -> bool {
    let hex_part = presented.trim();
    let hex_part = hex_part.strip_prefix("sha256=").unwrap_or(hex_part);
    let Ok(expected) = hex::decode(hex_part) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// Creates the workspace's secret unless it has one (INSTALLED may be repeated).
pub async fn ensure_secret(state: &AppState, workspace_id: &str) -> AppResult<bool> {
    let enc = state
        .cipher
        .encrypt(workspace_id, &new_secret())
        .map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(secrets::create_if_missing(&state.db, workspace_id, &enc).await?)
}

#[derive(Debug, Deserialize)]
struct WorkspaceQuery {
    #[serde(rename = "workspaceId", default)]
    workspace_id: Option<String>,
}

fn reject(state: &AppState, e: AuthError) -> AppError {
    state
        .metrics
        .auth_failures
        .with_label_values(&["custom_webhook", e.reason()])
        .inc();
    state
        .metrics
        .custom_webhooks_received
        .with_label_values(&["rejected"])
        .inc();
    AppError::Unauthorized(e)
}

/// The event type: header, else the body's `event_type`/`eventType`, else `CUSTOM_EVENT`.
fn event_type(headers: &HeaderMap, body: &Value) -> Result<String, AppError> {
    let named = header_str(headers, "x-event-type")
        .map(str::to_owned)
        .or_else(|| {
            ["event_type", "eventType"]
                .iter()
                .find_map(|k| body.get(*k).and_then(Value::as_str).map(str::to_owned))
        });
    let event = named.unwrap_or_else(|| DEFAULT_EVENT.to_owned());
    if !is_custom_event_name(&event) {
        return Err(AppError::BadRequest(format!(
            "event type {event:?}: expected 1-64 letters, digits, `.`, `_`, `:` or `-` (X-Event-Type)"
        )));
    }
    Ok(event)
}

async fn receive(
    State(state): State<AppState>,
    Path(source): Path<String>,
    Query(q): Query<WorkspaceQuery>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> AppResult<Json<Value>> {
    if !is_source_name(&source) || source == CLOCKIFY_SOURCE {
        return Err(AppError::BadRequest(format!(
            "source {source:?}: expected 1-64 of a-z, 0-9, `-` and `_` (and not `clockify`)"
        )));
    }
    let workspace_id = header_str(&headers, "x-workspace-id")
        .map(str::to_owned)
        .or(q.workspace_id)
        .filter(|w| !w.is_empty() && w.len() <= 64)
        .ok_or_else(|| {
            AppError::BadRequest(
                "name the workspace in the X-Workspace-Id header (or ?workspaceId=)".into(),
            )
        })?;
    let presented = header_str(&headers, "x-signature-256")
        .or_else(|| header_str(&headers, "x-hub-signature-256"))
        .ok_or_else(|| reject(&state, AuthError::Missing))?;
    // Unknown workspace, deleted installation and wrong signature look alike to the sender.
    let stored = match installations::get(&state.db, &workspace_id).await? {
        Some(i) if i.status != InstallStatus::Deleted => {
            secrets::get(&state.db, &workspace_id).await?
        }
        _ => None,
    };
    let Some(stored) = stored else {
        return Err(reject(&state, AuthError::NotInstalled));
    };
    let mut candidates = vec![stored.secret_enc.as_str()];
    candidates.extend(stored.previous_enc.as_deref());
    let mut verified = false;
    for enc in candidates {
        let secret = state
            .cipher
            .decrypt(&workspace_id, enc)
            .map_err(|e| AppError::Internal(format!("custom webhook secret: {e}")))?;
        if verify(secret.expose_secret(), &body, presented) {
            verified = true;
            break;
        }
    }
    if !verified {
        return Err(reject(&state, AuthError::BadSignature));
    }
    if let Err(limited) = crate::app::admit(state.custom_webhook_limiter.as_ref(), &workspace_id) {
        state
            .metrics
            .custom_webhooks_received
            .with_label_values(&["rate_limited"])
            .inc();
        return Err(limited);
    }
    let parsed: Value = serde_json::from_slice(&body).map_err(|e| {
        AppError::BadRequest(if body.iter().all(u8::is_ascii_whitespace) {
            "the request body is empty; expected JSON".into()
        } else {
            format!("invalid JSON body: {e}")
        })
    })?;
    let event = event_type(&headers, &parsed)?;
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| AppError::BadRequest("the body is not UTF-8".into()))?;
    let delivery_id = ["x-delivery-id", "x-github-delivery", "idempotency-key"]
        .iter()
        .find_map(|h| header_str(&headers, h))
        .filter(|d| d.len() <= 200);
    let identity = match delivery_id {
        Some(d) => format!("id:{d}"),
        None => format!("body:{}", sha256_hex(&body)),
    };
    let incoming = IncomingCustom {
        id: new_id(),
        workspace_id: workspace_id.clone(),
        delivery_key: sha256_hex(format!("custom\n{source}\n{event}\n{identity}")),
        source: source.clone(),
        event_type: event.clone(),
        body: text,
        received_at: now_millis(),
    };
    match crate::store::webhooks::ingest_custom(&state.db, &incoming).await? {
        IngestOutcome::Accepted { pending } => {
            state
                .metrics
                .custom_webhooks_received
                .with_label_values(&["accepted"])
                .inc();
            if pending {
                state.flow_work.notify_one();
            }
            tracing::info!(workspace_id = %workspace_id, source = %source, event_type = %event, id = %incoming.id, "custom webhook stored");
            Ok(Json(json!({
                "status": "accepted", "id": incoming.id, "source": source, "eventType": event,
            })))
        }
        IngestOutcome::Duplicate { id } => {
            state
                .metrics
                .custom_webhooks_received
                .with_label_values(&["duplicate"])
                .inc();
            Ok(Json(json!({
                "status": "duplicate", "id": id, "source": source, "eventType": event,
            })))
        }
        IngestOutcome::UnknownToken => Err(reject(&state, AuthError::NotInstalled)),
    }
}

fn admins_only(user: &UiUser) -> AppResult<()> {
    if user.claims.is_admin() {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "only workspace owners and admins may see or change custom webhook secrets and the HTTP allowlist".into(),
        ))
    }
}

/// What the UI shows: the URL to send to, the headers to set and the secret (admins only).
async fn describe(state: &AppState, workspace_id: &str) -> AppResult<Value> {
    if secrets::get(&state.db, workspace_id).await?.is_none() {
        // Installed before custom webhooks existed: create the secret now.
        ensure_secret(state, workspace_id).await?;
    }
    let stored = secrets::get(&state.db, workspace_id)
        .await?
        .ok_or_else(|| AppError::Internal("custom webhook secret vanished".into()))?;
    let secret = state
        .cipher
        .decrypt(workspace_id, &stored.secret_enc)
        .map_err(|e| AppError::Internal(format!("custom webhook secret: {e}")))?;
    let base = state.config.base_url.as_str().trim_end_matches('/');
    Ok(json!({
        "url": format!("{base}/webhooks/custom/{{source}}"),
        "headers": {
            "X-Workspace-Id": workspace_id,
            "X-Signature-256": "sha256=<hex HMAC-SHA256 of the raw body with the secret>",
            "X-Event-Type": "<event type, optional>",
            "X-Delivery-Id": "<unique id per delivery, optional: de-duplicates retries>",
        },
        "secret": secret.expose_secret(),
        "createdAt": rfc3339(stored.created_at),
        "rotatedAt": rfc3339_opt(stored.rotated_at),
        "previousSecretValidUntil": rfc3339_opt(stored.previous_valid_until),
    }))
}

async fn show_secret(State(state): State<AppState>, user: UiUser) -> AppResult<Json<Value>> {
    admins_only(&user)?;
    Ok(Json(describe(&state, user.workspace_id()).await?))
}

async fn rotate_secret(State(state): State<AppState>, user: UiUser) -> AppResult<Json<Value>> {
    admins_only(&user)?;
    let ws = user.workspace_id();
    ensure_secret(&state, ws).await?;
    let enc = state
        .cipher
        .encrypt(ws, &new_secret())
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let until = now_millis() + state.config.custom_webhooks.secret_grace.as_millis() as i64;
    secrets::rotate(&state.db, ws, &enc, until).await?;
    tracing::info!(workspace_id = %ws, "custom webhook secret rotated");
    Ok(Json(describe(&state, ws).await?))
}

async fn show_allowlist(State(state): State<AppState>, user: UiUser) -> AppResult<Json<Value>> {
    Ok(Json(
        json!({"rules": allowlist::list(&state.db, user.workspace_id()).await?}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowlistBody {
    rules: Vec<String>,
}

async fn save_allowlist(
    State(state): State<AppState>,
    user: UiUser,
    ApiJson(body): ApiJson<AllowlistBody>,
) -> AppResult<Response> {
    admins_only(&user)?;
    let mut problems = Vec::new();
    let mut rules = Vec::new();
    if body.rules.len() > allowlist::MAX_RULES {
        problems.push(format!("rules: at most {}", allowlist::MAX_RULES));
    }
    for (i, raw) in body.rules.iter().enumerate() {
        match normalise_rule(raw) {
            Ok(r) if !rules.contains(&r) => rules.push(r),
            Ok(_) => {}
            Err(e) => problems.push(format!("rules[{i}]: {e}")),
        }
    }
    if !problems.is_empty() {
        return Err(AppError::Validation(problems));
    }
    rules.sort();
    allowlist::replace(&state.db, user.workspace_id(), &rules).await?;
    tracing::info!(workspace_id = %user.workspace_id(), rules = rules.len(), "HTTP allowlist saved");
    Ok((StatusCode::OK, Json(json!({"rules": rules}))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_refuse() {
        let body = br#"{"a":1}"#;
        let sig = sign("whsec_k", body);
        assert!(sig.starts_with("sha256="));
        assert!(verify("whsec_k", body, &sig));
        assert!(verify("whsec_k", body, sig.trim_start_matches("sha256=")));
        assert!(!verify("whsec_other", body, &sig));
        assert!(!verify("whsec_k", br#"{"a":2}"#, &sig));
        assert!(!verify("whsec_k", body, "sha256=zz"));
        assert!(!verify("whsec_k", body, ""));
    }

    #[test]
    fn secrets_are_random_and_prefixed() {
        let a = new_secret();
        let b = new_secret();
        assert!(a.expose_secret().starts_with(SECRET_PREFIX));
        assert_eq!(a.expose_secret().len(), SECRET_PREFIX.len() + 43);
        assert_ne!(a.expose_secret(), b.expose_secret());
    }

    #[test]
    fn event_types_come_from_header_then_body() {
        let mut h = HeaderMap::new();
        assert_eq!(event_type(&h, &json!({})).unwrap(), DEFAULT_EVENT);
        assert_eq!(
            event_type(&h, &json!({"event_type": "invoice.paid"})).unwrap(),
            "invoice.paid"
        );
        h.insert("x-event-type", "push".parse().unwrap());
        assert_eq!(event_type(&h, &json!({"eventType": "x"})).unwrap(), "push");
        h.insert("x-event-type", "no spaces".parse().unwrap());
        assert!(event_type(&h, &json!({})).is_err());
    }
}
