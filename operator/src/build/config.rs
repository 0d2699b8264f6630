//! The ServiceAccount and the ConfigMap of non-secret settings.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use kube::ResourceExt;
use sha2::{Digest, Sha256};

use crate::crd::ClockifyAddon;
use crate::meta::{HTTP_PORT, child_meta, config_map_name};
use crate::settings::Settings;

/// Shutdown as the pod lives it: the preStop hook sleeps while endpoints and proxies stop
/// sending (the add-on serves on), then SIGTERM starts the add-on's own deadline (requests in
/// flight and workers finish). The grace period covers both with a margin, so the kubelet's
/// SIGKILL never cuts a shutdown short.
pub const PRE_STOP_SLEEP_SECONDS: i64 = 5;
/// The add-on's deadline from SIGTERM (`SHUTDOWN_TIMEOUT_SECONDS`).
pub const SHUTDOWN_TIMEOUT_SECONDS: i64 = 20;
pub const TERMINATION_GRACE_SECONDS: i64 = PRE_STOP_SLEEP_SECONDS + SHUTDOWN_TIMEOUT_SECONDS + 5;

/// The add-on's ServiceAccount, with the annotations and labels of
/// `spec.serviceAccountTemplate` (the operator's labels win).
pub fn service_account(addon: &ClockifyAddon) -> ServiceAccount {
    let mut metadata = child_meta(addon, &addon.name_any());
    if let Some(t) = addon.spec.service_account_template.as_deref() {
        let t = &t.metadata;
        if !t.annotations.is_empty() {
            metadata.annotations = Some(t.annotations.clone());
        }
        let mut labels = t.labels.clone();
        labels.extend(metadata.labels.take().unwrap_or_default());
        metadata.labels = Some(labels);
    }
    ServiceAccount {
        metadata,
        // The add-on never talks to the Kubernetes API.
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}

/// The add-on's environment (see the services' configuration table); secrets are not here.
pub fn config_data(addon: &ClockifyAddon, s: &Settings) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("ADDON_MODE".to_owned(), "production".to_owned()),
        (
            "ADDON_LISTEN_ADDR".to_owned(),
            format!("0.0.0.0:{HTTP_PORT}"),
        ),
        ("ADDON_BASE_URL".to_owned(), addon.spec.base_url.clone()),
        ("ADDON_PLAN".to_owned(), addon.spec.tier.as_str().to_owned()),
        (
            "DATABASE_MAX_CONNECTIONS".to_owned(),
            s.db_connections.to_string(),
        ),
        ("LOG_FORMAT".to_owned(), "json".to_owned()),
        ("RUST_LOG".to_owned(), s.log_level.clone()),
        (
            "SHUTDOWN_TIMEOUT_SECONDS".to_owned(),
            SHUTDOWN_TIMEOUT_SECONDS.to_string(),
        ),
        // The preStop hook drains; on SIGTERM the add-on stops accepting at once.
        ("SHUTDOWN_DRAIN_SECONDS".to_owned(), "0".to_owned()),
    ])
}

pub fn config_map(addon: &ClockifyAddon, s: &Settings) -> ConfigMap {
    ConfigMap {
        metadata: child_meta(addon, &config_map_name(addon)),
        data: Some(config_data(addon, s)),
        ..ConfigMap::default()
    }
}

/// A hash of everything the pods read at start-up that is not in the pod template itself:
/// the ConfigMap's data and which secret keys they read. Annotating the template with it
/// rolls the pods when any of it changes.
pub fn config_hash(addon: &ClockifyAddon, s: &Settings) -> String {
    let secrets = &addon.spec.secrets;
    let refs = serde_json::json!({
        "database": addon.spec.database.url_secret_ref,
        "tokenKey": secrets.token_encryption_key_ref,
        "previousTokenKeys": secrets.previous_token_encryption_key_refs,
        "redis": secrets.redis_url_ref,
    });
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(&config_data(addon, s)).unwrap_or_default());
    h.update(serde_json::to_vec(&refs).unwrap_or_default());
    hex::encode(&h.finalize()[..8])
}
