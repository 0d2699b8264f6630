//! The Deployment's rollout as `kubectl rollout status` sees it.

use k8s_openapi::api::apps::v1::Deployment;

use crate::meta::VERSION_ANNOTATION;

/// The Deployment's rollout as `kubectl rollout status` sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rollout {
    pub exists: bool,
    pub complete: bool,
    pub available: bool,
    /// Why the rollout cannot progress (progress deadline exceeded).
    pub stuck: Option<String>,
    pub replicas: i32,
    pub ready: i32,
    pub updated: i32,
    pub desired: i32,
    /// The version in the Deployment's pod template.
    pub version: Option<String>,
    pub message: String,
}

pub fn rollout(d: Option<&Deployment>) -> Rollout {
    let Some(d) = d else {
        return Rollout {
            message: "the Deployment does not exist yet".into(),
            ..Rollout::default()
        };
    };
    let spec = d.spec.as_ref();
    let status = d.status.clone().unwrap_or_default();
    let desired = spec.and_then(|s| s.replicas).unwrap_or(1);
    let generation = d.metadata.generation.unwrap_or(0);
    let observed = status.observed_generation.unwrap_or(0) >= generation;
    let (updated, replicas) = (
        status.updated_replicas.unwrap_or(0),
        status.replicas.unwrap_or(0),
    );
    let (available_n, ready) = (
        status.available_replicas.unwrap_or(0),
        status.ready_replicas.unwrap_or(0),
    );
    let conditions = status.conditions.unwrap_or_default();
    let cond = |t: &str| conditions.iter().find(|c| c.type_ == t);
    let available = cond("Available").is_some_and(|c| c.status == "True");
    let stuck = cond("Progressing")
        .filter(|c| c.status == "False" && c.reason.as_deref() == Some("ProgressDeadlineExceeded"))
        .map(|c| {
            format!(
                "the rollout exceeded its progress deadline: {}",
                c.message.clone().unwrap_or_default()
            )
        });
    let version = spec
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(VERSION_ANNOTATION))
        .cloned();
    let (complete, message) = if !observed {
        (
            false,
            "waiting for the Deployment controller to observe the new spec".to_owned(),
        )
    } else if updated < desired {
        (false, format!("{updated} of {desired} replicas updated"))
    } else if replicas > updated {
        (
            false,
            format!("{} old replicas pending termination", replicas - updated),
        )
    } else if available_n < updated {
        (
            false,
            format!("{available_n} of {updated} updated replicas available"),
        )
    } else {
        (true, format!("{ready} of {desired} replicas ready"))
    };
    Rollout {
        exists: true,
        complete,
        available,
        stuck,
        replicas,
        ready,
        updated,
        desired,
        version,
        message,
    }
}
