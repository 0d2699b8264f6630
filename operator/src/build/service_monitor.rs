//! The Prometheus Operator ServiceMonitor (monitoring.coreos.com/v1), built as a dynamic
//! object since no Rust type for it ships with k8s-openapi.

use kube::ResourceExt;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::json;

use crate::crd::ClockifyAddon;
use crate::meta::{child_meta, selector_labels};
use crate::settings::Settings;

pub fn api_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("monitoring.coreos.com", "v1", "ServiceMonitor"),
        "servicemonitors",
    )
}

pub fn service_monitor(addon: &ClockifyAddon, s: &Settings) -> DynamicObject {
    let mut obj = DynamicObject::new(&addon.name_any(), &api_resource()).data(json!({
        "spec": {
            "selector": {"matchLabels": selector_labels(addon)},
            "namespaceSelector": {"matchNames": [addon.namespace().unwrap_or_else(|| "default".to_owned())]},
            "endpoints": [{"port": "http", "path": "/metrics", "interval": s.scrape_interval, "scheme": "http"}],
        }
    }));
    obj.metadata = child_meta(addon, &addon.name_any());
    obj
}
