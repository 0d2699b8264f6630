//! Backups and restores: the backup CronJob (and its on-demand twin), the volume it writes to,
//! and the restore Jobs. Every pod runs the backup image (the add-on binary plus the PostgreSQL
//! client) under the restricted Pod Security Standard, with credentials only by reference.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, Job, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, ObjectFieldSelector,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, PodSpec,
    PodTemplateSpec, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use sha2::{Digest, Sha256};

use super::deployment::{
    container_security, pod_security, pull_policy, pull_secrets, resources, secret_env, tmp_volume,
};
use crate::crd::{ClockifyAddon, SecretKeyRef};
use crate::meta::{LABEL_COMPONENT, LABEL_INSTANCE, LABEL_NAME, child_meta, labels};
use crate::settings::{BackupSettings, BackupTarget, Settings};

pub const COMPONENT: &str = "backup";
pub const RESTORE_COMPONENT: &str = "restore";
/// Where the backup volume is mounted.
pub const MOUNT_PATH: &str = "/backups";
/// Where a restore stages the dump while verifying it.
pub const WORK_PATH: &str = "/work";
/// Annotation on backup and restore Jobs: the request (annotation value or requestId).
pub const REQUEST_ANNOTATION: &str = "clockify-addons.io/request";
/// Annotation on restore Jobs: which step they are (restore or migrate).
pub const STEP_ANNOTATION: &str = "clockify-addons.io/restore-step";
pub const TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";
/// Longest a backup may run.
pub const BACKUP_DEADLINE_SECONDS: i64 = 6 * 3600;
/// On-demand backup Jobs are deleted a day after they finish (the CronJob's own are kept by
/// its history limits).
pub const ON_DEMAND_TTL: i32 = 24 * 3600;
/// Restore Jobs are kept a week after they finish, for their logs.
pub const RESTORE_TTL: i32 = 7 * 24 * 3600;
pub const HISTORY_LIMIT: i32 = 3;
/// A run missed by more than this (operator or controller down) is skipped, not run late.
pub const STARTING_DEADLINE_SECONDS: i64 = 3600;

pub(crate) fn short_hash(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))[..8].to_owned()
}

pub fn cron_job_name(addon: &ClockifyAddon) -> String {
    format!("{}-backup", addon.name_any())
}

pub fn pvc_name(addon: &ClockifyAddon) -> String {
    format!("{}-backups", addon.name_any())
}

pub fn on_demand_job_name(addon: &ClockifyAddon, request: &str) -> String {
    format!("{}-backup-{}", addon.name_any(), short_hash(request))
}

pub fn restore_job_name(addon: &ClockifyAddon, request_id: &str) -> String {
    format!("{}-restore-{}", addon.name_any(), short_hash(request_id))
}

pub fn restore_migration_job_name(addon: &ClockifyAddon, request_id: &str) -> String {
    format!("{}-remigrate-{}", addon.name_any(), short_hash(request_id))
}

/// Labels of backup (or restore) Jobs and their pods.
pub fn component_labels(addon: &ClockifyAddon, component: &str) -> BTreeMap<String, String> {
    let mut l = labels(addon);
    l.insert(LABEL_COMPONENT.to_owned(), component.to_owned());
    l
}

/// The labels that find this ClockifyAddon's Jobs of `component`.
pub fn selector(addon: &ClockifyAddon, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.to_owned(), addon.spec.addon.slug().to_owned()),
        (LABEL_INSTANCE.to_owned(), addon.name_any()),
        (LABEL_COMPONENT.to_owned(), component.to_owned()),
    ])
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        ..EnvVar::default()
    }
}

/// Where backups are, for the binary: the destination, and S3 settings and credentials.
fn destination_env(b: &BackupSettings) -> Vec<EnvVar> {
    match &b.target {
        BackupTarget::Volume { .. } => vec![env("BACKUP_DESTINATION", MOUNT_PATH)],
        BackupTarget::S3 {
            url,
            endpoint,
            region,
            credentials_secret,
            ..
        } => {
            let mut v = vec![env("BACKUP_DESTINATION", url)];
            if let Some(e) = endpoint {
                v.push(env("BACKUP_S3_ENDPOINT", e));
            }
            if let Some(r) = region {
                v.push(env("AWS_REGION", r));
            }
            // Without a Secret, the SDK's own chain finds web-identity credentials that
            // workload identity injects through the ServiceAccount.
            for key in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
                if let Some(name) = credentials_secret {
                    v.push(secret_env(
                        key,
                        &SecretKeyRef {
                            name: name.clone(),
                            key: key.to_owned(),
                        },
                    ));
                }
            }
            v
        }
    }
}

