//! Evaluating a flow's conditions against a webhook body, and turning its actions into API
//! requests.

use reqwest::Method;
use serde_json::Value;

use super::limits::parse_path;
use super::model::{Action, Condition, ConditionMode, ConditionOp, FlowDefinition};
use super::template::{
    BodyNeeds, Budget, Template, TemplateContext, TemplateError, encode_segment, render_json,
    scalar_text,
};
use crate::clockify::ApiRequest;

/// Loose equality: JSON-equal, or a string equal to the other side's text (UI forms send text).
fn loosely_equal(node: &Value, expected: &Value) -> bool {
    if node == expected {
        return true;
    }
    match (node, expected) {
        (Value::String(a), b @ (Value::Number(_) | Value::Bool(_)))
        | (b @ (Value::Number(_) | Value::Bool(_)), Value::String(a)) => {
            a.as_str() == b.to_string().as_str()
        }
        _ => false,
    }
}

fn contains(node: &Value, expected: &Value) -> bool {
    match node {
        Value::String(s) => s.contains(&scalar_text(expected)),
        Value::Array(items) => items.iter().any(|i| loosely_equal(i, expected)),
        _ => false,
    }
}

/// One condition. `!=` holds when no matched node equals the value (including when nothing
/// matched). A path the engine refuses (stored before a limit existed, say) is an error naming
/// the limit, never a silent "does not hold".
pub fn condition_holds(c: &Condition, body: &Value) -> Result<bool, String> {
    let path = parse_path(&c.path).map_err(|e| format!("condition path {:?}: {e}", c.path))?;
    let nodes = path.query(body).all();
    let null = Value::Null;
    let expected = c.value.as_ref().unwrap_or(&null);
    Ok(match c.op {
        ConditionOp::Exists => nodes.iter().any(|n| !n.is_null()),
        ConditionOp::Equals => nodes.iter().any(|n| loosely_equal(n, expected)),
        ConditionOp::NotEquals => !nodes.iter().any(|n| loosely_equal(n, expected)),
        ConditionOp::Contains => nodes.iter().any(|n| contains(n, expected)),
    })
}

/// Whether the flow's conditions hold (no conditions: always); an error when one cannot be
/// evaluated.
pub fn conditions_match(flow: &FlowDefinition, body: &Value) -> Result<bool, String> {
    for c in &flow.conditions {
        let holds = condition_holds(c, body)?;
        match flow.condition_mode {
            ConditionMode::All if !holds => return Ok(false),
            ConditionMode::Any if holds => return Ok(true),
            _ => {}
        }
    }
    Ok(flow.conditions.is_empty() || flow.condition_mode == ConditionMode::All)
}

/// An outbound HTTP request a GENERIC_HTTP action makes for this delivery.
#[derive(Debug, Clone)]
pub struct HttpCall {
    pub method: Method,
    pub url: url::Url,
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    pub body: Option<Value>,
    pub timeout: Option<std::time::Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("the rendered URL is not valid: {0}")]
    Url(String),
    #[error("header {0}: the rendered value is not a valid header value")]
    Header(String),
}

/// The outbound request of a GENERIC_HTTP action. Values substituted into the URL are
/// percent-encoded; header values may not contain line breaks.
pub fn render_http(action: &Action, ctx: &TemplateContext<'_>) -> Result<HttpCall, RenderError> {
    let budget = &mut Budget::default();
    let template = action.url.as_deref().unwrap_or_default();
    let text = Template::parse(template)?.render(ctx, encode_segment, budget)?;
    let mut url = url::Url::parse(&text).map_err(|e| RenderError::Url(e.to_string()))?;
    if !action.query.is_empty() {
        let pairs = action
            .query
            .iter()
            .map(|(k, v)| {
                Ok((
                    k.clone(),
                    Template::parse(v)?.render(ctx, |s| s.to_owned(), budget)?,
                ))
            })
            .collect::<Result<Vec<_>, TemplateError>>()?;
        url.query_pairs_mut().extend_pairs(pairs);
    }
    let mut headers = Vec::with_capacity(action.headers.len());
    for (name, value) in &action.headers {
        let rendered = Template::parse(value)?.render(ctx, |s| s.to_owned(), budget)?;
        let name_h = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| RenderError::Header(name.clone()))?;
        let mut value_h = http::HeaderValue::from_str(&rendered)
            .map_err(|_| RenderError::Header(name.clone()))?;
        value_h.set_sensitive(crate::outbound::is_sensitive_header(name));
        headers.push((name_h, value_h));
    }
    let body = action
        .body
        .as_ref()
        .map(|b| render_json(b, ctx, budget))
        .transpose()?;
    Ok(HttpCall {
        method: Method::from_bytes(action.method.as_bytes()).unwrap_or(Method::POST),
        url,
        headers,
        body,
        timeout: action
            .timeout_seconds
            .map(|s| std::time::Duration::from_secs(u64::from(s))),
    })
}

