//! Signed webhook ingestion into PostgreSQL, against pgbench inserting an equivalent row.
//!
//!     cargo bench -p clockify-addons --bench webhook_ingest
//!
//! Starts `clockify-addons serve api-studio` (release build) on a fresh PostgreSQL database,
//! installs one workspace, then drives `POST /webhooks/clockify` with signed, distinct
//! NEW_TIME_ENTRY deliveries over 1, 16 and 64 keep-alive connections. For each level it
//! prints requests/s, p50 and p99 latency and the server's peak RSS, then runs pgbench with the
//! same client count inserting the same row into a table shaped like the webhook log, and prints
//! our throughput as a ratio of pgbench's. Each level alternates the two BENCH_ROUNDS times
//! and reports medians, since a shared machine's speed drifts. Environment: BENCH_SECONDS
//! (default 5), BENCH_ROUNDS (3), BENCH_LEVELS ("1,16,64"), BENCH_DB_CONNECTIONS (10),
//! TEST_POSTGRES_URL, BENCH_SERVER_BIN (another build of the binary, such as an earlier release),
//! BENCH_DB_CPUS (the local PostgreSQL on those CPUs, the rest on the others: `common/cpus.rs`).

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use addon_core::auth::{DevKeyPair, TokenKind, TokenSigner};
use common::{body_for, drive, peak_rss_kib, psql};
use serde_json::json;

const WS: &str = "5f11791a4e759e12c40733ba";

fn pgbench(server: &str, db: &str, clients: usize, secs: u64, script: &std::path::Path) -> f64 {
    let out = Command::new("pgbench")
        .args(["-n", "-M", "prepared", "-f"])
        .arg(script)
        .args([
            "-c",
            &clients.to_string(),
            "-j",
            &clients.min(2).to_string(),
            "-T",
            &secs.to_string(),
        ])
        .arg(format!("{server}/{db}"))
        .output()
        .expect("pgbench (Debian package postgresql-contrib / postgresql client)");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2)?.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "pgbench output not understood:\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

/// Deliveries stored since `since` (a 200 without a row would not count).
async fn stored_since(url: &str, since: i64) -> u64 {
    let pool = sqlx::PgPool::connect(url).await.expect("connect");
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_log WHERE received_at >= $1")
        .bind(since)
        .fetch_one(&pool)
        .await
        .expect("count");
    pool.close().await;
    n as u64
}

