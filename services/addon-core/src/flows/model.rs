//! What a flow is: which deliveries trigger it (Clockify events, or custom sources and their
//! events), the conditions over the body, and the ordered actions it takes (Clockify API calls
//! or outbound HTTP). Parsed and validated once, when saved.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::limits::{
    MAX_BODY_TEMPLATE_BYTES, MAX_BODY_TEMPLATE_DEPTH, MAX_PLACEHOLDERS_PER_ACTION, json_depth,
    json_size, parse_path,
};
use super::template::Template;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum ConditionMode {
    #[default]
    All,
    Any,
}

impl ConditionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "ALL",
            Self::Any => "ANY",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum ConditionOp {
    #[serde(rename = "==")]
    Equals,
    #[serde(rename = "!=")]
    NotEquals,
    #[serde(rename = "contains")]
    Contains,
    #[serde(rename = "exists")]
    Exists,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// RFC 9535 JSONPath into the webhook body, e.g. `$.project.name`.
    #[schema(pattern = "^\\$")]
    pub path: String,
    pub op: ConditionOp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

/// Where a flow's triggering deliveries come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TriggerSource {
    /// Clockify webhooks (`POST /webhooks/clockify`), by event type.
    #[default]
    Clockify,
    /// Custom webhooks (`POST /webhooks/custom/{source}`), by source and event type.
    Custom,
}

impl TriggerSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Clockify => "CLOCKIFY",
            Self::Custom => "CUSTOM",
        }
    }

    pub fn is_default(&self) -> bool {
        *self == Self::Clockify
    }
}

/// What an action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ActionKind {
    /// A call to the workspace's Clockify API through the client (allowlist, rate limit,
    /// retries, the installation token).
    #[default]
    ClockifyApi,
    /// Outbound HTTP to a host on the workspace's allowlist.
    GenericHttp,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClockifyApi => "CLOCKIFY_API",
            Self::GenericHttp => "GENERIC_HTTP",
        }
    }

    pub fn is_default(&self) -> bool {
        *self == Self::ClockifyApi
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Action {
    /// `CLOCKIFY_API` (the default, and never written out, so flows stored by earlier releases
    /// and read by them stay the same) or `GENERIC_HTTP`.
    #[serde(
        rename = "type",
        default,
        skip_serializing_if = "ActionKind::is_default"
    )]
    pub kind: ActionKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[schema(pattern = "^(GET|POST|PUT|PATCH|DELETE)$", example = "POST")]
    pub method: String,
    /// CLOCKIFY_API: `/v1/...`, with `{{workspaceId}}`, `{{eventType}}` and `{{$.json.path}}`
    /// placeholders.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schema(pattern = "^/v1/", example = "/v1/workspaces/{{workspaceId}}/tags")]
    pub path: String,
    /// GENERIC_HTTP: an absolute `https://` URL; placeholders only after the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// GENERIC_HTTP: request headers (values may hold placeholders). Values are sealed when
    /// stored and read back as `{"set": true}`; written so, they keep the stored value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(value_type = BTreeMap<String, crate::routes::schema::HeaderValue>)]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// GENERIC_HTTP: per-request timeout (1-60 s; default `GENERIC_HTTP_TIMEOUT_SECONDS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
}

impl Action {
    /// A Clockify API call (the common case; tests and the UI build these).
    pub fn clockify(method: &str, path: &str) -> Self {
        Self {
            kind: ActionKind::ClockifyApi,
            name: None,
            method: method.to_owned(),
            path: path.to_owned(),
            url: None,
            headers: BTreeMap::new(),
            query: BTreeMap::new(),
            body: None,
            timeout_seconds: None,
        }
    }

    /// An outbound HTTP call.
    pub fn http(method: &str, url: &str) -> Self {
        Self {
            kind: ActionKind::GenericHttp,
            url: Some(url.to_owned()),
            path: String::new(),
            ..Self::clockify(method, "")
        }
    }

    pub fn with_body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    pub fn display_name(&self, index: usize) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("action {}", index + 1))
    }
}

/// A flow as the UI sends and receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlowDefinition {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "TriggerSource::is_default")]
    pub trigger_source: TriggerSource,
    /// CUSTOM flows: the custom sources they listen to; empty means every source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trigger_sources: Vec<String>,
    /// Event types; for CUSTOM flows `*` matches any event of the sources.
    #[schema(min_items = 1, example = json!(["NEW_TIME_ENTRY"]))]
    pub trigger_events: Vec<String>,
    #[serde(default)]
    pub condition_mode: ConditionMode,
    #[serde(default)]
    #[schema(max_items = 50)] // MAX_CONDITIONS
    pub conditions: Vec<Condition>,
    #[schema(min_items = 1, max_items = 20)] // MAX_ACTIONS
    pub actions: Vec<Action>,
}

