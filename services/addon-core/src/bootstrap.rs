//! Bootstrap: walks a workspace's safe GET endpoints page by page (page cap, rate limit) into
//! the entity cache. Runs are claimed from the database with a heartbeat, so a run whose
//! process died is resumed elsewhere and never stays IN_PROGRESS.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::app::AppState;
use crate::catalog::{Operation, catalog};
use crate::clockify::{ApiRequest, ApiTarget};
use crate::store::bootstrap::{self as runs, Claimed, Progress};
use crate::store::entities;
use crate::store::installations::{self, InstallStatus, Installation};
use crate::time::{DAY_MILLIS, now_millis};

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
        Ok(Some(i)) if i.status == InstallStatus::Active => state
            .target(&i)
            .map(|t| (t, Options::for_installation(state, &i)))
            .map_err(|e| e.to_string()),
        Ok(_) => Err("the add-on is not active in this workspace".to_owned()),
        Err(e) => Err(format!("database: {e}")),
    };
    let (target, options) = match target {
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
    tracing::info!(workspace_id = %ws, attempt = claimed.attempts, time_entry_days = options.time_entry_days, include_heavy = options.include_heavy, "bootstrap started");

    let progress = Arc::new(Mutex::new(Progress::default()));
    let stop = state.shutdown.child_token();
    let heartbeat = tokio::spawn(heartbeat_loop(
        state.clone(),
        ws.clone(),
        progress.clone(),
        stop.clone(),
    ));
    let outcome = walk(state, &target, options, &progress, &stop).await;
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

/// What one installation's bootstrap walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Days of time entries per user; 0: none.
    pub time_entry_days: u32,
    /// Walk heavy endpoints (expenses, invoices, approval requests).
    pub include_heavy: bool,
}

/// Setting: days of time entries bootstrap fetches per user (0-365).
pub const TIME_ENTRY_DAYS_SETTING: &str = "bootstrap_time_entry_days";
/// Setting: walk heavy endpoints too.
pub const INCLUDE_HEAVY_SETTING: &str = "bootstrap_include_heavy";
/// The longest time-entry window.
pub const MAX_TIME_ENTRY_DAYS: u32 = 365;

impl Options {
    /// The add-on's defaults, overridden by the installation's settings.
    pub fn for_installation(state: &AppState, installation: &Installation) -> Self {
        let d = state.def.bootstrap;
        Self {
            time_entry_days: installation.number(
                TIME_ENTRY_DAYS_SETTING,
                d.time_entry_days,
                0,
                MAX_TIME_ENTRY_DAYS,
            ),
            include_heavy: installation.flag(INCLUDE_HEAVY_SETTING, d.include_heavy),
        }
    }

    fn walks(&self, op: &Operation) -> bool {
        (!op.heavy || self.include_heavy) && (!op.per_user || self.time_entry_days > 0)
    }
}

enum PagesOutcome {
    Done,
    Failed,
    Stopped,
}

async fn walk(
    state: &AppState,
    target: &ApiTarget,
    options: Options,
    progress: &Mutex<Progress>,
    stop: &CancellationToken,
) -> Walk {
    let ops: Vec<_> = catalog()
        .bootstrap_operations()
        .filter(|op| options.walks(op))
        .collect();
    progress.lock().endpoints_total = ops.len() as i64;
    let ws_segment = crate::flows::template::encode_segment(&target.workspace_id);
    let mut endpoints_ok = 0;
    for op in ops {
        let path = op.path.replace("{workspaceId}", &ws_segment);
        let outcome = if op.per_user {
            // Clockify takes `yyyy-MM-ddThh:mm:ssZ`: whole seconds.
            let since =
                now_millis() / 1000 * 1000 - i64::from(options.time_entry_days) * DAY_MILLIS;
            let start = crate::time::rfc3339(since);
            let mut after: Option<String> = None;
            let mut outcome = PagesOutcome::Done;
            'users: loop {
                let users = match entities::list(
                    &state.db,
                    &target.workspace_id,
                    "users",
                    after.as_deref(),
                    500,
                )
                .await
                {
                    Ok(u) => u,
                    Err(e) => {
                        record_error(
                            progress,
                            format!("{}: cannot read cached users: {e}", op.id),
                        );
                        outcome = PagesOutcome::Failed;
                        break;
                    }
                };
                let Some(last) = users.last() else { break };
                after = Some(last.id.clone());
                for user in &users {
                    let user_path = path.replace(
                        "{userId}",
                        &crate::flows::template::encode_segment(&user.id),
                    );
                    let query = [("start", start.clone())];
                    match fetch_pages(state, target, op, &user_path, &query, progress, stop).await {
                        PagesOutcome::Done => {}
                        PagesOutcome::Failed => outcome = PagesOutcome::Failed,
                        PagesOutcome::Stopped => {
                            outcome = PagesOutcome::Stopped;
                            break 'users;
                        }
                    }
                }
            }
            outcome
        } else {
            fetch_pages(state, target, op, &path, &[], progress, stop).await
        };
        match outcome {
            PagesOutcome::Done => endpoints_ok += 1,
            PagesOutcome::Failed => {}
            PagesOutcome::Stopped => return Walk::Stopped,
        }
        progress.lock().endpoints_done += 1;
    }
    Walk::Finished { endpoints_ok }
}

/// Walks one endpoint page by page into the cache, up to the page cap.
async fn fetch_pages(
    state: &AppState,
    target: &ApiTarget,
    op: &Operation,
    path: &str,
    extra_query: &[(&str, String)],
    progress: &Mutex<Progress>,
    stop: &CancellationToken,
) -> PagesOutcome {
    let entity = op.bootstrap.clone().unwrap_or_default();
    let max_pages = state.config.bootstrap.max_pages;
    let page_size = state.config.bootstrap.page_size;
    for page in 1..=max_pages {
        if stop.is_cancelled() {
            return PagesOutcome::Stopped;
        }
        let mut req = ApiRequest::get(path.to_owned());
        for (k, v) in extra_query {
            req = req.query(k, v);
        }
        if op.paginated {
            req = req.query("page", page).query("page-size", page_size);
        }
        let answer = match state.client.send(target, &req).await {
            Ok(r) if r.is_success() => r.body,
            Ok(r) => {
                record_error(
                    progress,
                    format!("{}: Clockify answered {} on page {page}", op.id, r.status),
                );
                return PagesOutcome::Failed;
            }
            Err(e) => {
                record_error(progress, format!("{}: {e}", op.id));
                return PagesOutcome::Failed;
            }
        };
        let Some(items) = op.items_of(&answer) else {
            record_error(progress, format!("{}: expected a JSON list", op.id));
            return PagesOutcome::Failed;
        };
        let rows: Vec<(String, String)> = items
            .iter()
            .filter_map(|item| Some((op.id_of(item)?.to_owned(), item.to_string())))
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
                return PagesOutcome::Failed;
            }
        }
        if !op.paginated || (items.len() as u32) < page_size {
            break;
        }
        if page == max_pages {
            tracing::info!(workspace_id = %target.workspace_id, operation = %op.id, max_pages, "bootstrap stopped at the page cap");
        }
    }
    PagesOutcome::Done
}

fn record_error(progress: &Mutex<Progress>, msg: String) {
    tracing::warn!(error = %msg, "bootstrap endpoint failed");
    let mut p = progress.lock();
    if p.errors.len() < crate::store::bootstrap::MAX_KEPT_ERRORS {
        p.errors.push(msg);
    }
}
