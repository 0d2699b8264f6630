//! Lifecycle hooks: INSTALLED, STATUS_CHANGED, SETTINGS_UPDATED, DELETED.
//!
//! Each call carries a Clockify-signed token (`X-Addon-Lifecycle-Token`, or `Clockify-Signature`
//! as in Clockify's examples) whose workspace must be the body's.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::{AuthError, ClockifyClaims, TokenKind, lifecycle_token};
use crate::http::extract::parse_json;
use crate::http::{AppError, AppResult, RawBody};
use crate::openapi::ApiRouter;
use crate::store::bootstrap;
use crate::store::installations::{
    self, InstallStatus, LifecycleStanding, NewInstallation, WebhookRegistration,
};

pub fn routes() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(installed))
        .routes(routes!(status_changed))
        .routes(routes!(settings_updated))
        .routes(routes!(deleted))
}

fn refuse(state: &AppState, e: AuthError) -> AppError {
    state
        .metrics
        .auth_failures
        .with_label_values(&["lifecycle", e.reason()])
        .inc();
    AppError::Unauthorized(e)
}

/// The caller of a lifecycle route, authenticated from the headers before the body is read.
///
/// The token must be a lifecycle token: signed by Clockify, not a user token (those carry the
/// viewer's role), not the workspace's installation token or one of its webhook tokens, not
/// revoked by a DELETED, and not issued before the workspace's last DELETED.
#[derive(Debug)]
pub struct LifecycleCaller {
    claims: ClockifyClaims,
    token_hash: String,
}

impl FromRequestParts<AppState> for LifecycleCaller {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = lifecycle_token(&parts.headers)
            .ok_or(AuthError::Missing)
            .map_err(|e| refuse(state, e))?;
        let claims = state
            .verifier
            .verify(token, TokenKind::Lifecycle)
            .map_err(|e| refuse(state, e))?;
        let token_hash = sha256_hex(token.trim());
        match installations::lifecycle_standing(&state.db, &claims.workspace_id, &token_hash)
            .await?
        {
            LifecycleStanding::Fresh => {}
            LifecycleStanding::Revoked => return Err(refuse(state, AuthError::Revoked)),
            LifecycleStanding::Credential => {
                return Err(refuse(state, AuthError::NotLifecycleToken));
            }
        }
        if let Some(i) = installations::get(&state.db, &claims.workspace_id).await?
            && i.revoked_at_issue(claims.iat)
        {
            return Err(refuse(state, AuthError::Revoked));
        }
        Ok(Self { claims, token_hash })
    }
}

/// The token must be for the body's workspace.
fn same_workspace(
    state: &AppState,
    claims: &ClockifyClaims,
    body_workspace: &str,
) -> Result<(), AppError> {
    if claims.workspace_id != body_workspace {
        return Err(refuse(state, AuthError::WorkspaceMismatch));
    }
    Ok(())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct InstalledWebhook {
    path: String,
    #[serde(default)]
    webhook_type: Option<String>,
    auth_token: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct Installed {
    addon_id: String,
    /// The installation token (Clockify sends `authToken`, never `addonToken`).
    auth_token: String,
    workspace_id: String,
    #[serde(default)]
    as_user: Option<String>,
    api_url: String,
    #[serde(default)]
    addon_user_id: Option<String>,
    #[serde(default)]
    webhooks: Vec<InstalledWebhook>,
}

pub fn sha256_hex(data: impl AsRef<[u8]>) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(data.as_ref()))
}

