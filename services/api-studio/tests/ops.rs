//! Operational surface: health, readiness, metrics, headers, CORS, request ids, request
//! timeout, graceful shutdown, retention, the manifest.
#![cfg(test)]

use std::time::Duration;

use addon_core::auth::TokenKind;
use addon_core::retention;
use addon_core::time::{DAY_MILLIS, now_millis};
use addon_testkit::{Backend, FakeResponse, TestApp, backend_tests, shared};
use reqwest::Method;
use serde_json::json;
use sqlx::Row;

async fn start(backend: Backend) -> TestApp {
    TestApp::start(&api_studio::DEFINITION, backend).await
}

async fn health_and_readiness(backend: Backend) {
    let app = TestApp::builder(&api_studio::DEFINITION, backend)
        .no_migrate()
        .start()
        .await;
    assert_eq!(app.get("/healthz").await.0, 200);
    let (s, b) = app.get("/ready").await;
    assert_eq!(s, 503, "an unmigrated database is not ready: {b}");
    assert_eq!(app.metric("addon_ready").await, Some(0.0));
    assert!(
        b["reason"]
            .as_str()
            .unwrap()
            .contains("clockify-addons migrate api-studio"),
        "{b}"
    );
    // Production never migrates on its own; the migrate command does.
    let report = app
        .state
        .def
        .migrations
        .migrate(&app.state.db, &app.db.url)
        .await
        .unwrap();
    assert_eq!(report.applied.len(), addon_core::db::CORE_MIGRATIONS.len());
    let (s, b) = app.get("/ready").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["schema"]["current"], b["schema"]["required"]);
    assert_eq!(
        app.metric("addon_ready").await,
        Some(1.0),
        "the gauge follows /ready"
    );
    app.stop().await;
}

async fn metrics_count_requests_and_add_on_events(backend: Backend) {
    let app = start(backend).await;
    let token = app.install_settled("ws1").await;
    app.webhook(
        &token,
        "NEW_TAG",
        &json!({"id": "t1", "workspaceId": "ws1"}),
    )
    .await;
    app.webhook(
        &token,
        "NEW_TAG",
        &json!({"id": "t1", "workspaceId": "ws1"}),
    )
    .await;
    app.webhook(
        "garbage",
        "NEW_TAG",
        &json!({"id": "t1", "workspaceId": "ws1"}),
    )
    .await;
    let text = app.metrics().await;
    for needle in [
        r#"webhooks_received_total{event_type="NEW_TAG",outcome="accepted"} 1"#,
        r#"webhooks_received_total{event_type="NEW_TAG",outcome="duplicate"} 1"#,
        r#"auth_failures_total{group="webhook",reason="malformed"} 1"#,
        r#"http_requests_total{method="POST",route="/webhooks/clockify",status="200"} 2"#,
        r#"http_requests_total{method="POST",route="/webhooks/clockify",status="401"} 1"#,
        r#"lifecycle_events_total{event="installed"} 1"#,
        "http_request_duration_seconds_bucket",
        "addon_uptime_seconds",
        "api_calls_total",
        "flows_executed_total",
    ] {
        assert!(text.contains(needle), "missing {needle}\n{text}");
    }
    assert!(!text.contains("eyJ"), "no token in metrics");
    app.stop().await;
}

async fn security_headers_cors_and_request_ids(backend: Backend) {
    let app = start(backend).await;
    let resp = app
        .http
        .get(app.url("/manifest"))
        .header("Origin", "https://app.clockify.me")
        .send()
        .await
        .unwrap();
    let h = resp.headers();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'self' https://clockify.me https://*.clockify.me")
    );
    assert!(h.contains_key("strict-transport-security"));
    assert_eq!(h["access-control-allow-origin"], "https://app.clockify.me");
    assert_eq!(h["x-request-id"].to_str().unwrap().len(), 36);
    let resp = app
        .http
        .get(app.url("/manifest"))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(!resp.headers().contains_key("access-control-allow-origin"));
    let resp = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["x-request-id"],
        "abc-123",
        "a caller's request id is kept"
    );
    // Unknown routes and methods answer JSON.
    let resp = app.http.delete(app.url("/manifest")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    let b: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(b["error"]["code"], "method_not_allowed");
    app.stop().await;
}

