//! The API explorer's catalogue: every operation of Clockify's API, generated from its OpenAPI
//! document (`clockify-addons explorer-catalog`, see scripts/generate.sh) into
//! `catalog/clockify-api.json` and compiled into the binary. Each operation keeps what a form
//! needs: its tag, path and query parameters (with their schemas, enums and examples), and its
//! body's schema, whose `$ref`s point into the catalogue's own `schemas` (only those a body
//! reaches). Which of Clockify's APIs serves it (the main one, reports or time off) comes from
//! the document's servers.
//!
//! The curated catalogue in [`crate::catalog`] stays what bootstrap walks.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clockify::{ApiRequest, FormField};
use crate::flows::template::encode_segment;

/// Which of Clockify's APIs serves an operation; each has its own base URL, named in the user's
/// token (`backendUrl`, `reportsUrl`, `ptoUrl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiBase {
    Api,
    Reports,
    Pto,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamIn {
    Path,
    Query,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Param {
    pub name: String,
    #[serde(rename = "in")]
    pub location: ParamIn,
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The parameter's JSON Schema (type, enum, format, default, items).
    pub schema: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Body {
    /// `application/json`, or `multipart/form-data` for uploads.
    pub content_type: String,
    pub required: bool,
    /// JSON Schema; `$ref`s are `#/schemas/<name>`.
    pub schema: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiOperation {
    /// Clockify's operationId.
    pub id: String,
    pub tag: String,
    pub method: String,
    pub path: String,
    pub api: ApiBase,
    pub summary: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deprecated: bool,
    /// Changes workspace data (every method but GET, except the reports that are POSTed).
    pub write: bool,
    /// Takes `page` and `page-size`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paginated: bool,
    pub params: Vec<Param>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Body>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiCatalog {
    /// The document it was generated from: title, version, SHA-256.
    pub source: BTreeMap<String, String>,
    pub operations: Vec<ApiOperation>,
    /// The component schemas the bodies reach.
    pub schemas: BTreeMap<String, Value>,
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];
const MULTIPART: &str = "multipart/form-data";

/// The largest file the explorer uploads (within the 1 MB request once in base64).
pub const MAX_UPLOAD_BYTES: usize = 700 * 1024;

/// A file for an upload's `format: binary` field, as the console sends it: read in the browser
/// and carried in the JSON request, then sent to Clockify as a file part.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Upload {
    pub filename: String,
    /// Defaults to `application/octet-stream`.
    #[serde(default)]
    pub content_type: Option<String>,
    /// The file's bytes, standard base64.
    pub base64: String,
}

impl Upload {
    fn decode(name: &str, value: Value) -> Result<FormField, String> {
        use base64::Engine as _;
        let upload: Upload = serde_json::from_value(value).map_err(|e| {
            format!("{name}: a file: {{\"filename\", \"contentType\", \"base64\"}} ({e})")
        })?;
        let filename = upload.filename.trim();
        if filename.is_empty()
            || filename.len() > 255
            || filename.contains(['/', '\\', '"', '\r', '\n'])
        {
            return Err(format!(
                "{name}: a file name of 1-255 characters without / \\ \" or line breaks"
            ));
        }
        let content_type = upload
            .content_type
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| "application/octet-stream".to_owned());
        if content_type
            .parse::<reqwest::header::HeaderValue>()
            .is_err()
            || !content_type.contains('/')
            || content_type.len() > 127
        {
            return Err(format!("{name}: {content_type:?} is not a media type"));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(upload.base64.trim())
            .map_err(|e| format!("{name}: the file's base64 does not decode ({e})"))?;
        if bytes.len() > MAX_UPLOAD_BYTES {
            return Err(format!(
                "{name}: {} bytes; the explorer uploads files of at most {} KiB",
                bytes.len(),
                MAX_UPLOAD_BYTES / 1024
            ));
        }
        Ok(FormField::File {
            name: name.to_owned(),
            filename: filename.to_owned(),
            content_type,
            bytes: bytes.into(),
        })
    }
}

/// A body schema with its `$ref` (`#/schemas/X`) followed into the catalogue.
fn resolve_ref(schema: &Value) -> Value {
    match schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/schemas/"))
    {
        Some(name) => api_catalog()
            .schemas
            .get(name)
            .cloned()
            .unwrap_or(Value::Null),
        None => schema.clone(),
    }
}
const COMPONENTS: &str = "#/components/schemas/";

/// `#/components/schemas/X` -> `#/schemas/X`, collecting X.
fn rewrite(v: &Value, refs: &mut BTreeSet<String>) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| {
                    let x = match (k.as_str(), x.as_str()) {
                        ("$ref", Some(r)) if r.starts_with(COMPONENTS) => {
                            let name = &r[COMPONENTS.len()..];
                            refs.insert(name.to_owned());
                            Value::String(format!("#/schemas/{name}"))
                        }
                        _ => rewrite(x, refs),
                    };
                    (k.clone(), x)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|x| rewrite(x, refs)).collect()),
        other => other.clone(),
    }
}

