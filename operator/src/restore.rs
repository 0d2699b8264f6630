//! Restore requested in the spec, run once per request: scale the Deployment to zero, run the
//! restore Job, run migrations, scale back. Every step is derived from the cluster (the
//! Deployment and the restore Jobs) and from `status.restore`, which records the request: a
//! request whose id is recorded as finished never runs again, and a restarted operator resumes
//! at the step the cluster shows. The phase never goes back: a restore Job that vanished after
//! it was started fails the request rather than running a second restore.

use k8s_openapi::api::batch::v1::Job;
use kube::runtime::events::EventType;

use crate::build::backup::{
    restore_job, restore_job_name, restore_migration_job, restore_migration_job_name,
};
use crate::crd::{ClockifyAddon, RestorePhase, RestoreStatus};
use crate::jobs::{JobState, JobView};
use crate::settings::Settings;
use crate::views::DeploymentState;

/// Whether a restore request is under way (not yet recorded as finished).
pub fn active(addon: &ClockifyAddon) -> bool {
    let Some(req) = &addon.spec.restore else {
        return false;
    };
    !addon
        .status
        .as_ref()
        .and_then(|s| s.restore.as_ref())
        .is_some_and(|r| r.request_id == req.request_id && r.phase.is_final())
}

#[derive(Debug, Clone)]
pub struct Decision {
    pub status: RestoreStatus,
    /// Hold the Deployment at zero replicas.
    pub scale_to_zero: bool,
    /// Jobs to create.
    pub create: Vec<Job>,
    /// The phase changed: an Event to publish.
    pub event: Option<(EventType, &'static str, String)>,
}

impl Decision {
    /// While the database is being replaced, no upgrade migration may run against it.
    pub fn holds_upgrades(&self) -> bool {
        matches!(
            self.status.phase,
            RestorePhase::ScalingDown | RestorePhase::Restoring | RestorePhase::Migrating
        )
    }
}

/// The add-on's pods still there while scaling down (running and terminating ones alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PodsLeft {
    pub total: usize,
    /// Of those, the ones being deleted.
    pub terminating: usize,
}

/// Whether the Deployment is scaled to zero and its controller says so (or it does not exist);
/// pods may still be terminating: see [`PodsLeft`].
pub fn scaled_down(d: Option<&DeploymentState>) -> bool {
    let Some(d) = d else { return true };
    let spec_zero = d.replicas == Some(0);
    let status = d.status.clone().unwrap_or_default();
    let observed = status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
    spec_zero && observed && status.replicas.unwrap_or(0) == 0
}

fn failure(j: &JobView, message: Option<&str>) -> String {
    match (message, &j.state) {
        (Some(m), _) if !m.is_empty() => m.to_owned(),
        (_, JobState::Failed { reason, message }) => format!("{reason}: {message}"),
        _ => "failed".to_owned(),
    }
}

