//! Custom webhooks (Universal Webhook): `POST /webhooks/custom/{source}` lets any system send
//! events into a workspace's flows, signed the way Standard Webhooks
//! (<https://www.standardwebhooks.com/>) sign them, so senders use its libraries unchanged:
//!
//! - `webhook-id`: a unique id per message (retries keep it); deliveries are de-duplicated on it.
//! - `webhook-timestamp`: Unix seconds; refused when further than
//!   `CUSTOM_WEBHOOK_TOLERANCE_SECONDS` from now (a captured request cannot be replayed later).
//! - `webhook-signature`: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, several
//!   space-separated signatures allowed (during a rotation).
//!
//! The key is the source's signing secret (`whsec_<base64>`), derived from the workspace's
//! secret and the source name: a request signed for one `{source}` does not verify under
//! another. The event type comes from the signed body (`type`, `event_type` or `eventType`);
//! an `X-Event-Type` header must agree with it. The workspace is named in `X-Workspace-Id`
//! (or `?workspaceId=`).
//!
//! The old scheme (`X-Signature-256: sha256=<hex HMAC of the body>` with the workspace secret)
//! is accepted only while an admin keeps the workspace's migration window open; it is
//! replayable, which is why it closes. An unknown workspace and a wrong signature get the same
//! answer. The delivery is stored before the answer.

use axum::Json;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;
use utoipa_axum::routes;

use super::lifecycle::sha256_hex;
use super::ui::UiUser;
use crate::app::AppState;
use crate::auth::{AuthError, header_str};
use crate::flows::model::{is_custom_event_name, is_source_name};
use crate::http::{ApiJson, AppError, AppResult, RawBody};
use crate::openapi::{ApiRouter, ErrorBody};
use crate::outbound::normalise_rule;
use crate::store::installations::{self, InstallStatus};
use crate::store::webhooks::{CLOCKIFY_SOURCE, IncomingCustom, IngestOutcome};
use crate::store::{allowlist, new_id, secrets};
use crate::time::{now_millis, rfc3339, rfc3339_opt};

/// The custom webhook route (5 MB limit, like every webhook route).
pub fn webhook_routes() -> ApiRouter {
    ApiRouter::new().routes(routes!(receive))
}

/// The UI routes that manage custom webhooks and the GENERIC_HTTP allowlist.
pub fn ui_routes() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(show_secret))
        .routes(routes!(rotate_secret))
        .routes(routes!(set_legacy))
        .routes(routes!(show_allowlist, save_allowlist))
        .routes(routes!(check_url))
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

/// The one answer for an unknown workspace, a deleted installation and a signature that does
/// not verify: a sender cannot tell them apart (the metric label still does).
fn refused(state: &AppState, reason: &'static str) -> AppError {
    state
        .metrics
        .auth_failures
        .with_label_values(&["custom_webhook", reason])
        .inc();
    state
        .metrics
        .custom_webhooks_received
        .with_label_values(&["rejected"])
        .inc();
    AppError::Unauthorized(AuthError::BadSignature)
}

/// The signing secret of one source: `whsec_` and the standard base64 of
/// HMAC-SHA256(workspace secret, "clockify-addons custom source v1\n{source}").
pub fn source_secret(workspace_secret: &str, source: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(workspace_secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(b"clockify-addons custom source v1\n");
    mac.update(source.as_bytes());
    format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// The key bytes of a `whsec_<base64>` secret.
fn secret_key(secret: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret))
        .ok()
}

/// `v1,<base64>`: the Standard Webhooks signature of one message.
pub fn sign_standard(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = secret_key(secret).unwrap_or_default();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes keys of any length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// Whether any `v1,` signature in the space-separated list verifies (constant time each).
pub fn verify_standard(secret: &str, id: &str, timestamp: i64, body: &[u8], list: &str) -> bool {
    let Some(key) = secret_key(secret) else {
        return false;
    };
    list.split_ascii_whitespace().any(|sig| {
        let Some(b64) = sig.strip_prefix("v1,") else {
            return false;
        };
        let Ok(expected) = base64::engine::general_purpose::STANDARD.decode(b64) else {
            return false;
        };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key) else {
            return false;
        };
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        mac.verify_slice(&expected).is_ok()
    })
}

/// The event type named in a body: `type` (Standard Webhooks), `event_type` or `eventType`.
fn body_event(body: &Value) -> Option<&str> {
    ["type", "event_type", "eventType"]
        .iter()
        .find_map(|k| body.get(*k).and_then(Value::as_str))
}

