//! Fault test on the real binary: Universal Webhook accepts a batch of webhooks, is killed
//! with SIGKILL while its flows are in flight (the fake Clockify holds every request, so none
//! is acted on), and is started again on the same PostgreSQL database. Every accepted
//! delivery's flows then run exactly once: one SUCCEEDED execution per (flow, delivery), and
//! one acted-on request per (flow, delivery) at the fake.
#![cfg(test)]

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use addon_core::auth::TokenKind;
use addon_testkit::{Backend, FakeClockify, FakeResponse, TestDb, keys, signer};
use base64::Engine as _;
use serde_json::{Value, json};
use sqlx::Row;

const BIN: &str = env!("CARGO_BIN_EXE_clockify-addons");
const WORKSPACES: &[&str] = &["ws-a", "ws-b"];
const DELIVERIES: usize = 30;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(db: &TestDb, fake: &FakeClockify, port: u16) -> Child {
    Command::new(BIN)
        .args(["serve", "universal-webhook"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ADDON_MODE", "production")
        .env("ADDON_BASE_URL", "https://uw.test.example")
        .env("ADDON_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", &db.url)
        .env(
            "TOKEN_ENCRYPTION_KEY",
            base64::engine::general_purpose::STANDARD.encode([7u8; 32]),
        )
        .env("CLOCKIFY_PUBLIC_KEY", &keys().public_pem)
        .env("CLOCKIFY_API_ALLOWED_HOSTS", fake.allow_entry())
        .env("CLOCKIFY_API_TIMEOUT_SECONDS", "60")
        .env("FLOW_LEASE_SECONDS", "2")
        .env("LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start clockify-addons")
}

async fn ready(http: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if http
            .get(format!("{base}/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{base} did not become ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_before_flows_ran_loses_nothing_and_runs_each_flow_once() {
    addon_core::clockify::client::install_tls_provider();
    let db = TestDb::new(Backend::Postgres).await;
    let migrate = Command::new(BIN)
        .args(["migrate", "universal-webhook"])
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(migrate.status.success());
    let fake = FakeClockify::start().await;
    // Phase 1: Clockify holds every request; nothing is acted on before the kill.
    fake.respond(|_| FakeResponse::json(200, json!([])).delayed(Duration::from_secs(300)));
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut server = spawn(&db, &fake, port);
    ready(&http, &base).await;

    let sign = signer("universal-webhook");
    let token = |kind, ws: &str| sign.sign(kind, ws, &fake.api_url()).unwrap();
    let mut webhook_tokens = BTreeMap::new();
    for ws in WORKSPACES {
        let webhook = token(TokenKind::Webhook, ws);
        let r = http
            .post(format!("{base}/lifecycle/installed"))
            .header("X-Addon-Lifecycle-Token", token(TokenKind::Lifecycle, ws))
            .json(&json!({
                "addonId": "a", "authToken": token(TokenKind::Installation, ws), "workspaceId": ws,
                "apiUrl": fake.api_url(),
                "webhooks": [{"path": "/webhooks/clockify", "webhookType": "ADDON", "authToken": webhook}]
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        // Bootstrap off, so the only traffic at the fake is the flows'.
        let r = http
            .post(format!("{base}/lifecycle/settings-updated"))
            .header("X-Addon-Lifecycle-Token", token(TokenKind::Lifecycle, ws))
            .json(&json!({"workspaceId": ws, "settings": [{"id": "bootstrap_on_install", "name": "b", "value": false}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        for (name, path) in [("tags", "tags"), ("clients", "clients")] {
            let r = http
                .post(format!("{base}/ui/flows"))
                .bearer_auth(token(TokenKind::User, ws))
                .json(&json!({
                    "name": name, "triggerEvents": ["NEW_TIME_ENTRY"],
                    "actions": [{"method": "POST", "path": format!("/v1/workspaces/{{{{workspaceId}}}}/{path}"), "body": {"name": "{{$.id}}"}}]
                }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
        }
        webhook_tokens.insert(*ws, webhook);
    }
    // The install's bootstrap may have reached the fake before the setting; start clean.
    tokio::time::sleep(Duration::from_millis(200)).await;
    fake.clear();

    for i in 0..DELIVERIES {
        for ws in WORKSPACES {
            let r = http
                .post(format!("{base}/webhooks/clockify"))
                .header("Clockify-Signature", &webhook_tokens[ws])
                .header("Clockify-Webhook-Event-Type", "NEW_TIME_ENTRY")
                .json(&json!({"id": format!("te-{i}"), "workspaceId": ws}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "accepted before the crash");
        }
    }
    let in_flight = fake.wait_for(1, Duration::from_secs(10)).await;
    assert!(
        !in_flight.is_empty(),
        "flows had started when the process died"
    );
    server.kill().unwrap(); // SIGKILL
    server.wait().unwrap();
    let held = fake.requests().len();

    // Phase 2: Clockify answers; the restarted process finishes the work.
    fake.clear();
    fake.respond(|_| FakeResponse::json(201, json!({"id": "x"})));
    let mut server = spawn(&db, &fake, port);
    ready(&http, &base).await;
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
    let _ = server.kill();
    let _ = server.wait();
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
