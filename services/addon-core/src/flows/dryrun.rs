//! A flow's test run: what it would do with one delivery, without doing any of it. The same
//! evaluation the engine runs (trigger, every condition with the values its path found, every
//! action rendered with the same templates and limits), and the same refusals (a Clockify path
//! outside the workspace, a host off the workspace's allowlist), but nothing is sent and
//! nothing is stored. Header values that look like credentials are shown redacted.

use serde::Serialize;
use serde_json::Value;

use super::eval::{condition_holds, render_action, render_http};
use super::limits::parse_path;
use super::model::{ActionKind, FlowDefinition};
use super::template::TemplateContext;
use crate::clockify::client::scoped_path;
use crate::outbound::{WorkspaceAllowlist, is_sensitive_header};

/// The delivery a test run uses: a stored one, or a sample.
#[derive(Debug, Clone)]
pub struct Delivery<'a> {
    /// `None`: Clockify; otherwise the custom source.
    pub source: Option<&'a str>,
    pub event_type: &'a str,
    pub body: &'a Value,
}

#[derive(Debug, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConditionResult {
    pub path: String,
    pub op: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    pub holds: bool,
    /// What the path found in the body (at most 10 values).
    pub found: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionResult {
    pub index: usize,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub method: String,
    /// The full URL it would call, query included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Why it would not be sent (a template that fails, a path or host refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub event_type: String,
    pub source: String,
    /// Whether the flow listens to this delivery's source and event.
    pub triggered: bool,
    pub condition_mode: &'static str,
    pub conditions: Vec<ConditionResult>,
    /// Whether it would run: triggered, and its conditions hold.
    pub would_run: bool,
    /// The requests it would send, in order (rendered even when it would not run, to check
    /// them).
    pub actions: Vec<ActionResult>,
}

/// Up to 10 values a path finds in `body`.
fn found(path: &str, body: &Value) -> Vec<Value> {
    parse_path(path)
        .map(|p| p.query(body).all().into_iter().take(10).cloned().collect())
        .unwrap_or_default()
}

