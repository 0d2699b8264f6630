//! The flow worker: durable, exactly-once-per-delivery flow execution at the database's speed.
//!
//! * **Fan-out.** Stored deliveries that await flows are claimed in a transaction that also
//!   queues one execution per matching flow (or records it SKIPPED with the reason) and marks
//!   the delivery PROCESSED: one statement claims up to [`FAN_OUT_BATCH`] deliveries, one reads
//!   the enabled flows of all their workspaces, one their installations, one inserts every
//!   execution. A crash leaves either the delivery pending or its executions queued;
//!   `(flow, delivery)` is unique, so a flow never runs twice for one delivery.
//! * **Hand-off.** Executions the fan-out can start at once (free executor slots in this
//!   process) are inserted already claimed under this worker's lease and start with what the
//!   fan-out read (delivery, flow, installation): no claim and no reads of their own. The rest
//!   are queued PENDING, and the other replicas are told (see [`wake`]).
//! * **Claims.** Due executions (PENDING, RETRY, or resumed after a dead worker's lease ran
//!   out) are claimed in batches that skip rows other replicas are claiming; their deliveries,
//!   flows and installations are read with one statement each for the batch.
//! * **Execution.** Each completed action but the last advances `next_step` in the row (a
//!   checkpoint), so after a crash the lease runs out and another worker resumes at the first
//!   action that had not completed: completed actions are never repeated. The one action in
//!   flight at a crash may be sent again (its outcome was never recorded); GENERIC_HTTP
//!   requests carry an `Idempotency-Key` that is the same on every attempt, so receivers can
//!   drop the repeat. Checkpoints and outcomes of many executions are written together
//!   ([`writer`]), each only while its worker still holds the lease.
//! * **Retries.** An action that fails transiently (timeout, connection failure, 429, 5xx,
//!   after the client's own quick retries) schedules another attempt with exponential backoff
//!   and jitter; a permanent failure (4xx, a template that does not render, a refused host) or
//!   the last attempt ends in FAILED with the error.

pub mod wake;
pub mod writer;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

use crate::app::AppState;
use crate::clockify::ApiRequest;
use crate::clockify::{ApiError, ApiTarget};
use crate::flows::eval::{
    HttpCall, RenderError, body_needs, conditions_match, render_action, render_http,
};
use crate::flows::model::FlowDefinition;
use crate::flows::template::{TemplateContext, TemplateError};
use crate::flows::{Action, ActionKind, sealed};
use crate::outbound::{OutboundError, WorkspaceAllowlist, excerpt, is_sensitive_header};
use crate::store::executions::{
    self, Claimed, ExecutionStatus, ExecutionWrite, NewExecution, WriteKind,
};
use crate::store::flows::{self, FlowRecord};
use crate::store::installations::{self, InstallStatus, Installation};
use crate::store::{allowlist, new_id, webhooks};
use crate::time::now_millis;
use writer::{WriteError, Writer};

/// A run an earlier release left RUNNING without a lease for longer than this is closed.
pub const STALE_CLAIM: Duration = Duration::from_secs(300);
/// Deliveries fanned out per transaction.
pub const FAN_OUT_BATCH: i64 = 64;
/// Fan-out transactions in flight at once on PostgreSQL. One transaction is five statements
/// and a commit, each waiting on the database: a single loop fanned out about 2,400 deliveries
/// a second while ingestion stored 4,400 (flows bench, 64 connections), with the database and
/// the server both short of busy. Loops claim different deliveries (`SKIP LOCKED`); one that
/// takes a full batch wakes the next. SQLite serialises writers, so it keeps one.
const FAN_OUT_LOOPS: usize = 3;
/// The safety-net poll: work is normally announced (see [`wake`]).
const IDLE_POLL: Duration = Duration::from_secs(5);
/// Longest response excerpt kept in an execution step.
const EXCERPT: usize = 2048;
/// The longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// Most executions claimed per statement.
const CLAIM_BATCH: usize = 64;

/// What the worker's tasks share.
#[derive(Clone)]
struct Engine {
    state: AppState,
    owner: Arc<str>,
    /// One permit per execution that may run at once in this process (`FLOW_CONCURRENCY`).
    slots: Arc<Semaphore>,
    tasks: TaskTracker,
    writer: Writer,
    announce: wake::Announce,
    /// When the fan-out next looks for deliveries an earlier release left PENDING.
    legacy: Arc<webhooks::LegacyPending>,
    targets: Arc<Targets>,
}

/// Runs the fan-out, the executor, the lease heartbeat and the cross-replica wake-up until
/// shutdown; running executions then stop at their next step and hand themselves back.
pub async fn run(state: AppState) {
    let announce = wake::Announce::default();
    let retried = {
        let state = state.clone();
        let announce = announce.clone();
        move |_at: i64| {
            // This executor re-reads when the next attempt is due; the others are told.
            state.execution_work.notify_one();
            announce.work();
        }
    };
    let (writer, mut writers) = Writer::start(state.db.clone(), 2, retried);
    let engine = Engine {
        owner: Arc::from(state.instance_id.as_str()),
        slots: Arc::new(Semaphore::new(state.config.flows.concurrency as usize)),
        tasks: TaskTracker::new(),
        writer,
        announce: announce.clone(),
        legacy: Arc::default(),
        targets: Arc::default(),
        state: state.clone(),
    };
    let loops = match state.db.backend() {
        crate::db::Backend::Postgres => FAN_OUT_LOOPS,
        crate::db::Backend::Sqlite => 1,
    };
    let fan_outs: Vec<_> = (0..loops)
        .map(|_| tokio::spawn(fan_out_loop(engine.clone())))
        .collect();
    let heartbeat = tokio::spawn(heartbeat_loop(state.clone()));
    let backlog = tokio::spawn(backlog_loop(state.clone()));
    let listener = tokio::spawn(wake::listener(state.clone()));
    let announcer = tokio::spawn(wake::announcer(state.clone(), announce));
    execute_loop(engine.clone()).await;
    for fan_out in fan_outs {
        let _ = fan_out.await;
    }
    // Running executions stop at their next step and hand themselves back; wait for that.
    engine.tasks.close();
    let grace = state.config.shutdown_timeout.max(Duration::from_secs(1));
    if tokio::time::timeout(grace, engine.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("flow executions did not stop in time; their leases will run out");
    }
    heartbeat.abort();
    backlog.abort();
    listener.abort();
    announcer.abort();
    drop(engine);
    // The writers finish what was handed to them once the last handle is gone.
    while writers.join_next().await.is_some() {}
    tracing::debug!("flow worker stopped");
}

