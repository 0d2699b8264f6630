//! What the backups did, for status: `lastBackup` and `lastSuccessfulBackup` from the backup
//! Jobs (the CronJob's and on-demand ones), remembered in status after the Jobs are gone; the
//! BackupSucceeded condition; and on-demand backups asked for by annotation, each value once.

use std::collections::BTreeMap;

use kube::ResourceExt;

use crate::build::backup::on_demand_job_name;
use crate::crd::{BACKUP_NOW_ANNOTATION, BackupRecord, ClockifyAddon, OnDemandBackup};
use crate::jobs::{JobState, JobView};

pub const SUCCEEDED: &str = "Succeeded";
pub const FAILED: &str = "Failed";

/// A backup Job as status sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupJob {
    pub view: JobView,
    pub started_at: Option<String>,
}

impl From<JobView> for BackupJob {
    fn from(view: JobView) -> Self {
        Self {
            started_at: view.started_at.clone(),
            view,
        }
    }
}

/// The backup id in a successful Job's termination message ("backup <id> stored: N bytes").
pub fn backup_id(message: &str) -> Option<String> {
    message
        .strip_prefix("backup ")?
        .split_once(" stored")
        .map(|(id, _)| id.to_owned())
        .filter(|id| !id.is_empty() && !id.contains(' '))
}

/// The size in a successful Job's termination message.
pub fn size_bytes(message: &str) -> Option<i64> {
    message
        .split_once(" stored: ")?
        .1
        .split_once(" bytes")?
        .0
        .parse()
        .ok()
}

fn record(j: &BackupJob, message: Option<&String>, location_prefix: Option<&str>) -> BackupRecord {
    let (result, fallback) = match &j.view.state {
        JobState::Failed { reason, message } => (FAILED, Some(format!("{reason}: {message}"))),
        _ => (SUCCEEDED, None),
    };
    let message = message.cloned().filter(|m| !m.is_empty()).or(fallback);
    let ok = result == SUCCEEDED;
    let id = message.as_deref().filter(|_| ok).and_then(backup_id);
    BackupRecord {
        job: j.view.name.clone(),
        result: result.to_owned(),
        started_at: j.started_at.clone(),
        finished_at: j.view.finished_at.clone(),
        location: id
            .as_ref()
            .zip(location_prefix)
            .map(|(id, prefix)| format!("{prefix}/{id}.dump")),
        size_bytes: message.as_deref().filter(|_| ok).and_then(size_bytes),
        backup_id: id,
        message,
    }
}

/// Where a backup's dump is, before its file name: `s3://bucket/<prefix>/<ns>/<name>` or
/// `pvc://<claim>`.
pub fn location_prefix(addon: &ClockifyAddon, b: &crate::settings::BackupSettings) -> String {
    match &b.target {
        crate::settings::BackupTarget::S3 { url, .. } => url.clone(),
        crate::settings::BackupTarget::Volume { .. } => {
            format!("pvc://{}", crate::build::backup::pvc_name(addon))
        }
    }
}

/// The backup part of the status.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct State {
    pub last: Option<BackupRecord>,
    pub last_successful: Option<BackupRecord>,
    pub on_demand: Option<OnDemandBackup>,
    /// Backups running now.
    pub running: Vec<String>,
}

/// Finished Jobs not yet recorded in status: their pods' termination messages are read once.
pub fn unrecorded(addon: &ClockifyAddon, jobs: &[BackupJob]) -> Vec<String> {
    let previous = addon.status.clone().unwrap_or_default();
    let known = |name: &str| {
        [&previous.last_backup, &previous.last_successful_backup]
            .iter()
            .any(|r| r.as_ref().is_some_and(|r| r.job == name))
    };
    let newest = |ok: bool| {
        jobs.iter()
            .filter(|j| match j.view.state {
                JobState::Succeeded => ok,
                JobState::Failed { .. } => !ok,
                JobState::Active => false,
            })
            .max_by_key(|j| (j.view.finished_at.clone(), !known(&j.view.name)))
    };
    [newest(true), newest(false)]
        .into_iter()
        .flatten()
        .filter(|j| !known(&j.view.name))
        .map(|j| j.view.name.clone())
        .collect()
}

