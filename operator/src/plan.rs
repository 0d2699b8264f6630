//! observe -> **plan** -> apply -> prune -> status. The plan is a pure function of the
//! ClockifyAddon and what the cluster serves: the objects to apply, in apply order, and the
//! optional kinds that must not exist.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use kube::api::DynamicObject;
use serde::Serialize;
use serde_json::Value;

use crate::build;
use crate::crd::{ClockifyAddon, ServiceMonitorMode};
use crate::settings::{self, Invalid, Settings};

/// What the cluster serves that changes the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// Whether monitoring.coreos.com/v1 ServiceMonitor is served.
    pub service_monitor: bool,
    /// Whether gateway.networking.k8s.io/v1 HTTPRoute is served.
    pub http_route: bool,
    /// Whether keda.sh/v1alpha1 ScaledObject is served.
    pub scaled_object: bool,
}

/// How the plan exposes the add-on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExposureState {
    /// An HTTPRoute on this Gateway.
    Routed { gateway: String, host: String },
    /// An Ingress (where a Gateway was named, the cluster does not serve the Gateway API).
    Ingress {
        host: String,
        instead_of_gateway: bool,
    },
    /// Only a Gateway was named, and the cluster does not serve the Gateway API: not exposed.
    GatewayApiMissing,
}

/// The name of the optional child of `kind` (all are named after the ClockifyAddon, but the
/// backup CronJob).
pub fn optional_name(addon: &ClockifyAddon, kind: Kind) -> String {
    match kind {
        Kind::CronJob => build::backup::cron_job_name(addon),
        _ => addon.name_any(),
    }
}

/// The kinds of children, in apply order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    ServiceAccount,
    ConfigMap,
    NetworkPolicy,
    Service,
    /// Exposure (spec.exposure.ingress).
    Ingress,
    /// Exposure on a Gateway (spec.exposure.gateway, where the Gateway API is served).
    HTTPRoute,
    Deployment,
    HorizontalPodAutoscaler,
    /// Scaling on the work (KEDA), instead of the HorizontalPodAutoscaler where served.
    ScaledObject,
    PodDisruptionBudget,
    ServiceMonitor,
    /// The backup volume (never pruned: it holds backups).
    PersistentVolumeClaim,
    /// The backup schedule.
    CronJob,
    /// The migration Job (created by the upgrade flow, never pruned: TTL removes it).
    Job,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ServiceAccount => "ServiceAccount",
            Self::ConfigMap => "ConfigMap",
            Self::NetworkPolicy => "NetworkPolicy",
            Self::Service => "Service",
            Self::Ingress => "Ingress",
            Self::HTTPRoute => "HTTPRoute",
            Self::Deployment => "Deployment",
            Self::HorizontalPodAutoscaler => "HorizontalPodAutoscaler",
            Self::ScaledObject => "ScaledObject",
            Self::PodDisruptionBudget => "PodDisruptionBudget",
            Self::ServiceMonitor => "ServiceMonitor",
            Self::PersistentVolumeClaim => "PersistentVolumeClaim",
            Self::CronJob => "CronJob",
            Self::Job => "Job",
        }
    }

    /// Kinds that exist only under some specs (and are pruned otherwise).
    pub const OPTIONAL: [Kind; 8] = [
        Kind::NetworkPolicy,
        Kind::Ingress,
        Kind::HTTPRoute,
        Kind::HorizontalPodAutoscaler,
        Kind::ScaledObject,
        Kind::PodDisruptionBudget,
        Kind::ServiceMonitor,
        Kind::CronJob,
    ];
}

/// One desired child.
#[derive(Debug, Clone)]
pub enum Child {
    ServiceAccount(ServiceAccount),
    ConfigMap(ConfigMap),
    NetworkPolicy(NetworkPolicy),
    Service(Service),
    Ingress(Box<Ingress>),
    HTTPRoute(DynamicObject),
    Deployment(Box<Deployment>),
    HorizontalPodAutoscaler(HorizontalPodAutoscaler),
    ScaledObject(DynamicObject),
    PodDisruptionBudget(PodDisruptionBudget),
    ServiceMonitor(DynamicObject),
    PersistentVolumeClaim(PersistentVolumeClaim),
    CronJob(Box<CronJob>),
    Job(Box<Job>),
}

impl Child {
    pub fn kind(&self) -> Kind {
        match self {
            Self::ServiceAccount(_) => Kind::ServiceAccount,
            Self::ConfigMap(_) => Kind::ConfigMap,
            Self::NetworkPolicy(_) => Kind::NetworkPolicy,
            Self::Service(_) => Kind::Service,
            Self::Ingress(_) => Kind::Ingress,
            Self::HTTPRoute(_) => Kind::HTTPRoute,
            Self::Deployment(_) => Kind::Deployment,
            Self::HorizontalPodAutoscaler(_) => Kind::HorizontalPodAutoscaler,
            Self::ScaledObject(_) => Kind::ScaledObject,
            Self::PodDisruptionBudget(_) => Kind::PodDisruptionBudget,
            Self::ServiceMonitor(_) => Kind::ServiceMonitor,
            Self::PersistentVolumeClaim(_) => Kind::PersistentVolumeClaim,
            Self::CronJob(_) => Kind::CronJob,
            Self::Job(_) => Kind::Job,
        }
    }

