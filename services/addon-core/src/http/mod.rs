//! HTTP scaffolding shared by every add-on: errors, extractors, middleware, health, serving.

pub mod cors;
pub mod error;
pub mod extract;
pub mod layers;
pub mod serve;

pub use error::{AppError, AppResult};
pub use extract::{ApiJson, RawBody};

/// Body limit of webhook routes (Clockify's payloads can be large).
pub const LIMIT_WEBHOOK: usize = 5 * 1024 * 1024;
/// Body limit of every other route.
pub const LIMIT_DEFAULT: usize = 1024 * 1024;
