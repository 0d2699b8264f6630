//! `{{...}}` placeholders in action paths, queries and bodies: `{{workspaceId}}`,
//! `{{eventType}}`, or a JSONPath into the webhook body such as `{{$.project.id}}`.

use serde_json::Value;
use serde_json_path::JsonPath;

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    WorkspaceId,
    EventType,
    Path(JsonPath, String),
}

#[derive(Debug, Clone)]
pub struct Template {
    parts: Vec<Part>,
}

/// The values placeholders are filled from.
#[derive(Debug, Clone, Copy)]
pub struct TemplateContext<'a> {
    pub workspace_id: &'a str,
    pub event_type: &'a str,
    pub body: &'a Value,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unclosed `{{{{`")]
    Unclosed,
    #[error("unknown placeholder {{{{{0}}}}}: use workspaceId, eventType or a JSONPath like $.id")]
    Unknown(String),
    #[error("placeholder {{{{{0}}}}} is not a valid JSONPath: {1}")]
    BadPath(String, String),
    #[error("placeholder {{{{{0}}}}} matched nothing in the webhook body")]
    NoMatch(String),
}

impl Template {
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or(TemplateError::Unclosed)?;
            let expr = after[..end].trim();
            parts.push(match expr {
                "workspaceId" => Part::WorkspaceId,
                "eventType" => Part::EventType,
                e if e.starts_with('$') => {
                    let p = JsonPath::parse(e)
                        .map_err(|err| TemplateError::BadPath(e.to_owned(), err.to_string()))?;
                    Part::Path(p, e.to_owned())
                }
                other => return Err(TemplateError::Unknown(other.to_owned())),
            });
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Self { parts })
    }

    fn lookup<'v>(
        ctx: &TemplateContext<'v>,
        path: &JsonPath,
        shown: &str,
    ) -> Result<&'v Value, TemplateError> {
        path.query(ctx.body)
            .first()
            .ok_or_else(|| TemplateError::NoMatch(shown.to_owned()))
    }

    /// Renders to text; `encode` escapes each substituted value (for URL path segments).
    pub fn render(
        &self,
        ctx: &TemplateContext<'_>,
        encode: fn(&str) -> String,
    ) -> Result<String, TemplateError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::WorkspaceId => out.push_str(&encode(ctx.workspace_id)),
                Part::EventType => out.push_str(&encode(ctx.event_type)),
                Part::Path(p, shown) => {
                    out.push_str(&encode(&scalar_text(Self::lookup(ctx, p, shown)?)))
                }
            }
        }
        Ok(out)
    }

    /// A template that is exactly one JSONPath placeholder yields the matched JSON value itself
    /// (numbers stay numbers, objects stay objects); anything else renders to a string.
    pub fn render_value(&self, ctx: &TemplateContext<'_>) -> Result<Value, TemplateError> {
        if let [Part::Path(p, shown)] = self.parts.as_slice() {
            return Ok(Self::lookup(ctx, p, shown)?.clone());
        }
        self.render(ctx, |s| s.to_owned()).map(Value::String)
    }
}

/// Strings as they are, other values as JSON text.
pub fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Percent-encodes one URL path segment.
pub fn encode_segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// Renders every string inside a JSON body template.
pub fn render_json(v: &Value, ctx: &TemplateContext<'_>) -> Result<Value, TemplateError> {
    Ok(match v {
        Value::String(s) => Template::parse(s)?.render_value(ctx)?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| render_json(i, ctx))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, i)| Ok((k.clone(), render_json(i, ctx)?)))
                .collect::<Result<_, TemplateError>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(body: &Value) -> TemplateContext<'_> {
        TemplateContext {
            workspace_id: "ws 1",
            event_type: "NEW_TIME_ENTRY",
            body,
        }
    }

    #[test]
    fn path_segments_are_encoded() {
        let body = json!({"id": "a/b", "n": 3});
        let t = Template::parse("/v1/workspaces/{{workspaceId}}/time-entries/{{ $.id }}?{{$.n}}")
            .unwrap();
        assert_eq!(
            t.render(&ctx(&body), encode_segment).unwrap(),
            "/v1/workspaces/ws%201/time-entries/a%2Fb?3"
        );
    }

    #[test]
    fn whole_placeholder_keeps_json_type() {
        let body = json!({"tagIds": ["t1", "t2"], "billable": true, "name": "X"});
        let rendered = render_json(&json!({"tagIds": "{{$.tagIds}}", "b": "{{$.billable}}", "d": "Hello {{$.name}}", "k": 1}), &ctx(&body)).unwrap();
        assert_eq!(
            rendered,
            json!({"tagIds": ["t1", "t2"], "b": true, "d": "Hello X", "k": 1})
        );
    }

    #[test]
    fn errors_are_specific() {
        assert_eq!(
            Template::parse("{{oops").unwrap_err(),
            TemplateError::Unclosed
        );
        assert!(matches!(
            Template::parse("{{user}}").unwrap_err(),
            TemplateError::Unknown(_)
        ));
        assert!(matches!(
            Template::parse("{{$[}}").unwrap_err(),
            TemplateError::BadPath(..)
        ));
        let body = json!({});
        let t = Template::parse("{{$.missing}}").unwrap();
        assert_eq!(
            t.render(&ctx(&body), encode_segment).unwrap_err(),
            TemplateError::NoMatch("$.missing".into())
        );
    }
}
