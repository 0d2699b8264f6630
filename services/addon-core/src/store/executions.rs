//! One row per flow run: claimed before the run (so a flow never runs twice for one delivery),
//! finished with its steps and outcome.

use serde::Serialize;
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, new_id};
use crate::time::{now_millis, rfc3339, rfc3339_opt};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ExecutionStatus {
    Running,
    Succeeded,
    Failed,
    Skipped,
}

impl ExecutionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::Skipped => "SKIPPED",
        }
    }
}

/// Starts an execution; `None` when this flow already ran (or runs) for this delivery.
pub async fn start(
    db: &Db,
    workspace_id: &str,
    flow_id: &str,
    webhook_id: &str,
    event_type: &str,
) -> Result<Option<String>, sqlx::Error> {
    let id = new_id();
    let row = sqlx::query(START)
        .bind(&id)
        .bind(workspace_id)
        .bind(flow_id)
        .bind(webhook_id)
        .bind(event_type)
        .bind(now_millis())
        .fetch_optional(db.pool())
        .await?;
    Ok(row.map(|_| id))
}

pub async fn finish(
    db: &Db,
    id: &str,
    status: ExecutionStatus,
    steps: &Value,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(FINISH)
        .bind(status.as_str())
        .bind(steps.to_string())
        .bind(error)
        .bind(now_millis())
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Runs that a dead worker left RUNNING are closed as FAILED rather than left hanging.
pub async fn fail_interrupted(db: &Db, webhook_id: &str) -> Result<u64, sqlx::Error> {
    let r = sqlx::query(FAIL_INTERRUPTED)
        .bind(now_millis())
        .bind(webhook_id)
        .execute(db.pool())
        .await?;
    Ok(r.rows_affected())
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionEntry {
    pub id: String,
    pub flow_id: String,
    pub webhook_id: String,
    pub event_type: String,
    pub status: String,
    pub steps: Value,
    pub error: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// How long the run took (absent for runs recorded before migration 2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
}

fn from_row(r: &AnyRow) -> Result<ExecutionEntry, sqlx::Error> {
    let steps: String = r.try_get("steps")?;
    Ok(ExecutionEntry {
        id: r.try_get("id")?,
        flow_id: r.try_get("flow_id")?,
        webhook_id: r.try_get("webhook_id")?,
        event_type: r.try_get("event_type")?,
        status: r.try_get("status")?,
        steps: serde_json::from_str(&steps).unwrap_or(Value::Null),
        error: r.try_get("error")?,
        started_at: rfc3339(r.try_get("started_at")?),
        finished_at: rfc3339_opt(r.try_get("finished_at")?),
        duration_ms: r.try_get("duration_ms")?,
    })
}

#[derive(Debug, Default, Clone)]
pub struct ExecutionFilter<'a> {
    pub flow_id: Option<&'a str>,
    pub webhook_id: Option<&'a str>,
    pub status: Option<&'a str>,
    pub before: Option<&'a str>,
}

/// Newest first.
pub async fn list(
    db: &Db,
    workspace_id: &str,
    f: &ExecutionFilter<'_>,
    limit: i64,
) -> Result<Vec<ExecutionEntry>, sqlx::Error> {
    let rows = sqlx::query(LIST)
        .bind(workspace_id)
        .bind(f.flow_id.unwrap_or(""))
        .bind(f.webhook_id.unwrap_or(""))
        .bind(f.status.unwrap_or(""))
        .bind(f.before.unwrap_or(""))
        .bind(limit)
        .fetch_all(db.pool())
        .await?;
    rows.iter().map(from_row).collect()
}

pub async fn get(
    db: &Db,
    workspace_id: &str,
    id: &str,
) -> Result<Option<ExecutionEntry>, sqlx::Error> {
    sqlx::query(GET)
        .bind(workspace_id)
        .bind(id)
        .fetch_optional(db.pool())
        .await?
        .map(|r| from_row(&r))
        .transpose()
}

/// Executions per status since a time.
pub async fn counts(
    db: &Db,
    workspace_id: &str,
    since: i64,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let rows = sqlx::query(COUNTS)
        .bind(workspace_id)
        .bind(since)
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("status")?, r.try_get("n")?)))
        .collect()
}

// Every statement this module issues, named for the SQL contract (see `store::contract`).
const START: &str = "INSERT INTO flow_executions (id, workspace_id, flow_id, webhook_id, event_type, status, started_at)
         VALUES ($1, $2, $3, $4, $5, 'RUNNING', $6)
         ON CONFLICT (flow_id, webhook_id) DO NOTHING RETURNING id";
const FINISH: &str = "UPDATE flow_executions SET status = $1, steps = $2, error = $3, finished_at = $4, duration_ms = $4 - started_at WHERE id = $5";
const FAIL_INTERRUPTED: &str = "UPDATE flow_executions SET status = 'FAILED', error = 'interrupted: the process stopped while the flow ran', finished_at = $1
         WHERE webhook_id = $2 AND status = 'RUNNING'";
const LIST: &str = "SELECT id, flow_id, webhook_id, event_type, status, steps, error, started_at, finished_at, duration_ms FROM flow_executions
         WHERE workspace_id = $1 AND ($2 = '' OR flow_id = $2) AND ($3 = '' OR webhook_id = $3)
           AND ($4 = '' OR status = $4) AND ($5 = '' OR id < $5)
         ORDER BY id DESC LIMIT $6";
const GET: &str = "SELECT id, flow_id, webhook_id, event_type, status, steps, error, started_at, finished_at, duration_ms FROM flow_executions WHERE workspace_id = $1 AND id = $2";
const COUNTS: &str = "SELECT status, COUNT(*) AS n FROM flow_executions WHERE workspace_id = $1 AND started_at >= $2 GROUP BY status ORDER BY status";

/// The statements of this module, for the SQL contract.
pub(crate) const STATEMENTS: &[(&str, &str)] = &[
    ("executions::start", START),
    ("executions::finish", FINISH),
    ("executions::fail_interrupted", FAIL_INTERRUPTED),
    ("executions::list", LIST),
    ("executions::get", GET),
    ("executions::counts", COUNTS),
];
