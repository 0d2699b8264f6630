//! Clockify's published data (`../shared/clockify/`) as tests use it: the manifest schema and
//! the webhook body samples. Each helper returns `None` (after saying so) when it is absent.

use serde_json::Value;

use crate::shared;

/// Every problem of a generated manifest: schema 1.3 violations, and more than the 10
/// webhooks Clockify registers. `None` when the schema is absent.
pub fn manifest_problems(manifest: &Value) -> Option<Vec<String>> {
    let path = shared("manifest-schema-1.3.json")?;
    let text = std::fs::read_to_string(&path).expect("read the manifest schema");
    let schema: Value = serde_json::from_str(&text).expect("the manifest schema parses");
    let validator = jsonschema::validator_for(&schema).expect("the manifest schema compiles");
    let mut problems: Vec<String> = validator
        .iter_errors(manifest)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    let webhooks = manifest["webhooks"].as_array().map_or(0, Vec::len);
    if webhooks > 10 {
        problems.push(format!(
            "{webhooks} webhooks: Clockify registers at most 10"
        ));
    }
    // The schema's enums constrain: an unknown event must be refused, or the check is vacuous.
    let mut bad = manifest.clone();
    bad["webhooks"] = serde_json::json!([{"event": "TIME_ENTRY_CREATED", "path": "/x"}]);
    assert!(
        !validator.is_valid(&bad),
        "the schema accepts unknown events"
    );
    Some(problems)
}

/// One webhook body sample.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The event type (the file's name).
    pub event: String,
    /// The body exactly as stored.
    pub raw: Vec<u8>,
    /// The workspace the body names (`sample-ws` when it names none).
    pub workspace: String,
}

/// The 49 webhook body samples, sorted by event. `None` when absent.
pub fn webhook_samples() -> Option<Vec<Sample>> {
    let dir = shared("webhook-samples")?;
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("read webhook-samples")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let samples: Vec<Sample> = files
        .iter()
        .map(|path| {
            let raw = std::fs::read(path).expect("read a sample");
            let body: Value = serde_json::from_slice(&raw).expect("a sample parses");
            Sample {
                event: path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default()
                    .to_owned(),
                workspace: body
                    .get("workspaceId")
                    .and_then(Value::as_str)
                    .unwrap_or("sample-ws")
                    .to_owned(),
                raw,
            }
        })
        .collect();
    assert_eq!(samples.len(), 49, "Clockify publishes 49 samples");
    Some(samples)
}
