//! `kubectl clockify`: what a platform team asks of its add-ons on day two, without jsonpath.
//! The pure parts live here (tables, ages, sizes, when an on-demand backup is done); the
//! binary (`src/bin/kubectl-clockify.rs`) only talks to the API server.

use std::fmt::Write as _;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde_json::{Value, json};

use crate::backups::{FAILED, SUCCEEDED};
use crate::crd::{BackupRecord, ClockifyAddon};
use crate::status::{READY, RECONCILING, STALLED};

/// A duration as kubectl prints ages: 42s, 7m, 3h, 12d.
pub fn age(from: Timestamp, now: Timestamp) -> String {
    let s = (now.as_second() - from.as_second()).max(0);
    match s {
        0..120 => format!("{s}s"),
        120..7_200 => format!("{}m", s / 60),
        7_200..172_800 => format!("{}h", s / 3_600),
        _ => format!("{}d", s / 86_400),
    }
}

fn age_of(rfc3339: Option<&str>, now: Timestamp) -> Option<String> {
    rfc3339
        .and_then(|t| t.parse::<Timestamp>().ok())
        .map(|t| age(t, now))
}

/// Bytes as a short human size (binary units).
pub fn size(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes.max(0) as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn condition<'a>(
    a: &'a ClockifyAddon,
    t: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    a.status.as_ref()?.conditions.iter().find(|c| c.type_ == t)
}

/// One word for where an add-on stands: Ready, Stalled (reason), Reconciling (reason),
/// NotReady (reason), or Pending before the operator wrote a status.
pub fn state(a: &ClockifyAddon) -> String {
    let is = |t| condition(a, t).is_some_and(|c| c.status == "True");
    let reason = |t| {
        condition(a, t)
            .map(|c| c.reason.clone())
            .unwrap_or_default()
    };
    if a.status.is_none() {
        "Pending".to_owned()
    } else if is(STALLED) {
        format!("Stalled ({})", reason(STALLED))
    } else if is(READY) {
        "Ready".to_owned()
    } else if is(RECONCILING) {
        format!("Reconciling ({})", reason(RECONCILING))
    } else {
        format!("NotReady ({})", reason(READY))
    }
}

fn last_backup(a: &ClockifyAddon, now: Timestamp) -> String {
    let Some(b) = a.status.as_ref().and_then(|s| s.last_backup.as_ref()) else {
        return if a.spec.backup.is_some() {
            "none yet".to_owned()
        } else {
            "-".to_owned()
        };
    };
    let when = age_of(b.finished_at.as_deref().or(b.started_at.as_deref()), now)
        .unwrap_or_else(|| "?".to_owned());
    match (b.result.as_str(), b.size_bytes) {
        (SUCCEEDED, Some(n)) => format!("{when} ago, {}", size(n)),
        (r, _) => format!("{when} ago, {r}"),
    }
}

fn last_migration(a: &ClockifyAddon, now: Timestamp) -> String {
    match a.status.as_ref().and_then(|s| s.last_migration.as_ref()) {
        Some(m) => match age_of(m.finished_at.as_deref(), now) {
            Some(when) => format!("{} {when} ago", m.version),
            None => m.version.clone(),
        },
        None => "-".to_owned(),
    }
}

fn version(a: &ClockifyAddon) -> String {
    let current = a.status.as_ref().and_then(|s| s.current_version.as_deref());
    match current {
        Some(c) if c == a.spec.version => c.to_owned(),
        Some(c) => format!("{c} -> {}", a.spec.version),
        None => format!("-> {}", a.spec.version),
    }
}

fn replicas(a: &ClockifyAddon) -> String {
    let s = a.status.as_ref();
    format!(
        "{}/{}",
        s.and_then(|s| s.ready_replicas).unwrap_or(0),
        s.and_then(|s| s.replicas).unwrap_or(0)
    )
}

/// Columns padded to their widest cell, as kubectl prints them.
fn table(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows.first().map_or(0, Vec::len))
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("   ").trim_end());
    }
    out
}

/// `kubectl clockify status`: one line per ClockifyAddon, sorted by namespace and name.
pub fn status_table(addons: &[ClockifyAddon], all_namespaces: bool, now: Timestamp) -> String {
    let mut sorted: Vec<&ClockifyAddon> = addons.iter().collect();
    sorted.sort_by_key(|a| (a.namespace(), a.name_any()));
    let mut rows = vec![
        [
            "NAMESPACE",
            "NAME",
            "ADDON",
            "TIER",
            "VERSION",
            "READY",
            "STATUS",
            "LAST BACKUP",
            "LAST MIGRATION",
            "AGE",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect::<Vec<_>>(),
    ];
    for a in sorted {
        rows.push(vec![
            a.namespace().unwrap_or_default(),
            a.name_any(),
            a.spec.addon.slug().to_owned(),
            a.spec.tier.as_str().to_owned(),
            version(a),
            replicas(a),
            state(a),
            last_backup(a, now),
            last_migration(a, now),
            a.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| age(t.0, now))
                .unwrap_or_default(),
        ]);
    }
    if !all_namespaces {
        for r in &mut rows {
            r.remove(0);
        }
    }
    table(&rows)
}

