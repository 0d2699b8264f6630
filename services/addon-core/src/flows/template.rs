//! `{{...}}` placeholders in action paths, queries and bodies: `{{workspaceId}}`,
//! `{{eventType}}`, or a JSONPath into the webhook body such as `{{$.project.id}}`.

use serde_json::Value;
use serde_json_path::JsonPath;

use super::limits::{
    MAX_PLACEHOLDERS_PER_ACTION, MAX_PLACEHOLDERS_PER_TEMPLATE, MAX_RENDERED_BYTES,
    MAX_TEMPLATE_CHARS, json_size, parse_path,
};

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
    #[error("{0} characters long; the limit is {MAX_TEMPLATE_CHARS}")]
    TooLong(usize),
    #[error("more than {MAX_PLACEHOLDERS_PER_TEMPLATE} placeholders in one template")]
    TooManyPlaceholders,
    #[error("more than {MAX_PLACEHOLDERS_PER_ACTION} JSONPath placeholders in one action")]
    TooManyLookups,
    #[error("the rendered request would exceed {MAX_RENDERED_BYTES} bytes")]
    TooLarge,
}

/// What one action's rendering may still spend: bytes of output and JSONPath lookups. Every
/// template of an action draws on the same budget, so no flow can render more than
/// [`MAX_RENDERED_BYTES`] or look up more than [`MAX_PLACEHOLDERS_PER_ACTION`] paths per action.
#[derive(Debug, Clone)]
pub struct Budget {
    bytes: usize,
    lookups: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            bytes: MAX_RENDERED_BYTES,
            lookups: MAX_PLACEHOLDERS_PER_ACTION,
        }
    }
}

impl Budget {
    fn spend(&mut self, bytes: usize) -> Result<(), TemplateError> {
        self.bytes = self
            .bytes
            .checked_sub(bytes)
            .ok_or(TemplateError::TooLarge)?;
        Ok(())
    }

    fn lookup(&mut self) -> Result<(), TemplateError> {
        self.lookups = self
            .lookups
            .checked_sub(1)
            .ok_or(TemplateError::TooManyLookups)?;
        Ok(())
    }
}

