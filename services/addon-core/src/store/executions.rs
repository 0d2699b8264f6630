//! Flow executions: one row per (flow, delivery), the unit of exactly-once flow processing.
//!
//! A delivery is fanned out in one transaction with its claim: one row per matching flow is
//! inserted (PENDING, or SKIPPED with the reason) and the delivery marked PROCESSED together, so
//! a crash either leaves the delivery PENDING or its executions queued, never both or neither.
//! Workers claim due rows under a lease (RUNNING, `lease_owner`, `lease_until`) renewed by a
//! heartbeat; each completed action moves `next_step` forward in the same row, so a run whose
//! worker died is resumed by another at the step that had not completed, and a finished step is
//! never repeated. A transient failure schedules another attempt (RETRY, `next_attempt_at`);
//! attempts run out in FAILED with the error. `(flow_id, webhook_id)` is unique, so no
//! delivery ever yields two executions of one flow.

use serde::Serialize;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{Db, new_id};
use crate::db::Backend;
use crate::time::{now_millis, rfc3339, rfc3339_opt};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ExecutionStatus {
    /// Queued for its first attempt.
    Pending,
    Running,
    /// Waiting for another attempt after a transient failure or an interrupted worker.
    Retry,
    Succeeded,
    Failed,
    Skipped,
}

impl ExecutionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Running => "RUNNING",
            Self::Retry => "RETRY",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::Skipped => "SKIPPED",
        }
    }
}

/// One execution to queue at fan-out.
#[derive(Debug, Clone)]
pub struct NewExecution<'a> {
    pub workspace_id: &'a str,
    pub flow_id: &'a str,
    pub webhook_id: &'a str,
    pub event_type: &'a str,
    /// The flow's `updated_at` (its version) when queued.
    pub flow_version: i64,
    /// `Some((status, reason))`: recorded as finished at once: SKIPPED (conditions not met,
    /// add-on inactive) or FAILED (a condition the engine cannot evaluate).
    pub settled: Option<(ExecutionStatus, String)>,
}

/// Queues an execution inside the fan-out transaction; `false` when the flow already has one for
/// this delivery.
pub async fn queue(
    conn: &mut AnyConnection,
    e: &NewExecution<'_>,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let (status, finished, duration, due) = match &e.settled {
        Some((status, _)) => (*status, Some(now), Some(0i64), None),
        None => (ExecutionStatus::Pending, None, None, Some(now)),
    };
    let r = sqlx::query(QUEUE)
        .bind(new_id())
        .bind(e.workspace_id)
        .bind(e.flow_id)
        .bind(e.webhook_id)
        .bind(e.event_type)
        .bind(status.as_str())
        .bind(e.settled.as_ref().map(|(_, reason)| reason.as_str()))
        .bind(now)
        .bind(finished)
        .bind(duration)
        .bind(due)
        .bind(e.flow_version)
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected() > 0)
}

/// An execution claimed by a worker.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub workspace_id: String,
    pub flow_id: String,
    pub webhook_id: String,
    pub event_type: String,
    /// The steps recorded so far (completed actions).
    pub steps: Vec<Value>,
    /// The first action that has not completed.
    pub next_step: usize,
    /// This attempt's number (1 for the first).
    pub attempt: u32,
    pub flow_version: Option<i64>,
}

/// Claims up to `limit` executions that are due, under a lease until `lease_until`.
pub async fn claim_due(
    db: &Db,
    owner: &str,
    lease_until: i64,
    limit: i64,
) -> Result<Vec<Claimed>, sqlx::Error> {
    let sql = match db.backend() {
        Backend::Postgres => CLAIM_DUE_POSTGRES,
        Backend::Sqlite => CLAIM_DUE_SQLITE,
    };
    let rows = sqlx::query(sql)
        .bind(owner)
        .bind(lease_until)
        .bind(now_millis())
        .bind(limit)
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|r| {
            let steps: String = r.try_get("steps")?;
            let next_step: Option<i64> = r.try_get("next_step")?;
            let attempts: Option<i64> = r.try_get("attempts")?;
            Ok(Claimed {
                id: r.try_get("id")?,
                workspace_id: r.try_get("workspace_id")?,
                flow_id: r.try_get("flow_id")?,
                webhook_id: r.try_get("webhook_id")?,
                event_type: r.try_get("event_type")?,
                steps: serde_json::from_str(&steps).unwrap_or_default(),
                next_step: next_step.unwrap_or(0).max(0) as usize,
                attempt: attempts.unwrap_or(1).max(1) as u32,
                flow_version: r.try_get("flow_version")?,
            })
        })
        .collect()
}

/// Records a completed step and renews the lease; `false` when the lease was lost.
pub async fn checkpoint(
    db: &Db,
    id: &str,
    owner: &str,
    next_step: usize,
    steps: &[Value],
    lease_until: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(CHECKPOINT)
        .bind(next_step as i64)
        .bind(Value::Array(steps.to_vec()).to_string())
        .bind(lease_until)
        .bind(id)
        .bind(owner)
        .execute(db.pool())
        .await?;
    Ok(r.rows_affected() > 0)
}

