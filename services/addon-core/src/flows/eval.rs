//! Evaluating a flow's conditions against a webhook body, and turning its actions into API
//! requests.

use reqwest::Method;
use serde_json::Value;
use serde_json_path::JsonPath;

use super::model::{Action, Condition, ConditionMode, ConditionOp, FlowDefinition};
use super::template::{
    Template, TemplateContext, TemplateError, encode_segment, render_json, scalar_text,
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

/// One condition. `!=` holds when no matched node equals the value (including when nothing matched).
pub fn condition_holds(c: &Condition, body: &Value) -> bool {
    let Ok(path) = JsonPath::parse(&c.path) else {
        return false;
    };
    let nodes = path.query(body).all();
    let null = Value::Null;
    let expected = c.value.as_ref().unwrap_or(&null);
    match c.op {
        ConditionOp::Exists => nodes.iter().any(|n| !n.is_null()),
        ConditionOp::Equals => nodes.iter().any(|n| loosely_equal(n, expected)),
        ConditionOp::NotEquals => !nodes.iter().any(|n| loosely_equal(n, expected)),
        ConditionOp::Contains => nodes.iter().any(|n| contains(n, expected)),
    }
}

/// Whether the flow's conditions hold (no conditions: always).
pub fn conditions_match(flow: &FlowDefinition, body: &Value) -> bool {
    if flow.conditions.is_empty() {
        return true;
    }
    match flow.condition_mode {
        ConditionMode::All => flow.conditions.iter().all(|c| condition_holds(c, body)),
        ConditionMode::Any => flow.conditions.iter().any(|c| condition_holds(c, body)),
    }
}

/// The API request an action makes for this webhook.
pub fn render_action(
    action: &Action,
    ctx: &TemplateContext<'_>,
) -> Result<ApiRequest, TemplateError> {
    let path = Template::parse(&action.path)?.render(ctx, encode_segment)?;
    let query = action
        .query
        .iter()
        .map(|(k, v)| {
            Ok((
                k.clone(),
                Template::parse(v)?.render(ctx, |s| s.to_owned())?,
            ))
        })
        .collect::<Result<Vec<_>, TemplateError>>()?;
    let body = action
        .body
        .as_ref()
        .map(|b| render_json(b, ctx))
        .transpose()?;
    let method = Method::from_bytes(action.method.as_bytes()).unwrap_or(Method::GET);
    Ok(ApiRequest {
        method,
        path,
        query,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
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
            trigger_events: vec!["NEW_TIME_ENTRY".into()],
            condition_mode: mode,
            conditions,
            actions: vec![],
        }
    }

    #[test]
    fn operators() {
        let body = json!({"billable": true, "description": "Client call", "tagIds": ["a", "b"], "hourlyRate": null, "project": {"name": "Apollo", "n": 5}});
        assert!(condition_holds(
            &cond("$.billable", ConditionOp::Equals, Some(json!(true))),
            &body
        ));
        assert!(condition_holds(
            &cond("$.billable", ConditionOp::Equals, Some(json!("true"))),
            &body
        ));
        assert!(condition_holds(
            &cond("$.project.n", ConditionOp::Equals, Some(json!("5"))),
            &body
        ));
        assert!(!condition_holds(
            &cond("$.project.name", ConditionOp::Equals, Some(json!("apollo"))),
            &body
        ));
        assert!(condition_holds(
            &cond(
                "$.project.name",
                ConditionOp::NotEquals,
                Some(json!("Zeus"))
            ),
            &body
        ));
        assert!(condition_holds(
            &cond("$.nothing", ConditionOp::NotEquals, Some(json!("Zeus"))),
            &body
        ));
        assert!(condition_holds(
            &cond("$.description", ConditionOp::Contains, Some(json!("call"))),
            &body
        ));
        assert!(condition_holds(
            &cond("$.tagIds", ConditionOp::Contains, Some(json!("b"))),
            &body
        ));
        assert!(!condition_holds(
            &cond("$.tagIds", ConditionOp::Contains, Some(json!("c"))),
            &body
        ));
        assert!(condition_holds(
            &cond("$.project", ConditionOp::Exists, None),
            &body
        ));
        assert!(!condition_holds(
            &cond("$.hourlyRate", ConditionOp::Exists, None),
            &body
        ));
        assert!(!condition_holds(
            &cond("$.missing", ConditionOp::Exists, None),
            &body
        ));
    }

    #[test]
    fn all_and_any() {
        let body = json!({"a": 1, "b": 2});
        let yes = cond("$.a", ConditionOp::Equals, Some(json!(1)));
        let no = cond("$.b", ConditionOp::Equals, Some(json!(3)));
        assert!(!conditions_match(
            &flow(ConditionMode::All, vec![yes.clone(), no.clone()]),
            &body
        ));
        assert!(conditions_match(
            &flow(ConditionMode::Any, vec![yes.clone(), no.clone()]),
            &body
        ));
        assert!(!conditions_match(
            &flow(ConditionMode::Any, vec![no]),
            &body
        ));
        assert!(conditions_match(&flow(ConditionMode::All, vec![]), &body));
    }

    #[test]
    fn validation_names_fields() {
        let mut f = flow(
            ConditionMode::All,
            vec![cond("$[", ConditionOp::Equals, None)],
        );
        f.trigger_events.push("bad event".into());
        f.actions.push(Action {
            name: None,
            method: "TRACE".into(),
            path: "/v2/x/{{$.id".into(),
            query: Default::default(),
            body: None,
        });
        let problems = f.validate().join("\n");
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
        let action = Action {
            name: None,
            method: "PUT".into(),
            path: "/v1/workspaces/{{workspaceId}}/time-entries/{{$.id}}".into(),
            query: [("hydrated".to_owned(), "true".to_owned())].into(),
            body: Some(json!({"tagIds": "{{$.tagIds}}", "description": "from {{eventType}}"})),
        };
        let req = render_action(&action, &ctx).unwrap();
        assert_eq!(req.method, Method::PUT);
        assert_eq!(req.path, "/v1/workspaces/ws1/time-entries/te1");
        assert_eq!(req.query, vec![("hydrated".to_owned(), "true".to_owned())]);
        assert_eq!(
            req.body,
            Some(json!({"tagIds": ["t"], "description": "from NEW_TIME_ENTRY"}))
        );
    }
}