fn text(v: &Value) -> Option<String> {
    v.as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn api_of(servers: &Value) -> ApiBase {
    let url = servers[0]["url"].as_str().unwrap_or_default();
    if url.contains("reports") {
        ApiBase::Reports
    } else if url.contains("localhost:5050") || url.contains("pto") {
        // The document names the time-off service by its development address.
        ApiBase::Pto
    } else {
        ApiBase::Api
    }
}

/// The catalogue of `doc` (Clockify's OpenAPI document), with `sha256` its digest.
pub fn generate(doc: &Value, sha256: &str) -> Result<ApiCatalog, String> {
    let paths = doc["paths"]
        .as_object()
        .ok_or("the document has no paths")?;
    let components = &doc["components"]["schemas"];
    let mut operations = Vec::new();
    let mut refs = BTreeSet::new();
    for (path, item) in paths {
        let api = api_of(&item["servers"]);
        for method in METHODS {
            let Some(o) = item.get(method) else { continue };
            let id = text(&o["operationId"])
                .ok_or_else(|| format!("{method} {path} has no operationId"))?;
            let tag = o["tags"][0].as_str().unwrap_or("Other").to_owned();
            let mut params = Vec::new();
            for p in o["parameters"].as_array().into_iter().flatten() {
                let location = match p["in"].as_str() {
                    Some("path") => ParamIn::Path,
                    Some("query") => ParamIn::Query,
                    other => return Err(format!("{id}: parameter in {other:?} is not supported")),
                };
                let schema = rewrite(&p["schema"], &mut refs);
                params.push(Param {
                    name: text(&p["name"]).ok_or_else(|| format!("{id}: a nameless parameter"))?,
                    location,
                    required: location == ParamIn::Path || p["required"] == true,
                    description: text(&p["description"]).or_else(|| text(&schema["description"])),
                    example: p.get("example").or_else(|| schema.get("example")).cloned(),
                    schema,
                });
            }
            let body = match o["requestBody"]["content"].as_object() {
                Some(content) => {
                    let (content_type, media) = content
                        .iter()
                        .next()
                        .ok_or_else(|| format!("{id}: a request body without content"))?;
                    Some(Body {
                        content_type: content_type.clone(),
                        required: o["requestBody"]["required"] == true,
                        schema: rewrite(&media["schema"], &mut refs),
                    })
                }
                None => None,
            };
            let paginated = params.iter().any(|p| p.name == "page");
            let write = method != "get" && !(api == ApiBase::Reports && path.contains("/reports/"));
            operations.push(ApiOperation {
                id,
                deprecated: o["deprecated"] == true || tag.contains("(Deprecated)"),
                tag,
                method: method.to_ascii_uppercase(),
                path: path.clone(),
                api,
                summary: text(&o["summary"]).unwrap_or_default(),
                description: text(&o["description"]),
                write,
                paginated,
                params,
                body,
            });
        }
    }
    // Every schema the bodies and parameters reach, transitively.
    let mut schemas = BTreeMap::new();
    let mut todo: Vec<String> = refs.into_iter().collect();
    while let Some(name) = todo.pop() {
        if schemas.contains_key(&name) {
            continue;
        }
        let raw = components
            .get(&name)
            .ok_or_else(|| format!("schema {name} is referenced but not defined"))?;
        let mut more = BTreeSet::new();
        schemas.insert(name, rewrite(raw, &mut more));
        todo.extend(more.into_iter().filter(|n| !schemas.contains_key(n)));
    }
    let mut seen = BTreeSet::new();
    for o in &operations {
        if !seen.insert(o.id.clone()) {
            return Err(format!("operationId {} is used twice", o.id));
        }
    }
    let method_order = |m: &str| METHODS.iter().position(|x| x.eq_ignore_ascii_case(m));
    operations.sort_by(|a, b| {
        (a.deprecated, &a.tag, &a.path, method_order(&a.method)).cmp(&(
            b.deprecated,
            &b.tag,
            &b.path,
            method_order(&b.method),
        ))
    });
    let source = BTreeMap::from([
        (
            "title".to_owned(),
            doc["info"]["title"].as_str().unwrap_or_default().to_owned(),
        ),
        (
            "version".to_owned(),
            doc["info"]["version"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        ),
        (
            "openapi".to_owned(),
            doc["openapi"].as_str().unwrap_or_default().to_owned(),
        ),
        ("sha256".to_owned(), sha256.to_owned()),
    ]);
    Ok(ApiCatalog {
        source,
        operations,
        schemas,
    })
}

/// Where the catalogue is committed, from the repository's root.
pub const CATALOG_PATH: &str = "services/addon-core/catalog/clockify-api.json";

/// The committed text of the catalogue generated from the OpenAPI document at `path`.
pub fn generate_file(path: &std::path::Path) -> Result<String, String> {
    use sha2::Digest as _;
    let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let doc: Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
    let sha = hex::encode(sha2::Sha256::digest(&bytes));
    generate(&doc, &sha).map(|c| render(&c))
}

/// Where the webhook events' fields are committed, from the repository's root.
pub const EVENTS_PATH: &str = "services/addon-core/catalog/webhook-events.json";

/// One Clockify webhook event and the fields its body carries, for the flow builder's
/// conditions and templates: JSONPaths with their JSON types, arrays as `[*]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventFields {
    pub event: String,
    pub fields: Vec<FieldPath>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FieldPath {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn walk(v: &Value, path: String, depth: usize, out: &mut BTreeMap<String, String>) {
    if depth > 0 {
        let kind = json_type(v).to_owned();
        out.entry(path.clone())
            .and_modify(|k| {
                if k == "null" {
                    k.clone_from(&kind);
                }
            })
            .or_insert(kind);
    }
    if depth >= 6 {
        return;
    }
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let key = if k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    format!("{path}.{k}")
                } else {
                    format!("{path}['{}']", k.replace('\'', "\\'"))
                };
                walk(x, key, depth + 1, out);
            }
        }
        Value::Array(items) => {
            for x in items {
                walk(x, format!("{path}[*]"), depth + 1, out);
            }
        }
        _ => {}
    }
}