/// Final state (SUCCEEDED, FAILED or SKIPPED); `false` when the lease was lost.
pub async fn complete(
    db: &Db,
    id: &str,
    owner: &str,
    status: ExecutionStatus,
    steps: &[Value],
    next_step: usize,
    error: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(COMPLETE)
        .bind(status.as_str())
        .bind(Value::Array(steps.to_vec()).to_string())
        .bind(error)
        .bind(now_millis())
        .bind(next_step as i64)
        .bind(id)
        .bind(owner)
        .execute(db.pool())
        .await?;
    Ok(r.rows_affected() > 0)
}

/// Schedules another attempt at `at`, resuming at `next_step`.
pub async fn retry_later(
    db: &Db,
    id: &str,
    owner: &str,
    steps: &[Value],
    next_step: usize,
    error: &str,
    at: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(RETRY_LATER)
        .bind(Value::Array(steps.to_vec()).to_string())
        .bind(error)
        .bind(next_step as i64)
        .bind(at)
        .bind(id)
        .bind(owner)
        .execute(db.pool())
        .await?;
    Ok(r.rows_affected() > 0)
}

/// Hands an execution back at once (graceful shutdown); the attempt does not count.
pub async fn release(db: &Db, id: &str, owner: &str) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(RELEASE)
        .bind(now_millis())
        .bind(id)
        .bind(owner)
        .execute(db.pool())
        .await?;
    Ok(r.rows_affected() > 0)
}

/// Extends the lease of every execution this worker runs; returns how many it holds.
pub async fn heartbeat(db: &Db, owner: &str, lease_until: i64) -> Result<u64, sqlx::Error> {
    let r = sqlx::query(HEARTBEAT)
        .bind(lease_until)
        .bind(owner)
        .execute(db.pool())
        .await?;
    Ok(r.rows_affected())
}

/// Executions whose lease ran out (their worker died) become due again at once; returns how many.
pub async fn reclaim_expired(db: &Db) -> Result<u64, sqlx::Error> {
    let r = sqlx::query(RECLAIM_EXPIRED)
        .bind(now_millis())
        .execute(db.pool())
        .await?;
    Ok(r.rows_affected())
}

/// Runs an earlier release left RUNNING without a lease and older than `stale_before` are
/// closed as FAILED (that release ran flows at most once).
pub async fn fail_stale_unleased(db: &Db, stale_before: i64) -> Result<u64, sqlx::Error> {
    let r = sqlx::query(FAIL_STALE_UNLEASED)
        .bind(now_millis())
        .bind(stale_before)
        .execute(db.pool())
        .await?;
    Ok(r.rows_affected())
}

/// When the next queued execution is due (`None`: nothing queued).
pub async fn next_due(db: &Db) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query(NEXT_DUE).fetch_one(db.pool()).await?.try_get(0)
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
    /// Attempts so far (absent for runs recorded before migration 3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i64>,
    /// When a RETRY or PENDING execution runs next.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
}

