//! Flows: every matching flow runs, conditions ALL/ANY, ordered actions against the (fake)
//! Clockify API, one execution row per run; on PostgreSQL and SQLite.
#![cfg(test)]

use std::time::Duration;

use addon_core::auth::TokenKind;
use addon_testkit::{Backend, FakeResponse, TestApp, backend_tests};
use reqwest::Method;
use serde_json::{Value, json};

async fn start(backend: Backend) -> TestApp {
    TestApp::start(&api_studio::DEFINITION, backend).await
}

async fn create_flow(app: &TestApp, ws: &str, flow: Value) -> String {
    let (s, b) = app.ui(ws, Method::POST, "/ui/flows", Some(flow)).await;
    assert_eq!(s, 201, "{b}");
    b["id"].as_str().unwrap().to_owned()
}

async fn executions(app: &TestApp, ws: &str, n: usize) -> Vec<Value> {
    app.eventually(Duration::from_secs(10), || async {
        let (_, b) = app.ui(ws, Method::GET, "/ui/executions", None).await;
        let items = b["items"].as_array().cloned().unwrap_or_default();
        let done = items
            .iter()
            .filter(|e| {
                matches!(
                    e["status"].as_str(),
                    Some("SUCCEEDED" | "FAILED" | "SKIPPED")
                )
            })
            .count();
        (done >= n).then_some(items)
    })
    .await
    .unwrap_or_else(|| panic!("{n} executions did not finish"))
}

fn tag_flow(name: &str, trigger: &str, tag_path: &str) -> Value {
    json!({
        "name": name,
        "triggerEvents": [trigger],
        "conditions": [{"path": "$.billable", "op": "==", "value": true}],
        "actions": [{
            "name": "tag",
            "method": "PUT",
            "path": format!("/v1/workspaces/{{{{workspaceId}}}}/time-entries/{{{{$.id}}}}{tag_path}"),
            "body": {"tagIds": "{{$.tagIds}}", "description": "{{$.description}} (auto)"}
        }]
    })
}

async fn every_matching_flow_runs_with_values_from_the_webhook(backend: Backend) {
    let app = start(backend).await;
    let token = app.install_settled("ws1").await;
    let f1 = create_flow(&app, "ws1", tag_flow("first", "NEW_TIME_ENTRY", "")).await;
    let f2 = create_flow(&app, "ws1", tag_flow("second", "NEW_TIME_ENTRY", "/x")).await;
    let _other = create_flow(&app, "ws1", tag_flow("other trigger", "NEW_TAG", "/y")).await;
    app.fake.clear();
    let body = json!({"id": "te1", "workspaceId": "ws1", "billable": true, "tagIds": ["t1"], "description": "Call"});
    let (s, _) = app.webhook(&token, "NEW_TIME_ENTRY", &body).await;
    assert_eq!(s, 200);
    let runs = executions(&app, "ws1", 2).await;
    assert_eq!(
        runs.len(),
        2,
        "both NEW_TIME_ENTRY flows ran, the NEW_TAG one did not: {runs:#?}"
    );
    let flow_ids: Vec<&str> = runs.iter().map(|r| r["flowId"].as_str().unwrap()).collect();
    assert!(flow_ids.contains(&f1.as_str()) && flow_ids.contains(&f2.as_str()));
    assert!(runs.iter().all(|r| r["status"] == "SUCCEEDED"), "{runs:#?}");

    let reqs = app.fake.requests();
    let mut paths: Vec<&str> = reqs.iter().map(|r| r.path.as_str()).collect();
    paths.sort();
    assert_eq!(
        paths,
        vec![
            "/api/v1/workspaces/ws1/time-entries/te1",
            "/api/v1/workspaces/ws1/time-entries/te1/x"
        ]
    );
    for r in &reqs {
        assert_eq!(r.method, Method::PUT);
        assert_eq!(
            r.body,
            json!({"tagIds": ["t1"], "description": "Call (auto)"})
        );
        let sent = r.header("x-addon-token").unwrap();
        let claims = app
            .state
            .verifier
            .verify(sent, TokenKind::Installation)
            .unwrap();
        assert_eq!(claims.workspace_id, "ws1", "the installation token is sent");
    }
    app.stop().await;
}

