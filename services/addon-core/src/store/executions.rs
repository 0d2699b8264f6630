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

use super::Db;
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
    pub id: &'a str,
    pub workspace_id: &'a str,
    pub flow_id: &'a str,
    pub webhook_id: &'a str,
    pub event_type: &'a str,
    /// The flow's `updated_at` (its version) when queued.
    pub flow_version: i64,
    /// `Some((status, reason))`: recorded as finished at once: SKIPPED (conditions not met,
    /// add-on inactive) or FAILED (a condition the engine cannot evaluate).
    pub settled: Option<(ExecutionStatus, String)>,
    /// `Some((owner, lease_until))`: queued already claimed by that worker (its first attempt
    /// starts now, in the process that fanned it out); `None`: PENDING for any worker.
    pub claim: Option<(&'a str, i64)>,
}

/// One row of [`queue_many`]'s JSON parameter.
#[derive(Serialize)]
struct QueueRow<'a> {
    id: &'a str,
    workspace_id: &'a str,
    flow_id: &'a str,
    webhook_id: &'a str,
    event_type: &'a str,
    status: &'static str,
    error: Option<&'a str>,
    started_at: i64,
    finished_at: Option<i64>,
    duration_ms: Option<i64>,
    attempts: i64,
    next_attempt_at: Option<i64>,
    flow_version: i64,
    lease_owner: Option<&'a str>,
    lease_until: Option<i64>,
}

/// Queues many executions in the fan-out transaction, [`super::MANY`] per statement; returns
/// the ids inserted (a flow that already has an execution for the delivery inserts nothing).
pub async fn queue_many(
    conn: &mut AnyConnection,
    rows: &[NewExecution<'_>],
    now: i64,
) -> Result<std::collections::HashSet<String>, sqlx::Error> {
    let mut inserted = std::collections::HashSet::new();
    let sql = QUEUE_MANY.get(super::backend_of(conn));
    for chunk in rows.chunks(super::MANY) {
        let batch: Vec<QueueRow> = chunk
            .iter()
            .map(|e| {
                let (status, finished, duration, due, attempts) = match (&e.settled, e.claim) {
                    (Some((status, _)), _) => (*status, Some(now), Some(0i64), None, 0i64),
                    (None, Some(_)) => (ExecutionStatus::Running, None, None, None, 1),
                    (None, None) => (ExecutionStatus::Pending, None, None, Some(now), 0),
                };
                let (owner, until) = match (&e.settled, e.claim) {
                    (None, Some((owner, until))) => (Some(owner), Some(until)),
                    _ => (None, None),
                };
                QueueRow {
                    id: e.id,
                    workspace_id: e.workspace_id,
                    flow_id: e.flow_id,
                    webhook_id: e.webhook_id,
                    event_type: e.event_type,
                    status: status.as_str(),
                    error: e.settled.as_ref().map(|(_, reason)| reason.as_str()),
                    started_at: now,
                    finished_at: finished,
                    duration_ms: duration,
                    attempts,
                    next_attempt_at: due,
                    flow_version: e.flow_version,
                    lease_owner: owner,
                    lease_until: until,
                }
            })
            .collect();
        let batch = super::json_param(&batch)?;
        // Placeholders only; the rows are bound.
        for r in sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(batch)
            .fetch_all(&mut *conn)
            .await?
        {
            inserted.insert(r.try_get::<String, _>(0)?);
        }
    }
    Ok(inserted)
}

/// The insert of a batch of executions (one JSON parameter; see [`super::json_rows`]).
pub(crate) fn queue_many_sql(backend: Backend) -> String {
    use super::Col::{BigInt, Text};
    let rows = super::json_rows(
        backend,
        &[
            ("id", Text),
            ("workspace_id", Text),
            ("flow_id", Text),
            ("webhook_id", Text),
            ("event_type", Text),
            ("status", Text),
            ("error", Text),
            ("started_at", BigInt),
            ("finished_at", BigInt),
            ("duration_ms", BigInt),
            ("attempts", BigInt),
            ("next_attempt_at", BigInt),
            ("flow_version", BigInt),
            ("lease_owner", Text),
            ("lease_until", BigInt),
        ],
    );
    // SQLite needs the WHERE to tell the upsert's ON CONFLICT from a join's ON.
    format!(
        "INSERT INTO flow_executions (id, workspace_id, flow_id, webhook_id, event_type, status, steps, error, started_at, finished_at, duration_ms, attempts, next_step, next_attempt_at, flow_version, lease_owner, lease_until)
         SELECT v.id, v.workspace_id, v.flow_id, v.webhook_id, v.event_type, v.status, '[]', v.error, v.started_at, v.finished_at, v.duration_ms, v.attempts, 0, v.next_attempt_at, v.flow_version, v.lease_owner, v.lease_until
         FROM ({rows}) AS v WHERE 1 = 1
         ON CONFLICT (flow_id, webhook_id) DO NOTHING RETURNING id"
    )
}

static QUEUE_MANY: super::PerBackend = super::PerBackend::new(queue_many_sql);

/// What an execution records when it moves on: a completed step, an outcome, a later attempt
/// or its hand-back at shutdown. Written in batches by [`write_many`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteKind {
    /// A completed step; the lease is renewed until the given time.
    Checkpoint { lease_until: i64 },
    /// The final state: SUCCEEDED, FAILED or SKIPPED.
    Complete { status: ExecutionStatus },
    /// Another attempt at this time.
    Retry { at: i64 },
    /// Handed back at once (graceful shutdown); the attempt does not count.
    Release,
}

