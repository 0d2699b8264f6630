//! The add-ons' own HTTP API, described: an OpenAPI 3.1 document served at `/openapi.json`.
//!
//! Every route is registered with utoipa-axum's [`OpenApiRouter::routes`] from a handler's
//! `#[utoipa::path]` annotation, so a route and its description are one declaration: the path
//! the router serves is the path the document names, and the parameters, bodies and answers
//! come from the handler's own types (`ToSchema` on what it reads and writes). The few routes
//! built at run time (webhook receivers) are registered with [`documented`], which takes the
//! description of a handler-less operation. This module finishes the document with what every
//! route shares: the security schemes, the error body, the tags, and the answers any route can
//! give (a refused token, a malformed body, an overloaded server), each added only where it
//! applies, so the document states every status the service can answer with.

use axum::routing::MethodRouter;
use utoipa::openapi::path::{Operation, Paths};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

use crate::app::AppState;

/// A router whose routes carry their description.
pub type ApiRouter = OpenApiRouter<AppState>;

/// A Clockify user token (the console's session) as `Authorization: Bearer`.
pub const USER_TOKEN: &str = "userToken";
/// The same token as the `auth_token` query parameter (how Clockify opens an add-on's page).
pub const USER_TOKEN_QUERY: &str = "userTokenQuery";
/// The lifecycle token Clockify signs for each lifecycle call.
pub const LIFECYCLE_TOKEN: &str = "lifecycleToken";
/// The webhook token Clockify signs for each webhook delivery.
pub const WEBHOOK_TOKEN: &str = "webhookToken";

/// Tags, in the order the document lists them, with what each groups.
pub const TAGS: &[(&str, &str)] = &[
    (
        "console",
        "The console page inside Clockify and its assets.",
    ),
    (
        "dashboard",
        "What happened in the workspace: counts, hourly activity, bootstrap and cached entities.",
    ),
    (
        "explorer",
        "Clockify's API catalogue and calls to it on the workspace's behalf.",
    ),
    (
        "webhooks log",
        "Deliveries received, newest first, with their bodies.",
    ),
    (
        "flows",
        "Flows: trigger, conditions and ordered actions, with a side-effect-free test run.",
    ),
    (
        "executions",
        "Runs of flows, step by step, and re-running a failed one.",
    ),
    (
        "custom webhooks",
        "Signing secrets of custom sources and the GENERIC_HTTP allowlist.",
    ),
    (
        "settings",
        "The reference add-on's settings page and the workspace's settings.",
    ),
    (
        "api calls",
        "Calls to Clockify's API through the add-on (`/api-call`) and their log.",
    ),
    (
        "lifecycle",
        "Calls Clockify makes when the add-on is installed, changed or deleted.",
    ),
    ("webhooks", "Deliveries Clockify and other senders push."),
    (
        "operations",
        "Manifest, health, readiness, metrics and backlog for the platform.",
    ),
];

/// The body of every error answer.
#[derive(Debug, ToSchema)]
#[schema(as = Error)]
#[allow(dead_code)] // describes what `AppError` writes
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    /// A stable code: `bad_request`, `validation_failed`, `unauthorized`, `forbidden`,
    /// `not_found`, `conflict`, `payload_too_large`, `rate_limited`, `upstream_error`,
    /// `unavailable`, `overloaded`, ...
    #[schema(example = "validation_failed")]
    code: String,
    /// What was wrong, for a person.
    message: String,
    /// Every problem found, for `validation_failed`.
    #[schema(nullable = false)]
    details: Option<Vec<String>>,
}

/// Registers a route built at run time (a webhook receiver, the document itself) under the
/// description of an annotated, never-called operation `P`, at `path` (one description may
/// serve several paths, each customised).
pub fn documented<P>(
    path: &str,
    method_router: MethodRouter<AppState>,
    customise: impl FnOnce(&mut Operation),
) -> UtoipaMethodRouter<AppState>
where
    P: utoipa::Path + utoipa::__dev::SchemaReferences + utoipa::__dev::Tags<'static>,
{
    // As utoipa-axum's `routes!` does: the `tag` of the annotation comes apart from the rest.
    let mut operation = P::operation();
    operation
        .tags
        .get_or_insert_with(Vec::new)
        .extend(P::tags().into_iter().map(str::to_owned));
    customise(&mut operation);
    let mut paths = Paths::new();
    paths.add_path_operation(path, P::methods(), operation);
    let mut schemas = Vec::new();
    P::schemas(&mut schemas);
    (schemas, paths, method_router)
}

