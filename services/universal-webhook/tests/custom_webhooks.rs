//! Universal Webhook's manifest, Clockify webhooks, and custom webhooks: signed the Standard
//! Webhooks way with the source's signing secret (never without it), replays refused or
//! de-duplicated, the old body-only scheme only inside an admin's migration window, rotation
//! with a grace period, per-workspace rate limit, and flows on custom sources that run once
//! per delivery.
#![cfg(test)]

use std::time::Duration;

use addon_core::routes::custom::{sign, sign_standard, source_secret};
use addon_testkit::clockify_data::{manifest_problems, webhook_samples};
use addon_testkit::{Backend, FakeResponse, TestApp, backend_tests};
use reqwest::Method;
use serde_json::{Value, json};

async fn start(backend: Backend) -> TestApp {
    TestApp::start(&universal_webhook::DEFINITION, backend).await
}

async fn secret(app: &TestApp, ws: &str) -> String {
    let (s, info) = app.ui(ws, Method::GET, "/ui/custom-webhooks", None).await;
    assert_eq!(s, 200, "{info}");
    info["secret"].as_str().expect("a secret").to_owned()
}

/// What to sign a custom webhook with: the workspace secret, and the body the signature
/// covers (normally the body sent).
fn signed(secret: &str, body: &[u8]) -> (String, Vec<u8>) {
    (secret.to_owned(), body.to_vec())
}

/// A custom webhook signed the Standard Webhooks way (`signature` None sends none). The
/// message id is `X-Delivery-Id` when the test names one, else a fresh one.
async fn custom(
    app: &TestApp,
    ws: &str,
    source: &str,
    signature: Option<(String, Vec<u8>)>,
    body: &[u8],
    headers: &[(&str, &str)],
) -> (u16, Value, Option<String>) {
    let id = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("x-delivery-id"))
        .map(|(_, v)| (*v).to_owned())
        .unwrap_or_else(|| format!("msg_{}", addon_core::store::new_id()));
    let timestamp = addon_core::time::now_secs();
    let mut req = app
        .http
        .post(app.url(&format!("/webhooks/custom/{source}")))
        .header("X-Workspace-Id", ws)
        .body(body.to_vec());
    if let Some((secret, covered)) = signature {
        let key = source_secret(&secret, source);
        req = req
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                sign_standard(&key, &id, timestamp, &covered),
            );
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(req).await
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value, Option<String>) {
    let resp = req.send().await.unwrap();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let (s, b) = addon_testkit::app::json_of(resp).await;
    (s, b, retry_after)
}

async fn manifest_is_valid_and_enterprise(backend: Backend) {
    let app = start(backend).await;
    let (_, manifest) = app.get("/manifest").await;
    assert_eq!(manifest["minimalSubscriptionPlan"], "ENTERPRISE");
    assert_eq!(manifest["key"], "universal-webhook");
    assert_eq!(manifest["webhooks"].as_array().unwrap().len(), 10);
    if let Some(problems) = manifest_problems(&manifest) {
        assert!(problems.is_empty(), "{problems:#?}");
    }
    app.stop().await;
}

async fn every_clockify_sample_is_accepted(backend: Backend) {
    let Some(samples) = webhook_samples() else {
        return;
    };
    let app = start(backend).await;
    for s in &samples {
        let token = app.install(&s.workspace).await;
        let (status, resp) = app.webhook_raw(&token, &s.event, s.raw.clone()).await;
        assert_eq!(status, 200, "{}: {resp}", s.event);
        assert_eq!(resp["status"], "accepted", "{}: {resp}", s.event);
    }
    let (_, list) = app
        .ui(
            &samples[0].workspace,
            Method::GET,
            "/ui/webhooks?source=clockify&limit=200",
            None,
        )
        .await;
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["source"] == "clockify")
    );
    app.stop().await;
}