async fn fan_out_loop(engine: Engine) {
    let state = &engine.state;
    loop {
        if state.shutdown.is_cancelled() {
            return;
        }
        match fan_out_once_in(&engine).await {
            Ok(FanOut { deliveries, .. }) if deliveries as i64 == FAN_OUT_BATCH => {
                // More is waiting: another loop may take the next batch meanwhile.
                state.flow_work.notify_one();
                continue;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "flow fan-out failed; retrying"),
        }
        tokio::select! {
            _ = state.flow_work.notified() => {}
            _ = tokio::time::sleep(IDLE_POLL) => {}
            _ = state.shutdown.cancelled() => return,
        }
    }
}

/// What one fan-out transaction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FanOut {
    pub deliveries: usize,
    /// Executions queued to run (started here at once, or left PENDING for any worker).
    pub queued: usize,
    /// Of those, started at once in this process.
    pub started: usize,
    /// Executions recorded SKIPPED (conditions not met, add-on inactive).
    pub skipped: usize,
    /// Executions recorded FAILED at once (a condition the engine cannot evaluate).
    pub failed: usize,
}

/// An execution with what it needs to run: read by the fan-out, or in one batch after a claim.
struct Prepared {
    claimed: Claimed,
    /// The delivery's body as stored (JSON text), parsed only while a condition is checked or
    /// an action rendered: text is a fraction of the parsed tree's size, and executions waiting
    /// for their slot's turn hold it. `None`: the delivery is no longer stored.
    body: Option<Arc<str>>,
    /// `None`: the flow was deleted.
    flow: Option<Arc<FlowRecord>>,
    /// Its workspace's API target, shared with the workspace's other executions in flight.
    access: Access,
    /// The executor slot it runs in, freed as soon as its last write is handed to the writers:
    /// the slot bounds work in flight (API calls), not commits waiting for a batch.
    slot: Slot,
}

/// What an execution may do in its workspace, decided from the installation when the
/// execution is read.
enum Access {
    Ready(Arc<ApiTarget>),
    Skip(&'static str),
    Fail(String),
}

/// The opened API targets of the workspaces whose executions are in flight: an installation's
/// token is decrypted once however many executions it has waiting for its rate limit, and the
/// opened token lives only while one of them holds it (the map keeps weak references).
#[derive(Default)]
struct Targets {
    opened: std::sync::Mutex<HashMap<String, Opened>>,
    /// Random keys of the fingerprints (compared within this process, never stored).
    seed: std::hash::RandomState,
}

struct Opened {
    /// Which stored token and `apiUrl` it was opened from: a reinstall is opened afresh.
    from: u64,
    target: std::sync::Weak<ApiTarget>,
}

impl Targets {
    /// The access of a workspace's executions; `open` decrypts the installation's token (once
    /// while any execution of the workspace holds the result).
    fn access(
        &self,
        installation: Option<&Installation>,
        open: impl FnOnce(&Installation) -> Result<ApiTarget, String>,
    ) -> Access {
        let i = match installation {
            Some(i) if i.status == InstallStatus::Active => i,
            Some(i) if i.status == InstallStatus::Inactive => {
                return Access::Skip("the add-on is inactive in this workspace");
            }
            _ => return Access::Skip("the add-on is not installed in this workspace"),
        };
        let from = std::hash::BuildHasher::hash_one(&self.seed, (&i.auth_token_enc, &i.api_url));
        let opened = |i| match open(i) {
            Ok(t) => Access::Ready(Arc::new(t)),
            Err(e) => Access::Fail(e),
        };
        let Ok(mut map) = self.opened.lock() else {
            return opened(i);
        };
        if let Some(o) = map.get(&i.workspace_id)
            && o.from == from
            && let Some(target) = o.target.upgrade()
        {
            return Access::Ready(target);
        }
        let access = opened(i);
        if let Access::Ready(target) = &access {
            if map.len() >= 64 && map.len().is_power_of_two() {
                map.retain(|_, o| o.target.strong_count() > 0);
            }
            let target = Arc::downgrade(target);
            map.insert(i.workspace_id.clone(), Opened { from, target });
        }
        access
    }
}

#[derive(Default)]
struct Slot(std::sync::Mutex<Option<OwnedSemaphorePermit>>);

impl Slot {
    fn holding(permit: OwnedSemaphorePermit) -> Self {
        Self(std::sync::Mutex::new(Some(permit)))
    }

