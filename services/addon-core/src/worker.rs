//! The flow worker: durable, exactly-once-per-delivery flow execution.
//!
//! * **Fan-out.** Stored deliveries that await flows are claimed in a transaction that also
//!   queues one execution per matching flow (or records it SKIPPED with the reason) and marks
//!   the delivery PROCESSED. A crash leaves either the delivery pending or its executions
//!   queued; `(flow, delivery)` is unique, so a flow never runs twice for one delivery.
//! * **Execution.** Due executions are claimed under a lease that a heartbeat renews. Each
//!   completed action advances `next_step` in the row, so after a crash the lease runs out and
//!   another worker resumes at the first action that had not completed: completed actions are
//!   never repeated. The one action in flight at a crash may be sent again (its outcome was
//!   never recorded); GENERIC_HTTP requests carry an `Idempotency-Key` that is the same on
//!   every attempt, so receivers can drop the repeat.
//! * **Retries.** An action that fails transiently (timeout, connection failure, 429, 5xx,
//!   after the client's own quick retries) schedules another attempt with exponential backoff
//!   and jitter; a permanent failure (4xx, a template that does not render, a refused host) or
//!   the last attempt ends in FAILED with the error.

use std::collections::HashMap;
use std::time::Duration;

use rand::Rng;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::app::AppState;
use crate::clockify::{ApiError, ApiTarget};
use crate::flows::eval::{conditions_match, render_action, render_http};
use crate::flows::template::TemplateContext;
use crate::flows::{Action, ActionKind};
use crate::outbound::{OutboundError, WorkspaceAllowlist, excerpt, is_sensitive_header};
use crate::store::executions::{self, Claimed, ExecutionStatus, NewExecution};
use crate::store::flows::{self, FlowRecord};
use crate::store::installations::{self, InstallStatus};
use crate::store::{allowlist, webhooks};
use crate::time::now_millis;

/// A delivery an earlier release left PROCESSING longer than this is fanned out again.
pub const STALE_CLAIM: Duration = Duration::from_secs(300);
/// Deliveries fanned out per transaction.
const FAN_OUT_BATCH: i64 = 64;
const IDLE_POLL: Duration = Duration::from_secs(5);
/// Longest response excerpt kept in an execution step.
const EXCERPT: usize = 2048;
/// The longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// Runs the fan-out, the executor and the lease heartbeat until shutdown.
pub async fn run(state: AppState) {
    let fan_out = tokio::spawn(fan_out_loop(state.clone()));
    let heartbeat = tokio::spawn(heartbeat_loop(state.clone()));
    execute_loop(state).await;
    heartbeat.abort();
    let _ = fan_out.await;
    tracing::debug!("flow worker stopped");
}

