//! The reconcile pipeline, one step a module: observe ([`crate::cache`]) -> plan
//! ([`crate::plan`], [`crate::upgrade`], [`crate::restore`]) -> apply and prune
//! ([`crate::converge`], [`crate::drift`], [`crate::apply`]) -> Jobs (migrations, backups,
//! restores) -> status ([`crate::status`], written only when it changed) -> events
//! ([`crate::events`], only on transitions).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::views::DeploymentState;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{DeserializeGuard, error_boundary::InvalidObject};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use crate::events::Recorder;
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::apply;
use crate::backups;
use crate::build::backup::{COMPONENT as BACKUP_COMPONENT, RESTORE_COMPONENT};
use crate::cache::{Stores, Written};
pub use crate::capabilities::CapabilityCache;
use crate::converge::{self, Changes};
use crate::crd::{ClockifyAddon, ClockifyAddonStatus, OnDemandBackup, PAUSED_ANNOTATION};
use crate::jobs::{JobState, JobView};
use crate::meta::MANAGER;
use crate::metrics::Metrics;
use crate::plan::{Child, Kind, Plan, plan, plan_with};
use crate::status::{self, Outcome, keep_transition_times};
use crate::upgrade::{self, Decision, DeploymentPlan, JobDeletion, Phase};

/// How often a healthy object is looked at again (a safety net: every child kind is watched).
pub const RESYNC: Duration = Duration::from_secs(300);
/// How often a restore waiting for the add-on's pods to stop looks again.
pub const SCALING_DOWN_POLL: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the ClockifyAddon has no namespace")]
    MissingNamespace,
    #[error("applying {kind} {name}: {source}")]
    Apply {
        kind: &'static str,
        name: String,
        source: kube::Error,
    },
    #[error("deleting {kind} {name}: {source}")]
    Prune {
        kind: &'static str,
        name: String,
        source: kube::Error,
    },
    #[error("reading {kind} {name}: {source}")]
    Read {
        kind: &'static str,
        name: String,
        source: kube::Error,
    },
    #[error("writing status: {0}")]
    Status(kube::Error),
    #[error("discovering the ServiceMonitor and HTTPRoute APIs: {0}")]
    Discovery(kube::Error),
}

impl Error {
    pub const CATEGORIES: [&'static str; 6] =
        ["namespace", "apply", "prune", "read", "status", "discovery"];

    /// A fixed category for metrics and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Self::MissingNamespace => "namespace",
            Self::Apply { .. } => "apply",
            Self::Prune { .. } => "prune",
            Self::Read { .. } => "read",
            Self::Status(_) => "status",
            Self::Discovery(_) => "discovery",
        }
    }
}

/// Shared by every reconcile.
pub struct Context {
    /// Talks to the API server.
    pub client: Client,
    /// Publishes Kubernetes Events on ClockifyAddons.
    pub recorder: Recorder,
    /// The children the operator manages, cached by its watches.
    pub stores: Stores,
    /// Whether the cluster serves ServiceMonitor.
    pub capabilities: Arc<CapabilityCache>,
    /// Reconcile counts, durations, errors and writes.
    pub metrics: Metrics,
    /// Consecutive failures per object, for exponential backoff (reset on success).
    pub failures: std::sync::Mutex<HashMap<String, u32>>,
    /// Generations of malformed objects already reported, so a report never repeats itself.
    pub reported_invalid: std::sync::Mutex<HashMap<String, i64>>,
    /// Whether the child caches hold their first full list. Until then a reconcile would see
    /// existing children as missing and apply them again, so it waits.
    pub caches_synced: std::sync::atomic::AtomicBool,
    /// What this replica wrote, until its watches show it.
    pub written: Written,
}

impl Context {
    pub fn new(
        client: Client,
        recorder: Recorder,
        stores: Stores,
        capabilities: Arc<CapabilityCache>,
        metrics: Metrics,
    ) -> Self {
        Self {
            client,
            recorder,
            stores,
            capabilities,
            metrics,
            failures: Default::default(),
            reported_invalid: Default::default(),
            caches_synced: std::sync::atomic::AtomicBool::new(true),
            written: Written::default(),
        }
    }
}

fn key_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