    fn free(&self) {
        let permit = self.0.lock().map(|mut p| p.take()).unwrap_or_default();
        drop(permit);
    }
}

/// A fan-out pass without starting anything in this process (every execution is left PENDING):
/// for tests and tools.
pub async fn fan_out_once(state: &AppState) -> Result<FanOut, sqlx::Error> {
    let (writer, _writers) = Writer::start(state.db.clone(), 1, |_| {});
    let engine = Engine {
        owner: Arc::from(state.instance_id.as_str()),
        slots: Arc::new(Semaphore::new(0)),
        tasks: TaskTracker::new(),
        writer,
        announce: wake::Announce::default(),
        legacy: Arc::default(),
        targets: Arc::default(),
        state: state.clone(),
    };
    fan_out_once_in(&engine).await
}

/// Claims a batch of deliveries and queues their executions in one transaction; starts those
/// it has free slots for.
async fn fan_out_once_in(engine: &Engine) -> Result<FanOut, sqlx::Error> {
    let state = &engine.state;
    let begun = Instant::now();
    let mut tx = state.db.pool().begin().await?;
    let mut claimed =
        webhooks::claim_for_fan_out(&mut tx, state.db.backend(), FAN_OUT_BATCH, &engine.legacy)
            .await?;
    // Each body once, shared by its delivery's executions.
    let bodies: Vec<Arc<str>> = claimed
        .iter_mut()
        .map(|w| Arc::from(std::mem::take(&mut w.body)))
        .collect();
    let mut out = FanOut {
        deliveries: claimed.len(),
        ..FanOut::default()
    };
    if claimed.is_empty() {
        tx.commit().await?;
        return Ok(out);
    }
    let mut workspaces: Vec<&str> = claimed.iter().map(|w| w.workspace_id.as_str()).collect();
    workspaces.sort_unstable();
    workspaces.dedup();
    // On the transaction's own connection: holding one connection while waiting for another
    // deadlocks a pool of one.
    let mut flows_of: HashMap<String, Vec<Arc<FlowRecord>>> = HashMap::new();
    for (ws, flow) in flows::enabled_for(&mut tx, &workspaces).await? {
        flows_of.entry(ws).or_default().push(Arc::new(flow));
    }
    let installs: HashMap<String, Installation> = installations::get_many(&mut tx, &workspaces)
        .await?
        .into_iter()
        .map(|i| (i.workspace_id.clone(), i))
        .collect();
    let now = now_millis();
    let until = now + state.config.flows.lease.as_millis() as i64;
    struct Row {
        id: String,
        delivery: usize,
        flow: Arc<FlowRecord>,
        settled: Option<(ExecutionStatus, String)>,
        permit: Option<OwnedSemaphorePermit>,
        body: Arc<str>,
    }
    let mut rows: Vec<Row> = Vec::new();
    for (d, w) in claimed.iter().enumerate() {
        let Some(flows) = flows_of.get(&w.workspace_id) else {
            continue;
        };
        let matching: Vec<&Arc<FlowRecord>> = flows
            .iter()
            .filter(|f| {
                f.definition
                    .triggered_by(w.source.as_deref(), &w.event_type)
            })
            .collect();
        if matching.is_empty() {
            continue;
        }
        let inactive = match installs.get(&w.workspace_id) {
            Some(i) if i.status == InstallStatus::Active => None,
            Some(i) if i.status == InstallStatus::Inactive => {
                Some("the add-on is inactive in this workspace")
            }
            _ => Some("the add-on is not installed in this workspace"),
        };
        let body = &bodies[d];
        // Parsed for the first flow with conditions, and dropped with this delivery's turn.
        let mut parsed: Option<Value> = None;
        for flow in matching {
            let settled = match inactive {
                Some(reason) => Some((ExecutionStatus::Skipped, reason.to_owned())),
                None if flow.definition.conditions.is_empty() => None,
                None => {
                    let body = parsed.get_or_insert_with(|| parse_body(body));
                    match conditions_match(&flow.definition, body) {
                        Ok(true) => None,
                        Ok(false) => {
                            Some((ExecutionStatus::Skipped, "conditions not met".to_owned()))
                        }
                        Err(reason) => Some((ExecutionStatus::Failed, reason)),
                    }
                }
            };
            let permit = if settled.is_none() {
                engine.slots.clone().try_acquire_owned().ok()
            } else {
                None
            };
            rows.push(Row {
                id: new_id(),
                delivery: d,
                flow: flow.clone(),
                settled,
                permit,
                body: body.clone(),
            });
        }
    }
    let new: Vec<NewExecution<'_>> = rows
        .iter()
        .map(|r| {
            let w = &claimed[r.delivery];
            NewExecution {
                id: &r.id,
                workspace_id: &w.workspace_id,
                flow_id: &r.flow.id,
                webhook_id: &w.id,
                event_type: &w.event_type,
                flow_version: r.flow.version,
                settled: r.settled.clone(),
                claim: r.permit.as_ref().map(|_| (&*engine.owner, until)),
            }
        })
        .collect();
    let inserted = executions::queue_many(&mut tx, &new, now).await?;
    drop(new);
    tx.commit().await?;
    let mut left_pending = false;
    for r in rows {
        if !inserted.contains(&r.id) {
            continue;
        }
        match (&r.settled, r.permit) {
            (Some((ExecutionStatus::Skipped, _)), _) => out.skipped += 1,
            (Some(_), _) => out.failed += 1,
            (None, Some(permit)) => {
                out.queued += 1;
                out.started += 1;
                let w = &claimed[r.delivery];
                let job = Prepared {
                    claimed: Claimed {
                        id: r.id,
                        workspace_id: w.workspace_id.clone(),
                        flow_id: r.flow.id.clone(),
                        webhook_id: w.id.clone(),
                        event_type: w.event_type.clone(),
                        steps: Vec::new(),
                        next_step: 0,
                        attempt: 1,
                        flow_version: Some(r.flow.version),
                    },
                    body: Some(r.body),
                    access: engine
                        .targets
                        .access(installs.get(&w.workspace_id), |i| open_target(state, i)),
                    flow: Some(r.flow),
                    slot: Slot::default(),
                };
                start(engine, job, permit);
            }
            (None, None) => {
                out.queued += 1;
                left_pending = true;
            }
        }
    }
    if left_pending {
        state.execution_work.notify_one();
        engine.announce.work();
    }
    for (status, n) in [
        (ExecutionStatus::Skipped, out.skipped),
        (ExecutionStatus::Failed, out.failed),
    ] {
        if n > 0 {
            state
                .metrics
                .flows_executed
                .with_label_values(&[status.as_str()])
                .inc_by(n as u64);
        }
    }
    state
        .metrics
        .stage_seconds
        .with_label_values(&["fan_out"])
        .inc_by(begun.elapsed().as_secs_f64());
    tracing::debug!(
        deliveries = out.deliveries,
        queued = out.queued,
        started = out.started,
        skipped = out.skipped,
        failed = out.failed,
        "deliveries fanned out"
    );
    Ok(out)
}

fn start(engine: &Engine, mut job: Prepared, permit: OwnedSemaphorePermit) {
    let engine2 = engine.clone();
    job.slot = Slot::holding(permit);
    engine.tasks.spawn(async move {
        run_prepared(&engine2, job).await;
    });
}

/// How often the backlog gauges are sampled.
pub const BACKLOG_SAMPLE: Duration = Duration::from_secs(5);

/// Samples the backlog into the metrics every [`BACKLOG_SAMPLE`], so a scrape never waits on
/// the database.
async fn backlog_loop(state: AppState) {
    loop {
        if let Err(e) = sample_backlog(&state).await {
            tracing::warn!(error = %e, "cannot sample the flow backlog");
        }
        tokio::select! {
            _ = tokio::time::sleep(BACKLOG_SAMPLE) => {}
            _ = state.shutdown.cancelled() => return,
        }
    }
}

/// Reads the backlog and sets the gauges from it.
pub async fn sample_backlog(state: &AppState) -> Result<executions::Backlog, sqlx::Error> {
    let b = executions::backlog(&state.db, now_millis()).await?;
    state.metrics.set_backlog(&b);
    Ok(b)
}

async fn heartbeat_loop(state: AppState) {
    let lease = state.config.flows.lease;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(lease / 3) => {}
            _ = state.shutdown.cancelled() => return,
        }
        let until = now_millis() + lease.as_millis() as i64;
        if let Err(e) = executions::heartbeat(&state.db, &state.instance_id, until).await {
            tracing::warn!(error = %e, "flow lease heartbeat failed");
        }
    }
}

