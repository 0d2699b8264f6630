//! Status with kstatus semantics, so Flux, Argo CD and `kubectl wait` read health right:
//! `Ready` (everything runs the desired version), `Reconciling` (work in progress), `Stalled`
//! (will not progress without a change), plus `Available` (enough replicas serve), `Paused`
//! while paused, and `Monitoring` when a ServiceMonitor was asked for but cannot exist.
//!
//! A condition's `lastTransitionTime` moves only when its status changes, and messages are
//! deterministic, so an unchanged world yields an identical status and no write.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::ResourceExt;

use crate::backups;
use crate::build::service;
use crate::crd::{
    ClockifyAddon, ClockifyAddonStatus, RETRY_MIGRATION_ANNOTATION, RestorePhase, RestoreStatus,
};
pub use crate::rollout::{Rollout, rollout};
use crate::upgrade::{Decision, Phase};

pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";
pub const AVAILABLE: &str = "Available";
pub const PAUSED: &str = "Paused";
pub const MONITORING: &str = "Monitoring";
pub const EXPOSED: &str = "Exposed";
pub const DATABASE_MIGRATED: &str = "DatabaseMigrated";
pub const BACKUP_SUCCEEDED: &str = "BackupSucceeded";
pub const RESTORED: &str = "Restored";

/// What this reconcile found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every child matches the plan.
    Applied,
    /// Paused by annotation; `in_sync` says whether the children already match the plan.
    Paused { in_sync: bool },
    /// The spec cannot be acted on.
    Invalid(String),
    /// The API server refused a child: the spec must change.
    Rejected(String),
    /// A referenced Secret or key is missing ([`crate::secrets`]): nothing is applied, and
    /// pods already running keep the values they started with.
    SecretMissing(String),
}

fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: if status { "True" } else { "False" }.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        observed_generation: generation,
        last_transition_time: now.clone(),
    }
}

/// Backups and restores, as this pass saw them (None: not looked at; keep what status says).
#[derive(Debug, Clone, Default)]
pub struct Extras<'a> {
    pub backup: Option<&'a backups::State>,
    pub restore: Option<&'a RestoreStatus>,
    /// How the plan exposes the add-on (None: spec.exposure unset, or no plan).
    pub exposure: Option<&'a crate::plan::ExposureState>,
}

