//! The reconcile pipeline: observe (cached children) -> plan (pure) -> apply (server-side
//! apply, only what differs) -> prune (children no longer desired) -> status (only when it
//! changed) -> events (only on transitions).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{DeserializeGuard, error_boundary::InvalidObject};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::backups;
use crate::build::backup::{COMPONENT as BACKUP_COMPONENT, RESTORE_COMPONENT};
use crate::build::service_monitor;
use crate::crd::{ClockifyAddon, ClockifyAddonStatus, OnDemandBackup, PAUSED_ANNOTATION};
use crate::meta::MANAGER;
use crate::metrics::Metrics;
use crate::plan::{Capabilities, Child, Kind, Plan, plan};
use crate::status::{self, Outcome, keep_transition_times};
use crate::subset::is_subset;
use crate::upgrade::{self, Decision, DeploymentPlan, JobDeletion, Phase};

/// How often a healthy object is looked at again (drift on objects no watch covers).
pub const RESYNC: Duration = Duration::from_secs(300);
/// How long a discovery answer about ServiceMonitor is trusted.
pub const CAPABILITY_TTL: Duration = Duration::from_secs(60);

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
    #[error("discovering the ServiceMonitor API: {0}")]
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

/// The cached children, from watches filtered on the managed-by label.
#[derive(Clone)]
pub struct Stores {
    pub service_accounts: Store<ServiceAccount>,
    pub config_maps: Store<ConfigMap>,
    pub network_policies: Store<NetworkPolicy>,
    pub services: Store<Service>,
    pub deployments: Store<Deployment>,
    pub hpas: Store<HorizontalPodAutoscaler>,
    pub pdbs: Store<PodDisruptionBudget>,
    pub jobs: Store<Job>,
    pub cron_jobs: Store<CronJob>,
    pub pvcs: Store<PersistentVolumeClaim>,
}

fn cached<K>(store: &Store<K>, ns: &str, name: &str) -> Option<Value>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + 'static,
{
    store
        .get(&ObjectRef::new(name).within(ns))
        .and_then(|o| serde_json::to_value(&*o).ok())
}

impl Stores {
    /// The cached object of `kind` named `name`, as JSON.
    pub fn get(&self, kind: Kind, ns: &str, name: &str) -> Option<Value> {
        match kind {
            Kind::ServiceAccount => cached(&self.service_accounts, ns, name),
            Kind::ConfigMap => cached(&self.config_maps, ns, name),
            Kind::NetworkPolicy => cached(&self.network_policies, ns, name),
            Kind::Service => cached(&self.services, ns, name),
            Kind::Deployment => cached(&self.deployments, ns, name),
            Kind::HorizontalPodAutoscaler => cached(&self.hpas, ns, name),
            Kind::PodDisruptionBudget => cached(&self.pdbs, ns, name),
            Kind::ServiceMonitor => None,
            Kind::PersistentVolumeClaim => cached(&self.pvcs, ns, name),
            Kind::CronJob => cached(&self.cron_jobs, ns, name),
            Kind::Job => cached(&self.jobs, ns, name),
        }
    }

    /// This ClockifyAddon's Jobs of `component` (backup or restore): its own, and for backups
    /// those its CronJob started.
    pub fn component_jobs(&self, addon: &ClockifyAddon, component: &str) -> Vec<Arc<Job>> {
        let uid = addon.meta().uid.clone();
        let cron = crate::build::backup::cron_job_name(addon);
        let selector = crate::build::backup::selector(addon, component);
        self.jobs
            .state()
            .into_iter()
            .filter(|j| j.namespace() == addon.namespace())
            .filter(|j| selector.iter().all(|(k, v)| j.labels().get(k) == Some(v)))
            .filter(|j| {
                j.owner_references().iter().any(|o| {
                    (uid.is_some() && Some(&o.uid) == uid.as_ref())
                        || (o.kind == "CronJob" && o.name == cron)
                })
            })
            .collect()
    }

