//! The console in headless Chromium, used as a person uses it: the dashboard's counts, the API
//! explorer finding an operation, filling its form and running it against the fake Clockify (a
//! read at once, a write only after its confirmation), the recent calls; the dark theme from
//! the token; a missing or expired session said plainly; the whole console behind a base URL
//! with a path prefix; axe-core (from ui/app/node_modules, installed by scripts/ui.sh) finding
//! no serious or critical WCAG 2.1 AA violation on any section, in either theme.
//!
//! With `UI_SCREENSHOTS=<dir>` it also saves a screenshot of every section there
//! (`./scripts/screenshots.sh` writes docs/ui/).
#![cfg(test)]

use std::time::Duration;

use addon_core::auth::TokenKind;
use addon_testkit::browser::{Driver, axe, axe_source, shot, text_when};
use addon_testkit::{Backend, FakeResponse, TestApp};
use fantoccini::{Client, Locator};
use reqwest::Method;
use serde_json::{Value, json};

/// A reverse proxy that serves the app under `/addon/…`, as an ingress with a path does.
async fn prefix_proxy(upstream: String) -> String {
    use axum::body::Body;
    use axum::extract::Request;
    use axum::response::Response;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let app = axum::Router::new().fallback(move |req: Request| {
        let (http, upstream) = (http.clone(), upstream.clone());
        async move {
            let path = req.uri().path().to_owned();
            let Some(rest) = path.strip_prefix("/addon") else {
                return Response::builder().status(404).body(Body::empty()).unwrap();
            };
            let query = req
                .uri()
                .query()
                .map(|q| format!("?{q}"))
                .unwrap_or_default();
            let method = req.method().clone();
            let headers = req.headers().clone();
            let body = axum::body::to_bytes(req.into_body(), 1 << 20)
                .await
                .unwrap();
            let mut out = http.request(method, format!("{upstream}{rest}{query}"));
            for name in ["authorization", "content-type", "accept"] {
                if let Some(v) = headers.get(name) {
                    out = out.header(name, v);
                }
            }
            let resp = out.body(body).send().await.unwrap();
            let mut b = Response::builder().status(resp.status().as_u16());
            for name in ["content-type", "location"] {
                if let Some(v) = resp.headers().get(name) {
                    b = b.header(name, v);
                }
            }
            b.body(Body::from(resp.bytes().await.unwrap())).unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://127.0.0.1:{port}/addon")
}

fn token_with(
    app: &TestApp,
    workspace: &str,
    edit: impl FnOnce(&mut addon_core::auth::ClockifyClaims),
) -> String {
    let mut claims = app
        .signer
        .claims(TokenKind::User, workspace, &app.fake.api_url());
    edit(&mut claims);
    app.signer.sign_claims(&claims).unwrap()
}

async fn click(c: &Client, css: &str) {
    let mut last = None;
    for _ in 0..100 {
        match c.find(Locator::Css(css)).await {
            Ok(el) => match el.click().await {
                Ok(_) => return,
                Err(e) => last = Some(e.to_string()),
            },
            Err(e) => last = Some(e.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot click {css}: {last:?}");
}

async fn tab(c: &Client, name: &str) {
    click(c, &format!("#tab-{name}")).await;
    text_when(c, &format!("#panel-{name}"), |t| !t.contains("Loading")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_works_in_chromium_as_a_person_uses_it() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let axe_src = axe_source();
    let app = TestApp::start(&api_studio::DEFINITION, Backend::Postgres).await;
    app.fake
        .respond(|r| match (r.method.as_str(), r.path.as_str()) {
            ("GET", p) if p.ends_with("/tags") => FakeResponse::json(
                200,
                json!([{"id": "t1", "name": "Billable", "workspaceId": "ws1", "archived": false}]),
            ),
            ("POST", p) if p.ends_with("/tags") => FakeResponse::json(
                201,
                json!({"id": "t2", "name": r.body["name"], "workspaceId": "ws1"}),
            ),
            _ => FakeResponse::json(200, json!([])),
        });
    let hook = app.install_settled("ws1").await;
    // Some history for the dashboard: a flow, and a delivery that runs it.
    let (s, b) = app
        .ui(
            "ws1",
            Method::POST,
            "/ui/flows",
            Some(
                json!({"name": "Tag new entries", "triggerEvents": ["NEW_TIME_ENTRY"],
                "actions": [{"method": "GET", "path": "/v1/workspaces/{{workspaceId}}/tags"}]}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let (s, _) = app
        .webhook(
            &hook,
            "NEW_TIME_ENTRY",
            &json!({"id": "te1", "workspaceId": "ws1"}),
        )
        .await;
    assert_eq!(s, 200);
    app.eventually(Duration::from_secs(10), || async {
        let (_, list) = app.ui("ws1", Method::GET, "/ui/executions", None).await;
        (list["items"][0]["status"] == "SUCCEEDED").then_some(())
    })
    .await
    .expect("the flow ran");
    app.fake.clear();

    let c = &driver.client;
    let token = app.token(TokenKind::User, "ws1");
    let mut violations = Vec::new();
    let mut check = async |c: &Client, page: &str| {
        if let Some(src) = &axe_src {
            for v in axe(c, src).await {
                violations.push(format!("{page}: {v}"));
            }
        }
    };

    // The dashboard reads at a glance, and its numbers lead to their lists.
    let started = std::time::Instant::now();
    c.goto(&app.url(&format!("/ui?auth_token={token}")))
        .await
        .unwrap();
    text_when(c, "header h1", |t| {
        t == "API Studio" || t.contains("Studio")
    })
    .await;
    let stats = text_when(c, ".stats", |t| t.contains("webhooks received")).await;
    eprintln!(
        "console: dashboard shown {:.0} ms after navigation",
        started.elapsed().as_secs_f64() * 1000.0
    );
    assert!(stats.contains("1\nwebhooks received"), "{stats}");
    assert!(
        stats.contains("1\nsucceeded") && stats.contains("100%"),
        "{stats}"
    );
    // The charts: per hour, with their numbers in a table too.
    let charts = text_when(c, ".charts", |t| t.contains("Flow runs")).await;
    assert!(
        charts.contains("Webhooks received: 1 in the last 24 hours"),
        "{charts}"
    );
    assert!(
        charts.contains("Flow runs: 1 in the last 24 hours"),
        "{charts}"
    );
    let bars = c
        .execute(
            "return document.querySelectorAll('.chart rect.bar-ok').length",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(bars, 1, "one succeeded run, one bar");
    let waits = text_when(c, ".stats.waits", |t| t.contains("calls waited")).await;
    assert!(waits.contains("(0 throttled by Clockify)"), "{waits}");
    let slowest = text_when(c, "section[aria-labelledby=slowest-title]", |t| {
        t.contains("Tag new entries")
    })
    .await;
    assert!(slowest.contains(" ms"), "{slowest}");
    shot(c, "dashboard").await;
    check(c, "dashboard").await;
    // An entity count leads to the entities it counts.
    c.find(Locator::XPath(
        "//button[contains(@class,'stat')][.//span[@class='label' and text()='tags']]",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    let kept = text_when(c, ".entities", |t| t.contains("Billable")).await;
    assert!(kept.contains("t1"), "{kept}");
    click(c, "#tab-dashboard").await;
    click(c, "button.stat:nth-child(3)").await;
    let runs = text_when(c, "#panel-executions table", |t| {
        t.contains("NEW_TIME_ENTRY")
    })
    .await;
    assert!(
        runs.contains("SUCCEEDED") && runs.contains("Tag new entries"),
        "{runs}"
    );
    let filter = c.find(Locator::Css("#ex-status")).await.unwrap();
    assert_eq!(
        filter.prop("value").await.unwrap().as_deref(),
        Some("SUCCEEDED")
    );
    // The time filter: nothing started in the future, the run within the last hour.
    c.find(Locator::Css("#ex-time"))
        .await
        .unwrap()
        .select_by_value("1")
        .await
        .unwrap();
    text_when(c, "#panel-executions table", |t| {
        t.contains("NEW_TIME_ENTRY")
    })
    .await;
    // A run step by step.
    click(c, "#panel-executions td button.link").await;
    let timeline = text_when(c, ".timeline", |t| t.contains("/v1/workspaces/ws1/tags")).await;
    assert!(
        timeline.contains("GET") && timeline.contains("200 in"),
        "{timeline}"
    );
    shot(c, "executions").await;
    check(c, "executions").await;

    // The explorer: all of Clockify's API, searched, a form, an answer.
    tab(c, "explorer").await;
    let count = text_when(c, ".catalogue [role=status]", |t| t.contains(" of ")).await;
    assert_eq!(count, "170 of 170");
    let search = c.find(Locator::Css("#op-search")).await.unwrap();
    search.send_keys("find tags").await.unwrap();
    text_when(c, ".catalogue [role=status]", |t| t != "170 of 170").await;
    c.find(Locator::XPath(
        "//button[contains(., 'Find tags on workspace')]",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    text_when(c, ".operation h2", |t| t == "Find tags on workspace").await;
    let name = c.find(Locator::Css("#f-query-name")).await.unwrap();
    name.send_keys("Bill").await.unwrap();
    click(c, ".operation button[type=submit]").await;
    let answer = text_when(c, ".answer", |t| t.contains("Billable")).await;
    assert!(answer.starts_with("200 in "), "{answer}");
    let sent = app.fake.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].path, "/api/v1/workspaces/ws1/tags");
    assert_eq!(sent[0].query.get("name").map(String::as_str), Some("Bill"));
    shot(c, "explorer").await;
    check(c, "explorer").await;

    // A write waits for its confirmation; cancelled, nothing is sent.
    search.clear().await.unwrap();
    search.send_keys("add a new tag").await.unwrap();
    c.find(Locator::XPath("//button[contains(., 'Add a new tag')]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    text_when(c, ".operation h2", |t| t == "Add a new tag").await;
    c.find(Locator::Css("#f-body-name"))
        .await
        .unwrap()
        .send_keys("Sprint 7")
        .await
        .unwrap();
    click(c, ".operation button[type=submit]").await;
    text_when(c, "dialog[open] h3", |t| t == "Change workspace data?").await;
    shot(c, "explorer-confirm").await;
    click(c, "dialog[open] button[value=no]").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.fake.requests().len(), 1, "cancelled: nothing sent");
    click(c, ".operation button[type=submit]").await;
    click(c, "dialog[open] button[value=yes]").await;
    let answer = text_when(c, ".answer", |t| t.contains("Sprint 7")).await;
    assert!(answer.starts_with("201 in "), "{answer}");
    let sent = app.fake.requests();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        (sent[1].method.as_str(), &sent[1].body),
        ("POST", &json!({"name": "Sprint 7"}))
    );
    // Recent calls, kept for this user, refill the form.
    let recent = text_when(c, ".recent", |t| t.contains("Add a new tag")).await;
    assert!(recent.contains("Find tags on workspace → 200"), "{recent}");
    c.goto(&app.url(&format!("/ui?auth_token={token}")))
        .await
        .unwrap();
    tab(c, "explorer").await;
    c.find(Locator::XPath(
        "//section[@class='recent']//button[contains(., 'Find tags')]",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    let refilled = c.find(Locator::Css("#f-query-name")).await.unwrap();
    assert_eq!(
        refilled.prop("value").await.unwrap().as_deref(),
        Some("Bill")
    );

    // An upload: the file input reads the file, the add-on sends it to Clockify as a multipart
    // part (and the recent list keeps its name, never its bytes).
    let photo = std::env::temp_dir().join(format!("console-photo-{}.png", std::process::id()));
    std::fs::write(&photo, b"\x89PNG\r\n\x1a\n console test image").unwrap();
    app.fake.clear();
    let search = c.find(Locator::Css("#op-search")).await.unwrap();
    search.send_keys("add photo").await.unwrap();
    c.find(Locator::XPath("//button[contains(., 'Add photo')]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    text_when(c, ".operation h2", |t| t == "Add photo").await;
    c.find(Locator::Css("#f-body-file"))
        .await
        .unwrap()
        .send_keys(photo.to_str().unwrap())
        .await
        .unwrap();
    text_when(c, "#f-body-file-file", |t| {
        t.starts_with("Chosen: console-photo-")
    })
    .await;
    click(c, ".operation button[type=submit]").await;
    click(c, "dialog[open] button[value=yes]").await;
    let answer = text_when(c, ".answer", |t| t.contains(" in ")).await;
    assert!(answer.starts_with("200 in "), "{answer}");
    let sent = app.fake.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].path, "/api/v1/file/image");
    assert!(
        sent[0]
            .header("content-type")
            .is_some_and(|t| t.starts_with("multipart/form-data; boundary=")),
        "{:?}",
        sent[0].header("content-type")
    );
    let raw = &sent[0].raw;
    let holds = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
    assert!(holds(b"Content-Type: image/png"));
    assert!(
        holds(b"\x89PNG\r\n\x1a\n console test image"),
        "the file's bytes"
    );
    shot(c, "explorer-upload").await;
    check(c, "explorer (upload)").await;
    let stored: String = c
        .execute("return JSON.stringify(localStorage)", vec![])
        .await
        .unwrap()
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        stored.contains("console-photo-") && !stored.contains("base64"),
        "recent calls keep no file: {stored}"
    );
    let _ = std::fs::remove_file(&photo);

    // The webhook log's payload viewer.
    tab(c, "webhooks").await;
    click(c, "#panel-webhooks td button.link").await;
    let payload = text_when(c, ".payload", |t| t.contains("te1")).await;
    assert!(
        payload.starts_with("NEW_TIME_ENTRY from clockify"),
        "{payload}"
    );
    assert!(payload.contains("SUCCEEDED"), "its run: {payload}");
    shot(c, "webhooks").await;
    check(c, "webhooks").await;
    // The other sections, and a flow deleted only after its confirmation.
    for section in ["bootstrap", "flows"] {
        tab(c, section).await;
        shot(c, section).await;
        check(c, section).await;
    }
    text_when(c, "#panel-flows table", |t| t.contains("Tag new entries")).await;
    click(c, "#panel-flows button.danger").await;
    text_when(c, "dialog[open] h3", |t| t.contains("Tag new entries")).await;
    click(c, "dialog[open] button[value=yes]").await;
    text_when(c, "#panel-flows", |t| t.contains("No flows yet")).await;

    // The flow builder, end to end: trigger, a condition on the event's fields, a Clockify
    // operation with a template, a test run that sends nothing, then the real thing.
    app.fake.clear();
    click(c, "#panel-flows button.primary").await;
    text_when(c, ".builder h2", |t| t == "New flow").await;
    c.find(Locator::Css("#flow-name"))
        .await
        .unwrap()
        .send_keys("Find the entry's tag")
        .await
        .unwrap();
    c.find(Locator::Css("#event-filter"))
        .await
        .unwrap()
        .send_keys("new time entry")
        .await
        .unwrap();
    c.find(Locator::XPath(
        "//label[contains(@class,'chip')][normalize-space()='NEW_TIME_ENTRY']/input",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    text_when(c, "label[for=event-filter]", |t| t.contains("(1 chosen)")).await;
    c.find(Locator::XPath(
        "//button[normalize-space()='Add a condition']",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    // The event's real fields are offered.
    let offered = c
        .execute(
            "return Array.from(document.querySelectorAll('#field-paths option')).map(o => o.value)",
            vec![],
        )
        .await
        .unwrap();
    let offered: Vec<&str> = offered
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        offered.contains(&"$.billable") && offered.contains(&"$.timeInterval.start"),
        "{offered:?}"
    );
    c.find(Locator::Css("#cond-path-0"))
        .await
        .unwrap()
        .send_keys("$.billable")
        .await
        .unwrap();
    c.find(Locator::Css("#cond-value-0"))
        .await
        .unwrap()
        .send_keys("true")
        .await
        .unwrap();
    c.find(Locator::XPath(
        "//button[normalize-space()='Add a Clockify action']",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    c.find(Locator::Css("#act-0-op"))
        .await
        .unwrap()
        .select_by_value("getTags")
        .await
        .unwrap();
    let path = c.find(Locator::Css("#act-0-path")).await.unwrap();
    assert_eq!(
        path.prop("value").await.unwrap().as_deref(),
        Some("/v1/workspaces/{{workspaceId}}/tags")
    );
    c.find(Locator::XPath("//button[normalize-space()='Add query']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let key = c
        .find(Locator::Css("[aria-label='Query 1 name']"))
        .await
        .unwrap();
    key.clear().await.unwrap();
    key.send_keys("name\t").await.unwrap();
    c.find(Locator::Css("[aria-label='Query 1 value']"))
        .await
        .unwrap()
        .send_keys("{{$.description}}")
        .await
        .unwrap();
    // A second action whose body is a form from the operation's schema, with a placeholder.
    c.find(Locator::XPath(
        "//button[normalize-space()='Add a Clockify action']",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    c.find(Locator::Css("#act-1-op"))
        .await
        .unwrap()
        .select_by_value("createNewTag")
        .await
        .unwrap();
    c.find(Locator::Css("#f-act-1-body-name"))
        .await
        .unwrap()
        .send_keys("{{$.description}}")
        .await
        .unwrap();
    c.execute("window.scrollTo(0, 0)", vec![]).await.unwrap();
    shot(c, "flow-builder").await;
    // A test run on the stored delivery (not billable), then on a sample that is.
    click(c, ".testrun button.primary").await;
    let report = text_when(c, ".report", |t| t.contains("would")).await;
    assert!(
        report.starts_with("It would not run: its conditions do not hold"),
        "{report}"
    );
    c.find(Locator::Css("#testrun-with"))
        .await
        .unwrap()
        .select_by_value("sample")
        .await
        .unwrap();
    let sample = c.find(Locator::Css("#testrun-sample")).await.unwrap();
    sample.clear().await.unwrap();
    sample
        .send_keys(r#"{"id": "te2", "billable": true, "description": "Bill"}"#)
        .await
        .unwrap();
    click(c, ".testrun button.primary").await;
    let report = text_when(c, ".report", |t| t.starts_with("It would run.")).await;
    assert!(
        report.contains("/api/v1/workspaces/ws1/tags?name=Bill"),
        "{report}"
    );
    assert!(report.contains("✓ yes"), "{report}");
    assert!(
        report.contains("\"name\": \"Bill\""),
        "the body, resolved: {report}"
    );
    shot(c, "flow-test-run").await;
    check(c, "flow builder").await;
    assert!(app.fake.requests().is_empty(), "a test run sends nothing");
    click(c, ".builder .save-bar button.primary").await;
    let list = text_when(c, "#panel-flows table", |t| {
        t.contains("Find the entry's tag")
    })
    .await;
    assert!(list.contains("NEW_TIME_ENTRY"), "{list}");
    // It runs on a signed webhook, as built.
    let (s, _) = app
        .webhook(
            &hook,
            "NEW_TIME_ENTRY",
            &json!({"id": "te3", "workspaceId": "ws1", "billable": true, "description": "Bill"}),
        )
        .await;
    assert_eq!(s, 200);
    app.fake.wait_for(2, Duration::from_secs(10)).await;
    let sent = app.fake.requests();
    assert_eq!(sent[0].path, "/api/v1/workspaces/ws1/tags");
    assert_eq!(sent[0].query.get("name").map(String::as_str), Some("Bill"));
    assert_eq!(
        (sent[1].method.as_str(), &sent[1].body),
        ("POST", &json!({"name": "Bill"}))
    );
    // Duplicate (disabled), and enable/disable from the list.
    click(c, "#panel-flows .row-actions button:nth-child(2)").await;
    c.find(Locator::Css("#flow-enabled")).await.unwrap();
    click(c, ".builder .save-bar button.primary").await;
    let list = text_when(c, "#panel-flows table", |t| t.contains("(copy)")).await;
    assert_eq!(list.matches("Find the entry's tag").count(), 2, "{list}");
    let (_, flows) = app.ui("ws1", Method::GET, "/ui/flows", None).await;
    let copy = flows["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"].as_str().unwrap().ends_with("(copy)"))
        .unwrap()
        .clone();
    assert_eq!(copy["enabled"], false, "a copy starts disabled");
    click(c, &format!("#enabled-{}", copy["id"].as_str().unwrap())).await;
    app.eventually(Duration::from_secs(5), || async {
        let (_, f) = app
            .ui(
                "ws1",
                Method::GET,
                &format!("/ui/flows/{}", copy["id"].as_str().unwrap()),
                None,
            )
            .await;
        (f["enabled"] == true).then_some(())
    })
    .await
    .expect("enabled from the list");

    // Keyboard: the tabs move with the arrow keys.
    click(c, "#tab-dashboard").await;
    c.find(Locator::Css("#tab-dashboard"))
        .await
        .unwrap()
        .send_keys("\u{E014}")
        .await
        .unwrap();
    let selected = c
        .find(Locator::Css("[role=tab][aria-selected=true]"))
        .await
        .unwrap();
    assert_eq!(selected.text().await.unwrap(), "Flows");

    // Dark theme, from the token's theme claim.
    let dark = token_with(&app, "ws1", |c| c.theme = Some("DARK".into()));
    c.goto(&app.url(&format!("/ui?auth_token={dark}")))
        .await
        .unwrap();
    text_when(c, ".stats", |t| t.contains("webhooks received")).await;
    let theme = c
        .execute("return [document.documentElement.dataset.theme, getComputedStyle(document.body).backgroundColor]", vec![])
        .await
        .unwrap();
    assert_eq!(theme[0], "dark");
    assert_eq!(theme[1], "rgb(22, 27, 31)");
    shot(c, "dashboard-dark").await;
    check(c, "dashboard (dark)").await;
    tab(c, "explorer").await;
    c.find(Locator::Css("#op-search"))
        .await
        .unwrap()
        .send_keys("add a new tag")
        .await
        .unwrap();
    c.find(Locator::XPath("//button[contains(., 'Add a new tag')]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    text_when(c, ".operation h2", |t| t == "Add a new tag").await;
    shot(c, "explorer-dark").await;
    check(c, "explorer (dark)").await;
    // The upload form's file input in the dark theme.
    let search = c.find(Locator::Css("#op-search")).await.unwrap();
    search.clear().await.unwrap();
    search.send_keys("add photo").await.unwrap();
    c.find(Locator::XPath("//button[contains(., 'Add photo')]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    text_when(c, ".operation h2", |t| t == "Add photo").await;
    shot(c, "explorer-upload-dark").await;
    check(c, "explorer upload (dark)").await;
    tab(c, "flows").await;
    click(c, "#panel-flows button.primary").await;
    text_when(c, ".builder h2", |t| t == "New flow").await;
    shot(c, "flow-builder-dark").await;
    check(c, "flow builder (dark)").await;
    tab(c, "explorer").await;

    // At the width of Clockify's sidebar the explorer stacks.
    c.set_window_size(400, 800).await.unwrap();
    let columns = c
        .execute("return getComputedStyle(document.querySelector('.explorer')).gridTemplateColumns.split(' ').length", vec![])
        .await
        .unwrap();
    assert_eq!(columns, 1);
    let overflow = c
        .execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "scrolls sideways by {overflow} px"
    );
    shot(c, "explorer-narrow").await;
    c.set_window_size(1280, 900).await.unwrap();

    // A missing or expired session is said plainly.
    c.goto(&app.url("/ui")).await.unwrap();
    let said = text_when(c, "[role=alert]", |t| !t.is_empty()).await;
    assert!(said.contains("open the add-on from Clockify"), "{said}");
    check(c, "no session").await;
    let expired = token_with(&app, "ws1", |c| c.exp = Some(c.iat.unwrap_or(0) - 60));
    c.goto(&app.url(&format!("/ui?auth_token={expired}")))
        .await
        .unwrap();
    let said = text_when(c, "[role=alert]", |t| !t.is_empty()).await;
    assert!(said.contains("Your Clockify session has expired"), "{said}");
    shot(c, "expired").await;
    let forged = format!("{token}x");
    c.goto(&app.url(&format!("/ui?auth_token={forged}")))
        .await
        .unwrap();
    let said = text_when(c, "[role=alert]", |t| !t.is_empty()).await;
    assert!(
        said.contains("Clockify did not accept this session"),
        "{said}"
    );

    // Behind a base URL with a path: every URL is relative.
    let prefixed = prefix_proxy(app.base.clone()).await;
    c.goto(&format!("{prefixed}/ui/?auth_token={token}"))
        .await
        .unwrap();
    text_when(c, ".stats", |t| t.contains("webhooks received")).await;
    assert_eq!(
        c.current_url().await.unwrap().path(),
        "/addon/ui",
        "…/ui/ leads back to …/ui"
    );
    tab(c, "explorer").await;
    text_when(c, ".catalogue [role=status]", |t| t == "170 of 170").await;

    driver.stop().await;
    app.stop().await;
    assert!(violations.is_empty(), "axe-core: {violations:#?}");
}
