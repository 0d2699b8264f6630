//! What the database cannot do is answered as what it is: text PostgreSQL cannot store (a NUL
//! character) is the client's mistake (400), and a database that cannot serve (a closed pool, a
//! refused or dropped connection) is worth a retry (503 with Retry-After), never a 500. Every
//! answer is JSON. On PostgreSQL and SQLite (which stores NUL, so there the same requests
//! succeed or miss).
#![cfg(test)]

use addon_core::auth::TokenKind;
use addon_testkit::app::json_of;
use addon_testkit::{Backend, TestApp, backend_tests};
use reqwest::Method;
use serde_json::{Value, json};

fn assert_client_error(backend: Backend, what: &str, status: u16, body: &Value) {
    assert!(status < 500, "{what}: {status} {body}");
    assert!(
        body["error"]["code"].is_string() || status < 300,
        "{what}: not JSON: {body}"
    );
    if backend == Backend::Postgres && status == 400 {
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("NUL"),
            "{what}: {body}"
        );
    }
}

async fn nul_characters_are_a_client_error_on_every_route(backend: Backend) {
    let app = TestApp::start(&api_studio::DEFINITION, backend).await;
    let token = app.install_settled("ws1").await;

    let (s, b) = app.ui("ws1", Method::GET, "/ui/flows/a%00b", None).await;
    assert_client_error(backend, "NUL in a path", s, &b);
    let (s, b) = app
        .ui("ws1", Method::GET, "/ui/webhooks?eventType=A%00B", None)
        .await;
    assert_client_error(backend, "NUL in a query", s, &b);
    let flow = json!({
        "name": "a\u{0}b",
        "triggerEvents": ["NEW_TIME_ENTRY"],
        "actions": [{"method": "GET", "path": "/v1/user"}]
    });
    let (s, b) = app.ui("ws1", Method::POST, "/ui/flows", Some(flow)).await;
    assert_client_error(backend, "NUL in a JSON string", s, &b);
    if backend == Backend::Postgres {
        assert_eq!(s, 400, "{b}");
    }
    let body = json!({"id": "te-nul", "workspaceId": "ws1", "description": "a\u{0}b"});
    let (s, b) = app.webhook(&token, "NEW_TIME_ENTRY", &body).await;
    assert_client_error(backend, "NUL in a webhook body", s, &b);

    // A NUL in a token claim, before any authentication succeeds.
    let forged = app.token(TokenKind::User, "ws\u{0}1");
    let resp = app
        .http
        .get(app.url("/ui/flows"))
        .bearer_auth(&forged)
        .send()
        .await
        .unwrap();
    let (s, b) = json_of(resp).await;
    assert_client_error(backend, "NUL in a token claim", s, &b);

    // Nothing broke: the add-on still serves and stores.
    let (s, _) = app
        .webhook(
            &token,
            "NEW_TIME_ENTRY",
            &json!({"id": "te-ok", "workspaceId": "ws1"}),
        )
        .await;
    assert_eq!(s, 200);
    app.stop().await;
}

async fn a_database_that_cannot_serve_is_a_503_with_retry_after(backend: Backend) {
    let app = TestApp::start(&api_studio::DEFINITION, backend).await;
    let token = app.install_settled("ws1").await;
    app.state.db.pool().close().await;
    let resp = app
        .http
        .get(app.url("/ui/flows"))
        .bearer_auth(app.token(TokenKind::User, "ws1"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("2")
    );
    let (s, b) = json_of(resp).await;
    assert_eq!(s, 503, "{b}");
    assert_eq!(b["error"]["code"], "unavailable", "{b}");
    let (s, b) = app
        .webhook(
            &token,
            "NEW_TIME_ENTRY",
            &json!({"id": "te-1", "workspaceId": "ws1"}),
        )
        .await;
    assert_eq!(s, 503, "Clockify retries a 503: {b}");
    app.stop().await;
}

backend_tests!(
    nul_characters_are_a_client_error_on_every_route,
    a_database_that_cannot_serve_is_a_503_with_retry_after,
);