/// `kubectl clockify status NAME`: the add-on in full, conditions included.
pub fn status_detail(a: &ClockifyAddon, now: Timestamp) -> String {
    let s = a.status.as_ref();
    let mut out = String::new();
    let mut line = |k: &str, v: String| {
        let _ = writeln!(out, "{k:<16}{v}");
    };
    line(
        "Name:",
        format!("{}/{}", a.namespace().unwrap_or_default(), a.name_any()),
    );
    line(
        "Add-on:",
        format!("{} ({})", a.spec.addon.slug(), a.spec.tier.as_str()),
    );
    line("Version:", version(a));
    line("URL:", a.spec.base_url.clone());
    line("Replicas:", format!("{} ready", replicas(a)));
    line("Status:", state(a));
    line("Last migration:", last_migration(a, now));
    line("Last backup:", last_backup(a, now));
    if let Some(b) = s.and_then(|s| s.last_successful_backup.as_ref()) {
        line(
            "Last good:",
            format!(
                "{} ({})",
                b.backup_id.clone().unwrap_or_else(|| b.job.clone()),
                b.location.clone().unwrap_or_default()
            ),
        );
    }
    if let Some(r) = s.and_then(|s| s.restore.as_ref()) {
        line(
            "Restore:",
            format!("{} from {}: {}", r.request_id, r.from, r.phase.as_str()),
        );
    }
    let mut rows = vec![vec![
        "TYPE".to_owned(),
        "STATUS".to_owned(),
        "REASON".to_owned(),
        "SINCE".to_owned(),
        "MESSAGE".to_owned(),
    ]];
    for c in s.map(|s| s.conditions.as_slice()).unwrap_or_default() {
        rows.push(vec![
            c.type_.clone(),
            c.status.clone(),
            c.reason.clone(),
            age(c.last_transition_time.0, now),
            c.message.clone(),
        ]);
    }
    out.push_str("Conditions:\n");
    for l in table(&rows).lines() {
        let _ = writeln!(out, "  {l}");
    }
    out
}

/// The machine-readable status (`-o json|yaml`): what the table shows, unabbreviated.
pub fn status_value(a: &ClockifyAddon) -> Value {
    json!({
        "namespace": a.namespace(),
        "name": a.name_any(),
        "addon": a.spec.addon.slug(),
        "tier": a.spec.tier.as_str(),
        "version": a.spec.version,
        "currentVersion": a.status.as_ref().and_then(|s| s.current_version.clone()),
        "replicas": a.status.as_ref().and_then(|s| s.replicas),
        "readyReplicas": a.status.as_ref().and_then(|s| s.ready_replicas),
        "state": state(a),
        "lastBackup": a.status.as_ref().and_then(|s| s.last_backup.clone()),
        "lastSuccessfulBackup": a.status.as_ref().and_then(|s| s.last_successful_backup.clone()),
        "lastMigration": a.status.as_ref().and_then(|s| s.last_migration.clone()),
        "conditions": a.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default(),
    })
}

/// Where an on-demand backup asked for with annotation value `request` stands.
#[derive(Debug, Clone, PartialEq)]
pub enum BackupProgress {
    /// The operator has not started its Job yet.
    Requested,
    /// Its Job runs.
    Running { job: String },
    /// It finished (succeeded or failed: see the record's result).
    Finished(BackupRecord),
}

pub fn backup_progress(a: &ClockifyAddon, request: &str) -> BackupProgress {
    let s = a.status.as_ref();
    let Some(on_demand) = s
        .and_then(|s| s.on_demand_backup.as_ref())
        .filter(|o| o.request == request)
    else {
        return BackupProgress::Requested;
    };
    match s.and_then(|s| s.last_backup.as_ref()) {
        Some(b) if b.job == on_demand.job && (b.result == SUCCEEDED || b.result == FAILED) => {
            BackupProgress::Finished(b.clone())
        }
        _ => BackupProgress::Running {
            job: on_demand.job.clone(),
        },
    }
}

