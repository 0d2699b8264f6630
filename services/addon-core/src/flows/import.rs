//! Flows written for the earlier Python system (pyddon): snake_case fields and actions named by
//! Clockify's `operation_id` with `params`, converted into this engine's flows with the API
//! explorer's catalogue (the operation gives the method and path; each param goes where the
//! operation takes it: its path, its query or its body). Every assumption made is listed, so
//! the user reviews the result before saving it; nothing is saved here.

use serde_json::{Map, Value, json};

use crate::explorer::{ApiCatalog, ParamIn};

/// The flow in this engine's format, and what the conversion assumed or dropped.
#[derive(Debug, PartialEq)]
pub struct Imported {
    pub flow: Value,
    pub notes: Vec<String>,
}

/// `$.x` (pyddon's "take it from the event") becomes `{{$.x}}`; other text stays as it is.
fn template(v: &Value) -> Value {
    match v {
        Value::String(s) if s.starts_with("$.") || s == "$" => {
            Value::String(format!("{{{{{s}}}}}"))
        }
        Value::Array(a) => Value::Array(a.iter().map(template).collect()),
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), template(v))).collect())
        }
        other => other.clone(),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn first<'a>(o: &'a Map<String, Value>, names: &[&str]) -> Option<&'a Value> {
    names.iter().find_map(|n| o.get(*n))
}