/// The status this reconcile should leave (before keeping transition times).
pub fn desired_status(
    addon: &ClockifyAddon,
    outcome: &Outcome,
    r: &Rollout,
    upgrade: Option<&Decision>,
    service_monitor_missing: bool,
    extras: &Extras<'_>,
    now: &Time,
) -> ClockifyAddonStatus {
    let generation = addon.metadata.generation;
    let c =
        |t: &str, s: bool, reason: &str, msg: &str| condition(t, s, reason, msg, generation, now);
    let mut conditions = Vec::new();
    // Ready means the desired version serves, not merely that a rollout finished.
    let at_target = r.version.as_deref() == Some(addon.spec.version.as_str());
    let healthy = r.complete && r.available && at_target;
    match outcome {
        Outcome::Invalid(msg) => {
            conditions.push(c(READY, false, "InvalidSpec", msg));
            conditions.push(c(RECONCILING, false, "InvalidSpec", msg));
            conditions.push(c(STALLED, true, "InvalidSpec", msg));
        }
        Outcome::Rejected(msg) => {
            conditions.push(c(READY, false, "ApplyRejected", msg));
            conditions.push(c(RECONCILING, false, "ApplyRejected", msg));
            conditions.push(c(STALLED, true, "ApplyRejected", msg));
        }
        Outcome::SecretMissing(msg) => {
            conditions.push(c(READY, false, "SecretMissing", msg));
            conditions.push(c(RECONCILING, false, "SecretMissing", msg));
            conditions.push(c(STALLED, true, "SecretMissing", msg));
        }
        Outcome::Paused { in_sync } => {
            let msg = "reconciliation is paused by the annotation clockify-addons.io/paused";
            if healthy && *in_sync {
                conditions.push(c(READY, true, "Paused", &format!("{}; {msg}", r.message)));
            } else if *in_sync {
                conditions.push(c(READY, false, "Paused", &format!("{}; {msg}", r.message)));
            } else {
                conditions.push(c(
                    READY,
                    false,
                    "Paused",
                    &format!("the spec is not applied: {msg}"),
                ));
            }
            conditions.push(c(RECONCILING, false, "Paused", msg));
            conditions.push(c(STALLED, false, "Paused", msg));
            conditions.push(c(PAUSED, true, "Paused", msg));
        }
        Outcome::Applied
            if matches!(
                upgrade.map(|u| &u.phase),
                Some(Phase::Migrating { .. } | Phase::Failed { .. })
            ) =>
        {
            let u = upgrade.expect("matched Some above");
            let serving = match &u.running_version {
                Some(v) => format!("version {v} keeps serving"),
                None => "nothing serves yet (first install)".to_owned(),
            };
            match &u.phase {
                Phase::Failed {
                    job,
                    reason,
                    message,
                } => {
                    let msg = format!(
                        "migration Job {job} failed ({reason}: {message}); {serving}. It stays failed until you act: change the spec, delete the Job, or set the annotation {RETRY_MIGRATION_ANNOTATION} to a new value to retry"
                    );
                    conditions.push(c(READY, false, "MigrationFailed", &msg));
                    conditions.push(c(RECONCILING, false, "MigrationFailed", &msg));
                    conditions.push(c(STALLED, true, "MigrationFailed", &msg));
                }
                _ => {
                    let job = match &u.phase {
                        Phase::Migrating { job } => job.as_str(),
                        _ => "",
                    };
                    let msg = format!(
                        "migration Job {job} is migrating the database for version {}; {serving}",
                        addon.spec.version
                    );
                    conditions.push(c(READY, false, "Migrating", &msg));
                    conditions.push(c(RECONCILING, true, "Migrating", &msg));
                    conditions.push(c(STALLED, false, "Migrating", &msg));
                }
            }
        }
        Outcome::Applied => match &r.stuck {
            Some(stuck) => {
                conditions.push(c(READY, false, "RolloutStuck", stuck));
                conditions.push(c(RECONCILING, false, "RolloutStuck", stuck));
                conditions.push(c(STALLED, true, "RolloutStuck", stuck));
            }
            None if healthy => {
                let msg = format!(
                    "{}, version {}",
                    r.message,
                    r.version.as_deref().unwrap_or(&addon.spec.version)
                );
                conditions.push(c(READY, true, "Ready", &msg));
                conditions.push(c(RECONCILING, false, "Ready", &msg));
                conditions.push(c(STALLED, false, "Ready", &msg));
            }
            None => {
                let msg = if r.complete && !at_target {
                    format!(
                        "rolling out version {} (pods run {})",
                        addon.spec.version,
                        r.version.as_deref().unwrap_or("an unknown version")
                    )
                } else {
                    r.message.clone()
                };
                conditions.push(c(READY, false, "Progressing", &msg));
                conditions.push(c(RECONCILING, true, "Progressing", &msg));
                conditions.push(c(STALLED, false, "Progressing", &msg));
            }
        },
    }
    conditions.push(if r.available {
        c(
            AVAILABLE,
            true,
            "MinimumReplicasAvailable",
            &format!("{} of {} replicas ready", r.ready, r.desired),
        )
    } else if r.exists {
        c(
            AVAILABLE,
            false,
            "MinimumReplicasUnavailable",
            &format!("{} of {} replicas ready", r.ready, r.desired),
        )
    } else {
        c(AVAILABLE, false, "NoDeployment", &r.message)
    });
    let previous = addon.status.clone().unwrap_or_default();
    match upgrade.map(|u| &u.phase) {
        Some(Phase::Current | Phase::Migrated { .. }) => conditions.push(c(
            DATABASE_MIGRATED,
            true,
            "Migrated",
            &format!(
                "the database schema is ready for version {}",
                addon.spec.version
            ),
        )),
        Some(Phase::Migrating { job }) => conditions.push(c(
            DATABASE_MIGRATED,
            false,
            "Migrating",
            &format!("migration Job {job} is running"),
        )),
        Some(Phase::Failed { job, reason, .. }) => conditions.push(c(
            DATABASE_MIGRATED,
            false,
            "MigrationFailed",
            &format!("migration Job {job} failed: {reason}"),
        )),
        // Not decided this pass (invalid spec): keep what was known.
        None => conditions.extend(
            previous
                .conditions
                .iter()
                .find(|c| c.type_ == DATABASE_MIGRATED)
                .cloned(),
        ),
    }
    let (last_backup, last_successful_backup, on_demand_backup) = match extras.backup {
        Some(b) => (
            b.last.clone(),
            b.last_successful.clone(),
            b.on_demand.clone(),
        ),
        None => (
            previous.last_backup.clone(),
            previous.last_successful_backup.clone(),
            previous.on_demand_backup.clone(),
        ),
    };
    if addon.spec.backup.is_some() {
        let when = |r: &crate::crd::BackupRecord| {
            r.finished_at
                .clone()
                .unwrap_or_else(|| "an unknown time".into())
        };
        conditions.push(match &last_backup {
            Some(b) if b.result == backups::SUCCEEDED => c(
                BACKUP_SUCCEEDED,
                true,
                "BackupSucceeded",
                &format!(
                    "backup Job {} finished at {}{}",
                    b.job,
                    when(b),
                    b.backup_id
                        .as_ref()
                        .map(|id| format!(" (backup {id})"))
                        .unwrap_or_default()
                ),
            ),
            Some(b) => {
                let good = match &last_successful_backup {
                    Some(s) => format!(
                        "the last successful backup finished at {} (Job {})",
                        when(s),
                        s.job
                    ),
                    None => "no backup has succeeded yet".to_owned(),
                };
                c(
                    BACKUP_SUCCEEDED,
                    false,
                    "BackupFailed",
                    &format!(
                        "backup Job {} failed at {}: {}; {good}",
                        b.job,
                        when(b),
                        b.message.as_deref().unwrap_or("no reason was reported")
                    ),
                )
            }
            None => Condition {
                status: "Unknown".to_owned(),
                ..c(
                    BACKUP_SUCCEEDED,
                    false,
                    "NoBackupYet",
                    "no backup has finished yet",
                )
            },
        });
    }
    let restore = extras.restore.cloned().or(previous.restore.clone());
    if let Some(rs) = &restore {
        let msg = rs.message.clone().unwrap_or_default();
        conditions.push(match rs.phase {
            RestorePhase::Succeeded => c(RESTORED, true, "RestoreSucceeded", &msg),
            RestorePhase::Failed => c(RESTORED, false, "RestoreFailed", &msg),
            p => c(RESTORED, false, p.as_str(), &msg),
        });
        if !rs.phase.is_final() {
            // While the database is replaced the add-on is not ready, and work is under way.
            let text = format!("restoring the database ({}): {msg}", rs.phase.as_str());
            for (t, value) in [(READY, false), (RECONCILING, true), (STALLED, false)] {
                match conditions.iter_mut().find(|x| x.type_ == t) {
                    Some(x) => *x = c(t, value, "Restoring", &text),
                    None => conditions.push(c(t, value, "Restoring", &text)),
                }
            }
        }
    }
    if let Some(e) = extras.exposure {
        use crate::plan::ExposureState;
        conditions.push(match e {
            ExposureState::Routed { gateway, host } => c(
                EXPOSED,
                true,
                "HTTPRoute",
                &format!("an HTTPRoute on Gateway {gateway} routes https://{host}/ to the add-on"),
            ),
            ExposureState::Ingress {
                host,
                instead_of_gateway: false,
            } => c(
                EXPOSED,
                true,
                "Ingress",
                &format!("an Ingress routes https://{host}/ to the add-on"),
            ),
            ExposureState::Ingress {
                host,
                instead_of_gateway: true,
            } => c(
                EXPOSED,
                true,
                "IngressInsteadOfGateway",
                &format!("the cluster does not serve gateway.networking.k8s.io/v1 HTTPRoute: an Ingress routes https://{host}/ to the add-on instead"),
            ),
            ExposureState::GatewayApiMissing => c(
                EXPOSED,
                false,
                "GatewayAPIMissing",
                "exposure.gateway is set but the cluster does not serve gateway.networking.k8s.io/v1 HTTPRoute; install the Gateway API, or add exposure.ingress",
            ),
        });
    }
    if service_monitor_missing {
        conditions.push(c(
            MONITORING,
            false,
            "ServiceMonitorAPIMissing",
            "monitoring.serviceMonitor is Enabled but the cluster does not serve monitoring.coreos.com/v1 ServiceMonitor",
        ));
    }
    ClockifyAddonStatus {
        observed_generation: generation,
        conditions,
        target_version: Some(addon.spec.version.clone()),
        // The version moves only when a rollout has completed.
        current_version: if r.complete {
            r.version.clone().or(previous.current_version.clone())
        } else {
            previous.current_version.clone()
        },
        replicas: r.exists.then_some(r.replicas),
        ready_replicas: r.exists.then_some(r.ready),
        url: Some(service::url(addon)),
        last_migration: upgrade
            .and_then(|u| u.last_migration.clone())
            .or(previous.last_migration),
        last_backup,
        last_successful_backup,
        on_demand_backup,
        restore,
    }
}

/// Keeps each condition's `lastTransitionTime` unless its status changed.
pub fn keep_transition_times(
    previous: Option<&ClockifyAddonStatus>,
    mut next: ClockifyAddonStatus,
) -> ClockifyAddonStatus {
    if let Some(prev) = previous {
        for c in &mut next.conditions {
            if let Some(old) = prev.conditions.iter().find(|o| o.type_ == c.type_)
                && old.status == c.status
            {
                c.last_transition_time = old.last_transition_time.clone();
            }
        }
    }
    next
}

/// The status of a condition type, if present.
pub fn condition_status<'a>(
    status: Option<&'a ClockifyAddonStatus>,
    type_: &str,
) -> Option<&'a str> {
    status?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

/// The object's name for messages.
pub fn display(addon: &ClockifyAddon) -> String {
    format!(
        "{}/{}",
        addon.namespace().unwrap_or_default(),
        addon.name_any()
    )
}