/// The event type. Signed deliveries take it from the body (the header is not signed, so it
/// may only repeat it); legacy deliveries may still name it in `X-Event-Type`.
fn event_type(headers: &HeaderMap, body: &Value, signed: bool) -> Result<String, AppError> {
    let header = header_str(headers, "x-event-type");
    let from_body = body_event(body);
    let event = if signed {
        if let (Some(h), b) = (header, from_body)
            && Some(h) != b
        {
            return Err(AppError::BadRequest(format!(
                "X-Event-Type {h:?} is not signed and differs from the signed body's type {:?}: name the event type in the body (`type`)",
                b.unwrap_or(DEFAULT_EVENT)
            )));
        }
        from_body.unwrap_or(DEFAULT_EVENT).to_owned()
    } else {
        header.or(from_body).unwrap_or(DEFAULT_EVENT).to_owned()
    };
    if !is_custom_event_name(&event) {
        return Err(AppError::BadRequest(format!(
            "event type {event:?}: expected 1-64 letters, digits, `.`, `_`, `:` or `-`"
        )));
    }
    Ok(event)
}

/// How a delivery is signed, read from the headers before the body.
enum Scheme {
    Standard {
        id: String,
        timestamp: i64,
        signatures: String,
    },
    Legacy {
        signature: String,
    },
}

fn scheme(state: &AppState, headers: &HeaderMap) -> Result<Scheme, AppError> {
    if let Some(signatures) = header_str(headers, "webhook-signature") {
        let id = header_str(headers, "webhook-id")
            .filter(|id| id.len() <= 256)
            .ok_or_else(|| {
                AppError::BadRequest("webhook-id: required with webhook-signature (1-256 characters, unique per message)".into())
            })?;
        let timestamp = header_str(headers, "webhook-timestamp")
            .and_then(|t| t.parse::<i64>().ok())
            .ok_or_else(|| {
                AppError::BadRequest(
                    "webhook-timestamp: required with webhook-signature, in Unix seconds".into(),
                )
            })?;
        let tolerance = state.config.custom_webhooks.tolerance.as_secs() as i64;
        if (crate::time::now_secs() - timestamp).abs() > tolerance {
            return Err(reject(state, AuthError::StaleTimestamp));
        }
        return Ok(Scheme::Standard {
            id: id.to_owned(),
            timestamp,
            signatures: signatures.to_owned(),
        });
    }
    match header_str(headers, "x-signature-256")
        .or_else(|| header_str(headers, "x-hub-signature-256"))
    {
        Some(sig) => Ok(Scheme::Legacy {
            signature: sig.to_owned(),
        }),
        None => Err(reject(state, AuthError::Missing)),
    }
}