async fn slow_requests_time_out_with_a_json_503(backend: Backend) {
    let app = TestApp::builder(&api_studio::DEFINITION, backend)
        .env("HTTP_REQUEST_TIMEOUT_SECONDS", "1")
        .start()
        .await;
    app.install_settled("ws1").await;
    app.fake
        .respond(|_| FakeResponse::json(200, json!([])).delayed(Duration::from_secs(3)));
    let (s, b) = app
        .ui(
            "ws1",
            Method::POST,
            "/ui/explorer/execute",
            Some(json!({"operationId": "getTags"})),
        )
        .await;
    assert_eq!(s, 503, "{b}");
    assert_eq!(b["error"]["code"], "unavailable");
    app.stop().await;
}

/// SIGTERM as Kubernetes sends it: `/ready` turns 503 at once while requests are still served
/// for the drain delay (new connections included), the request in flight completes, then the
/// listener closes and the process stops within the one deadline.
async fn graceful_shutdown_drains_then_finishes_in_flight_requests(backend: Backend) {
    let app = TestApp::builder(&api_studio::DEFINITION, backend)
        .env("SHUTDOWN_DRAIN_SECONDS", "2")
        .env("SHUTDOWN_TIMEOUT_SECONDS", "6")
        .start()
        .await;
    app.install_settled("ws1").await;
    app.fake.respond(|_| {
        FakeResponse::json(200, json!([{"id": "slow"}])).delayed(Duration::from_millis(2500))
    });
    let http = app.http.clone();
    let url = app.url("/ui/explorer/execute");
    let token = app.token(TokenKind::User, "ws1");
    let in_flight = tokio::spawn(async move {
        http.post(url)
            .bearer_auth(token)
            .json(&json!({"operationId": "getTags"}))
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    app.fake.wait_for(1, Duration::from_secs(5)).await;
    let base = app.base.clone();
    let signalled = std::time::Instant::now();
    let stopping = tokio::spawn(app.stop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Draining: unready, yet still serving new connections.
    let ready = reqwest::get(format!("{base}/ready")).await.unwrap();
    assert_eq!(ready.status(), 503, "unready while draining");
    let health = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(health.status(), 200, "still served while draining");
    // The request in flight (it outlives the drain) completes.
    assert_eq!(in_flight.await.unwrap().unwrap(), 200);
    // After the drain the listener is closed.
    let waited = signalled.elapsed();
    if waited < Duration::from_millis(2300) {
        tokio::time::sleep(Duration::from_millis(2300) - waited).await;
    }
    assert!(
        reqwest::get(format!("{base}/healthz")).await.is_err(),
        "no new connections after the drain"
    );
    stopping.await.unwrap();
    assert!(
        signalled.elapsed() < Duration::from_secs(6),
        "stopped within SHUTDOWN_TIMEOUT_SECONDS: {:?}",
        signalled.elapsed()
    );
}

async fn retention_deletes_in_batches_and_zero_keeps(backend: Backend) {
    let app = TestApp::builder(&api_studio::DEFINITION, backend)
        .env("RETENTION_BATCH_SIZE", "7")
        .start()
        .await;
    let db = &app.state.db;
    let now = now_millis();
    for i in 0..25 {
        let age = if i < 20 { 91 * DAY_MILLIS } else { DAY_MILLIS };
        // Ids are UUIDv7, time-ordered: retention selects by them.
        let id = format!("{}{i:02}", &addon_core::store::id_floor(now - age)[..34]);
        sqlx::query("INSERT INTO webhook_log (id, workspace_id, event_type, delivery_key, body, received_at, status) VALUES ($1, 'ws', 'NEW_TAG', $1, '{}', $2, 'PROCESSED')")
            .bind(id)
            .bind(now - age)
            .execute(db.pool())
            .await
            .unwrap();
        sqlx::query("INSERT INTO entity_cache (workspace_id, entity_type, entity_id, body, fetched_at) VALUES ('ws', 'tags', $1, '{}', $2)")
            .bind(format!("e{i:02}"))
            .bind(now - if i < 5 { 8 * DAY_MILLIS } else { 6 * DAY_MILLIS })
            .execute(db.pool())
            .await
            .unwrap();
    }
    let rules = retention::rules(&app.state.config.retention);
    let deleted = retention::apply(db, &rules[0], 7, now).await.unwrap();
    assert_eq!(deleted, 20, "older than 90 days, in batches of 7");
    let deleted = retention::apply(db, &rules[2], 7, now).await.unwrap();
    assert_eq!(deleted, 5, "entity cache: older than 7 days");
    let count = |sql: &'static str| async move {
        sqlx::query(sql)
            .fetch_one(db.pool())
            .await
            .unwrap()
            .get::<i64, _>(0)
    };
    assert_eq!(count("SELECT COUNT(*) FROM webhook_log").await, 5);
    assert_eq!(count("SELECT COUNT(*) FROM entity_cache").await, 20);
    let keep_forever = retention::Rule {
        days: 0,
        ..rules[2]
    };
    assert_eq!(
        retention::apply(db, &keep_forever, 7, now + 365 * DAY_MILLIS)
            .await
            .unwrap(),
        0
    );
    // The scheduled sweep does the same and counts it.
    retention::sweep(&app.state).await;
    let text = app.state.metrics.render();
    assert!(!text.contains("retention_deleted_total{table=\"webhook_log\"} 0"));
    app.stop().await;
}

async fn manifest_validates_against_clockifys_schema(backend: Backend) {
    let app = start(backend).await;
    let (s, manifest) = app.get("/manifest").await;
    assert_eq!(s, 200);
    assert_eq!(manifest["minimalSubscriptionPlan"], "STANDARD");
    assert_eq!(manifest["baseUrl"], "https://addon.test.example");
    assert_eq!(manifest["key"], "api-studio");
    let webhooks = manifest["webhooks"].as_array().unwrap();
    assert!(
        !webhooks.is_empty() && webhooks.len() <= 10,
        "Clockify allows at most 10 webhooks"
    );
    let lifecycle: Vec<_> = manifest["lifecycle"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["path"].as_str().unwrap().to_owned())
        .collect();
    assert!(lifecycle.contains(&"/lifecycle/installed".to_owned()));
    let Some(path) = shared("manifest-schema-1.3.json") else {
        app.stop().await;
        return;
    };
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&manifest)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "manifest invalid: {errors:#?}");
    // The schema's enums really constrain us: an unknown event would be refused.
    let mut bad = manifest.clone();
    bad["webhooks"][0]["event"] = json!("TIME_ENTRY_CREATED");
    assert!(!validator.is_valid(&bad));
    app.stop().await;
}

