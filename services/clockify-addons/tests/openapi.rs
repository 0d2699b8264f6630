//! The add-ons' own API document (`/openapi.json`): every route is in it, every operation in it
//! is served, answers as it says, and asks for the credentials it names. (The schemathesis run,
//! `scripts/api-fuzz.sh`, then throws generated requests at it.)
#![cfg(test)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use addon_core::addon::AddonDefinition;
use addon_core::auth::TokenKind;
use addon_testkit::{Backend, TestApp, json_of};
use reqwest::Method;
use serde_json::Value;

const ADDONS: &[&AddonDefinition] = &[
    &api_studio::DEFINITION,
    &universal_webhook::DEFINITION,
    &reference::DEFINITION,
];

fn services_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("services/")
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A route can only be added to an add-on through `ApiRouter::routes`, which takes its
/// description with it: no source of an add-on adds one through axum's own `route`, `nest`,
/// `fallback` or a plain `Router`, which would serve a path the document does not name.
#[test]
fn no_route_is_added_without_its_description() {
    let mut files = Vec::new();
    for service in ["addon-core", "api-studio", "universal-webhook", "reference"] {
        rust_files(&services_dir().join(service).join("src"), &mut files);
    }
    assert!(files.len() > 20, "found the sources ({})", files.len());
    let forbidden = [
        ".route(",
        ".route_service(",
        ".nest(",
        ".nest_service(",
        ".fallback(",
        ".fallback_service(",
        "Router::new()",
        "axum::Router<",
        "Router<AppState>",
    ];
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read source");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for pattern in forbidden {
                // `ApiRouter::new()`, `.routes(` and a `MethodRouter` handed to `documented`
                // are the documented way: only a match not inside a longer name counts.
                let standalone = code.match_indices(pattern).any(|(at, _)| {
                    !code[..at]
                        .chars()
                        .next_back()
                        .is_some_and(|c| c.is_alphanumeric() || c == '_')
                });
                if standalone {
                    found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "routes added outside ApiRouter::routes (so missing from /openapi.json):\n{}",
        found.join("\n")
    );
}

fn operations(doc: &Value) -> Vec<(String, Method, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let method = match method.as_str() {
                "get" => Method::GET,
                "post" => Method::POST,
                "put" => Method::PUT,
                "delete" => Method::DELETE,
                "patch" => Method::PATCH,
                other => panic!("{path}: unexpected {other}"),
            };
            out.push((path.clone(), method, op.clone()));
        }
    }
    out
}

fn secured_by(op: &Value, scheme: &str) -> bool {
    op["security"]
        .as_array()
        .is_some_and(|s| s.iter().any(|r| r.get(scheme).is_some()))
}

fn documented_statuses(op: &Value) -> BTreeSet<u16> {
    op["responses"]
        .as_object()
        .expect("responses")
        .keys()
        .map(|s| s.parse().expect("numeric status"))
        .collect()
}

/// Resolves every `$ref` of the document, so a name that points nowhere fails here.
fn refs(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get("$ref") {
                out.insert(r.clone());
            }
            o.values().for_each(|v| refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

async fn document(app: &TestApp) -> Value {
    let resp = app.http.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "application/json",
        "served as JSON"
    );
    resp.json().await.unwrap()
}

/// The document is OpenAPI 3.1, names every operation once with a tag and a description, and
/// every reference in it resolves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_add_on_serves_a_complete_openapi_3_1_document() {
    for def in ADDONS {
        let app = TestApp::start(def, Backend::Sqlite).await;
        let doc = document(&app).await;
        assert_eq!(doc["openapi"], "3.1.0", "{}", def.slug);
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
        let mut ids = BTreeSet::new();
        let ops = operations(&doc);
        for (path, method, op) in &ops {
            let id = op["operationId"].as_str().unwrap_or_default();
            assert!(
                ids.insert(id.to_owned()),
                "{}: operationId {id:?} twice",
                def.slug
            );
            assert!(
                op["tags"].as_array().is_some_and(|t| !t.is_empty()),
                "{method} {path} has no tag"
            );
            // Every answer says what it means (utoipa leaves a response without one empty).
            for (status, response) in op["responses"].as_object().expect("responses") {
                assert!(
                    response["description"]
                        .as_str()
                        .is_some_and(|d| d.len() > 3),
                    "{method} {path}: the {status} answer is not described"
                );
            }
            assert!(
                documented_statuses(op).contains(&503),
                "{method} {path}: every route can be shed (503)"
            );
        }
        let mut used = BTreeSet::new();
        refs(&doc, &mut used);
        for r in used {
            let name = r.strip_prefix("#/components/schemas/").expect("schema ref");
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "{}: {r} does not resolve",
                def.slug
            );
        }
        // The limits the engine enforces are the ones the document states.
        let flow = &doc["components"]["schemas"]["FlowDefinition"]["properties"];
        if flow.is_object() {
            assert_eq!(
                flow["actions"]["maxItems"],
                addon_core::flows::model::MAX_ACTIONS
            );
            assert_eq!(
                flow["conditions"]["maxItems"],
                addon_core::flows::model::MAX_CONDITIONS
            );
        }
        let count = ops.len();
        match def.slug {
            "api-studio" => assert_eq!(count, 36, "api-studio operations"),
            "universal-webhook" => assert_eq!(count, 43, "universal-webhook operations"),
            _ => assert_eq!(count, 70, "reference operations"),
        }
        app.stop().await;
    }
}