#[derive(Debug, Clone)]
pub struct ExecutionWrite {
    pub id: String,
    pub owner: std::sync::Arc<str>,
    pub kind: WriteKind,
    /// The steps recorded so far, as JSON text (unused by `Release`).
    pub steps: String,
    pub next_step: usize,
    pub error: Option<String>,
}

/// One row of [`write_many`]'s JSON parameter.
#[derive(Serialize)]
struct WriteRow<'a> {
    id: &'a str,
    owner: &'a str,
    status: &'static str,
    steps: Option<&'a str>,
    error: Option<&'a str>,
    set_error: i64,
    next_step: i64,
    next_attempt_at: Option<i64>,
    lease_until: Option<i64>,
    finished_at: Option<i64>,
    give_back: i64,
}

/// Applies many executions' writes, [`super::MANY`] per statement; each applies only while its
/// worker still holds the lease. Returns the ids written (the others lost their lease to
/// another worker).
///
/// Writes that take more than one statement are applied in one transaction: one commit, so
/// one WAL flush for the batch instead of one per statement (under load the flushes, not the
/// statements, are what executions wait for), and a failure applies none of them (the writer
/// then retries them one by one).
pub async fn write_many(
    db: &Db,
    writes: &[ExecutionWrite],
) -> Result<std::collections::HashSet<String>, sqlx::Error> {
    if writes.len() <= super::MANY {
        let mut conn = db.pool().acquire().await?;
        return write_chunks(&mut conn, writes).await;
    }
    let mut tx = db.pool().begin().await?;
    let written = write_chunks(&mut tx, writes).await?;
    tx.commit().await?;
    Ok(written)
}

