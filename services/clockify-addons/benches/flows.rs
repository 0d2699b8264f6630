//! Universal Webhook end to end: webhooks accepted per second and flows executed per second,
//! each delivery running one flow with one CLOCKIFY_API action against a local fake Clockify.
//!
//!     cargo bench -p clockify-addons --bench flows
//!
//! Starts `clockify-addons serve universal-webhook` (release build) on a fresh PostgreSQL
//! database, installs BENCH_WORKSPACES workspaces (default 64: Clockify allows 50 calls per
//! second per workspace, so the fake API's limit is not what is measured) with bootstrap off
//! and one flow each (`POST /v1/workspaces/{id}/tags` with a value from the webhook). For each
//! level (BENCH_LEVELS, default "16,64" connections) it drives signed NEW_TIME_ENTRY deliveries
//! for BENCH_SECONDS (default 5), then waits for every execution to finish, and prints:
//! accepted/s with p50/p99 acceptance latency; flows executed/s from the first delivery to the
//! last execution; p99 from receipt to the flow's end; and the server's peak RSS.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use addon_core::auth::{TokenKind, TokenSigner};
use addon_testkit::{FakeClockify, FakeResponse, keys};
use common::{Server, drive, peak_rss_kib, psql};
use serde_json::json;
use sqlx::Row;

const BIN: &str = env!("CARGO_BIN_EXE_clockify-addons");

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    addon_core::clockify::client::install_tls_provider();
    let secs: u64 = env_or("BENCH_SECONDS", 5);
    let workspaces: usize = env_or("BENCH_WORKSPACES", 64);
    let levels = common::levels("16,64");
    let server = common::postgres_server();
    let (db, url) = common::fresh_database(BIN, &server, "universal-webhook");

    let fake = FakeClockify::start().await;
    fake.respond(|_| FakeResponse::json(201, json!({"id": "tag"})));
    let signer =
        TokenSigner::from_rsa_pem(&keys().private_pem, "universal-webhook").expect("signer");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let child = Command::new(BIN)
        .args(["serve", "universal-webhook"])
        .env("DATABASE_URL", &url)
        .env(
            "DATABASE_MAX_CONNECTIONS",
            env_or("BENCH_DB_CONNECTIONS", 10u32).to_string(),
        )
        .env("ADDON_BASE_URL", "https://bench.example")
        .env("ADDON_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env(
            "TOKEN_ENCRYPTION_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        )
        .env("CLOCKIFY_PUBLIC_KEY", &keys().public_pem)
        .env("CLOCKIFY_API_ALLOWED_HOSTS", fake.allow_entry())
        .env(
            "RUST_LOG",
            std::env::var("BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start server");
    let proc = Server { child, port };
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if http
            .get(format!("{base}/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let api = fake.api_url();
    let mut targets = Vec::new();
    for w in 0..workspaces {
        let ws = format!("{w:024x}");
        let sign = |kind| signer.sign(kind, &ws, &api).expect("sign");
        let webhook = sign(TokenKind::Webhook);
        let lifecycle = sign(TokenKind::Lifecycle);
        let r = http
            .post(format!("{base}/lifecycle/installed"))
            .header("X-Addon-Lifecycle-Token", &lifecycle)
            .json(&json!({
                "addonId": "bench", "authToken": sign(TokenKind::Installation), "workspaceId": ws, "apiUrl": api,
                "webhooks": [{"path": "/webhooks/clockify", "webhookType": "ADDON", "authToken": webhook}]
            }))
            .send()
            .await
            .expect("install");
        assert_eq!(r.status(), 200);
        let r = http
            .post(format!("{base}/lifecycle/settings-updated"))
            .header("X-Addon-Lifecycle-Token", &lifecycle)
            .json(&json!({"workspaceId": ws, "settings": [{"id": "bootstrap_on_install", "name": "b", "value": false}]}))
            .send()
            .await
            .expect("settings");
        assert_eq!(r.status(), 200);
        let r = http
            .post(format!("{base}/ui/flows"))
            .bearer_auth(sign(TokenKind::User))
            .json(&json!({
                "name": "tag billable entries", "triggerEvents": ["NEW_TIME_ENTRY"],
                "conditions": [{"path": "$.billable", "op": "==", "value": true}],
                "actions": [{"method": "POST", "path": "/v1/workspaces/{{workspaceId}}/tags", "body": {"name": "{{$.id}}"}}]
            }))
            .send()
            .await
            .expect("flow");
        assert_eq!(r.status(), 201);
        targets.push((webhook, ws));
    }
    let targets = Arc::new(targets);
    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    let count = |status: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query("SELECT COUNT(*) FROM flow_executions WHERE status = $1")
                .bind(status)
                .fetch_one(&pool)
                .await
                .expect("count")
                .get::<i64, _>(0) as u64
        }
    };
    // Let the installs' bootstrap runs (requested before the setting) finish.
    tokio::time::sleep(Duration::from_secs(2)).await;

    println!(
        "Universal Webhook, one CLOCKIFY_API action per delivery, {workspaces} workspaces, {secs} s per level, release build, PostgreSQL"
    );
    println!(
        "{:>6} {:>13} {:>10} {:>10} {:>13} {:>14} {:>8} {:>14}",
        "conns",
        "accepted/s",
        "p50 ms",
        "p99 ms",
        "flows/s",
        "flow p99 ms",
        "failed",
        "server VmHWM"
    );
    let mut seed = 1u64;
    for conns in levels {
        let done_before = count("SUCCEEDED").await + count("FAILED").await;
        let since = addon_core::time::now_millis();
        let started = Instant::now();
        let level = drive(port, targets.clone(), conns, secs, seed).await;
        seed += 1_000_000_000;
        let target = done_before + level.accepted;
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let done = count("SUCCEEDED").await + count("FAILED").await;
            if done >= target || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let drained = started.elapsed().as_secs_f64();
        let p99: f64 = sqlx::query(
            "SELECT COALESCE(percentile_cont(0.99) WITHIN GROUP (ORDER BY e.finished_at - w.received_at), 0)::float8
               FROM flow_executions e JOIN webhook_log w ON w.id = e.webhook_id WHERE w.received_at >= $1",
        )
        .bind(since)
        .fetch_one(&pool)
        .await
        .expect("p99")
        .get(0);
        let failed = count("FAILED").await;
        println!(
            "{:>6} {:>13.0} {:>10.2} {:>10.2} {:>13.0} {:>14.0} {:>8} {:>11.1} MiB",
            conns,
            level.rps,
            level.p50_ms,
            level.p99_ms,
            level.accepted as f64 / drained,
            p99,
            failed,
            peak_rss_kib(proc.child.id()) as f64 / 1024.0
        );
    }
    println!("fake Clockify received {} requests", fake.requests().len());
    pool.close().await;
    drop(proc);
    psql(
        &server,
        "postgres",
        &format!("DROP DATABASE {db} WITH (FORCE)"),
    );
}