/// Every operation the document names is served (never axum's 404 or 405), refuses a request
/// without the credentials it names with 401, and answers a real one with a status the
/// document lists, in the JSON error shape when it is an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_served_as_documented() {
    for def in ADDONS {
        let app = TestApp::start(def, Backend::Postgres).await;
        let webhook_token = app.install_settled("ws1").await;
        let doc = document(&app).await;
        let user = app.token(TokenKind::User, "ws1");
        let lifecycle = app.token(TokenKind::Lifecycle, "ws1");
        // Redirects are answers to check, not to follow.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let mut checked = 0;
        for (path, method, op) in operations(&doc) {
            // Path parameters: this workspace where one is named, else an id that does not exist.
            let concrete = path
                .replace("{workspace_id}", "ws1")
                .replace("{source}", "ci")
                .replace("{id}", "no-such-id");
            let url = app.url(&concrete);
            let statuses = documented_statuses(&op);
            let what = format!("{}: {method} {path}", def.slug);
            let body = op.get("requestBody").map(|_| serde_json::json!({}));
            let send = |auth: Option<(&'static str, String)>| {
                let mut req = http.request(method.clone(), &url);
                if let Some((name, value)) = auth {
                    req = req.header(name, value);
                }
                if let Some(b) = &body {
                    req = req.json(b);
                }
                req.send()
            };
            let secured = ["userToken", "lifecycleToken", "webhookToken"]
                .iter()
                .any(|s| secured_by(&op, s));
            // Without credentials.
            let (status, answer) = json_of(send(None).await.unwrap()).await;
            assert_ne!(status, 405, "{what}: not routed for this method");
            if secured {
                assert_eq!(status, 401, "{what} without credentials: {answer}");
                assert_eq!(answer["error"]["code"], "unauthorized", "{what}");
            } else {
                assert!(
                    statuses.contains(&status),
                    "{what}: {status} is not documented ({statuses:?})"
                );
            }
            // With them.
            let auth = if secured_by(&op, "userToken") {
                Some(("authorization", format!("Bearer {user}")))
            } else if secured_by(&op, "lifecycleToken") {
                Some(("x-addon-lifecycle-token", lifecycle.clone()))
            } else if secured_by(&op, "webhookToken") {
                Some(("clockify-signature", webhook_token.clone()))
            } else {
                None
            };
            if auth.is_some() {
                let (status, answer) = json_of(send(auth).await.unwrap()).await;
                assert!(
                    statuses.contains(&status),
                    "{what}: {status} is not documented ({statuses:?}): {answer}"
                );
                assert_ne!(status, 401, "{what}: the credentials it names were refused");
                if status >= 400 {
                    assert!(
                        answer["error"]["code"].is_string()
                            && answer["error"]["message"].is_string(),
                        "{what}: an error is {{error: {{code, message}}}}: {answer}"
                    );
                }
            }
            checked += 1;
        }
        assert!(checked >= 36, "{}: checked {checked}", def.slug);
        app.stop().await;
    }
}
