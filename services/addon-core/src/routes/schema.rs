//! The shapes of the JSON answers the handlers build with `json!`, for the OpenAPI document
//! ([`crate::openapi`]). They are never constructed: the document's schemas are checked
//! against the real answers by the tests (`tests/openapi.rs`) and by the schemathesis run
//! (`scripts/api-fuzz.sh`), which fail when a handler answers outside its schema.
#![allow(dead_code)]

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::store::bootstrap::BootstrapRun;
use crate::store::executions::{ExecutionEntry, FlowStats};
use crate::store::webhooks::WebhookEntry;

/// A page of a list, newest first (cached entities: by id); `next` is the cursor of the
/// following page (`before=` for logs, `after=` for entities), absent on the last page.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dashboard {
    workspace_id: String,
    addon: AddonInfo,
    features: Features,
    installation: InstallationInfo,
    /// Deliveries received in the last 24 hours.
    webhooks_last24h: i64,
    /// Executions started in the last 24 hours, by status.
    executions_last24h: BTreeMap<String, i64>,
    /// Flows of the workspace.
    flows: i64,
    bootstrap: Option<BootstrapRun>,
    /// Cached entities by type.
    entities: BTreeMap<String, i64>,
}

#[derive(Serialize, ToSchema)]
struct AddonInfo {
    key: String,
    name: String,
    version: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Features {
    custom_sources: bool,
    generic_http: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct InstallationInfo {
    /// `ACTIVE` or `INACTIVE`.
    status: String,
    api_url: String,
    installed_at: String,
    /// The add-on's settings as Clockify last sent them.
    settings: Value,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    /// One bucket per hour, oldest first.
    hours: Vec<HourBucket>,
    /// Each flow's runs in the window.
    flows: Vec<NamedFlowStats>,
    rate_limit_waits: WaitTotals,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct HourBucket {
    /// The hour's start (RFC 3339).
    hour: String,
    deliveries: i64,
    /// Executions started in the hour, by status.
    runs: BTreeMap<String, i64>,
    /// Calls that waited for a rate limit in the hour (absent when none).
    #[schema(nullable = false)]
    rate_limit_waits: Option<i64>,
}

#[derive(Serialize, ToSchema)]
struct NamedFlowStats {
    #[serde(flatten)]
    stats: FlowStats,
    /// The flow's name, or `(deleted flow)`.
    name: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct WaitTotals {
    /// Calls that waited for the add-on's own per-workspace limit.
    waits: i64,
    /// Calls Clockify answered 429.
    throttled: i64,
    /// Time spent waiting.
    wait_ms: i64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Executed {
    operation_id: String,
    method: String,
    /// The path sent, parameters filled in.
    path: String,
    /// Clockify's status.
    status: u16,
    attempts: u32,
    duration_ms: u64,
    /// Clockify's answer (JSON, or text when it is not JSON).
    body: Value,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookDetail {
    webhook: WebhookEntry,
    /// The executions the delivery started.
    executions: Vec<ExecutionEntry>,
}

#[derive(Serialize, ToSchema)]
pub struct Imported {
    /// The flow in this engine's format (not saved).
    flow: Value,
    /// What the conversion assumed or could not carry over.
    notes: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct BootstrapState {
    /// Absent until a bootstrap was requested.
    bootstrap: Option<BootstrapRun>,
}

/// Without `type`: how many entities of each type are cached; with it: a page of them.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum EntityAnswer {
    Counts { types: BTreeMap<String, i64> },
    Page(Page<crate::store::entities::CachedEntity>),
}

/// Flows, as [`crate::store::flows::FlowRecord`] with header values write-only.
#[derive(Serialize, ToSchema)]
pub struct FlowList {
    items: Vec<crate::store::flows::FlowRecord>,
}

/// A header value of a flow action: text when written; `{"set": true}` when read back (header
/// values are sealed and never shown) or written to keep the stored value.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum HeaderValue {
    Text(String),
    Kept { set: bool },
}

/// The workspace's custom webhook set-up (admins only: it holds the secrets).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomWebhooks {
    /// Where senders post, `{source}` to fill in.
    url: String,
    /// How senders sign.
    scheme: String,
    /// The headers a sender sets, with what each holds.
    headers: BTreeMap<String, String>,
    /// Where the event type is read.
    event_type: String,
    /// How far a `webhook-timestamp` may be from now.
    tolerance_seconds: u64,
    /// The workspace's secret (`whsec_...`), from which each source's signing secret derives.
    secret: String,
    created_at: String,
    rotated_at: Option<String>,
    /// Until when the secret before the last rotation is still accepted.
    previous_secret_valid_until: Option<String>,
    /// Until when body-only `X-Signature-256` signatures are accepted (the migration window).
    legacy_signatures_until: Option<String>,
    /// The source asked for with `?source=`.
    #[schema(nullable = false)]
    source: Option<String>,
    /// That source's signing secret.
    #[schema(nullable = false)]
    signing_secret: Option<String>,
}

/// The GENERIC_HTTP allowlist.
#[derive(Serialize, ToSchema)]
pub struct Allowlist {
    /// Hosts (`api.example.com`, `*.example.com`), optionally with a port.
    rules: Vec<String>,
}

/// Whether an action's URL would be allowed.
#[derive(Serialize, ToSchema)]
pub struct UrlCheck {
    allowed: bool,
    /// The URL's host, when the URL could be read.
    #[schema(nullable = false)]
    host: Option<String>,
    /// Why not.
    #[schema(nullable = false)]
    reason: Option<String>,
}

/// A custom delivery, stored (or recognised as one already stored).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomReceipt {
    /// `accepted`, or `duplicate` when its `webhook-id` was seen before.
    status: String,
    /// The stored delivery's id.
    id: String,
    source: String,
    event_type: String,
}

/// A Clockify delivery, stored (or recognised as one already stored).
#[derive(Serialize, ToSchema)]
pub struct Receipt {
    /// `accepted`, or `duplicate` for a delivery stored before (Clockify's retry).
    status: String,
    /// The stored delivery's id.
    id: String,
}

/// What a lifecycle call changed.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleAnswer {
    /// `installed`, `ACTIVE`/`INACTIVE`, `updated` or `deleted`.
    status: String,
    workspace_id: String,
    /// INSTALLED: the bootstrap's state when one was started, else null.
    #[schema(nullable = true)]
    bootstrap: Option<String>,
    /// SETTINGS_UPDATED: how many settings were stored.
    #[schema(nullable = false)]
    settings: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    status: String,
}

/// Ready: the database answers and its schema is one this release runs on; otherwise why not.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `unready`.
    status: String,
    /// The schema version found and the one required.
    #[schema(nullable = false)]
    schema: Option<SchemaVersion>,
    /// Why it is not ready (draining, database unreachable, schema behind).
    #[schema(nullable = false)]
    reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct SchemaVersion {
    current: i64,
    required: i64,
}

/// The flow queue's backlog, as autoscalers read it.
#[derive(Serialize, ToSchema)]
pub struct BacklogAnswer {
    #[serde(flatten)]
    backlog: crate::store::executions::Backlog,
    /// Queued deliveries plus due executions: what scaling should drain.
    waiting: i64,
}