async fn write_chunks(
    conn: &mut AnyConnection,
    writes: &[ExecutionWrite],
) -> Result<std::collections::HashSet<String>, sqlx::Error> {
    let mut written = std::collections::HashSet::new();
    let now = now_millis();
    let sql = WRITE_MANY.get(super::backend_of(conn));
    for chunk in writes.chunks(super::MANY) {
        let batch: Vec<WriteRow> = chunk
            .iter()
            .map(|w| {
                // (status, next_attempt_at, lease_until, finished_at, give_back, set_error)
                let (status, due, until, finished, give_back, set_error) = match &w.kind {
                    WriteKind::Checkpoint { lease_until } => (
                        ExecutionStatus::Running,
                        None,
                        Some(*lease_until),
                        None,
                        0i64,
                        0i64,
                    ),
                    WriteKind::Complete { status } => (*status, None, None, Some(now), 0, 1),
                    WriteKind::Retry { at } => {
                        (ExecutionStatus::Retry, Some(*at), None, None, 0, 1)
                    }
                    WriteKind::Release => (ExecutionStatus::Retry, Some(now), None, None, 1, 0),
                };
                WriteRow {
                    id: &w.id,
                    owner: &w.owner,
                    status: status.as_str(),
                    steps: (w.kind != WriteKind::Release).then_some(w.steps.as_str()),
                    error: w.error.as_deref(),
                    set_error,
                    next_step: w.next_step as i64,
                    next_attempt_at: due,
                    lease_until: until,
                    finished_at: finished,
                    give_back,
                }
            })
            .collect();
        let batch = super::json_param(&batch)?;
        // Placeholders only; the rows are bound. Planned at each execution, like the key lists
        // of `store::fetch_in` (see there): it joins the executions table by the batch's ids.
        for r in sqlx::query(sqlx::AssertSqlSafe(sql))
            .persistent(false)
            .bind(batch)
            .fetch_all(&mut *conn)
            .await?
        {
            written.insert(r.try_get::<String, _>(0)?);
        }
    }
    Ok(written)
}

/// The update of a batch of executions (`v` holds one row per execution, from one JSON
/// parameter; see [`super::json_rows`]).
pub(crate) fn write_many_sql(backend: Backend) -> String {
    use super::Col::{BigInt, Text};
    let columns = [
        ("id", Text),
        ("owner", Text),
        ("status", Text),
        ("steps", Text),
        ("error", Text),
        ("set_error", BigInt),
        ("next_step", BigInt),
        ("next_attempt_at", BigInt),
        ("lease_until", BigInt),
        ("finished_at", BigInt),
        ("give_back", BigInt),
    ];
    let rows = super::json_rows(backend, &columns);
    let names: Vec<String> = columns.iter().map(|(c, _)| format!("w.{c}")).collect();
    // `v` is materialised and carries the status a written row must have: compared with a
    // literal, the planner may scan the partial index of every RUNNING row (and the dead entries
    // churn leaves in it) instead of probing the primary key once per row written.
    format!(
        "WITH v AS MATERIALIZED (SELECT {}, 'RUNNING' AS held FROM ({rows}) AS w){WRITE_MANY_TAIL}",
        names.join(", ")
    )
}

const WRITE_MANY_TAIL: &str = "
         UPDATE flow_executions SET status = v.status,
             steps = COALESCE(v.steps, flow_executions.steps),
             error = CASE WHEN v.set_error = 1 THEN v.error ELSE flow_executions.error END,
             next_step = CASE WHEN v.give_back = 1 THEN flow_executions.next_step ELSE v.next_step END,
             next_attempt_at = v.next_attempt_at,
             lease_owner = CASE WHEN v.status = 'RUNNING' THEN flow_executions.lease_owner ELSE NULL END,
             lease_until = v.lease_until,
             finished_at = v.finished_at,
             duration_ms = CASE WHEN v.finished_at IS NULL THEN flow_executions.duration_ms ELSE v.finished_at - flow_executions.started_at END,
             attempts = flow_executions.attempts - v.give_back
         FROM v
         WHERE flow_executions.id = v.id AND flow_executions.lease_owner = v.owner AND flow_executions.status = v.held
         RETURNING flow_executions.id";

static WRITE_MANY: super::PerBackend = super::PerBackend::new(write_many_sql);

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

/// Extends the lease of every execution this worker runs; returns how many it holds.
pub async fn heartbeat(db: &Db, owner: &str, lease_until: i64) -> Result<u64, sqlx::Error> {
    let sql = match db.backend() {
        Backend::Postgres => HEARTBEAT_POSTGRES,
        Backend::Sqlite => HEARTBEAT_SQLITE,
    };
    let r = sqlx::query(sql)
        .bind(lease_until)
        .bind(owner)
        .execute(db.pool())
        .await?;
    Ok(r.rows_affected())
}