/// The fields of every event, from a directory of sample bodies (`<EVENT>.json`).
pub fn generate_events(dir: &std::path::Path) -> Result<String, String> {
    let mut events = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    for f in files {
        let event = f
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        let body: Value = serde_json::from_slice(
            &std::fs::read(&f).map_err(|e| format!("reading {}: {e}", f.display()))?,
        )
        .map_err(|e| format!("{} is not JSON: {e}", f.display()))?;
        let mut out = BTreeMap::new();
        walk(&body, "$".to_owned(), 0, &mut out);
        events.push(EventFields {
            event,
            fields: out
                .into_iter()
                .map(|(path, kind)| FieldPath { path, kind })
                .collect(),
        });
    }
    let mut s = serde_json::to_string_pretty(&serde_json::json!({ "events": events }))
        .map_err(|e| e.to_string())?;
    s.push('\n');
    Ok(s)
}

/// The events' fields compiled into the binary.
pub fn event_fields() -> &'static [EventFields] {
    #[derive(Deserialize)]
    struct File {
        events: Vec<EventFields>,
    }
    static EVENTS: OnceLock<Vec<EventFields>> = OnceLock::new();
    EVENTS.get_or_init(|| {
        serde_json::from_str::<File>(include_str!("../catalog/webhook-events.json"))
            .map(|f| f.events)
            .expect("the embedded webhook events parse (tested)")
    })
}

