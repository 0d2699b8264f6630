//! Universal Webhook's flow actions and durable execution: GENERIC_HTTP to allowlisted public
//! hosts (timeouts, retries, the answer captured, credentials redacted), and executions that
//! retry failed steps with backoff, resume where they failed, and end FAILED with the reason.
#![cfg(test)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use addon_testkit::{Backend, FakeClockify, FakeResponse, TestApp, backend_tests};
use reqwest::Method;
use serde_json::{Value, json};

async fn create_flow(app: &TestApp, ws: &str, flow: Value) -> String {
    let (s, b) = app.ui(ws, Method::POST, "/ui/flows", Some(flow)).await;
    assert_eq!(s, 201, "{b}");
    b["id"].as_str().unwrap().to_owned()
}

/// Waits for the execution of the flow on this delivery to reach a final state.
async fn final_execution(app: &TestApp, ws: &str, webhook_id: &str) -> Value {
    app.eventually(Duration::from_secs(20), || async {
        let (_, b) = app
            .ui(
                ws,
                Method::GET,
                &format!("/ui/executions?webhook_id={webhook_id}"),
                None,
            )
            .await;
        b["items"]
            .as_array()?
            .iter()
            .find(|e| {
                matches!(
                    e["status"].as_str(),
                    Some("SUCCEEDED" | "FAILED" | "SKIPPED")
                )
            })
            .cloned()
    })
    .await
    .unwrap_or_else(|| panic!("the execution of {webhook_id} did not finish"))
}

fn http_flow(receiver: &str) -> Value {
    json!({
        "name": "notify",
        "triggerEvents": ["NEW_TAG"],
        "actions": [{
            "type": "GENERIC_HTTP",
            "name": "post to the receiver",
            "method": "POST",
            "url": format!("{receiver}/hooks/{{{{$.id}}}}?tag={{{{$.name}}}}"),
            "headers": {"Authorization": "Bearer s3cr3t-value", "X-Tag": "{{$.name}}"},
            "body": {"tag": "{{$.name}}", "workspace": "{{workspaceId}}"},
            "timeoutSeconds": 5
        }]
    })
}