async fn conditions_all_and_any(backend: Backend) {
    let app = start(backend).await;
    let token = app.install_settled("ws1").await;
    let all = json!({
        "name": "all", "triggerEvents": ["NEW_PROJECT"], "conditionMode": "ALL",
        "conditions": [{"path": "$.billable", "op": "==", "value": true}, {"path": "$.name", "op": "contains", "value": "Zeus"}],
        "actions": [{"method": "GET", "path": "/v1/workspaces/{{workspaceId}}/projects/{{$.id}}"}]
    });
    let mut any = all.clone();
    any["name"] = json!("any");
    any["conditionMode"] = json!("ANY");
    let all_id = create_flow(&app, "ws1", all).await;
    let any_id = create_flow(&app, "ws1", any).await;
    app.fake.clear();
    app.webhook(
        &token,
        "NEW_PROJECT",
        &json!({"id": "p1", "workspaceId": "ws1", "billable": true, "name": "Apollo"}),
    )
    .await;
    let runs = executions(&app, "ws1", 2).await;
    let status_of = |id: &str| runs.iter().find(|r| r["flowId"] == id).unwrap()["status"].clone();
    assert_eq!(status_of(&all_id), "SKIPPED");
    assert_eq!(status_of(&any_id), "SUCCEEDED");
    assert_eq!(app.fake.requests().len(), 1);
    app.stop().await;
}

async fn actions_run_in_order_and_stop_at_a_failure(backend: Backend) {
    let app = start(backend).await;
    let token = app.install_settled("ws1").await;
    app.fake.respond(|r| {
        if r.path.ends_with("/fail") {
            FakeResponse::json(400, json!({"message": "bad"}))
        } else {
            FakeResponse::json(200, json!({"ok": true}))
        }
    });
    let flow = json!({
        "name": "three steps", "triggerEvents": ["NEW_TAG"],
        "actions": [
            {"name": "one", "method": "GET", "path": "/v1/workspaces/{{workspaceId}}/tags/{{$.id}}"},
            {"name": "two", "method": "POST", "path": "/v1/workspaces/{{workspaceId}}/tags/fail", "body": {"name": "{{$.name}}"}},
            {"name": "three", "method": "DELETE", "path": "/v1/workspaces/{{workspaceId}}/tags/{{$.id}}"}
        ]
    });
    create_flow(&app, "ws1", flow).await;
    app.fake.clear();
    app.webhook(
        &token,
        "NEW_TAG",
        &json!({"id": "t1", "workspaceId": "ws1", "name": "Urgent"}),
    )
    .await;
    let runs = executions(&app, "ws1", 1).await;
    let run = &runs[0];
    assert_eq!(run["status"], "FAILED");
    assert!(
        run["error"]
            .as_str()
            .unwrap()
            .contains("two: Clockify answered 400"),
        "{run}"
    );
    let steps = run["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "the third action never ran");
    assert_eq!(steps[0]["status"], 200);
    assert_eq!(steps[1]["status"], 400);
    let reqs = app.fake.requests();
    assert_eq!(
        reqs.iter().map(|r| r.method.clone()).collect::<Vec<_>>(),
        vec![Method::GET, Method::POST]
    );
    assert_eq!(reqs[1].body, json!({"name": "Urgent"}));
    app.stop().await;
}

async fn no_flows_and_duplicates_run_nothing(backend: Backend) {
    let app = start(backend).await;
    let token = app.install_settled("ws1").await;
    let body = json!({"id": "c1", "workspaceId": "ws1", "name": "Client"});
    let (s, r) = app.webhook(&token, "NEW_CLIENT", &body).await;
    assert_eq!(s, 200, "an empty flow list is fine: {r}");
    create_flow(&app, "ws1", json!({"name": "f", "triggerEvents": ["NEW_CLIENT"], "actions": [{"method": "GET", "path": "/v1/workspaces/{{workspaceId}}/clients/{{$.id}}"}]})).await;
    app.fake.clear();
    let body2 = json!({"id": "c2", "workspaceId": "ws1", "name": "Client 2"});
    app.webhook(&token, "NEW_CLIENT", &body2).await;
    executions(&app, "ws1", 1).await;
    app.webhook(&token, "NEW_CLIENT", &body2).await; // Clockify retry
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, b) = app.ui("ws1", Method::GET, "/ui/executions", None).await;
    assert_eq!(
        b["items"].as_array().unwrap().len(),
        1,
        "a duplicate delivery runs nothing again"
    );
    assert_eq!(app.fake.requests().len(), 1);
    app.stop().await;
}

