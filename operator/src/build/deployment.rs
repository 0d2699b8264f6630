//! The Deployment: restricted pod security, probes, configuration from the ConfigMap and
//! secret references, tier resources, zero-unavailability rolling updates, and a pod template
//! annotated with the configuration hash.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapEnvSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvFromSource, EnvVar, EnvVarSource, HTTPGetAction, Lifecycle, LifecycleHandler,
    LocalObjectReference, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SeccompProfile, SecretKeySelector, SecurityContext, SleepAction,
    TopologySpreadConstraint, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::config::{PRE_STOP_SLEEP_SECONDS, TERMINATION_GRACE_SECONDS, config_hash};
use crate::crd::{ClockifyAddon, PullPolicy, SecretKeyRef};
use crate::meta::{
    CONFIG_HASH_ANNOTATION, HTTP_PORT, VERSION_ANNOTATION, child_meta, config_map_name, labels,
    selector_labels, with_version,
};
use crate::secrets::SECRETS_HASH_ANNOTATION;
use crate::settings::Settings;

/// The non-root user of the distroless image.
pub const RUN_AS: i64 = 65532;

pub fn secret_env(name: &str, r: &SecretKeyRef) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: r.name.clone(),
                key: r.key.clone(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn http_probe(path: &str, period: i32, timeout: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("http".to_owned()),
            scheme: Some("HTTP".to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(timeout),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

/// Restricted Pod Security Standard for a container.
pub fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS),
        run_as_group: Some(RUN_AS),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            ..Capabilities::default()
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            ..SeccompProfile::default()
        }),
        ..SecurityContext::default()
    }
}

/// Restricted Pod Security Standard for a pod.
pub fn pod_security() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS),
        run_as_group: Some(RUN_AS),
        fs_group: Some(RUN_AS),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

/// The environment every add-on container gets: secrets by reference only.
pub fn secret_envs(addon: &ClockifyAddon) -> Vec<EnvVar> {
    let mut env = vec![
        secret_env("DATABASE_URL", &addon.spec.database.url_secret_ref),
        secret_env(
            "TOKEN_ENCRYPTION_KEY",
            &addon.spec.secrets.token_encryption_key_ref,
        ),
    ];
    // Earlier keys, each from its Secret, joined by Kubernetes' $(VAR) expansion into the one
    // list the add-on reads: the values never appear in the pod spec.
    let previous = &addon.spec.secrets.previous_token_encryption_key_refs;
    if !previous.is_empty() {
        let mut names = Vec::with_capacity(previous.len());
        for (i, r) in previous.iter().enumerate() {
            let name = format!("TOKEN_ENCRYPTION_PREVIOUS_KEY_{}", i + 1);
            env.push(secret_env(&name, r));
            names.push(format!("$({name})"));
        }
        env.push(EnvVar {
            name: "TOKEN_ENCRYPTION_PREVIOUS_KEYS".to_owned(),
            value: Some(names.join(",")),
            ..EnvVar::default()
        });
    }
    if let Some(redis) = &addon.spec.secrets.redis_url_ref {
        env.push(secret_env("REDIS_URL", redis));
    }
    env
}

/// The writable scratch directory on an otherwise read-only root filesystem.
pub fn tmp_volume() -> (Volume, VolumeMount) {
    (
        Volume {
            name: "tmp".to_owned(),
            empty_dir: Some(EmptyDirVolumeSource {
                size_limit: Some(Quantity("64Mi".to_owned())),
                ..EmptyDirVolumeSource::default()
            }),
            ..Volume::default()
        },
        VolumeMount {
            name: "tmp".to_owned(),
            mount_path: "/tmp".to_owned(),
            ..VolumeMount::default()
        },
    )
}

/// Requests and limits of a container: (cpu, memory) each.
pub fn resources(requests: (&str, &str), limits: (&str, &str)) -> ResourceRequirements {
    let q = |v: &str| Quantity(v.to_owned());
    ResourceRequirements {
        requests: Some(
            [
                ("cpu".to_owned(), q(requests.0)),
                ("memory".to_owned(), q(requests.1)),
            ]
            .into(),
        ),
        limits: Some(
            [
                ("cpu".to_owned(), q(limits.0)),
                ("memory".to_owned(), q(limits.1)),
            ]
            .into(),
        ),
        ..ResourceRequirements::default()
    }
}

/// The image pull Secrets of `spec.image`.
pub fn pull_secrets(addon: &ClockifyAddon) -> Vec<LocalObjectReference> {
    addon
        .spec
        .image
        .as_ref()
        .map(|i| {
            i.pull_secrets
                .iter()
                .map(|n| LocalObjectReference { name: n.clone() })
                .collect()
        })
        .unwrap_or_default()
}

pub fn pull_policy(p: Option<PullPolicy>) -> Option<String> {
    p.map(|p| match p {
        PullPolicy::Always => "Always",
        PullPolicy::IfNotPresent => "IfNotPresent",
        PullPolicy::Never => "Never",
    })
    .map(str::to_owned)
}

fn non_empty<K, V>(m: BTreeMap<K, V>) -> Option<BTreeMap<K, V>> {
    if m.is_empty() { None } else { Some(m) }
}