/// The merge patch that asks the operator to restore `from` (a backup id, or `latest`), with a
/// new request id; refused while another restore is under way or where backups are not set up.
pub fn restore_patch(
    a: &ClockifyAddon,
    from: &str,
    now: Timestamp,
) -> Result<(String, Value), String> {
    let who = format!("{}/{}", a.namespace().unwrap_or_default(), a.name_any());
    if a.spec.backup.is_none() {
        return Err(format!(
            "ClockifyAddon {who} has no spec.backup: a restore reads the backups from its destination"
        ));
    }
    if crate::restore::active(a) {
        let r = a
            .spec
            .restore
            .as_deref()
            .map(|r| (r.request_id.clone(), r.from.clone()));
        let (id, source) = r.unwrap_or_default();
        return Err(format!(
            "a restore of {who} is under way (request {id}, from {source}): wait until `kubectl clockify status {}` shows it finished",
            a.name_any()
        ));
    }
    let request = format!("restore-{}", now.strftime("%Y%m%dT%H%M%SZ"));
    Ok((
        request.clone(),
        json!({"spec": {"restore": {"requestId": request, "from": from}}}),
    ))
}

/// The restore of `request` once it finished: Ok(message) or Err(message); None while it runs.
pub fn restore_outcome(a: &ClockifyAddon, request: &str) -> Option<Result<String, String>> {
    let r = a
        .status
        .as_ref()?
        .restore
        .as_ref()
        .filter(|r| r.request_id == request)?;
    let msg = r.message.clone().unwrap_or_default();
    match r.phase {
        crate::crd::RestorePhase::Succeeded => Some(Ok(msg)),
        crate::crd::RestorePhase::Failed => Some(Err(msg)),
        _ => None,
    }
}

