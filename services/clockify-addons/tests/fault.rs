//! Fault test on the real binary: Universal Webhook accepts a batch of webhooks, is killed
//! with SIGKILL while its flows are in flight (the fake Clockify holds every request, so none
//! is acted on), and is started again on the same PostgreSQL database. Every accepted
//! delivery's flows then run exactly once: one SUCCEEDED execution per (flow, delivery), and
//! one acted-on request per (flow, delivery) at the fake.
#![cfg(test)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use addon_testkit::{Backend, FakeClockify, FakeResponse, TestDb};
use serde_json::{Value, json};
use sqlx::Row;

const WORKSPACES: &[&str] = &["ws-a", "ws-b"];
const DELIVERIES: usize = 30;

/// Settings of this test: Clockify may hold a call for a minute, and a dead process's leases
/// run out in 2 s.
const SETTINGS: &[(&str, &str)] = &[
    ("CLOCKIFY_API_TIMEOUT_SECONDS", "60"),
    ("FLOW_LEASE_SECONDS", "2"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_before_flows_ran_loses_nothing_and_runs_each_flow_once() {
    addon_core::clockify::client::install_tls_provider();
    let db = TestDb::new(Backend::Postgres).await;
    common::migrate(&db);
    let fake = FakeClockify::start().await;
    // Phase 1: Clockify holds every request; nothing is acted on before the kill.
    fake.respond(|_| FakeResponse::json(200, json!([])).delayed(Duration::from_secs(300)));
    let port = common::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut server = common::spawn(&db, &fake, port, SETTINGS);
    common::ready(&http, &base).await;

    let mut webhook_tokens = BTreeMap::new();
    for ws in WORKSPACES {
        let webhook = common::install(
            &http,
            &base,
            &fake,
            ws,
            &[("tags", "tags"), ("clients", "clients")],
        )
        .await;
        webhook_tokens.insert(*ws, webhook);
    }
    // The install's bootstrap may have reached the fake before the setting; start clean.
    tokio::time::sleep(Duration::from_millis(200)).await;
    fake.clear();

    for i in 0..DELIVERIES {
        for ws in WORKSPACES {
            common::deliver(&http, &base, &webhook_tokens[ws], ws, &format!("te-{i}")).await;
        }
    }
    let in_flight = fake.wait_for(1, Duration::from_secs(10)).await;
    assert!(
        !in_flight.is_empty(),
        "flows had started when the process died"
    );
    server.kill(); // SIGKILL
    let held = fake.requests().len();

    // Phase 2: Clockify answers; the restarted process finishes the work.
    fake.clear();
    fake.respond(|_| FakeResponse::json(201, json!({"id": "x"})));
    let mut server = common::spawn(&db, &fake, port, SETTINGS);
    common::ready(&http, &base).await;
    let expected = WORKSPACES.len() * DELIVERIES * 2;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let succeeded = loop {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM flow_executions WHERE status = 'SUCCEEDED'")
            .fetch_one(&pool)
            .await
            .unwrap()
            .get(0);
        if n as usize >= expected || Instant::now() > deadline {
            break n as usize;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Let any duplicate show itself before counting.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server.kill();
    assert_eq!(
        succeeded, expected,
        "every accepted delivery's flows ran ({held} requests were held at the crash)"
    );
    let rows = sqlx::query(
        "SELECT flow_id, webhook_id, COUNT(*) AS n, MIN(status) AS s FROM flow_executions GROUP BY flow_id, webhook_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), expected, "one execution per (flow, delivery)");
    for r in &rows {
        assert_eq!(r.get::<i64, _>("n"), 1);
        assert_eq!(r.get::<String, _>("s"), "SUCCEEDED");
    }
    let mut acted: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    // The flows' POSTs (a bootstrap interrupted by the kill also resumes, with GETs).
    for req in fake.requests().into_iter().filter(|r| r.method == "POST") {
        let ws = req.workspace().unwrap_or_default().to_owned();
        let kind = req.path.rsplit('/').next().unwrap_or_default().to_owned();
        let name = req.body["name"].as_str().unwrap_or_default().to_owned();
        *acted.entry((ws, kind, name)).or_default() += 1;
    }
    assert_eq!(
        acted.len(),
        expected,
        "every (flow, delivery) reached Clockify"
    );
    let repeated: Vec<_> = acted.iter().filter(|(_, n)| **n != 1).collect();
    assert!(repeated.is_empty(), "acted on more than once: {repeated:?}");
    let pending: Value = json!(
        sqlx::query("SELECT (SELECT COUNT(*) FROM webhook_queue) + (SELECT COUNT(*) FROM webhook_log WHERE status = 'PENDING')")
            .fetch_one(&pool)
            .await
            .unwrap()
            .get::<i64, _>(0)
    );
    assert_eq!(pending, json!(0), "no delivery left unprocessed");
    pool.close().await;
}
