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
    /// Scheduled backups, when spec.backup is set.
    pub backup: Option<BackupSettings>,
    /// Scaling on the work with KEDA (autoscaled, and replicas.work not disabled).
    pub work: Option<WorkSettings>,
    /// Exposure at baseUrl's host (spec.exposure).
    pub exposure: Option<Exposure>,
    /// The hash of the referenced Secret values the pods read ([`crate::secrets`]); None when
    /// planned without the cluster (`render`).
    pub secrets_hash: Option<String>,
}

/// Waiting work one replica carries unless the spec says otherwise.
pub const DEFAULT_BACKLOG_PER_REPLICA: i32 = 100;

/// replicas.work resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkSettings {
    pub backlog_per_replica: i32,
    /// (requests per second per replica, Prometheus address).
    pub requests: Option<(i32, String)>,
}

/// spec.exposure resolved: the host comes from baseUrl.
#[derive(Debug, Clone, PartialEq)]
pub struct Exposure {
    pub host: String,
    pub ingress: Option<crate::crd::IngressExposure>,
    pub gateway: Option<crate::crd::GatewayRef>,
    pub controller: Option<k8s_openapi::api::networking::v1::NetworkPolicyPeer>,
}

/// The host of an https:// baseUrl that an Ingress or HTTPRoute can route: a DNS name, and no
/// path (the add-on serves at the root of its host).
fn exposure(base_url: &str, e: &crate::crd::ExposureSpec) -> Result<Exposure, Invalid> {
    let rest = base_url.strip_prefix("https://").unwrap_or(base_url);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if !(tail.is_empty() || tail == "/") {
        return Err(Invalid(format!(
            "exposure: baseUrl {base_url} has a path, but the add-on serves at the root of its host; use https://<host>/"
        )));
    }
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => authority,
    }
    .to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let wildcard = host.starts_with("*.");
    let labels: Vec<&str> = host.trim_start_matches("*.").split('.').collect();
    if wildcard || host.len() > 253 || labels.len() < 2 || !labels.iter().all(|l| label_ok(l)) {
        return Err(Invalid(format!(
            "exposure: the host of baseUrl {base_url} ({host}) is not a DNS name an Ingress or HTTPRoute can route"
        )));
    }
    Ok(Exposure {
        host,
        ingress: e.ingress.clone(),
        gateway: e.gateway.clone(),
        controller: e.controller.clone(),
    })
}

/// spec.backup resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupSettings {
    pub schedule: String,
    /// The image with pg_dump, pg_restore and psql.
    pub image: String,
    pub suspend: bool,
    pub keep_last: Option<i32>,
    pub max_age_days: Option<i32>,
    pub target: BackupTarget,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BackupTarget {
    /// A PersistentVolumeClaim mounted at /backups.
    Volume {
        size: String,
        storage_class: Option<String>,
    },
    /// `s3://bucket/<prefix>/<namespace>/<name>`: instances sharing a bucket never mix.
    S3 {
        url: String,
        endpoint: Option<String>,
        /// The endpoint's port when it is not 443 (for the NetworkPolicy).
        endpoint_port: Option<i32>,
        region: Option<String>,
        /// `None`: workload identity (web-identity credentials through the ServiceAccount).
        credentials_secret: Option<String>,
    },
}

/// The tag suffix of the default backup image (the add-on image plus the PostgreSQL client).
pub const BACKUP_IMAGE_SUFFIX: &str = "-backup";

impl Settings {
    pub fn autoscaled(&self) -> bool {
        self.max_replicas > self.min_replicas
    }
}

/// Variables the operator sets from the spec; overriding them would bypass it.
const RESERVED_ENV: &[&str] = &[
    "DATABASE_URL",
    "TOKEN_ENCRYPTION_KEY",
    "TOKEN_ENCRYPTION_PREVIOUS_KEYS",
    "REDIS_URL",
    "ADDON_MODE",
    "SHUTDOWN_TIMEOUT_SECONDS",
    "SHUTDOWN_DRAIN_SECONDS",
    "ADDON_BASE_URL",
    "ADDON_LISTEN_ADDR",
];

