//! The migration Job: `clockify-addons migrate <addon>` with the new image, before any new pod
//! serves. Its name carries a hash of the image, so each image is migrated by a Job of its own.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use sha2::{Digest, Sha256};

use super::deployment::{
    container_security, pod_security, pull_policy, pull_secrets, resources, secret_envs, tmp_volume,
};
use crate::crd::{ClockifyAddon, RETRY_MIGRATION_ANNOTATION};
use crate::meta::{LABEL_COMPONENT, LABEL_INSTANCE, LABEL_NAME, child_meta, labels, with_version};
use crate::settings::Settings;

pub const COMPONENT: &str = "migration";
pub const IMAGE_ANNOTATION: &str = "clockify-addons.io/image";
pub const GENERATION_ANNOTATION: &str = "clockify-addons.io/generation";
/// A migration Job that succeeded is deleted this long after (set by the operator once it saw
/// the success). A failed one has no TTL: it stays, and the upgrade stays stopped, until someone
/// acts (see docs/upgrades.md).
pub const TTL_AFTER_SUCCESS: i32 = 3600;
pub const DEFAULT_TIMEOUT_SECONDS: i64 = 600;
pub const DEFAULT_BACKOFF_LIMIT: i32 = 2;

/// `<name>-migrate-<first 8 hex digits of sha256(image)>`.
pub fn job_name(addon: &ClockifyAddon, image: &str) -> String {
    let digest = hex::encode(Sha256::digest(image.as_bytes()));
    format!("{}-migrate-{}", addon.name_any(), &digest[..8])
}

/// Labels of migration Jobs and their pods (never `component=addon`: Services, budgets and
/// autoscalers must not select them).
pub fn job_labels(addon: &ClockifyAddon) -> BTreeMap<String, String> {
    let mut l = with_version(labels(addon), &addon.spec.version);
    l.insert(LABEL_COMPONENT.to_owned(), COMPONENT.to_owned());
    l
}

/// The labels that find this ClockifyAddon's migration Jobs.
pub fn job_selector(addon: &ClockifyAddon) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.to_owned(), addon.spec.addon.slug().to_owned()),
        (LABEL_INSTANCE.to_owned(), addon.name_any()),
        (LABEL_COMPONENT.to_owned(), COMPONENT.to_owned()),
    ])
}

pub fn migration_job(addon: &ClockifyAddon, s: &Settings) -> Job {
    let migrations = addon.spec.database.migrations.clone().unwrap_or_default();
    let overrides = addon.spec.pod_overrides.clone().unwrap_or_default();
    let mut meta = child_meta(addon, &job_name(addon, &s.image));
    meta.labels = Some(job_labels(addon));
    let mut annotations = BTreeMap::from([
        (
            crate::meta::VERSION_ANNOTATION.to_owned(),
            addon.spec.version.clone(),
        ),
        (IMAGE_ANNOTATION.to_owned(), s.image.clone()),
        (
            GENERATION_ANNOTATION.to_owned(),
            addon.metadata.generation.unwrap_or(0).to_string(),
        ),
    ]);
    if let Some(retry) = addon.annotations().get(RETRY_MIGRATION_ANNOTATION) {
        annotations.insert(RETRY_MIGRATION_ANNOTATION.to_owned(), retry.clone());
    }
    meta.annotations = Some(annotations);
    let mut env = secret_envs(addon);
    env.retain(|e| e.name == "DATABASE_URL");
    env.push(EnvVar {
        name: "LOG_FORMAT".into(),
        value: Some("json".into()),
        ..EnvVar::default()
    });
    let (tmp, tmp_mount) = tmp_volume();
    let pull_secrets = pull_secrets(addon);
    Job {
        metadata: meta,
        spec: Some(JobSpec {
            backoff_limit: Some(migrations.backoff_limit.unwrap_or(DEFAULT_BACKOFF_LIMIT)),
            active_deadline_seconds: Some(
                migrations
                    .timeout_seconds
                    .unwrap_or(DEFAULT_TIMEOUT_SECONDS),
            ),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(job_labels(addon)),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    service_account_name: Some(addon.name_any()),
                    automount_service_account_token: Some(false),
                    security_context: Some(pod_security()),
                    containers: vec![Container {
                        name: "migrate".into(),
                        image: Some(s.image.clone()),
                        image_pull_policy: pull_policy(s.pull_policy),
                        args: Some(vec!["migrate".into(), addon.spec.addon.slug().into()]),
                        env: Some(env),
                        resources: Some(resources(("50m", "64Mi"), ("500m", "256Mi"))),
                        security_context: Some(container_security()),
                        volume_mounts: Some(vec![tmp_mount]),
                        ..Container::default()
                    }],
                    volumes: Some(vec![tmp]),
                    image_pull_secrets: if pull_secrets.is_empty() {
                        None
                    } else {
                        Some(pull_secrets)
                    },
                    node_selector: if overrides.node_selector.is_empty() {
                        None
                    } else {
                        Some(overrides.node_selector.clone())
                    },
                    tolerations: if overrides.tolerations.is_empty() {
                        None
                    } else {
                        Some(overrides.tolerations.clone())
                    },
                    affinity: overrides.affinity.clone(),
                    priority_class_name: overrides.priority_class_name.clone(),
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        ..Job::default()
    }
}