/// Executions whose lease ran out (their worker died) become due again at once; returns how many.
pub async fn reclaim_expired(db: &Db) -> Result<u64, sqlx::Error> {
    let sql = match db.backend() {
        Backend::Postgres => RECLAIM_EXPIRED_POSTGRES,
        Backend::Sqlite => RECLAIM_EXPIRED_SQLITE,
    };
    let r = sqlx::query(sql)
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

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
    /// Only runs started at or after this time (epoch milliseconds).
    pub since: Option<i64>,
}

/// Newest first.
pub async fn list(
    db: &Db,
    workspace_id: &str,
    f: &ExecutionFilter<'_>,
    limit: i64,
) -> Result<Vec<ExecutionEntry>, sqlx::Error> {
    let since = f.since.map(super::id_floor);
    let filters = [
        f.flow_id,
        f.webhook_id,
        f.status,
        f.before,
        since.as_deref(),
    ];
    let present: Vec<(&str, bool)> = LIST_FILTERS
        .iter()
        .zip(filters)
        .map(|((_, c), v)| (*c, v.is_some()))
        .collect();
    let sql = super::filtered_sql(LIST_HEAD, &present, LIST_TAIL);
    // Placeholders only; every value is bound.
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(workspace_id);
    for v in filters.into_iter().flatten() {
        q = q.bind(v);
    }
    let rows = q.bind(limit).fetch_all(db.pool()).await?;
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

/// The work waiting in the queue, as the backlog endpoint and metrics report it (shared by
/// every replica: one database, one queue).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Backlog {
    /// Deliveries stored but not yet fanned out to their flows.
    pub queued_deliveries: i64,
    /// Executions due now (PENDING, or RETRY whose attempt is due).
    pub due: i64,
    /// Executions whose next attempt is scheduled later (RETRY with backoff).
    pub scheduled: i64,
    /// Executions running under a worker's lease.
    pub running: i64,
    /// Age of the oldest waiting work (a queued delivery or a due execution), in milliseconds.
    pub oldest_ms: i64,
}

impl Backlog {
    /// Work that wants an executor now: what scaling should drain.
    pub fn waiting(&self) -> i64 {
        self.queued_deliveries + self.due
    }
}

/// Samples the backlog in one statement: each part is an index range (the queue's primary
/// key, the due and leased partial indexes), bounded by the backlog, not by the table.
pub async fn backlog(db: &Db, now: i64) -> Result<Backlog, sqlx::Error> {
    let r = sqlx::query(BACKLOG).bind(now).fetch_one(db.pool()).await?;
    let oldest_due: Option<i64> = r.try_get("oldest_due")?;
    let oldest_queued: Option<String> = r.try_get("oldest_queued")?;
    let oldest = [
        oldest_due,
        oldest_queued.as_deref().and_then(super::id_millis),
    ]
    .into_iter()
    .flatten()
    .min();
    Ok(Backlog {
        queued_deliveries: r.try_get("queued")?,
        due: r.try_get("due")?,
        scheduled: r.try_get("scheduled")?,
        running: r.try_get("running")?,
        oldest_ms: oldest.map_or(0, |t| (now - t).max(0)),
    })
}

/// Executions per status queued since a time (by their time-ordered id).
pub async fn counts(
    db: &Db,
    workspace_id: &str,
    since: i64,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let rows = sqlx::query(COUNTS)
        .bind(workspace_id)
        .bind(super::id_floor(since))
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("status")?, r.try_get("n")?)))
        .collect()
}

/// Runs per hour and status since `since`: (hour as epoch milliseconds, status, count).
pub async fn per_hour(
    db: &Db,
    workspace_id: &str,
    since: i64,
) -> Result<Vec<(i64, String, i64)>, sqlx::Error> {
    let rows = sqlx::query(PER_HOUR)
        .bind(workspace_id)
        .bind(super::id_floor(since))
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get::<i64, _>("h")? * 3_600_000,
                r.try_get("status")?,
                r.try_get("n")?,
            ))
        })
        .collect()
}

