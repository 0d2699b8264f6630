//! What a flow is: which events trigger it, the conditions over the webhook body, and the
//! ordered Clockify API calls it makes. Parsed and validated once, when saved.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json_path::JsonPath;

use super::template::Template;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// RFC 9535 JSONPath into the webhook body, e.g. `$.project.name`.
    pub path: String,
    pub op: ConditionOp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Action {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub method: String,
    /// `/v1/...`, with `{{workspaceId}}`, `{{eventType}}` and `{{$.json.path}}` placeholders.
    pub path: String,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub query: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

/// A flow as the UI sends and receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlowDefinition {
    pub name: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    pub trigger_events: Vec<String>,
    #[serde(default)]
    pub condition_mode: ConditionMode,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    pub actions: Vec<Action>,
}

fn yes() -> bool {
    true
}

pub const MAX_ACTIONS: usize = 20;
pub const MAX_CONDITIONS: usize = 50;
const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];

impl FlowDefinition {
    /// Every problem with the definition, each naming its field.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.name.trim().is_empty() || self.name.chars().count() > 200 {
            problems.push("name: must be 1 to 200 characters".to_owned());
        }
        if self.trigger_events.is_empty() {
            problems.push("triggerEvents: name at least one event type".to_owned());
        }
        for (i, e) in self.trigger_events.iter().enumerate() {
            if !is_event_name(e) {
                problems.push(format!(
                    "triggerEvents[{i}]: {e:?} is not an event type (A-Z and _)"
                ));
            }
        }
        if self.conditions.len() > MAX_CONDITIONS {
            problems.push(format!("conditions: at most {MAX_CONDITIONS}"));
        }
        for (i, c) in self.conditions.iter().enumerate() {
            if let Err(e) = JsonPath::parse(&c.path) {
                problems.push(format!("conditions[{i}].path: not a JSONPath: {e}"));
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
            if !METHODS.contains(&a.method.as_str()) {
                problems.push(format!(
                    "actions[{i}].method: one of {}",
                    METHODS.join(", ")
                ));
            }
            if !a.path.starts_with("/v1/") {
                problems.push(format!("actions[{i}].path: must start with /v1/"));
            }
            let mut templates = vec![(format!("actions[{i}].path"), a.path.clone())];
            templates.extend(
                a.query
                    .iter()
                    .map(|(k, v)| (format!("actions[{i}].query.{k}"), v.clone())),
            );
            if let Some(body) = &a.body {
                collect_strings(body, &format!("actions[{i}].body"), &mut templates);
            }
            for (field, text) in templates {
                if let Err(e) = Template::parse(&text) {
                    problems.push(format!("{field}: {e}"));
                }
            }
        }
        problems
    }

    pub fn triggered_by(&self, event_type: &str) -> bool {
        self.trigger_events.iter().any(|e| e == event_type)
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
