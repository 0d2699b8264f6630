//! `/ui/*`: authentication by the Clockify user token, workspace isolation, the explorer.
#![cfg(test)]

use addon_core::auth::TokenKind;
use addon_testkit::{Backend, FakeResponse, TestApp, backend_tests};
use reqwest::Method;
use serde_json::json;

async fn start(backend: Backend) -> TestApp {
    TestApp::start(&api_studio::DEFINITION, backend).await
}

const UI_GETS: &[&str] = &[
    "/ui",
    "/ui/dashboard",
    "/ui/explorer/operations",
    "/ui/webhooks",
    "/ui/webhooks/x",
    "/ui/flows",
    "/ui/flows/x",
    "/ui/flows/x/executions",
    "/ui/executions",
    "/ui/executions/x",
    "/ui/bootstrap",
    "/ui/entities",
];

async fn every_ui_route_needs_a_user_token(backend: Backend) {
    let app = start(backend).await;
    app.install_settled("ws1").await;
    for path in UI_GETS {
        let resp = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 401, "{path} without a token");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized", "{path}");
    }
    for (method, path) in [
        (Method::POST, "/ui/flows"),
        (Method::POST, "/ui/explorer/execute"),
        (Method::POST, "/ui/bootstrap"),
        (Method::DELETE, "/ui/flows/x"),
    ] {
        let resp = app
            .http
            .request(method, app.url(path))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{path} without a token");
    }
    // A webhook token never expires: it is not accepted where a user token is required.
    let resp = app
        .http
        .get(app.url("/ui/dashboard"))
        .bearer_auth(app.token(TokenKind::Webhook, "ws1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // The query parameter works as Clockify's iframe sends it.
    let resp = app
        .http
        .get(app.url(&format!(
            "/ui/dashboard?auth_token={}",
            app.token(TokenKind::User, "ws1")
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // The HTML shell is served with a token.
    let resp = app
        .http
        .get(app.url(&format!(
            "/ui?auth_token={}",
            app.token(TokenKind::User, "ws1")
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    // Installed nowhere: 403.
    let (s, _) = app
        .ui("ws-not-installed", Method::GET, "/ui/dashboard", None)
        .await;
    assert_eq!(s, 403);
    app.stop().await;
}

async fn a_caller_sees_only_their_workspace(backend: Backend) {
    let app = start(backend).await;
    let t1 = app.install_settled("ws1").await;
    app.install_settled("ws2").await;
    let (_, accepted) = app
        .webhook(&t1, "NEW_TAG", &json!({"id": "t1", "workspaceId": "ws1"}))
        .await;
    let id = accepted["id"].as_str().unwrap();
    let (_, mine) = app.ui("ws1", Method::GET, "/ui/webhooks", None).await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    let (_, theirs) = app.ui("ws2", Method::GET, "/ui/webhooks", None).await;
    assert_eq!(theirs["items"].as_array().unwrap().len(), 0);
    let (s, _) = app
        .ui("ws2", Method::GET, &format!("/ui/webhooks/{id}"), None)
        .await;
    assert_eq!(s, 404);
    let (_, dash) = app.ui("ws2", Method::GET, "/ui/dashboard", None).await;
    assert_eq!(dash["workspaceId"], "ws2");
    assert_eq!(dash["webhooksLast24h"], 0);
    app.stop().await;
}

async fn explorer_runs_catalog_operations_for_the_callers_workspace(backend: Backend) {
    let app = start(backend).await;
    app.install_settled("ws1").await;
    let (s, ops) = app
        .ui("ws1", Method::GET, "/ui/explorer/operations", None)
        .await;
    assert_eq!(s, 200);
    assert!(ops["operations"].as_array().unwrap().len() > 30);

    app.fake.respond(|r| {
        FakeResponse::json(200, json!([{"id": "p1", "name": "Apollo", "path": r.path}]))
    });
    let (s, b) = app
        .ui(
            "ws1",
            Method::POST,
            "/ui/explorer/execute",
            Some(json!({"operationId": "listProjects", "params": {"workspaceId": "ws2"}, "query": {"page": "2", "archived": "false"}})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"], 200);
    assert_eq!(b["body"][0]["name"], "Apollo");
    let reqs = app.fake.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        reqs[0].path, "/api/v1/workspaces/ws1/projects",
        "the caller's workspace, whatever the params say"
    );
    assert_eq!(reqs[0].query.get("page").map(String::as_str), Some("2"));
    assert!(reqs[0].header("x-addon-token").is_some());

    // Unknown operations and missing parameters are the caller's mistakes.
    let (s, _) = app
        .ui(
            "ws1",
            Method::POST,
            "/ui/explorer/execute",
            Some(json!({"operationId": "nope"})),
        )
        .await;
    assert_eq!(s, 404);
    let (s, b) = app
        .ui(
            "ws1",
            Method::POST,
            "/ui/explorer/execute",
            Some(json!({"operationId": "getProject"})),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("projectId")
    );

    // Writes need an owner or admin.
    let mut claims = app.signer.claims(TokenKind::User, "ws1", "x");
    claims.workspace_role = Some("REGULAR".into());
    let regular = app.signer.sign_claims(&claims).unwrap();
    let resp = app
        .http
        .post(app.url("/ui/explorer/execute"))
        .bearer_auth(&regular)
        .json(&json!({"operationId": "createTag", "body": {"name": "x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(
        app.fake.requests().len(),
        1,
        "refused before calling Clockify"
    );
    app.stop().await;
}

async fn one_megabyte_limit_outside_webhooks(backend: Backend) {
    let app = start(backend).await;
    app.install_settled("ws1").await;
    let big = "x".repeat(1024 * 1024 + 1);
    let (s, b) = app
        .ui("ws1", Method::POST, "/ui/flows", Some(json!({"name": big})))
        .await;
    assert_eq!(s, 413, "{b}");
    assert_eq!(b["error"]["code"], "payload_too_large");
    let resp = app
        .http
        .post(app.url("/lifecycle/settings-updated"))
        .header(
            "X-Addon-Lifecycle-Token",
            app.token(TokenKind::Lifecycle, "ws1"),
        )
        .body(vec![b' '; 1024 * 1024 + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    app.stop().await;
}

backend_tests!(
    every_ui_route_needs_a_user_token,
    a_caller_sees_only_their_workspace,
    explorer_runs_catalog_operations_for_the_callers_workspace,
    one_megabyte_limit_outside_webhooks,
);
