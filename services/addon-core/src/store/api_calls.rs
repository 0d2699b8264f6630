//! The log of Clockify API calls made on a user's behalf through `POST /api-call`: who, what
//! and how it went; never the token, the query or the bodies.

use serde::Serialize;
use sqlx::Row;

use super::{Db, new_id};
use crate::time::{now_millis, rfc3339};

#[derive(Debug, Clone)]
pub struct NewCall<'a> {
    pub workspace_id: &'a str,
    pub user_id: Option<&'a str>,
    pub method: &'a str,
    pub endpoint: &'a str,
    pub status: Option<u16>,
    pub error: Option<&'a str>,
    pub duration_ms: i64,
}

pub async fn record(db: &Db, c: &NewCall<'_>) -> Result<String, sqlx::Error> {
    let id = new_id();
    sqlx::query(RECORD)
        .bind(&id)
        .bind(c.workspace_id)
        .bind(c.user_id)
        .bind(c.method)
        .bind(c.endpoint)
        .bind(c.status.map(i64::from))
        .bind(c.error)
        .bind(c.duration_ms)
        .bind(now_millis())
        .execute(db.pool())
        .await?;
    Ok(id)
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallEntry {
    pub id: String,
    pub user_id: Option<String>,
    pub method: String,
    pub endpoint: String,
    pub status: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub called_at: String,
}

/// Newest first; `before` is the last id of the previous page.
pub async fn list(
    db: &Db,
    workspace_id: &str,
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<CallEntry>, sqlx::Error> {
    let q = match before {
        Some(before) => sqlx::query(LIST_BEFORE).bind(workspace_id).bind(before),
        None => sqlx::query(LIST).bind(workspace_id),
    };
    let rows = q.bind(limit).fetch_all(db.pool()).await?;
    rows.iter()
        .map(|r| {
            Ok(CallEntry {
                id: r.try_get("id")?,
                user_id: r.try_get("user_id")?,
                method: r.try_get("method")?,
                endpoint: r.try_get("endpoint")?,
                status: r.try_get("status")?,
                error: r.try_get("error")?,
                duration_ms: r.try_get("duration_ms")?,
                called_at: rfc3339(r.try_get("called_at")?),
            })
        })
        .collect()
}

// Every statement this module issues, named for the SQL contract (see `store::contract`).
const RECORD: &str = "INSERT INTO api_calls (id, workspace_id, user_id, method, endpoint, status, error, duration_ms, called_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
const LIST: &str =
    "SELECT id, user_id, method, endpoint, status, error, duration_ms, called_at FROM api_calls
         WHERE workspace_id = $1 ORDER BY id DESC LIMIT $2";
const LIST_BEFORE: &str =
    "SELECT id, user_id, method, endpoint, status, error, duration_ms, called_at FROM api_calls
         WHERE workspace_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3";

/// The statements of this module, for the SQL contract.
pub(crate) const STATEMENTS: &[(&str, &str)] = &[
    ("api_calls::record", RECORD),
    ("api_calls::list", LIST),
    ("api_calls::list_before", LIST_BEFORE),
];
