//! The HorizontalPodAutoscaler (only when max > min) and the PodDisruptionBudget (only with
//! two or more replicas: with one, a budget would block every node drain).

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use crate::crd::ClockifyAddon;
use crate::meta::{child_meta, selector_labels};
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