pub async fn reconcile(
    obj: Arc<DeserializeGuard<ClockifyAddon>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    if !ctx.caches_synced.load(std::sync::atomic::Ordering::Acquire) {
        // Existing children would look missing and be applied again: wait for the caches.
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    let started = Instant::now();
    let result = match &obj.0 {
        Ok(addon) => reconcile_addon(addon, &ctx).await,
        Err(invalid) => report_invalid(invalid, &ctx).await,
    };
    let label = if result.is_ok() { "success" } else { "error" };
    ctx.metrics.reconciles.with_label_values(&[label]).inc();
    ctx.metrics
        .reconcile_duration
        .with_label_values(&[label])
        .observe(started.elapsed().as_secs_f64());
    if result.is_ok() {
        let key = match &obj.0 {
            Ok(a) => key_of(&a.metadata),
            Err(i) => key_of(&i.metadata),
        };
        if let Ok(mut f) = ctx.failures.lock() {
            f.remove(&key);
        }
    }
    result
}

/// Exponential backoff per object: 1 s, 2 s, 4 s ... up to 5 minutes, with jitter.
pub fn error_policy(
    obj: Arc<DeserializeGuard<ClockifyAddon>>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    let key = match &obj.0 {
        Ok(a) => key_of(&a.metadata),
        Err(i) => key_of(&i.metadata),
    };
    ctx.metrics
        .errors
        .with_label_values(&[error.category()])
        .inc();
    let failures = ctx
        .failures
        .lock()
        .map(|mut f| {
            let n = f.entry(key.clone()).or_insert(0);
            *n += 1;
            *n
        })
        .unwrap_or(1);
    let delay = backoff(failures);
    tracing::warn!(object = %key, category = error.category(), error = %error, failures, retry_in_ms = delay.as_millis() as u64, "reconcile failed");
    Action::requeue(delay)
}

pub fn backoff(failures: u32) -> Duration {
    let base = Duration::from_secs(1)
        .saturating_mul(1u32 << failures.saturating_sub(1).min(9))
        .min(Duration::from_secs(300));
    let jitter = rand::random::<f64>() * 0.2 * base.as_secs_f64();
    base + Duration::from_secs_f64(jitter)
}

async fn reconcile_addon(cached: &ClockifyAddon, ctx: &Context) -> Result<Action, Error> {
    if cached.metadata.deletion_timestamp.is_some() {
        // Owner references let the garbage collector remove the children.
        if let Some(ns) = cached.namespace() {
            ctx.stores.secrets.forget(&ns, &cached.name_any());
        }
        return Ok(Action::await_change());
    }
    // The status this replica last wrote, should the cache not show it yet.
    let addon = &ctx.written.addon(cached);
    let ns = addon.namespace().ok_or(Error::MissingNamespace)?;
    let name = addon.name_any();
    let paused = addon
        .annotations()
        .get(PAUSED_ANNOTATION)
        .is_some_and(|v| v == "true");
    let caps = ctx.capabilities.get(&ctx.client).await?;
    let now = Time(k8s_openapi::jiff::Timestamp::now());

    let deployment = converge::deployment(ctx, &ns, &name);
    let jobs = migration_jobs(ctx, addon, &ns);
    let mut upgrade_decision = None;
    let mut restore_decision = None;
    let mut backup_state = None;
    let mut exposure = None;
    let secret_refs = crate::secrets::references(addon);
    ctx.stores.secrets.note(&ns, &name, &secret_refs);
    let planned = match ctx.stores.secrets.hash(&ns, &secret_refs) {
        Ok(hash) => plan_with(addon, caps, Some(hash)).map_err(|i| Outcome::Invalid(i.0)),
        // An invalid spec is told first: it is what has to change.
        Err(missing) => Err(match plan(addon, caps) {
            Err(invalid) => Outcome::Invalid(invalid.0),
            Ok(_) => Outcome::SecretMissing(missing.message),
        }),
    };
    let (outcome, changes, service_monitor_missing) = match planned {
        Err(outcome) => (outcome, Changes::default(), false),
        Ok(plan) => {
            let mut decision = upgrade::decide(addon, &plan.settings, deployment.as_deref(), &jobs);
            let restore = if paused {
                None
            } else {
                decide_restore(addon, &plan, deployment.as_deref(), ctx, &ns, &now).await?
            };
            if restore.as_ref().is_some_and(|r| r.holds_upgrades()) {
                decision.create_job = false;
            }
            let mut plan = upgrade_plan(addon, plan, &decision);
            if let Some(r) = &restore {
                // Backups pause while the database is replaced, and resume with the outcome.
                let suspend = !r.status.phase.is_final()
                    || plan.settings.backup.as_ref().is_some_and(|b| b.suspend);
                suspend_backups(&mut plan, suspend);
                if r.scale_to_zero {
                    scale_to_zero(&mut plan);
                }
            }
            let missing = plan.service_monitor_missing;
            exposure = plan.exposure.clone();
            let result = if paused {
                let drift = converge::out_of_sync(&plan, ctx, &ns).await?;
                (
                    Outcome::Paused {
                        in_sync: drift.is_empty() && decision.phase == Phase::Current,
                    },
                    Changes::default(),
                    missing,
                )
            } else {
                match act(addon, &plan, &decision, restore.as_ref(), ctx, &ns).await {
                    Ok((changes, backups)) => {
                        backup_state = backups;
                        (Outcome::Applied, changes, missing)
                    }
                    Err(Error::Apply {
                        kind,
                        name,
                        source: kube::Error::Api(s),
                    }) if is_rejection(s.code) => (
                        Outcome::Rejected(format!(
                            "the API server refused {kind} {name}: {}",
                            s.message
                        )),
                        Changes::default(),
                        missing,
                    ),
                    Err(e) => return Err(e),
                }
            };
            upgrade_decision = Some(decision);
            if matches!(result.0, Outcome::Applied) {
                restore_decision = restore;
            }
            result
        }
    };

    // The Deployment as this pass left it: a rollout the pass started is not complete.
    let floor = crate::settings::resolve(addon)
        .map(|s| s.min_replicas)
        .unwrap_or(1);
    let rollout = status::rollout(converge::deployment(ctx, &ns, &name).as_deref(), floor);
    let next = keep_transition_times(
        addon.status.as_ref(),
        status::desired_status(
            addon,
            &outcome,
            &rollout,
            upgrade_decision.as_ref(),
            service_monitor_missing,
            &status::Extras {
                backup: backup_state.as_ref(),
                restore: restore_decision.as_ref().map(|r| &r.status),
                exposure: exposure.as_ref(),
            },
            &now,
        ),
    );

    ctx.metrics
        .observe_addon(&ns, &name, &snapshot(addon, &next));
    crate::events::publish_events(addon, ctx, &changes, addon.status.as_ref(), &next, &outcome)
        .await;
    if addon.status.as_ref() != Some(&next) {
        apply::write_status(ctx, addon, &next).await?;
    }
    Ok(match outcome {
        // A Secret appearing or changing is watched: it brings the object back.
        Outcome::Invalid(_) | Outcome::Rejected(_) | Outcome::SecretMissing(_) => {
            Action::await_change()
        }
        // Pods going away are not watched: look again soon.
        _ if restore_decision
            .as_ref()
            .is_some_and(|r| r.status.phase == crate::crd::RestorePhase::ScalingDown) =>
        {
            Action::requeue(SCALING_DOWN_POLL)
        }
        _ => Action::requeue(RESYNC),
    })
}

/// Everything a pass does to the cluster: the children (first: a Job's pod runs as the
/// ServiceAccount and inside the NetworkPolicy), the migration Jobs, the restore and backup
/// Jobs; and what the backups did.
async fn act(
    addon: &ClockifyAddon,
    plan: &Plan,
    decision: &Decision,
    restore: Option<&crate::restore::Decision>,
    ctx: &Context,
    ns: &str,
) -> Result<(Changes, Option<backups::State>), Error> {
    let name = addon.name_any();
    let mut changes = converge::converge(addon, plan, ctx, ns).await?;
    migrate(addon, plan, decision, ctx, ns).await?;
    let (state, notes) = run_backups(addon, plan, restore, ctx, ns).await?;
    changes.backup = notes;
    changes.migration = migration_changes(decision);
    if restore.is_some() {
        // The restore's own Events say why these changed.
        let own = [
            format!("Deployment {name}"),
            format!("CronJob {}", crate::build::backup::cron_job_name(addon)),
        ];
        changes.updated.retain(|c| !own.contains(c));
    }
    if let Some(r) = restore
        && let Some((kind, reason, note)) = &r.event
    {
        changes
            .backup
            .push((*kind == EventType::Warning, reason, note.clone()));
    }
    // The Deployment moving to a freshly migrated image is the upgrade, not a spec change.
    if let Phase::Migrated { job } = &decision.phase {
        let label = format!("Deployment {name}");
        if changes.updated.contains(&label) {
            changes.updated.retain(|c| *c != label);
            changes.migration.push((
                "RolloutStarted",
                format!(
                    "rolling out version {} after migration Job {job}",
                    addon.spec.version
                ),
            ));
        }
    }
    Ok((changes, state))
}

/// This ClockifyAddon's migration Jobs, with this replica's own recent writes.
fn migration_jobs(ctx: &Context, addon: &ClockifyAddon, ns: &str) -> Vec<JobView> {
    let component = crate::build::job::COMPONENT;
    ctx.written
        .jobs(ns, ctx.stores.jobs_of(addon, component, None), |j| {
            crate::cache::job_of(j, addon, component, None)
        })
}

/// This ClockifyAddon's Jobs of `component` (backup or restore): its own, and for backups
/// those its CronJob started; with this replica's own recent writes.
fn component_jobs(ctx: &Context, addon: &ClockifyAddon, ns: &str, component: &str) -> Vec<JobView> {
    let cron = crate::build::backup::cron_job_name(addon);
    ctx.written
        .jobs(ns, ctx.stores.jobs_of(addon, component, Some(&cron)), |j| {
            crate::cache::job_of(j, addon, component, Some(&cron))
        })
}

/// The plan with the upgrade decision applied to its Deployment.
fn upgrade_plan(addon: &ClockifyAddon, mut plan: Plan, decision: &Decision) -> Plan {
    match &decision.deployment {
        DeploymentPlan::Desired => {}
        DeploymentPlan::NotYet => plan.children.retain(|c| c.kind() != Kind::Deployment),
        DeploymentPlan::Hold(running) => {
            let held = crate::build::deployment::deployment_running(
                addon,
                &plan.settings,
                &running.image,
                running.version.as_deref().unwrap_or("unknown"),
                running.migrated_image.as_deref().unwrap_or(&running.image),
            );
            for c in &mut plan.children {
                if c.kind() == Kind::Deployment {
                    *c = Child::Deployment(Box::new(held.clone()));
                }
            }
        }
    }
    plan
}

/// What the per-ClockifyAddon metrics (and the chart's alerts) read from a status.
fn snapshot(addon: &ClockifyAddon, status: &ClockifyAddonStatus) -> crate::metrics::AddonSnapshot {
    let seconds = |t: &str| {
        t.parse::<k8s_openapi::jiff::Timestamp>()
            .ok()
            .map(|t| t.as_millisecond() as f64 / 1000.0)
    };
    let backup = addon.spec.backup.as_ref().map(|b| {
        let schedule = b.schedule.clone().unwrap_or_else(|| {
            crate::tier::profile(addon.spec.tier)
                .backup_schedule
                .to_owned()
        });
        let last = status
            .last_successful_backup
            .as_ref()
            .and_then(|r| r.finished_at.as_deref())
            .and_then(seconds)
            .or_else(|| {
                addon
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0.as_millisecond() as f64 / 1000.0)
            })
            .unwrap_or(0.0);
        (
            status
                .last_backup
                .as_ref()
                .is_some_and(|r| r.result == backups::FAILED),
            last,
            crate::metrics::schedule_interval(&schedule),
        )
    });
    crate::metrics::AddonSnapshot {
        ready: status::condition_status(Some(status), status::READY) == Some("True"),
        migration_failed: status
            .conditions
            .iter()
            .any(|c| c.type_ == status::DATABASE_MIGRATED && c.reason == "MigrationFailed"),
        backup,
    }
}