    /// This ClockifyAddon's migration Jobs.
    pub fn migration_jobs(&self, addon: &ClockifyAddon) -> Vec<upgrade::JobView> {
        let uid = addon.meta().uid.clone();
        let selector = crate::build::job::job_selector(addon);
        self.jobs
            .state()
            .iter()
            .filter(|j| j.namespace() == addon.namespace())
            .filter(|j| selector.iter().all(|(k, v)| j.labels().get(k) == Some(v)))
            .filter(|j| {
                uid.is_some()
                    && j.owner_references()
                        .iter()
                        .any(|o| Some(&o.uid) == uid.as_ref())
            })
            .map(|j| crate::jobs::job_view(j))
            .collect()
    }

    pub fn deployment(&self, ns: &str, name: &str) -> Option<Arc<Deployment>> {
        self.deployments.get(&ObjectRef::new(name).within(ns))
    }

    /// Waits until every cache has its first full list.
    pub async fn wait_until_ready(&self) -> bool {
        synced(&self.service_accounts).await
            && synced(&self.config_maps).await
            && synced(&self.network_policies).await
            && synced(&self.services).await
            && synced(&self.deployments).await
            && synced(&self.hpas).await
            && synced(&self.pdbs).await
            && synced(&self.jobs).await
            && synced(&self.cron_jobs).await
            && synced(&self.pvcs).await
    }
}

/// Waits for a store's first full list. The store's readiness signal wakes only one waiter (the
/// controller's own runner also waits on the main store), so this re-polls rather than rely on
/// being woken.
pub async fn synced<K>(store: &Store<K>) -> bool
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        match tokio::time::timeout(Duration::from_millis(100), store.wait_until_ready()).await {
            Ok(result) => return result.is_ok(),
            Err(_) => continue,
        }
    }
}

/// Whether the cluster serves ServiceMonitor, asked at most once per [`CAPABILITY_TTL`].
#[derive(Default)]
pub struct CapabilityCache {
    answer: Mutex<Option<(Instant, bool)>>,
    /// A fixed answer (tests and benchmarks): never asks the API server.
    pinned: Option<bool>,
}

impl CapabilityCache {
    pub fn known(service_monitor: bool) -> Self {
        Self {
            answer: Mutex::new(None),
            pinned: Some(service_monitor),
        }
    }