/// The description of `/openapi.json` (served by [`crate::app`], which builds the document).
#[utoipa::path(
    get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "This document: OpenAPI 3.1 of every route of the add-on", body = Object))
)]
#[allow(dead_code)] // describes the route `router` serves
pub fn openapi_document() {}

fn error_response(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Error")))
                    .build(),
            )
            .build(),
    )
}

fn has_security(op: &Operation, scheme: &str) -> bool {
    op.security.iter().flatten().any(|requirement| {
        serde_json::to_value(requirement)
            .ok()
            .and_then(|v| v.as_object().map(|o| o.contains_key(scheme)))
            .unwrap_or(false)
    })
}

/// Adds the answers a route shares with others, unless its annotation already states them.
fn shared_answers(op: &mut Operation) {
    let user = has_security(op, USER_TOKEN);
    let token = user || has_security(op, LIFECYCLE_TOKEN) || has_security(op, WEBHOOK_TOKEN);
    let has_params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let has_body = op.request_body.is_some();
    let mut add = |status: &str, description: &str| {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| error_response(description));
    };
    if token {
        add(
            "401",
            "The token is missing, malformed, expired, not Clockify's or of the wrong kind.",
        );
    }
    if user {
        add(
            "403",
            "The add-on is not installed in the token's workspace, or the route needs a workspace owner or admin.",
        );
    }
    if has_body || has_params {
        add(
            "400",
            "A parameter or the body cannot be read (not JSON, wrong type, unknown field).",
        );
    }
    if has_body {
        add("413", "The body is larger than the route's limit.");
    }
    add(
        "503",
        "Overloaded, the request took too long, or the database is unavailable; retry after `Retry-After` seconds.",
    );
}

/// The document of an add-on: what its router collected, finished, as JSON.
pub fn finish(doc: OpenApi, title: &str, description: &str) -> serde_json::Value {
    let mut value = serde_json::to_value(finish_openapi(doc, title, description))
        .unwrap_or(serde_json::Value::Null);
    let components = value
        .pointer("/components/schemas")
        .and_then(serde_json::Value::as_object)
        .cloned()
        .unwrap_or_default();
    merge_flattened(&mut value, &components);
    add_links(&mut value);
    value
}

/// Where the `{id}` of an operation comes from: OpenAPI links, for readers and for stateful
/// testing (schemathesis follows them: create a flow, then read, change and delete it).
const LINKS: &[(&str, &str, &str, &str, &[&str])] = &[
    (
        "/ui/flows",
        "post",
        "201",
        "$response.body#/id",
        &["flow_get", "flow_update", "flow_delete", "flow_executions"],
    ),
    (
        "/ui/webhooks",
        "get",
        "200",
        "$response.body#/items/0/id",
        &["webhook_detail"],
    ),
    (
        "/ui/executions",
        "get",
        "200",
        "$response.body#/items/0/id",
        &["execution_detail", "execution_rerun"],
    ),
];

fn add_links(doc: &mut serde_json::Value) {
    let known: std::collections::BTreeSet<String> = doc["paths"]
        .as_object()
        .into_iter()
        .flat_map(|paths| paths.values())
        .filter_map(serde_json::Value::as_object)
        .flat_map(|item| item.values())
        .filter_map(|op| op.get("operationId").and_then(serde_json::Value::as_str))
        .map(str::to_owned)
        .collect();
    for (path, method, status, source, targets) in LINKS {
        let Some(response) = doc.pointer_mut(&format!(
            "/paths/{}/{method}/responses/{status}",
            path.replace('/', "~1")
        )) else {
            continue;
        };
        for target in targets.iter().filter(|t| known.contains(**t)) {
            response["links"][*target] = serde_json::json!({
                "operationId": target,
                "parameters": {"id": source},
            });
        }
    }
}