/// An object made fit for a support bundle: managedFields dropped, Secret data never, and the
/// value of any env entry whose name looks like a secret replaced.
pub fn redact(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("managedFields");
            }
            if m.get("kind").and_then(Value::as_str) == Some("Secret") {
                m.remove("data");
                m.remove("stringData");
            }
            let secret_env = m
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(crate::settings::is_secret_name)
                && m.get("value").is_some_and(Value::is_string);
            if secret_env {
                m.insert("value".into(), json!("<redacted>"));
            }
            for (_, child) in m.iter_mut() {
                redact(child);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(redact),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addon(status: Value) -> ClockifyAddon {
        serde_json::from_value(json!({
            "apiVersion": "clockify-addons.io/v1alpha1", "kind": "ClockifyAddon",
            "metadata": {"name": "uw", "namespace": "shop", "creationTimestamp": "2026-12-01T00:00:00Z"},
            "spec": {
                "addon": "universalWebhook", "tier": "ENTERPRISE", "version": "0.2.0",
                "baseUrl": "https://uw.example.com",
                "database": {"urlSecretRef": {"name": "db", "key": "uri"}},
                "secrets": {"tokenEncryptionKeyRef": {"name": "keys", "key": "token"}},
                "backup": {"destination": {"pvc": {"size": "5Gi"}}}
            },
            "status": status
        }))
        .unwrap()
    }

    fn now() -> Timestamp {
        "2026-12-04T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn ages_and_sizes_read_like_kubectl() {
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        assert_eq!(age(t("2026-12-04T11:59:18Z"), now()), "42s");
        assert_eq!(age(t("2026-12-04T11:53:00Z"), now()), "7m");
        assert_eq!(age(t("2026-12-04T09:00:00Z"), now()), "3h");
        assert_eq!(age(t("2026-11-22T12:00:00Z"), now()), "12d");
        assert_eq!(age(t("2026-12-05T00:00:00Z"), now()), "0s", "clock skew");
        assert_eq!(size(512), "512 B");
        assert_eq!(size(52_311), "51.1 KiB");
        assert_eq!(size(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }

    #[test]
    fn the_table_says_where_each_add_on_stands() {
        let ready = addon(json!({
            "currentVersion": "0.1.0", "replicas": 3, "readyReplicas": 3,
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "Progressing", "message": "", "lastTransitionTime": "2026-12-04T11:59:00Z"},
                {"type": "Reconciling", "status": "True", "reason": "Progressing", "message": "", "lastTransitionTime": "2026-12-04T11:59:00Z"}
            ],
            "lastBackup": {"job": "uw-backup-1", "result": "Succeeded", "finishedAt": "2026-12-04T09:00:00Z", "sizeBytes": 52311},
            "lastMigration": {"version": "0.1.0", "job": "uw-migrate-1", "finishedAt": "2026-12-01T00:10:00Z"}
        }));
        let mut new = addon(Value::Null);
        new.metadata.name = Some("api".into());
        new.metadata.namespace = Some("a-team".into());
        new.spec.backup = None;
        let text = status_table(&[ready, new], true, now());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("NAMESPACE   NAME   ADDON"), "{text}");
        // Sorted by namespace; a missing status is Pending.
        assert!(
            lines[1].starts_with("a-team") && lines[1].contains("Pending"),
            "{text}"
        );
        for cell in [
            "shop",
            "universal-webhook",
            "ENTERPRISE",
            "0.1.0 -> 0.2.0",
            "3/3",
            "Reconciling (Progressing)",
            "3h ago, 51.1 KiB",
            "0.1.0 3d ago",
            "3d",
        ] {
            assert!(lines[2].contains(cell), "{cell} in {}", lines[2]);
        }
        // One namespace: no namespace column.
        let one = status_table(&[addon(Value::Null)], false, now());
        assert!(one.starts_with("NAME   ADDON"), "{one}");
        assert!(one.contains("none yet"), "{one}");
    }

    #[test]
    fn stalled_wins_and_the_detail_lists_conditions() {
        let a = addon(json!({
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "SecretMissing", "message": "m", "lastTransitionTime": "2026-12-04T11:00:00Z"},
                {"type": "Stalled", "status": "True", "reason": "SecretMissing", "message": "Secret shop/keys has no key \"token\"", "lastTransitionTime": "2026-12-04T11:00:00Z"}
            ]
        }));
        assert_eq!(state(&a), "Stalled (SecretMissing)");
        let d = status_detail(&a, now());
        assert!(d.contains("Name:           shop/uw"), "{d}");
        assert!(d.contains("Stalled   True     SecretMissing   60m"), "{d}");
        assert!(d.contains("Secret shop/keys has no key \"token\""), "{d}");
        let v = status_value(&a);
        assert_eq!(v["state"], "Stalled (SecretMissing)");
        assert_eq!(v["conditions"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn a_restore_is_asked_once_and_never_over_another() {
        let a = addon(Value::Null);
        let (id, patch) = restore_patch(&a, "latest", now()).unwrap();
        assert_eq!(id, "restore-20261204T120000Z");
        assert_eq!(
            patch,
            json!({"spec": {"restore": {"requestId": id, "from": "latest"}}})
        );
        let mut running = a.clone();
        running.spec.restore = Some(Box::new(crate::crd::RestoreSpec {
            request_id: "r1".into(),
            from: "b1".into(),
        }));
        let e = restore_patch(&running, "latest", now()).unwrap_err();
        assert!(e.contains("under way (request r1, from b1)"), "{e}");
        assert_eq!(restore_outcome(&running, "r1"), None);
        let mut done = running.clone();
        done.status = serde_json::from_value(json!({"restore": {"requestId": "r1", "from": "b1", "phase": "Succeeded", "message": "restored"}})).unwrap();
        assert_eq!(restore_outcome(&done, "r1"), Some(Ok("restored".into())));
        assert!(
            restore_patch(&done, "latest", now()).is_ok(),
            "the last one finished"
        );
        let mut no_backup = a.clone();
        no_backup.spec.backup = None;
        assert!(
            restore_patch(&no_backup, "latest", now())
                .unwrap_err()
                .contains("no spec.backup")
        );
    }

    #[test]
    fn a_report_never_carries_a_secret() {
        let mut v = json!({"kind": "Deployment", "metadata": {"name": "d", "managedFields": [{"manager": "x"}]},
        "spec": {"template": {"spec": {"containers": [{"env": [
            {"name": "API_TOKEN", "value": "s3cret"},
            {"name": "LOG_LEVEL", "value": "info"},
            {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "db", "key": "uri"}}}
        ]}]}}}});
        redact(&mut v);
        let text = v.to_string();
        assert!(
            !text.contains("s3cret") && !text.contains("managedFields"),
            "{text}"
        );
        assert!(
            text.contains("\"info\"") && text.contains("secretKeyRef"),
            "{text}"
        );
        let mut s = json!({"kind": "Secret", "metadata": {"name": "k"}, "data": {"k": "c2VjcmV0"}});
        redact(&mut s);
        assert!(s.get("data").is_none());
    }

    #[test]
    fn an_on_demand_backup_is_followed_by_its_request() {
        let record = |job: &str, result: &str| json!({"job": job, "result": result});
        let a = addon(
            json!({"onDemandBackup": {"request": "r1", "job": "uw-backup-r1"},
            "lastBackup": record("uw-backup-nightly", "Succeeded")}),
        );
        assert_eq!(backup_progress(&a, "r2"), BackupProgress::Requested);
        assert_eq!(
            backup_progress(&a, "r1"),
            BackupProgress::Running {
                job: "uw-backup-r1".into()
            }
        );
        let a = addon(
            json!({"onDemandBackup": {"request": "r1", "job": "uw-backup-r1"},
            "lastBackup": record("uw-backup-r1", "Failed")}),
        );
        assert!(matches!(
            backup_progress(&a, "r1"),
            BackupProgress::Finished(b) if b.result == "Failed"
        ));
    }
}