/// The backup status from the Jobs in the cluster and what status already remembers.
pub fn state(
    addon: &ClockifyAddon,
    jobs: &[BackupJob],
    messages: &BTreeMap<String, String>,
    on_demand: Option<OnDemandBackup>,
    location_prefix: Option<&str>,
) -> State {
    let previous = addon.status.clone().unwrap_or_default();
    let recorded = |r: &BackupRecord| {
        [&previous.last_backup, &previous.last_successful_backup]
            .into_iter()
            .flatten()
            .any(|p| p.job == r.job)
    };
    // Newer: finished later; finished in the same second (timestamps have no more), the one
    // not recorded yet, as it was seen to finish after the recorded one. Otherwise the recorded
    // one stays, so the choice never flips back and forth.
    let rank = |r: &BackupRecord| (r.finished_at.clone(), !recorded(r));
    let newer = |a: Option<BackupRecord>, b: Option<BackupRecord>| match (a, b) {
        (Some(a), Some(b)) => Some(if rank(&b) > rank(&a) { b } else { a }),
        (a, b) => a.or(b),
    };
    let remembered = |r: &BackupRecord| {
        [&previous.last_backup, &previous.last_successful_backup]
            .into_iter()
            .flatten()
            .find(|p| p.job == r.job)
            .cloned()
    };
    let finished: Vec<BackupRecord> = jobs
        .iter()
        .filter(|j| j.view.state != JobState::Active)
        .map(|j| {
            let fresh = record(j, messages.get(&j.view.name), location_prefix);
            // A record already in status keeps what was read then (pods may be gone now).
            remembered(&fresh).unwrap_or(fresh)
        })
        .collect();
    let newest = |pick: &dyn Fn(&BackupRecord) -> bool| {
        finished
            .iter()
            .filter(|r| pick(r))
            .max_by_key(|r| rank(r))
            .cloned()
    };
    let last = newer(previous.last_backup.clone(), newest(&|_| true));
    let last_successful = newer(
        previous.last_successful_backup.clone(),
        newest(&|r| r.result == SUCCEEDED),
    );
    let mut running: Vec<String> = jobs
        .iter()
        .filter(|j| j.view.state == JobState::Active)
        .map(|j| j.view.name.clone())
        .collect();
    running.sort();
    State {
        last,
        last_successful,
        on_demand: on_demand.or(previous.on_demand_backup),
        running,
    }
}

/// The on-demand backup the annotation asks for and has not been acted on: (request, Job name).
pub fn on_demand_request(addon: &ClockifyAddon) -> Option<(String, String)> {
    let request = addon
        .annotations()
        .get(BACKUP_NOW_ANNOTATION)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())?;
    let done = addon
        .status
        .as_ref()
        .and_then(|s| s.on_demand_backup.as_ref())
        .is_some_and(|o| o.request == request);
    if done {
        return None;
    }
    let job = on_demand_job_name(addon, &request);
    Some((request, job))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(name: &str, ok: bool, finished: &str) -> BackupJob {
        BackupJob::from(JobView {
            name: name.into(),
            image: None,
            version: None,
            generation: 1,
            state: if ok {
                JobState::Succeeded
            } else {
                JobState::Failed {
                    reason: "BackoffLimitExceeded".into(),
                    message: "x".into(),
                }
            },
            started_at: Some(finished.into()),
            finished_at: Some(finished.into()),
            ttl: None,
            retry: None,
        })
    }

    #[test]
    fn two_backups_finishing_in_the_same_second_resolve_to_the_later_seen_one() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../manifests/examples/api-studio-standard.yaml"
        ))
        .unwrap_or_default();
        let Ok(mut a) = serde_norway::from_str::<ClockifyAddon>(&text) else {
            panic!("the example parses");
        };
        let t = "2026-12-02T02:00:00Z";
        let ok = job("b-ok", true, t);
        // The success is recorded.
        let s = state(&a, std::slice::from_ref(&ok), &BTreeMap::new(), None, None);
        assert_eq!(s.last.as_ref().map(|r| r.job.as_str()), Some("b-ok"));
        a.status = Some(crate::crd::ClockifyAddonStatus {
            last_backup: s.last.clone(),
            last_successful_backup: s.last_successful.clone(),
            ..Default::default()
        });
        // A failure in the same second, seen later: it is the newest.
        let failed = job("b-failed", false, t);
        let jobs = [ok, failed];
        let s = state(&a, &jobs, &BTreeMap::new(), None, None);
        assert_eq!(s.last.as_ref().map(|r| r.job.as_str()), Some("b-failed"));
        assert_eq!(
            s.last_successful.as_ref().map(|r| r.job.as_str()),
            Some("b-ok")
        );
        assert_eq!(unrecorded(&a, &jobs), vec!["b-failed".to_owned()]);
        // Recorded: and it stays so, pass after pass.
        a.status = Some(crate::crd::ClockifyAddonStatus {
            last_backup: s.last.clone(),
            last_successful_backup: s.last_successful.clone(),
            ..Default::default()
        });
        for _ in 0..3 {
            let again = state(&a, &jobs, &BTreeMap::new(), None, None);
            assert_eq!(again.last, s.last);
            assert_eq!(again.last_successful, s.last_successful);
        }
        assert!(unrecorded(&a, &jobs).is_empty());
    }

    #[test]
    fn backup_ids_come_from_the_success_message() {
        assert_eq!(
            super::backup_id("backup 20261122T020000.000Z-api-studio-x stored: 10 bytes")
                .as_deref(),
            Some("20261122T020000.000Z-api-studio-x")
        );
        assert_eq!(super::backup_id("backup failed: pg_dump failed"), None);
        assert_eq!(
            super::size_bytes("backup x stored: 52311 bytes"),
            Some(52311)
        );
        assert_eq!(super::size_bytes("backup failed: x"), None);
    }
}