    pub fn name(&self) -> String {
        match self {
            Self::ServiceAccount(o) => o.name_any(),
            Self::ConfigMap(o) => o.name_any(),
            Self::NetworkPolicy(o) => o.name_any(),
            Self::Service(o) => o.name_any(),
            Self::Ingress(o) => o.name_any(),
            Self::HTTPRoute(o) => o.name_any(),
            Self::Deployment(o) => o.name_any(),
            Self::HorizontalPodAutoscaler(o) => o.name_any(),
            Self::ScaledObject(o) => o.name_any(),
            Self::PodDisruptionBudget(o) => o.name_any(),
            Self::ServiceMonitor(o) => o.name_any(),
            Self::PersistentVolumeClaim(o) => o.name_any(),
            Self::CronJob(o) => o.name_any(),
            Self::Job(o) => o.name_any(),
        }
    }

    /// The object as JSON, with apiVersion and kind.
    pub fn to_json(&self) -> Value {
        fn j<T: Serialize>(t: &T) -> Value {
            serde_json::to_value(t).unwrap_or(Value::Null)
        }
        match self {
            Self::ServiceAccount(o) => j(o),
            Self::ConfigMap(o) => j(o),
            Self::NetworkPolicy(o) => j(o),
            Self::Service(o) => j(o),
            Self::Ingress(o) => j(o),
            Self::HTTPRoute(o) => j(o),
            Self::Deployment(o) => j(o),
            Self::HorizontalPodAutoscaler(o) => j(o),
            Self::ScaledObject(o) => j(o),
            Self::PodDisruptionBudget(o) => j(o),
            Self::ServiceMonitor(o) => j(o),
            Self::PersistentVolumeClaim(o) => j(o),
            Self::CronJob(o) => j(o),
            Self::Job(o) => j(o),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub settings: Settings,
    /// Objects to apply, in apply order.
    pub children: Vec<Child>,
    /// Optional kinds that must not exist.
    pub absent: Vec<Kind>,
    /// Monitoring was asked for (Enabled) but the cluster does not serve ServiceMonitor.
    pub service_monitor_missing: bool,
    /// How the add-on is exposed, for the Exposed condition (None: no spec.exposure).
    pub exposure: Option<ExposureState>,
    /// What the cluster serves (kinds it does not serve are neither applied nor looked up).
    pub capabilities: Capabilities,
}

/// The plan without the cluster's Secrets (no secrets hash in the pod template).
pub fn plan(addon: &ClockifyAddon, caps: Capabilities) -> Result<Plan, Invalid> {
    plan_with(addon, caps, None)
}

/// The plan, its pod template carrying `secrets_hash` ([`crate::secrets`]).
pub fn plan_with(
    addon: &ClockifyAddon,
    caps: Capabilities,
    secrets_hash: Option<String>,
) -> Result<Plan, Invalid> {
    let mut s = settings::resolve(addon)?;
    s.secrets_hash = secrets_hash;
    let mut children = vec![
        Child::ServiceAccount(build::service_account(addon)),
        Child::ConfigMap(build::config_map(addon, &s)),
    ];
    children.extend(build::network_policy(addon, &s).map(Child::NetworkPolicy));
    children.push(Child::Service(build::service(addon)));
    let exposure = s.exposure.as_ref().map(|e| {
        let route = e.gateway.is_some() && caps.http_route;
        if route {
            children.extend(build::http_route(addon, &s).map(Child::HTTPRoute));
        } else {
            children.extend(build::ingress(addon, &s).map(|i| Child::Ingress(Box::new(i))));
        }
        match (&e.gateway, route, &e.ingress) {
            (Some(g), true, _) => ExposureState::Routed {
                gateway: g.name.clone(),
                host: e.host.clone(),
            },
            (_, false, Some(_)) => ExposureState::Ingress {
                host: e.host.clone(),
                instead_of_gateway: e.gateway.is_some(),
            },
            _ => ExposureState::GatewayApiMissing,
        }
    });
    children.push(Child::Deployment(Box::new(build::deployment(addon, &s))));
    // Where KEDA is served, it scales on the work; elsewhere the CPU autoscaler.
    match build::scaling::scaled_object(addon, &s) {
        Some(so) if caps.scaled_object => children.push(Child::ScaledObject(so)),
        _ => children.extend(build::hpa(addon, &s).map(Child::HorizontalPodAutoscaler)),
    }
    children.extend(build::pdb(addon, &s).map(Child::PodDisruptionBudget));
    let wants_monitor = s.service_monitor != ServiceMonitorMode::Disabled;
    if wants_monitor && caps.service_monitor {
        children.push(Child::ServiceMonitor(build::service_monitor(addon, &s)));
    }
    if let Some(b) = &s.backup {
        children.extend(build::backup::pvc(addon, b).map(Child::PersistentVolumeClaim));
        // No backup runs while a restore is under way.
        let suspend = b.suspend || crate::restore::active(addon);
        children.push(Child::CronJob(Box::new(build::backup::cron_job(
            addon, &s, b, suspend,
        ))));
    }
    let present: Vec<Kind> = children.iter().map(Child::kind).collect();
    let absent = Kind::OPTIONAL
        .into_iter()
        .filter(|k| !present.contains(k))
        .collect();
    Ok(Plan {
        exposure,
        service_monitor_missing: s.service_monitor == ServiceMonitorMode::Enabled
            && !caps.service_monitor,
        settings: s,
        children,
        absent,
        capabilities: caps,
    })
}
