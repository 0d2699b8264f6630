//! The routes every add-on shares. Paths are the original services' paths, so manifests
//! registered with Clockify keep working.

pub mod custom;
pub mod health;
pub mod lifecycle;
pub mod ui;
pub mod webhooks;

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::Value;

use crate::app::AppState;
use crate::http::extract::BodyLimit;
use crate::http::{LIMIT_DEFAULT, LIMIT_WEBHOOK};

/// Body limit layers for a group of routes.
pub fn limited(router: Router<AppState>, bytes: usize) -> Router<AppState> {
    router
        .layer(DefaultBodyLimit::max(bytes))
        .layer(Extension(BodyLimit(bytes)))
}

/// Manifest, lifecycle, Clockify webhooks and the `/ui` routes.
pub fn standard() -> Router<AppState> {
    let default = Router::new()
        .route("/manifest", get(manifest))
        .merge(lifecycle::routes())
        .merge(ui::routes());
    limited(default, LIMIT_DEFAULT).merge(limited(webhooks::routes(), LIMIT_WEBHOOK))
}

async fn manifest(State(state): State<AppState>) -> Json<Value> {
    Json(crate::addon::manifest(state.def, &state.config))
}