fn non_empty_vec<T>(v: Vec<T>) -> Option<Vec<T>> {
    if v.is_empty() { None } else { Some(v) }
}

/// Deployment annotation: the image whose database migration has completed. It lives on the
/// Deployment object, not its pod template, so a template edited by hand is still known to be
/// drift (put back at once), not an upgrade to migrate for.
pub const MIGRATED_IMAGE_ANNOTATION: &str = "clockify-addons.io/migrated-image";

/// The Deployment running the spec's image and version.
pub fn deployment(addon: &ClockifyAddon, s: &Settings) -> Deployment {
    deployment_running(addon, s, &s.image, &addon.spec.version, &s.image)
}

/// The Deployment running `image` at `version`, recording `migrated_image` as migrated (an
/// upgrade holds the previous image until the new one is migrated).
pub fn deployment_running(
    addon: &ClockifyAddon,
    s: &Settings,
    image: &str,
    version: &str,
    migrated_image: &str,
) -> Deployment {
    let overrides = addon.spec.pod_overrides.clone().unwrap_or_default();
    let mut pod_labels = overrides.labels.clone();
    pod_labels.extend(with_version(labels(addon), version)); // selector and operator labels win
    let mut annotations = overrides.annotations.clone();
    annotations.insert(CONFIG_HASH_ANNOTATION.to_owned(), config_hash(addon, s));
    annotations.insert(VERSION_ANNOTATION.to_owned(), version.to_owned());
    if let Some(h) = &s.secrets_hash {
        annotations.insert(SECRETS_HASH_ANNOTATION.to_owned(), h.clone());
    }
    let mut env = secret_envs(addon);
    env.extend(overrides.env.iter().cloned());
    let (tmp, tmp_mount) = tmp_volume();
    let spread = if overrides.topology_spread_constraints.is_empty() && s.min_replicas > 1 {
        vec![TopologySpreadConstraint {
            max_skew: 1,
            topology_key: "kubernetes.io/hostname".to_owned(),
            when_unsatisfiable: "ScheduleAnyway".to_owned(),
            label_selector: Some(LabelSelector {
                match_labels: Some(selector_labels(addon)),
                ..LabelSelector::default()
            }),
            ..TopologySpreadConstraint::default()
        }]
    } else {
        overrides.topology_spread_constraints.clone()
    };
    let container = Container {
        name: "addon".to_owned(),
        image: Some(image.to_owned()),
        image_pull_policy: pull_policy(s.pull_policy),
        args: Some(vec!["serve".to_owned(), addon.spec.addon.slug().to_owned()]),
        ports: Some(vec![ContainerPort {
            name: Some("http".to_owned()),
            container_port: HTTP_PORT,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        env_from: Some(vec![EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: config_map_name(addon),
                optional: Some(false),
            }),
            ..EnvFromSource::default()
        }]),
        env: Some(env),
        resources: Some(s.resources.clone()),
        startup_probe: Some(http_probe("/healthz", 2, 2, 30)),
        liveness_probe: Some(http_probe("/healthz", 10, 2, 3)),
        readiness_probe: Some(http_probe("/ready", 5, 3, 2)),
        // Endpoints and proxies take a few seconds to stop sending to a terminating pod: it
        // keeps serving through the preStop sleep, and only then gets SIGTERM.
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                sleep: Some(SleepAction {
                    seconds: PRE_STOP_SLEEP_SECONDS,
                }),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        }),
        security_context: Some(container_security()),
        volume_mounts: Some(vec![tmp_mount]),
        ..Container::default()
    };
    let pull_secrets = pull_secrets(addon);
    let mut metadata = child_meta(addon, &addon.name_any());
    metadata.annotations = Some(BTreeMap::from([(
        MIGRATED_IMAGE_ANNOTATION.to_owned(),
        migrated_image.to_owned(),
    )]));
    Deployment {
        metadata,
        spec: Some(DeploymentSpec {
            // An autoscaler owns the replica count when there is one.
            replicas: if s.autoscaled() {
                None
            } else {
                Some(s.min_replicas)
            },
            selector: LabelSelector {
                match_labels: Some(selector_labels(addon)),
                ..LabelSelector::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_owned()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::Int(0)),
                    max_surge: Some(IntOrString::Int(1)),
                }),
            }),
            revision_history_limit: Some(5),
            progress_deadline_seconds: Some(600),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(addon.name_any()),
                    automount_service_account_token: Some(false),
                    security_context: Some(pod_security()),
                    termination_grace_period_seconds: Some(TERMINATION_GRACE_SECONDS),
                    containers: vec![container],
                    volumes: Some(vec![tmp]),
                    image_pull_secrets: non_empty_vec(pull_secrets),
                    node_selector: non_empty(overrides.node_selector.clone()),
                    tolerations: non_empty_vec(overrides.tolerations.clone()),
                    affinity: overrides.affinity.clone(),
                    topology_spread_constraints: non_empty_vec(spread),
                    priority_class_name: overrides.priority_class_name.clone(),
                    enable_service_links: Some(false),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}
