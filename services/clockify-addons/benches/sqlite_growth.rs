//! The embedded default as it grows: webhook ingestion at one connection into the SQLite file,
//! empty and then holding BENCH_ROWS (default 1,000,000) deliveries.
//!
//!     cargo bench -p clockify-addons --bench sqlite_growth
//!
//! Starts `clockify-addons serve api-studio` (release build, development mode: the embedded
//! default is SQLite) on a fresh file with one installed workspace, drives Clockify's published
//! NEW_TIME_ENTRY sample over one keep-alive connection for BENCH_SECONDS (5) and prints
//! requests/s, p50, p99 and p99.9; then stops it, adds BENCH_ROWS stored deliveries of the
//! sample's size (spread over 64 workspaces and 30 days) with the sqlite3 CLI, starts it again
//! and measures again. The file's size is printed with each level.

mod common;

use std::process::Command;
use std::sync::Arc;

use addon_core::auth::{DevKeyPair, TokenKind, TokenSigner};
use common::{body_for, drive, peak_rss_kib};
use serde_json::json;

const WS: &str = "5f11791a4e759e12c40733ba";

fn sqlite(path: &std::path::Path, sql: &str) {
    let out = Command::new("sqlite3")
        .arg(path)
        .arg(sql)
        .output()
        .expect("sqlite3 CLI (Debian package sqlite3)");
    assert!(
        out.status.success(),
        "sqlite3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::main]
async fn main() {
    addon_core::clockify::client::install_tls_provider();
    let secs: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let rows: u64 = std::env::var("BENCH_ROWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let bin = common::server_bin();
    let dir = std::env::temp_dir().join(format!("sqlite-growth-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("addons.db");
    let url = format!("sqlite://{}?mode=rwc", file.display());
    let keys = DevKeyPair::generate().expect("keys");
    let signer = TokenSigner::from_rsa_pem(&keys.private_pem, "api-studio").expect("signer");
    let env = vec![
        ("ADDON_MODE", "development".to_owned()),
        ("DATABASE_URL", url.clone()),
        ("CLOCKIFY_PUBLIC_KEY", keys.public_pem.clone()),
    ];
    let webhook = signer
        .sign(TokenKind::Webhook, WS, "https://api.clockify.me/api")
        .expect("sign");
    let token = Arc::new(vec![(webhook.clone(), WS.to_owned())]);
    println!(
        "webhook ingestion into SQLite at one connection, {secs} s per level, body {} bytes, release build, production logging",
        body_for(1, WS).len()
    );
    println!(
        "{:>12} {:>10} {:>9} {:>9} {:>9} {:>9} {:>7} {:>12}",
        "deliveries", "file MiB", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "errors", "peak RSS"
    );
    let mut seed = 1u64;
    for stage in 0..2 {
        if stage == 1 {
            // Deliveries of the sample's size, over 64 workspaces and the last 30 days.
            let body = body_for(0, WS).replace('\'', "''");
            let now = addon_core::time::now_millis();
            let span = 30 * 86_400_000i64;
            sqlite(
                &file,
                &format!(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
                     INSERT INTO webhook_log (id, workspace_id, event_type, delivery_key, entity_id, body, received_at, status, processed_at)
                     SELECT printf('%08x-%04x-7000-8000-%012x', t / 65536, t % 65536, i), printf('%024x', i % 64), 'NEW_TIME_ENTRY',
                            lower(hex(randomblob(32))), lower(hex(randomblob(12))), '{body}', t, 'PROCESSED', t
                     FROM (SELECT i, {now} - {span} + i * ({span} / {rows}) AS t FROM n);"
                ),
            );
        }
        let port = common::free_port();
        let server = common::start_server(&bin, "api-studio", port, &env);
        common::wait_ready(port).await;
        if stage == 0 {
            let sign = |kind| {
                signer
                    .sign(kind, WS, "https://api.clockify.me/api")
                    .expect("sign")
            };
            let r = reqwest::Client::new()
                .post(format!("http://127.0.0.1:{port}/lifecycle/installed"))
                .header("X-Addon-Lifecycle-Token", sign(TokenKind::Lifecycle))
                .json(&json!({
                    "addonId": "bench", "authToken": sign(TokenKind::Installation), "workspaceId": WS, "apiUrl": "https://api.clockify.me/api",
                    "webhooks": [{"path": "/webhooks/clockify", "webhookType": "ADDON", "authToken": webhook}]
                }))
                .send()
                .await
                .expect("install");
            assert_eq!(r.status(), 200);
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        }
        let stored_before = count(&file);
        drive(&[port], token.clone(), 1, 1, seed, None).await;
        seed += 1_000_000_000;
        let level = drive(&[port], token.clone(), 1, secs, seed, None).await;
        seed += 1_000_000_000;
        let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0) as f64 / 1048576.0;
        println!(
            "{:>12} {:>10.0} {:>9.0} {:>9.2} {:>9.2} {:>9.2} {:>7} {:>8.1} MiB",
            stored_before,
            size,
            level.rps,
            level.p50_ms,
            level.p99_ms,
            level.p999_ms,
            level.errors,
            peak_rss_kib(server.child.id()) as f64 / 1024.0
        );
        drop(server);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn count(file: &std::path::Path) -> u64 {
    let out = Command::new("sqlite3")
        .arg(file)
        .arg("SELECT COUNT(*) FROM webhook_log")
        .output()
        .expect("sqlite3");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}