async fn fan_out_loop(state: AppState) {
    loop {
        if state.shutdown.is_cancelled() {
            return;
        }
        match fan_out_once(&state).await {
            Ok(FanOut { deliveries, .. }) if deliveries as i64 == FAN_OUT_BATCH => continue,
            Ok(FanOut { queued, .. }) => {
                if queued > 0 {
                    state.execution_work.notify_one();
                }
            }
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
    /// Executions queued to run.
    pub queued: usize,
    /// Executions recorded SKIPPED (conditions not met, add-on inactive).
    pub skipped: usize,
    /// Executions recorded FAILED at once (a condition the engine cannot evaluate).
    pub failed: usize,
}

/// Per workspace: its enabled flows, and why they cannot run (add-on not active).
struct WorkspaceFlows {
    flows: Vec<FlowRecord>,
    inactive: Option<String>,
}

/// Claims a batch of deliveries and queues their executions in one transaction.
pub async fn fan_out_once(state: &AppState) -> Result<FanOut, sqlx::Error> {
    let stale_before = now_millis() - STALE_CLAIM.as_millis() as i64;
    let mut tx = state.db.pool().begin().await?;
    let claimed =
        webhooks::claim_for_fan_out(&mut tx, state.db.backend(), FAN_OUT_BATCH, stale_before)
            .await?;
    let mut out = FanOut {
        deliveries: claimed.len(),
        ..FanOut::default()
    };
    let mut by_workspace: HashMap<String, WorkspaceFlows> = HashMap::new();
    let now = now_millis();
    for w in &claimed {
        if !by_workspace.contains_key(&w.workspace_id) {
            // On the transaction's own connection: holding one connection while waiting for
            // another deadlocks a pool of one.
            let flows = flows::enabled_in(&mut tx, &w.workspace_id).await?;
            let inactive = match installations::get_in(&mut tx, &w.workspace_id).await? {
                Some(i) if i.status == InstallStatus::Active => None,
                Some(i) if i.status == InstallStatus::Inactive => {
                    Some("the add-on is inactive in this workspace".to_owned())
                }
                _ => Some("the add-on is not installed in this workspace".to_owned()),
            };
            by_workspace.insert(w.workspace_id.clone(), WorkspaceFlows { flows, inactive });
        }
        let Some(ws) = by_workspace.get(&w.workspace_id) else {
            continue;
        };
        let matching: Vec<&FlowRecord> = ws
            .flows
            .iter()
            .filter(|f| {
                f.definition
                    .triggered_by(w.source.as_deref(), &w.event_type)
            })
            .collect();
        if matching.is_empty() {
            continue;
        }
        let body: Value = serde_json::from_str(&w.body).unwrap_or(Value::Null);
        for flow in matching {
            let settled = match &ws.inactive {
                Some(reason) => Some((ExecutionStatus::Skipped, reason.clone())),
                None => match conditions_match(&flow.definition, &body) {
                    Ok(true) => None,
                    Ok(false) => Some((ExecutionStatus::Skipped, "conditions not met".to_owned())),
                    Err(reason) => Some((ExecutionStatus::Failed, reason)),
                },
            };
            let is_skip = settled
                .as_ref()
                .is_some_and(|(s, _)| *s == ExecutionStatus::Skipped);
            let is_failed = settled
                .as_ref()
                .is_some_and(|(s, _)| *s == ExecutionStatus::Failed);
            let new = NewExecution {
                workspace_id: &w.workspace_id,
                flow_id: &flow.id,
                webhook_id: &w.id,
                event_type: &w.event_type,
                flow_version: flow.version,
                settled,
            };
            if executions::queue(&mut tx, &new, now).await? {
                if is_skip {
                    out.skipped += 1;
                } else if is_failed {
                    out.failed += 1;
                } else {
                    out.queued += 1;
                }
            }
        }
    }
    tx.commit().await?;
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
    if out.deliveries > 0 {
        tracing::debug!(
            deliveries = out.deliveries,
            queued = out.queued,
            skipped = out.skipped,
            failed = out.failed,
            "deliveries fanned out"
        );
    }
    Ok(out)
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

async fn execute_loop(state: AppState) {
    let concurrency = state.config.flows.concurrency as usize;
    let lease = state.config.flows.lease;
    let mut running: JoinSet<()> = JoinSet::new();
    let mut next_reclaim = tokio::time::Instant::now();
    loop {
        if state.shutdown.is_cancelled() {
            break;
        }
        if tokio::time::Instant::now() >= next_reclaim {
            reclaim(&state).await;
            next_reclaim = tokio::time::Instant::now() + lease / 2;
        }
        // Finished executions free their slots together, and slots are refilled in batches:
        // one claim round trip per execution would cap throughput at the database's latency.
        while running.try_join_next().is_some() {}
        let free = concurrency.saturating_sub(running.len());
        let batch_min = (concurrency / 4).max(1);
        let mut claimed_all = false;
        if free >= batch_min || running.is_empty() {
            let until = now_millis() + lease.as_millis() as i64;
            match executions::claim_due(&state.db, &state.instance_id, until, free as i64).await {
                Ok(batch) => {
                    claimed_all = batch.len() == free;
                    for c in batch {
                        running.spawn(run_claimed(state.clone(), c));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot claim flow executions"),
            }
        }
        if claimed_all && running.len() < concurrency {
            continue;
        }
        let wait = if free < batch_min && !running.is_empty() {
            // Wait for more slots (a finishing execution wakes the loop).
            IDLE_POLL
        } else if running.len() >= concurrency {
            IDLE_POLL
        } else {
            match executions::next_due(&state.db).await {
                Ok(Some(at)) => Duration::from_millis((at - now_millis()).clamp(1, 5000) as u64),
                _ => IDLE_POLL,
            }
        };
        let wait = wait.min(next_reclaim.saturating_duration_since(tokio::time::Instant::now()));
        tokio::select! {
            Some(_) = running.join_next(), if !running.is_empty() => {}
            _ = state.execution_work.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = state.shutdown.cancelled() => break,
        }
    }
    // Running executions stop at their next step and hand themselves back; wait for that.
    let grace = state.config.shutdown_timeout.max(Duration::from_secs(1));
    if tokio::time::timeout(grace, async {
        while running.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tracing::warn!("flow executions did not stop in time; their leases will run out");
    }
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

async fn run_claimed(state: AppState, claimed: Claimed) {
    if claimed.attempt == 1
        && let Some(queued) = uuid_millis(&claimed.id)
    {
        state
            .metrics
            .flow_queue_delay
            .observe((now_millis() - queued).max(0) as f64 / 1000.0);
    }
    match execute(&state, &claimed).await {
        Ok(outcome) => {
            tracing::info!(
                workspace_id = %claimed.workspace_id, flow_id = %claimed.flow_id,
                execution_id = %claimed.id, webhook_id = %claimed.webhook_id,
                attempt = claimed.attempt, outcome = ?outcome, "flow execution"
            );
        }
        // The row stays RUNNING under our lease; when the lease runs out it is resumed.
        Err(e) => {
            tracing::error!(execution_id = %claimed.id, error = %e, "flow execution could not be recorded")
        }
    }
}

/// The millisecond timestamp inside a UUIDv7 (when the row was created).
fn uuid_millis(id: &str) -> Option<i64> {
    let u = uuid::Uuid::parse_str(id).ok()?;
    let (secs, nanos) = u.get_timestamp()?.to_unix();
    Some(secs as i64 * 1000 + i64::from(nanos / 1_000_000))
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

/// Runs a claimed execution from its next step to an outcome, recording it.
pub async fn execute(state: &AppState, c: &Claimed) -> Result<Outcome, sqlx::Error> {
    let owner = state.instance_id.as_str();
    let mut steps: Vec<Value> = c.steps.iter().take(c.next_step).cloned().collect();
    let finish = |status: ExecutionStatus,
                  steps: Vec<Value>,
                  next: usize,
                  error: Option<String>| async move {
        let recorded = executions::complete(
            &state.db,
            &c.id,
            owner,
            status,
            &steps,
            next,
            error.as_deref(),
        )
        .await?;
        if !recorded {
            return Ok(Outcome::LeaseLost);
        }
        state
            .metrics
            .flows_executed
            .with_label_values(&[status.as_str()])
            .inc();
        Ok::<_, sqlx::Error>(Outcome::Done(status))
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
    let Some((body_text, _source)) = webhooks::delivery(&state.db, &c.webhook_id).await? else {
        let msg = "the delivery is no longer stored (retention removed it)";
        return finish(
            ExecutionStatus::Failed,
            steps,
            c.next_step,
            Some(msg.into()),
        )
        .await;
    };
    let flow = match flows::get(&state.db, &c.workspace_id, &c.flow_id).await? {
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
    let mut flow = flow;
    if let Err(e) =
        crate::flows::sealed::unseal(&state.cipher, &c.workspace_id, &mut flow.definition)
    {
        let msg = format!("the flow's header values cannot be opened: {e}");
        return finish(ExecutionStatus::Failed, steps, c.next_step, Some(msg)).await;
    }
    let body: Value = serde_json::from_str(&body_text).unwrap_or(Value::Null);
    let changed = c.flow_version.is_some_and(|v| v != flow.version);
    if changed && c.next_step > 0 {
        let msg = format!(
            "the flow was edited after {} of its actions ran; not resumed with different actions",
            c.next_step
        );
        return finish(ExecutionStatus::Failed, steps, c.next_step, Some(msg)).await;
    }
    if changed {
        match conditions_match(&flow.definition, &body) {
            Ok(true) => {}
            Ok(false) => {
                let msg = "conditions not met (the flow was edited before it ran)";
                return finish(ExecutionStatus::Skipped, steps, 0, Some(msg.into())).await;
            }
            Err(reason) => return finish(ExecutionStatus::Failed, steps, 0, Some(reason)).await,
        }
    }
    let installation = installations::get(&state.db, &c.workspace_id).await?;
    let target: ApiTarget = match &installation {
        Some(i) if i.status == InstallStatus::Active => match state.target(i) {
            Ok(t) => t,
            Err(e) => {
                return finish(
                    ExecutionStatus::Failed,
                    steps,
                    c.next_step,
                    Some(e.to_string()),
                )
                .await;
            }
        },
        Some(i) if i.status == InstallStatus::Inactive => {
            let msg = "the add-on is inactive in this workspace";
            return finish(
                ExecutionStatus::Skipped,
                steps,
                c.next_step,
                Some(msg.into()),
            )
            .await;
        }
        _ => {
            let msg = "the add-on is not installed in this workspace";
            return finish(
                ExecutionStatus::Skipped,
                steps,
                c.next_step,
                Some(msg.into()),
            )
            .await;
        }
    };
    let ctx = TemplateContext {
        workspace_id: &c.workspace_id,
        event_type: &c.event_type,
        body: &body,
    };
    let mut http_allowlist: Option<WorkspaceAllowlist> = None;
    let actions = &flow.definition.actions;
    for (i, action) in actions.iter().enumerate().skip(c.next_step) {
        if state.shutdown.is_cancelled() {
            return Ok(if executions::release(&state.db, &c.id, owner).await? {
                Outcome::Released
            } else {
                Outcome::LeaseLost
            });
        }
        let step = match action.kind {
            ActionKind::ClockifyApi => clockify_step(state, &target, action, i, &ctx).await,
            ActionKind::GenericHttp => {
                if http_allowlist.is_none() {
                    http_allowlist = Some(workspace_allowlist(state, &c.workspace_id).await?);
                }
                let allowlist = http_allowlist
                    .as_ref()
                    .map_or_else(Default::default, Clone::clone);
                http_step(state, &allowlist, action, i, &ctx, &c.id).await
            }
        };
        steps.push(step.0);
        match step.1 {
            Ok(()) => {
                let until = now_millis() + state.config.flows.lease.as_millis() as i64;
                if !executions::checkpoint(&state.db, &c.id, owner, i + 1, &steps, until).await? {
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
                    if !executions::retry_later(&state.db, &c.id, owner, &steps, i, &message, at)
                        .await?
                    {
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

async fn workspace_allowlist(
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

async fn clockify_step(
    state: &AppState,
    target: &ApiTarget,
    action: &Action,
    i: usize,
    ctx: &TemplateContext<'_>,
) -> (Value, Result<(), StepFailure>) {
    let name = action.display_name(i);
    let req = match render_action(action, ctx) {
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
    ctx: &TemplateContext<'_>,
    execution_id: &str,
) -> (Value, Result<(), StepFailure>) {
    let name = action.display_name(i);
    let call = match render_http(action, ctx) {
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

    #[test]
    fn uuid_v7_time() {
        let before = now_millis();
        let id = crate::store::new_id();
        let t = uuid_millis(&id).unwrap();
        assert!((before..=now_millis()).contains(&t));
        assert_eq!(uuid_millis("not-a-uuid"), None);
    }
}