fn pvc_volume(addon: &ClockifyAddon, read_only: bool) -> (Volume, VolumeMount) {
    (
        Volume {
            name: "backups".to_owned(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: pvc_name(addon),
                read_only: Some(read_only),
            }),
            ..Volume::default()
        },
        VolumeMount {
            name: "backups".to_owned(),
            mount_path: MOUNT_PATH.to_owned(),
            read_only: Some(read_only),
            ..VolumeMount::default()
        },
    )
}

/// What differs between the backup and restore pods.
struct PodParts {
    component: &'static str,
    container: &'static str,
    args: Vec<String>,
    env: Vec<EnvVar>,
    volumes: Vec<(Volume, VolumeMount)>,
}

/// The pod of a backup or restore: the backup image, restricted, the add-on's scheduling
/// overrides, no API token.
fn pod(
    addon: &ClockifyAddon,
    s: &Settings,
    b: &BackupSettings,
    parts: PodParts,
) -> PodTemplateSpec {
    let PodParts {
        component,
        container,
        args,
        env: mut extra_env,
        mut volumes,
    } = parts;
    let overrides = addon.spec.pod_overrides.clone().unwrap_or_default();
    let mut all_env = vec![secret_env(
        "DATABASE_URL",
        &addon.spec.database.url_secret_ref,
    )];
    all_env.extend(destination_env(b));
    all_env.push(env("LOG_FORMAT", "json"));
    all_env.push(env("TERMINATION_MESSAGE_PATH", TERMINATION_MESSAGE_PATH));
    all_env.append(&mut extra_env);
    volumes.push(tmp_volume());
    if matches!(b.target, BackupTarget::Volume { .. }) {
        volumes.push(pvc_volume(addon, component == RESTORE_COMPONENT));
    }
    let pull_secrets = pull_secrets(addon);
    let (vols, mounts): (Vec<Volume>, Vec<VolumeMount>) = volumes.into_iter().unzip();
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(component_labels(addon, component)),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            restart_policy: Some("Never".into()),
            service_account_name: Some(addon.name_any()),
            automount_service_account_token: Some(false),
            security_context: Some(pod_security()),
            containers: vec![Container {
                name: container.to_owned(),
                image: Some(b.image.clone()),
                image_pull_policy: pull_policy(s.pull_policy),
                args: Some(args),
                env: Some(all_env),
                resources: Some(resources(("100m", "128Mi"), ("1", "512Mi"))),
                security_context: Some(container_security()),
                termination_message_path: Some(TERMINATION_MESSAGE_PATH.to_owned()),
                termination_message_policy: Some("FallbackToLogsOnError".to_owned()),
                volume_mounts: Some(mounts),
                ..Container::default()
            }],
            volumes: Some(vols),
            image_pull_secrets: (!pull_secrets.is_empty()).then_some(pull_secrets),
            node_selector: (!overrides.node_selector.is_empty()).then_some(overrides.node_selector),
            tolerations: (!overrides.tolerations.is_empty()).then_some(overrides.tolerations),
            affinity: overrides.affinity,
            priority_class_name: overrides.priority_class_name,
            ..PodSpec::default()
        }),
    }
}

/// The Job every backup runs (scheduled and on demand).
fn backup_job_spec(addon: &ClockifyAddon, s: &Settings, b: &BackupSettings) -> JobSpec {
    let mut extra = vec![EnvVar {
        // The backup id carries the Job's name, so status and the destination agree.
        name: "BACKUP_LABEL".to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: "metadata.labels['batch.kubernetes.io/job-name']".to_owned(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }];
    if let Some(n) = b.keep_last {
        extra.push(env("BACKUP_KEEP_LAST", &n.to_string()));
    }
    if let Some(n) = b.max_age_days {
        extra.push(env("BACKUP_MAX_AGE_DAYS", &n.to_string()));
    }
    JobSpec {
        // One retry: a second failure is reported rather than hammering the database.
        backoff_limit: Some(1),
        active_deadline_seconds: Some(BACKUP_DEADLINE_SECONDS),
        template: pod(
            addon,
            s,
            b,
            PodParts {
                component: COMPONENT,
                container: "backup",
                args: vec!["backup".into(), addon.spec.addon.slug().into()],
                env: extra,
                volumes: Vec::new(),
            },
        ),
        ..JobSpec::default()
    }
}

/// The scheduled backups.
pub fn cron_job(addon: &ClockifyAddon, s: &Settings, b: &BackupSettings, suspend: bool) -> CronJob {
    let mut meta = child_meta(addon, &cron_job_name(addon));
    meta.labels = Some(component_labels(addon, COMPONENT));
    CronJob {
        metadata: meta,
        spec: Some(CronJobSpec {
            schedule: b.schedule.clone(),
            time_zone: Some("Etc/UTC".to_owned()),
            concurrency_policy: Some("Forbid".to_owned()),
            suspend: Some(suspend),
            starting_deadline_seconds: Some(STARTING_DEADLINE_SECONDS),
            successful_jobs_history_limit: Some(HISTORY_LIMIT),
            failed_jobs_history_limit: Some(HISTORY_LIMIT),
            job_template: JobTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(component_labels(addon, COMPONENT)),
                    ..ObjectMeta::default()
                }),
                spec: Some(backup_job_spec(addon, s, b)),
            },
        }),
        ..CronJob::default()
    }
}