/// Sets the backup CronJob's suspend.
fn suspend_backups(plan: &mut Plan, suspend: bool) {
    for c in &mut plan.children {
        if let Child::CronJob(cj) = c
            && let Some(spec) = cj.spec.as_mut()
        {
            spec.suspend = Some(suspend);
        }
    }
}

/// Holds the Deployment at zero replicas (a restore is replacing its database).
fn scale_to_zero(plan: &mut Plan) {
    for c in &mut plan.children {
        if let Child::Deployment(d) = c
            && let Some(spec) = d.spec.as_mut()
        {
            spec.replicas = Some(0);
        }
    }
}

/// The restore decision: the restore Jobs, their termination messages once they finished, and
/// (before a restore Job may start) the add-on's pods still there, terminating ones included.
async fn decide_restore(
    addon: &ClockifyAddon,
    plan: &Plan,
    deployment: Option<&DeploymentState>,
    ctx: &Context,
    ns: &str,
    now: &Time,
) -> Result<Option<crate::restore::Decision>, Error> {
    if !crate::restore::active(addon) {
        return Ok(None);
    }
    let jobs = component_jobs(ctx, addon, ns, RESTORE_COMPONENT);
    let previous = addon
        .status
        .as_ref()
        .and_then(|s| s.restore.as_ref())
        .filter(|r| {
            addon
                .spec
                .restore
                .as_ref()
                .is_some_and(|q| q.request_id == r.request_id)
        });
    let restore_job = addon
        .spec
        .restore
        .as_ref()
        .map(|q| crate::build::backup::restore_job_name(addon, &q.request_id));
    let mut messages = BTreeMap::new();
    for j in &jobs {
        let failed = matches!(j.state, JobState::Failed { .. });
        // A restore that succeeded reports what it restored, read once.
        let restored = j.state == JobState::Succeeded
            && Some(&j.name) == restore_job.as_ref()
            && previous.is_none_or(|p| p.report.is_none());
        if (failed || restored)
            && let Some(m) = crate::pods::termination_message(ctx, ns, &j.name).await
        {
            messages.insert(j.name.clone(), m);
        }
    }
    let pods = if jobs.is_empty() && crate::restore::scaled_down(deployment) {
        Some(crate::pods::pods_left(ctx, addon, ns).await?)
    } else {
        None
    };
    Ok(crate::restore::decide(
        addon,
        &plan.settings,
        deployment,
        &jobs,
        &messages,
        pods,
        &now.0.to_string(),
    ))
}