async fn flow_crud_validates_and_isolates_workspaces(backend: Backend) {
    let app = start(backend).await;
    app.install("ws1").await;
    app.install("ws2").await;
    let (s, b) = app
        .ui("ws1", Method::POST, "/ui/flows", Some(json!({"name": "", "triggerEvents": [], "actions": [{"method": "TRACE", "path": "/v2/x"}], "conditions": [{"path": "$[", "op": "=="}]})))
        .await;
    assert_eq!(s, 422, "{b}");
    let details = b["error"]["details"].to_string();
    for field in [
        "name",
        "triggerEvents",
        "actions[0].method",
        "actions[0].path",
        "conditions[0].path",
        "conditions[0].value",
    ] {
        assert!(details.contains(field), "{field} not in {details}");
    }
    let (s, b) = app
        .ui(
            "ws1",
            Method::POST,
            "/ui/flows",
            Some(json!({"name": "x", "bogus": 1})),
        )
        .await;
    assert_eq!(s, 400, "unknown fields are refused: {b}");

    let id = create_flow(&app, "ws1", json!({"name": "mine", "triggerEvents": ["NEW_TAG"], "actions": [{"method": "GET", "path": "/v1/workspaces/{{workspaceId}}/tags"}]})).await;
    let (s, b) = app
        .ui("ws1", Method::GET, &format!("/ui/flows/{id}"), None)
        .await;
    assert_eq!((s, b["name"].clone()), (200, json!("mine")));
    let (s, _) = app
        .ui("ws2", Method::GET, &format!("/ui/flows/{id}"), None)
        .await;
    assert_eq!(s, 404, "another workspace cannot see it");
    let (s, _) = app
        .ui("ws2", Method::DELETE, &format!("/ui/flows/{id}"), None)
        .await;
    assert_eq!(s, 404, "nor delete it");
    let (_, list2) = app.ui("ws2", Method::GET, "/ui/flows", None).await;
    assert_eq!(list2["items"].as_array().unwrap().len(), 0);

    let (s, b) = app
        .ui("ws1", Method::PUT, &format!("/ui/flows/{id}"), Some(json!({"name": "renamed", "enabled": false, "triggerEvents": ["NEW_TAG"], "actions": [{"method": "GET", "path": "/v1/workspaces/{{workspaceId}}/tags"}]})))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["enabled"], false);
    let (s, _) = app
        .ui("ws1", Method::DELETE, &format!("/ui/flows/{id}"), None)
        .await;
    assert_eq!(s, 204);
    let (s, _) = app
        .ui("ws1", Method::GET, &format!("/ui/flows/{id}"), None)
        .await;
    assert_eq!(s, 404);
    app.stop().await;
}

