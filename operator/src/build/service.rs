//! The ClusterIP Service in front of the pods.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use crate::crd::ClockifyAddon;
use crate::meta::{SERVICE_PORT, child_meta, selector_labels};

pub fn service(addon: &ClockifyAddon) -> Service {
    Service {
        metadata: child_meta(addon, &addon.name_any()),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(selector_labels(addon)),
            ports: Some(vec![ServicePort {
                name: Some("http".to_owned()),
                port: SERVICE_PORT,
                target_port: Some(IntOrString::String("http".to_owned())),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The in-cluster URL of the Service.
pub fn url(addon: &ClockifyAddon) -> String {
    format!(
        "http://{}.{}.svc:{SERVICE_PORT}",
        addon.name_any(),
        addon.namespace().unwrap_or_else(|| "default".to_owned())
    )
}