async fn custom_webhooks_are_never_unauthenticated(backend: Backend) {
    let app = start(backend).await;
    app.install_settled("ws1").await;
    app.install_settled("ws2").await;
    let key = secret(&app, "ws1").await;
    assert!(key.starts_with("whsec_"));
    assert_ne!(key, secret(&app, "ws2").await, "one secret per workspace");
    // Only admins see the secret.
    let member = app.member_token("ws1");
    let r = app
        .http
        .get(app.url("/ui/custom-webhooks"))
        .bearer_auth(&member)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    let body = br#"{"event_type":"deploy","service":"api"}"#;
    let (s, b, _) = custom(&app, "ws1", "ci", None, body, &[]).await;
    assert_eq!(s, 401, "no signature: {b}");
    let (s, _, _) = custom(
        &app,
        "ws1",
        "ci",
        Some(signed("whsec_wrong", body)),
        body,
        &[],
    )
    .await;
    assert_eq!(s, 401, "a wrong secret");
    let (s, _, _) = custom(&app, "ws1", "ci", Some(signed(&key, b"{}")), body, &[]).await;
    assert_eq!(s, 401, "a signature of another body");
    let ws2_key = secret(&app, "ws2").await;
    let (s, _, _) = custom(&app, "ws1", "ci", Some(signed(&ws2_key, body)), body, &[]).await;
    assert_eq!(s, 401, "another workspace's secret");
    let (s, _, _) = custom(&app, "nope", "ci", Some(signed(&key, body)), body, &[]).await;
    assert_eq!(s, 401, "an unknown workspace");
    let (s, b, _) = custom(
        &app,
        "ws1",
        "Bad Source",
        Some(signed(&key, body)),
        body,
        &[],
    )
    .await;
    assert_eq!(s, 400, "{b}");
    let (s, b, _) = custom(
        &app,
        "ws1",
        "ci",
        Some(signed(&key, b"not json")),
        b"not json",
        &[],
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("JSON"),
        "{b}"
    );
    // Nothing was stored by any refused request.
    let (_, list) = app.ui("ws1", Method::GET, "/ui/webhooks", None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");

    // Signed: stored with its source and event, GitHub-style header accepted too.
    let (s, b, _) = custom(&app, "ws1", "ci", Some(signed(&key, body)), body, &[]).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"], "accepted");
    assert_eq!(b["eventType"], "deploy");
    // The same message id again is a duplicate, even with another body.
    let push = br#"{"type":"push","ref":"main"}"#;
    let (s, b, _) = custom(
        &app,
        "ws1",
        "github",
        Some(signed(&key, push)),
        push,
        &[("X-Delivery-Id", "d-1")],
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"], "accepted");
    let push2 = br#"{"type":"push","ref":"other"}"#;
    let (s, b, _) = custom(
        &app,
        "ws1",
        "github",
        Some(signed(&key, push2)),
        push2,
        &[("X-Delivery-Id", "d-1")],
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(b["status"], "duplicate", "{b}");
    let (_, list) = app
        .ui("ws1", Method::GET, "/ui/webhooks?source=github", None)
        .await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["eventType"], "push");
    assert_eq!(items[0]["source"], "github");

    // Uninstalling forgets the secret: its signatures are refused from then on.
    let (s, _) = app
        .lifecycle("deleted", "ws1", json!({"workspaceId": "ws1"}))
        .await;
    assert_eq!(s, 200);
    let body3 = br#"{"n":3}"#;
    let (s, _, _) = custom(&app, "ws1", "ci", Some(signed(&key, body3)), body3, &[]).await;
    assert_eq!(s, 401);
    app.stop().await;
}

async fn rotation_keeps_the_old_secret_for_the_grace_period(backend: Backend) {
    let app = start(backend).await;
    app.install_settled("ws1").await;
    let old = secret(&app, "ws1").await;
    let (s, rotated) = app
        .ui("ws1", Method::POST, "/ui/custom-webhooks/rotate", None)
        .await;
    assert_eq!(s, 200, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert!(rotated["previousSecretValidUntil"].is_string());
    let body = br#"{"n":1}"#;
    for key in [&old, &new] {
        let body = format!(r#"{{"k":"{}"}}"#, &key[6..12]);
        let (s, b, _) = custom(
            &app,
            "ws1",
            "ci",
            Some(signed(key, body.as_bytes())),
            body.as_bytes(),
            &[],
        )
        .await;
        assert_eq!(s, 200, "{b}");
    }
    // A second rotation retires the first secret at once; only the last two are valid.
    let (_, again) = app
        .ui("ws1", Method::POST, "/ui/custom-webhooks/rotate", None)
        .await;
    let newest = again["secret"].as_str().unwrap().to_owned();
    let (s, _, _) = custom(&app, "ws1", "ci", Some(signed(&old, body)), body, &[]).await;
    assert_eq!(s, 401, "the first secret is gone after two rotations");
    let (s, _, _) = custom(&app, "ws1", "ci", Some(signed(&new, body)), body, &[]).await;
    assert_eq!(s, 200);
    let (s, _, _) = custom(&app, "ws1", "ci", Some(signed(&newest, body)), body, &[]).await;
    assert_eq!(s, 200);
    let member = app.member_token("ws1");
    let r = app
        .http
        .post(app.url("/ui/custom-webhooks/rotate"))
        .bearer_auth(&member)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "members cannot rotate");
    app.stop().await;
}

async fn without_grace_the_old_secret_stops_at_once(backend: Backend) {
    let app = TestApp::builder(&universal_webhook::DEFINITION, backend)
        .env("CUSTOM_WEBHOOK_SECRET_GRACE_HOURS", "0")
        .start()
        .await;
    app.install_settled("ws1").await;
    let old = secret(&app, "ws1").await;
    app.ui("ws1", Method::POST, "/ui/custom-webhooks/rotate", None)
        .await;
    let body = br#"{"n":1}"#;
    let (s, _, _) = custom(&app, "ws1", "ci", Some(signed(&old, body)), body, &[]).await;
    assert_eq!(s, 401);
    app.stop().await;
}

async fn custom_webhooks_are_rate_limited_per_workspace(backend: Backend) {
    let app = TestApp::builder(&universal_webhook::DEFINITION, backend)
        .env("CUSTOM_WEBHOOK_RATE_LIMIT", "3")
        .start()
        .await;
    app.install_settled("ws1").await;
    app.install_settled("ws2").await;
    let (k1, k2) = (secret(&app, "ws1").await, secret(&app, "ws2").await);
    // Unauthenticated floods do not spend a workspace's budget: they are refused first.
    for i in 0..10 {
        let body = format!(r#"{{"forged":{i}}}"#);
        let (s, _, _) = custom(
            &app,
            "ws1",
            "ci",
            Some(signed("whsec_forged", body.as_bytes())),
            body.as_bytes(),
            &[],
        )
        .await;
        assert_eq!(s, 401);
    }
    let mut limited = None;
    for i in 0..10 {
        let body = format!(r#"{{"i":{i}}}"#);
        let (s, b, retry) = custom(
            &app,
            "ws1",
            "ci",
            Some(signed(&k1, body.as_bytes())),
            body.as_bytes(),
            &[],
        )
        .await;
        if s == 429 {
            assert_eq!(b["error"]["code"], "rate_limited", "{b}");
            limited = Some((i, retry));
            break;
        }
        assert_eq!(s, 200, "{b}");
    }
    let (i, retry) = limited.expect("the limit is enforced");
    assert!(i >= 3, "a burst of 3 is allowed, refused at {i}");
    assert!(retry.is_some_and(|r| r.parse::<u64>().unwrap() >= 1));
    // Another workspace has its own budget.
    let body = br#"{"other":1}"#;
    let (s, _, _) = custom(&app, "ws2", "ci", Some(signed(&k2, body)), body, &[]).await;
    assert_eq!(s, 200);
    app.stop().await;
}

async fn custom_flows_run_once_per_delivery(backend: Backend) {
    let app = start(backend).await;
    app.install_settled("ws1").await;
    app.fake
        .respond(|_| FakeResponse::json(200, json!({"ok": true})));
    let key = secret(&app, "ws1").await;
    let flow = |name: &str, source: &str, sources: Value, events: Value, path: &str| {
        json!({
            "name": name, "triggerSource": source, "triggerSources": sources, "triggerEvents": events,
            "actions": [{"method": "POST", "path": path, "body": {"name": "{{$.service}}"}}]
        })
    };
    for body in [
        flow(
            "ci deploys",
            "CUSTOM",
            json!(["ci"]),
            json!(["deploy"]),
            "/v1/workspaces/{{workspaceId}}/tags",
        ),
        flow(
            "any source, any event",
            "CUSTOM",
            json!([]),
            json!(["*"]),
            "/v1/workspaces/{{workspaceId}}/clients",
        ),
        flow(
            "other source",
            "CUSTOM",
            json!(["billing"]),
            json!(["deploy"]),
            "/v1/workspaces/{{workspaceId}}/projects",
        ),
    ] {
        let (s, b) = app.ui("ws1", Method::POST, "/ui/flows", Some(body)).await;
        assert_eq!(s, 201, "{b}");
    }
    let clockify_flow = json!({"name": "clockify", "triggerEvents": ["NEW_TAG"], "actions": [{"method": "GET", "path": "/v1/workspaces/{{workspaceId}}/tags"}]});
    let (s, _) = app
        .ui("ws1", Method::POST, "/ui/flows", Some(clockify_flow))
        .await;
    assert_eq!(s, 201);
    let (_, custom_only) = app
        .ui("ws1", Method::GET, "/ui/flows?source=CUSTOM", None)
        .await;
    assert_eq!(custom_only["items"].as_array().unwrap().len(), 3);

    let body = br#"{"event_type":"deploy","service":"api"}"#;
    for _ in 0..3 {
        // Retries of one delivery (same id) run the flows once.
        let (s, _, _) = custom(
            &app,
            "ws1",
            "ci",
            Some(signed(&key, body)),
            body,
            &[("X-Delivery-Id", "dep-1")],
        )
        .await;
        assert_eq!(s, 200);
    }
    let calls = app.fake.wait_for(2, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let calls = if calls.len() < app.fake.requests().len() {
        app.fake.requests()
    } else {
        calls
    };
    let mut paths: Vec<_> = calls.iter().map(|r| r.path.clone()).collect();
    paths.sort();
    assert_eq!(
        paths,
        vec![
            "/api/v1/workspaces/ws1/clients",
            "/api/v1/workspaces/ws1/tags"
        ],
        "the two matching flows ran once each; the other source's and Clockify's did not"
    );
    assert!(calls.iter().all(|c| c.body["name"] == "api"));
    app.stop().await;
}

/// A captured request cannot be replayed as a new delivery: not later (timestamp), not under
/// another source (the key is the source's), not with another event type (the header is not
/// signed), not under another message id (the id is signed); the same id is a duplicate.
/// An unknown workspace and a wrong signature answer alike.
async fn captured_requests_cannot_be_replayed_or_retargeted(backend: Backend) {
    let app = start(backend).await;
    app.install_settled("ws1").await;
    let key = secret(&app, "ws1").await;
    let body = br#"{"type":"deploy","service":"api"}"#.to_vec();
    let ci = source_secret(&key, "ci");
    let now = addon_core::time::now_secs();
    let post =
        |source: &str, ws: &str, id: &str, ts: i64, sig: String, extra: Option<(&str, &str)>| {
            let mut req = app
                .http
                .post(app.url(&format!("/webhooks/custom/{source}")))
                .header("X-Workspace-Id", ws)
                .header("webhook-id", id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", sig)
                .body(body.clone());
            if let Some((k, v)) = extra {
                req = req.header(k, v);
            }
            send(req)
        };
    let sig = sign_standard(&ci, "msg_1", now, &body);
    let (s, b, _) = post("ci", "ws1", "msg_1", now, sig.clone(), None).await;
    assert_eq!((s, b["status"].as_str()), (200, Some("accepted")), "{b}");
    // The very same request again: a duplicate, stored once.
    let (s, b, _) = post("ci", "ws1", "msg_1", now, sig.clone(), None).await;
    assert_eq!((s, b["status"].as_str()), (200, Some("duplicate")), "{b}");
    // With another X-Event-Type: refused, the header is not signed.
    let (s, b, _) = post(
        "ci",
        "ws1",
        "msg_1",
        now,
        sig.clone(),
        Some(("X-Event-Type", "invoice.paid")),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    // Under another message id or timestamp: the signature covers both.
    let (s, b1, _) = post("ci", "ws1", "msg_2", now, sig.clone(), None).await;
    assert_eq!(s, 401, "{b1}");
    let (s, _, _) = post("ci", "ws1", "msg_1", now - 1, sig.clone(), None).await;
    assert_eq!(s, 401);
    // Under another source: that source's key differs.
    let (s, b2, _) = post("billing", "ws1", "msg_1", now, sig.clone(), None).await;
    assert_eq!(s, 401, "{b2}");
    // Later than the tolerance window, even correctly signed: refused.
    let old = now - 301;
    let stale = sign_standard(&ci, "msg_3", old, &body);
    let (s, b, _) = post("ci", "ws1", "msg_3", old, stale, None).await;
    assert_eq!(s, 401, "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tolerance"),
        "{b}"
    );
    // An unknown workspace answers exactly like a wrong signature.
    let (s, b3, _) = post("ci", "nope", "msg_1", now, sig.clone(), None).await;
    assert_eq!(s, 401);
    assert_eq!(
        b1, b3,
        "unknown workspace and bad signature must be indistinguishable"
    );
    assert_eq!(b2, b3);
    let (_, list) = app
        .ui("ws1", Method::GET, "/ui/webhooks?source=ci", None)
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    app.stop().await;
}

/// The old body-only scheme works only while an admin keeps the migration window open, and
/// then answers like any refused signature.
async fn the_old_scheme_needs_an_open_migration_window(backend: Backend) {
    let app = start(backend).await;
    app.install_settled("ws1").await;
    let key = secret(&app, "ws1").await;
    let gh = br#"{"ref":"main"}"#;
    let legacy = |body: &'static [u8], delivery: &'static str| {
        app.http
            .post(app.url("/webhooks/custom/github?workspaceId=ws1"))
            .header("X-Hub-Signature-256", sign(&key, body))
            .header("X-Event-Type", "push")
            .header("X-GitHub-Delivery", delivery)
            .body(body.to_vec())
    };
    let (s, closed, _) = send(legacy(gh, "d-1")).await;
    assert_eq!(s, 401, "closed by default: {closed}");
    let (_, unknown, _) = custom(&app, "nope", "ci", Some(signed(&key, gh)), gh, &[]).await;
    assert_eq!(
        closed, unknown,
        "a closed window answers like an unknown workspace"
    );
    // Members cannot open it; more than 30 days is refused; admins open it.
    let r = app
        .http
        .put(app.url("/ui/custom-webhooks/legacy"))
        .bearer_auth(app.member_token("ws1"))
        .json(&json!({"days": 7}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let (s, b) = app
        .ui(
            "ws1",
            Method::PUT,
            "/ui/custom-webhooks/legacy",
            Some(json!({"days": 31})),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    let (s, b) = app
        .ui(
            "ws1",
            Method::PUT,
            "/ui/custom-webhooks/legacy",
            Some(json!({"days": 7})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert!(b["legacySignaturesUntil"].is_string(), "{b}");
    let (s, b, _) = send(legacy(gh, "d-1")).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["eventType"], "push");
    let (s, b, _) = send(legacy(br#"{"ref":"other"}"#, "d-1")).await;
    assert_eq!((s, b["status"].as_str()), (200, Some("duplicate")), "{b}");
    // Closing it again refuses the old scheme at once.
    let (s, _) = app
        .ui(
            "ws1",
            Method::PUT,
            "/ui/custom-webhooks/legacy",
            Some(json!({"days": 0})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _, _) = send(legacy(br#"{"ref":"x"}"#, "d-2")).await;
    assert_eq!(s, 401);
    app.stop().await;
}

/// The UI gives each source its signing secret (admins only).
async fn each_source_has_its_signing_secret(backend: Backend) {
    let app = start(backend).await;
    app.install_settled("ws1").await;
    let key = secret(&app, "ws1").await;
    let (s, info) = app
        .ui("ws1", Method::GET, "/ui/custom-webhooks?source=ci", None)
        .await;
    assert_eq!(s, 200, "{info}");
    assert_eq!(info["signingSecret"], source_secret(&key, "ci"));
    assert_ne!(info["signingSecret"], source_secret(&key, "billing"));
    let (s, b) = app
        .ui(
            "ws1",
            Method::GET,
            "/ui/custom-webhooks?source=Bad%20Source",
            None,
        )
        .await;
    assert_eq!(s, 400, "{b}");
    app.stop().await;
}

backend_tests!(
    captured_requests_cannot_be_replayed_or_retargeted,
    the_old_scheme_needs_an_open_migration_window,
    each_source_has_its_signing_secret,
    manifest_is_valid_and_enterprise,
    every_clockify_sample_is_accepted,
    custom_webhooks_are_never_unauthenticated,
    rotation_keeps_the_old_secret_for_the_grace_period,
    without_grace_the_old_secret_stops_at_once,
    custom_webhooks_are_rate_limited_per_workspace,
    custom_flows_run_once_per_delivery,
);
