//! Bootstrap: walks a workspace's safe GET endpoints page by page (page cap, rate limit) into
//! the entity cache. Runs are claimed from the database with a heartbeat, so a run whose
//! process died is resumed elsewhere and never stays IN_PROGRESS.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::app::AppState;
use crate::catalog::catalog;
use crate::clockify::{ApiRequest, ApiTarget};
use crate::store::bootstrap::{self as runs, Claimed, Progress};
use crate::store::entities;
use crate::store::installations::{self, InstallStatus};
use crate::time::now_millis;

/// How often a running bootstrap proves it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// A run whose heartbeat is older than this is claimed again.
pub const STALE: Duration = Duration::from_secs(60);
/// A run interrupted this many times fails instead of trying again.
pub const MAX_ATTEMPTS: i64 = 3;
const IDLE_POLL: Duration = Duration::from_secs(15);

pub async fn run(state: AppState) {
    loop {
        if state.shutdown.is_cancelled() {
            break;
        }
        let stale_before = now_millis() - STALE.as_millis() as i64;
        match runs::claim(&state.db, &state.instance_id, stale_before).await {
            Ok(Some(claimed)) => run_one(&state, claimed).await,
            Ok(None) => {
                tokio::select! {
                    _ = state.bootstrap_work.notified() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = state.shutdown.cancelled() => break,
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "bootstrap: cannot claim runs");
                tokio::select! {
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = state.shutdown.cancelled() => break,
                }
            }
        }
    }
    tracing::debug!("bootstrap runner stopped");
}

async fn run_one(state: &AppState, claimed: Claimed) {
    let ws = claimed.workspace_id.clone();
    let owner = state.instance_id.clone();
    if claimed.attempts > MAX_ATTEMPTS {
        let _ = runs::fail(
            &state.db,
            &ws,
            &owner,
            &format!("interrupted {MAX_ATTEMPTS} times; request a new bootstrap"),
        )
        .await;
        state
            .metrics
            .bootstrap_runs
            .with_label_values(&["FAILED"])
            .inc();
        return;
    }
    let target = match installations::get(&state.db, &ws).await {
        Ok(Some(i)) if i.status == InstallStatus::Active => {
            state.target(&i).map_err(|e| e.to_string())
        }
        Ok(_) => Err("the add-on is not active in this workspace".to_owned()),
        Err(e) => Err(format!("database: {e}")),
    };
    let target = match target {
        Ok(t) => t,
        Err(reason) => {
            let _ = runs::fail(&state.db, &ws, &owner, &reason).await;
            state
                .metrics
                .bootstrap_runs
                .with_label_values(&["FAILED"])
                .inc();
            return;
        }
    };
    tracing::info!(workspace_id = %ws, attempt = claimed.attempts, "bootstrap started");

    let progress = Arc::new(Mutex::new(Progress::default()));
    let stop = state.shutdown.child_token();
    let heartbeat = tokio::spawn(heartbeat_loop(
        state.clone(),
        ws.clone(),
        progress.clone(),
        stop.clone(),
    ));
    let outcome = walk(state, &target, &progress, &stop).await;
    heartbeat.abort();

    let p = progress.lock().clone();
    match outcome {
        Walk::Finished { endpoints_ok } => {
            let final_state = if p.errors.is_empty() {
                "COMPLETE"
            } else if endpoints_ok > 0 {
                "COMPLETE_WITH_ERRORS"
            } else {
                "FAILED"
            };
            match runs::finish(&state.db, &ws, &owner, final_state, &p).await {
                Ok(true) => {
                    state
                        .metrics
                        .bootstrap_runs
                        .with_label_values(&[final_state])
                        .inc();
                    tracing::info!(workspace_id = %ws, state = final_state, entities = p.entities_stored, pages = p.pages_fetched, "bootstrap finished");
                }
                Ok(false) => {
                    tracing::warn!(workspace_id = %ws, "bootstrap finished after losing its claim; result dropped")
                }
                Err(e) => {
                    tracing::error!(workspace_id = %ws, error = %e, "bootstrap: cannot record the result")
                }
            }
        }
        Walk::Stopped => {
            if state.shutdown.is_cancelled() {
                // Hand the run back so the next process resumes it at once.
                let _ = runs::release(&state.db, &ws, &owner).await;
                tracing::info!(workspace_id = %ws, "bootstrap paused for shutdown");
            } else {
                tracing::warn!(workspace_id = %ws, "bootstrap lost its claim; stopping");
            }
        }
    }
}