async fn tag(app: &TestApp, token: &str, id: &str) -> String {
    let (s, b) = app
        .webhook(
            token,
            "NEW_TAG",
            &json!({"id": id, "name": "urgent", "workspaceId": "ws1"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    b["id"].as_str().unwrap().to_owned()
}

async fn generic_http_reaches_only_allowlisted_hosts(backend: Backend) {
    let app = TestApp::builder(&universal_webhook::DEFINITION, backend)
        .env("GENERIC_HTTP_ALLOW_PRIVATE_NETWORKS", "true")
        .env("GENERIC_HTTP_MAX_RETRIES", "2")
        .start()
        .await;
    let receiver = FakeClockify::start().await;
    let answered = Arc::new(AtomicUsize::new(0));
    let n = answered.clone();
    receiver.respond(move |_| {
        if n.fetch_add(1, Ordering::SeqCst) == 0 {
            FakeResponse::json(503, json!({"busy": true}))
        } else {
            FakeResponse::json(200, json!({"received": true}))
        }
    });
    let token = app.install_settled("ws1").await;
    create_flow(&app, "ws1", http_flow(&receiver.allow_entry())).await;

    // Not on the allowlist: refused before connecting, the execution says why.
    let first = tag(&app, &token, "t1").await;
    let ex = final_execution(&app, "ws1", &first).await;
    assert_eq!(ex["status"], "FAILED", "{ex}");
    assert!(ex["error"].as_str().unwrap().contains("allowlist"), "{ex}");
    assert!(receiver.requests().is_empty());

    // Allowlisted: delivered (after one 503), the answer captured, credentials redacted.
    let (s, b) = app
        .ui(
            "ws1",
            Method::PUT,
            "/ui/http-allowlist",
            Some(json!({"rules": [receiver.allow_entry()]})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let second = tag(&app, &token, "t2").await;
    let ex = final_execution(&app, "ws1", &second).await;
    assert_eq!(ex["status"], "SUCCEEDED", "{ex}");
    let step = &ex["steps"][0];
    assert_eq!(step["type"], "GENERIC_HTTP");
    assert_eq!(step["status"], 200);
    assert_eq!(step["attempts"], 2);
    assert!(
        step["response"].as_str().unwrap().contains("received"),
        "{step}"
    );
    assert_eq!(
        step["url"],
        format!("{}/hooks/t2", receiver.allow_entry()),
        "no query in the log"
    );
    let logged = ex.to_string();
    assert!(
        !logged.contains("s3cr3t"),
        "the credential leaked into the log: {logged}"
    );
    let got = receiver.requests();
    assert_eq!(got.len(), 2, "one 503, one success");
    let key = got[0].header("idempotency-key").unwrap().to_owned();
    assert_eq!(
        got[1].header("idempotency-key"),
        Some(key.as_str()),
        "retries repeat the key"
    );
    assert_eq!(got[1].path, "/hooks/t2");
    assert_eq!(got[1].query.get("tag").map(String::as_str), Some("urgent"));
    assert_eq!(got[1].header("authorization"), Some("Bearer s3cr3t-value"));
    assert_eq!(got[1].header("x-tag"), Some("urgent"));
    assert_eq!(got[1].body, json!({"tag": "urgent", "workspace": "ws1"}));
    app.stop().await;
}

async fn private_addresses_are_refused_unless_allowed(backend: Backend) {
    let app = TestApp::start(&universal_webhook::DEFINITION, backend).await;
    let receiver = FakeClockify::start().await;
    let token = app.install_settled("ws1").await;
    app.ui(
        "ws1",
        Method::PUT,
        "/ui/http-allowlist",
        Some(json!({"rules": [receiver.allow_entry()]})),
    )
    .await;
    create_flow(&app, "ws1", http_flow(&receiver.allow_entry())).await;
    let id = tag(&app, &token, "t1").await;
    let ex = final_execution(&app, "ws1", &id).await;
    assert_eq!(ex["status"], "FAILED", "{ex}");
    assert!(
        ex["error"].as_str().unwrap().contains("private or local"),
        "{ex}"
    );
    assert!(receiver.requests().is_empty(), "nothing left for 127.0.0.1");

    // A name that resolves only to private addresses is refused as such, at once: not
    // retried as if the network had failed.
    let by_name = receiver.allow_entry().replace("127.0.0.1", "localhost");
    app.ui(
        "ws1",
        Method::PUT,
        "/ui/http-allowlist",
        Some(json!({"rules": [by_name.clone()]})),
    )
    .await;
    let (s, flows) = app.ui("ws1", Method::GET, "/ui/flows", None).await;
    assert_eq!(s, 200);
    let first = flows["items"][0]["id"].as_str().unwrap().to_owned();
    app.ui("ws1", Method::DELETE, &format!("/ui/flows/{first}"), None)
        .await;
    create_flow(&app, "ws1", http_flow(&by_name)).await;
    let id = tag(&app, &token, "t2").await;
    let ex = final_execution(&app, "ws1", &id).await;
    assert_eq!(ex["status"], "FAILED", "{ex}");
    assert!(
        ex["error"]
            .as_str()
            .unwrap()
            .contains("localhost is a private or local address"),
        "{ex}"
    );
    assert_eq!(ex["attempts"], 1, "refused, not retried: {ex}");
    assert!(receiver.requests().is_empty());
    app.stop().await;
}

async fn the_allowlist_is_validated_and_for_admins(backend: Backend) {
    let app = TestApp::start(&universal_webhook::DEFINITION, backend).await;
    app.install_settled("ws1").await;
    let (s, b) = app
        .ui(
            "ws1",
            Method::PUT,
            "/ui/http-allowlist",
            Some(
                json!({"rules": ["api.example.com", "*.hooks.example.org", "ftp://x", "http://"]}),
            ),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    let details = b["error"]["details"].as_array().unwrap();
    assert_eq!(details.len(), 2, "{b}");
    assert!(details[0].as_str().unwrap().starts_with("rules[2]"), "{b}");
    let (s, b) = app
        .ui(
            "ws1",
            Method::PUT,
            "/ui/http-allowlist",
            Some(json!({"rules": ["API.example.com", "*.hooks.example.org"]})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (_, b) = app.ui("ws1", Method::GET, "/ui/http-allowlist", None).await;
    assert_eq!(b["rules"].as_array().unwrap().len(), 2, "{b}");
    let r = app
        .http
        .put(app.url("/ui/http-allowlist"))
        .bearer_auth(app.member_token("ws1"))
        .json(&json!({"rules": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // A GENERIC_HTTP URL may not take its host from the webhook.
    let mut flow = http_flow("https://{{$.host}}");
    flow["actions"][0]["url"] = json!("https://{{$.host}}/x");
    let (s, b) = app.ui("ws1", Method::POST, "/ui/flows", Some(flow)).await;
    assert_eq!(s, 422, "{b}");
    app.stop().await;
}

fn two_step_flow() -> Value {
    json!({
        "name": "two steps",
        "triggerEvents": ["NEW_TAG"],
        "actions": [
            {"name": "first", "method": "POST", "path": "/v1/workspaces/{{workspaceId}}/tags", "body": {"name": "{{$.name}}"}},
            {"name": "second", "method": "POST", "path": "/v1/workspaces/{{workspaceId}}/clients", "body": {"name": "{{$.name}}"}}
        ]
    })
}

fn count(fake: &FakeClockify, suffix: &str) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.path.ends_with(suffix))
        .count()
}

async fn failed_steps_retry_and_resume_where_they_failed(backend: Backend) {
    let app = TestApp::builder(&universal_webhook::DEFINITION, backend)
        .env("CLOCKIFY_API_MAX_RETRIES", "0")
        .env("FLOW_RETRY_BACKOFF_SECONDS", "0")
        .env("FLOW_MAX_ATTEMPTS", "5")
        .start()
        .await;
    let token = app.install_settled("ws1").await;
    let clients = Arc::new(AtomicUsize::new(0));
    let n = clients.clone();
    app.fake.respond(move |r| {
        if r.path.ends_with("/clients") && n.fetch_add(1, Ordering::SeqCst) < 2 {
            FakeResponse::json(503, json!({"message": "busy"}))
        } else {
            FakeResponse::json(201, json!({"id": "x"}))
        }
    });
    create_flow(&app, "ws1", two_step_flow()).await;
    let id = tag(&app, &token, "t1").await;
    let ex = final_execution(&app, "ws1", &id).await;
    assert_eq!(ex["status"], "SUCCEEDED", "{ex}");
    assert_eq!(ex["attempts"], 3, "{ex}");
    assert_eq!(
        count(&app.fake, "/tags"),
        1,
        "the first step is not repeated"
    );
    assert_eq!(count(&app.fake, "/clients"), 3);
    app.stop().await;
}

async fn the_last_attempt_fails_with_the_reason(backend: Backend) {
    let app = TestApp::builder(&universal_webhook::DEFINITION, backend)
        .env("CLOCKIFY_API_MAX_RETRIES", "0")
        .env("FLOW_RETRY_BACKOFF_SECONDS", "0")
        .env("FLOW_MAX_ATTEMPTS", "2")
        .start()
        .await;
    let token = app.install_settled("ws1").await;
    app.fake.respond(|r| {
        if r.path.ends_with("/clients") {
            FakeResponse::json(503, json!({"message": "busy"}))
        } else if r.path.ends_with("/tags") && r.body["name"] == "bad" {
            FakeResponse::json(400, json!({"message": "name taken"}))
        } else {
            FakeResponse::json(201, json!({"id": "x"}))
        }
    });
    create_flow(&app, "ws1", two_step_flow()).await;
    let id = tag(&app, &token, "t1").await;
    let ex = final_execution(&app, "ws1", &id).await;
    assert_eq!(ex["status"], "FAILED", "{ex}");
    assert_eq!(ex["attempts"], 2, "{ex}");
    assert!(ex["error"].as_str().unwrap().contains("503"), "{ex}");
    assert_eq!(count(&app.fake, "/clients"), 2);
    // A permanent failure (400) is not retried.
    app.fake.clear();
    let (_, b) = app
        .webhook(
            &token,
            "NEW_TAG",
            &json!({"id": "t2", "name": "bad", "workspaceId": "ws1"}),
        )
        .await;
    let ex = final_execution(&app, "ws1", b["id"].as_str().unwrap()).await;
    assert_eq!(ex["status"], "FAILED", "{ex}");
    assert_eq!(ex["attempts"], 1, "{ex}");
    assert!(ex["error"].as_str().unwrap().contains("400"), "{ex}");
    assert_eq!(count(&app.fake, "/clients"), 0);
    app.stop().await;
}

/// Header values are credentials: sealed at rest, never returned (shown as set), kept when a
/// read flow is written back, and sent as written when the action runs.
async fn header_values_are_sealed_and_write_only(backend: Backend) {
    let app = TestApp::builder(&universal_webhook::DEFINITION, backend)
        .env("GENERIC_HTTP_ALLOW_PRIVATE_NETWORKS", "true")
        .start()
        .await;
    let receiver = FakeClockify::start().await;
    receiver.respond(|_| FakeResponse::json(200, json!({"ok": true})));
    let token = app.install_settled("ws1").await;
    let (s, created) = app
        .ui(
            "ws1",
            Method::POST,
            "/ui/flows",
            Some(http_flow(&receiver.allow_entry())),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let set = json!({"set": true});
    assert_eq!(
        created["actions"][0]["headers"]["Authorization"], set,
        "{created}"
    );
    for path in ["/ui/flows".to_owned(), format!("/ui/flows/{id}")] {
        let (_, b) = app.ui("ws1", Method::GET, &path, None).await;
        assert!(!b.to_string().contains("s3cr3t"), "{path}: {b}");
    }
    let (_, member_view) = {
        let r = app
            .http
            .get(app.url(&format!("/ui/flows/{id}")))
            .bearer_auth(app.member_token("ws1"))
            .send()
            .await
            .unwrap();
        addon_testkit::json_of(r).await
    };
    assert_eq!(member_view["actions"][0]["headers"]["Authorization"], set);
    let stored: String = sqlx::query_scalar("SELECT actions FROM flows WHERE id = $1")
        .bind(&id)
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    assert!(!stored.contains("s3cr3t"), "stored in clear: {stored}");
    assert!(stored.contains("sealed:"), "{stored}");

    // Written back as read, with X-Tag changed: Authorization is kept.
    let (_, mut flow) = app
        .ui("ws1", Method::GET, &format!("/ui/flows/{id}"), None)
        .await;
    for k in ["id", "createdAt", "updatedAt"] {
        flow.as_object_mut().unwrap().remove(k);
    }
    flow["actions"][0]["headers"]["X-Tag"] = json!("fixed");
    let (s, b) = app
        .ui(
            "ws1",
            Method::PUT,
            &format!("/ui/flows/{id}"),
            Some(flow.clone()),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    // Keeping a header that was never stored, or smuggling a sealed value, is refused.
    flow["actions"][0]["headers"]["X-New"] = json!({"set": true});
    let (s, b) = app
        .ui(
            "ws1",
            Method::PUT,
            &format!("/ui/flows/{id}"),
            Some(flow.clone()),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    assert!(b.to_string().contains("actions[0].headers.X-New"), "{b}");
    flow["actions"][0]["headers"]["X-New"] = json!(format!("sealed:{stored}"));
    let (s, _) = app
        .ui("ws1", Method::PUT, &format!("/ui/flows/{id}"), Some(flow))
        .await;
    assert_eq!(s, 422);

    app.ui(
        "ws1",
        Method::PUT,
        "/ui/http-allowlist",
        Some(json!({"rules": [receiver.allow_entry()]})),
    )
    .await;
    let delivery = tag(&app, &token, "t9").await;
    let ex = final_execution(&app, "ws1", &delivery).await;
    assert_eq!(ex["status"], "SUCCEEDED", "{ex}");
    let got = receiver.requests();
    assert_eq!(got[0].header("authorization"), Some("Bearer s3cr3t-value"));
    assert_eq!(got[0].header("x-tag"), Some("fixed"));
    app.stop().await;
}

/// The flow builder's helpers: a test run against a stored delivery or a sample (nothing is
/// sent, nothing stored), the import of a pyddon flow, and the URL check as it is typed.
async fn test_runs_send_nothing_and_say_what_would_happen(backend: Backend) {
    let app = TestApp::start(&universal_webhook::DEFINITION, backend).await;
    let token = app.install_settled("ws1").await;
    let flow = http_flow("https://hooks.example.com");
    let id = create_flow(&app, "ws1", flow.clone()).await;
    // The stored flow is disabled so the delivery below runs nothing for real.
    let mut off = flow.clone();
    off["enabled"] = json!(false);
    let (s, b) = app
        .ui("ws1", Method::PUT, &format!("/ui/flows/{id}"), Some(off))
        .await;
    assert_eq!(s, 200, "{b}");
    let delivery = tag(&app, &token, "t9").await;
    let (_, stored) = app
        .ui("ws1", Method::GET, &format!("/ui/flows/{id}"), None)
        .await;
    app.fake.clear();

    let (s, r) = app
        .ui(
            "ws1",
            Method::POST,
            "/ui/flows/test",
            Some(json!({"flow": stored, "webhookId": delivery})),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        (r["triggered"].as_bool(), r["wouldRun"].as_bool()),
        (Some(true), Some(true))
    );
    let action = &r["actions"][0];
    assert_eq!(
        action["url"],
        "https://hooks.example.com/hooks/t9?tag=urgent"
    );
    assert_eq!(action["body"], json!({"tag": "urgent", "workspace": "ws1"}));
    assert!(
        action["error"]
            .as_str()
            .unwrap()
            .contains("hooks.example.com is not on"),
        "{action}"
    );
    // The sealed header is resolved from the stored flow and shown redacted.
    assert_eq!(action["headers"][0], json!(["authorization", "<redacted>"]));
    assert!(!r.to_string().contains("s3cr3t"), "{r}");

    // A sample, with a condition that fails: it would not run, and says why.
    let mut conditional = flow.clone();
    conditional["conditions"] = json!([{"path": "$.name", "op": "==", "value": "calm"}]);
    let (s, r) = app
        .ui(
            "ws1",
            Method::POST,
            "/ui/flows/test",
            Some(json!({"flow": conditional, "sample": {"eventType": "NEW_TAG", "body": {"id": "x", "name": "urgent"}}})),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["wouldRun"], false);
    assert_eq!(r["conditions"][0]["holds"], false);
    assert_eq!(r["conditions"][0]["found"], json!(["urgent"]));
    // An invalid flow is refused with its problems; a missing delivery is 404.
    let (s, r) = app
        .ui("ws1", Method::POST, "/ui/flows/test", Some(json!({"flow": {"name": "", "triggerEvents": [], "actions": []}, "sample": {"eventType": "NEW_TAG", "body": {}}})))
        .await;
    assert_eq!(s, 422, "{r}");
    assert!(
        r["error"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d.as_str().unwrap().starts_with("name")),
        "{r}"
    );
    let (s, _) = app
        .ui(
            "ws1",
            Method::POST,
            "/ui/flows/test",
            Some(json!({"flow": flow, "webhookId": "nope"})),
        )
        .await;
    assert_eq!(s, 404);
    assert!(app.fake.requests().is_empty(), "a test run calls nothing");
    let (_, runs) = app
        .ui(
            "ws1",
            Method::GET,
            &format!("/ui/executions?webhook_id={delivery}"),
            None,
        )
        .await;
    assert_eq!(
        runs["items"].as_array().unwrap().len(),
        0,
        "and records nothing: {runs}"
    );

    // Import from the earlier system.
    let (s, r) = app
        .ui(
            "ws1",
            Method::POST,
            "/ui/flows/import",
            Some(json!({"name": "old", "trigger_events": ["NEW_TAG"], "actions": [{"operation_id": "getTag", "params": {"id": "$.id"}}]})),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        r["flow"]["actions"][0]["path"],
        "/v1/workspaces/{{workspaceId}}/tags/{{$.id}}"
    );

    // The URL of a GENERIC_HTTP action, checked as it is typed.
    let check = |url: &str| {
        let url = url.to_owned();
        let app = &app;
        async move {
            let (s, r) = app
                .ui(
                    "ws1",
                    Method::POST,
                    "/ui/http-allowlist/check",
                    Some(json!({"url": url})),
                )
                .await;
            assert_eq!(s, 200, "{r}");
            r
        }
    };
    let r = check("https://hooks.example.com/x/{{$.id}}").await;
    assert_eq!(r["allowed"], false);
    let (s, _) = app
        .ui(
            "ws1",
            Method::PUT,
            "/ui/http-allowlist",
            Some(json!({"rules": ["hooks.example.com"]})),
        )
        .await;
    assert_eq!(s, 200);
    let r = check("https://hooks.example.com/x/{{$.id}}").await;
    assert_eq!(r, json!({"allowed": true, "host": "hooks.example.com"}));
    let r = check("https://{{$.host}}/x").await;
    assert_eq!(r["allowed"], false);
    assert!(r["reason"].as_str().unwrap().contains("host"), "{r}");
}

backend_tests!(
    test_runs_send_nothing_and_say_what_would_happen,
    header_values_are_sealed_and_write_only,
    generic_http_reaches_only_allowlisted_hosts,
    private_addresses_are_refused_unless_allowed,
    the_allowlist_is_validated_and_for_admins,
    failed_steps_retry_and_resume_where_they_failed,
    the_last_attempt_fails_with_the_reason,
);