/// Invented HTTP methods once each became a metric label (5,000 of them grew /metrics to 7 MB);
/// axum's path and query rejections once answered text/plain.
async fn metric_labels_stay_bounded_and_every_error_is_json(backend: Backend) {
    let app = start(backend).await;
    app.install_settled("ws1").await;
    for i in 0..50 {
        let method = reqwest::Method::from_bytes(format!("INVENTED{i}").as_bytes()).unwrap();
        let resp = app
            .http
            .request(method, app.url("/healthz"))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_client_error(), "{}", resp.status());
    }
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !text.contains("INVENTED"),
        "an invented method became a label"
    );
    assert!(
        text.contains(r#"http_requests_total{method="other",route="/healthz",status="405"} 50"#),
        "{text}"
    );

    let (s, b) = app
        .ui("ws1", reqwest::Method::GET, "/ui/webhooks?limit=lots", None)
        .await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["error"]["code"], "bad_request", "{b}");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("limit"),
        "{b}"
    );
    let resp = app
        .http
        .post(app.url("/ui/flows"))
        .bearer_auth(app.token(addon_core::auth::TokenKind::User, "ws1"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers().get("content-type").unwrap(),
        "application/json",
        "a body rejection is JSON too"
    );
    app.stop().await;
}

/// The backlog autoscalers read: queued deliveries, due, scheduled and running executions, and
/// the oldest waiting work, counted exactly from the shared queue; served at `/backlog` and as
/// gauges.
async fn backlog_counts_the_shared_queue(backend: Backend) {
    use addon_core::store::executions::{Backlog, backlog};
    let t = addon_testkit::TestDb::new(backend).await;
    let db = addon_core::db::Db::connect(&t.url, 2).await.unwrap();
    api_studio::DEFINITION
        .migrations
        .migrate(&db, &t.url)
        .await
        .unwrap();
    let now = now_millis();
    assert_eq!(backlog(&db, now).await.unwrap(), Backlog::default());
    let queued = |ms: i64, n: u8| format!("{}{n:02}", &addon_core::store::id_floor(ms)[..34]);
    for id in [queued(now - 10_000, 1), queued(now - 2_000, 2)] {
        sqlx::query("INSERT INTO webhook_queue (webhook_id) VALUES ($1)")
            .bind(id)
            .execute(db.pool())
            .await
            .unwrap();
    }
    // (status, next attempt, lease)
    let rows: [(&str, Option<i64>, Option<i64>); 10] = [
        ("PENDING", Some(now - 5_000), None),
        ("RETRY", Some(now - 1_000), None),
        ("PENDING", Some(now - 20_000), None),
        ("RETRY", Some(now + 60_000), None),
        ("RUNNING", None, Some(now + 60_000)),
        ("RUNNING", None, Some(now + 60_000)),
        ("RUNNING", None, None), // an earlier release's run: closed, never counted as leased
        ("SUCCEEDED", None, None),
        ("FAILED", None, None),
        ("SKIPPED", None, None),
    ];
    for (i, (status, due, lease)) in rows.into_iter().enumerate() {
        sqlx::query("INSERT INTO flow_executions (id, workspace_id, flow_id, webhook_id, event_type, status, started_at, next_attempt_at, lease_until) VALUES ($1, 'ws', 'f', $1, 'NEW_TAG', $2, $3, $4, $5)")
            .bind(format!("e{i}"))
            .bind(status)
            .bind(now)
            .bind(due)
            .bind(lease)
            .execute(db.pool())
            .await
            .unwrap();
    }
    let b = backlog(&db, now).await.unwrap();
    assert_eq!(
        b,
        Backlog {
            queued_deliveries: 2,
            due: 3,
            scheduled: 1,
            running: 2,
            oldest_ms: 20_000,
        }
    );
    assert_eq!(b.waiting(), 5);
    db.close().await;

    // Served by the add-on, and sampled into its gauges.
    let app = start(backend).await;
    let (s, body) = app.get("/backlog").await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        body,
        json!({"queuedDeliveries": 0, "due": 0, "scheduled": 0, "running": 0, "oldestMs": 0, "waiting": 0})
    );
    // A retry an hour away: no executor touches it before its time.
    sqlx::query("INSERT INTO flow_executions (id, workspace_id, flow_id, webhook_id, event_type, status, started_at, next_attempt_at) VALUES ('later', 'ws', 'f', 'w', 'NEW_TAG', 'RETRY', $1, $2)")
        .bind(now)
        .bind(now + 3_600_000)
        .execute(app.state.db.pool())
        .await
        .unwrap();
    let (_, body) = app.get("/backlog").await;
    assert_eq!(body["scheduled"], 1, "{body}");
    assert_eq!(body["waiting"], 0, "{body}");
    assert_eq!(
        app.metric("flow_backlog{state=\"scheduled\"}").await,
        Some(1.0)
    );
    assert_eq!(app.metric("flow_backlog{state=\"due\"}").await, Some(0.0));
    app.stop().await;
}