/// One flow's runs since a time: how many, how many failed, and how long they took.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlowStats {
    pub flow_id: String,
    pub runs: i64,
    pub failed: i64,
    /// Mean of the runs that recorded a duration.
    pub average_ms: Option<i64>,
    pub slowest_ms: Option<i64>,
}

pub async fn flow_stats(
    db: &Db,
    workspace_id: &str,
    since: i64,
) -> Result<Vec<FlowStats>, sqlx::Error> {
    let rows = sqlx::query(FLOW_STATS)
        .bind(workspace_id)
        .bind(super::id_floor(since))
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|r| {
            let timed: i64 = r.try_get("timed")?;
            let total: Option<i64> = r.try_get("total_ms")?;
            Ok(FlowStats {
                flow_id: r.try_get("flow_id")?,
                runs: r.try_get("runs")?,
                failed: r.try_get("failed")?,
                average_ms: total.filter(|_| timed > 0).map(|t| t / timed),
                slowest_ms: r.try_get("slowest")?,
            })
        })
        .collect()
}

/// Queues a FAILED run again, from the step that failed (the steps that succeeded are not
/// repeated), as a new set of attempts; false when it is not (or no longer) FAILED.
pub async fn rerun(db: &Db, workspace_id: &str, id: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(RERUN)
        .bind(workspace_id)
        .bind(id)
        .bind(now_millis())
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() == 1)
}

// Every statement this module issues, named for the SQL contract (see `store::contract`).
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
/// The lease renewal skips rows it would wait for. A row locked now is being written by its
/// own worker (a checkpoint renews the lease, a completion ends it); waiting for it deadlocked:
/// the renewal locks rows in scan order and a batch of writes in its own, so under load each
/// waited for the other until PostgreSQL's deadlock check, a second later, cancelled the
/// renewal (and held the batch, and every execution waiting on it, for that second).
pub(crate) const HEARTBEAT_POSTGRES: &str = "UPDATE flow_executions SET lease_until = $1
         WHERE id IN (SELECT id FROM flow_executions WHERE lease_owner = $2 AND status = 'RUNNING'
                      FOR UPDATE SKIP LOCKED)";
/// SQLite serialises writers anyway.
pub(crate) const HEARTBEAT_SQLITE: &str =
    "UPDATE flow_executions SET lease_until = $1 WHERE lease_owner = $2 AND status = 'RUNNING'";
/// Skips locked rows for the same reason as [`HEARTBEAT_POSTGRES`]: a row locked now is being
/// written by the worker that holds it, and the next pass sees it again if its lease is still out.
pub(crate) const RECLAIM_EXPIRED_POSTGRES: &str = "UPDATE flow_executions SET status = 'RETRY', next_attempt_at = $1, lease_owner = NULL, lease_until = NULL,
             error = 'interrupted: the worker running it stopped; resumed at its next step'
         WHERE id IN (SELECT id FROM flow_executions WHERE status = 'RUNNING' AND lease_until < $1
                      FOR UPDATE SKIP LOCKED)";
pub(crate) const RECLAIM_EXPIRED_SQLITE: &str = "UPDATE flow_executions SET status = 'RETRY', next_attempt_at = $1, lease_owner = NULL, lease_until = NULL,
             error = 'interrupted: the worker running it stopped; resumed at its next step'
         WHERE status = 'RUNNING' AND lease_until < $1";
const FAIL_STALE_UNLEASED: &str = "UPDATE flow_executions SET status = 'FAILED', error = 'interrupted: the process stopped while the flow ran', finished_at = $1
         WHERE status = 'RUNNING' AND lease_until IS NULL AND started_at < $2";
const NEXT_DUE: &str =
    "SELECT MIN(next_attempt_at) FROM flow_executions WHERE status IN ('PENDING', 'RETRY')";
const LIST_HEAD: &str = "SELECT id, flow_id, webhook_id, event_type, status, steps, error, started_at, finished_at, duration_ms, attempts, next_attempt_at FROM flow_executions
         WHERE workspace_id = $1";
