//! Database access, one module per table group. Every function takes the [`Db`] and runs
//! portable SQL (see [`crate::db`]).

pub mod allowlist;
pub mod api_calls;
pub mod bootstrap;
pub mod contract;
pub mod entities;
pub mod executions;
pub mod flows;
pub mod installations;
pub mod rekey;
pub mod secrets;
pub mod webhooks;

use serde::de::DeserializeOwned;

pub use crate::db::Db;

/// Decodes a JSON TEXT column.
pub(crate) fn json_col<T: DeserializeOwned>(
    text: &str,
    column: &'static str,
) -> Result<T, sqlx::Error> {
    serde_json::from_str(text)
        .map_err(|e| sqlx::Error::Decode(format!("column {column}: {e}").into()))
}

/// Caps a page size from a query parameter.
pub fn page_limit(requested: Option<i64>) -> i64 {
    requested.unwrap_or(50).clamp(1, 200)
}

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
