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

/// `app.kubernetes.io/component` of the Jobs `kubectl clockify backups` runs.
pub const CATALOG_COMPONENT: &str = "catalog";
/// Longest a catalogue Job may run; it is deleted this long after it finished if the plugin
/// could not delete it itself.
pub const CATALOG_DEADLINE_SECONDS: i64 = 600;
/// Env of the backup pod a listing does not need: the database credentials above all.
const NOT_FOR_LISTING: [&str; 5] = [
    "DATABASE_URL",
    "BACKUP_LABEL",
    "BACKUP_KEEP_LAST",
    "BACKUP_MAX_AGE_DAYS",
    "BACKUP_COMPRESSION",
];

pub fn catalog_job_name(addon: &ClockifyAddon, request: &str) -> String {
    format!(
        "{}-catalog-{}",
        addon.name_any(),
        crate::build::backup::short_hash(request)
    )
}

/// The Job that lists the backups at the add-on's destination, from inside the cluster: the
/// pod of the add-on's own backup CronJob (its image, ServiceAccount and so workload identity,
/// S3 settings and credentials by reference, volume read-only, security context), running
/// `backups <addon> --json`, without the database's credentials. Owned by the ClockifyAddon,
/// never retried, deleted after it finished.
pub fn catalog_job(
    addon: &ClockifyAddon,
    cron: &k8s_openapi::api::batch::v1::CronJob,
    request: &str,
) -> Result<k8s_openapi::api::batch::v1::Job, String> {
    use k8s_openapi::api::batch::v1::{Job, JobSpec};
    let who = format!(
        "{}/{}",
        addon.namespace().unwrap_or_default(),
        addon.name_any()
    );
    let mut template = cron
        .spec
        .as_ref()
        .and_then(|s| s.job_template.spec.as_ref())
        .map(|s| s.template.clone())
        .ok_or_else(|| format!("the backup CronJob of {who} has no pod template"))?;
    let labels = crate::build::backup::component_labels(addon, CATALOG_COMPONENT);
    template.metadata.get_or_insert_default().labels = Some(labels.clone());
    let pod = template
        .spec
        .as_mut()
        .ok_or_else(|| format!("the backup CronJob of {who} has no pod spec"))?;
    let [container] = pod.containers.as_mut_slice() else {
        return Err(format!(
            "the backup CronJob of {who} has {} containers, not the one the operator writes",
            pod.containers.len()
        ));
    };
    container.name = "catalog".to_owned();
    container.args = Some(vec![
        "backups".into(),
        addon.spec.addon.slug().into(),
        "--json".into(),
    ]);
    container.command = None;
    if let Some(env) = container.env.as_mut() {
        env.retain(|e| !NOT_FOR_LISTING.contains(&e.name.as_str()));
    }
    for m in container.volume_mounts.iter_mut().flatten() {
        if m.mount_path == crate::build::backup::MOUNT_PATH {
            m.read_only = Some(true);
        }
    }
    for v in pod.volumes.iter_mut().flatten() {
        if let Some(c) = v.persistent_volume_claim.as_mut() {
            c.read_only = Some(true);
        }
    }
    let mut meta = crate::meta::child_meta(addon, &catalog_job_name(addon, request));
    meta.labels = Some(labels);
    meta.annotations = Some(
        [(
            crate::build::backup::REQUEST_ANNOTATION.to_owned(),
            request.to_owned(),
        )]
        .into(),
    );
    Ok(Job {
        metadata: meta,
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(CATALOG_DEADLINE_SECONDS),
            ttl_seconds_after_finished: Some(CATALOG_DEADLINE_SECONDS as i32),
            template,
            ..JobSpec::default()
        }),
        ..Job::default()
    })
}

/// What a catalogue Job printed (its log) or left in its termination message.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Catalog {
    /// The backups' manifests (or, from a termination message, their summaries), newest first.
    pub backups: Vec<Value>,
    /// Dumps without a manifest: unfinished backups.
    pub unfinished: Vec<String>,
    /// Manifests that could not be read, with why.
    pub unreadable: Vec<String>,
    /// Backups left out (a termination message holds only so many).
    pub omitted: u64,
}