async fn heartbeat_loop(
    state: AppState,
    ws: String,
    progress: Arc<Mutex<Progress>>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(HEARTBEAT) => {}
            _ = stop.cancelled() => return,
        }
        let p = progress.lock().clone();
        match runs::heartbeat(&state.db, &ws, &state.instance_id, &p).await {
            Ok(true) => {}
            Ok(false) => {
                stop.cancel();
                return;
            }
            Err(e) => tracing::warn!(workspace_id = %ws, error = %e, "bootstrap heartbeat failed"),
        }
    }
}

enum Walk {
    Finished { endpoints_ok: usize },
    Stopped,
}

async fn walk(
    state: &AppState,
    target: &ApiTarget,
    progress: &Mutex<Progress>,
    stop: &CancellationToken,
) -> Walk {
    let ops: Vec<_> = catalog().bootstrap_operations().collect();
    progress.lock().endpoints_total = ops.len() as i64;
    let max_pages = state.config.bootstrap.max_pages;
    let page_size = state.config.bootstrap.page_size;
    let mut endpoints_ok = 0;
    for op in ops {
        let entity = op.bootstrap.clone().unwrap_or_default();
        let path = op.path.replace(
            "{workspaceId}",
            &crate::flows::template::encode_segment(&target.workspace_id),
        );
        let mut failed = false;
        for page in 1..=max_pages {
            if stop.is_cancelled() {
                return Walk::Stopped;
            }
            let mut req = ApiRequest::get(path.clone());
            if op.paginated {
                req = req.query("page", page).query("page-size", page_size);
            }
            let items = match state.client.send(target, &req).await {
                Ok(r) if r.is_success() => match r.body {
                    Value::Array(items) => items,
                    _ => {
                        record_error(progress, format!("{}: expected a JSON list", op.id));
                        failed = true;
                        break;
                    }
                },
                Ok(r) => {
                    record_error(
                        progress,
                        format!("{}: Clockify answered {} on page {page}", op.id, r.status),
                    );
                    failed = true;
                    break;
                }
                Err(e) => {
                    record_error(progress, format!("{}: {e}", op.id));
                    failed = true;
                    break;
                }
            };
            let rows: Vec<(String, String)> = items
                .iter()
                .filter_map(|item| {
                    let id = item.get("id").and_then(Value::as_str)?;
                    Some((id.to_owned(), item.to_string()))
                })
                .collect();
            match entities::upsert_page(&state.db, &target.workspace_id, &entity, &rows).await {
                Ok(n) => {
                    let mut p = progress.lock();
                    p.pages_fetched += 1;
                    p.entities_stored += n as i64;
                }
                Err(e) => {
                    record_error(
                        progress,
                        format!("{}: cannot store page {page}: {e}", op.id),
                    );
                    failed = true;
                    break;
                }
            }
            if !op.paginated || (items.len() as u32) < page_size {
                break;
            }
            if page == max_pages {
                tracing::info!(workspace_id = %target.workspace_id, operation = %op.id, max_pages, "bootstrap stopped at the page cap");
            }
        }
        if !failed {
            endpoints_ok += 1;
        }
        progress.lock().endpoints_done += 1;
    }
    Walk::Finished { endpoints_ok }
}

fn record_error(progress: &Mutex<Progress>, msg: String) {
    tracing::warn!(error = %msg, "bootstrap endpoint failed");
    let mut p = progress.lock();
    if p.errors.len() < crate::store::bootstrap::MAX_KEPT_ERRORS {
        p.errors.push(msg);
    }
}