fn yes() -> bool {
    true
}

/// What an add-on lets its flows do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowFeatures {
    /// Flows may be triggered by custom webhooks.
    pub custom_sources: bool,
    /// Flows may make GENERIC_HTTP calls.
    pub generic_http: bool,
}

pub const MAX_ACTIONS: usize = 20;
pub const MAX_CONDITIONS: usize = 50;
pub const MAX_HEADERS: usize = 30;
const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];
/// Headers an action may not set: the HTTP client owns them.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-authorization",
    "idempotency-key",
];

impl FlowDefinition {
    /// Every problem with the definition, each naming its field.
    pub fn validate(&self, features: FlowFeatures) -> Vec<String> {
        let mut problems = Vec::new();
        if self.name.trim().is_empty() || self.name.chars().count() > 200 {
            problems.push("name: must be 1 to 200 characters".to_owned());
        }
        match self.trigger_source {
            TriggerSource::Clockify => {
                if !self.trigger_sources.is_empty() {
                    problems
                        .push("triggerSources: only CUSTOM flows name custom sources".to_owned());
                }
            }
            TriggerSource::Custom if !features.custom_sources => problems
                .push("triggerSource: this add-on has no custom webhooks; use CLOCKIFY".to_owned()),
            TriggerSource::Custom => {
                for (i, s) in self.trigger_sources.iter().enumerate() {
                    if !is_source_name(s) {
                        problems.push(format!(
                            "triggerSources[{i}]: {s:?} is not a source name (1-64 of a-z, 0-9, - and _)"
                        ));
                    }
                }
            }
        }
        if self.trigger_events.is_empty() {
            problems.push("triggerEvents: name at least one event type".to_owned());
        }
        for (i, e) in self.trigger_events.iter().enumerate() {
            match self.trigger_source {
                TriggerSource::Clockify if !is_event_name(e) => problems.push(format!(
                    "triggerEvents[{i}]: {e:?} is not an event type (A-Z and _)"
                )),
                TriggerSource::Custom if e != "*" && !is_custom_event_name(e) => {
                    problems.push(format!(
                        "triggerEvents[{i}]: {e:?} is not a custom event type (1-64 of letters, digits, . _ : -) or *"
                    ))
                }
                _ => {}
            }
        }
        if self.conditions.len() > MAX_CONDITIONS {
            problems.push(format!("conditions: at most {MAX_CONDITIONS}"));
        }
        for (i, c) in self.conditions.iter().enumerate() {
            if let Err(e) = parse_path(&c.path) {
                problems.push(format!("conditions[{i}].path: {e}"));
            }
            match (c.op, &c.value) {
                (ConditionOp::Exists, _) => {}
                (_, None) => {
                    problems.push(format!("conditions[{i}].value: required for {:?}", c.op))
                }
                (ConditionOp::Contains, Some(Value::Object(_) | Value::Array(_))) => problems.push(
                    format!("conditions[{i}].value: contains takes a string, number or boolean"),
                ),
                _ => {}
            }
        }
        if self.actions.is_empty() || self.actions.len() > MAX_ACTIONS {
            problems.push(format!("actions: between 1 and {MAX_ACTIONS}"));
        }
        for (i, a) in self.actions.iter().enumerate() {
            validate_action(i, a, features, &mut problems);
        }
        problems
    }

    /// Whether a delivery from `source` (`None`: Clockify) of `event_type` triggers this flow.
    pub fn triggered_by(&self, source: Option<&str>, event_type: &str) -> bool {
        match (self.trigger_source, source) {
            (TriggerSource::Clockify, None) => self.trigger_events.iter().any(|e| e == event_type),
            (TriggerSource::Custom, Some(source)) => {
                (self.trigger_sources.is_empty()
                    || self.trigger_sources.iter().any(|s| s == source))
                    && self
                        .trigger_events
                        .iter()
                        .any(|e| e == "*" || e == event_type)
            }
            _ => false,
        }
    }
}

