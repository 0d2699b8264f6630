//! The routes every add-on shares. Paths are the original services' paths, so manifests
//! registered with Clockify keep working.

pub mod custom;
pub mod health;
pub mod lifecycle;
pub mod schema;
pub mod ui;
pub mod webhooks;

use axum::extract::{DefaultBodyLimit, State};
use axum::{Extension, Json};
use serde_json::Value;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::http::extract::BodyLimit;
use crate::http::{LIMIT_DEFAULT, LIMIT_WEBHOOK};
use crate::openapi::ApiRouter;

/// Body limit layers for a group of routes.
pub fn limited(router: ApiRouter, bytes: usize) -> ApiRouter {
    router
        .layer(DefaultBodyLimit::max(bytes))
        .layer(Extension(BodyLimit(bytes)))
}

/// Manifest, lifecycle, Clockify webhooks and the `/ui` routes.
pub fn standard() -> ApiRouter {
    let default = ApiRouter::new()
        .routes(routes!(manifest))
        .merge(lifecycle::routes())
        .merge(ui::routes());
    limited(default, LIMIT_DEFAULT).merge(limited(webhooks::routes(), LIMIT_WEBHOOK))
}

/// The manifest Clockify reads when the add-on is installed: key, name, base URL, scopes,
/// plan, components, webhooks and lifecycle routes.
#[utoipa::path(
    get, path = "/manifest", tag = "operations",
    responses((status = 200, description = "The add-on's manifest (Clockify's manifest schema 1.3)", body = Object))
)]
async fn manifest(State(state): State<AppState>) -> Json<Value> {
    Json(crate::addon::manifest(state.def, &state.config))
}