/// The catalogue as committed: pretty JSON with a trailing newline.
pub fn render(c: &ApiCatalog) -> String {
    let mut s = serde_json::to_string_pretty(c).unwrap_or_default();
    s.push('\n');
    s
}

/// The catalogue compiled into the binary.
pub fn api_catalog() -> &'static ApiCatalog {
    static CATALOG: OnceLock<ApiCatalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        serde_json::from_str(include_str!("../catalog/clockify-api.json"))
            .expect("the embedded explorer catalogue parses (tested)")
    })
}

impl ApiCatalog {
    pub fn get(&self, id: &str) -> Option<&ApiOperation> {
        self.operations.iter().find(|o| o.id == id)
    }
}

/// A query or path value as text.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl ApiOperation {
    /// Whether the explorer can send it: JSON bodies, and `multipart/form-data` uploads (their
    /// files come in the JSON request as [`Upload`]s).
    pub fn runnable(&self) -> Result<(), String> {
        match &self.body {
            Some(b) if b.content_type != "application/json" && b.content_type != MULTIPART => {
                Err(format!(
                    "{} takes a {} body, which the explorer cannot send",
                    self.id, b.content_type
                ))
            }
            _ => Ok(()),
        }
    }

    /// An upload's fields as a `multipart/form-data` form: files from [`Upload`]s (the fields
    /// whose schema is `format: binary`), lists as repeated fields, other values as text.
    fn form(&self, schema: &Value, body: Value, problems: &mut Vec<String>) -> Vec<FormField> {
        let schema = resolve_ref(schema);
        let properties = schema["properties"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let Value::Object(fields) = body else {
            problems.push(format!(
                "{}: the body is a form: an object of its fields",
                self.id
            ));
            return Vec::new();
        };
        for required in schema["required"].as_array().into_iter().flatten() {
            if let Some(name) = required.as_str()
                && fields.get(name).is_none_or(Value::is_null)
            {
                problems.push(format!("{name} is required"));
            }
        }
        let mut form = Vec::new();
        for (name, value) in fields {
            let Some(field) = properties.get(&name) else {
                problems.push(format!("{name} is not a field of {}", self.id));
                continue;
            };
            if field["format"] == "binary" {
                match Upload::decode(&name, value) {
                    Ok(file) => form.push(file),
                    Err(why) => problems.push(why),
                }
                continue;
            }
            let values: Vec<String> = match &value {
                Value::Null => continue,
                Value::Array(items) => items.iter().filter_map(scalar).collect(),
                other => scalar(other).into_iter().collect(),
            };
            if values.is_empty() && !value.is_array() {
                problems.push(format!(
                    "{name}: a text, number, true/false or a list of them"
                ));
            }
            form.extend(values.into_iter().map(|value| FormField::Text {
                name: name.clone(),
                value,
            }));
        }
        form
    }

    /// The request for the caller's workspace: `workspaceId` always comes from the token;
    /// every other path parameter must be given, required query parameters too, unknown ones
    /// and values outside a parameter's enum are refused.
    pub fn request(
        &self,
        workspace_id: &str,
        params: &BTreeMap<String, Value>,
        query: &BTreeMap<String, Value>,
        body: Option<Value>,
    ) -> Result<ApiRequest, Vec<String>> {
        let mut problems = Vec::new();
        let mut path = self.path.clone();
        let mut query_out = Vec::new();
        for p in &self.params {
            let given = match p.location {
                ParamIn::Path if p.name == "workspaceId" => {
                    Some(Value::String(workspace_id.to_owned()))
                }
                ParamIn::Path => params.get(&p.name).cloned(),
                ParamIn::Query => query.get(&p.name).cloned(),
            }
            .filter(|v| !v.is_null() && v.as_str() != Some(""));
            let Some(v) = given else {
                if p.required {
                    problems.push(format!("{} is required", p.name));
                }
                continue;
            };
            let values: Vec<String> = match &v {
                Value::Array(items) if p.location == ParamIn::Query => {
                    items.iter().filter_map(scalar).collect()
                }
                other => scalar(other).into_iter().collect(),
            };
            if values.is_empty() {
                problems.push(format!("{}: a text, number or true/false", p.name));
                continue;
            }
            let allowed = p.schema["enum"]
                .as_array()
                .or_else(|| p.schema["items"]["enum"].as_array());
            if let Some(allowed) = allowed {
                for value in &values {
                    if !allowed.iter().any(|a| scalar(a).as_deref() == Some(value)) {
                        problems.push(format!(
                            "{}: {value:?} is not one of {}",
                            p.name,
                            allowed
                                .iter()
                                .filter_map(scalar)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                }
            }
            match p.location {
                ParamIn::Path => {
                    path = path.replace(&format!("{{{}}}", p.name), &encode_segment(&values[0]))
                }
                ParamIn::Query => {
                    query_out.extend(values.into_iter().map(|v| (p.name.clone(), v)));
                }
            }
        }
        for name in params.keys() {
            if !self
                .params
                .iter()
                .any(|p| p.location == ParamIn::Path && &p.name == name)
            {
                problems.push(format!("{name} is not a path parameter of {}", self.id));
            }
        }
        for name in query.keys() {
            if !self
                .params
                .iter()
                .any(|p| p.location == ParamIn::Query && &p.name == name)
            {
                problems.push(format!("{name} is not a query parameter of {}", self.id));
            }
        }
        let mut form = None;
        let body = match (&self.body, body) {
            (None, Some(_)) => {
                problems.push(format!("{} takes no body", self.id));
                None
            }
            (Some(b), None) if b.required => {
                problems.push(format!("{} needs a body", self.id));
                None
            }
            (Some(b), Some(fields)) if b.content_type == MULTIPART => {
                form = Some(self.form(&b.schema, fields, &mut problems));
                None
            }
            (_, body) => body,
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        let method = reqwest::Method::from_bytes(self.method.as_bytes())
            .map_err(|_| vec![format!("bad method {}", self.method)])?;
        Ok(ApiRequest {
            method,
            path,
            query: query_out,
            body,
            form,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shared_openapi() -> Option<std::path::PathBuf> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/clockify/clockify-api-v1.openapi.json");
        if path.exists() {
            Some(path)
        } else {
            eprintln!("skipped: {} is absent", path.display());
            None
        }
    }

    #[test]
    fn the_committed_catalogue_is_generated_from_clockifys_document() {
        let Some(path) = shared_openapi() else { return };
        let fresh = generate_file(&path).unwrap();
        let committed = include_str!("../catalog/clockify-api.json");
        assert!(
            fresh == committed,
            "{CATALOG_PATH} is stale: run ./scripts/generate.sh"
        );
    }

    #[test]
    fn the_committed_event_fields_come_from_clockifys_samples() {
        let Some(openapi) = shared_openapi() else {
            return;
        };
        let dir = openapi.parent().unwrap().join("webhook-samples");
        let fresh = generate_events(&dir).unwrap();
        assert!(
            fresh == include_str!("../catalog/webhook-events.json"),
            "{EVENTS_PATH} is stale: run ./scripts/generate.sh"
        );
    }

    #[test]
    fn every_event_offers_its_fields() {
        let events = event_fields();
        assert_eq!(events.len(), 49);
        let entry = events.iter().find(|e| e.event == "NEW_TIME_ENTRY").unwrap();
        let paths: Vec<&str> = entry.fields.iter().map(|f| f.path.as_str()).collect();
        for p in [
            "$.id",
            "$.billable",
            "$.timeInterval.start",
            "$.tags[*].name",
        ] {
            assert!(paths.contains(&p), "{p} in {paths:?}");
        }
        // Every path is one the engine accepts.
        for e in events {
            for f in &e.fields {
                crate::flows::limits::parse_path(&f.path)
                    .unwrap_or_else(|err| panic!("{} {}: {err}", e.event, f.path));
            }
        }
    }

    #[test]
    fn every_operation_of_clockifys_api_is_offered() {
        let c = api_catalog();
        assert_eq!(c.operations.len(), 170);
        let count = |api| c.operations.iter().filter(|o| o.api == api).count();
        assert_eq!(
            (
                count(ApiBase::Api),
                count(ApiBase::Reports),
                count(ApiBase::Pto)
            ),
            (146, 10, 14)
        );
        // Every reference resolves inside the catalogue.
        let text = serde_json::to_string(c).unwrap();
        for piece in text.split("\"$ref\":\"#/schemas/").skip(1) {
            let name = piece.split('"').next().unwrap();
            assert!(c.schemas.contains_key(name), "{name} is not in schemas");
        }
        assert!(!text.contains("#/components/"));
        let tags: BTreeSet<&str> = c.operations.iter().map(|o| o.tag.as_str()).collect();
        assert!(
            tags.contains("Time entry") && tags.contains("Invoice"),
            "{tags:?}"
        );
        // Deprecated ones come last.
        let first_deprecated = c.operations.iter().position(|o| o.deprecated).unwrap();
        assert!(
            c.operations[first_deprecated..]
                .iter()
                .all(|o| o.deprecated)
        );
        // Reports are POSTed but change nothing; shared reports do.
        assert!(!c.get("generateDetailedReport").unwrap().write);
        assert!(c.get("saveSharedReportV1").unwrap().write);
        assert!(!c.get("getTags").unwrap().write);
        // Every operation can be run, uploads included.
        for op in &c.operations {
            assert!(op.runnable().is_ok(), "{}", op.id);
        }
    }

    #[test]
    fn an_upload_becomes_a_form_with_its_file_and_fields() {
        use base64::Engine as _;
        let c = api_catalog();
        let op = c.get("createExpense").unwrap();
        let receipt = base64::engine::general_purpose::STANDARD.encode(b"%PDF-1.4 receipt");
        let req = op
            .request(
                "ws1",
                &BTreeMap::new(),
                &BTreeMap::new(),
                Some(json!({
                    "amount": 99.5, "billable": true, "categoryId": "c1",
                    "date": "2026-12-01T00:00:00Z", "projectId": "p1", "userId": "u1",
                    "file": {"filename": "receipt.pdf", "contentType": "application/pdf", "base64": receipt},
                })),
            )
            .unwrap();
        assert_eq!(req.path, "/v1/workspaces/ws1/expenses");
        assert!(req.body.is_none());
        let form = req.form.unwrap();
        assert!(form.iter().any(|f| matches!(f,
            FormField::File { name, filename, content_type, bytes }
                if name == "file" && filename == "receipt.pdf" && content_type == "application/pdf"
                    && &bytes[..] == b"%PDF-1.4 receipt")));
        assert!(form.iter().any(|f| matches!(f,
            FormField::Text { name, value } if name == "amount" && value == "99.5")));
        assert!(form.iter().any(|f| matches!(f,
            FormField::Text { name, value } if name == "billable" && value == "true")));
        // Lists are repeated fields.
        let update = c.get("updateExpense").unwrap();
        let req = update
            .request(
                "ws1",
                &BTreeMap::from([("expenseId".to_owned(), json!("e1"))]),
                &BTreeMap::new(),
                Some(
                    json!({"amount": 1, "categoryId": "c", "date": "2026-12-01T00:00:00Z",
                    "userId": "u1", "changeFields": ["AMOUNT", "NOTES"],
                    "file": {"filename": "r.png", "base64": "iVBORw=="}}),
                ),
            )
            .unwrap();
        let changes: Vec<_> = req
            .form
            .unwrap()
            .into_iter()
            .filter_map(|f| match f {
                FormField::Text { name, value } if name == "changeFields" => Some(value),
                _ => None,
            })
            .collect();
        assert_eq!(changes, ["AMOUNT", "NOTES"]);
        // Every problem at once: a missing file, an unknown field, a file that is not base64,
        // one too large.
        let problems = op
            .request(
                "ws1",
                &BTreeMap::new(),
                &BTreeMap::new(),
                Some(json!({"colour": "red"})),
            )
            .unwrap_err();
        assert!(
            problems.iter().any(|p| p == "file is required"),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("colour is not a field")),
            "{problems:?}"
        );
        let image = c.get("uploadImage").unwrap();
        for (file, why) in [
            (
                json!({"filename": "a.png", "base64": "***"}),
                "does not decode",
            ),
            (json!("a.png"), "a file"),
            (json!({"filename": "../a.png", "base64": ""}), "file name"),
            (
                json!({"filename": "a.png", "base64": base64::engine::general_purpose::STANDARD.encode(vec![0u8; MAX_UPLOAD_BYTES + 1])}),
                "at most",
            ),
        ] {
            let problems = image
                .request(
                    "ws1",
                    &BTreeMap::new(),
                    &BTreeMap::new(),
                    Some(json!({"file": file})),
                )
                .unwrap_err();
            assert!(
                problems.iter().any(|p| p.contains(why)),
                "{why}: {problems:?}"
            );
        }
    }

    #[test]
    fn a_request_is_built_for_the_callers_workspace_and_checked() {
        let c = api_catalog();
        let op = c.get("getProject").unwrap();
        let req = op
            .request(
                "mine",
                &BTreeMap::from([("projectId".to_owned(), json!("p/1"))]),
                &BTreeMap::from([("hydrated".to_owned(), json!(true))]),
                None,
            )
            .unwrap();
        assert_eq!(req.path, "/v1/workspaces/mine/projects/p%2F1");
        assert_eq!(req.query, [("hydrated".to_owned(), "true".to_owned())]);
        // The workspace is the caller's, whatever is sent.
        let req = c
            .get("getTags")
            .unwrap()
            .request(
                "mine",
                &BTreeMap::new(),
                &BTreeMap::from([("page".to_owned(), json!(2))]),
                None,
            )
            .unwrap();
        assert_eq!(req.path, "/v1/workspaces/mine/tags");
        assert_eq!(req.query, [("page".to_owned(), "2".to_owned())]);

        let problems = op
            .request(
                "mine",
                &BTreeMap::from([("nope".to_owned(), json!("x"))]),
                &BTreeMap::from([("colour".to_owned(), json!("x"))]),
                Some(json!({})),
            )
            .unwrap_err();
        assert_eq!(
            problems,
            [
                "projectId is required",
                "nope is not a path parameter of getProject",
                "colour is not a query parameter of getProject",
                "getProject takes no body",
            ]
        );
        let problems = c
            .get("getTags")
            .unwrap()
            .request(
                "mine",
                &BTreeMap::new(),
                &BTreeMap::from([("sort-order".to_owned(), json!("SIDEWAYS"))]),
                None,
            )
            .unwrap_err();
        assert!(
            problems[0].starts_with("sort-order: \"SIDEWAYS\" is not one of ASCENDING"),
            "{problems:?}"
        );
        let problems = c
            .get("createNewTag")
            .unwrap()
            .request("mine", &BTreeMap::new(), &BTreeMap::new(), None)
            .unwrap_err();
        assert_eq!(problems, ["createNewTag needs a body"]);
    }

    #[test]
    fn references_are_kept_and_collected_transitively() {
        let doc = json!({
            "openapi": "3.0.1", "info": {"title": "T", "version": "v1"},
            "paths": {"/v1/workspaces/{workspaceId}/things": {
                "servers": [{"url": "https://reports.api.clockify.me"}],
                "post": {"operationId": "makeThing", "tags": ["Thing"], "summary": "Make",
                    "parameters": [{"name": "workspaceId", "in": "path", "required": true, "schema": {"type": "string"}}],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/A"}}}}}}},
            "components": {"schemas": {
                "A": {"type": "object", "properties": {"b": {"$ref": "#/components/schemas/B"}}},
                "B": {"type": "string", "enum": ["X"]},
                "Unused": {"type": "string"}}}
        });
        let c = generate(&doc, "abc").unwrap();
        assert_eq!(c.schemas.keys().collect::<Vec<_>>(), ["A", "B"]);
        assert_eq!(c.schemas["A"]["properties"]["b"]["$ref"], "#/schemas/B");
        let op = &c.operations[0];
        assert_eq!((op.api, op.write), (ApiBase::Reports, true));
        assert_eq!(op.body.as_ref().unwrap().schema["$ref"], "#/schemas/A");
        assert_eq!(c.source["sha256"], "abc");

        let mut broken = doc.clone();
        broken["components"]["schemas"]
            .as_object_mut()
            .unwrap()
            .remove("B");
        assert_eq!(
            generate(&broken, "abc").unwrap_err(),
            "schema B is referenced but not defined"
        );
    }
}
