//! The settings page this add-on serves itself (the manifest's `settings` is its path):
//! Clockify opens `/settings?auth_token=<user token>` in an iframe. The page shows the
//! workspace's installation, the bootstrap's progress and the settings, and saves them (admins
//! only). Without a valid user token the page is refused with 401 and nothing of the workspace.

use addon_core::app::AppState;
use addon_core::bootstrap::{
    INCLUDE_HEAVY_SETTING, MAX_TIME_ENTRY_DAYS, Options, TIME_ENTRY_DAYS_SETTING,
};
use addon_core::http::{ApiJson, AppError, AppResult};
use addon_core::openapi::ApiRouter;
use addon_core::routes::lifecycle::BOOTSTRAP_SETTING;
use addon_core::routes::ui::UiUser;
use addon_core::store::bootstrap;
use addon_core::store::installations::{self, Installation};
use addon_core::time::rfc3339;
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa_axum::routes;

/// Where the page is served (the manifest's `settings`).
pub const PAGE_PATH: &str = "/settings";
/// Setting: admins may write through `/api-call`.
pub const ALLOW_WRITES_SETTING: &str = "api_call_allow_writes";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Checkbox,
    /// A whole number within bounds.
    Number {
        min: u32,
        max: u32,
    },
}

#[derive(Debug, Clone, Copy)]
pub struct Definition {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub kind: Kind,
    pub default: fn() -> Value,
}

/// The settings the page edits.
pub const DEFINITIONS: &[Definition] = &[
    Definition {
        id: BOOTSTRAP_SETTING,
        name: "Fetch workspace data on install",
        description: "Cache users, projects, clients, tags and other workspace data when the add-on is installed.",
        kind: Kind::Checkbox,
        default: || json!(true),
    },
    Definition {
        id: TIME_ENTRY_DAYS_SETTING,
        name: "Days of time entries to fetch",
        description: "How many days of each user's time entries a bootstrap caches (0 fetches none).",
        kind: Kind::Number {
            min: 0,
            max: MAX_TIME_ENTRY_DAYS,
        },
        default: || json!(0),
    },
    Definition {
        id: INCLUDE_HEAVY_SETTING,
        name: "Include expenses, invoices and approval requests",
        description: "Also walk the heavy endpoints when bootstrapping.",
        kind: Kind::Checkbox,
        default: || json!(false),
    },
    Definition {
        id: ALLOW_WRITES_SETTING,
        name: "Allow writes through the API caller",
        description: "Let workspace admins send POST, PUT, PATCH and DELETE calls through /api-call.",
        kind: Kind::Checkbox,
        default: || json!(true),
    },
];

pub fn routes() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(page))
        .routes(routes!(show, save))
        .routes(routes!(script))
}

/// What the settings page shows.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // describes the `json!` answers below
struct SettingsState {
    workspace_id: String,
    addon: AddonName,
    installation: InstallationState,
    bootstrap: Option<addon_core::store::bootstrap::BootstrapRun>,
    bootstrap_options: crate::bootstrap::BootstrapOptions,
    settings: Vec<SettingState>,
    /// Whether the caller may change them (owners and admins).
    can_edit: bool,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
struct AddonName {
    name: String,
    version: String,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct InstallationState {
    status: String,
    api_url: String,
    installed_at: String,
    updated_at: String,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
struct SettingState {
    id: String,
    name: String,
    description: String,
    /// `CHECKBOX` or `NUMBER`.
    #[serde(rename = "type")]
    kind: String,
    /// NUMBER: `{min, max}`; null otherwise.
    bounds: Option<Bounds>,
    value: Value,
    default: Value,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
struct Bounds {
    min: u32,
    max: u32,
}

/// The page: a static shell with no workspace data (so no token is needed to fetch it). Its
/// script, built with the console, reads the token Clockify put in the URL, says plainly when it
/// is missing, expired or refused, and calls `settings/state` with it; the server checks every
/// call. Every URL in it is relative, so a base URL with a path works.
#[utoipa::path(
    get, path = "/settings", tag = "settings", operation_id = "settings_page",
    responses((status = 200, description = "The settings page (a static shell: it reads the user token from its own address)", content_type = "text/html", body = String))
)]
async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("../ui/settings.html"),
    )
        .into_response()
}

#[utoipa::path(
    get, path = "/static/settings.js", tag = "settings", operation_id = "settings_script",
    responses((status = 200, description = "The settings page's script (built in)", content_type = "text/javascript", body = String))
)]
async fn script() -> Response {
    addon_core::routes::ui::asset(
        "text/javascript; charset=utf-8",
        addon_core::routes::ui::SETTINGS_SCRIPT,
    )
}

fn current(installation: &Installation) -> Vec<Value> {
    DEFINITIONS
        .iter()
        .map(|d| {
            let value = installation
                .setting(d.id)
                .cloned()
                .unwrap_or_else(d.default);
            let (kind, bounds) = match d.kind {
                Kind::Checkbox => ("CHECKBOX", Value::Null),
                Kind::Number { min, max } => ("NUMBER", json!({"min": min, "max": max})),
            };
            json!({
                "id": d.id, "name": d.name, "description": d.description,
                "type": kind, "bounds": bounds, "value": value, "default": (d.default)(),
            })
        })
        .collect()
}

