//! Zero-downtime upgrades. When the desired image differs from the one the Deployment runs, a
//! migration Job with the new image runs first; the Deployment keeps the old image until the Job
//! succeeds, then rolls with `maxUnavailable: 0`. A failed Job leaves the old version serving
//! until the spec changes again. Every decision is derived from the cluster: the Deployment's
//! pod template and the migration Jobs (never from memory or from status), so an operator
//! restarted at any moment resumes correctly.

use kube::ResourceExt;

use crate::build::job::{TTL_AFTER_SUCCESS, job_name};
use crate::crd::{ClockifyAddon, MigrationRecord, RETRY_MIGRATION_ANNOTATION};
pub use crate::jobs::{JobState, JobView};
use crate::settings::Settings;
use crate::views::DeploymentState;

/// The image and version the Deployment's pod template runs, and the image it records as
/// migrated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub image: String,
    pub version: Option<String>,
    pub migrated_image: Option<String>,
}

pub fn running(d: Option<&DeploymentState>) -> Option<Running> {
    let d = d?;
    Some(Running {
        image: d.image.clone()?,
        version: d.version.clone(),
        migrated_image: d.migrated_image.clone(),
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// The Deployment runs (or will run) the desired image: nothing to migrate.
    Current,
    /// The migration Job runs (or is being created).
    Migrating { job: String },
    /// The Job succeeded: the Deployment rolls to the new image.
    Migrated { job: String },
    /// The Job failed: the previous version keeps serving.
    Failed {
        job: String,
        reason: String,
        message: String,
    },
}

/// What happens to the Deployment this pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeploymentPlan {
    /// Apply it with the desired image.
    Desired,
    /// Apply it keeping what it runs (other changes still apply).
    Hold(Running),
    /// Do not create it yet (first install: the database is not migrated).
    NotYet,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobDeletion {
    /// A Job for an image that is no longer wanted, still running.
    Superseded(String),
    /// The failed Job of this image, deleted so a new one retries: the spec changed, or the
    /// retry-migration annotation has a new value.
    Retried(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Finished migration Jobs whose TTL to set (a success expires) or remove (a failure stays
    /// until someone acts, whatever TTL an earlier release gave it).
    pub set_ttl: Vec<(String, Option<i32>)>,
    pub phase: Phase,
    pub deployment: DeploymentPlan,
    /// Create the migration Job for the desired image.
    pub create_job: bool,
    pub delete_jobs: Vec<JobDeletion>,
    /// The latest migration that succeeded, of those still in the cluster.
    pub last_migration: Option<MigrationRecord>,
    /// The running version (for messages).
    pub running_version: Option<String>,
}

/// The retry the annotation asks for, if the failed Job was not created under that value.
fn retry_asked(addon: &ClockifyAddon, j: &JobView) -> bool {
    addon
        .annotations()
        .get(RETRY_MIGRATION_ANNOTATION)
        .filter(|v| !v.trim().is_empty())
        .is_some_and(|v| j.retry.as_ref() != Some(v))
}

pub fn decide(
    addon: &ClockifyAddon,
    s: &Settings,
    deployment: Option<&DeploymentState>,
    jobs: &[JobView],
) -> Decision {
    let want = job_name(addon, &s.image);
    let set_ttl = jobs
        .iter()
        .filter_map(|j| match (&j.state, j.ttl) {
            (JobState::Succeeded, None) => Some((j.name.clone(), Some(TTL_AFTER_SUCCESS))),
            (JobState::Failed { .. }, Some(_)) => Some((j.name.clone(), None)),
            _ => None,
        })
        .collect();
    let running = running(deployment);
    let last_migration = jobs
        .iter()
        .filter(|j| j.state == JobState::Succeeded)
        .max_by(|a, b| a.finished_at.cmp(&b.finished_at))
        .map(|j| MigrationRecord {
            version: j.version.clone().unwrap_or_default(),
            job: j.name.clone(),
            finished_at: j.finished_at.clone(),
        });
    let mut delete_jobs: Vec<JobDeletion> = jobs
        .iter()
        .filter(|j| j.name != want && j.state == JobState::Active)
        .map(|j| JobDeletion::Superseded(j.name.clone()))
        .collect();
    let running_version = running.as_ref().and_then(|r| r.version.clone());
    // Migrated already: the template may have been edited by hand (drift), not upgraded.
    if running.as_ref().is_some_and(|r| {
        r.image == s.image || r.migrated_image.as_deref() == Some(s.image.as_str())
    }) {
        return Decision {
            set_ttl,
            phase: Phase::Current,
            deployment: DeploymentPlan::Desired,
            create_job: false,
            delete_jobs,
            last_migration,
            running_version,
        };
    }
    let held = match running {
        Some(r) => DeploymentPlan::Hold(r),
        None => DeploymentPlan::NotYet,
    };
    let generation = addon.metadata.generation.unwrap_or(0);
    let (phase, deployment, create_job) = match jobs.iter().find(|j| j.name == want) {
        None => (Phase::Migrating { job: want }, held, true),
        Some(j) => match &j.state {
            JobState::Active => (Phase::Migrating { job: want }, held, false),
            JobState::Succeeded => (
                Phase::Migrated { job: want },
                DeploymentPlan::Desired,
                false,
            ),
            JobState::Failed { .. } if generation > j.generation || retry_asked(addon, j) => {
                delete_jobs.push(JobDeletion::Retried(want.clone()));
                (Phase::Migrating { job: want }, held, true)
            }
            JobState::Failed { reason, message } => (
                Phase::Failed {
                    job: want,
                    reason: reason.clone(),
                    message: message.clone(),
                },
                held,
                false,
            ),
        },
    };
    Decision {
        set_ttl,
        phase,
        deployment,
        create_job,
        delete_jobs,
        last_migration,
        running_version,
    }
}
