//! Bootstrap runs: one row per workspace with a state machine
//! PENDING -> IN_PROGRESS -> COMPLETE | COMPLETE_WITH_ERRORS | FAILED.
//!
//! A runner owns an IN_PROGRESS row and refreshes `heartbeat_at`; a row whose heartbeat went
//! stale (its process died) is claimed again, so a restart never leaves a run stuck.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, json_col};
use crate::time::{now_millis, rfc3339_opt};

pub const MAX_KEPT_ERRORS: usize = 10;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapRun {
    pub workspace_id: String,
    pub state: String,
    pub requested_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub endpoints_done: i64,
    pub endpoints_total: i64,
    pub pages_fetched: i64,
    pub entities_stored: i64,
    pub errors: Vec<String>,
    pub attempts: i64,
}

fn from_row(r: &AnyRow) -> Result<BootstrapRun, sqlx::Error> {
    Ok(BootstrapRun {
        workspace_id: r.try_get("workspace_id")?,
        state: r.try_get("state")?,
        requested_at: rfc3339_opt(r.try_get("requested_at")?),
        started_at: rfc3339_opt(r.try_get("started_at")?),
        finished_at: rfc3339_opt(r.try_get("finished_at")?),
        endpoints_done: r.try_get("endpoints_done")?,
        endpoints_total: r.try_get("endpoints_total")?,
        pages_fetched: r.try_get("pages_fetched")?,
        entities_stored: r.try_get("entities_stored")?,
        errors: json_col(&r.try_get::<String, _>("errors")?, "errors")?,
        attempts: r.try_get("attempts")?,
    })
}

/// Asks for a run. A run already PENDING or IN_PROGRESS is left as it is.
pub async fn request(db: &Db, workspace_id: &str) -> Result<BootstrapRun, sqlx::Error> {
    sqlx::query(REQUEST)
        .bind(workspace_id)
        .bind(now_millis())
        .execute(db.pool())
        .await?;
    get(db, workspace_id).await?.ok_or(sqlx::Error::RowNotFound)
}

pub async fn get(db: &Db, workspace_id: &str) -> Result<Option<BootstrapRun>, sqlx::Error> {
    sqlx::query(GET)
        .bind(workspace_id)
        .fetch_optional(db.pool())
        .await?
        .map(|r| from_row(&r))
        .transpose()
}

/// A run this process now owns.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub workspace_id: String,
    pub attempts: i64,
}

/// Claims the oldest PENDING run, or an IN_PROGRESS one whose heartbeat is older than `stale_before`.
pub async fn claim(
    db: &Db,
    owner: &str,
    stale_before: i64,
) -> Result<Option<Claimed>, sqlx::Error> {
    let now = now_millis();
    let row = sqlx::query(CLAIM)
        .bind(owner)
        .bind(now)
        .bind(stale_before)
        .fetch_optional(db.pool())
        .await?;
    row.map(|r| {
        Ok(Claimed {
            workspace_id: r.try_get("workspace_id")?,
            attempts: r.try_get("attempts")?,
        })
    })
    .transpose()
}

#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub endpoints_done: i64,
    pub endpoints_total: i64,
    pub pages_fetched: i64,
    pub entities_stored: i64,
    pub errors: Vec<String>,
}

fn errors_json(p: &Progress) -> String {
    let kept: Vec<&String> = p.errors.iter().take(MAX_KEPT_ERRORS).collect();
    serde_json::to_string(&kept).unwrap_or_else(|_| "[]".into())
}

/// Records progress and refreshes the heartbeat; false when this owner lost the run.
pub async fn heartbeat(
    db: &Db,
    workspace_id: &str,
    owner: &str,
    p: &Progress,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(HEARTBEAT)
        .bind(now_millis())
        .bind(p.endpoints_done)
        .bind(p.endpoints_total)
        .bind(p.pages_fetched)
        .bind(p.entities_stored)
        .bind(errors_json(p))
        .bind(workspace_id)
        .bind(owner)
        .execute(db.pool())
        .await?;
    Ok(r.rows_affected() > 0)
}