async fn state_of(state: &AppState, user: &UiUser) -> AppResult<Value> {
    let i = &user.installation;
    let options = Options::for_installation(state, i);
    Ok(json!({
        "workspaceId": i.workspace_id,
        "addon": {"name": state.config.addon_name, "version": env!("CARGO_PKG_VERSION")},
        "installation": {
            "status": i.status,
            "apiUrl": i.api_url,
            "installedAt": rfc3339(i.installed_at),
            "updatedAt": rfc3339(i.updated_at),
        },
        "bootstrap": bootstrap::get(&state.db, &i.workspace_id).await?,
        "bootstrapOptions": {"timeEntryDays": options.time_entry_days, "includeHeavy": options.include_heavy},
        "settings": current(i),
        "canEdit": user.claims.is_admin(),
    }))
}

#[utoipa::path(
    get, path = "/settings/state", tag = "settings", operation_id = "settings_show", security(("userToken" = []), ("userTokenQuery" = [])),
    responses((status = 200, description = "The installation, its bootstrap and every setting with its value, type and bounds", body = SettingsState))
)]
async fn show(State(state): State<AppState>, user: UiUser) -> AppResult<Json<Value>> {
    Ok(Json(state_of(&state, &user).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Save {
    /// Setting id → new value; settings not named keep their value.
    settings: Map<String, Value>,
}

/// Checks each value against its definition; every problem is reported at once.
fn validate(changes: &Map<String, Value>) -> Result<Vec<(&'static Definition, Value)>, AppError> {
    let mut problems = Vec::new();
    let mut accepted = Vec::new();
    for (id, value) in changes {
        let Some(def) = DEFINITIONS.iter().find(|d| d.id == id) else {
            problems.push(format!("settings.{id}: no such setting"));
            continue;
        };
        match (def.kind, value) {
            (Kind::Checkbox, Value::Bool(_)) => accepted.push((def, value.clone())),
            (Kind::Checkbox, _) => problems.push(format!("settings.{id}: expected true or false")),
            (Kind::Number { min, max }, v) => match v.as_u64() {
                Some(n) if (u64::from(min)..=u64::from(max)).contains(&n) => {
                    accepted.push((def, json!(n)))
                }
                _ => problems.push(format!(
                    "settings.{id}: expected a whole number from {min} to {max}"
                )),
            },
        }
    }
    if problems.is_empty() {
        Ok(accepted)
    } else {
        Err(AppError::Validation(problems))
    }
}

#[utoipa::path(
    put, path = "/settings/state", tag = "settings", operation_id = "settings_save", security(("userToken" = []), ("userTokenQuery" = [])), request_body = Save,
    responses(
        (status = 200, description = "Saved; the state as it is now", body = SettingsState),
        (status = 404, description = "The installation is gone", body = addon_core::openapi::ErrorBody),
        (status = 422, description = "Every setting that is unknown or out of its bounds", body = addon_core::openapi::ErrorBody),
    )
)]
async fn save(
    State(state): State<AppState>,
    user: UiUser,
    ApiJson(body): ApiJson<Save>,
) -> AppResult<Json<Value>> {
    if !user.claims.is_admin() {
        return Err(AppError::Forbidden(
            "only workspace owners and admins may change the add-on's settings".into(),
        ));
    }
    let accepted = validate(&body.settings)?;
    let mut list = user.installation.settings.clone();
    for (def, value) in accepted {
        let entry = json!({"id": def.id, "name": def.name, "value": value});
        match list
            .iter_mut()
            .find(|s| s.get("id").and_then(Value::as_str) == Some(def.id))
        {
            Some(existing) => *existing = entry,
            None => list.push(entry),
        }
    }
    let ws = user.workspace_id().to_owned();
    if !installations::set_settings(&state.db, &ws, &list).await? {
        return Err(AppError::NotFound(format!(
            "no installation for workspace {ws}"
        )));
    }
    tracing::info!(workspace_id = %ws, changed = body.settings.len(), "settings saved from the settings page");
    let installation = installations::get(&state.db, &ws)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no installation for workspace {ws}")))?;
    let user = UiUser {
        claims: user.claims,
        installation,
    };
    Ok(Json(state_of(&state, &user).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_against_their_definitions() {
        let ok: Map<String, Value> = serde_json::from_value(json!({
            TIME_ENTRY_DAYS_SETTING: 30, INCLUDE_HEAVY_SETTING: true
        }))
        .unwrap();
        assert_eq!(validate(&ok).unwrap().len(), 2);
        let bad: Map<String, Value> = serde_json::from_value(json!({
            TIME_ENTRY_DAYS_SETTING: 366, INCLUDE_HEAVY_SETTING: "yes", "nope": 1
        }))
        .unwrap();
        let Err(AppError::Validation(problems)) = validate(&bad) else {
            panic!("accepted")
        };
        assert_eq!(problems.len(), 3, "{problems:?}");
    }
}