/// `#[serde(flatten)]` comes out of utoipa as `allOf` of the parts; where a part forbids other
/// properties (`deny_unknown_fields`), `allOf` would then refuse every instance, since each part
/// is checked alone. Serde's meaning is one object with the parts' properties together, so
/// every `allOf` of object parts becomes that object.
fn merge_flattened(
    value: &mut serde_json::Value,
    components: &serde_json::Map<String, serde_json::Value>,
) {
    use serde_json::Value;
    fn resolve(
        part: &Value,
        components: &serde_json::Map<String, Value>,
        depth: u8,
    ) -> Option<Value> {
        let mut part = match part.get("$ref").and_then(Value::as_str) {
            Some(r) => components
                .get(r.strip_prefix("#/components/schemas/")?)?
                .clone(),
            None => part.clone(),
        };
        if depth < 8 {
            merge_flattened(&mut part, components);
        }
        (part.get("type") == Some(&Value::from("object")) && part.get("properties").is_some())
            .then_some(part)
    }
    if let Some(parts) = value.get("allOf").and_then(Value::as_array) {
        let resolved: Option<Vec<Value>> =
            parts.iter().map(|p| resolve(p, components, 0)).collect();
        if let Some(resolved) = resolved {
            let mut properties = serde_json::Map::new();
            let mut required = Vec::new();
            let mut closed = false;
            for part in &resolved {
                if let Some(p) = part.get("properties").and_then(Value::as_object) {
                    properties.extend(p.clone());
                }
                if let Some(r) = part.get("required").and_then(Value::as_array) {
                    required.extend(r.iter().cloned());
                }
                closed |= part.get("additionalProperties") == Some(&Value::Bool(false));
            }
            let mut merged = serde_json::json!({"type": "object", "properties": properties, "required": required});
            if closed {
                merged["additionalProperties"] = Value::Bool(false);
            }
            if let Some(d) = value.get("description") {
                merged["description"] = d.clone();
            }
            *value = merged;
        }
    }
    match value {
        Value::Object(o) => o.values_mut().for_each(|v| merge_flattened(v, components)),
        Value::Array(a) => a.iter_mut().for_each(|v| merge_flattened(v, components)),
        _ => {}
    }
}

fn finish_openapi(mut doc: OpenApi, title: &str, description: &str) -> OpenApi {
    doc.info = InfoBuilder::new()
        .title(title)
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(description))
        .build();
    // Relative to where the document is served: the add-on's base URL, path prefix included.
    doc.servers = Some(vec![utoipa::openapi::Server::new(".")]);
    let mut components = doc
        .components
        .take()
        .unwrap_or_else(|| ComponentsBuilder::new().build());
    components
        .schemas
        .insert("Error".to_owned(), ErrorBody::schema());
    let mut nested = Vec::new();
    ErrorBody::schemas(&mut nested);
    for (name, schema) in nested {
        components.schemas.entry(name).or_insert(schema);
    }
    components.add_security_scheme(
        USER_TOKEN,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some(
                    "The Clockify user token of the person using the add-on (RS256, signed by Clockify).",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(
        USER_TOKEN_QUERY,
        SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
            "auth_token",
            "The same user token as a query parameter, as Clockify opens an add-on's page.",
        ))),
    );
    components.add_security_scheme(
        LIFECYCLE_TOKEN,
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "X-Addon-Lifecycle-Token",
            "The lifecycle token Clockify signs for the call (`Clockify-Signature` is accepted too).",
        ))),
    );
    components.add_security_scheme(
        WEBHOOK_TOKEN,
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "Clockify-Signature",
            "The webhook token Clockify signs for the delivery; its webhook must be one the add-on registered.",
        ))),
    );
    doc.components = Some(components);
    // One pass over the operations: the answers they share, and the tags in use.
    let mut used = std::collections::BTreeSet::new();
    for item in doc.paths.paths.values_mut() {
        for op in operations_mut(item) {
            shared_answers(op);
            used.extend(op.tags.iter().flatten().cloned());
        }
    }
    doc.tags = Some(
        TAGS.iter()
            .filter(|(name, _)| used.contains(*name))
            .map(|(name, description)| {
                TagBuilder::new()
                    .name(*name)
                    .description(Some(*description))
                    .build()
            })
            .collect(),
    );
    doc
}

/// Every operation of a path item.
fn operations_mut(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
        item.head.as_mut(),
        item.options.as_mut(),
    ]
    .into_iter()
    .flatten()
}
