//! Token kinds judged by what Clockify puts in them, revocation on DELETED that replays cannot
//! undo, authentication before the body is read, and the admin role for every write.
#![cfg(test)]

use std::time::Duration;

use addon_core::auth::TokenKind;
use addon_core::store::installations::{self, InstallStatus};
use addon_testkit::{Backend, TestApp, backend_tests, json_of};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn start(backend: Backend) -> TestApp {
    TestApp::start(&api_studio::DEFINITION, backend).await
}

fn message(b: &Value) -> String {
    b["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn status_of(app: &TestApp, ws: &str) -> InstallStatus {
    installations::get(&app.state.db, ws)
        .await
        .unwrap()
        .unwrap()
        .status
}

/// Every token that is not a lifecycle token is refused on every lifecycle route: a member's
/// or an owner's user token, the registered webhook token, the installation token.
async fn only_lifecycle_tokens_drive_the_lifecycle(backend: Backend) {
    let app = start(backend).await;
    let install_token = app.token(TokenKind::Installation, "ws1");
    let webhook_token = app.token(TokenKind::Webhook, "ws1");
    let installed = json!({
        "addonId": "a1", "authToken": install_token, "workspaceId": "ws1", "asUser": "u1",
        "apiUrl": app.fake.api_url(), "addonUserId": "au1",
        "webhooks": [{"path": "https://addon.test.example/webhooks/clockify", "webhookType": "ADDON", "authToken": webhook_token}]
    });
    let (s, b) = app
        .lifecycle_with(
            &app.token(TokenKind::Lifecycle, "ws1"),
            "installed",
            &installed,
        )
        .await;
    assert_eq!(s, 200, "{b}");

    let deleted = json!({"addonId": "a1", "workspaceId": "ws1", "asUser": "u1"});
    let reinstall_empty = json!({
        "addonId": "a1", "authToken": app.token(TokenKind::Installation, "ws1"), "workspaceId": "ws1",
        "apiUrl": app.fake.api_url(), "webhooks": []
    });
    let cases = [
        (
            "owner user token",
            app.token(TokenKind::User, "ws1"),
            "user token",
        ),
        ("member user token", app.member_token("ws1"), "user token"),
        (
            "webhook token",
            webhook_token.clone(),
            "not a lifecycle token",
        ),
        (
            "installation token",
            install_token.clone(),
            "not a lifecycle token",
        ),
    ];
    for (what, token, expected) in &cases {
        for (event, body) in [
            ("deleted", &deleted),
            ("installed", &reinstall_empty),
            (
                "status-changed",
                &json!({"workspaceId": "ws1", "status": "INACTIVE"}),
            ),
        ] {
            let (s, b) = app.lifecycle_with(token, event, body).await;
            assert_eq!(s, 401, "{what} on /lifecycle/{event}: {b}");
            assert!(message(&b).contains(expected), "{what}: {b}");
        }
    }
    assert_eq!(status_of(&app, "ws1").await, InstallStatus::Active);
    // The webhook token still delivers: nothing above changed the installation.
    let (s, b) = app
        .webhook(
            &webhook_token,
            "NEW_TAG",
            &json!({"id": "t1", "workspaceId": "ws1"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");

    // A lifecycle token is not a user token, and neither is a webhook token.
    for token in [app.token(TokenKind::Lifecycle, "ws1"), webhook_token] {
        let r = app
            .http
            .get(app.url("/ui/dashboard"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let (s, b) = json_of(r).await;
        assert_eq!(s, 401, "{b}");
        assert!(message(&b).contains("user token is required"), "{b}");
    }
    app.stop().await;
}

/// `nbf` and `iat` in the future are refused.
async fn tokens_from_the_future_are_refused(backend: Backend) {
    let app = start(backend).await;
    app.install("ws1").await;
    let now = addon_core::time::now_secs();
    let mut iat = app.signer.claims(TokenKind::User, "ws1", "x");
    iat.iat = Some(now + 3600);
    let mut claims = serde_json::to_value(app.signer.claims(TokenKind::User, "ws1", "x")).unwrap();
    claims["nbf"] = json!(now + 3600);
    for token in [
        app.signer.sign_claims(&iat).unwrap(),
        app.signer.sign_claims(&claims).unwrap(),
    ] {
        let r = app
            .http
            .get(app.url("/ui/dashboard"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let (s, b) = json_of(r).await;
        assert_eq!(s, 401, "{b}");
        assert!(message(&b).contains("not valid yet"), "{b}");
    }
    app.stop().await;
}

/// After DELETED, no replay revives the installation or its tokens: not the INSTALLED call
/// replayed as it was, not its body under a fresh lifecycle token, not the DELETED token.
async fn deleted_revokes_for_good(backend: Backend) {
    let app = start(backend).await;
    let install_token = app.token(TokenKind::Installation, "ws1");
    let webhook_token = app.token(TokenKind::Webhook, "ws1");
    let installed = json!({
        "addonId": "a1", "authToken": install_token, "workspaceId": "ws1", "asUser": "u1",
        "apiUrl": app.fake.api_url(), "addonUserId": "au1",
        "webhooks": [{"path": "https://addon.test.example/webhooks/clockify", "webhookType": "ADDON", "authToken": webhook_token}]
    });
    let install_lifecycle = app.token(TokenKind::Lifecycle, "ws1");
    let (s, b) = app
        .lifecycle_with(&install_lifecycle, "installed", &installed)
        .await;
    assert_eq!(s, 200, "{b}");
    let old_user = app.token(TokenKind::User, "ws1");
    // Tokens carry whole seconds: let the deletion fall in a later second than their issue.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let delete_token = app.token(TokenKind::Lifecycle, "ws1");
    let deleted = json!({"addonId": "a1", "workspaceId": "ws1", "asUser": "u1"});
    let (s, b) = app.lifecycle_with(&delete_token, "deleted", &deleted).await;
    assert_eq!(s, 200, "{b}");

    // The INSTALLED call replayed byte for byte: its token predates the deletion.
    let (s, b) = app
        .lifecycle_with(&install_lifecycle, "installed", &installed)
        .await;
    assert_eq!(s, 401, "{b}");
    assert!(message(&b).contains("revoked"), "{b}");
    // The DELETED token is on the revocation list.
    let (s, b) = app
        .lifecycle_with(&delete_token, "installed", &installed)
        .await;
    assert_eq!(s, 401, "{b}");
    assert!(message(&b).contains("revoked"), "{b}");
    // The old body under a fresh lifecycle token: its tokens were revoked.
    let (s, b) = app.lifecycle("installed", "ws1", installed.clone()).await;
    assert_eq!(s, 422, "{b}");
    let details = b["error"]["details"].to_string();
    assert!(details.contains("authToken: the token was revoked"), "{b}");
    assert!(
        details.contains("webhooks[0].authToken: the token was revoked"),
        "{b}"
    );
    assert_eq!(status_of(&app, "ws1").await, InstallStatus::Deleted);

    // A genuine re-install (new tokens) works; the old webhook and user tokens stay dead.
    let new_webhook = app.install("ws1").await;
    assert_eq!(status_of(&app, "ws1").await, InstallStatus::Active);
    let (s, b) = app
        .webhook(
            &webhook_token,
            "NEW_TAG",
            &json!({"id": "t1", "workspaceId": "ws1"}),
        )
        .await;
    assert_eq!(s, 401, "old webhook token after re-install: {b}");
    let (s, b) = app
        .webhook(
            &new_webhook,
            "NEW_TAG",
            &json!({"id": "t1", "workspaceId": "ws1"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let r = app
        .http
        .get(app.url("/ui/dashboard"))
        .bearer_auth(&old_user)
        .send()
        .await
        .unwrap();
    let (s, b) = json_of(r).await;
    assert_eq!(s, 401, "user token issued before the deletion: {b}");
    let (s, b) = app.ui("ws1", Method::GET, "/ui/dashboard", None).await;
    assert_eq!(s, 200, "{b}");
    app.stop().await;
}

/// Sends the head of a request that announces `length` bytes and only a few of them, and
/// returns the status the server answers with: it can only answer at once if it judged the
/// request by its headers.
async fn status_before_body(app: &TestApp, path: &str, headers: &[(&str, String)]) -> u16 {
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        5 * 1024 * 1024 + 1
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n{\"a\":");
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .expect("an answer without the body")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    text.split(' ').nth(1).unwrap_or("0").parse().unwrap_or(0)
}

/// A bad token is refused from the headers: the body (here 5 MB + 1 byte, never sent) is
/// not read, so the answer is 401, not 413, and comes at once.
async fn bad_tokens_are_refused_before_the_body_is_read(backend: Backend) {
    let app = start(backend).await;
    app.install("ws1").await;
    let forged = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln".to_owned();
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        (
            "/lifecycle/installed",
            vec![("X-Addon-Lifecycle-Token", forged.clone())],
        ),
        ("/lifecycle/deleted", vec![]),
        (
            "/webhooks/clockify",
            vec![
                ("Clockify-Signature", forged.clone()),
                ("Clockify-Webhook-Event-Type", "NEW_TAG".into()),
            ],
        ),
        (
            "/webhooks/clockify",
            vec![("Clockify-Webhook-Event-Type", "NEW_TAG".into())],
        ),
        (
            "/ui/flows",
            vec![("Authorization", format!("Bearer {forged}"))],
        ),
    ];
    for (path, headers) in &cases {
        assert_eq!(
            status_before_body(&app, path, headers).await,
            401,
            "{path} {headers:?}"
        );
    }
    app.stop().await;
}

/// Members read; only owners and admins write flows and start bootstrap.
async fn members_cannot_write(backend: Backend) {
    let app = start(backend).await;
    app.install_settled("ws1").await;
    let flow = json!({"name": "f", "triggerEvents": ["NEW_TAG"], "actions": [{"method": "DELETE", "path": "/v1/workspaces/{{workspaceId}}/tags/{{$.id}}"}]});
    let (s, created) = app
        .ui("ws1", Method::POST, "/ui/flows", Some(flow.clone()))
        .await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let member = app.member_token("ws1");
    let call = |method: Method, path: String, body: Option<Value>| {
        let mut req = app
            .http
            .request(method, app.url(&path))
            .bearer_auth(&member);
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move { json_of(req.send().await.unwrap()).await }
    };
    for (method, path, body) in [
        (Method::POST, "/ui/flows".to_owned(), Some(flow.clone())),
        (Method::PUT, format!("/ui/flows/{id}"), Some(flow.clone())),
        (Method::DELETE, format!("/ui/flows/{id}"), None),
        (Method::POST, "/ui/bootstrap".to_owned(), None),
    ] {
        let (s, b) = call(method.clone(), path.clone(), body).await;
        assert_eq!(s, 403, "member {method} {path}: {b}");
        assert!(message(&b).contains("owners and admins"), "{b}");
    }
    let (s, b) = call(Method::GET, "/ui/flows".to_owned(), None).await;
    assert_eq!(s, 200, "members read flows: {b}");
    assert_eq!(b["items"].as_array().unwrap().len(), 1);
    app.stop().await;
}

backend_tests!(
    only_lifecycle_tokens_drive_the_lifecycle,
    tokens_from_the_future_are_refused,
    deleted_revokes_for_good,
    bad_tokens_are_refused_before_the_body_is_read,
    members_cannot_write,
);
