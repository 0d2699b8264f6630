//! The Deployment's rollout as `kubectl rollout status` sees it.

use crate::views::DeploymentState;

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

/// The rollout of `d`. `floor` is the fewest available replicas at which the add-on serves
/// (the spec's minimum): an autoscaler adding a replica is not a rollout, and a pod starting
/// meanwhile does not make the add-on unavailable.
pub fn rollout(d: Option<&DeploymentState>, floor: i32) -> Rollout {
    let Some(d) = d else {
        return Rollout {
            message: "the Deployment does not exist yet".into(),
            ..Rollout::default()
        };
    };
    let status = d.status.clone().unwrap_or_default();
    let desired = d.replicas.unwrap_or(1);
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
    let needed = floor.min(desired).max(0);
    let available = available_n >= needed && (needed > 0 || desired == 0);
    let stuck = cond("Progressing")
        .filter(|c| c.status == "False" && c.reason.as_deref() == Some("ProgressDeadlineExceeded"))
        .map(|c| {
            format!(
                "the rollout exceeded its progress deadline: {}",
                c.message.clone().unwrap_or_default()
            )
        });
    let version = d.version.clone();
    // Rolled out: the controller saw this generation, and every pod runs its template (no pod of
    // an older one left); at least one does, unless none is wanted.
    let (complete, message) = if !observed {
        (
            false,
            "waiting for the Deployment controller to observe the new spec".to_owned(),
        )
    } else if replicas > updated {
        (
            false,
            format!(
                "{updated} of {desired} replicas updated, {} old replicas pending termination",
                replicas - updated
            ),
        )
    } else if updated == 0 && desired > 0 {
        (false, format!("0 of {desired} replicas updated"))
    } else if available_n < needed {
        (
            false,
            format!(
                "{available_n} of {updated} updated replicas available (at least {needed} needed)"
            ),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn d(generation: i64, replicas: i32, status: serde_json::Value) -> DeploymentState {
        serde_json::from_value(json!({"metadata": {"name": "a", "generation": generation},
            "spec": {"replicas": replicas, "selector": {}, "template": {"metadata": {"annotations": {"clockify-addons.io/version": "1"}}}},
            "status": status}))
        .unwrap()
    }

    #[test]
    fn a_rollout_is_done_when_every_pod_runs_the_observed_template() {
        // Not observed yet.
        let r = rollout(
            Some(&d(
                2,
                2,
                json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}),
            )),
            2,
        );
        assert!(!r.complete);
        // Old pods left.
        let r = rollout(
            Some(&d(
                2,
                2,
                json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 2}),
            )),
            2,
        );
        assert!(!r.complete && r.available);
        // Done.
        let r = rollout(
            Some(&d(
                2,
                2,
                json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2, "readyReplicas": 2}),
            )),
            2,
        );
        assert!(r.complete && r.available, "{r:?}");
        // An autoscaler added a replica that is starting: still rolled out and available.
        let r = rollout(
            Some(&d(
                3,
                3,
                json!({"observedGeneration": 3, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 2, "readyReplicas": 2}),
            )),
            2,
        );
        assert!(r.complete && r.available, "{r:?}");
        // Below the floor: not available.
        let r = rollout(
            Some(&d(
                3,
                3,
                json!({"observedGeneration": 3, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 1}),
            )),
            2,
        );
        assert!(!r.complete && !r.available);
        // Scaled to zero (a restore): done, nothing to serve.
        let r = rollout(Some(&d(4, 0, json!({"observedGeneration": 4}))), 2);
        assert!(r.complete && r.available);
    }
}
