//! The HorizontalPodAutoscaler or, where KEDA is served, a ScaledObject (only when max > min) and the PodDisruptionBudget (only with
//! two or more replicas: with one, a budget would block every node drain).

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::json;

use crate::crd::ClockifyAddon;
use crate::meta::{SERVICE_PORT, child_meta, selector_labels};
use crate::settings::Settings;

pub fn hpa(addon: &ClockifyAddon, s: &Settings) -> Option<HorizontalPodAutoscaler> {
    if !s.autoscaled() {
        return None;
    }
    Some(HorizontalPodAutoscaler {
        metadata: child_meta(addon, &addon.name_any()),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".to_owned()),
                kind: "Deployment".to_owned(),
                name: addon.name_any(),
            },
            min_replicas: Some(s.min_replicas),
            max_replicas: s.max_replicas,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".to_owned(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".to_owned(),
                    target: MetricTarget {
                        type_: "Utilization".to_owned(),
                        average_utilization: Some(s.cpu_target),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            }]),
            ..HorizontalPodAutoscalerSpec::default()
        }),
        ..HorizontalPodAutoscaler::default()
    })
}

pub fn scaled_object_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject"),
        "scaledobjects",
    )
}

/// KEDA's ScaledObject: the add-on's waiting work (`GET /backlog`, the same on every replica),
/// CPU, and with a Prometheus the request rate, each asking for its number of replicas; KEDA's
/// HorizontalPodAutoscaler (named like the add-on, so the operator's replica hand-over sees it)
/// runs the largest within min..max. Built as a dynamic object: no Rust type for it ships with
/// k8s-openapi.
pub fn scaled_object(addon: &ClockifyAddon, s: &Settings) -> Option<DynamicObject> {
    let work = s.work.as_ref()?;
    let name = addon.name_any();
    let ns = addon.namespace().unwrap_or_else(|| "default".to_owned());
    let mut triggers = vec![
        json!({"type": "metrics-api", "name": "backlog", "metricType": "AverageValue", "metadata": {
            "url": format!("http://{name}.{ns}.svc:{SERVICE_PORT}/backlog"),
            "valueLocation": "waiting",
            "targetValue": work.backlog_per_replica.to_string(),
        }}),
        json!({"type": "cpu", "name": "cpu", "metricType": "Utilization", "metadata": {"value": s.cpu_target.to_string()}}),
    ];
    if let Some((rps, address)) = &work.requests {
        triggers.push(json!({"type": "prometheus", "name": "requests", "metricType": "AverageValue", "metadata": {
            "serverAddress": address,
            "query": format!("sum(rate(http_requests_total{{namespace=\"{ns}\",service=\"{name}\"}}[2m]))"),
            "threshold": rps.to_string(),
        }}));
    }
    let mut obj = DynamicObject::new(&name, &scaled_object_resource()).data(json!({
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicaCount": s.min_replicas,
            "maxReplicaCount": s.max_replicas,
            "pollingInterval": 15,
            "cooldownPeriod": 300,
            "advanced": {"horizontalPodAutoscalerConfig": {"name": name}},
            "triggers": triggers,
        }
    }));
    obj.metadata = child_meta(addon, &name);
    Some(obj)
}

pub fn pdb(addon: &ClockifyAddon, s: &Settings) -> Option<PodDisruptionBudget> {
    let max_unavailable = s.pdb_max_unavailable?;
    Some(PodDisruptionBudget {
        metadata: child_meta(addon, &addon.name_any()),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(max_unavailable)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(addon)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    })
}
