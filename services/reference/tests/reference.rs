//! The reference add-on: manifest, the per-event webhook routes, `POST /api-call` against a
//! local fake Clockify that checks what it receives, bootstrap jobs, and the settings API.
#![cfg(test)]

use std::time::Duration;

use addon_core::auth::TokenKind;
use addon_testkit::clockify_data::{manifest_problems, webhook_samples};
use addon_testkit::{Backend, FakeResponse, TestApp, backend_tests};
use reqwest::Method;
use serde_json::{Value, json};

async fn start(backend: Backend) -> TestApp {
    TestApp::start(&reference::DEFINITION, backend).await
}

async fn call(app: &TestApp, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = app.http.post(app.url("/api-call")).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    addon_testkit::app::json_of(req.send().await.unwrap()).await
}

async fn manifest_is_valid_with_per_event_routes(backend: Backend) {
    let app = start(backend).await;
    let (_, m) = app.get("/manifest").await;
    assert_eq!(m["minimalSubscriptionPlan"], "FREE");
    assert_eq!(m["settings"], "/settings");
    let hooks = m["webhooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 10);
    let path = |e: &str| {
        hooks
            .iter()
            .find(|h| h["event"] == e)
            .map(|h| h["path"].as_str().unwrap().to_owned())
    };
    assert_eq!(
        path("NEW_TIME_ENTRY").as_deref(),
        Some("/webhooks/time/new")
    );
    assert_eq!(path("TIMER_STOPPED").as_deref(), Some("/webhooks/time"));
    assert_eq!(
        path("APPROVAL_REQUEST_STATUS_UPDATED").as_deref(),
        Some("/webhooks/approval/status-updated")
    );
    if let Some(problems) = manifest_problems(&m) {
        assert!(problems.is_empty(), "{problems:#?}");
    }
    app.stop().await;
}

async fn every_sample_is_accepted_on_its_own_route(backend: Backend) {
    let Some(samples) = webhook_samples() else {
        return;
    };
    let app = start(backend).await;
    for s in &samples {
        let token = app.install(&s.workspace).await;
        let route = reference::events::path_of(&s.event);
        assert_ne!(
            route, "/webhooks/clockify",
            "{} has a route of its own",
            s.event
        );
        let (status, resp) = app.webhook_at(route, &token, &s.event, s.raw.clone()).await;
        assert_eq!(status, 200, "{} on {route}: {resp}", s.event);
        assert_eq!(resp["status"], "accepted", "{}: {resp}", s.event);
    }
    app.stop().await;
}

async fn a_route_refuses_other_event_types(backend: Backend) {
    let app = start(backend).await;
    let token = app.install_settled("ws1").await;
    let body = json!({"id": "p1", "workspaceId": "ws1"})
        .to_string()
        .into_bytes();
    let (s, b) = app
        .webhook_at("/webhooks/time/new", &token, "NEW_PROJECT", body.clone())
        .await;
    assert_eq!(s, 400, "{b}");
    let msg = b["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("NEW_PROJECT") && msg.contains("NEW_TIME_ENTRY"),
        "{msg}"
    );
    let (_, list) = app.ui("ws1", Method::GET, "/ui/webhooks", None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "nothing stored");
    let (s, _) = app
        .webhook_at("/webhooks/project/new", &token, "NEW_PROJECT", body.clone())
        .await;
    assert_eq!(s, 200);
    // A signature is still required on the right route.
    let (s, _) = app
        .webhook_at("/webhooks/project/new", "garbage", "NEW_PROJECT", body)
        .await;
    assert_eq!(s, 401);
    app.stop().await;
}

async fn api_calls_run_on_the_callers_workspace_only(backend: Backend) {
    let app = start(backend).await;
    app.install_settled("ws1").await;
    app.install_settled("ws2").await;
    app.fake.respond(|r| {
        if r.path.ends_with("/missing") {
            FakeResponse::json(404, json!({"message": "not found"}))
        } else {
            FakeResponse::json(200, json!([{"id": "p1", "name": "Alpha"}]))
        }
    });
    let owner = app.token(TokenKind::User, "ws1");
    let (s, b) = call(&app, Some(&owner), json!({
        "method": "GET", "endpoint": "/v1/workspaces/{workspaceId}/projects", "query": {"page": 1, "archived": false}
    })).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["success"], true);
    assert_eq!(b["status_code"], 200);
    assert_eq!(b["response_body"][0]["name"], "Alpha");
    assert!(
        b["duration_ms"].is_number() && b["timestamp"].is_string(),
        "{b}"
    );
    let sent = app.fake.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].path, "/api/v1/workspaces/ws1/projects");
    assert_eq!(sent[0].query.get("page").map(String::as_str), Some("1"));
    // The installation's token (no role, no expiry), never the caller's user token.
    let sent_token = sent[0].header("x-addon-token").expect("X-Addon-Token");
    assert_ne!(sent_token, owner);
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            sent_token.split('.').nth(1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["workspaceId"], "ws1");
    assert!(
        claims.get("workspaceRole").is_none() && claims.get("exp").is_none(),
        "{claims}"
    );
    // Clockify's errors come back in the envelope.
    let (s, b) = call(
        &app,
        Some(&owner),
        json!({"method": "GET", "endpoint": "/v1/workspaces/ws1/missing"}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(b["success"], false);
    assert_eq!(b["status_code"], 404);
    assert!(b["error_message"].as_str().unwrap().contains("404"));

    app.fake.clear();
    for (body, status) in [
        (
            json!({"method": "GET", "endpoint": "/v1/workspaces/ws2/projects"}),
            403,
        ),
        (json!({"method": "GET", "endpoint": "/v1/user"}), 400),
        (
            json!({"method": "GET", "endpoint": "https://evil.example/v1/workspaces/ws1/x"}),
            400,
        ),
        (
            json!({"method": "GET", "endpoint": "/v1/workspaces/ws1/../ws2/projects"}),
            400,
        ),
        (
            json!({"method": "TRACE", "endpoint": "/v1/workspaces/ws1/projects"}),
            400,
        ),
        (
            json!({"method": "GET", "endpoint": "/v1/workspaces/ws1/projects", "body": {}}),
            400,
        ),
        (
            json!({"method": "GET", "endpoint": "/v1/workspaces/{workspaceId}/projects/{id}"}),
            400,
        ),
        (json!({"method": "GET"}), 400),
    ] {
        let (s, b) = call(&app, Some(&owner), body.clone()).await;
        assert_eq!(s, status, "{body} -> {b}");
        assert!(b["error"]["message"].is_string(), "{b}");
    }
    let (s, _) = call(
        &app,
        None,
        json!({"method": "GET", "endpoint": "/v1/workspaces/ws1/projects"}),
    )
    .await;
    assert_eq!(s, 401);
    assert!(
        app.fake.requests().is_empty(),
        "nothing refused reached Clockify"
    );

    // Writes: admins only, and only while the setting allows them.
    let member = app.member_token("ws1");
    let write = json!({"method": "POST", "endpoint": "/v1/workspaces/{workspaceId}/tags", "body": {"name": "x"}});
    let (s, _) = call(&app, Some(&member), write.clone()).await;
    assert_eq!(s, 403);
    let (s, b) = call(&app, Some(&owner), write.clone()).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(app.fake.requests()[0].body, json!({"name": "x"}));
    let (s, _) = app
        .ui(
            "ws1",
            Method::PUT,
            "/settings/state",
            Some(json!({"settings": {"api_call_allow_writes": false}})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, b) = call(&app, Some(&owner), write).await;
    assert_eq!(s, 403, "{b}");

    // 1 MB limit.
    let big = "x".repeat(1024 * 1024 + 10);
    let (s, b) = call(
        &app,
        Some(&owner),
        json!({"method": "POST", "endpoint": "/v1/workspaces/ws1/tags", "body": {"name": big}}),
    )
    .await;
    assert_eq!(s, 413, "{b}");

    // The call log: this workspace's calls, newest first, without query strings.
    let (s, log) = app.ui("ws1", Method::GET, "/api-call/log", None).await;
    assert_eq!(s, 200);
    let items = log["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{log}");
    assert_eq!(items[0]["method"], "POST");
    assert_eq!(items[2]["endpoint"], "/v1/workspaces/ws1/projects");
    assert_eq!(items[1]["status"], 404);
    let (_, other) = app.ui("ws2", Method::GET, "/api-call/log", None).await;
    assert_eq!(other["items"].as_array().unwrap().len(), 0);
    app.stop().await;
}

async fn api_calls_are_rate_limited_per_workspace(backend: Backend) {
    let app = TestApp::builder(&reference::DEFINITION, backend)
        .env("API_CALL_RATE_LIMIT", "2")
        .start()
        .await;
    app.install_settled("ws1").await;
    app.install_settled("ws2").await;
    app.fake.respond(|_| FakeResponse::json(200, json!([])));
    let get = json!({"method": "GET", "endpoint": "/v1/workspaces/{workspaceId}/tags"});
    let owner = app.token(TokenKind::User, "ws1");
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(call(&app, Some(&owner), get.clone()).await.0);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert_eq!(statuses[..2], [200, 200]);
    let (s, _) = call(&app, Some(&app.token(TokenKind::User, "ws2")), get).await;
    assert_eq!(s, 200, "another workspace's budget is its own");
    app.stop().await;
}

async fn bootstrap_jobs_are_authenticated_and_honour_settings(backend: Backend) {
    let app = start(backend).await;
    app.install_settled("ws1").await;
    app.install_settled("ws2").await;
    app.fake.respond(|r| {
        if r.path.ends_with("/users") && r.query.get("page").map(String::as_str) == Some("1") {
            FakeResponse::json(200, json!([{"id": "u1"}, {"id": "u2"}]))
        } else if r.path.ends_with("/expenses") {
            FakeResponse::json(
                200,
                json!({"expenses": {"count": 1, "expenses": [{"id": "e1"}]}}),
            )
        } else if r.path.ends_with("/invoices") {
            FakeResponse::json(200, json!({"invoices": [{"id": "i1"}], "total": 1}))
        } else if r.path.contains("/time-entries") {
            FakeResponse::json(200, json!([{"id": format!("te-{}", r.path.len())}]))
        } else {
            FakeResponse::json(200, json!([]))
        }
    });
    let owner = app.token(TokenKind::User, "ws1");
    let post = |ws: &str, token: Option<String>| {
        let mut req = app.http.post(app.url(&format!("/bootstrap/{ws}")));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    assert_eq!(post("ws1", None).await.unwrap().status(), 401);
    assert_eq!(
        post("ws2", Some(owner.clone())).await.unwrap().status(),
        403
    );
    let r = app
        .http
        .get(app.url("/bootstrap/ws2/status"))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Defaults: no time entries, no heavy endpoints.
    let r = post("ws1", Some(owner.clone())).await.unwrap();
    assert_eq!(r.status(), 202);
    app.bootstrap_finished("ws1").await;
    assert!(
        app.fake
            .requests()
            .iter()
            .all(|r| !r.path.contains("time-entries") && !r.path.ends_with("/expenses"))
    );

    // Seven days of time entries per cached user, and the heavy endpoints.
    let (s, b) = app
        .ui("ws1", Method::PUT, "/settings/state", Some(json!({"settings": {"bootstrap_time_entry_days": 7, "bootstrap_include_heavy": true}})))
        .await;
    assert_eq!(s, 200, "{b}");
    app.fake.clear();
    let r = post("ws1", Some(owner.clone())).await.unwrap();
    assert_eq!(r.status(), 202);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["options"],
        json!({"timeEntryDays": 7, "includeHeavy": true})
    );
    let done = app
        .eventually(Duration::from_secs(20), || async {
            let (_, b) = app
                .ui("ws1", Method::GET, "/bootstrap/ws1/status", None)
                .await;
            let state = b["bootstrap"]["state"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            matches!(
                state.as_str(),
                "COMPLETE" | "COMPLETE_WITH_ERRORS" | "FAILED"
            )
            .then_some(b)
        })
        .await
        .expect("bootstrap finishes");
    assert_eq!(done["bootstrap"]["state"], "COMPLETE", "{done}");
    assert!(
        done["bootstrap"]["entitiesStored"].as_i64().unwrap() >= 5,
        "{done}"
    );
    let sent = app.fake.requests();
    let entries: Vec<_> = sent
        .iter()
        .filter(|r| r.path.contains("/time-entries"))
        .collect();
    assert_eq!(entries.len(), 2, "one walk per cached user");
    assert!(
        entries
            .iter()
            .any(|r| r.path.ends_with("/user/u1/time-entries"))
    );
    let start = entries[0].query.get("start").expect("a start");
    let since =
        time::OffsetDateTime::parse(start, &time::format_description::well_known::Rfc3339).unwrap();
    let days = (time::OffsetDateTime::now_utc() - since).whole_hours() as f64 / 24.0;
    assert!((6.9..7.1).contains(&days), "{start}");
    assert!(sent.iter().any(|r| r.path.ends_with("/expenses")));
    assert!(sent.iter().any(|r| r.path.ends_with("/invoices")));
    app.stop().await;
}

async fn settings_are_validated_saved_and_for_admins(backend: Backend) {
    let app = start(backend).await;
    app.install_settled("ws1").await;
    let (s, st) = app.ui("ws1", Method::GET, "/settings/state", None).await;
    assert_eq!(s, 200, "{st}");
    assert_eq!(st["workspaceId"], "ws1");
    assert_eq!(st["installation"]["status"], "ACTIVE");
    assert_eq!(st["canEdit"], true);
    assert!(st["bootstrap"]["state"].is_string());
    let (s, b) = app
        .ui(
            "ws1",
            Method::PUT,
            "/settings/state",
            Some(json!({"settings": {"bootstrap_time_entry_days": 999, "nope": true}})),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(b["error"]["details"].as_array().unwrap().len(), 2);
    let r = app
        .http
        .put(app.url("/settings/state"))
        .bearer_auth(app.member_token("ws1"))
        .json(&json!({"settings": {"bootstrap_time_entry_days": 3}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let (s, _) = app
        .ui(
            "ws1",
            Method::PUT,
            "/settings/state",
            Some(json!({"settings": {"bootstrap_time_entry_days": 3}})),
        )
        .await;
    assert_eq!(s, 200);
    let installation = addon_core::store::installations::get(&app.state.db, "ws1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        installation.number("bootstrap_time_entry_days", 0, 0, 365),
        3
    );
    // Clockify's own SETTINGS_UPDATED still replaces the list.
    let (s, _) = app
        .lifecycle("settings-updated", "ws1", json!({"workspaceId": "ws1", "settings": [{"id": "bootstrap_time_entry_days", "name": "d", "value": "5"}]}))
        .await;
    assert_eq!(s, 200);
    let (_, st) = app.ui("ws1", Method::GET, "/settings/state", None).await;
    let days = st["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "bootstrap_time_entry_days")
        .unwrap()
        .clone();
    assert_eq!(days["value"], "5");
    app.stop().await;
}

backend_tests!(
    manifest_is_valid_with_per_event_routes,
    every_sample_is_accepted_on_its_own_route,
    a_route_refuses_other_event_types,
    api_calls_run_on_the_callers_workspace_only,
    api_calls_are_rate_limited_per_workspace,
    bootstrap_jobs_are_authenticated_and_honour_settings,
    settings_are_validated_saved_and_for_admins,
);
