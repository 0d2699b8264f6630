//! `/ui/*`: authentication by the Clockify user token, workspace isolation, the explorer.
#![cfg(test)]

use addon_core::auth::TokenKind;
use addon_testkit::{Backend, FakeResponse, TestApp, backend_tests};
use base64::Engine as _;
use reqwest::Method;
use serde_json::json;

async fn start(backend: Backend) -> TestApp {
    TestApp::start(&api_studio::DEFINITION, backend).await
}

const UI_GETS: &[&str] = &[
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
    // The HTML shell holds no workspace data: it is served to anyone, and its script says
    // what is wrong with a missing or expired token (tests/console.rs, in Chromium). Its
    // URLs are relative, so a base URL with a path prefix works.
    let resp = app.http.get(app.url("/ui")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = resp.text().await.unwrap();
    assert!(
        html.contains("src=\"static/app.js\"") && !html.contains("\"/static"),
        "{html}"
    );
    for asset in ["/static/app.js", "/static/app.css"] {
        let resp = app.http.get(app.url(asset)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{asset}");
        // Compressed for browsers that ask.
        let resp = app
            .http
            .get(app.url(asset))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers()["content-encoding"], "gzip", "{asset}");
    }
    // Never a response that may hold a secret.
    let resp = app
        .http
        .get(app.url(&format!(
            "/ui/dashboard?auth_token={}",
            app.token(TokenKind::User, "ws1")
        )))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("content-encoding").is_none());
    // `/ui/` goes back to `/ui`, the token kept, by a relative Location.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = no_redirects
        .get(app.url("/ui/?auth_token=t"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 301);
    assert_eq!(resp.headers()["location"], "../ui?auth_token=t");
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
    assert_eq!(
        ops["operations"].as_array().unwrap().len(),
        170,
        "every operation of Clockify's API"
    );
    assert!(ops["schemas"].as_object().unwrap().len() > 100);

    app.fake.respond(|r| {
        FakeResponse::json(200, json!([{"id": "p1", "name": "Apollo", "path": r.path}]))
    });
    let (s, b) = app
        .ui(
            "ws1",
            Method::POST,
            "/ui/explorer/execute",
            Some(json!({"operationId": "getProjects", "params": {"workspaceId": "ws2"}, "query": {"page": 2, "archived": false}})),
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
    assert_eq!(s, 422, "{b}");
    assert_eq!(b["error"]["details"], json!(["projectId is required"]));
    let (s, b) = app
        .ui(
            "ws1",
            Method::POST,
            "/ui/explorer/execute",
            Some(json!({"operationId": "getTags", "query": {"sort-order": "SIDEWAYS", "colour": "red"}})),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    let details = b["error"]["details"].as_array().unwrap();
    assert!(
        details[0]
            .as_str()
            .unwrap()
            .starts_with("sort-order: \"SIDEWAYS\" is not one of"),
        "{b}"
    );
    assert_eq!(details[1], "colour is not a query parameter of getTags");
    assert!(
        app.fake.requests().len() == 1,
        "none of them reached Clockify"
    );

    // Uploads: the file comes in the JSON request and goes to Clockify as a multipart part.
    app.fake.clear();
    let png = [0x89u8, b'P', b'N', b'G', 0, 1, 2, 255];
    let (s, b) = app
        .ui(
            "ws1",
            Method::POST,
            "/ui/explorer/execute",
            Some(json!({"operationId": "createExpense", "body": {
                "amount": 12.5, "billable": false, "categoryId": "c1", "date": "2026-12-01T00:00:00Z",
                "projectId": "p1", "userId": "u1",
                "file": {"filename": "receipt.png", "contentType": "image/png",
                         "base64": base64::engine::general_purpose::STANDARD.encode(png)},
            }})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let reqs = app.fake.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path, "/api/v1/workspaces/ws1/expenses");
    let content_type = reqs[0].header("content-type").unwrap().to_owned();
    let boundary = content_type
        .strip_prefix("multipart/form-data; boundary=")
        .unwrap_or_else(|| panic!("multipart, got {content_type}"));
    let raw = &reqs[0].raw;
    let find = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
    assert!(find(boundary.as_bytes()));
    assert!(find(
        b"name=\"file\"; filename=\"receipt.png\"\r\nContent-Type: image/png\r\n\r\n"
    ));
    assert!(find(&png), "the file's bytes, unchanged");
    assert!(find(b"name=\"amount\"\r\n\r\n12.5\r\n"));
    assert!(find(b"name=\"projectId\"\r\n\r\np1\r\n"));
    // A file that is not base64 is the caller's mistake, and nothing is sent.
    app.fake.clear();
    let (s, b) = app
        .ui(
            "ws1",
            Method::POST,
            "/ui/explorer/execute",
            Some(json!({"operationId": "uploadImage", "body": {"file": {"filename": "a.png", "base64": "%%"}}})),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    assert!(
        b["error"]["details"][0]
            .as_str()
            .unwrap()
            .contains("base64"),
        "{b}"
    );
    assert!(app.fake.requests().is_empty());

    // Reports and time off are served by their own APIs, at the addresses the user's token names.
    let mut claims = app
        .signer
        .claims(TokenKind::User, "ws1", &app.fake.api_url());
    let base = app.fake.api_url().trim_end_matches("/api").to_owned();
    claims.reports_url = Some(format!("{base}/reports"));
    claims.pto_url = Some(format!("{base}/pto"));
    let with_urls = app.signer.sign_claims(&claims).unwrap();
    for (op, body, path) in [
        (
            "generateSummaryReport",
            Some(json!({"dateRangeStart": "2026-12-01T00:00:00Z"})),
            "/reports/v1/workspaces/ws1/reports/summary",
        ),
        (
            "findPtoPoliciesForWorkspace",
            None,
            "/pto/v1/workspaces/ws1/policies",
        ),
    ] {
        app.fake.clear();
        let resp = app
            .http
            .post(app.url("/ui/explorer/execute"))
            .bearer_auth(&with_urls)
            .json(&json!({"operationId": op, "body": body}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{op}: {}", resp.text().await.unwrap());
        let reqs = app.fake.requests();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].path, path);
    }
    // Without the address in the token, a clear refusal.
    let (s, b) = app
        .ui(
            "ws1",
            Method::POST,
            "/ui/explorer/execute",
            Some(json!({"operationId": "findPtoPoliciesForWorkspace"})),
        )
        .await;
    assert_eq!(s, 409, "{b}");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("ptoUrl"),
        "{b}"
    );
    app.fake.clear();

    // Writes need an owner or admin.
    let mut claims = app.signer.claims(TokenKind::User, "ws1", "x");
    claims.workspace_role = Some("REGULAR".into());
    let regular = app.signer.sign_claims(&claims).unwrap();
    let resp = app
        .http
        .post(app.url("/ui/explorer/execute"))
        .bearer_auth(&regular)
        .json(&json!({"operationId": "createNewTag", "body": {"name": "x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(
        app.fake.requests().len(),
        0,
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

/// The dashboard's activity (per hour, per flow) and re-running a failed execution from the
/// step that failed.
async fn activity_is_counted_and_a_failed_run_runs_again(backend: Backend) {
    let app = start(backend).await;
    let hook = app.install_settled("ws1").await;
    // The first action succeeds; the second is refused by Clockify (400: not retried).
    let fail = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let f = fail.clone();
    app.fake.respond(move |r| {
        if r.path.ends_with("/tags") && f.load(std::sync::atomic::Ordering::SeqCst) {
            FakeResponse::json(400, json!({"message": "bad tag"}))
        } else {
            FakeResponse::json(200, json!({"id": "ok"}))
        }
    });
    let (s, flow) = app
        .ui(
            "ws1",
            Method::POST,
            "/ui/flows",
            Some(json!({"name": "two steps", "triggerEvents": ["NEW_TIME_ENTRY"], "actions": [
                {"name": "read", "method": "GET", "path": "/v1/workspaces/{{workspaceId}}/projects"},
                {"name": "tag", "method": "GET", "path": "/v1/workspaces/{{workspaceId}}/tags"}]})),
        )
        .await;
    assert_eq!(s, 201, "{flow}");
    let (s, _) = app
        .webhook(
            &hook,
            "NEW_TIME_ENTRY",
            &json!({"id": "te1", "workspaceId": "ws1"}),
        )
        .await;
    assert_eq!(s, 200);
    let failed = app
        .eventually(std::time::Duration::from_secs(10), || async {
            let (_, l) = app.ui("ws1", Method::GET, "/ui/executions", None).await;
            let e = l["items"][0].clone();
            (e["status"] == "FAILED").then_some(e)
        })
        .await
        .expect("the run failed");
    let (s, a) = app
        .ui("ws1", Method::GET, "/ui/dashboard/activity", None)
        .await;
    assert_eq!(s, 200, "{a}");
    let hours = a["hours"].as_array().unwrap();
    assert_eq!(hours.len(), 24);
    let now = hours.last().unwrap();
    assert_eq!(now["deliveries"], 1, "{now}");
    assert_eq!(now["runs"], json!({"FAILED": 1}));
    assert_eq!(
        hours
            .iter()
            .map(|h| h["deliveries"].as_i64().unwrap())
            .sum::<i64>(),
        1
    );
    assert_eq!(a["flows"][0]["name"], "two steps");
    assert_eq!(
        (
            a["flows"][0]["runs"].as_i64(),
            a["flows"][0]["failed"].as_i64()
        ),
        (Some(1), Some(1))
    );
    let (s, _) = app
        .ui("ws1", Method::GET, "/ui/dashboard/activity?hours=500", None)
        .await;
    assert_eq!(s, 400);
    // The lists filter by time.
    let (_, l) = app
        .ui(
            "ws1",
            Method::GET,
            "/ui/executions?since=2999-01-01T00:00:00Z",
            None,
        )
        .await;
    assert_eq!(l["items"].as_array().unwrap().len(), 0, "{l}");
    let (_, l) = app
        .ui(
            "ws1",
            Method::GET,
            "/ui/webhooks?since=2000-01-01T00:00:00Z",
            None,
        )
        .await;
    assert_eq!(l["items"].as_array().unwrap().len(), 1, "{l}");
    let (s, b) = app
        .ui("ws1", Method::GET, "/ui/webhooks?since=yesterday", None)
        .await;
    assert_eq!(s, 400, "{b}");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("RFC 3339"),
        "{b}"
    );
    // Bootstrap's burst already waited for the add-on's own per-workspace limit; none of
    // those calls was throttled by Clockify.
    let before = a["rateLimitWaits"].clone();
    assert_eq!(before["throttled"], 0, "{before}");

    // A call Clockify throttles (429, Retry-After: 1) is waited for, and counted.
    let throttled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let t = throttled.clone();
    app.fake.respond(move |_| {
        if t.swap(false, std::sync::atomic::Ordering::SeqCst) {
            FakeResponse::json(429, json!({"message": "slow down"})).header("Retry-After", "1")
        } else {
            FakeResponse::json(200, json!([]))
        }
    });
    let (s, b) = app
        .ui(
            "ws1",
            Method::POST,
            "/ui/explorer/execute",
            Some(json!({"operationId": "getTags"})),
        )
        .await;
    assert_eq!(
        (s, b["status"].as_i64(), b["attempts"].as_i64()),
        (200, Some(200), Some(2)),
        "{b}"
    );
    let waits = app
        .eventually(std::time::Duration::from_secs(5), || async {
            let (_, a) = app
                .ui("ws1", Method::GET, "/ui/dashboard/activity", None)
                .await;
            (a["rateLimitWaits"]["throttled"] == 1).then_some(a)
        })
        .await
        .expect("the wait is recorded");
    let after = &waits["rateLimitWaits"];
    // Waits are written in batches every 2 s: bootstrap's may land in the same one.
    assert!(
        after["waits"].as_i64().unwrap() > before["waits"].as_i64().unwrap(),
        "{before} then {after}"
    );
    assert!(
        after["waitMs"].as_i64().unwrap() >= before["waitMs"].as_i64().unwrap() + 1000,
        "Retry-After: 1 waited: {after}"
    );
    let hourly: i64 = waits["hours"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["rateLimitWaits"].as_i64())
        .sum();
    assert_eq!(hourly, after["waits"].as_i64().unwrap());

    // Run it again once Clockify accepts: only the step that failed is repeated.
    app.fake
        .respond(|_| FakeResponse::json(200, json!({"id": "ok"})));
    let _ = fail;
    app.fake.clear();
    let id = failed["id"].as_str().unwrap();
    let member = app.member_token("ws1");
    let resp = app
        .http
        .post(app.url(&format!("/ui/executions/{id}/rerun")))
        .bearer_auth(member)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403, "admins only");
    let (s, b) = app
        .ui(
            "ws1",
            Method::POST,
            &format!("/ui/executions/{id}/rerun"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let done = app
        .eventually(std::time::Duration::from_secs(10), || async {
            let (_, e) = app
                .ui("ws1", Method::GET, &format!("/ui/executions/{id}"), None)
                .await;
            (e["status"] == "SUCCEEDED").then_some(e)
        })
        .await
        .expect("the run succeeded the second time");
    assert_eq!(done["steps"].as_array().unwrap().len(), 2, "{done}");
    let sent = app.fake.requests();
    assert_eq!(sent.len(), 1, "only the failed step ran again: {sent:?}");
    assert!(sent[0].path.ends_with("/tags"));
    let (s, b) = app
        .ui(
            "ws1",
            Method::POST,
            &format!("/ui/executions/{id}/rerun"),
            None,
        )
        .await;
    assert_eq!(s, 409, "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("only a FAILED run"),
        "{b}"
    );
    app.stop().await;
}

backend_tests!(
    activity_is_counted_and_a_failed_run_runs_again,
    every_ui_route_needs_a_user_token,
    a_caller_sees_only_their_workspace,
    explorer_runs_catalog_operations_for_the_callers_workspace,
    one_megabyte_limit_outside_webhooks,
);
