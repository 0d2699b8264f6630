//! Bounds on what a flow may ask of the engine, so that no flow definition and no delivery can
//! exhaust a pod's stack, memory or CPU. Checked when a flow is saved (422 naming the limit) and
//! again when a stored flow runs (the execution fails with the reason; the process never does).

use serde_json::Value;
use serde_json_path::JsonPath;

/// Characters in one JSONPath (a condition's path or a placeholder's).
pub const MAX_PATH_CHARS: usize = 512;
/// Brackets and parentheses open at once in one JSONPath (filters in filters, function calls in
/// function calls). The parser recurses once per level; a thousand levels overflow its stack.
pub const MAX_PATH_NESTING: usize = 16;
/// `{{...}}` placeholders in one template string.
pub const MAX_PLACEHOLDERS_PER_TEMPLATE: usize = 32;
/// JSONPath placeholders evaluated for one action (URL or path, query, headers and body).
pub const MAX_PLACEHOLDERS_PER_ACTION: usize = 64;
/// Characters in one template string.
pub const MAX_TEMPLATE_CHARS: usize = 16 * 1024;
/// An action's body template, as JSON text.
pub const MAX_BODY_TEMPLATE_BYTES: usize = 64 * 1024;
/// Nesting of an action's body template.
pub const MAX_BODY_TEMPLATE_DEPTH: usize = 32;
/// Bytes one action's rendered request may hold (path, query, headers and body together).
pub const MAX_RENDERED_BYTES: usize = 1024 * 1024;

/// Why a JSONPath was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("{0} characters long; the limit is {MAX_PATH_CHARS}")]
    TooLong(usize),
    #[error("nested {0} deep; the limit is {MAX_PATH_NESTING}")]
    TooDeep(usize),
    #[error("not a JSONPath: {0}")]
    Invalid(String),
}

/// How deeply brackets and parentheses nest in `text`, outside string literals.
fn nesting(text: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in text.chars() {
        if let Some(q) = quote {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                c if c == q => quote = None,
                _ => {}
            }
            continue;
        }
        match c {
            '\'' | '"' => quote = Some(c),
            '[' | '(' => {
                depth += 1;
                max = max.max(depth);
            }
            ']' | ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Parses a JSONPath after checking its length and nesting, so the parser never meets input
/// that could overflow its stack.
pub fn parse_path(text: &str) -> Result<JsonPath, PathError> {
    let chars = text.chars().count();
    if chars > MAX_PATH_CHARS {
        return Err(PathError::TooLong(chars));
    }
    let depth = nesting(text);
    if depth > MAX_PATH_NESTING {
        return Err(PathError::TooDeep(depth));
    }
    JsonPath::parse(text).map_err(|e| PathError::Invalid(e.to_string()))
}

/// How deeply a JSON value nests (a scalar is 0), counting no further than `limit + 1`.
pub fn json_depth(v: &Value, limit: usize) -> usize {
    fn walk(v: &Value, depth: usize, limit: usize) -> usize {
        if depth > limit {
            return depth;
        }
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(a) => Box::new(a.iter()),
            Value::Object(m) => Box::new(m.values()),
            _ => return depth,
        };
        children
            .map(|c| walk(c, depth + 1, limit))
            .max()
            .unwrap_or(depth + 1)
    }
    walk(v, 0, limit)
}

/// The size of `v` as JSON text, counting no further than `limit + 1` bytes (so a huge value
/// costs no more to measure than the budget it would exceed).
pub fn json_size(v: &Value, limit: usize) -> usize {
    fn walk(v: &Value, size: &mut usize, limit: usize) {
        if *size > limit {
            return;
        }
        match v {
            Value::Null => *size += 4,
            Value::Bool(b) => *size += if *b { 4 } else { 5 },
            Value::Number(n) => *size += n.to_string().len(),
            Value::String(s) => *size += s.len() + 2,
            Value::Array(a) => {
                *size += 2 + a.len().saturating_sub(1);
                for i in a {
                    walk(i, size, limit);
                }
            }
            Value::Object(m) => {
                *size += 2 + m.len().saturating_sub(1);
                for (k, i) in m {
                    *size += k.len() + 3;
                    walk(i, size, limit);
                }
            }
        }
    }
    let mut size = 0;
    walk(v, &mut size, limit);
    size.min(limit + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deep_paths_are_refused_before_the_parser_sees_them() {
        let deep = format!("$[?{}@.a{}]", "(".repeat(1000), ")".repeat(1000));
        assert_eq!(
            parse_path(&deep).unwrap_err(),
            PathError::TooLong(deep.len())
        );
        let deep = format!("$[?{}@.a{}]", "(".repeat(200), ")".repeat(200));
        assert_eq!(parse_path(&deep).unwrap_err(), PathError::TooDeep(201));
        let filters = format!("${}", "[?@".repeat(40)) + &"]".repeat(40);
        assert_eq!(parse_path(&filters).unwrap_err(), PathError::TooDeep(40));
        // Brackets inside string literals do not count.
        assert!(parse_path("$['[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[']").is_ok());
        assert!(parse_path("$.project.name").is_ok());
        assert!(matches!(parse_path("$["), Err(PathError::Invalid(_))));
    }

    #[test]
    fn the_deepest_path_allowed_parses_on_a_small_stack() {
        // At the limit, on a stack far smaller than a worker thread's 2 MiB.
        let at_limit = format!(
            "$[?{}@.a == 1{}]",
            "(".repeat(MAX_PATH_NESTING - 1),
            ")".repeat(MAX_PATH_NESTING - 1)
        );
        let parsed = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || parse_path(&at_limit).map(|_| ()))
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(parsed, Ok(()));
    }

    #[test]
    fn sizes_and_depths_are_exact_or_capped() {
        let v = json!({"a": [1, true, null, "x"], "b": {"c": 2.5}});
        assert_eq!(
            json_size(&v, 1000),
            serde_json::to_string(&v).unwrap().len()
        );
        assert_eq!(json_size(&v, 5), 6);
        assert_eq!(json_depth(&v, 10), 2);
        assert_eq!(json_depth(&json!(1), 10), 0);
        let mut deep = json!(1);
        for _ in 0..100 {
            deep = json!([deep]);
        }
        assert_eq!(json_depth(&deep, 10), 11);
    }
}
