//! Bootstrap jobs under the original service's paths: `POST /bootstrap/{workspaceId}` starts a
//! run (or returns the one already pending or running), `GET /bootstrap/{workspaceId}/status`
//! reports its progress. Both need a Clockify user token of that workspace: the path names the
//! workspace, the token proves the caller belongs to it.

use addon_core::app::AppState;
use addon_core::bootstrap::Options;
use addon_core::http::{AppError, AppResult};
use addon_core::openapi::{ApiRouter, ErrorBody};
use addon_core::routes::ui::{UiAdmin, UiUser};
use addon_core::store::bootstrap;
use addon_core::store::bootstrap::BootstrapRun;
use addon_core::store::installations::InstallStatus;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use utoipa_axum::routes;

pub fn routes() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(start))
        .routes(routes!(status))
}

/// What `start` answers.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // describes the `json!` answers below
struct Started {
    bootstrap: BootstrapRun,
    options: BootstrapOptions,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct BootstrapOptions {
    /// How many days of time entries it fetches (0: none).
    time_entry_days: u32,
    /// Whether it fetches the heavy endpoints too.
    include_heavy: bool,
}

/// What `status` answers.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct Progress {
    workspace_id: String,
    /// Absent until a bootstrap was requested.
    bootstrap: Option<BootstrapRun>,
}

fn same_workspace(user: &UiUser, workspace_id: &str) -> AppResult<()> {
    if user.workspace_id() == workspace_id {
        Ok(())
    } else {
        Err(AppError::Forbidden(format!(
            "your token is for workspace {}, not {workspace_id}",
            user.workspace_id()
        )))
    }
}

#[utoipa::path(
    post, path = "/bootstrap/{workspace_id}", tag = "dashboard", operation_id = "bootstrap_workspace", security(("userToken" = []), ("userTokenQuery" = [])), params(("workspace_id" = String, Path, description = "The workspace; it must be the token's")),
    responses(
        (status = 202, description = "Requested (or the run already pending or running)", body = Started),
        (status = 409, description = "The add-on is inactive in this workspace", body = ErrorBody),
    )
)]
async fn start(
    State(state): State<AppState>,
    Path(workspace_id): Path<String>,
    UiAdmin(user): UiAdmin,
) -> AppResult<Response> {
    same_workspace(&user, &workspace_id)?;
    if user.installation.status != InstallStatus::Active {
        return Err(AppError::Conflict(
            "the add-on is inactive in this workspace".into(),
        ));
    }
    let run = bootstrap::request(&state.db, &workspace_id).await?;
    state.bootstrap_work.notify_one();
    let options = Options::for_installation(&state, &user.installation);
    tracing::info!(workspace_id = %workspace_id, state = %run.state, "bootstrap requested");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "bootstrap": run,
            "options": {
                "timeEntryDays": options.time_entry_days,
                "includeHeavy": options.include_heavy,
            },
        })),
    )
        .into_response())
}

#[utoipa::path(
    get, path = "/bootstrap/{workspace_id}/status", tag = "dashboard", operation_id = "bootstrap_workspace_status", security(("userToken" = []), ("userTokenQuery" = [])), params(("workspace_id" = String, Path, description = "The workspace; it must be the token's")),
    responses((status = 200, description = "The bootstrap's progress", body = Progress))
)]
async fn status(
    State(state): State<AppState>,
    Path(workspace_id): Path<String>,
    user: UiUser,
) -> AppResult<Json<serde_json::Value>> {
    same_workspace(&user, &workspace_id)?;
    let run = bootstrap::get(&state.db, &workspace_id).await?;
    Ok(Json(json!({
        "workspaceId": workspace_id,
        "bootstrap": run,
    })))
}