#[utoipa::path(
    post, path = "/webhooks/custom/{source}", tag = "webhooks",
    params(
        ("source" = String, Path, pattern = "^[a-z0-9_-]{1,64}$", description = "The sending system (not `clockify`); its signing secret derives from the workspace's"),
        ("workspaceId" = Option<String>, Query, description = "The workspace, when the X-Workspace-Id header cannot be set"),
        ("X-Workspace-Id" = Option<String>, Header, description = "The workspace"),
        ("webhook-id" = Option<String>, Header, description = "Standard Webhooks: a unique id per message (retries keep it)"),
        ("webhook-timestamp" = Option<String>, Header, description = "Standard Webhooks: Unix seconds"),
        ("webhook-signature" = Option<String>, Header, description = "Standard Webhooks: `v1,<base64 HMAC-SHA256 of \"{id}.{timestamp}.{body}\">`"),
        ("X-Event-Type" = Option<String>, Header, description = "Must agree with the body's `type`, when given"),
    ),
    request_body(content = Object, description = "The event as the sender has it; its type is read from `type`, `event_type` or `eventType` (else CUSTOM_EVENT)"),
    responses(
        (status = 200, description = "Stored (or recognised by its webhook-id as stored before)", body = super::schema::CustomReceipt),
        (status = 401, description = "A missing, wrong or stale signature, or an unknown workspace (one answer for all)", body = ErrorBody),
        (status = 429, description = "The workspace's custom webhook rate; retry after `Retry-After` seconds", body = ErrorBody),
    )
)]
async fn receive(
    State(state): State<AppState>,
    Path(source): Path<String>,
    Query(q): Query<WorkspaceQuery>,
    req: Request,
) -> AppResult<Json<Value>> {
    if !is_source_name(&source) || source == CLOCKIFY_SOURCE {
        return Err(AppError::BadRequest(format!(
            "source {source:?}: expected 1-64 of a-z, 0-9, `-` and `_` (and not `clockify`)"
        )));
    }
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    let workspace_id = header_str(headers, "x-workspace-id")
        .map(str::to_owned)
        .or(q.workspace_id)
        .filter(|w| !w.is_empty() && w.len() <= 64)
        .ok_or_else(|| {
            AppError::BadRequest(
                "name the workspace in the X-Workspace-Id header (or ?workspaceId=)".into(),
            )
        })?;
    // Everything that can be judged from the headers is, before the body is read.
    let scheme = scheme(&state, headers)?;
    let stored = match installations::get(&state.db, &workspace_id).await? {
        Some(i) if i.status != InstallStatus::Deleted => {
            secrets::get(&state.db, &workspace_id).await?
        }
        _ => None,
    };
    let now = now_millis();
    let stored = match (stored, &scheme) {
        (None, _) => return Err(refused(&state, "unknown_workspace")),
        (Some(s), Scheme::Legacy { .. }) if !s.legacy_open(now) => {
            return Err(refused(&state, "legacy_closed"));
        }
        (Some(s), _) => s,
    };
    let mut secrets_plain = Vec::with_capacity(2);
    for enc in std::iter::once(&stored.secret_enc).chain(stored.previous_enc.as_ref()) {
        secrets_plain.push(
            state
                .cipher
                .decrypt(&workspace_id, enc)
                .map_err(|e| AppError::Internal(format!("custom webhook secret: {e}")))?,
        );
    }
    let RawBody(body) =
        RawBody::from_request(Request::from_parts(parts.clone(), body), &state).await?;
    let headers = &parts.headers;
    let verified = secrets_plain.iter().any(|secret| match &scheme {
        Scheme::Standard {
            id,
            timestamp,
            signatures,
        } => verify_standard(
            &source_secret(secret.expose_secret(), &source),
            id,
            *timestamp,
            &body,
            signatures,
        ),
        Scheme::Legacy { signature } => verify(secret.expose_secret(), &body, signature),
    });
    if !verified {
        return Err(refused(&state, "bad_signature"));
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
    let signed = matches!(scheme, Scheme::Standard { .. });
    let event = event_type(headers, &parsed, signed)?;
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| AppError::BadRequest("the body is not UTF-8".into()))?;
    let delivery_key = match &scheme {
        // The signed id is the message: a replay under any other header is the same delivery.
        Scheme::Standard { id, .. } => sha256_hex(format!("custom-sw\n{source}\n{id}")),
        Scheme::Legacy { .. } => {
            let delivery_id = ["x-delivery-id", "x-github-delivery", "idempotency-key"]
                .iter()
                .find_map(|h| header_str(headers, h))
                .filter(|d| d.len() <= 200);
            let identity = match delivery_id {
                Some(d) => format!("id:{d}"),
                None => format!("body:{}", sha256_hex(&body)),
            };
            sha256_hex(format!("custom\n{source}\n{event}\n{identity}"))
        }
    };
    if !signed {
        state
            .metrics
            .auth_failures
            .with_label_values(&["custom_webhook", "legacy_accepted"])
            .inc();
    }
    let incoming = IncomingCustom {
        id: new_id(),
        workspace_id: workspace_id.clone(),
        delivery_key,
        source: source.clone(),
        event_type: event.clone(),
        body: text,
        received_at: now,
    };
    // Not held while the delivery is stored: the bytes pin the connection's read buffer, and
    // the parsed tree is several times the text (see `routes::webhooks`).
    drop((body, parsed));
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
            tracing::info!(workspace_id = %workspace_id, source = %source, event_type = %event, id = %incoming.id, signed, "custom webhook stored");
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
        IngestOutcome::UnknownToken => Err(refused(&state, "unknown_workspace")),
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

/// What the UI shows (admins only): the URL to send to, the headers to set, the workspace
/// secret, the signing secret of a source when one is named, and the legacy window.
async fn describe(state: &AppState, workspace_id: &str, source: Option<&str>) -> AppResult<Value> {
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
    let mut out = json!({
        "url": format!("{base}/webhooks/custom/{{source}}"),
        "scheme": "Standard Webhooks (https://www.standardwebhooks.com/): sign with the source's signing secret",
        "headers": {
            "X-Workspace-Id": workspace_id,
            "webhook-id": "<unique id per message; retries keep it: de-duplicates>",
            "webhook-timestamp": "<Unix seconds>",
            "webhook-signature": "v1,<base64 HMAC-SHA256 of \"{webhook-id}.{webhook-timestamp}.{body}\" with the source's signing secret>",
        },
        "eventType": "the signed body's `type` (or `event_type`, `eventType`); else CUSTOM_EVENT",
        "toleranceSeconds": state.config.custom_webhooks.tolerance.as_secs(),
        "secret": secret.expose_secret(),
        "createdAt": rfc3339(stored.created_at),
        "rotatedAt": rfc3339_opt(stored.rotated_at),
        "previousSecretValidUntil": rfc3339_opt(stored.previous_valid_until),
        "legacySignaturesUntil": rfc3339_opt(stored.legacy_signatures_until.filter(|t| *t > now_millis())),
    });
    if let Some(source) = source {
        if !is_source_name(source) || source == CLOCKIFY_SOURCE {
            return Err(AppError::BadRequest(format!(
                "source {source:?}: expected 1-64 of a-z, 0-9, `-` and `_` (and not `clockify`)"
            )));
        }
        out["source"] = json!(source);
        out["signingSecret"] = json!(source_secret(secret.expose_secret(), source));
    }
    Ok(out)
}

#[derive(Debug, Deserialize)]
struct SourceQuery {
    #[serde(default)]
    source: Option<String>,
}

#[utoipa::path(
    get, path = "/ui/custom-webhooks", tag = "custom webhooks", security(("userToken" = []), ("userTokenQuery" = [])),
    params(("source" = Option<String>, Query, description = "A source whose signing secret to show")),
    responses((status = 200, description = "Where and how to send, with the secrets", body = super::schema::CustomWebhooks), (status = 403, description = "Only workspace owners and admins", body = ErrorBody))
)]
async fn show_secret(
    State(state): State<AppState>,
    user: UiUser,
    Query(q): Query<SourceQuery>,
) -> AppResult<Json<Value>> {
    admins_only(&user)?;
    Ok(Json(
        describe(
            &state,
            user.workspace_id(),
            q.source.as_deref().filter(|s| !s.is_empty()),
        )
        .await?,
    ))
}

