//! The spec resolved against its tier profile: every value a builder needs, defaults applied.

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::crd::{ClockifyAddon, PullPolicy, ServiceMonitorMode};
use crate::tier::{self, DEFAULT_CPU_TARGET};

pub const DEFAULT_REPOSITORY: &str = "ghcr.io/clockify-addons/clockify-addons";
pub const DEFAULT_DB_PORT: i32 = 5432;

/// A spec the operator will not act on, with what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub image: String,
    pub pull_policy: Option<PullPolicy>,
    pub min_replicas: i32,
    pub max_replicas: i32,
    pub cpu_target: i32,
    pub resources: ResourceRequirements,
    pub pdb_max_unavailable: Option<i32>,
    pub db_port: i32,
    pub db_connections: u32,
    pub service_monitor: ServiceMonitorMode,
    pub scrape_interval: String,
    pub network_policy: bool,
    pub log_level: String,
    pub backup_schedule: String,
}

impl Settings {
    pub fn autoscaled(&self) -> bool {
        self.max_replicas > self.min_replicas
    }
}

/// Variables the operator sets from the spec; overriding them would bypass it.
const RESERVED_ENV: &[&str] = &[
    "DATABASE_URL",
    "TOKEN_ENCRYPTION_KEY",
    "REDIS_URL",
    "ADDON_MODE",
    "ADDON_BASE_URL",
    "ADDON_LISTEN_ADDR",
];

/// Names that carry secrets and must never appear as plain values in a spec.
pub fn is_secret_name(name: &str) -> bool {
    ["DATABASE_URL", "REDIS_URL", "TOKEN_ENCRYPTION_KEY"].contains(&name)
        || ["_TOKEN", "_SECRET", "_PASSWORD", "_KEY"]
            .iter()
            .any(|s| name.ends_with(s))
            && name != "ADDON_KEY"
}

/// Resolves the spec; an [`Invalid`] says what the CRD's rules could not catch.
pub fn resolve(addon: &ClockifyAddon) -> Result<Settings, Invalid> {
    let spec = &addon.spec;
    let profile = tier::profile(spec.tier);
    let image = spec.image.clone().unwrap_or_default();
    let repository = image
        .repository
        .clone()
        .unwrap_or_else(|| DEFAULT_REPOSITORY.to_owned());
    let image_ref = match (&image.digest, &image.tag) {
        (Some(digest), _) => format!("{repository}@{digest}"),
        (None, Some(tag)) => format!("{repository}:{tag}"),
        (None, None) => format!("{repository}:{}", spec.version),
    };
    let replicas = spec.replicas.clone().unwrap_or_default();
    let min_replicas = replicas.min.unwrap_or(profile.min_replicas);
    let max_replicas = replicas
        .max
        .unwrap_or_else(|| profile.max_replicas.max(min_replicas));
    if min_replicas > max_replicas {
        return Err(Invalid(format!(
            "replicas: min {min_replicas} is greater than max {max_replicas} (tier {} defaults to {}-{})",
            spec.tier.as_str(),
            profile.min_replicas,
            profile.max_replicas
        )));
    }
    if !spec.base_url.starts_with("https://") {
        return Err(Invalid("baseUrl must be an https:// URL".into()));
    }
    if let Some(overrides) = &spec.pod_overrides {
        for e in &overrides.env {
            if e.value.is_some() && is_secret_name(&e.name) {
                return Err(Invalid(format!(
                    "podOverrides.env: {} looks like a secret; give it with valueFrom.secretKeyRef, never as a value",
                    e.name
                )));
            }
            if RESERVED_ENV.contains(&e.name.as_str()) {
                return Err(Invalid(format!(
                    "podOverrides.env: {} is set by the operator from the spec",
                    e.name
                )));
            }
        }
    }
    let quantity = |s: &str| Quantity(s.to_owned());
    let resources = spec
        .pod_overrides
        .as_ref()
        .and_then(|o| o.resources.clone())
        .unwrap_or_else(|| ResourceRequirements {
            requests: Some(
                [
                    ("cpu".to_owned(), quantity(profile.cpu_request)),
                    ("memory".to_owned(), quantity(profile.memory_request)),
                ]
                .into(),
            ),
            limits: Some(
                [
                    ("cpu".to_owned(), quantity(profile.cpu_limit)),
                    ("memory".to_owned(), quantity(profile.memory_limit)),
                ]
                .into(),
            ),
            ..ResourceRequirements::default()
        });
    let monitoring = spec.monitoring.clone().unwrap_or_default();
    Ok(Settings {
        image: image_ref,
        pull_policy: image.pull_policy,
        min_replicas,
        max_replicas,
        cpu_target: replicas
            .target_cpu_utilization_percentage
            .unwrap_or(DEFAULT_CPU_TARGET),
        resources,
        pdb_max_unavailable: if min_replicas >= 2 {
            Some(profile.pdb_max_unavailable.unwrap_or(1))
        } else {
            None
        },
        db_port: spec.database.port.unwrap_or(DEFAULT_DB_PORT),
        db_connections: profile.db_connections,
        service_monitor: monitoring.service_monitor.unwrap_or_default(),
        scrape_interval: monitoring.interval.unwrap_or_else(|| "30s".to_owned()),
        network_policy: spec
            .network_policy
            .as_ref()
            .and_then(|n| n.enabled)
            .unwrap_or(true),
        log_level: spec.log_level.clone().unwrap_or_else(|| "info".to_owned()),
        backup_schedule: spec
            .backup
            .as_ref()
            .and_then(|b| b.schedule.clone())
            .unwrap_or_else(|| profile.backup_schedule.to_owned()),
    })
}
