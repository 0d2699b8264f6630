//! The entity cache filled by bootstrap.

use serde::Serialize;
use serde_json::Value;
use sqlx::Row;

use super::Db;
use crate::time::{now_millis, rfc3339};

/// Upserts one page of entities in one transaction; returns how many were stored.
pub async fn upsert_page(
    db: &Db,
    workspace_id: &str,
    entity_type: &str,
    items: &[(String, String)],
) -> Result<u64, sqlx::Error> {
    if items.is_empty() {
        return Ok(0);
    }
    let now = now_millis();
    let mut tx = db.pool().begin().await?;
    for (id, body) in items {
        sqlx::query(UPSERT_PAGE)
            .bind(workspace_id)
            .bind(entity_type)
            .bind(id)
            .bind(body)
            .bind(now)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(items.len() as u64)
}

pub async fn counts(db: &Db, workspace_id: &str) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let rows = sqlx::query(COUNTS)
        .bind(workspace_id)
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("entity_type")?, r.try_get("n")?)))
        .collect()
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CachedEntity {
    pub entity_type: String,
    pub id: String,
    pub body: Value,
    pub fetched_at: String,
}

pub async fn list(
    db: &Db,
    workspace_id: &str,
    entity_type: &str,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<CachedEntity>, sqlx::Error> {
    let q = match after {
        Some(after) => sqlx::query(LIST_AFTER)
            .bind(workspace_id)
            .bind(entity_type)
            .bind(after),
        None => sqlx::query(LIST).bind(workspace_id).bind(entity_type),
    };
    let rows = q.bind(limit).fetch_all(db.pool()).await?;
    rows.iter()
        .map(|r| {
            let body: String = r.try_get("body")?;
            Ok(CachedEntity {
                entity_type: r.try_get("entity_type")?,
                id: r.try_get("entity_id")?,
                body: serde_json::from_str(&body).unwrap_or(Value::Null),
                fetched_at: rfc3339(r.try_get("fetched_at")?),
            })
        })
        .collect()
}

// Every statement this module issues, named for the SQL contract (see `store::contract`).
const UPSERT_PAGE: &str = "INSERT INTO entity_cache (workspace_id, entity_type, entity_id, body, fetched_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (workspace_id, entity_type, entity_id) DO UPDATE SET body = excluded.body, fetched_at = excluded.fetched_at";
const COUNTS: &str = "SELECT entity_type, COUNT(*) AS n FROM entity_cache WHERE workspace_id = $1 GROUP BY entity_type ORDER BY entity_type";
const LIST: &str = "SELECT entity_type, entity_id, body, fetched_at FROM entity_cache
         WHERE workspace_id = $1 AND entity_type = $2 ORDER BY entity_id LIMIT $3";
const LIST_AFTER: &str = "SELECT entity_type, entity_id, body, fetched_at FROM entity_cache
         WHERE workspace_id = $1 AND entity_type = $2 AND entity_id > $3 ORDER BY entity_id LIMIT $4";

/// The statements of this module, for the SQL contract.
pub(crate) const STATEMENTS: &[(&str, &str)] = &[
    ("entities::upsert_page", UPSERT_PAGE),
    ("entities::counts", COUNTS),
    ("entities::list", LIST),
    ("entities::list_after", LIST_AFTER),
];