pub async fn finish(
    db: &Db,
    workspace_id: &str,
    owner: &str,
    state: &str,
    p: &Progress,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(FINISH)
        .bind(state)
        .bind(now_millis())
        .bind(p.endpoints_done)
        .bind(p.endpoints_total)
        .bind(p.pages_fetched)
        .bind(p.entities_stored)
        .bind(errors_json(p))
        .bind(workspace_id)
        .bind(owner)
        .execute(db.pool())
        .await?;
    Ok(r.rows_affected() > 0)
}

/// Gives a run back as PENDING (graceful shutdown), so another process resumes it at once.
pub async fn release(db: &Db, workspace_id: &str, owner: &str) -> Result<(), sqlx::Error> {
    sqlx::query(RELEASE)
        .bind(workspace_id)
        .bind(owner)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Marks a run FAILED outright (e.g. interrupted too many times).
pub async fn fail(
    db: &Db,
    workspace_id: &str,
    owner: &str,
    reason: &str,
) -> Result<(), sqlx::Error> {
    let p = Progress {
        errors: vec![reason.to_owned()],
        ..Progress::default()
    };
    sqlx::query(FAIL)
        .bind(now_millis())
        .bind(errors_json(&p))
        .bind(workspace_id)
        .bind(owner)
        .execute(db.pool())
        .await?;
    Ok(())
}

// Every statement this module issues, named for the SQL contract (see `store::contract`).
const REQUEST: &str = "INSERT INTO bootstrap_runs (workspace_id, state, requested_at) VALUES ($1, 'PENDING', $2)
         ON CONFLICT (workspace_id) DO UPDATE SET state = 'PENDING', requested_at = excluded.requested_at,
             started_at = NULL, finished_at = NULL, heartbeat_at = NULL, owner = NULL, attempts = 0,
             endpoints_done = 0, endpoints_total = 0, pages_fetched = 0, entities_stored = 0, errors = '[]'
         WHERE bootstrap_runs.state NOT IN ('PENDING', 'IN_PROGRESS')";
const GET: &str = "SELECT workspace_id, state, requested_at, started_at, finished_at, endpoints_done, endpoints_total, pages_fetched, entities_stored, errors, attempts FROM bootstrap_runs WHERE workspace_id = $1";
const CLAIM: &str = "UPDATE bootstrap_runs SET state = 'IN_PROGRESS', owner = $1, started_at = $2, heartbeat_at = $2,
                attempts = attempts + 1, finished_at = NULL
         WHERE workspace_id = (SELECT workspace_id FROM bootstrap_runs
                               WHERE state = 'PENDING' OR (state = 'IN_PROGRESS' AND heartbeat_at < $3)
                               ORDER BY requested_at LIMIT 1)
           AND (state = 'PENDING' OR (state = 'IN_PROGRESS' AND heartbeat_at < $3))
         RETURNING workspace_id, attempts";
const HEARTBEAT: &str = "UPDATE bootstrap_runs SET heartbeat_at = $1, endpoints_done = $2, endpoints_total = $3, pages_fetched = $4,
                entities_stored = $5, errors = $6
         WHERE workspace_id = $7 AND owner = $8 AND state = 'IN_PROGRESS'";
const FINISH: &str = "UPDATE bootstrap_runs SET state = $1, finished_at = $2, heartbeat_at = $2, endpoints_done = $3, endpoints_total = $4,
                pages_fetched = $5, entities_stored = $6, errors = $7
         WHERE workspace_id = $8 AND owner = $9 AND state = 'IN_PROGRESS'";
const RELEASE: &str = "UPDATE bootstrap_runs SET state = 'PENDING', owner = NULL, heartbeat_at = NULL WHERE workspace_id = $1 AND owner = $2 AND state = 'IN_PROGRESS'";
const FAIL: &str = "UPDATE bootstrap_runs SET state = 'FAILED', finished_at = $1, errors = $2 WHERE workspace_id = $3 AND owner = $4";

/// The statements of this module, for the SQL contract.
pub(crate) const STATEMENTS: &[(&str, &str)] = &[
    ("bootstrap::request", REQUEST),
    ("bootstrap::get", GET),
    ("bootstrap::claim", CLAIM),
    ("bootstrap::heartbeat", HEARTBEAT),
    ("bootstrap::finish", FINISH),
    ("bootstrap::release", RELEASE),
    ("bootstrap::fail", FAIL),
];