pub fn run(
    def: &FlowDefinition,
    delivery: &Delivery<'_>,
    workspace_id: &str,
    api_url: &str,
    allowlist: &WorkspaceAllowlist,
) -> Report {
    let triggered = def.triggered_by(delivery.source, delivery.event_type);
    let conditions: Vec<ConditionResult> = def
        .conditions
        .iter()
        .map(|c| {
            let (holds, error) = match condition_holds(c, delivery.body) {
                Ok(h) => (h, None),
                Err(e) => (false, Some(e)),
            };
            ConditionResult {
                path: c.path.clone(),
                op: serde_json::to_value(c.op)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                value: c.value.clone(),
                holds,
                found: found(&c.path, delivery.body),
                error,
            }
        })
        .collect();
    let all = conditions.iter().all(|c| c.holds);
    let any = conditions.iter().any(|c| c.holds);
    let conditions_hold = conditions.is_empty()
        || match def.condition_mode {
            super::model::ConditionMode::All => all,
            super::model::ConditionMode::Any => any,
        };
    let ctx = TemplateContext {
        workspace_id,
        event_type: delivery.event_type,
        body: delivery.body,
    };
    let actions = def
        .actions
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let mut r = ActionResult {
                index: i,
                name: a.display_name(i),
                kind: a.kind.as_str(),
                method: a.method.clone(),
                url: None,
                headers: Vec::new(),
                body: None,
                error: None,
            };
            match a.kind {
                ActionKind::ClockifyApi => match render_action(a, &ctx) {
                    Ok(req) => {
                        // Joined and encoded as the client sends it (form-encoded query).
                        match url::Url::parse(&format!(
                            "{}{}",
                            api_url.trim_end_matches('/'),
                            req.path
                        )) {
                            Ok(mut url) => {
                                if !req.query.is_empty() {
                                    url.query_pairs_mut().extend_pairs(
                                        req.query.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                                    );
                                }
                                r.url = Some(url.to_string());
                            }
                            Err(e) => r.error = Some(format!("the URL is not valid: {e}")),
                        }
                        r.body = req.body;
                        if let Err(e) = scoped_path(&req.path, workspace_id) {
                            r.error = Some(e.to_string());
                        }
                    }
                    Err(e) => r.error = Some(e.to_string()),
                },
                ActionKind::GenericHttp => match render_http(a, &ctx) {
                    Ok(call) => {
                        r.error = (!allowlist.allows(&call.url)).then(|| {
                            format!(
                                "{} is not on this workspace's list of hosts flows may call",
                                call.url.host_str().unwrap_or_default()
                            )
                        });
                        r.url = Some(call.url.to_string());
                        r.headers = call
                            .headers
                            .iter()
                            .map(|(n, v)| {
                                let shown = if is_sensitive_header(n.as_str()) {
                                    "<redacted>".to_owned()
                                } else {
                                    v.to_str().unwrap_or("<binary>").to_owned()
                                };
                                (n.as_str().to_owned(), shown)
                            })
                            .collect();
                        r.body = call.body;
                    }
                    Err(e) => r.error = Some(e.to_string()),
                },
            }
            r
        })
        .collect();
    Report {
        event_type: delivery.event_type.to_owned(),
        source: delivery.source.unwrap_or("clockify").to_owned(),
        triggered,
        condition_mode: def.condition_mode.as_str(),
        would_run: triggered && conditions_hold,
        conditions,
        actions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::model::{Action, Condition, ConditionMode, ConditionOp};
    use serde_json::json;

    fn flow() -> FlowDefinition {
        FlowDefinition {
            name: "Tag billable".into(),
            enabled: true,
            trigger_source: Default::default(),
            trigger_sources: vec![],
            trigger_events: vec!["NEW_TIME_ENTRY".into()],
            condition_mode: ConditionMode::All,
            conditions: vec![
                Condition {
                    path: "$.billable".into(),
                    op: ConditionOp::Equals,
                    value: Some(json!(true)),
                },
                Condition {
                    path: "$.tags[*].name".into(),
                    op: ConditionOp::Contains,
                    value: Some(json!("Client")),
                },
            ],
            actions: vec![
                Action::clockify(
                    "PUT",
                    "/v1/workspaces/{{workspaceId}}/time-entries/{{$.id}}",
                )
                .with_body(json!({"tagIds": ["{{$.tags[0].id}}"], "note": "{{eventType}}"})),
                Action::clockify("GET", "/v1/workspaces/other/tags"),
                {
                    let mut a = Action::http("POST", "https://hooks.example.com/t/{{$.id}}");
                    a.headers
                        .insert("Authorization".into(), "Bearer s3cret".into());
                    a.headers.insert("X-Event".into(), "{{eventType}}".into());
                    a
                },
                Action::http("POST", "https://elsewhere.example.org/x"),
            ],
        }
    }

    #[test]
    fn a_test_run_shows_what_would_be_sent_and_why_not() {
        let body = json!({"id": "te1", "billable": true, "tags": [{"id": "t1", "name": "Client"}, {"id": "t2", "name": "Ops"}]});
        let allow = WorkspaceAllowlist::parse(["hooks.example.com"]).unwrap();
        let d = Delivery {
            source: None,
            event_type: "NEW_TIME_ENTRY",
            body: &body,
        };
        let r = run(&flow(), &d, "ws1", "https://api.clockify.me/api/", &allow);
        assert!(r.triggered && r.would_run);
        assert_eq!(r.conditions[0].found, [json!(true)]);
        assert_eq!(r.conditions[1].found, [json!("Client"), json!("Ops")]);
        assert!(r.conditions.iter().all(|c| c.holds));
        let a = &r.actions;
        assert_eq!(
            a[0].url.as_deref(),
            Some("https://api.clockify.me/api/v1/workspaces/ws1/time-entries/te1")
        );
        assert_eq!(
            a[0].body,
            Some(json!({"tagIds": ["t1"], "note": "NEW_TIME_ENTRY"}))
        );
        assert_eq!(a[0].error, None);
        assert!(
            a[1].error
                .as_deref()
                .unwrap()
                .contains("leaves workspace ws1"),
            "{:?}",
            a[1]
        );
        assert_eq!(a[2].url.as_deref(), Some("https://hooks.example.com/t/te1"));
        assert_eq!(
            a[2].headers,
            [
                ("authorization".to_owned(), "<redacted>".to_owned()),
                ("x-event".to_owned(), "NEW_TIME_ENTRY".to_owned())
            ]
        );
        assert_eq!(a[2].error, None);
        assert!(
            a[3].error
                .as_deref()
                .unwrap()
                .starts_with("elsewhere.example.org is not on"),
            "{:?}",
            a[3]
        );
        assert!(!serde_json::to_string(&r).unwrap().contains("s3cret"));

        // Another event, or a condition that fails: it would not run, and says which.
        let other = Delivery {
            event_type: "NEW_PROJECT",
            ..d.clone()
        };
        let r = run(
            &flow(),
            &other,
            "ws1",
            "https://api.clockify.me/api",
            &allow,
        );
        assert!(!r.triggered && !r.would_run);
        let unbilled = json!({"id": "te2", "billable": false, "tags": []});
        let r = run(
            &flow(),
            &Delivery {
                body: &unbilled,
                ..d.clone()
            },
            "ws1",
            "https://api.clockify.me/api",
            &allow,
        );
        assert!(r.triggered && !r.would_run);
        assert_eq!(
            r.conditions.iter().map(|c| c.holds).collect::<Vec<_>>(),
            [false, false]
        );
        // A template that finds nothing says so.
        assert!(r.actions[0].error.is_some(), "{:?}", r.actions[0]);
    }

    #[test]
    fn the_url_shown_is_encoded_as_the_client_sends_it() {
        let mut def = flow();
        let mut a = Action::clockify("GET", "/v1/workspaces/{{workspaceId}}/tags");
        a.query.insert("name".into(), "{{$.description}}".into());
        def.actions = vec![a];
        def.conditions.clear();
        let body = json!({"description": "a b&c"});
        let d = Delivery {
            source: None,
            event_type: "NEW_TIME_ENTRY",
            body: &body,
        };
        let allow = WorkspaceAllowlist::default();
        let r = run(&def, &d, "ws1", "https://api.clockify.me/api", &allow);
        assert_eq!(
            r.actions[0].url.as_deref(),
            Some("https://api.clockify.me/api/v1/workspaces/ws1/tags?name=a+b%26c")
        );
    }
}