backend_tests!(
    backlog_counts_the_shared_queue,
    metric_labels_stay_bounded_and_every_error_is_json,
    health_and_readiness,
    metrics_count_requests_and_add_on_events,
    security_headers_cors_and_request_ids,
    slow_requests_time_out_with_a_json_503,
    graceful_shutdown_drains_then_finishes_in_flight_requests,
    retention_deletes_in_batches_and_zero_keeps,
    manifest_validates_against_clockifys_schema,
);

/// Retention's deletes walk an index on PostgreSQL whether the tables were ever analysed or
/// not, and whichever plan the plan cache keeps: a sweep that finds nothing old must not read
/// every stored row (it did, 100-270 ms per sweep under the flows benchmark's load, on tables
/// autovacuum had not analysed yet).
#[tokio::test]
async fn retention_deletes_walk_an_index_whatever_the_statistics() {
    let (_t, db) =
        addon_testkit::contract::migrated(&api_studio::DEFINITION, Backend::Postgres).await;
    let now = now_millis();
    // 50,000 deliveries and executions of the last hours, none old enough to delete (on a
    // table of 20,000 narrow rows a sequential scan and a sort cost less, and are chosen).
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO webhook_log (id, workspace_id, event_type, delivery_key, body, received_at, status)
           SELECT lpad(to_hex({now} - i * 100), 12, '0') || '-7000-7000-8000-' || lpad(to_hex(i), 12, '0'),
                  'ws' || (i % 64), 'NEW_TIME_ENTRY', 'k' || i, repeat('x', 1000), {now} - i * 100, 'PROCESSED'
             FROM generate_series(1, 50000) i;
         INSERT INTO flow_executions (id, workspace_id, flow_id, webhook_id, event_type, status, steps, started_at, attempts, flow_version)
           SELECT lpad(to_hex({now} - i * 100), 12, '0') || '-7000-7000-9000-' || lpad(to_hex(i), 12, '0'),
                  'ws' || (i % 64), 'flow', 'w' || i, 'NEW_TIME_ENTRY', 'SUCCEEDED', '[]', {now} - i * 100, 1, 1
             FROM generate_series(1, 50000) i;"
    )))
    .execute(db.pool())
    .await
    .unwrap();
    let config = addon_core::config::RetentionConfig {
        webhook_log_days: 30,
        flow_executions_days: 30,
        entity_cache_days: 7,
        api_calls_days: 30,
        interval: Duration::from_secs(3600),
        batch_size: 1000,
    };
    let cutoff = addon_core::store::id_floor(now - 30 * DAY_MILLIS);
    let mut conn = db.pool().acquire().await.unwrap();
    for analysed in [false, true] {
        if analysed {
            sqlx::raw_sql("ANALYZE webhook_log; ANALYZE flow_executions")
                .execute(&mut *conn)
                .await
                .unwrap();
        }
        for rule in retention::rules(&config) {
            if !matches!(rule.table, "webhook_log" | "flow_executions") {
                continue;
            }
            let sql = retention::delete_sql(&rule, addon_core::db::Backend::Postgres);
            for mode in ["force_custom_plan", "force_generic_plan"] {
                let plan: Vec<String> = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "SET plan_cache_mode = {mode};
                     PREPARE d AS {sql};
                     EXPLAIN (COSTS OFF) EXECUTE d('{cutoff}', 1000);
                     DEALLOCATE d;"
                )))
                .fetch_all(&mut *conn)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<String, _>(0))
                .collect();
                let plan = plan.join("\n");
                assert!(
                    !plan.contains("Seq Scan"),
                    "{} ({mode}, analysed: {analysed}) reads the whole table:\n{plan}",
                    rule.table
                );
                assert!(plan.contains("Index"), "{}: {plan}", rule.table);
            }
        }
    }
    drop(conn);
    db.close().await;
}