pub fn import(input: &Value, catalog: &ApiCatalog) -> Result<Imported, Vec<String>> {
    let Some(o) = input.as_object() else {
        return Err(vec!["a pyddon flow is a JSON object".into()]);
    };
    let mut notes = Vec::new();
    let mut problems = Vec::new();
    let name = first(o, &["name", "title"])
        .and_then(Value::as_str)
        .unwrap_or("Imported flow")
        .to_owned();
    let events: Vec<Value> = match first(o, &["trigger_events", "triggerEvents", "events"]) {
        Some(Value::Array(a)) => a.clone(),
        _ => match first(o, &["trigger_event", "trigger", "event"]) {
            Some(v @ Value::String(_)) => vec![v.clone()],
            _ => {
                problems.push("trigger_events: the events that start the flow are missing".into());
                Vec::new()
            }
        },
    };
    let mode = match first(o, &["condition_mode", "conditionMode", "match"])
        .and_then(Value::as_str)
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("ALL") => "ALL",
        Some("ANY") => "ANY",
        Some(other) => {
            problems.push(format!("condition_mode: {other:?} is neither ALL nor ANY"));
            "ALL"
        }
    };
    let mut conditions = Vec::new();
    for (i, c) in first(o, &["conditions"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let path = c
            .get("path")
            .or_else(|| c.get("json_path"))
            .or_else(|| c.get("field"))
            .and_then(Value::as_str);
        let op = c
            .get("op")
            .or_else(|| c.get("operator"))
            .and_then(Value::as_str);
        let (Some(path), Some(op)) = (path, op) else {
            problems.push(format!("conditions[{i}]: needs a path and an op"));
            continue;
        };
        let op = match op {
            "eq" | "equals" | "==" => "==",
            "ne" | "not_equals" | "!=" => "!=",
            "contains" | "in" => "contains",
            "exists" => "exists",
            other => {
                problems.push(format!(
                    "conditions[{i}].op: {other:?} is not one of ==, !=, contains, exists"
                ));
                continue;
            }
        };
        let path = if path.starts_with('$') {
            path.to_owned()
        } else {
            notes.push(format!(
                "conditions[{i}]: {path:?} read as the JSONPath $.{path}"
            ));
            format!("$.{path}")
        };
        let mut cond = json!({"path": path, "op": op});
        if let Some(v) = c.get("value") {
            cond["value"] = v.clone();
        }
        conditions.push(cond);
    }
    let mut actions = Vec::new();
    for (i, a) in first(o, &["actions"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let Some(id) = a
            .get("operation_id")
            .or_else(|| a.get("operationId"))
            .and_then(Value::as_str)
        else {
            problems.push(format!("actions[{i}]: needs an operation_id"));
            continue;
        };
        let Some(op) = catalog.get(id) else {
            problems.push(format!(
                "actions[{i}].operation_id: {id:?} is not an operation of Clockify's API"
            ));
            continue;
        };
        let mut path = op.path.replace("{workspaceId}", "{{workspaceId}}");
        let mut query = Map::new();
        let mut body: Option<Value> = None;
        let params = a
            .get("params")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (k, v) in &params {
            if k == "workspaceId" || k == "workspace_id" {
                notes.push(format!(
                    "actions[{i}]: {k} dropped: flows run in the workspace that received the event"
                ));
                continue;
            }
            if ["body", "json", "payload", "data"].contains(&k.as_str()) {
                body = Some(template(v));
                continue;
            }
            match op.params.iter().find(|p| &p.name == k).map(|p| p.location) {
                Some(ParamIn::Path) => {
                    path = path.replace(&format!("{{{k}}}"), &text(&template(v)));
                }
                Some(ParamIn::Query) => {
                    query.insert(k.clone(), Value::String(text(&template(v))));
                }
                None if op.body.is_some() => {
                    let b = body.get_or_insert_with(|| json!({}));
                    if let Some(m) = b.as_object_mut() {
                        m.insert(k.clone(), template(v));
                    }
                    notes.push(format!("actions[{i}]: {k} put in the request body"));
                }
                None => problems.push(format!(
                    "actions[{i}].params.{k}: {id} takes no parameter {k} and no body"
                )),
            }
        }
        for p in op
            .params
            .iter()
            .filter(|p| p.location == ParamIn::Path && p.name != "workspaceId")
        {
            if path.contains(&format!("{{{}}}", p.name)) {
                problems.push(format!(
                    "actions[{i}]: {id} needs the path parameter {}",
                    p.name
                ));
            }
        }
        let mut action = json!({"name": a.get("name").and_then(Value::as_str).unwrap_or(op.summary.as_str()), "method": op.method, "path": path});
        if !query.is_empty() {
            action["query"] = Value::Object(query);
        }
        if let Some(b) = body {
            action["body"] = b;
        }
        actions.push(action);
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let enabled = o.get("enabled").and_then(Value::as_bool).unwrap_or(true);
    Ok(Imported {
        flow: json!({
            "name": name,
            "enabled": enabled,
            "triggerEvents": events,
            "conditionMode": mode,
            "conditions": conditions,
            "actions": actions,
        }),
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explorer::api_catalog;

    #[test]
    fn a_pyddon_flow_becomes_a_flow_with_its_assumptions_listed() {
        let pyddon = json!({
            "name": "Tag client work",
            "trigger_events": ["NEW_TIME_ENTRY"],
            "condition_mode": "any",
            "conditions": [
                {"json_path": "$.billable", "operator": "eq", "value": true},
                {"path": "description", "op": "contains", "value": "client"}
            ],
            "actions": [
                {"operation_id": "updateTimeEntry", "params": {"workspaceId": "abc", "id": "$.id", "tagIds": ["t1"], "billable": true}},
                {"operation_id": "getTags", "params": {"name": "$.description", "page": 2}}
            ]
        });
        let out = import(&pyddon, api_catalog()).unwrap();
        assert_eq!(out.flow["conditionMode"], "ANY");
        assert_eq!(
            out.flow["conditions"],
            json!([{"path": "$.billable", "op": "==", "value": true}, {"path": "$.description", "op": "contains", "value": "client"}])
        );
        let a = &out.flow["actions"];
        assert_eq!(a[0]["method"], "PUT");
        assert_eq!(
            a[0]["path"],
            "/v1/workspaces/{{workspaceId}}/time-entries/{{$.id}}"
        );
        assert_eq!(a[0]["body"], json!({"tagIds": ["t1"], "billable": true}));
        assert_eq!(a[1]["path"], "/v1/workspaces/{{workspaceId}}/tags");
        assert_eq!(
            a[1]["query"],
            json!({"name": "{{$.description}}", "page": "2"})
        );
        assert!(
            out.notes.iter().any(|n| n.contains("workspaceId dropped")),
            "{:?}",
            out.notes
        );
        assert!(
            out.notes.iter().any(|n| n.contains("$.description")),
            "{:?}",
            out.notes
        );
        // The result is a flow this engine accepts.
        let def: crate::flows::FlowDefinition = serde_json::from_value(out.flow).unwrap();
        assert!(
            def.validate(Default::default()).is_empty(),
            "{:?}",
            def.validate(Default::default())
        );

        let bad = json!({"name": "x", "trigger_events": ["NEW_TIME_ENTRY"], "actions": [
            {"operation_id": "nope"}, {"operation_id": "getTag", "params": {}}, {"operation_id": "getTags", "params": {"colour": "red"}}]});
        assert_eq!(
            import(&bad, api_catalog()).unwrap_err(),
            [
                "actions[0].operation_id: \"nope\" is not an operation of Clockify's API",
                "actions[1]: getTag needs the path parameter id",
                "actions[2].params.colour: getTags takes no parameter colour and no body",
            ]
        );
    }
}