/// A JSONPath nested a thousand deep once overflowed the parser's stack and aborted the process;
/// fifty thousand `{{$}}` placeholders took RSS to gigabytes. Saving such a flow is refused
/// with the limit named; one stored before the limits existed fails its execution, with the
/// reason, and the add-on keeps serving.
async fn flows_beyond_the_limits_are_refused_and_never_take_the_process_down(backend: Backend) {
    let app = start(backend).await;
    let token = app.install_settled("ws1").await;
    let deep = format!("$[?{}@.a == 1{}]", "(".repeat(1000), ")".repeat(1000));
    let nested = format!("$[?{}@.a == 1{}]", "(".repeat(40), ")".repeat(40));
    let mut flow = tag_flow("deep", "NEW_TIME_ENTRY", "");
    let cases = [
        (
            json!([{"path": deep, "op": "exists"}]),
            None,
            "the limit is 512",
        ),
        (
            json!([{"path": nested, "op": "exists"}]),
            None,
            "the limit is 16",
        ),
        (
            json!([]),
            Some(json!({"d": "{{$}}".repeat(4_000)})),
            "the limit is 16384",
        ),
        (
            json!([]),
            Some(json!({"d": "{{$}}".repeat(50_000)})),
            "larger than 65536 bytes",
        ),
        (
            json!([]),
            Some(json!({"d": "{{$}}".repeat(33)})),
            "more than 32 placeholders",
        ),
        (
            json!([]),
            Some(Value::Array(vec![json!("{{$.a}} {{$.b}}"); 40])),
            "81 JSONPath placeholders; the limit is 64 per action",
        ),
    ];
    for (conditions, body, limit) in cases {
        flow["conditions"] = conditions;
        if let Some(b) = body {
            flow["actions"][0]["body"] = b;
        }
        let (s, b) = app
            .ui("ws1", Method::POST, "/ui/flows", Some(flow.clone()))
            .await;
        assert_eq!(s, 422, "{b}");
        assert!(b.to_string().contains(limit), "{limit} not named in {b}");
        flow = tag_flow("deep", "NEW_TIME_ENTRY", "");
    }

    // Stored without validation, as an earlier release could have.
    let stored: addon_core::flows::FlowDefinition = serde_json::from_value(json!({
        "name": "stored deep condition",
        "triggerEvents": ["NEW_TIME_ENTRY"],
        "conditions": [{"path": format!("$[?{}@.a == 1{}]", "(".repeat(100), ")".repeat(100)), "op": "exists"}],
        "actions": [{"method": "GET", "path": "/v1/user"}]
    }))
    .unwrap();
    addon_core::store::flows::create(&app.state.db, "ws1", &stored)
        .await
        .unwrap();
    let bomb: addon_core::flows::FlowDefinition = serde_json::from_value(json!({
        "name": "stored template bomb",
        "triggerEvents": ["NEW_TIME_ENTRY"],
        "actions": [{"method": "POST", "path": "/v1/workspaces/{{workspaceId}}/x",
                     "body": Value::Array(vec![json!("{{$}}"); 50_000])}]
    }))
    .unwrap();
    addon_core::store::flows::create(&app.state.db, "ws1", &bomb)
        .await
        .unwrap();
    app.fake.clear();
    let body = json!({"id": "te1", "workspaceId": "ws1", "billable": true, "description": "x".repeat(8 * 1024)});
    let (s, _) = app.webhook(&token, "NEW_TIME_ENTRY", &body).await;
    assert_eq!(s, 200);
    let runs = executions(&app, "ws1", 2).await;
    let all = format!("{runs:#?}");
    assert!(runs.iter().all(|r| r["status"] == "FAILED"), "{all}");
    assert!(all.contains("nested 101 deep; the limit is 16"), "{all}");
    assert!(
        all.contains("JSONPath placeholders in one action")
            || all.contains("would exceed 1048576 bytes"),
        "{all}"
    );
    assert!(app.fake.requests().is_empty(), "nothing was sent");
    let (s, _) = app.ui("ws1", Method::GET, "/ui/flows", None).await;
    assert_eq!(s, 200, "the add-on still serves");
    app.stop().await;
}