/// Names that carry secrets and must never appear as plain values in a spec.
pub fn is_secret_name(name: &str) -> bool {
    [
        "DATABASE_URL",
        "REDIS_URL",
        "TOKEN_ENCRYPTION_KEY",
        "TOKEN_ENCRYPTION_PREVIOUS_KEYS",
    ]
    .contains(&name)
        || ["_TOKEN", "_SECRET", "_PASSWORD", "_KEY", "_KEYS"]
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
    let backup_schedule = spec
        .backup
        .as_ref()
        .and_then(|b| b.schedule.clone())
        .unwrap_or_else(|| profile.backup_schedule.to_owned());
    let backup = match &spec.backup {
        None => None,
        Some(b) => Some(BackupSettings {
            schedule: backup_schedule.clone(),
            image: b.image.clone().unwrap_or_else(|| {
                let tag = image.tag.clone().unwrap_or_else(|| spec.version.clone());
                format!("{repository}:{tag}{BACKUP_IMAGE_SUFFIX}")
            }),
            suspend: b.suspend.unwrap_or(false),
            keep_last: b.retention.as_ref().and_then(|r| r.keep_last),
            max_age_days: b.retention.as_ref().and_then(|r| r.max_age_days),
            target: backup_target(addon, b)?,
        }),
    };
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
        backup_schedule,
        backup,
        work: {
            let w = replicas.work.clone().unwrap_or_default();
            (max_replicas > min_replicas && w.enabled != Some(false)).then(|| WorkSettings {
                backlog_per_replica: w.backlog_per_replica.unwrap_or(DEFAULT_BACKLOG_PER_REPLICA),
                requests: w
                    .requests_per_second_per_replica
                    .zip(w.prometheus_address.clone()),
            })
        },
        exposure: spec
            .exposure
            .as_deref()
            .map(|e| exposure(&spec.base_url, e))
            .transpose()?,
        secrets_hash: None,
    })
}

/// A storage size such as 5Gi, 500M or 1.5Ti.
fn is_storage_quantity(s: &str) -> bool {
    let unit_at = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(unit_at);
    !number.is_empty()
        && number.parse::<f64>().is_ok_and(|n| n > 0.0)
        && [
            "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E",
        ]
        .contains(&unit)
}

fn backup_target(
    addon: &ClockifyAddon,
    b: &crate::crd::BackupSpec,
) -> Result<BackupTarget, Invalid> {
    match (&b.destination.pvc, &b.destination.s3) {
        (Some(pvc), None) => {
            if !is_storage_quantity(&pvc.size) {
                return Err(Invalid(format!(
                    "backup.destination.pvc.size {:?} is not a quantity such as 5Gi",
                    pvc.size
                )));
            }
            Ok(BackupTarget::Volume {
                size: pvc.size.clone(),
                storage_class: pvc.storage_class_name.clone(),
            })
        }
        (None, Some(s3)) => {
            let endpoint_port = match &s3.endpoint {
                None => None,
                Some(e) => {
                    let url = url::Url::parse(e).map_err(|err| {
                        Invalid(format!(
                            "backup.destination.s3.endpoint {e:?} is not a URL: {err}"
                        ))
                    })?;
                    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                        return Err(Invalid(format!(
                            "backup.destination.s3.endpoint {e:?} must be an http(s) URL with a host"
                        )));
                    }
                    url.port_or_known_default()
                        .filter(|p| *p != 443)
                        .map(i32::from)
                }
            };
            let ns = addon.metadata.namespace.clone().unwrap_or_default();
            let name = addon.metadata.name.clone().unwrap_or_default();
            let prefix = s3
                .prefix
                .as_deref()
                .map(|p| p.trim_matches('/'))
                .filter(|p| !p.is_empty());
            let url = match prefix {
                Some(p) => format!("s3://{}/{p}/{ns}/{name}", s3.bucket),
                None => format!("s3://{}/{ns}/{name}", s3.bucket),
            };
            Ok(BackupTarget::S3 {
                url,
                endpoint: s3.endpoint.clone(),
                endpoint_port,
                region: s3.region.clone(),
                credentials_secret: s3.credentials_secret_ref.as_ref().map(|r| r.name.clone()),
            })
        }
        _ => Err(Invalid(
            "backup.destination: set exactly one of pvc or s3".to_owned(),
        )),
    }
}