impl Catalog {
    /// Reads the JSON lines of `clockify-addons backups --json` out of text that may also hold
    /// log lines; None when none is there.
    pub fn parse(text: &str) -> Option<Catalog> {
        let mut c = Catalog::default();
        let mut seen = false;
        for line in text.lines() {
            let Ok(Value::Object(o)) = serde_json::from_str::<Value>(line.trim()) else {
                continue;
            };
            let str_of = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_owned);
            if o.contains_key("sha256") && o.contains_key("id") {
                c.backups.push(Value::Object(o));
            } else if let Some(n) = str_of("unfinished") {
                c.unfinished.push(n);
            } else if let Some(w) = str_of("unreadable") {
                c.unreadable.push(w);
            } else if o.contains_key("listed") {
                c.omitted += o.get("omitted").and_then(Value::as_u64).unwrap_or(0);
            } else {
                continue;
            }
            seen = true;
        }
        // Newest first, whatever order they came in.
        let finished = |v: &Value| v["finishedAt"].as_str().unwrap_or_default().to_owned();
        c.backups
            .sort_by_key(|v| std::cmp::Reverse((finished(v), v["id"].as_str().map(str::to_owned))));
        seen.then_some(c)
    }

    /// `kubectl clockify backups NAME`: newest first.
    pub fn table(&self, now: Timestamp) -> String {
        let mut rows = vec![
            ["ID", "TAKEN", "SIZE", "SCHEMA", "SHA256"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect::<Vec<_>>(),
        ];
        for b in &self.backups {
            rows.push(vec![
                b["id"].as_str().unwrap_or("?").to_owned(),
                age_of(b["finishedAt"].as_str(), now)
                    .map(|a| format!("{a} ago"))
                    .unwrap_or_else(|| "?".to_owned()),
                b["size"]
                    .as_i64()
                    .map(size)
                    .unwrap_or_else(|| "?".to_owned()),
                b["schemaVersion"]
                    .as_i64()
                    .map_or("-".to_owned(), |v| v.to_string()),
                b["sha256"]
                    .as_str()
                    .map(|h| h.chars().take(12).collect())
                    .unwrap_or_default(),
            ]);
        }
        let mut out = if self.backups.is_empty() {
            "No backups at the destination yet.\n".to_owned()
        } else {
            table(&rows)
        };
        if self.omitted > 0 {
            let _ = writeln!(
                out,
                "... and {} older (the pod's log could not be read; its termination message holds only the newest)",
                self.omitted
            );
        }
        for n in &self.unfinished {
            let _ = writeln!(out, "unfinished (a dump without its manifest): {n}");
        }
        for w in &self.unreadable {
            let _ = writeln!(out, "unreadable manifest: {w}");
        }
        out
    }

    /// `-o json|yaml`.
    pub fn value(&self) -> Value {
        json!({
            "backups": self.backups,
            "unfinished": self.unfinished,
            "unreadable": self.unreadable,
            "omitted": self.omitted,
        })
    }
}

/// The first container's termination message, once it ended.
pub fn termination_message(pod: &k8s_openapi::api::core::v1::Pod) -> Option<String> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .state
        .as_ref()?
        .terminated
        .as_ref()?
        .message
        .clone()
}