/// A pool of one database connection runs flows: nothing holds a connection while it waits
/// for another.
async fn one_database_connection_is_enough(backend: Backend) {
    let app = TestApp::builder(&api_studio::DEFINITION, backend)
        .env("DATABASE_MAX_CONNECTIONS", "1")
        .start()
        .await;
    let token = app.install_settled("ws1").await;
    create_flow(&app, "ws1", json!({"name": "f", "triggerEvents": ["NEW_CLIENT"], "actions": [{"method": "GET", "path": "/v1/workspaces/{{workspaceId}}/clients/{{$.id}}"}]})).await;
    app.fake.clear();
    for i in 0..3 {
        let body = json!({"id": format!("c{i}"), "workspaceId": "ws1", "name": "Client"});
        let (s, b) = app.webhook(&token, "NEW_CLIENT", &body).await;
        assert_eq!(s, 200, "{b}");
    }
    let runs = executions(&app, "ws1", 3).await;
    assert!(runs.iter().all(|r| r["status"] == "SUCCEEDED"), "{runs:?}");
    app.stop().await;
}

/// During a rolling upgrade, pods of the release before migration 7 still store deliveries
/// PENDING in the log (no queue row); this release fans them out too, once, and the console
/// shows what the queue says: PENDING while a delivery waits, PROCESSED once fanned out.
async fn deliveries_an_older_release_left_pending_are_fanned_out(backend: Backend) {
    let app = start(backend).await;
    let token = app.install_settled("ws1").await;
    create_flow(&app, "ws1", json!({"name": "f", "triggerEvents": ["NEW_CLIENT"], "actions": [{"method": "GET", "path": "/v1/workspaces/{{workspaceId}}/clients/{{$.id}}"}]})).await;
    app.fake.clear();
    let db = &app.state.db;
    let legacy = addon_core::store::new_id();
    sqlx::query("INSERT INTO webhook_log (id, workspace_id, event_type, delivery_key, body, received_at, status) VALUES ($1, 'ws1', 'NEW_CLIENT', $1, $2, $3, 'PENDING')")
        .bind(&legacy)
        .bind(json!({"id": "legacy", "workspaceId": "ws1"}).to_string())
        .bind(addon_core::time::now_millis())
        .execute(db.pool())
        .await
        .unwrap();
    let (_, shown) = app
        .ui("ws1", Method::GET, &format!("/ui/webhooks/{legacy}"), None)
        .await;
    assert_eq!(shown["webhook"]["status"], "PENDING", "{shown}");
    // A new delivery wakes the fan-out: the queue first, then what the old release left.
    let body = json!({"id": "new", "workspaceId": "ws1", "name": "Client"});
    assert_eq!(app.webhook(&token, "NEW_CLIENT", &body).await.0, 200);
    let runs = executions(&app, "ws1", 2).await;
    assert_eq!(runs.len(), 2, "{runs:#?}");
    assert!(runs.iter().all(|r| r["status"] == "SUCCEEDED"), "{runs:#?}");
    let mut paths: Vec<String> = app.fake.requests().iter().map(|r| r.path.clone()).collect();
    paths.sort();
    assert_eq!(
        paths,
        vec![
            "/api/v1/workspaces/ws1/clients/legacy",
            "/api/v1/workspaces/ws1/clients/new"
        ]
    );
    let (_, list) = app.ui("ws1", Method::GET, "/ui/webhooks", None).await;
    let statuses: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["PROCESSED", "PROCESSED"], "{list}");
    let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_queue")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(queued, 0);
    // Fanning out again finds nothing: each ran once.
    let again = addon_core::worker::fan_out_once(&app.state).await.unwrap();
    assert_eq!(again.deliveries, 0);
    app.stop().await;
}