#[tokio::main]
async fn main() {
    addon_core::clockify::client::install_tls_provider();
    let secs: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let levels = common::levels("1,16,64");
    let server = common::postgres_server();
    let cpus = common::cpus::Split::from_env(&server);
    let bin = common::server_bin();
    let (db, url) = common::fresh_database(&bin, &server, "api-studio");

    let keys = DevKeyPair::generate().expect("keys");
    let signer = TokenSigner::from_rsa_pem(&keys.private_pem, "api-studio").expect("signer");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let server_proc = common::start_server(
        &bin,
        "api-studio",
        port,
        &[
            ("DATABASE_URL", url.clone()),
            (
                "DATABASE_MAX_CONNECTIONS",
                std::env::var("BENCH_DB_CONNECTIONS").unwrap_or_else(|_| "10".into()),
            ),
            ("CLOCKIFY_PUBLIC_KEY", keys.public_pem.clone()),
        ],
    );
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{}", server_proc.port);
    common::wait_ready(server_proc.port).await;
    let webhook = signer
        .sign(TokenKind::Webhook, WS, "https://api.clockify.me/api")
        .expect("sign");
    let lifecycle = signer
        .sign(TokenKind::Lifecycle, WS, "https://api.clockify.me/api")
        .expect("sign");
    let installation = signer
        .sign(TokenKind::Installation, WS, "https://api.clockify.me/api")
        .expect("sign");
    let installed = json!({
        "addonId": "bench", "authToken": installation, "workspaceId": WS, "apiUrl": "https://api.clockify.me/api",
        "webhooks": [{"path": "/webhooks/clockify", "webhookType": "ADDON", "authToken": webhook}]
    });
    let r = http
        .post(format!("{base}/lifecycle/installed"))
        .header("X-Addon-Lifecycle-Token", &lifecycle)
        .json(&installed)
        .send()
        .await
        .expect("install");
    assert_eq!(r.status(), 200);
    // The install's bootstrap cannot reach Clockify here; let it finish failing first.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // pgbench inserts the same row into a table with the webhook log's shape and indexes. The
    // body comes from a one-row table: pgbench would read `:name` inside the JSON as variables.
    psql(
        &server,
        &db,
        "CREATE TABLE bench_log (LIKE webhook_log INCLUDING ALL)",
    );
    psql(
        &server,
        &db,
        &format!(
            "CREATE TABLE bench_sample AS SELECT '{}'::text AS body",
            body_for(1, WS).replace('\'', "''")
        ),
    );
    let script = std::env::temp_dir().join(format!("{db}.sql"));
    std::fs::write(
        &script,
        format!(
            "INSERT INTO bench_log (id, workspace_id, event_type, delivery_key, entity_id, body, received_at, status, processed_at) \
             SELECT gen_random_uuid()::text, '{WS}', 'NEW_TIME_ENTRY', md5(random()::text || clock_timestamp()::text), 'te', body, \
             (extract(epoch from clock_timestamp()) * 1000)::bigint, 'PROCESSED', (extract(epoch from clock_timestamp()) * 1000)::bigint \
             FROM bench_sample;\n"
        ),
    )
    .expect("pgbench script");

    let token = Arc::new(vec![(webhook, WS.to_owned())]);
    println!(
        "webhook ingestion into PostgreSQL: median of {} alternating {secs} s rounds per level, body {} bytes, release build; {}",
        std::env::var("BENCH_ROUNDS").unwrap_or_else(|_| "3".into()),
        body_for(1, WS).len(),
        common::cpus::Split::describe(cpus.as_ref())
    );
    println!(
        "{:>6} {:>12} {:>9} {:>9} {:>8} {:>14} {:>8} {:>14}",
        "conns", "ours req/s", "p50 ms", "p99 ms", "errors", "pgbench tps", "ratio", "server VmHWM"
    );
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let mut seed = 1u64;
    let mut shares = Vec::new();
    for &conns in &levels {
        // Warm up the connections and the pool.
        drive(&[server_proc.port], token.clone(), conns, 1, seed, None).await;
        seed += 1_000_000_000;
        // Alternate ours and pgbench and take medians: this machine's speed drifts.
        let mut ours = Vec::new();
        let mut pg = Vec::new();
        for _ in 0..rounds {
            let before = common::stage_seconds(server_proc.port).await;
            let since = addon_core::time::now_millis();
            let level = drive(&[server_proc.port], token.clone(), conns, secs, seed, None).await;
            let stored = stored_since(&url, since).await;
            if stored != level.accepted {
                println!(
                    "      ! {} deliveries answered 200 but {stored} rows stored",
                    level.accepted
                );
            }
            let after = common::stage_seconds(server_proc.port).await;
            shares.push(format!(
                "{conns} conns: {}",
                common::stage_shares(&before, &after)
            ));
            ours.push(level);
            seed += 1_000_000_000;
            pg.push(pgbench(&server, &db, conns, secs, &script));
        }
        ours.sort_by(|a, b| a.rps.total_cmp(&b.rps));
        pg.sort_by(f64::total_cmp);
        let (o, p) = (&ours[ours.len() / 2], pg[pg.len() / 2]);
        let rss = peak_rss_kib(server_proc.child.id());
        println!(
            "{:>6} {:>12.0} {:>9.2} {:>9.2} {:>8} {:>14.0} {:>7.0}% {:>11.1} MiB",
            conns,
            o.rps,
            o.p50_ms,
            o.p99_ms,
            ours.iter().map(|l| l.errors).sum::<u64>(),
            p,
            100.0 * o.rps / p,
            rss as f64 / 1024.0
        );
    }
    println!(
        "statements slower than 50 ms logged by the server: {}",
        server_proc.log_lines("slow statement").len()
    );
    println!("time per stage (summed over concurrent requests), per round:");
    for l in shares {
        println!("  {l}");
    }
    drop(server_proc);
    let _ = std::fs::remove_file(&script);
    psql(
        &server,
        "postgres",
        &format!("DROP DATABASE {db} WITH (FORCE)"),
    );
}