/// Why a pod has not run yet, in a few words: unschedulable, an image that cannot be pulled.
pub fn pod_waiting(pod: &k8s_openapi::api::core::v1::Pod) -> String {
    let Some(st) = pod.status.as_ref() else {
        return "its pod has no status yet".to_owned();
    };
    let waiting = st
        .container_statuses
        .iter()
        .flatten()
        .find_map(|c| c.state.as_ref()?.waiting.clone());
    if let Some(w) = waiting {
        return format!(
            "pod {}: {} {}",
            pod.name_any(),
            w.reason.unwrap_or_default(),
            w.message.unwrap_or_default()
        )
        .trim_end()
        .to_owned();
    }
    let unscheduled = st
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False");
    match unscheduled {
        Some(c) => format!(
            "pod {} is not scheduled: {}",
            pod.name_any(),
            c.message.clone().unwrap_or_default()
        ),
        None => format!(
            "pod {} is {}",
            pod.name_any(),
            st.phase.clone().unwrap_or_else(|| "Pending".to_owned())
        ),
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

    #[test]
    fn the_catalogue_job_runs_the_backup_pod_without_the_database() {
        let mut a = addon(Value::Null);
        a.metadata.uid = Some("u1".into());
        let s = crate::settings::resolve(&a).unwrap();
        let b = s.backup.clone().unwrap();
        let cron = crate::build::backup::cron_job(&a, &s, &b, false);
        let job = catalog_job(&a, &cron, "20261204T120000Z").unwrap();
        assert_eq!(
            job.metadata.name.as_deref(),
            Some(catalog_job_name(&a, "20261204T120000Z").as_str())
        );
        assert!(
            job.metadata
                .name
                .as_deref()
                .unwrap()
                .starts_with("uw-catalog-")
        );
        assert_eq!(job.metadata.owner_references.as_ref().unwrap()[0].uid, "u1");
        let spec = job.spec.unwrap();
        assert_eq!(spec.backoff_limit, Some(0));
        assert_eq!(spec.ttl_seconds_after_finished, Some(600));
        let labels = spec.template.metadata.unwrap().labels.unwrap();
        assert_eq!(labels["app.kubernetes.io/component"], "catalog");
        assert_eq!(labels["app.kubernetes.io/instance"], "uw");
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.service_account_name.as_deref(), Some("uw"));
        let c = &pod.containers[0];
        assert_eq!(
            c.args.as_deref().unwrap(),
            ["backups", "universal-webhook", "--json"]
        );
        let env: Vec<&str> = c.env.iter().flatten().map(|e| e.name.as_str()).collect();
        assert!(env.contains(&"BACKUP_DESTINATION"), "{env:?}");
        assert!(env.contains(&"TERMINATION_MESSAGE_PATH"), "{env:?}");
        assert!(!env.contains(&"DATABASE_URL"), "{env:?}");
        assert!(!env.contains(&"BACKUP_LABEL"), "{env:?}");
        let backups = c
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.mount_path == "/backups")
            .unwrap();
        assert_eq!(backups.read_only, Some(true));
        let claim = pod
            .volumes
            .iter()
            .flatten()
            .find_map(|v| v.persistent_volume_claim.clone())
            .unwrap();
        assert_eq!(
            (claim.claim_name.as_str(), claim.read_only),
            ("uw-backups", Some(true))
        );

        let mut broken = cron.clone();
        broken.spec.as_mut().unwrap().job_template.spec = None;
        assert!(
            catalog_job(&a, &broken, "r")
                .unwrap_err()
                .contains("no pod template")
        );
    }

    #[test]
    fn the_catalogue_is_read_from_a_log_or_a_termination_message() {
        let log = r#"{"timestamp":"2026-12-04T11:00:00Z","level":"INFO","fields":{"message":"listing"}}
{"format":"clockify-addons-backup/v1","id":"old","addon":"universal-webhook","finishedAt":"2026-12-01T12:00:00Z","size":52311,"schemaVersion":7,"sha256":"0123456789abcdef0123"}
{"format":"clockify-addons-backup/v1","id":"new","addon":"universal-webhook","finishedAt":"2026-12-04T09:00:00Z","size":3145728,"schemaVersion":8,"sha256":"fedcba9876543210fedc"}
{"unfinished":"x.dump","modified":1}
{"unreadable":"bad.json: EOF"}
not json at all
"#;
        let c = Catalog::parse(log).unwrap();
        assert_eq!(c.backups.len(), 2);
        assert_eq!(c.backups[0]["id"], "new", "newest first");
        assert_eq!(c.unfinished, ["x.dump"]);
        assert_eq!(c.unreadable, ["bad.json: EOF"]);
        let t = c.table(now());
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("ID    TAKEN"), "{t}");
        for cell in ["new", "3h ago", "3.0 MiB", "8", "fedcba987654"] {
            assert!(lines[1].contains(cell), "{cell} in {}", lines[1]);
        }
        assert!(
            !lines[1].contains("fedcba9876543"),
            "12 hex digits: {}",
            lines[1]
        );
        assert!(
            lines[2].starts_with("old") && lines[2].contains("3d ago"),
            "{t}"
        );
        assert!(
            t.contains("unfinished (a dump without its manifest): x.dump"),
            "{t}"
        );
        assert!(t.contains("unreadable manifest: bad.json: EOF"), "{t}");

        let message = "{\"id\":\"a\",\"finishedAt\":\"2026-12-04T11:00:00Z\",\"size\":1,\"sha256\":\"ab\"}\n{\"listed\":13,\"omitted\":12}\n";
        let c = Catalog::parse(message).unwrap();
        assert_eq!((c.backups.len(), c.omitted), (1, 12));
        assert!(
            c.table(now()).contains("... and 12 older"),
            "{}",
            c.table(now())
        );
        assert_eq!(c.value()["omitted"], 12);

        assert_eq!(Catalog::parse("only logs\n{\"level\":\"ERROR\"}"), None);
        let empty = Catalog::parse("{\"listed\":0,\"omitted\":0}").unwrap();
        assert!(
            empty.table(now()).starts_with("No backups"),
            "{}",
            empty.table(now())
        );
    }
}