impl Template {
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let chars = text.chars().count();
        if chars > MAX_TEMPLATE_CHARS {
            return Err(TemplateError::TooLong(chars));
        }
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or(TemplateError::Unclosed)?;
            let expr = after[..end].trim();
            if parts.iter().filter(|p| !matches!(p, Part::Text(_))).count()
                >= MAX_PLACEHOLDERS_PER_TEMPLATE
            {
                return Err(TemplateError::TooManyPlaceholders);
            }
            parts.push(match expr {
                "workspaceId" => Part::WorkspaceId,
                "eventType" => Part::EventType,
                e if e.starts_with('$') => {
                    let p = parse_path(e)
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

    /// The number of JSONPath placeholders.
    pub fn lookups(&self) -> usize {
        self.parts
            .iter()
            .filter(|p| matches!(p, Part::Path(..)))
            .count()
    }

    fn lookup<'v>(
        ctx: &TemplateContext<'v>,
        path: &JsonPath,
        shown: &str,
        budget: &mut Budget,
    ) -> Result<&'v Value, TemplateError> {
        budget.lookup()?;
        path.query(ctx.body)
            .first()
            .ok_or_else(|| TemplateError::NoMatch(shown.to_owned()))
    }

    /// Renders to text; `encode` escapes each substituted value (for URL path segments).
    /// Each part is charged to `budget` before it is written.
    pub fn render(
        &self,
        ctx: &TemplateContext<'_>,
        encode: fn(&str) -> String,
        budget: &mut Budget,
    ) -> Result<String, TemplateError> {
        let mut out = String::new();
        for part in &self.parts {
            let piece = match part {
                Part::Text(t) => {
                    budget.spend(t.len())?;
                    out.push_str(t);
                    continue;
                }
                Part::WorkspaceId => encode(ctx.workspace_id),
                Part::EventType => encode(ctx.event_type),
                Part::Path(p, shown) => {
                    let value = Self::lookup(ctx, p, shown, budget)?;
                    // Measured (cheaply, never past the budget) before it is copied.
                    if json_size(value, budget.bytes) > budget.bytes {
                        return Err(TemplateError::TooLarge);
                    }
                    encode(&scalar_text(value))
                }
            };
            budget.spend(piece.len())?;
            out.push_str(&piece);
        }
        Ok(out)
    }

    /// A template that is exactly one JSONPath placeholder yields the matched JSON value itself
    /// (numbers stay numbers, objects stay objects); anything else renders to a string.
    pub fn render_value(
        &self,
        ctx: &TemplateContext<'_>,
        budget: &mut Budget,
    ) -> Result<Value, TemplateError> {
        if let [Part::Path(p, shown)] = self.parts.as_slice() {
            let value = Self::lookup(ctx, p, shown, budget)?;
            budget.spend(json_size(value, budget.bytes))?;
            return Ok(value.clone());
        }
        self.render(ctx, |s| s.to_owned(), budget)
            .map(Value::String)
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

/// The part of a webhook body an action's placeholders can reach, so that rendering parses
/// only that: a delivery is parsed for each action it renders, and a parsed Clockify sample is
/// about 140 allocations and four times its text, while an action typically reads one or two
/// of its members. A path that starts with a member name (`$.project.id`, `$.tags[0]`) reaches
/// only that member of the root; any other (`$..id`, `$.*`, `$['a']`, a filter that refers to
/// `$`) needs the whole body, and then the whole body is parsed, as is a body that is not an
/// object. What a template renders is the same either way (tested below).
#[derive(Debug, Default)]
pub struct BodyNeeds {
    all: bool,
    members: std::collections::BTreeSet<String>,
}

impl BodyNeeds {
    /// Adds the JSONPath placeholders of one template text (scanned as [`Template::parse`]
    /// scans it; a malformed template fails to render whatever the body).
    pub fn add_template(&mut self, text: &str) {
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else { return };
            let expr = after[..end].trim();
            if expr.starts_with('$') {
                match root_member(expr) {
                    Some(member) => {
                        self.members.insert(member.to_owned());
                    }
                    None => self.all = true,
                }
            }
            rest = &after[end + 2..];
        }
    }

    /// Adds every string of a JSON body template ([`render_json`] renders values, not keys).
    pub fn add_json(&mut self, v: &Value) {
        match v {
            Value::String(s) => self.add_template(s),
            Value::Array(items) => items.iter().for_each(|i| self.add_json(i)),
            Value::Object(map) => map.values().for_each(|i| self.add_json(i)),
            _ => {}
        }
    }

    /// The body as the placeholders see it: the members they reach (or all of it), `null`
    /// when none reaches it, and `null` for text that is not JSON, as a full parse gives.
    pub fn parse(&self, text: &str) -> Value {
        let full = || serde_json::from_str(text).unwrap_or(Value::Null);
        if self.all {
            return full();
        }
        if self.members.is_empty() {
            return Value::Null;
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let pruned = serde::de::DeserializeSeed::deserialize(Pruned(&self.members), &mut de)
            .and_then(|v| de.end().map(|()| v));
        pruned.unwrap_or_else(|_| full())
    }
}

/// The member of the root a JSONPath begins with, when it cannot reach anything else.
fn root_member(expr: &str) -> Option<&str> {
    let rest = expr.strip_prefix("$.")?;
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    let (name, tail) = rest.split_at(end);
    let first = name.chars().next()?;
    let starts_well = first.is_ascii_alphabetic() || first == '_';
    let stays_inside =
        (tail.is_empty() || tail.starts_with('.') || tail.starts_with('[')) && !tail.contains('$');
    (starts_well && stays_inside).then_some(name)
}

/// Deserializes a JSON object keeping only the named members (the others are skipped without
/// building anything); anything but an object is an error, and the caller parses in full.
struct Pruned<'a>(&'a std::collections::BTreeSet<String>);

impl<'de> serde::de::DeserializeSeed<'de> for Pruned<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Pruned<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(Key(key)) = map.next_key()? {
            if self.0.contains(key.as_ref()) {
                let value: Value = map.next_value()?;
                out.insert(key.into_owned(), value);
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(Value::Object(out))
    }
}

/// An object key, borrowed from the text unless it holds escapes.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Borrowed(s)))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Renders every string inside a JSON body template.
pub fn render_json(
    v: &Value,
    ctx: &TemplateContext<'_>,
    budget: &mut Budget,
) -> Result<Value, TemplateError> {
    Ok(match v {
        Value::String(s) => Template::parse(s)?.render_value(ctx, budget)?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| render_json(i, ctx, budget))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, i)| {
                    budget.spend(k.len())?;
                    Ok((k.clone(), render_json(i, ctx, budget)?))
                })
                .collect::<Result<_, TemplateError>>()?,
        ),
        other => {
            budget.spend(json_size(other, budget.bytes))?;
            other.clone()
        }
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
            t.render(&ctx(&body), encode_segment, &mut Budget::default())
                .unwrap(),
            "/v1/workspaces/ws%201/time-entries/a%2Fb?3"
        );
    }

    #[test]
    fn whole_placeholder_keeps_json_type() {
        let body = json!({"tagIds": ["t1", "t2"], "billable": true, "name": "X"});
        let rendered = render_json(&json!({"tagIds": "{{$.tagIds}}", "b": "{{$.billable}}", "d": "Hello {{$.name}}", "k": 1}), &ctx(&body), &mut Budget::default()).unwrap();
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
            t.render(&ctx(&body), encode_segment, &mut Budget::default())
                .unwrap_err(),
            TemplateError::NoMatch("$.missing".into())
        );
    }

    #[test]
    fn placeholders_and_lengths_are_bounded_when_parsed() {
        let many = "{{$}}".repeat(MAX_PLACEHOLDERS_PER_TEMPLATE + 1);
        assert_eq!(
            Template::parse(&many).unwrap_err(),
            TemplateError::TooManyPlaceholders
        );
        assert!(Template::parse(&"{{$}}".repeat(MAX_PLACEHOLDERS_PER_TEMPLATE)).is_ok());
        let long = "x".repeat(MAX_TEMPLATE_CHARS + 1);
        assert_eq!(
            Template::parse(&long).unwrap_err(),
            TemplateError::TooLong(MAX_TEMPLATE_CHARS + 1)
        );
        let deep = format!("{{{{$[?{}@.a{}]}}}}", "(".repeat(1000), ")".repeat(1000));
        let err = Template::parse(&deep).unwrap_err().to_string();
        assert!(err.contains("the limit is"), "{err}");
    }

    #[test]
    fn rendering_stops_at_the_budget_before_copying() {
        // One 600 KB string; the second copy would pass the 1 MiB budget.
        let body = json!({"big": "x".repeat(600 * 1024)});
        let mut budget = Budget::default();
        let t = Template::parse("{{$.big}}").unwrap();
        assert!(t.render_value(&ctx(&body), &mut budget).is_ok());
        assert_eq!(
            t.render_value(&ctx(&body), &mut budget).unwrap_err(),
            TemplateError::TooLarge
        );
        // Whole-body placeholders in a body template draw on the same budget.
        let template = json!({"a": "{{$}}", "b": "{{$}}"});
        assert_eq!(
            render_json(&template, &ctx(&body), &mut Budget::default()).unwrap_err(),
            TemplateError::TooLarge
        );
        // Lookups are counted per action, whatever they match.
        let small = json!({"a": 1});
        let mut budget = Budget::default();
        let t = Template::parse("{{$..*}}").unwrap();
        for _ in 0..MAX_PLACEHOLDERS_PER_ACTION {
            t.render(&ctx(&small), |s| s.to_owned(), &mut budget)
                .unwrap();
        }
        assert_eq!(
            t.render(&ctx(&small), |s| s.to_owned(), &mut budget)
                .unwrap_err(),
            TemplateError::TooManyLookups
        );
    }

    /// Renders `template` against the body parsed in full and against what [`BodyNeeds`] parses
    /// for it: the output (or the error) must be the same.
    fn same_either_way(template: &str, text: &str) -> Result<String, TemplateError> {
        let full: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        let mut needs = BodyNeeds::default();
        needs.add_template(template);
        let pruned = needs.parse(text);
        let render = |body: &Value| {
            Template::parse(template).and_then(|t| {
                t.render_value(&ctx(body), &mut Budget::default())
                    .map(|v| v.to_string())
            })
        };
        let expected = render(&full);
        assert_eq!(render(&pruned), expected, "{template} on {text}");
        expected
    }

    #[test]
    fn a_body_parsed_for_the_placeholders_renders_as_the_whole_body() {
        let bodies = [
            r#"{"id":"e1","description":"Write","project":{"id":"p1","name":"P"},"tags":[{"id":"t1"},{"id":"e1"}],"n":3,"a\"b":"quoted","esc\u0061ped":"key","dup":1,"dup":2,"user":{"id":"u1","project":"inner"}}"#,
            r#"[{"id":"root array"}]"#,
            r#""a string""#,
            "not json",
            "{}",
        ];
        let templates = [
            "{{$.id}}",
            "{{$.project.id}} / {{$.description}}",
            "{{$.tags[1].id}}",
            "{{$.tags[*].id}}",
            "{{$.project}}",
            "{{$.escaped}}",
            "{{$.dup}}",
            "{{$..id}}",
            "{{$.*}}",
            "{{$['a\"b']}}",
            "{{$.tags[?@.id == $.id]}}",
            "{{$}}",
            "{{$.missing}}",
            "{{$.project .id}}",
            "{{workspaceId}}-{{eventType}}",
            "plain text",
            "{{$.id",
        ];
        let mut rendered = 0;
        for text in bodies {
            for template in templates {
                rendered += usize::from(same_either_way(template, text).is_ok());
            }
        }
        assert!(rendered > 20, "most of them render: {rendered}");
    }

    #[test]
    fn only_the_members_placeholders_reach_are_parsed() {
        let text = r#"{"id":"e1","project":{"id":"p1"},"user":{"id":"u1"},"tags":[1,2]}"#;
        let mut needs = BodyNeeds::default();
        needs.add_template("/v1/workspaces/{{workspaceId}}/tags/{{ $.project.id }}");
        needs.add_json(
            &serde_json::json!({"name": "{{$.tags[0]}}", "{{$.user}}": "keys are not rendered"}),
        );
        assert_eq!(
            needs.parse(text),
            serde_json::json!({"project": {"id": "p1"}, "tags": [1, 2]})
        );
        // No placeholder reaches the body: nothing is parsed.
        let mut none = BodyNeeds::default();
        none.add_template("/v1/workspaces/{{workspaceId}}/tags");
        assert_eq!(none.parse(text), Value::Null);
        // A path that may reach any member: all of it.
        let mut all = BodyNeeds::default();
        all.add_template("{{$..id}}");
        assert_eq!(
            all.parse(text),
            serde_json::from_str::<Value>(text).unwrap()
        );
    }
}
