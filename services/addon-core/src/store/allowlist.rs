//! Per-workspace HTTP allowlists: the hosts GENERIC_HTTP actions may call.

use sqlx::Row;

use super::Db;
use crate::time::now_millis;

/// At most this many rules per workspace.
pub const MAX_RULES: usize = 100;

/// The workspace's rules, sorted.
pub async fn list(db: &Db, workspace_id: &str) -> Result<Vec<String>, sqlx::Error> {
    let rows = sqlx::query(LIST)
        .bind(workspace_id)
        .fetch_all(db.pool())
        .await?;
    rows.iter().map(|r| r.try_get("rule")).collect()
}

/// Replaces the workspace's rules in one transaction.
pub async fn replace(db: &Db, workspace_id: &str, rules: &[String]) -> Result<(), sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    sqlx::query(CLEAR)
        .bind(workspace_id)
        .execute(&mut *tx)
        .await?;
    let now = now_millis();
    for rule in rules {
        sqlx::query(INSERT)
            .bind(workspace_id)
            .bind(rule)
            .bind(now)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

/// Forgets a workspace's rules (the add-on was deleted there).
pub async fn clear(db: &Db, workspace_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query(CLEAR)
        .bind(workspace_id)
        .execute(db.pool())
        .await?;
    Ok(())
}

// Every statement this module issues, named for the SQL contract (see `store::contract`).
const LIST: &str = "SELECT rule FROM http_allowlist WHERE workspace_id = $1 ORDER BY rule";
const CLEAR: &str = "DELETE FROM http_allowlist WHERE workspace_id = $1";
const INSERT: &str =
    "INSERT INTO http_allowlist (workspace_id, rule, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (workspace_id, rule) DO NOTHING";

/// The statements of this module, for the SQL contract.
pub(crate) const STATEMENTS: &[(&str, &str)] = &[
    ("allowlist::list", LIST),
    ("allowlist::clear", CLEAR),
    ("allowlist::insert", INSERT),
];
