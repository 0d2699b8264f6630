//! Names, labels and owner references of the objects the operator creates, in one place.
//!
//! Selector labels (name, instance, component) never change for the life of an object: they
//! are immutable in Deployment selectors. Mutable labels (version, tier, managed-by) are kept
//! apart.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use crate::crd::ClockifyAddon;

/// The field manager of every server-side apply, and the `managed-by` label value.
pub const MANAGER: &str = "clockify-operator";
/// The field manager that holds a Deployment's `spec.replicas` between the operator letting go
/// of it and an autoscaler taking it (see [`crate::apply::hand_over_replicas`]).
pub const HANDOVER_MANAGER: &str = "clockify-operator-handover";
/// Child annotation: a hash of the desired object the operator last applied ([`crate::drift`]).
pub const APPLIED_ANNOTATION: &str = "clockify-addons.io/applied";
/// Child annotation: a hash of the fields the API server assigned to the operator's apply.
pub const OWNED_FIELDS_ANNOTATION: &str = "clockify-addons.io/owned-fields";
pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
pub const LABEL_VERSION: &str = "app.kubernetes.io/version";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_PART_OF: &str = "app.kubernetes.io/part-of";
pub const LABEL_TIER: &str = "clockify-addons.io/tier";
/// Label selector of everything this operator manages (its watches filter on it).
pub const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=clockify-operator";
/// Pod template annotation recording the add-on version the template runs (and on Jobs, the
/// version they were created for).
pub const VERSION_ANNOTATION: &str = "clockify-addons.io/version";
/// Pod template annotation: a hash of the configuration, so a config change rolls the pods.
pub const CONFIG_HASH_ANNOTATION: &str = "clockify-addons.io/config-hash";
/// The container port of the add-on.
pub const HTTP_PORT: i32 = 8080;
pub const SERVICE_PORT: i32 = 80;

/// The labels that select this instance's pods.
pub fn selector_labels(addon: &ClockifyAddon) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.to_owned(), addon.spec.addon.slug().to_owned()),
        (LABEL_INSTANCE.to_owned(), addon.name_any()),
        (LABEL_COMPONENT.to_owned(), "addon".to_owned()),
    ])
}

/// The labels of every pod of this instance, whatever its component.
pub fn instance_labels(addon: &ClockifyAddon) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.to_owned(), addon.spec.addon.slug().to_owned()),
        (LABEL_INSTANCE.to_owned(), addon.name_any()),
    ])
}

/// Every label of the objects the operator creates. The version is not among them: it labels
/// only pods (see [`with_version`]), so an upgrade does not rewrite every child.
pub fn labels(addon: &ClockifyAddon) -> BTreeMap<String, String> {
    let mut l = selector_labels(addon);
    l.insert(LABEL_MANAGED_BY.to_owned(), MANAGER.to_owned());
    l.insert(LABEL_PART_OF.to_owned(), "clockify-addons".to_owned());
    l.insert(LABEL_TIER.to_owned(), addon.spec.tier.as_str().to_owned());
    l
}

/// `labels` plus the version a pod runs.
pub fn with_version(
    mut labels: BTreeMap<String, String>,
    version: &str,
) -> BTreeMap<String, String> {
    if is_label_value(version) {
        labels.insert(LABEL_VERSION.to_owned(), version.to_owned());
    }
    labels
}

fn is_label_value(v: &str) -> bool {
    v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && v.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
}

/// The controller owner reference; absent for an object not yet stored (no uid), as in `render`.
pub fn owner_reference(addon: &ClockifyAddon) -> Option<OwnerReference> {
    addon.controller_owner_ref(&())
}

/// Metadata of a child named `name` in the add-on's namespace.
pub fn child_meta(addon: &ClockifyAddon, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: addon.namespace(),
        labels: Some(labels(addon)),
        owner_references: owner_reference(addon).map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

/// Whether `obj` is controlled by this ClockifyAddon (safe to prune).
pub fn is_owned_by<K: Resource>(obj: &K, addon: &ClockifyAddon) -> bool {
    let Some(uid) = addon.meta().uid.as_deref() else {
        return false;
    };
    obj.meta()
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == uid && o.controller == Some(true))
}

pub fn config_map_name(addon: &ClockifyAddon) -> String {
    format!("{}-config", addon.name_any())
}

#[cfg(test)]
mod tests {
    #[test]
    fn label_values() {
        assert!(super::is_label_value("0.4.0"));
        assert!(super::is_label_value("v1-rc.1"));
        assert!(!super::is_label_value("1.0+build"));
        assert!(!super::is_label_value(""));
    }
}