/// INSTALLED: stores the installation (its token encrypted), registers its webhooks' tokens, and starts the bootstrap when the settings ask for it. A repeat is harmless.
#[utoipa::path(
    post, path = "/lifecycle/installed", tag = "lifecycle", request_body = Installed,
    security(("lifecycleToken" = [])),
    responses(
        (status = 200, description = "Done", body = super::schema::LifecycleAnswer),
        (status = 404, description = "No installation for the workspace", body = crate::openapi::ErrorBody),
        (status = 422, description = "Every problem of the body", body = crate::openapi::ErrorBody),
    )
)]
async fn installed(
    State(state): State<AppState>,
    caller: LifecycleCaller,
    RawBody(body): RawBody,
) -> AppResult<Json<Value>> {
    let claims = &caller.claims;
    let p: Installed = parse_json(&body)?;
    same_workspace(&state, claims, &p.workspace_id)?;
    let mut problems = Vec::new();
    if state.client.check_api_url(&p.api_url).is_err() {
        problems.push(format!(
            "apiUrl: {:?} is not an allowed Clockify API host (CLOCKIFY_API_ALLOWED_HOSTS)",
            p.api_url
        ));
    }
    // The tokens inside the payload are Clockify's too: verify them rather than store anything.
    // A replayed INSTALLED carries tokens a DELETED revoked: it cannot revive them.
    let auth_token_hash = sha256_hex(p.auth_token.trim());
    match state
        .verifier
        .verify(&p.auth_token, TokenKind::Installation)
    {
        Ok(_) if installations::is_revoked(&state.db, &auth_token_hash).await? => {
            problems.push(format!("authToken: {}", AuthError::Revoked));
        }
        Ok(c) if c.workspace_id == p.workspace_id => {}
        Ok(_) => problems.push("authToken: issued for another workspace".into()),
        Err(e) => problems.push(format!("authToken: {e}")),
    }
    let mut webhooks = Vec::with_capacity(p.webhooks.len());
    for (i, w) in p.webhooks.iter().enumerate() {
        let token_hash = sha256_hex(w.auth_token.trim());
        match state.verifier.verify(&w.auth_token, TokenKind::Webhook) {
            Ok(_) if installations::is_revoked(&state.db, &token_hash).await? => {
                problems.push(format!("webhooks[{i}].authToken: {}", AuthError::Revoked));
            }
            Ok(c) if c.workspace_id == p.workspace_id => webhooks.push(WebhookRegistration {
                token_hash,
                path: w.path.clone(),
                webhook_type: w.webhook_type.clone(),
            }),
            Ok(_) => problems.push(format!(
                "webhooks[{i}].authToken: issued for another workspace"
            )),
            Err(e) => problems.push(format!("webhooks[{i}].authToken: {e}")),
        }
    }
    if !problems.is_empty() {
        return Err(AppError::Validation(problems));
    }
    let auth_token_enc = state
        .cipher
        .encrypt(&p.workspace_id, &SecretString::from(p.auth_token))
        .map_err(|e| AppError::Internal(e.to_string()))?;
    installations::save_installed(
        &state.db,
        &NewInstallation {
            workspace_id: p.workspace_id.clone(),
            addon_id: p.addon_id,
            api_url: p.api_url,
            as_user: p.as_user,
            addon_user_id: p.addon_user_id,
            auth_token_enc,
            auth_token_hash,
            webhooks,
        },
    )
    .await?;
    state
        .metrics
        .lifecycle_events
        .with_label_values(&["installed"])
        .inc();
    if state.def.features.custom_sources {
        // Kept across re-installs so senders configured earlier keep working.
        super::custom::ensure_secret(&state, &p.workspace_id).await?;
    }
    let installation = installations::get(&state.db, &p.workspace_id).await?;
    let bootstrap_on_install = installation
        .as_ref()
        .map(|i| i.flag(BOOTSTRAP_SETTING, true))
        .unwrap_or(true);
    let mut bootstrap_state = Value::Null;
    if bootstrap_on_install {
        let run = bootstrap::request(&state.db, &p.workspace_id).await?;
        state.bootstrap_work.notify_one();
        bootstrap_state = json!(run.state);
    }
    tracing::info!(workspace_id = %p.workspace_id, bootstrap = bootstrap_on_install, "installed");
    Ok(Json(
        json!({"status": "installed", "workspaceId": p.workspace_id, "bootstrap": bootstrap_state}),
    ))
}

/// The setting that turns bootstrap on install off.
pub const BOOTSTRAP_SETTING: &str = "bootstrap_on_install";

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct StatusChanged {
    workspace_id: String,
    status: String,
}