/// The optional filters of [`list`], in binding order: (name, condition).
pub(crate) const LIST_FILTERS: &[(&str, &str)] = &[
    ("flow", "flow_id = ?"),
    ("webhook", "webhook_id = ?"),
    ("status", "status = ?"),
    ("before", "id < ?"),
    ("since", "id >= ?"),
];
const LIST_TAIL: &str = "ORDER BY id DESC LIMIT {next}";

/// Every shape of [`list`], for the SQL contract.
pub(crate) fn list_statements() -> Vec<(String, String)> {
    super::filtered_variants("executions::list", LIST_HEAD, LIST_FILTERS, LIST_TAIL)
}
const GET: &str = "SELECT id, flow_id, webhook_id, event_type, status, steps, error, started_at, finished_at, duration_ms, attempts, next_attempt_at FROM flow_executions WHERE workspace_id = $1 AND id = $2";
/// One index-only range per status on `(workspace_id, status, id)`, whatever the workspace's
/// history holds; statuses with no executions are left out.
const PER_HOUR: &str = "SELECT started_at / 3600000 AS h, status, COUNT(*) AS n FROM flow_executions
         WHERE workspace_id = $1 AND id >= $2 GROUP BY started_at / 3600000, status ORDER BY h, status";
const FLOW_STATS: &str = "SELECT flow_id, COUNT(*) AS runs,
             SUM(CASE WHEN status = 'FAILED' THEN 1 ELSE 0 END) AS failed,
             MAX(duration_ms) AS slowest, CAST(SUM(duration_ms) AS BIGINT) AS total_ms,
             COUNT(duration_ms) AS timed
         FROM flow_executions WHERE workspace_id = $1 AND id >= $2 GROUP BY flow_id";
const RERUN: &str =
    "UPDATE flow_executions SET status = 'PENDING', attempts = 0, next_attempt_at = $3,
             error = NULL, finished_at = NULL, lease_owner = NULL, lease_until = NULL
         WHERE workspace_id = $1 AND id = $2 AND status = 'FAILED'";
const COUNTS: &str = "SELECT status, n FROM (
             SELECT s.status AS status, (SELECT COUNT(*) FROM flow_executions e WHERE e.workspace_id = $1 AND e.status = s.status AND e.id >= $2) AS n
             FROM (SELECT 'FAILED' AS status UNION ALL SELECT 'PENDING' UNION ALL SELECT 'RETRY' UNION ALL SELECT 'RUNNING' UNION ALL SELECT 'SKIPPED' UNION ALL SELECT 'SUCCEEDED') AS s
         ) AS c WHERE n > 0 ORDER BY status";

/// The statements of this module, for the SQL contract.
const BACKLOG: &str = "SELECT
             (SELECT COUNT(*) FROM webhook_queue) AS queued,
             (SELECT MIN(webhook_id) FROM webhook_queue) AS oldest_queued,
             (SELECT COUNT(*) FROM flow_executions WHERE status IN ('PENDING', 'RETRY') AND next_attempt_at <= $1) AS due,
             (SELECT COUNT(*) FROM flow_executions WHERE status IN ('PENDING', 'RETRY') AND next_attempt_at > $1) AS scheduled,
             (SELECT MIN(next_attempt_at) FROM flow_executions WHERE status IN ('PENDING', 'RETRY') AND next_attempt_at <= $1) AS oldest_due,
             (SELECT COUNT(*) FROM flow_executions WHERE status = 'RUNNING' AND lease_until IS NOT NULL) AS running";
pub(crate) const STATEMENTS: &[(&str, &str)] = &[
    ("executions::backlog", BACKLOG),
    ("executions::fail_stale_unleased", FAIL_STALE_UNLEASED),
    ("executions::next_due", NEXT_DUE),
    ("executions::get", GET),
    ("executions::counts", COUNTS),
    ("executions::per_hour", PER_HOUR),
    ("executions::flow_stats", FLOW_STATS),
    ("executions::rerun", RERUN),
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
