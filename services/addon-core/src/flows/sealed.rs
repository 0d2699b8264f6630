//! Flow header values are credentials (`Authorization: Bearer ...`): they are encrypted at rest
//! and write-only.
//!
//! - Stored: every header value is `sealed:` and a ciphertext of [`crate::crypto`] bound to
//!   the workspace.
//! - Read through the API: every header value is `{"set": true}`; the value never leaves.
//! - Written: a string sets the value; `{"set": true}` (what a read returned) keeps the value
//!   stored for the same header of the action at the same position; a header left out is
//!   removed.
//! - Executed: the worker opens the values just before the action runs.

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::FlowDefinition;
use crate::crypto::{CryptoError, TokenCipher};

/// The prefix of a stored header value.
pub const SEALED: &str = "sealed:";

/// Encrypts every header value that is not sealed yet.
pub fn seal(
    cipher: &TokenCipher,
    workspace_id: &str,
    def: &mut FlowDefinition,
) -> Result<(), CryptoError> {
    for action in &mut def.actions {
        for value in action.headers.values_mut() {
            if !value.starts_with(SEALED) {
                let enc = cipher.encrypt(workspace_id, &SecretString::from(value.clone()))?;
                *value = format!("{SEALED}{enc}");
            }
        }
    }
    Ok(())
}

/// Whether any header value is sealed (a definition without one runs as stored, uncopied).
pub fn has_sealed(def: &FlowDefinition) -> bool {
    def.actions
        .iter()
        .any(|a| a.headers.values().any(|v| v.starts_with(SEALED)))
}

/// Decrypts every sealed header value (for execution only).
pub fn unseal(
    cipher: &TokenCipher,
    workspace_id: &str,
    def: &mut FlowDefinition,
) -> Result<(), CryptoError> {
    for action in &mut def.actions {
        for value in action.headers.values_mut() {
            if let Some(enc) = value.strip_prefix(SEALED) {
                *value = cipher
                    .decrypt(workspace_id, enc)?
                    .expose_secret()
                    .to_owned();
            }
        }
    }
    Ok(())
}

/// Replaces every header value of a serialized flow (or list of flows) by `{"set": true}`.
pub fn redact(flow: &mut Value) {
    if let Some(actions) = flow.get_mut("actions").and_then(Value::as_array_mut) {
        for action in actions {
            if let Some(headers) = action.get_mut("headers").and_then(Value::as_object_mut) {
                for value in headers.values_mut() {
                    *value = json!({"set": true});
                }
            }
        }
    }
}

/// Resolves a flow written through the API against the stored one: `{"set": true}` keeps the
/// stored sealed value; a string that looks sealed is refused (values are written in clear
/// and sealed here). Problems name the header.
pub fn resolve_input(input: &mut Value, stored: Option<&FlowDefinition>) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(actions) = input.get_mut("actions").and_then(Value::as_array_mut) else {
        return problems;
    };
    for (i, action) in actions.iter_mut().enumerate() {
        let Some(headers) = action.get_mut("headers").and_then(Value::as_object_mut) else {
            continue;
        };
        for (name, value) in headers.iter_mut() {
            match value {
                Value::String(s) if s.starts_with(SEALED) => problems.push(format!(
                    "actions[{i}].headers.{name}: a value may not start with {SEALED:?}"
                )),
                Value::String(_) => {}
                Value::Object(o) if o.len() == 1 && o.get("set") == Some(&Value::Bool(true)) => {
                    let kept = stored
                        .and_then(|d| d.actions.get(i))
                        .and_then(|a| a.headers.get(name.as_str()));
                    match kept {
                        Some(sealed) => *value = Value::String(sealed.clone()),
                        None => problems.push(format!(
                            "actions[{i}].headers.{name}: {{\"set\": true}} keeps a stored value, but action {i} has no header {name} stored; send the value"
                        )),
                    }
                }
                _ => problems.push(format!(
                    "actions[{i}].headers.{name}: expected a string (the value) or {{\"set\": true}} (keep the stored value)"
                )),
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(headers: &[(&str, &str)]) -> FlowDefinition {
        serde_json::from_value(json!({
            "name": "f", "triggerEvents": ["NEW_TAG"],
            "actions": [{"type": "GENERIC_HTTP", "method": "POST", "url": "https://x.example/h",
                "headers": headers.iter().cloned().collect::<std::collections::BTreeMap<_, _>>()}]
        }))
        .unwrap()
    }

    #[test]
    fn sealed_at_rest_redacted_on_read_kept_on_write() {
        let cipher = TokenCipher::ephemeral();
        let mut d = def(&[("Authorization", "Bearer s3cret"), ("X-Id", "{{$.id}}")]);
        seal(&cipher, "ws1", &mut d).unwrap();
        let stored = serde_json::to_string(&d).unwrap();
        assert!(!stored.contains("s3cret"), "{stored}");
        assert!(d.actions[0].headers["Authorization"].starts_with(SEALED));
        // Sealing twice does not wrap twice.
        let again = d.clone();
        seal(&cipher, "ws1", &mut d).unwrap();
        assert_eq!(again, d);

        let mut shown = serde_json::to_value(&d).unwrap();
        redact(&mut shown);
        assert_eq!(
            shown["actions"][0]["headers"]["Authorization"],
            json!({"set": true})
        );

        // The read, sent back with one value changed, keeps the other.
        shown["actions"][0]["headers"]["X-Id"] = json!("{{$.name}}");
        assert!(resolve_input(&mut shown, Some(&d)).is_empty());
        let mut written: FlowDefinition = serde_json::from_value(shown).unwrap();
        seal(&cipher, "ws1", &mut written).unwrap();
        unseal(&cipher, "ws1", &mut written).unwrap();
        assert_eq!(written.actions[0].headers["Authorization"], "Bearer s3cret");
        assert_eq!(written.actions[0].headers["X-Id"], "{{$.name}}");
        // Another workspace cannot open them.
        let mut other = d.clone();
        assert!(unseal(&cipher, "ws2", &mut other).is_err());
    }

    #[test]
    fn bad_inputs_name_the_header() {
        let mut v =
            json!({"actions": [{"headers": {"A": {"set": true}, "B": "sealed:x", "C": 5}}]});
        let problems = resolve_input(&mut v, None);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("actions[0].headers.A"), "{problems:?}");
    }
}