/// A backup the backup-now annotation asked for.
pub fn on_demand_job(
    addon: &ClockifyAddon,
    s: &Settings,
    b: &BackupSettings,
    request: &str,
) -> Job {
    let mut meta = child_meta(addon, &on_demand_job_name(addon, request));
    meta.labels = Some(component_labels(addon, COMPONENT));
    meta.annotations = Some(BTreeMap::from([(
        REQUEST_ANNOTATION.to_owned(),
        request.to_owned(),
    )]));
    let mut spec = backup_job_spec(addon, s, b);
    spec.ttl_seconds_after_finished = Some(ON_DEMAND_TTL);
    Job {
        metadata: meta,
        spec: Some(spec),
        ..Job::default()
    }
}

fn restore_meta(addon: &ClockifyAddon, name: &str, request_id: &str, step: &str) -> ObjectMeta {
    let mut meta = child_meta(addon, name);
    meta.labels = Some(component_labels(addon, RESTORE_COMPONENT));
    meta.annotations = Some(BTreeMap::from([
        (REQUEST_ANNOTATION.to_owned(), request_id.to_owned()),
        (STEP_ANNOTATION.to_owned(), step.to_owned()),
    ]));
    meta
}

/// `clockify-addons restore --force`: the Deployment is at zero replicas when it runs.
pub fn restore_job(
    addon: &ClockifyAddon,
    s: &Settings,
    b: &BackupSettings,
    request_id: &str,
    from: &str,
) -> Job {
    let work = (
        Volume {
            name: "work".to_owned(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
        VolumeMount {
            name: "work".to_owned(),
            mount_path: WORK_PATH.to_owned(),
            ..VolumeMount::default()
        },
    );
    Job {
        metadata: restore_meta(
            addon,
            &restore_job_name(addon, request_id),
            request_id,
            "restore",
        ),
        spec: Some(JobSpec {
            // A restore is not retried blindly: it reports, and a new requestId retries.
            backoff_limit: Some(0),
            active_deadline_seconds: Some(BACKUP_DEADLINE_SECONDS),
            ttl_seconds_after_finished: Some(RESTORE_TTL),
            template: pod(
                addon,
                s,
                b,
                PodParts {
                    component: RESTORE_COMPONENT,
                    container: "restore",
                    args: vec![
                        "restore".into(),
                        addon.spec.addon.slug().into(),
                        "--from".into(),
                        from.to_owned(),
                        "--request-id".into(),
                        request_id.to_owned(),
                        "--force".into(),
                    ],
                    env: vec![env("BACKUP_WORK_DIR", WORK_PATH)],
                    volumes: vec![work],
                },
            ),
            ..JobSpec::default()
        }),
        ..Job::default()
    }
}

/// The migration after a restore: the restored schema brought to this version's.
pub fn restore_migration_job(addon: &ClockifyAddon, s: &Settings, request_id: &str) -> Job {
    let mut job = super::job::migration_job(addon, s);
    job.metadata = restore_meta(
        addon,
        &restore_migration_job_name(addon, request_id),
        request_id,
        "migrate",
    );
    if let Some(spec) = job.spec.as_mut() {
        spec.ttl_seconds_after_finished = Some(RESTORE_TTL);
        if let Some(m) = spec.template.metadata.as_mut() {
            m.labels = Some(component_labels(addon, RESTORE_COMPONENT));
        }
    }
    job
}

/// The volume backups are written to. It has no owner: deleting the ClockifyAddon keeps its
/// backups (a ClockifyAddon created again under the same name finds them).
pub fn pvc(addon: &ClockifyAddon, b: &BackupSettings) -> Option<PersistentVolumeClaim> {
    let BackupTarget::Volume {
        size,
        storage_class,
    } = &b.target
    else {
        return None;
    };
    let mut meta = child_meta(addon, &pvc_name(addon));
    meta.owner_references = None;
    meta.labels = Some(component_labels(addon, COMPONENT));
    Some(PersistentVolumeClaim {
        metadata: meta,
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some([("storage".to_owned(), Quantity(size.clone()))].into()),
                ..VolumeResourceRequirements::default()
            }),
            storage_class_name: storage_class.clone(),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    })
}
