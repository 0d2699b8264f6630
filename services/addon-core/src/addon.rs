//! What distinguishes one add-on from another: its manifest contents, its routes and its
//! migrations. Everything else is the shared core.

use serde_json::{Value, json};

use crate::config::{AddonDefaults, CoreConfig};
use crate::db::MigrationSet;

/// A UI component Clockify renders in an iframe.
#[derive(Debug, Clone, Copy)]
pub struct Component {
    /// `sidebar`, `widget`, `projects.tab`, ...
    pub kind: &'static str,
    pub label: &'static str,
    /// `ADMINS` or `EVERYONE`.
    pub access_level: &'static str,
    pub path: &'static str,
}

/// Bootstrap defaults an installation's settings may override.
#[derive(Debug, Clone, Copy)]
pub struct BootstrapDefaults {
    /// Days of time entries to fetch per user (setting `bootstrap_time_entry_days`); 0: none.
    pub time_entry_days: u32,
    /// Walk the heavy endpoints too (setting `bootstrap_include_heavy`).
    pub include_heavy: bool,
}

/// Every add-on's webhooks go to `POST /webhooks/clockify` unless it says otherwise.
pub fn shared_webhook_path(_event: &str) -> &'static str {
    WEBHOOK_PATH
}

#[derive(Debug)]
pub struct AddonDefinition {
    /// Name in commands, file names and metrics: `api-studio`.
    pub slug: &'static str,
    pub defaults: AddonDefaults,
    /// `minimalSubscriptionPlan`.
    pub plan: &'static str,
    pub description: &'static str,
    /// At most 10, each in the manifest schema's enum.
    pub webhook_events: &'static [&'static str],
    /// The path each manifest webhook is delivered to.
    pub webhook_path: fn(&str) -> &'static str,
    /// What the add-on's flows may do.
    pub features: crate::flows::FlowFeatures,
    pub bootstrap: BootstrapDefaults,
    pub scopes: &'static [&'static str],
    pub components: &'static [Component],
    /// The manifest's `settings`: `{tabs: [...]}`, or the path of a settings page the add-on
    /// serves itself.
    pub settings: fn() -> Value,
    pub migrations: MigrationSet,
    /// The add-on's routes; the core adds health, readiness and metrics around them.
    pub routes: fn() -> crate::openapi::ApiRouter,
    /// SQL the add-on issues besides the core's, for its SQL contract.
    pub statements: &'static [(&'static str, &'static str)],
}

impl AddonDefinition {
    /// Every statement this add-on's code issues (see [`crate::store::contract`]).
    pub fn contract(&self) -> Vec<crate::store::contract::Statement> {
        let mut all = crate::store::contract::core_statements();
        all.extend(
            self.statements
                .iter()
                .map(|(n, s)| crate::store::contract::Statement {
                    name: (*n).to_owned(),
                    sql: s.trim().to_owned(),
                    only: None,
                }),
        );
        all
    }

    /// Where this release's contract lives, relative to the repository root.
    pub fn contract_path(&self) -> String {
        format!(
            "migrations/{}/contract/{:04}.sql",
            self.slug,
            self.migrations.latest_version()
        )
    }
}

pub const LIFECYCLE: &[(&str, &str)] = &[
    ("INSTALLED", "/lifecycle/installed"),
    ("STATUS_CHANGED", "/lifecycle/status-changed"),
    ("SETTINGS_UPDATED", "/lifecycle/settings-updated"),
    ("DELETED", "/lifecycle/deleted"),
];

pub const WEBHOOK_PATH: &str = "/webhooks/clockify";

/// The manifest Clockify reads from `GET /manifest`, generated from configuration.
pub fn manifest(def: &AddonDefinition, config: &CoreConfig) -> Value {
    let base = config.base_url.as_str().trim_end_matches('/');
    json!({
        "schemaVersion": "1.3",
        "key": config.addon_key,
        "name": config.addon_name,
        "description": def.description,
        "baseUrl": base,
        "minimalSubscriptionPlan": def.plan,
        "scopes": def.scopes,
        "lifecycle": LIFECYCLE.iter().map(|(t, p)| json!({"type": t, "path": p})).collect::<Vec<_>>(),
        "webhooks": def.webhook_events.iter().map(|e| json!({"event": e, "path": (def.webhook_path)(e)})).collect::<Vec<_>>(),
        "components": def.components.iter().map(|c| json!({
            "type": c.kind, "label": c.label, "accessLevel": c.access_level, "path": c.path
        })).collect::<Vec<_>>(),
        "settings": (def.settings)(),
    })
}