    pub async fn get(&self, client: &Client) -> Result<Capabilities, Error> {
        if let Some(served) = self.pinned {
            return Ok(Capabilities {
                service_monitor: served,
            });
        }
        let mut answer = self.answer.lock().await;
        if let Some((at, served)) = *answer
            && at.elapsed() < CAPABILITY_TTL
        {
            return Ok(Capabilities {
                service_monitor: served,
            });
        }
        let served = match client
            .list_api_group_resources("monitoring.coreos.com/v1")
            .await
        {
            Ok(list) => list.resources.iter().any(|r| r.name == "servicemonitors"),
            // Not served: no ServiceMonitor, and never an error.
            Err(kube::Error::Api(s)) if s.code == 404 => false,
            Err(e) => return Err(Error::Discovery(e)),
        };
        *answer = Some((Instant::now(), served));
        Ok(Capabilities {
            service_monitor: served,
        })
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
    pub capabilities: CapabilityCache,
    /// Reconcile counts, durations, errors and writes.
    pub metrics: Metrics,
    /// Consecutive failures per object, for exponential backoff (reset on success).
    pub failures: std::sync::Mutex<HashMap<String, u32>>,
    /// Generations of malformed objects already reported, so a report never repeats itself.
    pub reported_invalid: std::sync::Mutex<HashMap<String, i64>>,
    /// Whether the child caches hold their first full list. Until then a reconcile would see
    /// existing children as missing and apply them again, so it waits.
    pub caches_synced: std::sync::atomic::AtomicBool,
}

impl Context {
    pub fn new(
        client: Client,
        recorder: Recorder,
        stores: Stores,
        capabilities: CapabilityCache,
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

/// What a converge pass changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub pruned: Vec<String>,
    /// Migration Jobs started, superseded or retried: (event reason, note).
    pub migration: Vec<(&'static str, String)>,
    /// Backups and restores: (warning, event reason, note).
    pub backup: Vec<(bool, &'static str, String)>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.created.is_empty()
            && self.updated.is_empty()
            && self.pruned.is_empty()
            && self.migration.is_empty()
            && self.backup.is_empty()
    }
}

async fn reconcile_addon(addon: &ClockifyAddon, ctx: &Context) -> Result<Action, Error> {
    if addon.metadata.deletion_timestamp.is_some() {
        // Owner references let the garbage collector remove the children.
        return Ok(Action::await_change());
    }
    let ns = addon.namespace().ok_or(Error::MissingNamespace)?;
    let name = addon.name_any();
    let paused = addon
        .annotations()
        .get(PAUSED_ANNOTATION)
        .is_some_and(|v| v == "true");
    let caps = ctx.capabilities.get(&ctx.client).await?;

    let deployment = ctx.stores.deployment(&ns, &name);
    let jobs = ctx.stores.migration_jobs(addon);
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let mut upgrade_decision = None;
    let mut restore_decision = None;
    let mut backup_state = None;
    let (outcome, changes, service_monitor_missing) = match plan(addon, caps) {
        Err(invalid) => (Outcome::Invalid(invalid.0), Changes::default(), false),
        Ok(plan) => {
            let mut decision = upgrade::decide(addon, &plan.settings, deployment.as_deref(), &jobs);
            let restore = if paused {
                None
            } else {
                decide_restore(addon, &plan, deployment.as_deref(), ctx, &ns, &now).await
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
            }
            match &restore {
                Some(r) if r.scale_to_zero => scale_to_zero(&mut plan),
                // Scaling back: apply the Deployment even if it looks in sync, so the zero
                // replicas the restore set are released (an autoscaler then takes over).
                Some(_)
                    if deployment
                        .as_ref()
                        .and_then(|d| d.spec.as_ref())
                        .and_then(|s| s.replicas)
                        == Some(0) =>
                {
                    plan.force_apply.push(Kind::Deployment)
                }
                _ => {}
            }
            let missing = plan.service_monitor_missing;
            let result = if paused {
                let drift = drifted(&plan, ctx, &ns).await?;
                (
                    Outcome::Paused {
                        in_sync: drift.is_empty() && decision.phase == Phase::Current,
                    },
                    Changes::default(),
                    missing,
                )
            } else {
                // The other children first: the Job's pod runs as the ServiceAccount and inside the NetworkPolicy.
                let converged = match converge(addon, &plan, ctx, &ns).await {
                    Ok(changes) => migrate(addon, &plan, &decision, ctx, &ns)
                        .await
                        .map(|()| changes),
                    Err(e) => Err(e),
                };
                let converged = match converged {
                    Ok(mut changes) => {
                        match run_backups(addon, &plan, restore.as_ref(), ctx, &ns).await {
                            Ok((state, notes)) => {
                                backup_state = state;
                                changes.backup = notes;
                                Ok(changes)
                            }
                            Err(e) => Err(e),
                        }
                    }
                    Err(e) => Err(e),
                };
                match converged {
                    Ok(mut changes) => {
                        changes.migration = migration_changes(&decision);
                        if restore.is_some() {
                            // The restore's own Events say why these changed.
                            let own = [
                                format!("Deployment {name}"),
                                format!("CronJob {}", crate::build::backup::cron_job_name(addon)),
                            ];
                            changes.updated.retain(|c| !own.contains(c));
                        }
                        if let Some(r) = &restore
                            && let Some((kind, reason, note)) = &r.event
                        {
                            changes.backup.push((
                                *kind == EventType::Warning,
                                reason,
                                note.clone(),
                            ));
                        }
                        // The Deployment moving to a freshly migrated image is the upgrade, not drift.
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

    let rollout = status::rollout(deployment.as_deref());
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
            },
            &now,
        ),
    );

    ctx.metrics
        .observe_addon(&ns, &name, &snapshot(addon, &next));
    publish_events(addon, ctx, &changes, addon.status.as_ref(), &next, &outcome).await;
    if addon.status.as_ref() != Some(&next) {
        write_status(ctx, &ns, &name, &next).await?;
    }
    Ok(match outcome {
        Outcome::Invalid(_) | Outcome::Rejected(_) => Action::await_change(),
        _ => Action::requeue(RESYNC),
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

/// The termination message of a finished Job's pod (what the backup or restore reported).
/// Reading pods is best effort: without it, status falls back to the Job's own reason.
async fn termination_message(ctx: &Context, ns: &str, job: &str) -> Option<String> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let lp = ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}"));
    match pods.list(&lp).await {
        Ok(list) => {
            let mut messages: Vec<(String, String)> = list
                .items
                .iter()
                .flat_map(|p| {
                    let started = p
                        .status
                        .as_ref()
                        .and_then(|s| s.start_time.as_ref())
                        .map(|t| t.0.to_string())
                        .unwrap_or_default();
                    p.status
                        .as_ref()
                        .and_then(|s| s.container_statuses.clone())
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(move |c| {
                            c.state
                                .and_then(|s| s.terminated)
                                .and_then(|t| t.message)
                                .map(|m| (started.clone(), m.trim().to_owned()))
                        })
                })
                .filter(|(_, m)| !m.is_empty())
                .collect();
            messages.sort();
            messages.pop().map(|(_, m)| last_line(&m))
        }
        Err(e) => {
            tracing::warn!(job, error = %e, "cannot read the Job's pods for its termination message");
            None
        }
    }
}

/// A termination message may be the tail of a log (FallbackToLogsOnError): its last line, and
/// from a JSON log line, its error or message.
fn last_line(m: &str) -> String {
    let line = m
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(m)
        .trim();
    match serde_json::from_str::<Value>(line) {
        Ok(v) => v
            .get("error")
            .or_else(|| v.get("message"))
            .and_then(Value::as_str)
            .unwrap_or(line)
            .to_owned(),
        Err(_) => line.chars().take(1000).collect(),
    }
}

/// The restore decision, reading the termination messages of restore Jobs that failed.
async fn decide_restore(
    addon: &ClockifyAddon,
    plan: &Plan,
    deployment: Option<&Deployment>,
    ctx: &Context,
    ns: &str,
    now: &Time,
) -> Option<crate::restore::Decision> {
    if !crate::restore::active(addon) {
        return None;
    }
    let jobs: Vec<upgrade::JobView> = ctx
        .stores
        .component_jobs(addon, RESTORE_COMPONENT)
        .iter()
        .map(|j| crate::jobs::job_view(j))
        .collect();
    let mut messages = std::collections::BTreeMap::new();
    for j in &jobs {
        if matches!(j.state, upgrade::JobState::Failed { .. })
            && let Some(m) = termination_message(ctx, ns, &j.name).await
        {
            messages.insert(j.name.clone(), m);
        }
    }
    crate::restore::decide(
        addon,
        &plan.settings,
        deployment,
        &jobs,
        &messages,
        &now.0.to_string(),
    )
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
            apply(ctx, &Child::Job(Box::new(job.clone())), ns).await?;
        }
    }
    let Some(b) = &plan.settings.backup else {
        return Ok((None, notes));
    };
    let mut on_demand = None;
    // Not while a restore replaces the database: the request waits (it is not recorded yet).
    if restore.is_none()
        && let Some((request, job)) = backups::on_demand_request(addon)
    {
        if ctx.stores.get(Kind::Job, ns, &job).is_none() {
            let j = crate::build::backup::on_demand_job(addon, &plan.settings, b, &request);
            apply(ctx, &Child::Job(Box::new(j)), ns).await?;
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
    let jobs: Vec<backups::BackupJob> = ctx
        .stores
        .component_jobs(addon, BACKUP_COMPONENT)
        .iter()
        .map(|j| backups::backup_job(j))
        .collect();
    let mut messages = std::collections::BTreeMap::new();
    for name in backups::unrecorded(addon, &jobs) {
        if let Some(m) = termination_message(ctx, ns, &name).await {
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

/// Deletes superseded and retried migration Jobs, then creates the one this image needs.
async fn migrate(
    addon: &ClockifyAddon,
    plan: &Plan,
    decision: &Decision,
    ctx: &Context,
    ns: &str,
) -> Result<(), Error> {
    for deletion in &decision.delete_jobs {
        let (JobDeletion::Superseded(name) | JobDeletion::Retried(name)) = deletion;
        match Api::<Job>::namespaced(ctx.client.clone(), ns)
            .delete(name, &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(source) => {
                return Err(Error::Prune {
                    kind: "Job",
                    name: name.clone(),
                    source,
                });
            }
        }
        ctx.metrics
            .writes
            .with_label_values(&["Job", "delete"])
            .inc();
    }
    if decision.create_job {
        let job = crate::build::migration_job(addon, &plan.settings);
        apply(ctx, &Child::Job(Box::new(job)), ns).await?;
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

async fn observed(ctx: &Context, kind: Kind, ns: &str, name: &str) -> Result<Option<Value>, Error> {
    if kind != Kind::ServiceMonitor {
        return Ok(ctx.stores.get(kind, ns, name));
    }
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), ns, &service_monitor::api_resource());
    match api.get_opt(name).await {
        Ok(o) => Ok(o.and_then(|o| serde_json::to_value(o).ok())),
        Err(source) => Err(Error::Read {
            kind: kind.as_str(),
            name: name.to_owned(),
            source,
        }),
    }
}

/// Children whose cluster state differs from the plan (for paused objects).
async fn drifted(plan: &Plan, ctx: &Context, ns: &str) -> Result<Vec<String>, Error> {
    let mut drift = Vec::new();
    for child in &plan.children {
        let current = observed(ctx, child.kind(), ns, &child.name()).await?;
        if !current
            .as_ref()
            .is_some_and(|o| is_subset(&child.to_json(), o))
        {
            drift.push(format!("{} {}", child.kind().as_str(), child.name()));
        }
    }
    Ok(drift)
}

/// Applies what differs and prunes what is no longer desired.
pub async fn converge(
    addon: &ClockifyAddon,
    plan: &Plan,
    ctx: &Context,
    ns: &str,
) -> Result<Changes, Error> {
    let mut changes = Changes::default();
    for child in &plan.children {
        let name = child.name();
        let desired = child.to_json();
        let current = observed(ctx, child.kind(), ns, &name).await?;
        if !plan.force_apply.contains(&child.kind())
            && current.as_ref().is_some_and(|o| is_subset(&desired, o))
        {
            continue;
        }
        tracing::debug!(kind = child.kind().as_str(), name = %name, exists = current.is_some(), "applying");
        apply(ctx, child, ns).await?;
        let label = format!("{} {}", child.kind().as_str(), name);
        if current.is_some() {
            changes.updated.push(label)
        } else {
            changes.created.push(label)
        }
    }
    for kind in &plan.absent {
        if *kind == Kind::ServiceMonitor && !plan.capabilities.service_monitor {
            continue; // the API is not served: there is nothing to look up
        }
        let name = crate::plan::optional_name(addon, *kind);
        let present = match observed(ctx, *kind, ns, &name).await? {
            Some(obj) => {
                let meta: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta =
                    serde_json::from_value(obj["metadata"].clone()).unwrap_or_default();

                addon.meta().uid.as_deref().is_some_and(|uid| {
                    meta.owner_references
                        .iter()
                        .flatten()
                        .any(|o| o.uid == uid && o.controller == Some(true))
                })
            }
            None => false,
        };
        if present {
            delete(ctx, *kind, ns, &name).await?;
            changes.pruned.push(format!("{} {}", kind.as_str(), name));
        }
    }
    Ok(changes)
}

async fn apply(ctx: &Context, child: &Child, ns: &str) -> Result<(), Error> {
    let pp = PatchParams::apply(MANAGER).force();
    let name = child.name();
    let client = ctx.client.clone();
    let err = |source| Error::Apply {
        kind: child.kind().as_str(),
        name: name.clone(),
        source,
    };
    match child {
        Child::ServiceAccount(o) => Api::<ServiceAccount>::namespaced(client, ns)
            .patch(&name, &pp, &Patch::Apply(o))
            .await
            .map(drop),
        Child::ConfigMap(o) => Api::<ConfigMap>::namespaced(client, ns)
            .patch(&name, &pp, &Patch::Apply(o))
            .await
            .map(drop),
        Child::NetworkPolicy(o) => Api::<NetworkPolicy>::namespaced(client, ns)
            .patch(&name, &pp, &Patch::Apply(o))
            .await
            .map(drop),
        Child::Service(o) => Api::<Service>::namespaced(client, ns)
            .patch(&name, &pp, &Patch::Apply(o))
            .await
            .map(drop),
        Child::Deployment(o) => Api::<Deployment>::namespaced(client, ns)
            .patch(&name, &pp, &Patch::Apply(o))
            .await
            .map(drop),
        Child::HorizontalPodAutoscaler(o) => Api::<HorizontalPodAutoscaler>::namespaced(client, ns)
            .patch(&name, &pp, &Patch::Apply(o))
            .await
            .map(drop),
        Child::PodDisruptionBudget(o) => Api::<PodDisruptionBudget>::namespaced(client, ns)
            .patch(&name, &pp, &Patch::Apply(o))
            .await
            .map(drop),
        Child::Job(o) => Api::<Job>::namespaced(client, ns)
            .patch(&name, &pp, &Patch::Apply(o))
            .await
            .map(drop),
        Child::CronJob(o) => Api::<CronJob>::namespaced(client, ns)
            .patch(&name, &pp, &Patch::Apply(o))
            .await
            .map(drop),
        Child::PersistentVolumeClaim(o) => Api::<PersistentVolumeClaim>::namespaced(client, ns)
            .patch(&name, &pp, &Patch::Apply(o))
            .await
            .map(drop),
        Child::ServiceMonitor(o) => {
            Api::<DynamicObject>::namespaced_with(client, ns, &service_monitor::api_resource())
                .patch(&name, &pp, &Patch::Apply(o))
                .await
                .map(drop)
        }
    }
    .map_err(err)?;
    ctx.metrics
        .writes
        .with_label_values(&[child.kind().as_str(), "apply"])
        .inc();
    Ok(())
}

async fn delete(ctx: &Context, kind: Kind, ns: &str, name: &str) -> Result<(), Error> {
    let dp = DeleteParams::background();
    let client = ctx.client.clone();
    let result = match kind {
        Kind::NetworkPolicy => Api::<NetworkPolicy>::namespaced(client, ns)
            .delete(name, &dp)
            .await
            .map(drop),
        Kind::HorizontalPodAutoscaler => Api::<HorizontalPodAutoscaler>::namespaced(client, ns)
            .delete(name, &dp)
            .await
            .map(drop),
        Kind::PodDisruptionBudget => Api::<PodDisruptionBudget>::namespaced(client, ns)
            .delete(name, &dp)
            .await
            .map(drop),
        Kind::ServiceMonitor => {
            Api::<DynamicObject>::namespaced_with(client, ns, &service_monitor::api_resource())
                .delete(name, &dp)
                .await
                .map(drop)
        }
        Kind::CronJob => Api::<CronJob>::namespaced(client, ns)
            .delete(name, &dp)
            .await
            .map(drop),
        // Never pruned: always desired, or (the backup volume) holding data.
        Kind::ServiceAccount
        | Kind::ConfigMap
        | Kind::Service
        | Kind::Deployment
        | Kind::PersistentVolumeClaim
        | Kind::Job => Ok(()),
    };
    match result {
        Ok(()) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(source) => {
            return Err(Error::Prune {
                kind: kind.as_str(),
                name: name.to_owned(),
                source,
            });
        }
    }
    ctx.metrics
        .writes
        .with_label_values(&[kind.as_str(), "delete"])
        .inc();
    Ok(())
}

async fn write_status(
    ctx: &Context,
    ns: &str,
    name: &str,
    status: &ClockifyAddonStatus,
) -> Result<(), Error> {
    let api: Api<ClockifyAddon> = Api::namespaced(ctx.client.clone(), ns);
    let patch = json!({"apiVersion": "clockify-addons.io/v1alpha1", "kind": "ClockifyAddon", "status": status});
    api.patch_status(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(Error::Status)?;
    ctx.metrics
        .writes
        .with_label_values(&["ClockifyAddon", "status"])
        .inc();
    Ok(())
}

async fn publish(
    ctx: &Context,
    addon_ref: &k8s_openapi::api::core::v1::ObjectReference,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let ev = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action: action.to_owned(),
        secondary: None,
    };
    match ctx.recorder.publish(&ev, addon_ref).await {
        Ok(()) => ctx
            .metrics
            .writes
            .with_label_values(&["Event", "create"])
            .inc(),
        // An Event that cannot be written must not fail the reconcile.
        Err(e) => tracing::warn!(error = %e, reason, "cannot publish an event"),
    }
}

/// Events on every meaningful transition: children created, changed back, pruned; Ready,
/// Stalled and Paused flipping.
async fn publish_events(
    addon: &ClockifyAddon,
    ctx: &Context,
    changes: &Changes,
    before: Option<&ClockifyAddonStatus>,
    after: &ClockifyAddonStatus,
    outcome: &Outcome,
) {
    let r = addon.object_ref(&());
    let spec_changed = before.and_then(|s| s.observed_generation) != addon.metadata.generation;
    if !changes.created.is_empty() {
        publish(
            ctx,
            &r,
            EventType::Normal,
            "Created",
            "Apply",
            format!("created {}", changes.created.join(", ")),
        )
        .await;
    }
    if !changes.updated.is_empty() {
        let (reason, note) = if spec_changed {
            (
                "Updated",
                format!("applied the new spec to {}", changes.updated.join(", ")),
            )
        } else {
            (
                "DriftCorrected",
                format!(
                    "restored {} (changed outside the operator)",
                    changes.updated.join(", ")
                ),
            )
        };
        publish(ctx, &r, EventType::Normal, reason, "Apply", note).await;
    }
    if status::condition_status(Some(after), status::DATABASE_MIGRATED) == Some("True")
        && status::condition_status(before, status::DATABASE_MIGRATED) == Some("False")
    {
        let job = after
            .last_migration
            .as_ref()
            .map(|m| m.job.clone())
            .unwrap_or_default();
        publish(
            ctx,
            &r,
            EventType::Normal,
            "MigrationSucceeded",
            "Migrate",
            format!(
                "migration Job {job} succeeded; rolling out version {}",
                addon.spec.version
            ),
        )
        .await;
    }
    for (reason, note) in &changes.migration {
        publish(ctx, &r, EventType::Normal, reason, "Migrate", note.clone()).await;
    }
    for (warning, reason, note) in &changes.backup {
        let kind = if *warning {
            EventType::Warning
        } else {
            EventType::Normal
        };
        let action = if reason.starts_with("Restore") {
            "Restore"
        } else {
            "Backup"
        };
        publish(ctx, &r, kind, reason, action, note.clone()).await;
    }
    if !changes.pruned.is_empty() {
        publish(
            ctx,
            &r,
            EventType::Normal,
            "Pruned",
            "Delete",
            format!("deleted {} (no longer desired)", changes.pruned.join(", ")),
        )
        .await;
    }
    let was = |t| status::condition_status(before, t);
    let is = |t| status::condition_status(Some(after), t);
    let message = |t: &str| {
        after
            .conditions
            .iter()
            .find(|c| c.type_ == t)
            .map(|c| c.message.clone())
            .unwrap_or_default()
    };
    if is(status::STALLED) == Some("True") && was(status::STALLED) != Some("True") {
        let reason = match outcome {
            Outcome::Invalid(_) => "InvalidSpec",
            Outcome::Rejected(_) => "ApplyRejected",
            _ => after
                .conditions
                .iter()
                .find(|c| c.type_ == status::STALLED)
                .map(|c| {
                    if c.reason == "MigrationFailed" {
                        "MigrationFailed"
                    } else {
                        "RolloutStuck"
                    }
                })
                .unwrap_or("RolloutStuck"),
        };
        publish(
            ctx,
            &r,
            EventType::Warning,
            reason,
            "Reconcile",
            message(status::STALLED),
        )
        .await;
    }
    if is(status::READY) != was(status::READY) {
        match is(status::READY) {
            Some("True") => {
                publish(
                    ctx,
                    &r,
                    EventType::Normal,
                    "Ready",
                    "Reconcile",
                    message(status::READY),
                )
                .await
            }
            _ if was(status::READY) == Some("True") => {
                publish(
                    ctx,
                    &r,
                    EventType::Warning,
                    "NotReady",
                    "Reconcile",
                    message(status::READY),
                )
                .await
            }
            _ => {}
        }
    }
    if is(status::PAUSED) == Some("True") && was(status::PAUSED) != Some("True") {
        publish(
            ctx,
            &r,
            EventType::Normal,
            "Paused",
            "Reconcile",
            message(status::PAUSED),
        )
        .await;
    }
    if is(status::PAUSED).is_none() && was(status::PAUSED) == Some("True") {
        publish(
            ctx,
            &r,
            EventType::Normal,
            "Resumed",
            "Reconcile",
            "reconciliation resumed".to_owned(),
        )
        .await;
    }
    if is(status::MONITORING) == Some("False") && was(status::MONITORING) != Some("False") {
        publish(
            ctx,
            &r,
            EventType::Warning,
            "ServiceMonitorAPIMissing",
            "Reconcile",
            message(status::MONITORING),
        )
        .await;
    }
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
    publish(
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