fn from_row(r: &AnyRow) -> Result<ExecutionEntry, sqlx::Error> {
    let steps: String = r.try_get("steps")?;
    let status: String = r.try_get("status")?;
    let next_attempt_at: Option<i64> = r.try_get("next_attempt_at")?;
    Ok(ExecutionEntry {
        id: r.try_get("id")?,
        flow_id: r.try_get("flow_id")?,
        webhook_id: r.try_get("webhook_id")?,
        event_type: r.try_get("event_type")?,
        next_attempt_at: if matches!(status.as_str(), "PENDING" | "RETRY") {
            rfc3339_opt(next_attempt_at)
        } else {
            None
        },
        status,
        steps: serde_json::from_str(&steps).unwrap_or(Value::Null),
        error: r.try_get("error")?,
        started_at: rfc3339(r.try_get("started_at")?),
        finished_at: rfc3339_opt(r.try_get("finished_at")?),
        duration_ms: r.try_get("duration_ms")?,
        attempts: r.try_get("attempts")?,
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
const QUEUE: &str = "INSERT INTO flow_executions (id, workspace_id, flow_id, webhook_id, event_type, status, steps, error, started_at, finished_at, duration_ms, attempts, next_step, next_attempt_at, flow_version)
         VALUES ($1, $2, $3, $4, $5, $6, '[]', $7, $8, $9, $10, 0, 0, $11, $12)
         ON CONFLICT (flow_id, webhook_id) DO NOTHING";
#[cfg(test)]
const CLAIM_COLUMNS: &str =
    "id, workspace_id, flow_id, webhook_id, event_type, steps, next_step, attempts, flow_version";
/// PostgreSQL skips rows other replicas are claiming.
pub(crate) const CLAIM_DUE_POSTGRES: &str = "UPDATE flow_executions SET status = 'RUNNING', lease_owner = $1, lease_until = $2,
             attempts = COALESCE(attempts, 0) + 1,
             started_at = CASE WHEN COALESCE(attempts, 0) = 0 THEN $3 ELSE started_at END
         WHERE id IN (SELECT id FROM flow_executions
                      WHERE status IN ('PENDING', 'RETRY') AND next_attempt_at <= $3
                      ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED)
         RETURNING id, workspace_id, flow_id, webhook_id, event_type, steps, next_step, attempts, flow_version";
/// SQLite serialises writers anyway.
pub(crate) const CLAIM_DUE_SQLITE: &str = "UPDATE flow_executions SET status = 'RUNNING', lease_owner = $1, lease_until = $2,
             attempts = COALESCE(attempts, 0) + 1,
             started_at = CASE WHEN COALESCE(attempts, 0) = 0 THEN $3 ELSE started_at END
         WHERE id IN (SELECT id FROM flow_executions
                      WHERE status IN ('PENDING', 'RETRY') AND next_attempt_at <= $3
                      ORDER BY next_attempt_at LIMIT $4)
         RETURNING id, workspace_id, flow_id, webhook_id, event_type, steps, next_step, attempts, flow_version";
const CHECKPOINT: &str = "UPDATE flow_executions SET next_step = $1, steps = $2, lease_until = $3
         WHERE id = $4 AND lease_owner = $5 AND status = 'RUNNING'";
const COMPLETE: &str = "UPDATE flow_executions SET status = $1, steps = $2, error = $3, finished_at = $4, duration_ms = $4 - started_at,
             next_step = $5, lease_owner = NULL, lease_until = NULL, next_attempt_at = NULL
         WHERE id = $6 AND lease_owner = $7 AND status = 'RUNNING'";
const RETRY_LATER: &str = "UPDATE flow_executions SET status = 'RETRY', steps = $1, error = $2, next_step = $3, next_attempt_at = $4,
             lease_owner = NULL, lease_until = NULL
         WHERE id = $5 AND lease_owner = $6 AND status = 'RUNNING'";
const RELEASE: &str = "UPDATE flow_executions SET status = 'RETRY', next_attempt_at = $1, lease_owner = NULL, lease_until = NULL,
             attempts = attempts - 1
         WHERE id = $2 AND lease_owner = $3 AND status = 'RUNNING'";
const HEARTBEAT: &str =
    "UPDATE flow_executions SET lease_until = $1 WHERE lease_owner = $2 AND status = 'RUNNING'";
const RECLAIM_EXPIRED: &str = "UPDATE flow_executions SET status = 'RETRY', next_attempt_at = $1, lease_owner = NULL, lease_until = NULL,
             error = 'interrupted: the worker running it stopped; resumed at its next step'
         WHERE status = 'RUNNING' AND lease_until < $1";
const FAIL_STALE_UNLEASED: &str = "UPDATE flow_executions SET status = 'FAILED', error = 'interrupted: the process stopped while the flow ran', finished_at = $1
         WHERE status = 'RUNNING' AND lease_until IS NULL AND started_at < $2";
const NEXT_DUE: &str =
    "SELECT MIN(next_attempt_at) FROM flow_executions WHERE status IN ('PENDING', 'RETRY')";
const LIST: &str = "SELECT id, flow_id, webhook_id, event_type, status, steps, error, started_at, finished_at, duration_ms, attempts, next_attempt_at FROM flow_executions
         WHERE workspace_id = $1 AND ($2 = '' OR flow_id = $2) AND ($3 = '' OR webhook_id = $3)
           AND ($4 = '' OR status = $4) AND ($5 = '' OR id < $5)
         ORDER BY id DESC LIMIT $6";
const GET: &str = "SELECT id, flow_id, webhook_id, event_type, status, steps, error, started_at, finished_at, duration_ms, attempts, next_attempt_at FROM flow_executions WHERE workspace_id = $1 AND id = $2";
const COUNTS: &str = "SELECT status, COUNT(*) AS n FROM flow_executions WHERE workspace_id = $1 AND started_at >= $2 GROUP BY status ORDER BY status";

/// The statements of this module, for the SQL contract.
pub(crate) const STATEMENTS: &[(&str, &str)] = &[
    ("executions::queue", QUEUE),
    ("executions::checkpoint", CHECKPOINT),
    ("executions::complete", COMPLETE),
    ("executions::retry_later", RETRY_LATER),
    ("executions::release", RELEASE),
    ("executions::heartbeat", HEARTBEAT),
    ("executions::reclaim_expired", RECLAIM_EXPIRED),
    ("executions::fail_stale_unleased", FAIL_STALE_UNLEASED),
    ("executions::next_due", NEXT_DUE),
    ("executions::list", LIST),
    ("executions::get", GET),
    ("executions::counts", COUNTS),
];

#[cfg(test)]
mod tests {
    #[test]
    fn claims_return_the_claim_columns() {
        for sql in [super::CLAIM_DUE_POSTGRES, super::CLAIM_DUE_SQLITE] {
            assert!(sql.ends_with(&format!("RETURNING {}", super::CLAIM_COLUMNS)));
        }
    }
}