/// Restore Jobs to create, the on-demand backup, and what the backup Jobs did.
async fn run_backups(
    addon: &ClockifyAddon,
    plan: &Plan,
    restore: Option<&crate::restore::Decision>,
    ctx: &Context,
    ns: &str,
) -> Result<(Option<backups::State>, Vec<(bool, &'static str, String)>), Error> {
    let mut notes = Vec::new();
    if let Some(r) = restore {
        for job in &r.create {
            apply::create_job(ctx, job, ns).await?;
        }
    }
    let Some(b) = &plan.settings.backup else {
        return Ok((None, notes));
    };
    let backup_jobs = component_jobs(ctx, addon, ns, BACKUP_COMPONENT);
    let mut on_demand = None;
    // Not while a restore replaces the database: the request waits (it is not recorded yet).
    if restore.is_none()
        && let Some((request, job)) = backups::on_demand_request(addon)
    {
        if !backup_jobs.iter().any(|j| j.name == job) {
            let j = crate::build::backup::on_demand_job(addon, &plan.settings, b, &request);
            apply::create_job(ctx, &j, ns).await?;
            notes.push((
                false,
                "BackupStarted",
                format!(
                    "started backup Job {job} (annotation {}={request})",
                    crate::crd::BACKUP_NOW_ANNOTATION
                ),
            ));
        }
        on_demand = Some(OnDemandBackup { request, job });
    }
    let jobs: Vec<backups::BackupJob> = backup_jobs
        .into_iter()
        .map(backups::BackupJob::from)
        .collect();
    let mut messages = BTreeMap::new();
    for name in backups::unrecorded(addon, &jobs) {
        if let Some(m) = crate::pods::termination_message(ctx, ns, &name).await {
            messages.insert(name, m);
        }
    }
    let prefix = backups::location_prefix(addon, b);
    let state = backups::state(addon, &jobs, &messages, on_demand, Some(&prefix));
    let before = addon.status.as_ref().and_then(|s| s.last_backup.as_ref());
    if let Some(last) = &state.last
        && before.map(|b| &b.job) != Some(&last.job)
    {
        let what = last.message.clone().unwrap_or_default();
        if last.result == backups::SUCCEEDED {
            notes.push((
                false,
                "BackupSucceeded",
                format!("backup Job {} succeeded: {what}", last.job),
            ));
        } else {
            notes.push((
                true,
                "BackupFailed",
                format!("backup Job {} failed: {what}", last.job),
            ));
        }
    }
    Ok((Some(state), notes))
}

/// Deletes superseded and retried migration Jobs, creates the one this image needs, and keeps
/// the finished ones' TTLs as the upgrade flow wants them.
async fn migrate(
    addon: &ClockifyAddon,
    plan: &Plan,
    decision: &Decision,
    ctx: &Context,
    ns: &str,
) -> Result<(), Error> {
    for deletion in &decision.delete_jobs {
        let (JobDeletion::Superseded(name) | JobDeletion::Retried(name)) = deletion;
        let uid = ctx.stores.meta(Kind::Job, ns, name).and_then(|m| m.uid);
        apply::delete(ctx, Kind::Job, ns, name, uid).await?;
    }
    if decision.create_job {
        let job = crate::build::migration_job(addon, &plan.settings);
        apply::create_job(ctx, &job, ns).await?;
    }
    for (job, ttl) in &decision.set_ttl {
        if decision.delete_jobs.iter().any(|d| {
            let (JobDeletion::Superseded(n) | JobDeletion::Retried(n)) = d;
            n == job
        }) {
            continue;
        }
        apply::set_job_ttl(ctx, ns, job, *ttl).await?;
    }
    Ok(())
}

fn migration_changes(decision: &Decision) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for deletion in &decision.delete_jobs {
        match deletion {
            JobDeletion::Superseded(job) => out.push((
                "MigrationSuperseded",
                format!("deleted migration Job {job}: its image is no longer wanted"),
            )),
            JobDeletion::Retried(job) => out.push((
                "MigrationRetried",
                format!("deleted the failed migration Job {job} to retry after the spec changed"),
            )),
        }
    }
    if decision.create_job
        && let Phase::Migrating { job } = &decision.phase
    {
        out.push(("MigrationStarted", format!("started migration Job {job}; the Deployment keeps its current image until it succeeds")));
    }
    out
}

