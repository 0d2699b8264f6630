//! Bootstrap jobs under the original service's paths: `POST /bootstrap/{workspaceId}` starts a
//! run (or returns the one already pending or running), `GET /bootstrap/{workspaceId}/status`
//! reports its progress. Both need a Clockify user token of that workspace: the path names the
//! workspace, the token proves the caller belongs to it.

use addon_core::app::AppState;
use addon_core::bootstrap::Options;
use addon_core::http::{AppError, AppResult};
use addon_core::routes::ui::{UiAdmin, UiUser};
use addon_core::store::bootstrap;
use addon_core::store::installations::InstallStatus;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/bootstrap/{workspace_id}", post(start))
        .route("/bootstrap/{workspace_id}/status", get(status))
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