/// The fan-out's search for deliveries an older release left PENDING: one that found none is
/// not repeated for `LEGACY_RECHECK_MS`, and a row stored meanwhile is taken by the first
/// search after it (no app runs here, so no other fan-out takes the row first).
async fn a_search_for_older_deliveries_that_found_none_waits(backend: Backend) {
    use addon_core::store::webhooks::{LEGACY_RECHECK_MS, LegacyPending, claim_for_fan_out};
    let tdb = addon_testkit::TestDb::new(backend).await;
    let db = addon_core::db::Db::connect(&tdb.url, 2).await.unwrap();
    api_studio::DEFINITION
        .migrations
        .migrate(&db, &tdb.url)
        .await
        .unwrap();
    let legacy = LegacyPending::default();
    let claim = || async {
        let mut tx = db.pool().begin().await.unwrap();
        let got = claim_for_fan_out(&mut tx, db.backend(), 64, &legacy)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        got.into_iter().map(|w| w.id).collect::<Vec<_>>()
    };
    assert!(claim().await.is_empty());
    let store_pending = |id: &str| {
        let id = id.to_owned();
        let db = &db;
        async move {
            sqlx::query("INSERT INTO webhook_log (id, workspace_id, event_type, delivery_key, body, received_at, status) VALUES ($1, 'ws1', 'NEW_CLIENT', $1, '{}', $2, 'PENDING')")
                .bind(&id)
                .bind(addon_core::time::now_millis())
                .execute(db.pool())
                .await
                .unwrap();
        }
    };
    let id = addon_core::store::new_id();
    store_pending(&id).await;
    assert!(claim().await.is_empty(), "searched again at once");
    tokio::time::sleep(Duration::from_millis(LEGACY_RECHECK_MS as u64 + 100)).await;
    assert_eq!(claim().await, vec![id.clone()]);
    // A search that found one is not put off: a row stored right after is taken at once.
    let next = addon_core::store::new_id();
    store_pending(&next).await;
    assert_eq!(claim().await, vec![next]);
    db.pool().close().await;
}

backend_tests!(
    a_search_for_older_deliveries_that_found_none_waits,
    one_database_connection_is_enough,
    deliveries_an_older_release_left_pending_are_fanned_out,
    flows_beyond_the_limits_are_refused_and_never_take_the_process_down,
    every_matching_flow_runs_with_values_from_the_webhook,
    conditions_all_and_any,
    actions_run_in_order_and_stop_at_a_failure,
    no_flows_and_duplicates_run_nothing,
    flow_crud_validates_and_isolates_workspaces,
);

/// Two processes on one PostgreSQL database share the queue. The first runs one execution at a
/// time (FLOW_CONCURRENCY=1) against a slow API, so its fan-out leaves the rest PENDING and
/// announces them; the second is woken by that NOTIFY (its safety-net poll is 5 s away, and the
/// first alone would finish before it) and takes some. Every flow still runs exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_takes_what_the_first_has_no_slot_for() {
    let first = TestApp::builder(&api_studio::DEFINITION, Backend::Postgres)
        .env("FLOW_CONCURRENCY", "1")
        .start()
        .await;
    let second = TestApp::builder(&api_studio::DEFINITION, Backend::Postgres)
        .database(first.db.share())
        .fake(first.fake.clone())
        .no_migrate()
        .start()
        .await;
    let token = first.install_settled("ws1").await;
    create_flow(&first, "ws1", tag_flow("tag", "NEW_TIME_ENTRY", "")).await;
    first.fake.clear();
    first.fake.respond(|_| {
        FakeResponse::json(200, json!({"id": "te"})).delayed(Duration::from_millis(250))
    });
    let deliveries = 16;
    for i in 0..deliveries {
        let body = json!({"id": format!("te{i}"), "workspaceId": "ws1", "billable": true, "tagIds": [], "description": "d"});
        let (s, _) = first.webhook(&token, "NEW_TIME_ENTRY", &body).await;
        assert_eq!(s, 200);
    }
    let runs = executions(&first, "ws1", deliveries).await;
    assert!(runs.iter().all(|r| r["status"] == "SUCCEEDED"), "{runs:#?}");
    let mut paths: Vec<String> = first.fake.requests().into_iter().map(|r| r.path).collect();
    paths.sort();
    paths.dedup();
    assert_eq!(
        paths.len(),
        deliveries,
        "each delivery's flow ran once: {paths:?}"
    );
    assert_eq!(first.fake.requests().len(), deliveries, "and only once");
    let ran_second = second
        .metric(r#"flows_executed_total{status="SUCCEEDED"}"#)
        .await
        .unwrap_or(0.0);
    assert!(
        ran_second >= 1.0,
        "the second process took part of the queue: {ran_second}"
    );
    second.stop().await;
    first.stop().await;
}