/// What of the webhook body `action`'s placeholders can reach: every template it renders
/// (path, URL, query and header values, the strings of its body).
pub fn body_needs(action: &Action) -> BodyNeeds {
    let mut needs = BodyNeeds::default();
    needs.add_template(&action.path);
    if let Some(url) = &action.url {
        needs.add_template(url);
    }
    action.query.values().for_each(|v| needs.add_template(v));
    action.headers.values().for_each(|v| needs.add_template(v));
    if let Some(body) = &action.body {
        needs.add_json(body);
    }
    needs
}

/// The API request an action makes for this webhook.
pub fn render_action(
    action: &Action,
    ctx: &TemplateContext<'_>,
) -> Result<ApiRequest, TemplateError> {
    let budget = &mut Budget::default();
    let path = Template::parse(&action.path)?.render(ctx, encode_segment, budget)?;
    let query = action
        .query
        .iter()
        .map(|(k, v)| {
            Ok((
                k.clone(),
                Template::parse(v)?.render(ctx, |s| s.to_owned(), budget)?,
            ))
        })
        .collect::<Result<Vec<_>, TemplateError>>()?;
    let body = action
        .body
        .as_ref()
        .map(|b| render_json(b, ctx, budget))
        .transpose()?;
    let method = Method::from_bytes(action.method.as_bytes()).unwrap_or(Method::GET);
    Ok(ApiRequest {
        method,
        path,
        query,
        body,
        form: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holds(c: &Condition, body: &Value) -> bool {
        condition_holds(c, body).unwrap()
    }

    fn matches(flow: &FlowDefinition, body: &Value) -> bool {
        conditions_match(flow, body).unwrap()
    }
    use crate::flows::model::{ActionKind, FlowFeatures, TriggerSource};
    use serde_json::json;

    fn cond(path: &str, op: ConditionOp, value: Option<Value>) -> Condition {
        Condition {
            path: path.into(),
            op,
            value,
        }
    }

    fn flow(mode: ConditionMode, conditions: Vec<Condition>) -> FlowDefinition {
        FlowDefinition {
            name: "f".into(),
            enabled: true,
            trigger_source: Default::default(),
            trigger_sources: vec![],
            trigger_events: vec!["NEW_TIME_ENTRY".into()],
            condition_mode: mode,
            conditions,
            actions: vec![],
        }
    }

    #[test]
    fn operators() {
        let body = json!({"billable": true, "description": "Client call", "tagIds": ["a", "b"], "hourlyRate": null, "project": {"name": "Apollo", "n": 5}});
        assert!(holds(
            &cond("$.billable", ConditionOp::Equals, Some(json!(true))),
            &body
        ));
        assert!(holds(
            &cond("$.billable", ConditionOp::Equals, Some(json!("true"))),
            &body
        ));
        assert!(holds(
            &cond("$.project.n", ConditionOp::Equals, Some(json!("5"))),
            &body
        ));
        assert!(!holds(
            &cond("$.project.name", ConditionOp::Equals, Some(json!("apollo"))),
            &body
        ));
        assert!(holds(
            &cond(
                "$.project.name",
                ConditionOp::NotEquals,
                Some(json!("Zeus"))
            ),
            &body
        ));
        assert!(holds(
            &cond("$.nothing", ConditionOp::NotEquals, Some(json!("Zeus"))),
            &body
        ));
        assert!(holds(
            &cond("$.description", ConditionOp::Contains, Some(json!("call"))),
            &body
        ));
        assert!(holds(
            &cond("$.tagIds", ConditionOp::Contains, Some(json!("b"))),
            &body
        ));
        assert!(!holds(
            &cond("$.tagIds", ConditionOp::Contains, Some(json!("c"))),
            &body
        ));
        assert!(holds(&cond("$.project", ConditionOp::Exists, None), &body));
        assert!(!holds(
            &cond("$.hourlyRate", ConditionOp::Exists, None),
            &body
        ));
        assert!(!holds(&cond("$.missing", ConditionOp::Exists, None), &body));
    }

    #[test]
    fn all_and_any() {
        let body = json!({"a": 1, "b": 2});
        let yes = cond("$.a", ConditionOp::Equals, Some(json!(1)));
        let no = cond("$.b", ConditionOp::Equals, Some(json!(3)));
        assert!(!matches(
            &flow(ConditionMode::All, vec![yes.clone(), no.clone()]),
            &body
        ));
        assert!(matches(
            &flow(ConditionMode::Any, vec![yes.clone(), no.clone()]),
            &body
        ));
        assert!(!matches(&flow(ConditionMode::Any, vec![no]), &body));
        assert!(matches(&flow(ConditionMode::All, vec![]), &body));
    }

    #[test]
    fn validation_names_fields() {
        let mut f = flow(
            ConditionMode::All,
            vec![cond("$[", ConditionOp::Equals, None)],
        );
        f.trigger_events.push("bad event".into());
        f.actions.push(Action::clockify("TRACE", "/v2/x/{{$.id"));
        let problems = f.validate(FlowFeatures::default()).join("\n");
        for needle in [
            "triggerEvents[1]",
            "conditions[0].path",
            "conditions[0].value",
            "actions[0].method",
            "actions[0].path: must start",
            "actions[0].path: unclosed",
        ] {
            assert!(problems.contains(needle), "{needle} not in:\n{problems}");
        }
    }

    #[test]
    fn renders_action_request() {
        let body = json!({"id": "te1", "tagIds": ["t"]});
        let ctx = TemplateContext {
            workspace_id: "ws1",
            event_type: "NEW_TIME_ENTRY",
            body: &body,
        };
        let mut action = Action::clockify(
            "PUT",
            "/v1/workspaces/{{workspaceId}}/time-entries/{{$.id}}",
        )
        .with_body(json!({"tagIds": "{{$.tagIds}}", "description": "from {{eventType}}"}));
        action.query = [("hydrated".to_owned(), "true".to_owned())].into();
        let req = render_action(&action, &ctx).unwrap();
        assert_eq!(req.method, Method::PUT);
        assert_eq!(req.path, "/v1/workspaces/ws1/time-entries/te1");
        assert_eq!(req.query, vec![("hydrated".to_owned(), "true".to_owned())]);
        assert_eq!(
            req.body,
            Some(json!({"tagIds": ["t"], "description": "from NEW_TIME_ENTRY"}))
        );
    }

    const ALL: FlowFeatures = FlowFeatures {
        custom_sources: true,
        generic_http: true,
    };

    #[test]
    fn renders_generic_http_request() {
        let body = json!({"id": "a/b c", "user": {"name": "Ann"}, "amount": 5});
        let ctx = TemplateContext {
            workspace_id: "ws1",
            event_type: "invoice.paid",
            body: &body,
        };
        let mut action = Action::http("POST", "https://hooks.example.com/in/{{$.id}}?k=1")
            .with_body(json!({"who": "{{$.user.name}}", "n": "{{$.amount}}"}));
        action.headers = [
            ("Authorization".to_owned(), "Bearer s3cret".to_owned()),
            ("X-Event".to_owned(), "{{eventType}}".to_owned()),
        ]
        .into();
        action.query = [("ws".to_owned(), "{{workspaceId}}".to_owned())].into();
        action.timeout_seconds = Some(3);
        let call = render_http(&action, &ctx).unwrap();
        assert_eq!(call.method, Method::POST);
        assert_eq!(
            call.url.as_str(),
            "https://hooks.example.com/in/a%2Fb%20c?k=1&ws=ws1"
        );
        assert_eq!(call.body, Some(json!({"who": "Ann", "n": 5})));
        let auth = &call.headers[0];
        assert_eq!(auth.0.as_str(), "authorization");
        assert!(auth.1.is_sensitive(), "credentials are marked sensitive");
        assert_eq!(call.headers[1].1, "invoice.paid");
        assert!(!call.headers[1].1.is_sensitive());
        assert_eq!(call.timeout, Some(std::time::Duration::from_secs(3)));

        // A header value taken from the body may not smuggle a line break.
        let evil = json!({"x": "a\r\nX-Injected: 1"});
        let ctx = TemplateContext { body: &evil, ..ctx };
        let mut action = Action::http("POST", "https://hooks.example.com/in");
        action.headers = [("X-Id".to_owned(), "{{$.x}}".to_owned())].into();
        assert_eq!(
            render_http(&action, &ctx).unwrap_err(),
            RenderError::Header("X-Id".into())
        );
    }

    #[test]
    fn url_templates_never_let_data_choose_the_host() {
        for bad in [
            "https://{{$.host}}/x",
            "https://hooks.example.com{{$.port}}/x",
            "ftp://hooks.example.com/x",
            "hooks.example.com/x",
            "https://user:pw@hooks.example.com/x",
            "https:///x",
        ] {
            assert!(
                crate::flows::model::check_url_template(bad).is_err(),
                "{bad} accepted"
            );
        }
        for ok in [
            "https://hooks.example.com/x/{{$.id}}",
            "http://127.0.0.1:9000/in?x={{$.id}}",
            "https://hooks.example.com",
        ] {
            assert!(crate::flows::model::check_url_template(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn triggers_by_source() {
        let mut f = flow(ConditionMode::All, vec![]);
        assert!(f.triggered_by(None, "NEW_TIME_ENTRY"));
        assert!(!f.triggered_by(None, "NEW_PROJECT"));
        assert!(!f.triggered_by(Some("github"), "NEW_TIME_ENTRY"));
        f.trigger_source = TriggerSource::Custom;
        f.trigger_events = vec!["push".into()];
        assert!(f.triggered_by(Some("github"), "push"));
        assert!(!f.triggered_by(None, "push"));
        assert!(!f.triggered_by(Some("github"), "issues"));
        f.trigger_sources = vec!["gitlab".into()];
        assert!(!f.triggered_by(Some("github"), "push"));
        assert!(f.triggered_by(Some("gitlab"), "push"));
        f.trigger_events = vec!["*".into()];
        assert!(f.triggered_by(Some("gitlab"), "anything.at_all"));
    }

    #[test]
    fn features_gate_custom_sources_and_generic_http() {
        let mut f = flow(ConditionMode::All, vec![]);
        f.trigger_source = TriggerSource::Custom;
        f.trigger_events = vec!["invoice.paid".into(), "*".into()];
        f.trigger_sources = vec!["billing".into()];
        let mut http = Action::http("POST", "https://hooks.example.com/x");
        http.headers = [("Host".to_owned(), "evil".to_owned())].into();
        f.actions = vec![http];
        let denied = f.validate(FlowFeatures::default()).join("\n");
        assert!(
            denied.contains("triggerSource: this add-on has no custom webhooks"),
            "{denied}"
        );
        assert!(
            denied.contains("actions[0].type: this add-on has no GENERIC_HTTP"),
            "{denied}"
        );
        let allowed = f.validate(ALL).join("\n");
        assert_eq!(
            allowed,
            "actions[0].headers.Host: set by the add-on, not by a flow"
        );
        f.actions[0].headers.clear();
        assert!(f.validate(ALL).is_empty());
        f.trigger_sources = vec!["Bad Source".into()];
        f.trigger_events = vec!["white space".into()];
        let bad = f.validate(ALL).join("\n");
        assert!(
            bad.contains("triggerSources[0]") && bad.contains("triggerEvents[0]"),
            "{bad}"
        );
    }

    #[test]
    fn clockify_actions_keep_their_stored_shape() {
        // Earlier releases read stored actions with deny_unknown_fields: a CLOCKIFY_API action
        // must serialise exactly as they wrote it.
        let a = Action::clockify("GET", "/v1/workspaces/{{workspaceId}}/projects");
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            json!({"method": "GET", "path": "/v1/workspaces/{{workspaceId}}/projects"})
        );
        let stored: Action =
            serde_json::from_value(json!({"method": "POST", "path": "/v1/x"})).unwrap();
        assert_eq!(stored.kind, ActionKind::ClockifyApi);
    }
}