/// 4xx answers other than conflicts and throttling mean the object itself is wrong.
fn is_rejection(code: u16) -> bool {
    (400..500).contains(&code) && code != 409 && code != 429 && code != 401 && code != 403
}

/// A ClockifyAddon the API server stored but the operator cannot read: reported on the object
/// (a Warning Event and a Stalled status) once per generation, without breaking the watch.
async fn report_invalid(invalid: &InvalidObject, ctx: &Context) -> Result<Action, Error> {
    let meta = &invalid.metadata;
    let (Some(ns), Some(name)) = (meta.namespace.clone(), meta.name.clone()) else {
        return Ok(Action::await_change());
    };
    let generation = meta.generation.unwrap_or(0);
    let key = key_of(meta);
    if ctx
        .reported_invalid
        .lock()
        .map(|r| r.get(&key) == Some(&generation))
        .unwrap_or(false)
    {
        return Ok(Action::await_change());
    }
    let message = format!(
        "the operator cannot read this ClockifyAddon: {}",
        invalid.error
    );
    tracing::warn!(object = %key, error = %invalid.error, "malformed ClockifyAddon");
    let reference = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some("clockify-addons.io/v1alpha1".into()),
        kind: Some("ClockifyAddon".into()),
        name: Some(name.clone()),
        namespace: Some(ns.clone()),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        ..Default::default()
    };
    crate::events::publish(
        ctx,
        &reference,
        EventType::Warning,
        "InvalidObject",
        "Reconcile",
        message.clone(),
    )
    .await;
    let now = k8s_openapi::jiff::Timestamp::now();
    let cond = |t: &str, s: &str| json!({"type": t, "status": s, "reason": "InvalidObject", "message": message, "observedGeneration": generation, "lastTransitionTime": Time(now)});
    let status = json!({
        "observedGeneration": generation,
        "conditions": [cond(status::READY, "False"), cond(status::RECONCILING, "False"), cond(status::STALLED, "True")],
    });
    let api: Api<DynamicObject> = Api::namespaced_with(
        ctx.client.clone(),
        &ns,
        &kube::api::ApiResource::erase::<ClockifyAddon>(&()),
    );
    let patch = json!({"apiVersion": "clockify-addons.io/v1alpha1", "kind": "ClockifyAddon", "status": status});
    api.patch_status(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(Error::Status)?;
    ctx.metrics
        .writes
        .with_label_values(&["ClockifyAddon", "status"])
        .inc();
    if let Ok(mut r) = ctx.reported_invalid.lock() {
        r.insert(key, generation);
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let b = |n| backoff(n).as_secs_f64();
        assert!((1.0..1.3).contains(&b(1)));
        assert!((2.0..2.5).contains(&b(2)));
        assert!((8.0..9.7).contains(&b(4)));
        assert!((300.0..361.0).contains(&b(30)));
    }

    #[test]
    fn rejections_are_client_mistakes() {
        assert!(is_rejection(422));
        assert!(is_rejection(400));
        assert!(!is_rejection(409));
        assert!(!is_rejection(429));
        assert!(!is_rejection(500));
    }
}