/// A migrated database and no worker of its own (a running one would renew, reclaim and claim
/// the rows a test seeds). Keep the `TestDb` alive while the `Db` is used.
async fn migrated(backend: Backend) -> (addon_testkit::TestDb, addon_core::db::Db) {
    let test_db = addon_testkit::TestDb::new(backend).await;
    let db = addon_core::db::Db::connect(&test_db.url, 2)
        .await
        .expect("connect");
    api_studio::DEFINITION
        .migrations
        .migrate(&db, &test_db.url)
        .await
        .expect("migrations apply");
    (test_db, db)
}

/// Seeds a RUNNING execution (its own delivery id) leased by `owner` until `until`.
async fn seed_running(db: &addon_core::db::Db, id: &str, owner: &str, until: i64) {
    sqlx::query(
        "INSERT INTO flow_executions (id, workspace_id, flow_id, webhook_id, event_type, status, steps, started_at, attempts, next_step, lease_owner, lease_until)
         VALUES ($1, 'ws1', 'f1', $1, 'NEW_TIME_ENTRY', 'RUNNING', '[]', 1, 1, 0, $2, $3)",
    )
    .bind(id)
    .bind(owner)
    .bind(until)
    .execute(db.pool())
    .await
    .expect("seed an execution");
}

/// The lease renewal and the reclaim of expired leases never wait for a row another transaction
/// holds (a batch of execution writes, in the worker): they skip it. Waiting deadlocked under
/// load (each side locking rows in its own order) until PostgreSQL's deadlock check cancelled
/// one a second later. Here a transaction holds one of two leased rows while both statements
/// run: each must return at once, having touched only the free row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_renewal_and_reclaim_skip_rows_a_writer_holds() {
    use addon_core::store::executions;
    use sqlx::Connection;
    let (test_db, db) = migrated(Backend::Postgres).await;
    for id in ["held", "free"] {
        seed_running(&db, id, "w1", 1_000).await;
    }
    let mut writer = sqlx::AnyConnection::connect(&test_db.url)
        .await
        .expect("a second connection");
    let mut tx = writer.begin().await.expect("begin");
    sqlx::query("SELECT id FROM flow_executions WHERE id = 'held' FOR UPDATE")
        .execute(&mut *tx)
        .await
        .expect("hold the row");
    let renewed = tokio::time::timeout(
        Duration::from_secs(5),
        executions::heartbeat(&db, "w1", 2_000),
    )
    .await
    .expect("the renewal waited for the held row")
    .expect("renewal");
    assert_eq!(renewed, 1, "only the free row is renewed");
    // Both leases (1,000 and now 2,000) ran out long ago: only the free row is reclaimed.
    let reclaimed = tokio::time::timeout(Duration::from_secs(5), executions::reclaim_expired(&db))
        .await
        .expect("the reclaim waited for the held row")
        .expect("reclaim");
    assert_eq!(reclaimed, 1, "only the free row is reclaimed");
    tx.rollback().await.expect("release");
    let rows: Vec<(String, String, Option<i64>)> =
        sqlx::query_as("SELECT id, status, lease_until FROM flow_executions ORDER BY id")
            .fetch_all(db.pool())
            .await
            .expect("read back");
    assert_eq!(
        rows,
        vec![
            ("free".to_owned(), "RETRY".to_owned(), None),
            ("held".to_owned(), "RUNNING".to_owned(), Some(1_000)),
        ]
    );
    // Once free, the next pass takes it.
    assert_eq!(executions::reclaim_expired(&db).await.expect("reclaim"), 1);
    db.close().await;
}

