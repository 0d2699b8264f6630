//! Exposure at baseUrl's host: an Ingress (networking.k8s.io/v1), or an HTTPRoute
//! (gateway.networking.k8s.io/v1, built as a dynamic object: no Rust type for it ships with
//! k8s-openapi) attached to a named Gateway. Only [`PUBLIC_PATHS`] are routed.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};
use kube::ResourceExt;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::json;

use crate::crd::ClockifyAddon;
use crate::meta::{SERVICE_PORT, child_meta};
use crate::settings::{Exposure, Settings};

/// How a path matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// This path only.
    Exact,
    /// This path and everything under it (`/ui` matches `/ui` and `/ui/flows`, not `/uix`).
    Prefix,
}

/// What Clockify and the people using an add-on reach. Everything else the pods serve
/// (`/metrics`, `/backlog`, `/healthz`, `/ready`) stays inside the cluster;
/// `operator/tests/exposure.rs` checks every route of the services against this list.
pub const PUBLIC_PATHS: [(&str, Match); 8] = [
    // The add-on manifest Clockify reads at installation.
    ("/manifest", Match::Exact),
    // Lifecycle callbacks (installed, deleted, settings, status).
    ("/lifecycle", Match::Prefix),
    // Clockify's webhooks and the custom webhook receivers.
    ("/webhooks", Match::Prefix),
    // The console Clockify frames, its API, and its scripts.
    ("/ui", Match::Prefix),
    ("/static", Match::Prefix),
    // The settings page's state.
    ("/settings", Match::Prefix),
    // API Studio's calls and their log.
    ("/api-call", Match::Prefix),
    // Workspace bootstrap runs the console starts.
    ("/bootstrap", Match::Prefix),
];

/// The paths the pods serve that are never exposed.
pub const PRIVATE_PATHS: [&str; 5] = [
    "/metrics",
    "/backlog",
    "/healthz",
    "/ready",
    // The add-on's own API description: for the platform team and developers, not Clockify.
    "/openapi.json",
];

/// cert-manager's annotations.
pub const ISSUER_ANNOTATION: &str = "cert-manager.io/issuer";
pub const CLUSTER_ISSUER_ANNOTATION: &str = "cert-manager.io/cluster-issuer";

pub fn http_route_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"),
        "httproutes",
    )
}

/// The Ingress for the host of baseUrl.
pub fn ingress(addon: &ClockifyAddon, s: &Settings) -> Option<Ingress> {
    let Exposure {
        host,
        ingress: Some(spec),
        ..
    } = s.exposure.as_ref()?
    else {
        return None;
    };
    let mut meta = child_meta(addon, &addon.name_any());
    let mut annotations: BTreeMap<String, String> = spec.annotations.clone();
    let tls = spec.tls.as_ref().map(|t| {
        if let Some(i) = &t.issuer {
            annotations.insert(ISSUER_ANNOTATION.to_owned(), i.clone());
        }
        if let Some(i) = &t.cluster_issuer {
            annotations.insert(CLUSTER_ISSUER_ANNOTATION.to_owned(), i.clone());
        }
        IngressTLS {
            hosts: Some(vec![host.clone()]),
            secret_name: Some(
                t.secret_name
                    .clone()
                    .unwrap_or_else(|| format!("{}-tls", addon.name_any())),
            ),
        }
    });
    if !annotations.is_empty() {
        meta.annotations.get_or_insert_default().extend(annotations);
    }
    let backend = IngressBackend {
        service: Some(IngressServiceBackend {
            name: addon.name_any(),
            port: Some(ServiceBackendPort {
                number: Some(SERVICE_PORT),
                ..ServiceBackendPort::default()
            }),
        }),
        ..IngressBackend::default()
    };
    let paths = PUBLIC_PATHS
        .iter()
        .map(|(path, m)| HTTPIngressPath {
            path: Some((*path).to_owned()),
            path_type: match m {
                Match::Exact => "Exact",
                Match::Prefix => "Prefix",
            }
            .to_owned(),
            backend: backend.clone(),
        })
        .collect();
    Some(Ingress {
        metadata: meta,
        spec: Some(IngressSpec {
            ingress_class_name: spec.class_name.clone(),
            tls: tls.map(|t| vec![t]),
            rules: Some(vec![IngressRule {
                host: Some(host.clone()),
                http: Some(HTTPIngressRuleValue { paths }),
            }]),
            ..IngressSpec::default()
        }),
        ..Ingress::default()
    })
}

/// The HTTPRoute for the host of baseUrl, attached to the spec's Gateway.
pub fn http_route(addon: &ClockifyAddon, s: &Settings) -> Option<DynamicObject> {
    let Exposure {
        host,
        gateway: Some(gateway),
        ..
    } = s.exposure.as_ref()?
    else {
        return None;
    };
    let mut parent =
        json!({"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway.name});
    if let Some(ns) = &gateway.namespace {
        parent["namespace"] = json!(ns);
    }
    if let Some(section) = &gateway.section_name {
        parent["sectionName"] = json!(section);
    }
    let matches: Vec<_> = PUBLIC_PATHS
        .iter()
        .map(|(path, m)| {
            json!({"path": {"type": match m { Match::Exact => "Exact", Match::Prefix => "PathPrefix" }, "value": path}})
        })
        .collect();
    let mut obj = DynamicObject::new(&addon.name_any(), &http_route_resource()).data(json!({
        "spec": {
            "parentRefs": [parent],
            "hostnames": [host],
            "rules": [{
                "matches": matches,
                "backendRefs": [{"group": "", "kind": "Service", "name": addon.name_any(), "port": SERVICE_PORT, "weight": 1}],
            }],
        }
    }));
    obj.metadata = child_meta(addon, &addon.name_any());
    Some(obj)
}
