//! The reference add-on: the original system's per-event webhook routes, `POST /api-call`
//! (the Clockify API on behalf of the caller's workspace), bootstrap jobs, and a settings page
//! the add-on serves itself. Served by `clockify-addons serve reference`.
//!
//! Everything else (installations, verification, storage, flows, retention, metrics, limits)
//! is the shared core.

pub mod api_call;
pub mod bootstrap;
pub mod events;
pub mod settings;

use addon_core::addon::{AddonDefinition, BootstrapDefaults, Component};
use addon_core::config::AddonDefaults;
use addon_core::db::{CORE_MIGRATIONS, MigrationSet};
use addon_core::flows::FlowFeatures;
use addon_core::http::{LIMIT_DEFAULT, LIMIT_WEBHOOK};
use addon_core::routes::{limited, standard};
use serde_json::{Value, json};

/// The ten webhooks the manifest declares (Clockify's maximum), each delivered to its own
/// route as the original service registered them. The routes accept the original map's other
/// events too, for manifests registered before.
const WEBHOOK_EVENTS: &[&str] = &[
    "NEW_TIME_ENTRY",
    "TIME_ENTRY_UPDATED",
    "TIME_ENTRY_DELETED",
    "NEW_TIMER_STARTED",
    "TIMER_STOPPED",
    "NEW_PROJECT",
    "USER_JOINED_WORKSPACE",
    "NEW_APPROVAL_REQUEST",
    "APPROVAL_REQUEST_STATUS_UPDATED",
    "NEW_INVOICE",
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
    label: "Reference add-on",
    access_level: "ADMINS",
    path: "/ui",
}];

/// The manifest's `settings`: the path of the page this add-on serves (Clockify frames it).
fn manifest_settings() -> Value {
    json!(settings::PAGE_PATH)
}

fn routes() -> addon_core::openapi::ApiRouter {
    standard()
        .merge(limited(events::routes(), LIMIT_WEBHOOK))
        .merge(limited(
            api_call::routes()
                .merge(bootstrap::routes())
                .merge(settings::routes()),
            LIMIT_DEFAULT,
        ))
}

/// The reference add-on as the core serves it.
pub static DEFINITION: AddonDefinition = AddonDefinition {
    slug: "reference",
    defaults: AddonDefaults {
        key: "reference-addon",
        name: "Reference Add-on",
        slug: "reference",
    },
    plan: "FREE",
    description: "The reference Clockify add-on: per-event webhooks, API calls on behalf of your workspace, bootstrap jobs and a settings page.",
    webhook_events: WEBHOOK_EVENTS,
    webhook_path: events::path_of,
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
    settings: manifest_settings,
    migrations: MigrationSet {
        addon: "reference",
        files: CORE_MIGRATIONS,
    },
    routes,
    statements: &[],
};