/// Makes executions of dead workers due again, and closes runs an earlier release left hanging.
async fn reclaim(state: &AppState) {
    match executions::reclaim_expired(&state.db).await {
        Ok(0) => {}
        Ok(n) => {
            state
                .metrics
                .flow_retries
                .with_label_values(&["interrupted"])
                .inc_by(n);
            tracing::warn!(
                executions = n,
                "resuming flow executions whose worker stopped"
            );
        }
        Err(e) => tracing::warn!(error = %e, "cannot reclaim expired flow leases"),
    }
    let stale_before = now_millis() - STALE_CLAIM.as_millis() as i64;
    if let Err(e) = executions::fail_stale_unleased(&state.db, stale_before).await {
        tracing::warn!(error = %e, "cannot close interrupted runs of an earlier release");
    }
}

async fn execute_loop(engine: Engine) {
    let state = &engine.state;
    let lease = state.config.flows.lease;
    let mut next_reclaim = tokio::time::Instant::now();
    loop {
        if state.shutdown.is_cancelled() {
            break;
        }
        if tokio::time::Instant::now() >= next_reclaim {
            reclaim(state).await;
            next_reclaim = tokio::time::Instant::now() + lease / 2;
        }
        // Claim only for free slots: wait for one, then take what else is free.
        let first = tokio::select! {
            p = engine.slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = state.shutdown.cancelled() => break,
        };
        let mut permits = vec![first];
        while permits.len() < CLAIM_BATCH {
            match engine.slots.clone().try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
        let until = now_millis() + lease.as_millis() as i64;
        let want = permits.len();
        match executions::claim_due(&state.db, &engine.owner, until, want as i64).await {
            Ok(batch) if !batch.is_empty() => {
                let got = batch.len();
                let ids: Vec<String> = batch.iter().map(|c| c.id.clone()).collect();
                match prepare(state, &engine.targets, batch).await {
                    Ok(jobs) => {
                        for job in jobs {
                            let Some(permit) = permits.pop() else { break };
                            start(&engine, job, permit);
                        }
                    }
                    Err(e) => {
                        // Hand them back at once (the attempt does not count), or the
                        // heartbeat would keep them leased to this worker.
                        tracing::warn!(error = %e, "cannot read claimed flow executions; handing them back");
                        let back = ids.into_iter().map(|id| ExecutionWrite {
                            id,
                            owner: engine.owner.clone(),
                            kind: WriteKind::Release,
                            steps: String::new(),
                            next_step: 0,
                            error: None,
                        });
                        if let Err(e) =
                            executions::write_many(&state.db, &back.collect::<Vec<_>>()).await
                        {
                            tracing::warn!(error = %e, "cannot hand back claimed flow executions; their leases will run out");
                        }
                    }
                }
                drop(permits);
                if got == want {
                    continue;
                }
            }
            Ok(_) => drop(permits),
            Err(e) => {
                drop(permits);
                tracing::warn!(error = %e, "cannot claim flow executions");
            }
        }
        let wait = match executions::next_due(&state.db).await {
            Ok(Some(at)) => Duration::from_millis((at - now_millis()).clamp(1, 5000) as u64),
            _ => IDLE_POLL,
        };
        let wait = wait.min(next_reclaim.saturating_duration_since(tokio::time::Instant::now()));
        tokio::select! {
            _ = state.execution_work.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = state.shutdown.cancelled() => break,
        }
    }
}

fn open_target(state: &AppState, i: &Installation) -> Result<ApiTarget, String> {
    state.target(i).map_err(|e| e.to_string())
}

/// A stored delivery's body as JSON (`null` if it is not: ingest only stores JSON).
fn parse_body(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// Reads what a batch of claimed executions needs: one statement each for their deliveries,
/// flows and installations.
async fn prepare(
    state: &AppState,
    targets: &Targets,
    batch: Vec<Claimed>,
) -> Result<Vec<Prepared>, sqlx::Error> {
    let mut conn = state.db.pool().acquire().await?;
    let mut ids: Vec<&str> = batch.iter().map(|c| c.webhook_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let bodies: HashMap<String, Arc<str>> = webhooks::bodies(&mut conn, &ids)
        .await?
        .into_iter()
        .map(|(id, body)| (id, Arc::from(body)))
        .collect();
    let mut ids: Vec<&str> = batch.iter().map(|c| c.flow_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let flows: HashMap<String, (String, Arc<FlowRecord>)> = flows::by_ids(&mut conn, &ids)
        .await?
        .into_iter()
        .map(|(ws, f)| (f.id.clone(), (ws, Arc::new(f))))
        .collect();
    let mut ids: Vec<&str> = batch.iter().map(|c| c.workspace_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let installs: HashMap<String, Installation> = installations::get_many(&mut conn, &ids)
        .await?
        .into_iter()
        .map(|i| (i.workspace_id.clone(), i))
        .collect();
    Ok(batch
        .into_iter()
        .map(|c| Prepared {
            body: bodies.get(&c.webhook_id).cloned(),
            // A flow of another workspace is no flow of this one.
            flow: flows
                .get(&c.flow_id)
                .filter(|(ws, _)| *ws == c.workspace_id)
                .map(|(_, f)| f.clone()),
            access: targets.access(installs.get(&c.workspace_id), |i| open_target(state, i)),
            claimed: c,
            slot: Slot::default(),
        })
        .collect())
}

/// How a claimed execution ended (for tests and logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done(ExecutionStatus),
    /// Scheduled for another attempt.
    Retry,
    /// Handed back for shutdown.
    Released,
    /// Another worker took it over (the lease ran out).
    LeaseLost,
}

async fn run_prepared(engine: &Engine, mut job: Prepared) {
    let state = &engine.state;
    if job.claimed.attempt == 1
        && let Some(queued) = crate::store::id_millis(&job.claimed.id)
    {
        state
            .metrics
            .flow_queue_delay
            .observe((now_millis() - queued).max(0) as f64 / 1000.0);
    }
    let begun = Instant::now();
    let result = execute(engine, &mut job).await;
    state
        .metrics
        .stage_seconds
        .with_label_values(&["execute"])
        .inc_by(begun.elapsed().as_secs_f64());
    let c = &job.claimed;
    match result {
        Ok(outcome) => {
            tracing::info!(
                workspace_id = %c.workspace_id, flow_id = %c.flow_id,
                execution_id = %c.id, webhook_id = %c.webhook_id,
                attempt = c.attempt, outcome = ?outcome, "flow execution"
            );
        }
        // The row stays RUNNING under our lease; when the lease runs out it is resumed.
        Err(e) => {
            tracing::error!(execution_id = %c.id, error = %e, "flow execution could not be recorded")
        }
    }
}

/// Delay before attempt `attempt + 1`: `base * 2^(attempt-1)`, at most an hour, with the upper
/// half jittered so retries of many executions spread out.
pub fn backoff(base: Duration, attempt: u32, jitter: f64) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let capped = exp.min(MAX_BACKOFF);
    capped.div_f64(2.0) + capped.div_f64(2.0).mul_f64(jitter.clamp(0.0, 1.0))
}

/// One step's failure: transient ones are retried later.
struct StepFailure {
    message: String,
    transient: bool,
}

/// Records one write of `c` through the group-commit writers; `false` when the lease was lost.
async fn record(
    engine: &Engine,
    c: &Claimed,
    kind: WriteKind,
    steps: &[Value],
    next_step: usize,
    error: Option<String>,
) -> Result<bool, WriteError> {
    engine
        .writer
        .write(ExecutionWrite {
            id: c.id.clone(),
            owner: engine.owner.clone(),
            kind,
            steps: serde_json::to_string(steps).unwrap_or_else(|_| "[]".into()),
            next_step,
            error,
        })
        .await
}

/// Runs a prepared execution from its next step to an outcome, recording it.
async fn execute(engine: &Engine, job: &mut Prepared) -> Result<Outcome, WriteError> {
    // The delivery is this execution's own reference: it is dropped as soon as the last action
    // is rendered, so an execution waiting for its workspace's rate limit or for Clockify holds
    // the small rendered request, not the webhook. It is parsed for each render and dropped
    // with it: no parsed tree lives across an await.
    let mut delivery = job.body.take();
    let job = &*job;
    let state = &engine.state;
    let c = &job.claimed;
    let mut steps: Vec<Value> = c.steps.iter().take(c.next_step).cloned().collect();
    let finish = |status: ExecutionStatus,
                  steps: Vec<Value>,
                  next: usize,
                  error: Option<String>| async move {
        job.slot.free();
        if !record(
            engine,
            c,
            WriteKind::Complete { status },
            &steps,
            next,
            error,
        )
        .await?
        {
            return Ok(Outcome::LeaseLost);
        }
        state
            .metrics
            .flows_executed
            .with_label_values(&[status.as_str()])
            .inc();
        Ok::<_, WriteError>(Outcome::Done(status))
    };
    let max_attempts = state.config.flows.max_attempts;
    if c.attempt > max_attempts {
        let last = "gave up: every attempt was interrupted before it could finish";
        return finish(
            ExecutionStatus::Failed,
            steps,
            c.next_step,
            Some(last.into()),
        )
        .await;
    }
    let Some(body) = delivery.as_deref() else {
        let msg = "the delivery is no longer stored (retention removed it)";
        return finish(
            ExecutionStatus::Failed,
            steps,
            c.next_step,
            Some(msg.into()),
        )
        .await;
    };
    let flow = match job.flow.as_deref() {
        None => {
            let msg = "the flow was deleted before it ran";
            return finish(
                ExecutionStatus::Skipped,
                steps,
                c.next_step,
                Some(msg.into()),
            )
            .await;
        }
        Some(f) if !f.definition.enabled => {
            let msg = "the flow was disabled before it ran";
            return finish(
                ExecutionStatus::Skipped,
                steps,
                c.next_step,
                Some(msg.into()),
            )
            .await;
        }
        Some(f) => f,
    };
    // Copied only to open sealed header values: executions waiting for a rate limit hold it.
    let definition: Cow<'_, FlowDefinition> = if sealed::has_sealed(&flow.definition) {
        let mut opened = flow.definition.clone();
        if let Err(e) = sealed::unseal(&state.cipher, &c.workspace_id, &mut opened) {
            let msg = format!("the flow's header values cannot be opened: {e}");
            return finish(ExecutionStatus::Failed, steps, c.next_step, Some(msg)).await;
        }
        Cow::Owned(opened)
    } else {
        Cow::Borrowed(&flow.definition)
    };
    let changed = c.flow_version.is_some_and(|v| v != flow.version);
    if changed && c.next_step > 0 {
        let msg = format!(
            "the flow was edited after {} of its actions ran; not resumed with different actions",
            c.next_step
        );
        return finish(ExecutionStatus::Failed, steps, c.next_step, Some(msg)).await;
    }
    if changed {
        match conditions_match(&definition, &parse_body(body)) {
            Ok(true) => {}
            Ok(false) => {
                let msg = "conditions not met (the flow was edited before it ran)";
                return finish(ExecutionStatus::Skipped, steps, 0, Some(msg.into())).await;
            }
            Err(reason) => return finish(ExecutionStatus::Failed, steps, 0, Some(reason)).await,
        }
    }
    let target: &ApiTarget = match &job.access {
        Access::Ready(target) => target,
        Access::Skip(msg) => {
            let msg = Some((*msg).to_owned());
            return finish(ExecutionStatus::Skipped, steps, c.next_step, msg).await;
        }
        Access::Fail(msg) => {
            let msg = Some(msg.clone());
            return finish(ExecutionStatus::Failed, steps, c.next_step, msg).await;
        }
    };
    let mut http_allowlist: Option<WorkspaceAllowlist> = None;
    let actions = &definition.actions;
    for (i, action) in actions.iter().enumerate().skip(c.next_step) {
        if state.shutdown.is_cancelled() {
            job.slot.free();
            return Ok(
                if record(engine, c, WriteKind::Release, &steps, i, None).await? {
                    Outcome::Released
                } else {
                    Outcome::LeaseLost
                },
            );
        }
        let rendered = {
            // Only what this action's placeholders can reach.
            let body = delivery
                .as_deref()
                .map_or(Value::Null, |text| body_needs(action).parse(text));
            let ctx = TemplateContext {
                workspace_id: &c.workspace_id,
                event_type: &c.event_type,
                body: &body,
            };
            match action.kind {
                ActionKind::ClockifyApi => Rendered::Api(render_action(action, &ctx)),
                ActionKind::GenericHttp => Rendered::Http(render_http(action, &ctx)),
            }
        };
        if i + 1 == actions.len() {
            delivery = None;
        }
        let step = match rendered {
            Rendered::Api(req) => clockify_step(state, target, action, i, req).await,
            Rendered::Http(call) => {
                if http_allowlist.is_none() {
                    let list = workspace_allowlist(state, &c.workspace_id)
                        .await
                        .map_err(|e| WriteError(e.to_string()))?;
                    http_allowlist = Some(list);
                }
                let allowlist = http_allowlist
                    .as_ref()
                    .map_or_else(Default::default, Clone::clone);
                // Boxed: its state is the largest of an execution's, and executions of
                // CLOCKIFY_API actions (most of them) would otherwise each carry it.
                Box::pin(http_step(state, &allowlist, action, i, call, &c.id)).await
            }
        };
        steps.push(step.0);
        match step.1 {
            // The last action's outcome is recorded with the execution's: no checkpoint.
            Ok(()) if i + 1 == actions.len() => {}
            Ok(()) => {
                let lease_until = now_millis() + state.config.flows.lease.as_millis() as i64;
                let kind = WriteKind::Checkpoint { lease_until };
                if !record(engine, c, kind, &steps, i + 1, None).await? {
                    return Ok(Outcome::LeaseLost);
                }
            }
            Err(failure) => {
                let message = format!("{}: {}", action.display_name(i), failure.message);
                if failure.transient && c.attempt < max_attempts {
                    let delay = backoff(
                        state.config.flows.retry_backoff,
                        c.attempt,
                        rand::thread_rng().r#gen::<f64>(),
                    );
                    let at = now_millis() + delay.as_millis() as i64;
                    let kind = WriteKind::Retry { at };
                    job.slot.free();
                    if !record(engine, c, kind, &steps, i, Some(message.clone())).await? {
                        return Ok(Outcome::LeaseLost);
                    }
                    state
                        .metrics
                        .flow_retries
                        .with_label_values(&["failed"])
                        .inc();
                    tracing::info!(execution_id = %c.id, attempt = c.attempt, retry_in_ms = delay.as_millis() as u64, error = %message, "flow action failed; retrying later");
                    return Ok(Outcome::Retry);
                }
                let message = if failure.transient {
                    format!("{message} (after {} attempts)", c.attempt)
                } else {
                    message
                };
                return finish(ExecutionStatus::Failed, steps, i, Some(message)).await;
            }
        }
    }
    finish(ExecutionStatus::Succeeded, steps, actions.len(), None).await
}

pub(crate) async fn workspace_allowlist(
    state: &AppState,
    workspace_id: &str,
) -> Result<WorkspaceAllowlist, sqlx::Error> {
    let rules = allowlist::list(&state.db, workspace_id).await?;
    // Rules were validated when saved; one that no longer parses is skipped, never widened.
    Ok(
        WorkspaceAllowlist::parse(rules.iter().map(String::as_str)).unwrap_or_else(|e| {
            tracing::warn!(workspace_id, error = %e, "ignoring an invalid allowlist rule");
            WorkspaceAllowlist::parse(
                rules
                    .iter()
                    .map(String::as_str)
                    .filter(|r| WorkspaceAllowlist::parse([*r]).is_ok()),
            )
            .unwrap_or_default()
        }),
    )
}

/// An action rendered from the delivery, or why it could not be.
enum Rendered {
    Api(Result<ApiRequest, TemplateError>),
    Http(Result<HttpCall, RenderError>),
}

async fn clockify_step(
    state: &AppState,
    target: &ApiTarget,
    action: &Action,
    i: usize,
    rendered: Result<ApiRequest, TemplateError>,
) -> (Value, Result<(), StepFailure>) {
    let name = action.display_name(i);
    let req = match rendered {
        Ok(r) => r,
        Err(e) => {
            let record =
                json!({"action": i, "name": name, "type": "CLOCKIFY_API", "error": e.to_string()});
            let failure = StepFailure {
                message: e.to_string(),
                transient: false,
            };
            return (record, Err(failure));
        }
    };
    match state.client.send(target, &req).await {
        Ok(resp) => {
            let record = json!({
                "action": i, "name": name, "type": "CLOCKIFY_API", "method": req.method.as_str(), "path": req.path,
                "status": resp.status, "attempts": resp.attempts, "durationMs": resp.duration.as_millis() as u64,
                "response": excerpt(&resp.body.to_string(), EXCERPT),
            });
            if resp.is_success() {
                (record, Ok(()))
            } else {
                let failure = StepFailure {
                    message: format!("Clockify answered {}", resp.status),
                    transient: resp.status == 429 || resp.status >= 500,
                };
                (record, Err(failure))
            }
        }
        Err(e) => {
            let transient = matches!(e, ApiError::Timeout { .. } | ApiError::Transport { .. });
            let record = json!({"action": i, "name": name, "type": "CLOCKIFY_API", "method": req.method.as_str(), "path": req.path, "error": e.to_string()});
            (
                record,
                Err(StepFailure {
                    message: e.to_string(),
                    transient,
                }),
            )
        }
    }
}

async fn http_step(
    state: &AppState,
    allowlist: &WorkspaceAllowlist,
    action: &Action,
    i: usize,
    rendered: Result<HttpCall, RenderError>,
    execution_id: &str,
) -> (Value, Result<(), StepFailure>) {
    let name = action.display_name(i);
    let call = match rendered {
        Ok(c) => c,
        Err(e) => {
            let record =
                json!({"action": i, "name": name, "type": "GENERIC_HTTP", "error": e.to_string()});
            let failure = StepFailure {
                message: e.to_string(),
                transient: false,
            };
            return (record, Err(failure));
        }
    };
    // The log shows where the request went, never the query (it may carry data) or credentials.
    let mut shown = call.url.clone();
    shown.set_query(None);
    let headers: serde_json::Map<String, Value> = call
        .headers
        .iter()
        .map(|(n, v)| {
            let value = if is_sensitive_header(n.as_str()) {
                "<redacted>".to_owned()
            } else {
                v.to_str().unwrap_or("<binary>").to_owned()
            };
            (n.as_str().to_owned(), Value::String(value))
        })
        .collect();
    let key = format!("{execution_id}.{i}");
    match state.outbound.send(allowlist, &call, &key).await {
        Ok(resp) => {
            let record = json!({
                "action": i, "name": name, "type": "GENERIC_HTTP", "method": call.method.as_str(), "url": shown.as_str(),
                "requestHeaders": headers, "idempotencyKey": key,
                "status": resp.status, "attempts": resp.attempts, "durationMs": resp.duration.as_millis() as u64,
                "response": resp.excerpt,
            });
            if resp.is_success() {
                (record, Ok(()))
            } else {
                let failure = StepFailure {
                    message: format!(
                        "{} answered {}",
                        shown.host_str().unwrap_or("the host"),
                        resp.status
                    ),
                    transient: resp.is_transient_failure(),
                };
                (record, Err(failure))
            }
        }
        Err(e) => {
            let transient = e.is_transient();
            let record = json!({
                "action": i, "name": name, "type": "GENERIC_HTTP", "method": call.method.as_str(), "url": shown.as_str(),
                "requestHeaders": headers, "idempotencyKey": key, "error": e.to_string(),
            });
            let message = match &e {
                OutboundError::NotAllowed { .. } => {
                    format!("{e} (add the host on the HTTP allowlist page)")
                }
                _ => e.to_string(),
            };
            (record, Err(StepFailure { message, transient }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_a_cap() {
        let base = Duration::from_secs(10);
        assert_eq!(backoff(base, 1, 0.0), Duration::from_secs(5));
        assert_eq!(backoff(base, 1, 1.0), Duration::from_secs(10));
        assert_eq!(backoff(base, 3, 1.0), Duration::from_secs(40));
        assert_eq!(backoff(base, 30, 1.0), MAX_BACKOFF);
        assert_eq!(backoff(Duration::ZERO, 4, 0.5), Duration::ZERO);
    }

    fn installation(ws: &str, token_enc: &str, status: InstallStatus) -> Installation {
        Installation {
            workspace_id: ws.into(),
            addon_id: "addon".into(),
            api_url: "https://api.clockify.me/api".into(),
            as_user: None,
            addon_user_id: None,
            auth_token_enc: Some(token_enc.into()),
            status,
            settings: Vec::new(),
            installed_at: 0,
            updated_at: 0,
            tokens_revoked_before: None,
        }
    }

    /// Opens "enc:X" as token "X", counting how often it is called.
    fn opener(
        opened: &std::cell::Cell<u32>,
    ) -> impl Fn(&Installation) -> Result<ApiTarget, String> + '_ {
        move |i| {
            opened.set(opened.get() + 1);
            let enc = i.auth_token_enc.as_deref().unwrap_or_default();
            let token = enc.strip_prefix("enc:").ok_or("cannot open the token")?;
            Ok(ApiTarget {
                workspace_id: i.workspace_id.clone(),
                api_url: i.api_url.clone(),
                token: token.to_owned().into(),
            })
        }
    }

    fn ready(a: Access) -> Arc<ApiTarget> {
        match a {
            Access::Ready(t) => t,
            Access::Skip(m) => panic!("skipped: {m}"),
            Access::Fail(m) => panic!("failed: {m}"),
        }
    }

    #[test]
    fn a_workspace_token_is_opened_once_while_its_executions_hold_it() {
        use secrecy::ExposeSecret;
        let targets = Targets::default();
        let opened = std::cell::Cell::new(0);
        let active = installation("ws1", "enc:t1", InstallStatus::Active);
        let a = ready(targets.access(Some(&active), opener(&opened)));
        let b = ready(targets.access(Some(&active), opener(&opened)));
        assert!(
            Arc::ptr_eq(&a, &b),
            "the second execution shares the first one's target"
        );
        assert_eq!(opened.get(), 1);
        assert_eq!(a.token.expose_secret(), "t1");
        // Another workspace has its own.
        let other = installation("ws2", "enc:t2", InstallStatus::Active);
        let c = ready(targets.access(Some(&other), opener(&opened)));
        assert_eq!((c.workspace_id.as_str(), opened.get()), ("ws2", 2));
        // A reinstall (another stored token) is opened afresh, not served the old token.
        let reinstalled = installation("ws1", "enc:t1b", InstallStatus::Active);
        let d = ready(targets.access(Some(&reinstalled), opener(&opened)));
        assert_eq!((d.token.expose_secret(), opened.get()), ("t1b", 3));
        // Once no execution holds a workspace's target, its token is no longer kept.
        drop((a, b, d));
        let e = ready(targets.access(Some(&reinstalled), opener(&opened)));
        assert_eq!((e.token.expose_secret(), opened.get()), ("t1b", 4));
    }

    #[test]
    fn executions_of_inactive_missing_or_unopenable_installations_do_not_run() {
        let targets = Targets::default();
        let opened = std::cell::Cell::new(0);
        let inactive = installation("ws1", "enc:t1", InstallStatus::Inactive);
        let deleted = installation("ws1", "enc:t1", InstallStatus::Deleted);
        let broken = installation("ws1", "garbage", InstallStatus::Active);
        assert!(matches!(
            targets.access(Some(&inactive), opener(&opened)),
            Access::Skip("the add-on is inactive in this workspace")
        ));
        for missing in [Some(&deleted), None] {
            assert!(matches!(
                targets.access(missing, opener(&opened)),
                Access::Skip("the add-on is not installed in this workspace")
            ));
        }
        assert_eq!(
            opened.get(),
            0,
            "nothing is decrypted for an execution that cannot run"
        );
        assert!(matches!(
            targets.access(Some(&broken), opener(&opened)),
            Access::Fail(m) if m == "cannot open the token"
        ));
        // A failure is not remembered: the next execution tries again.
        let _ = targets.access(Some(&broken), opener(&opened));
        assert_eq!(opened.get(), 2);
    }

    #[test]
    fn uuid_v7_time() {
        let before = now_millis();
        let id = crate::store::new_id();
        let t = crate::store::id_millis(&id).unwrap();
        assert!((before..=now_millis()).contains(&t));
        assert_eq!(crate::store::id_millis("not-a-uuid"), None);
    }
}
