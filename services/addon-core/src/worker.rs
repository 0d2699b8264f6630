//! The flow worker: claims stored deliveries that await flows and runs every enabled flow
//! whose trigger matches, each at most once per delivery (the execution row is claimed first).

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::clockify::ApiTarget;
use crate::flows::eval::{conditions_match, render_action};
use crate::flows::template::TemplateContext;
use crate::store::executions::{self, ExecutionStatus};
use crate::store::flows;
use crate::store::installations::{self, InstallStatus};
use crate::store::webhooks::{self, ClaimedWebhook};
use crate::time::now_millis;

/// A claim older than this belongs to a worker that died; the delivery is claimed again.
pub const STALE_CLAIM: Duration = Duration::from_secs(300);
const BATCH: i64 = 32;
const CONCURRENCY: usize = 8;
const IDLE_POLL: Duration = Duration::from_secs(5);
/// Longest response excerpt kept in an execution step.
const EXCERPT: usize = 2048;

pub async fn run(state: AppState) {
    loop {
        if state.shutdown.is_cancelled() {
            break;
        }
        let stale_before = now_millis() - STALE_CLAIM.as_millis() as i64;
        let batch = match webhooks::claim_pending(&state.db, BATCH, stale_before).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "flow worker: cannot claim deliveries");
                Vec::new()
            }
        };
        if batch.is_empty() {
            tokio::select! {
                _ = state.flow_work.notified() => {}
                _ = tokio::time::sleep(IDLE_POLL) => {}
                _ = state.shutdown.cancelled() => break,
            }
            continue;
        }
        futures::stream::iter(batch)
            .for_each_concurrent(CONCURRENCY, |w| {
                let state = state.clone();
                async move {
                    if state.shutdown.is_cancelled() {
                        let _ = webhooks::release(&state.db, &w.id).await;
                        return;
                    }
                    if let Err(e) = process(&state, &w).await {
                        // Left PROCESSING: the claim goes stale and the delivery is retried.
                        tracing::error!(webhook_id = %w.id, error = %e, "flow worker: processing failed");
                    }
                }
            })
            .await;
    }
    tracing::debug!("flow worker stopped");
}

/// Runs the flows of one delivery, then marks it processed.
pub async fn process(state: &AppState, w: &ClaimedWebhook) -> Result<(), sqlx::Error> {
    // Runs a dead worker left RUNNING are closed, never re-run.
    executions::fail_interrupted(&state.db, &w.id).await?;
    let body: Value = serde_json::from_str(&w.body).unwrap_or(Value::Null);
    let candidates: Vec<_> = flows::enabled(&state.db, &w.workspace_id)
        .await?
        .into_iter()
        .filter(|f| f.definition.triggered_by(&w.event_type))
        .collect();
    if !candidates.is_empty() {
        let installation = installations::get(&state.db, &w.workspace_id).await?;
        let target: Result<ApiTarget, String> = match &installation {
            Some(i) if i.status == InstallStatus::Active => {
                state.target(i).map_err(|e| e.to_string())
            }
            Some(i) if i.status == InstallStatus::Inactive => {
                Err("the add-on is inactive in this workspace".into())
            }
            _ => Err("the add-on is not installed in this workspace".into()),
        };
        for flow in candidates {
            let Some(exec_id) =
                executions::start(&state.db, &w.workspace_id, &flow.id, &w.id, &w.event_type)
                    .await?
            else {
                continue; // already ran for this delivery
            };
            let (status, steps, error) = match &target {
                Err(reason) => (ExecutionStatus::Skipped, json!([]), Some(reason.clone())),
                Ok(_) if !conditions_match(&flow.definition, &body) => (
                    ExecutionStatus::Skipped,
                    json!([]),
                    Some("conditions not met".to_owned()),
                ),
                Ok(target) => run_actions(state, target, &flow.definition, w, &body).await,
            };
            executions::finish(&state.db, &exec_id, status, &steps, error.as_deref()).await?;
            state
                .metrics
                .flows_executed
                .with_label_values(&[status.as_str()])
                .inc();
            tracing::info!(workspace_id = %w.workspace_id, flow_id = %flow.id, webhook_id = %w.id, status = status.as_str(), "flow executed");
        }
    }
    webhooks::mark_processed(&state.db, &w.id).await
}

async fn run_actions(
    state: &AppState,
    target: &ApiTarget,
    flow: &crate::flows::FlowDefinition,
    w: &ClaimedWebhook,
    body: &Value,
) -> (ExecutionStatus, Value, Option<String>) {
    let ctx = TemplateContext {
        workspace_id: &w.workspace_id,
        event_type: &w.event_type,
        body,
    };
    let mut steps = Vec::new();
    for (i, action) in flow.actions.iter().enumerate() {
        let name = action
            .name
            .clone()
            .unwrap_or_else(|| format!("action {}", i + 1));
        let req = match render_action(action, &ctx) {
            Ok(r) => r,
            Err(e) => {
                let msg = format!("{name}: {e}");
                steps.push(json!({"action": i, "name": name, "error": e.to_string()}));
                return (ExecutionStatus::Failed, Value::Array(steps), Some(msg));
            }
        };
        match state.client.send(target, &req).await {
            Ok(resp) => {
                let mut excerpt = resp.body.to_string();
                if excerpt.len() > EXCERPT {
                    let mut cut = EXCERPT;
                    while !excerpt.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    excerpt.truncate(cut);
                }
                steps.push(json!({
                    "action": i, "name": name, "method": req.method.as_str(), "path": req.path,
                    "status": resp.status, "attempts": resp.attempts, "durationMs": resp.duration.as_millis() as u64,
                    "response": excerpt,
                }));
                if !resp.is_success() {
                    let msg = format!("{name}: Clockify answered {}", resp.status);
                    return (ExecutionStatus::Failed, Value::Array(steps), Some(msg));
                }
            }
            Err(e) => {
                steps.push(json!({"action": i, "name": name, "method": req.method.as_str(), "path": req.path, "error": e.to_string()}));
                return (
                    ExecutionStatus::Failed,
                    Value::Array(steps),
                    Some(format!("{name}: {e}")),
                );
            }
        }
    }
    (ExecutionStatus::Succeeded, Value::Array(steps), None)
}