/// What to do about `spec.restore` this pass; None when there is nothing to do.
/// `messages` holds the termination messages of finished restore Jobs, by Job name.
pub fn decide(
    addon: &ClockifyAddon,
    s: &Settings,
    deployment: Option<&DeploymentState>,
    jobs: &[JobView],
    messages: &std::collections::BTreeMap<String, String>,
    pods: Option<PodsLeft>,
    now: &str,
) -> Option<Decision> {
    let req = addon.spec.restore.as_ref()?;
    let backup = s.backup.as_ref()?;
    let previous = addon
        .status
        .as_ref()
        .and_then(|s| s.restore.clone())
        .filter(|r| r.request_id == req.request_id);
    if previous.as_ref().is_some_and(|p| p.phase.is_final()) {
        return None;
    }
    let was = previous.as_ref().map(|p| p.phase);
    let restore_name = restore_job_name(addon, &req.request_id);
    let migrate_name = restore_migration_job_name(addon, &req.request_id);
    let restore = jobs.iter().find(|j| j.name == restore_name);
    let migrate = jobs.iter().find(|j| j.name == migrate_name);
    let mut create = Vec::new();
    // What the restore Job reported (read once, when it finished), such as the backup it
    // restored, or that this request had already been applied to the database.
    let report = messages
        .get(&restore_name)
        .cloned()
        .or_else(|| previous.as_ref().and_then(|p| p.report.clone()));
    let restored = report
        .clone()
        .unwrap_or_else(|| format!("restored {}", req.from));
    let (phase, message, scale_to_zero) = match (restore, migrate) {
        (_, Some(m)) => match &m.state {
            JobState::Active => (
                RestorePhase::Migrating,
                format!(
                    "migration Job {migrate_name} is bringing the restored schema to version {}",
                    addon.spec.version
                ),
                true,
            ),
            JobState::Failed { .. } => (
                RestorePhase::Failed,
                format!(
                    "the backup was restored, but migration Job {migrate_name} failed ({}); the Deployment is scaled back, fix the cause and migrate",
                    failure(m, messages.get(&migrate_name).map(String::as_str))
                ),
                false,
            ),
            JobState::Succeeded => {
                let r = crate::rollout::rollout(deployment, s.min_replicas);
                // A Deployment still at zero replicas is "complete" too: wait for pods.
                if r.exists && r.desired > 0 && r.complete && r.available {
                    (
                        RestorePhase::Succeeded,
                        format!("{restored}; migrated; {}", r.message),
                        false,
                    )
                } else {
                    (
                        RestorePhase::ScalingUp,
                        format!(
                            "{restored}; migrated; scaling the Deployment back up: {}",
                            r.message
                        ),
                        false,
                    )
                }
            }
        },
        (Some(r), None) => match &r.state {
            JobState::Active => (
                RestorePhase::Restoring,
                format!(
                    "restore Job {restore_name} is restoring backup {}",
                    req.from
                ),
                true,
            ),
            JobState::Succeeded => {
                create.push(restore_migration_job(addon, s, &req.request_id));
                (
                    RestorePhase::Migrating,
                    format!(
                        "restore Job {restore_name} succeeded ({restored}); started migration Job {migrate_name}"
                    ),
                    true,
                )
            }
            JobState::Failed { .. } => (
                RestorePhase::Failed,
                format!(
                    "restore Job {restore_name} failed ({}); the database was left as it was and the Deployment is scaled back",
                    failure(r, messages.get(&restore_name).map(String::as_str))
                ),
                false,
            ),
        },
        (None, None) if was.is_some_and(|p| p >= RestorePhase::Restoring) => (
            RestorePhase::Failed,
            format!(
                "restore Job {restore_name} disappeared before its result was seen; set a new requestId to restore again"
            ),
            false,
        ),
        (None, None) if scaled_down(deployment) && pods.is_some_and(|p| p.total == 0) => {
            create.push(restore_job(addon, s, backup, &req.request_id, &req.from));
            (
                RestorePhase::Restoring,
                format!(
                    "the add-on is scaled to zero and no pod of it is left; started restore Job {restore_name} for backup {}",
                    req.from
                ),
                true,
            )
        }
        (None, None) => (
            RestorePhase::ScalingDown,
            match pods {
                Some(p) if p.total > 0 => format!(
                    "scaled the Deployment to zero; waiting for {} pod(s) to stop ({} terminating) before restoring",
                    p.total, p.terminating
                ),
                _ => "scaling the Deployment to zero before restoring".to_owned(),
            },
            true,
        ),
    };
    let event = (was != Some(phase)).then(|| {
        let (kind, reason) = match phase {
            RestorePhase::ScalingDown => (EventType::Normal, "RestoreScalingDown"),
            RestorePhase::Restoring => (EventType::Normal, "RestoreStarted"),
            RestorePhase::Migrating => (EventType::Normal, "RestoreMigrating"),
            RestorePhase::ScalingUp => (EventType::Normal, "RestoreScalingUp"),
            RestorePhase::Succeeded => (EventType::Normal, "RestoreSucceeded"),
            RestorePhase::Failed => (EventType::Warning, "RestoreFailed"),
        };
        (
            kind,
            reason,
            format!("restore {}: {message}", req.request_id),
        )
    });
    let job = (phase >= RestorePhase::Restoring).then(|| restore_name.clone());
    Some(Decision {
        status: RestoreStatus {
            request_id: req.request_id.clone(),
            from: req.from.clone(),
            phase,
            job,
            message: Some(message),
            report,
            started_at: previous
                .as_ref()
                .and_then(|p| p.started_at.clone())
                .or_else(|| Some(now.to_owned())),
            finished_at: phase.is_final().then(|| now.to_owned()),
        },
        scale_to_zero,
        create,
        event,
    })
}