/// STATUS_CHANGED: ACTIVE or INACTIVE (an inactive add-on stores deliveries but runs no flow).
#[utoipa::path(
    post, path = "/lifecycle/status-changed", tag = "lifecycle", request_body = StatusChanged,
    security(("lifecycleToken" = [])),
    responses(
        (status = 200, description = "Done", body = super::schema::LifecycleAnswer),
        (status = 404, description = "No installation for the workspace", body = crate::openapi::ErrorBody),
        (status = 422, description = "Every problem of the body", body = crate::openapi::ErrorBody),
    )
)]
async fn status_changed(
    State(state): State<AppState>,
    caller: LifecycleCaller,
    RawBody(body): RawBody,
) -> AppResult<Json<Value>> {
    let claims = &caller.claims;
    let p: StatusChanged = parse_json(&body)?;
    same_workspace(&state, claims, &p.workspace_id)?;
    let status = match InstallStatus::parse(&p.status) {
        Some(s @ (InstallStatus::Active | InstallStatus::Inactive)) => s,
        _ => {
            return Err(AppError::BadRequest(format!(
                "status: expected ACTIVE or INACTIVE, got {:?}",
                p.status
            )));
        }
    };
    if !installations::set_status(&state.db, &p.workspace_id, status).await? {
        return Err(AppError::NotFound(format!(
            "no installation for workspace {}",
            p.workspace_id
        )));
    }
    state
        .metrics
        .lifecycle_events
        .with_label_values(&["status_changed"])
        .inc();
    tracing::info!(workspace_id = %p.workspace_id, status = status.as_str(), "status changed");
    Ok(Json(
        json!({"status": status.as_str(), "workspaceId": p.workspace_id}),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct SettingsUpdated {
    workspace_id: String,
    settings: Value,
}

/// Clockify sends settings as a list of `{id, name, value}`.
fn parse_settings(v: &Value) -> Result<Vec<Value>, AppError> {
    let list = v.as_array().ok_or_else(|| {
        AppError::BadRequest("settings: expected a list of {id, name, value} objects (Clockify sends a list, not a map)".into())
    })?;
    let mut problems = Vec::new();
    for (i, s) in list.iter().enumerate() {
        match s.get("id").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => {}
            _ => problems.push(format!("settings[{i}].id: required string")),
        }
        if s.get("value").is_none() {
            problems.push(format!("settings[{i}].value: required"));
        }
    }
    if !problems.is_empty() {
        return Err(AppError::Validation(problems));
    }
    Ok(list.clone())
}

/// SETTINGS_UPDATED: stores the add-on's settings (a list of `{id, name, value}`).
#[utoipa::path(
    post, path = "/lifecycle/settings-updated", tag = "lifecycle", request_body = SettingsUpdated,
    security(("lifecycleToken" = [])),
    responses(
        (status = 200, description = "Done", body = super::schema::LifecycleAnswer),
        (status = 404, description = "No installation for the workspace", body = crate::openapi::ErrorBody),
        (status = 422, description = "Every problem of the body", body = crate::openapi::ErrorBody),
    )
)]
async fn settings_updated(
    State(state): State<AppState>,
    caller: LifecycleCaller,
    RawBody(body): RawBody,
) -> AppResult<Json<Value>> {
    let claims = &caller.claims;
    let p: SettingsUpdated = parse_json(&body)?;
    same_workspace(&state, claims, &p.workspace_id)?;
    let settings = parse_settings(&p.settings)?;
    if !installations::set_settings(&state.db, &p.workspace_id, &settings).await? {
        return Err(AppError::NotFound(format!(
            "no installation for workspace {}",
            p.workspace_id
        )));
    }
    state
        .metrics
        .lifecycle_events
        .with_label_values(&["settings_updated"])
        .inc();
    tracing::info!(workspace_id = %p.workspace_id, count = settings.len(), "settings updated");
    Ok(Json(
        json!({"status": "updated", "workspaceId": p.workspace_id, "settings": settings.len()}),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct Deleted {
    workspace_id: String,
}

/// DELETED: revokes the installation and every token issued before now, and schedules the workspace's data for deletion.
#[utoipa::path(
    post, path = "/lifecycle/deleted", tag = "lifecycle", request_body = Deleted,
    security(("lifecycleToken" = [])),
    responses(
        (status = 200, description = "Done", body = super::schema::LifecycleAnswer),
        (status = 404, description = "No installation for the workspace", body = crate::openapi::ErrorBody),
        (status = 422, description = "Every problem of the body", body = crate::openapi::ErrorBody),
    )
)]
async fn deleted(
    State(state): State<AppState>,
    caller: LifecycleCaller,
    RawBody(body): RawBody,
) -> AppResult<Json<Value>> {
    let claims = &caller.claims;
    let p: Deleted = parse_json(&body)?;
    same_workspace(&state, claims, &p.workspace_id)?;
    if !installations::mark_deleted(&state.db, &p.workspace_id, &caller.token_hash).await? {
        return Err(AppError::NotFound(format!(
            "no installation for workspace {}",
            p.workspace_id
        )));
    }
    // Uninstalling forgets every credential: custom webhook secrets and the HTTP allowlist.
    crate::store::secrets::delete(&state.db, &p.workspace_id).await?;
    crate::store::allowlist::clear(&state.db, &p.workspace_id).await?;
    state
        .metrics
        .lifecycle_events
        .with_label_values(&["deleted"])
        .inc();
    tracing::info!(workspace_id = %p.workspace_id, "deleted: tokens and secrets forgotten");
    Ok(Json(
        json!({"status": "deleted", "workspaceId": p.workspace_id}),
    ))
}