#[utoipa::path(
    post, path = "/ui/custom-webhooks/rotate", tag = "custom webhooks", security(("userToken" = []), ("userTokenQuery" = [])),
    responses((status = 200, description = "A new secret; the previous one stays valid for the grace period", body = super::schema::CustomWebhooks), (status = 403, description = "Only workspace owners and admins", body = ErrorBody))
)]
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
    Ok(Json(describe(&state, ws, None).await?))
}

/// The longest migration window for body-only signatures.
pub const LEGACY_WINDOW_MAX_DAYS: u32 = 30;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct LegacyBody {
    /// Days from now the old scheme stays accepted; 0 closes the window.
    days: u32,
}

#[utoipa::path(
    put, path = "/ui/custom-webhooks/legacy", tag = "custom webhooks", security(("userToken" = []), ("userTokenQuery" = [])), request_body = LegacyBody,
    responses(
        (status = 200, description = "The migration window for body-only signatures, set", body = super::schema::CustomWebhooks), (status = 403, description = "Only workspace owners and admins", body = ErrorBody),
        (status = 422, description = "More than 30 days", body = ErrorBody),
    )
)]
async fn set_legacy(
    State(state): State<AppState>,
    user: UiUser,
    ApiJson(body): ApiJson<LegacyBody>,
) -> AppResult<Json<Value>> {
    admins_only(&user)?;
    if body.days > LEGACY_WINDOW_MAX_DAYS {
        return Err(AppError::Validation(vec![format!(
            "days: at most {LEGACY_WINDOW_MAX_DAYS} (the old scheme is replayable: move senders to webhook-signature)"
        )]));
    }
    let ws = user.workspace_id();
    ensure_secret(&state, ws).await?;
    let until =
        (body.days > 0).then(|| now_millis() + i64::from(body.days) * crate::time::DAY_MILLIS);
    secrets::set_legacy_window(&state.db, ws, until).await?;
    tracing::info!(workspace_id = %ws, days = body.days, "legacy custom webhook signatures window set");
    Ok(Json(describe(&state, ws, None).await?))
}

