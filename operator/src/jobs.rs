//! What the operator reads from the Jobs it starts (migrations, backups, restores): their state,
//! the image and version they ran, the ClockifyAddon generation that created them.

use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;

use crate::build::job::{GENERATION_ANNOTATION, IMAGE_ANNOTATION};
use crate::crd::RETRY_MIGRATION_ANNOTATION;
use crate::meta::VERSION_ANNOTATION;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    Active,
    Succeeded,
    Failed { reason: String, message: String },
}

/// What the operator reads from a Job it started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobView {
    pub name: String,
    pub image: Option<String>,
    pub version: Option<String>,
    /// The ClockifyAddon generation that created it.
    pub generation: i64,
    pub state: JobState,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// `ttlSecondsAfterFinished`: when the Job controller deletes it after it finished.
    pub ttl: Option<i32>,
    /// The retry-migration annotation value the Job was created under.
    pub retry: Option<String>,
}

pub fn job_view(job: &Job) -> JobView {
    let ann = job.annotations();
    let conditions = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let is = |t: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == t && c.status == "True")
    };
    let state = if is("Complete").is_some() {
        JobState::Succeeded
    } else if let Some(c) = is("Failed") {
        JobState::Failed {
            reason: c.reason.clone().unwrap_or_default(),
            message: c.message.clone().unwrap_or_default(),
        }
    } else {
        JobState::Active
    };
    let finished_at = job
        .status
        .as_ref()
        .and_then(|s| s.completion_time.as_ref())
        .map(|t| t.0.to_string())
        .or_else(|| {
            is("Failed")
                .and_then(|c| c.last_transition_time.as_ref())
                .map(|t| t.0.to_string())
        });
    JobView {
        name: job.name_any(),
        image: ann.get(IMAGE_ANNOTATION).cloned(),
        version: ann.get(VERSION_ANNOTATION).cloned(),
        generation: ann
            .get(GENERATION_ANNOTATION)
            .and_then(|g| g.parse().ok())
            .unwrap_or(0),
        state,
        started_at: job
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0.to_string()),
        finished_at,
        ttl: job.spec.as_ref().and_then(|s| s.ttl_seconds_after_finished),
        retry: ann.get(RETRY_MIGRATION_ANNOTATION).cloned(),
    }
}
