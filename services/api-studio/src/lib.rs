//! API Studio (STANDARD plan): explore the Clockify API for your workspace and automate it with
//! flows that webhooks trigger. Served by `clockify-addons serve api-studio`.
//!
//! Everything but the manifest contents lives in `addon-core`, which the other add-ons share.

use addon_core::addon::{AddonDefinition, BootstrapDefaults, Component, shared_webhook_path};
use addon_core::config::AddonDefaults;
use addon_core::db::{CORE_MIGRATIONS, MigrationSet};
use addon_core::flows::FlowFeatures;
use serde_json::{Value, json};

/// Ten webhooks (Clockify's maximum), each an event of manifest schema 1.3.
const WEBHOOK_EVENTS: &[&str] = &[
    "NEW_TIME_ENTRY",
    "TIME_ENTRY_UPDATED",
    "TIME_ENTRY_DELETED",
    "NEW_TIMER_STARTED",
    "TIMER_STOPPED",
    "NEW_PROJECT",
    "NEW_CLIENT",
    "NEW_TAG",
    "NEW_TASK",
    "USER_JOINED_WORKSPACE",
];

const SCOPES: &[&str] = &[
    "WORKSPACE_READ",
    "USER_READ",
    "GROUP_READ",
    "CLIENT_READ",
    "CLIENT_WRITE",
    "PROJECT_READ",
    "PROJECT_WRITE",
    "TASK_READ",
    "TASK_WRITE",
    "TAG_READ",
    "TAG_WRITE",
    "TIME_ENTRY_READ",
    "TIME_ENTRY_WRITE",
    "CUSTOM_FIELDS_READ",
    "EXPENSE_READ",
    "INVOICE_READ",
    "TIME_OFF_READ",
    "APPROVAL_READ",
    "SCHEDULING_READ",
];

const COMPONENTS: &[Component] = &[Component {
    kind: "sidebar",
    label: "API Studio",
    access_level: "ADMINS",
    path: "/ui",
}];

fn settings() -> Value {
    json!({
        "tabs": [{
            "id": "general",
            "name": "General",
            "settings": [{
                "id": "bootstrap_on_install",
                "name": "Fetch workspace data on install",
                "description": "Cache projects, clients, tags, users and other workspace data when the add-on is installed.",
                "type": "CHECKBOX",
                "value": true,
                "accessLevel": "ADMINS"
            }]
        }]
    })
}

/// API Studio as the core serves it.
pub static DEFINITION: AddonDefinition = AddonDefinition {
    slug: "api-studio",
    defaults: AddonDefaults {
        key: "api-studio",
        name: "API Studio",
        slug: "api-studio",
    },
    plan: "STANDARD",
    description: "Explore the Clockify API for your workspace and automate it with webhook-triggered flows.",
    webhook_events: WEBHOOK_EVENTS,
    webhook_path: shared_webhook_path,
    // Flows on Clockify events that call the Clockify API.
    features: FlowFeatures {
        custom_sources: false,
        generic_http: false,
    },
    bootstrap: BootstrapDefaults {
        time_entry_days: 0,
        include_heavy: false,
    },
    scopes: SCOPES,
    components: COMPONENTS,
    settings,
    migrations: MigrationSet {
        addon: "api-studio",
        files: CORE_MIGRATIONS,
    },
    routes: addon_core::routes::standard,
    statements: &[],
};