/// A batch of execution writes larger than one statement is applied in one transaction: every
/// write whose worker holds the lease is applied and reported, across statement boundaries;
/// a write for a row leased by another worker is neither applied nor reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_writes_across_statements_applies_exactly_the_leased_ones() {
    use addon_core::store::executions::{self, ExecutionStatus, ExecutionWrite, WriteKind};
    for backend in [Backend::Postgres, Backend::Sqlite] {
        let (_test_db, db) = migrated(backend).await;
        let n = 150;
        let mut writes = Vec::new();
        for i in 0..n {
            let id = format!("e{i:03}");
            // Every seventh row is leased by another worker.
            let owner = if i % 7 == 3 { "w2" } else { "w1" };
            seed_running(&db, &id, owner, 4_102_444_800_000).await;
            writes.push(ExecutionWrite {
                id,
                owner: "w1".into(),
                kind: WriteKind::Complete {
                    status: ExecutionStatus::Succeeded,
                },
                steps: r#"[{"status":200}]"#.into(),
                next_step: 1,
                error: None,
            });
        }
        let written = executions::write_many(&db, &writes)
            .await
            .expect("the batch is written");
        let expected: std::collections::HashSet<String> = (0..n)
            .filter(|i| i % 7 != 3)
            .map(|i| format!("e{i:03}"))
            .collect();
        assert_eq!(written, expected, "{backend:?}");
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT id, status FROM flow_executions ORDER BY id")
                .fetch_all(db.pool())
                .await
                .expect("read back");
        assert_eq!(rows.len(), n);
        for (id, status) in rows {
            let want = if expected.contains(&id) {
                "SUCCEEDED"
            } else {
                "RUNNING"
            };
            assert_eq!(status, want, "{backend:?} {id}");
        }
        db.close().await;
    }
}

/// A batch that fails in a later statement applies none of its writes: the writer then retries
/// each alone, and a write an earlier statement had already committed would find its row no
/// longer RUNNING and report its lease lost. The failure is a trigger that refuses one row of
/// the third statement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_fails_in_a_later_statement_applies_none_of_its_writes() {
    use addon_core::store::executions::{self, ExecutionStatus, ExecutionWrite, WriteKind};
    let (_test_db, db) = migrated(Backend::Postgres).await;
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_e140() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.id = 'e140' THEN RAISE EXCEPTION 'refused for the test'; END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER refuse_e140 BEFORE UPDATE ON flow_executions
             FOR EACH ROW EXECUTE FUNCTION refuse_e140();",
    )
    .execute(db.pool())
    .await
    .expect("create the trigger");
    let mut writes = Vec::new();
    for i in 0..150 {
        let id = format!("e{i:03}");
        seed_running(&db, &id, "w1", 4_102_444_800_000).await;
        writes.push(ExecutionWrite {
            id,
            owner: "w1".into(),
            kind: WriteKind::Complete {
                status: ExecutionStatus::Succeeded,
            },
            steps: "[]".into(),
            next_step: 1,
            error: None,
        });
    }
    let err = executions::write_many(&db, &writes)
        .await
        .expect_err("the third statement fails");
    assert!(err.to_string().contains("refused for the test"), "{err}");
    let statuses: Vec<String> = sqlx::query_scalar("SELECT DISTINCT status FROM flow_executions")
        .fetch_all(db.pool())
        .await
        .expect("read back");
    assert_eq!(statuses, vec!["RUNNING".to_owned()], "nothing was applied");
    // Written alone, every other write applies.
    let written = executions::write_many(&db, &writes[..64])
        .await
        .expect("the first 64 apply");
    assert_eq!(written.len(), 64);
}
