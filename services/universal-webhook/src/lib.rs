//! Universal Webhook (ENTERPRISE plan): flows triggered by Clockify webhooks and by custom
//! webhooks from any system (`POST /webhooks/custom/{source}`, HMAC-signed with a per-workspace
//! secret), whose actions call the Clockify API or any HTTP endpoint on the workspace's
//! allowlist. Served by `clockify-addons serve universal-webhook`.
//!
//! Everything but the manifest contents and the route set lives in `addon-core`.

use addon_core::addon::{AddonDefinition, BootstrapDefaults, Component, shared_webhook_path};
use addon_core::config::AddonDefaults;
use addon_core::db::{CORE_MIGRATIONS, MigrationSet};
use addon_core::flows::FlowFeatures;
use addon_core::http::{LIMIT_DEFAULT, LIMIT_WEBHOOK};
use addon_core::routes::{custom, limited, standard};
use serde_json::{Value, json};

/// Ten webhooks (Clockify's maximum), each an event of manifest schema 1.3. Flows on other
/// events come in through custom webhooks.
const WEBHOOK_EVENTS: &[&str] = &[
    "NEW_TIME_ENTRY",
    "TIME_ENTRY_UPDATED",
    "TIME_ENTRY_DELETED",
    "NEW_TIMER_STARTED",
    "TIMER_STOPPED",
    "NEW_PROJECT",
    "NEW_CLIENT",
    "NEW_INVOICE",
    "USER_JOINED_WORKSPACE",
    "APPROVAL_REQUEST_STATUS_UPDATED",
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
    "EXPENSE_WRITE",
    "INVOICE_READ",
    "INVOICE_WRITE",
    "TIME_OFF_READ",
    "APPROVAL_READ",
    "APPROVAL_WRITE",
    "SCHEDULING_READ",
];

const COMPONENTS: &[Component] = &[Component {
    kind: "sidebar",
    label: "Universal Webhook",
    access_level: "ADMINS",
    path: "/ui",
}];

fn settings() -> Value {
    json!({
        "tabs": [{
            "id": "bootstrap",
            "name": "Workspace data",
            "settings": [
                {
                    "id": "bootstrap_on_install",
                    "name": "Fetch workspace data on install",
                    "description": "Cache users, projects, clients, tags and other workspace data when the add-on is installed.",
                    "type": "CHECKBOX",
                    "value": true,
                    "accessLevel": "ADMINS"
                },
                {
                    "id": "bootstrap_time_entry_days",
                    "name": "Days of time entries to fetch",
                    "description": "How many days of each user's time entries bootstrap caches (0 to 365; 0 fetches none).",
                    "type": "NUMBER",
                    "value": 30,
                    "accessLevel": "ADMINS"
                },
                {
                    "id": "bootstrap_include_heavy",
                    "name": "Include expenses, invoices and approval requests",
                    "description": "Also walk the heavy endpoints; large workspaces take longer to bootstrap.",
                    "type": "CHECKBOX",
                    "value": false,
                    "accessLevel": "ADMINS"
                }
            ]
        }]
    })
}

fn routes() -> addon_core::openapi::ApiRouter {
    standard()
        .merge(limited(custom::webhook_routes(), LIMIT_WEBHOOK))
        .merge(limited(custom::ui_routes(), LIMIT_DEFAULT))
}

/// Universal Webhook as the core serves it.
pub static DEFINITION: AddonDefinition = AddonDefinition {
    slug: "universal-webhook",
    defaults: AddonDefaults {
        key: "universal-webhook",
        name: "Universal Webhook",
        slug: "universal-webhook",
    },
    plan: "ENTERPRISE",
    description: "Run flows on Clockify and custom webhooks: call the Clockify API or any allowlisted HTTP endpoint, durably and exactly once per delivery.",
    webhook_events: WEBHOOK_EVENTS,
    webhook_path: shared_webhook_path,
    features: FlowFeatures {
        custom_sources: true,
        generic_http: true,
    },
    bootstrap: BootstrapDefaults {
        time_entry_days: 30,
        include_heavy: false,
    },
    scopes: SCOPES,
    components: COMPONENTS,
    settings,
    migrations: MigrationSet {
        addon: "universal-webhook",
        files: CORE_MIGRATIONS,
    },
    routes,
    statements: &[],
};