fn validate_action(i: usize, a: &Action, features: FlowFeatures, problems: &mut Vec<String>) {
    if !METHODS.contains(&a.method.as_str()) {
        problems.push(format!(
            "actions[{i}].method: one of {}",
            METHODS.join(", ")
        ));
    }
    let mut templates = Vec::new();
    match a.kind {
        ActionKind::ClockifyApi => {
            if !a.path.starts_with("/v1/") {
                problems.push(format!("actions[{i}].path: must start with /v1/"));
            }
            if a.url.is_some() || !a.headers.is_empty() || a.timeout_seconds.is_some() {
                problems.push(format!(
                    "actions[{i}]: url, headers and timeoutSeconds belong to GENERIC_HTTP actions"
                ));
            }
            templates.push((format!("actions[{i}].path"), a.path.clone()));
        }
        ActionKind::GenericHttp if !features.generic_http => problems.push(format!(
            "actions[{i}].type: this add-on has no GENERIC_HTTP actions; use CLOCKIFY_API"
        )),
        ActionKind::GenericHttp => {
            if !a.path.is_empty() {
                problems.push(format!(
                    "actions[{i}].path: GENERIC_HTTP actions take a url, not a path"
                ));
            }
            match &a.url {
                None => problems.push(format!("actions[{i}].url: required for GENERIC_HTTP")),
                Some(url) => {
                    if let Err(e) = check_url_template(url) {
                        problems.push(format!("actions[{i}].url: {e}"));
                    }
                    templates.push((format!("actions[{i}].url"), url.clone()));
                }
            }
            if a.headers.len() > MAX_HEADERS {
                problems.push(format!("actions[{i}].headers: at most {MAX_HEADERS}"));
            }
            for (name, value) in &a.headers {
                if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    problems.push(format!(
                        "actions[{i}].headers: {name:?} is not a header name"
                    ));
                } else if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                    problems.push(format!(
                        "actions[{i}].headers.{name}: set by the add-on, not by a flow"
                    ));
                }
                if value.contains(['\r', '\n']) {
                    problems.push(format!(
                        "actions[{i}].headers.{name}: no line breaks in header values"
                    ));
                }
                templates.push((format!("actions[{i}].headers.{name}"), value.clone()));
            }
            if let Some(t) = a.timeout_seconds
                && !(1..=60).contains(&t)
            {
                problems.push(format!("actions[{i}].timeoutSeconds: 1 to 60"));
            }
        }
    }
    templates.extend(
        a.query
            .iter()
            .map(|(k, v)| (format!("actions[{i}].query.{k}"), v.clone())),
    );
    if let Some(body) = &a.body {
        let size = json_size(body, MAX_BODY_TEMPLATE_BYTES);
        let depth = json_depth(body, MAX_BODY_TEMPLATE_DEPTH);
        if size > MAX_BODY_TEMPLATE_BYTES {
            problems.push(format!(
                "actions[{i}].body: larger than {MAX_BODY_TEMPLATE_BYTES} bytes as JSON; that is the limit"
            ));
        } else if depth > MAX_BODY_TEMPLATE_DEPTH {
            problems.push(format!(
                "actions[{i}].body: nested more than {MAX_BODY_TEMPLATE_DEPTH} deep; that is the limit"
            ));
        } else {
            collect_strings(body, &format!("actions[{i}].body"), &mut templates);
        }
    }
    let mut lookups = 0;
    for (field, text) in templates {
        match Template::parse(&text) {
            Ok(t) => lookups += t.lookups(),
            Err(e) => problems.push(format!("{field}: {e}")),
        }
    }
    if lookups > MAX_PLACEHOLDERS_PER_ACTION {
        problems.push(format!(
            "actions[{i}]: {lookups} JSONPath placeholders; the limit is {MAX_PLACEHOLDERS_PER_ACTION} per action"
        ));
    }
}

/// A GENERIC_HTTP URL template: absolute http(s), no credentials, and no placeholder before the
/// path, so webhook data can never choose the host.
pub fn check_url_template(url: &str) -> Result<(), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("expected an absolute URL such as https://hooks.example.com/path".into());
    };
    if !matches!(scheme, "https" | "http") {
        return Err(format!(
            "scheme {scheme:?}: only https (or http for hosts the allowlist names with http://)"
        ));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains("{{") {
        return Err(
            "placeholders may not choose the host: put them in the path, query or body".into(),
        );
    }
    if authority.contains('@') {
        return Err("credentials in the URL are not allowed: use a header".into());
    }
    let literal = format!("{scheme}://{authority}/");
    match url::Url::parse(&literal) {
        Ok(u) if u.host_str().is_some_and(|h| !h.is_empty()) => Ok(()),
        _ => Err(format!("{authority:?} is not a host")),
    }
}

fn collect_strings(v: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::String(s) => out.push((at.to_owned(), s.clone())),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_strings(item, &format!("{at}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                collect_strings(item, &format!("{at}.{k}"), out);
            }
        }
        _ => {}
    }
}

/// Event type names are upper-case words joined by `_`.
pub fn is_event_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_uppercase() || c == '_')
}

/// Custom event types: what a sender puts in `X-Event-Type` (`invoice.paid`, `push`, ...).
pub fn is_custom_event_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
}

/// Custom source names, the `{source}` of `/webhooks/custom/{source}`.
pub fn is_source_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}