#[utoipa::path(
    get, path = "/ui/http-allowlist", tag = "custom webhooks", security(("userToken" = []), ("userTokenQuery" = [])),
    responses((status = 200, description = "The hosts GENERIC_HTTP actions may call", body = super::schema::Allowlist))
)]
async fn show_allowlist(State(state): State<AppState>, user: UiUser) -> AppResult<Json<Value>> {
    Ok(Json(
        json!({"rules": allowlist::list(&state.db, user.workspace_id()).await?}),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AllowlistBody {
    rules: Vec<String>,
}

#[utoipa::path(
    put, path = "/ui/http-allowlist", tag = "custom webhooks", security(("userToken" = []), ("userTokenQuery" = [])), request_body = AllowlistBody,
    responses(
        (status = 200, description = "Saved, normalised and sorted", body = super::schema::Allowlist), (status = 403, description = "Only workspace owners and admins", body = ErrorBody),
        (status = 422, description = "Every rule that is not a host", body = ErrorBody),
    )
)]
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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CheckBody {
    url: String,
}

/// Whether a GENERIC_HTTP action's URL (a template) may be called from this workspace, as the
/// flow builder checks it while it is typed: the URL's form first, then its host against the
/// workspace's list. Placeholders may only follow the host, so the host is known here.
#[utoipa::path(
    post, path = "/ui/http-allowlist/check", tag = "custom webhooks", security(("userToken" = []), ("userTokenQuery" = [])), request_body = CheckBody,
    responses((status = 200, description = "Whether the URL (a template) may be called, and why not", body = super::schema::UrlCheck))
)]
async fn check_url(
    State(state): State<AppState>,
    user: UiUser,
    ApiJson(body): ApiJson<CheckBody>,
) -> AppResult<Json<Value>> {
    if let Err(why) = crate::flows::model::check_url_template(&body.url) {
        return Ok(Json(json!({"allowed": false, "reason": why})));
    }
    // The placeholders after the host do not change it.
    let concrete = body.url.replace("{{", "x").replace("}}", "x");
    let Ok(url) = url::Url::parse(&concrete) else {
        return Ok(Json(json!({"allowed": false, "reason": "not a valid URL"})));
    };
    let host = url.host_str().unwrap_or_default().to_owned();
    let list = crate::worker::workspace_allowlist(&state, user.workspace_id()).await?;
    Ok(Json(if list.allows(&url) {
        json!({"allowed": true, "host": host})
    } else {
        json!({"allowed": false, "host": host, "reason": format!("{host} is not on this workspace's list of hosts flows may call (Custom webhooks → Hosts flows may call)")})
    }))
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
        assert_eq!(event_type(&h, &json!({}), false).unwrap(), DEFAULT_EVENT);
        assert_eq!(
            event_type(&h, &json!({"event_type": "invoice.paid"}), true).unwrap(),
            "invoice.paid"
        );
        h.insert("x-event-type", "push".parse().unwrap());
        // Legacy: the header wins. Signed: the header may only repeat the body.
        assert_eq!(
            event_type(&h, &json!({"eventType": "x"}), false).unwrap(),
            "push"
        );
        assert!(event_type(&h, &json!({"type": "x"}), true).is_err());
        assert_eq!(
            event_type(&h, &json!({"type": "push"}), true).unwrap(),
            "push"
        );
        h.insert("x-event-type", "no spaces".parse().unwrap());
        assert!(event_type(&h, &json!({}), false).is_err());
    }

    /// The test vector of the Standard Webhooks specification: senders using its libraries
    /// interoperate.
    #[test]
    fn standard_webhooks_test_vector() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let sig = sign_standard(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn standard_signatures_bind_id_timestamp_body_and_source() {
        let ws = "whsec_workspace";
        let ci = source_secret(ws, "ci");
        assert!(ci.starts_with(SECRET_PREFIX));
        let sig = sign_standard(&ci, "msg_1", 1_700_000_000, b"{}");
        assert!(verify_standard(&ci, "msg_1", 1_700_000_000, b"{}", &sig));
        assert!(verify_standard(
            &ci,
            "msg_1",
            1_700_000_000,
            b"{}",
            &format!("v1,AAAA {sig}")
        ));
        assert!(!verify_standard(&ci, "msg_2", 1_700_000_000, b"{}", &sig));
        assert!(!verify_standard(&ci, "msg_1", 1_700_000_001, b"{}", &sig));
        assert!(!verify_standard(&ci, "msg_1", 1_700_000_000, b"{ }", &sig));
        let other = source_secret(ws, "billing");
        assert!(!verify_standard(
            &other,
            "msg_1",
            1_700_000_000,
            b"{}",
            &sig
        ));
        assert!(!verify_standard(
            &ci,
            "msg_1",
            1_700_000_000,
            b"{}",
            "v2,abc"
        ));
    }
}
