//! Universal Webhook end to end: webhooks accepted per second and flows executed per second,
//! each delivery running one flow with one CLOCKIFY_API action against a local fake Clockify,
//! with one, two and three `serve` processes sharing one PostgreSQL database.
//!
//!     cargo bench -p clockify-addons --bench flows
//!
//! The servers run as in production (ADDON_MODE=production, JSON logs at info into a file) on
//! a fresh database with BENCH_WORKSPACES workspaces (default 64: Clockify allows 50 calls per
//! second per workspace, and the engine keeps to that, so 64 workspaces can take 3,137 actions
//! per second), bootstrap off and one flow each (`POST /v1/workspaces/{id}/tags` with a value
//! from the webhook). Every request is Clockify's published NEW_TIME_ENTRY sample with its own
//! id. For each process count (BENCH_REPLICAS, default "1,2,3") and each load level
//! (BENCH_LEVELS, default "16,64" connections, spread over the processes) it sends as fast as
//! answered for BENCH_SECONDS (5), waits for every execution to finish, and prints: deliveries
//! accepted per second with p50/p99; errors (any answer but 200, any failed connection: the
//! connection is reopened and keeps sending); rows stored (a 200 without a new row would be a
//! lie); flows executed per second from the first delivery to the last execution; p99 from
//! receipt to the flow's start and to its end; statements slower than 50 ms the servers logged
//! during the level; how busy the machine's cores were while it sent, and the share the
//! hypervisor took (steal), from `/proc/stat`; each server's peak RSS; and where the servers'
//! time went per stage. Then a steady BENCH_STEADY_RATE (1,000; a list such as "1000,2000"
//! runs each; 0 skips it) webhooks per second for BENCH_SECONDS: p99 receipt-to-start, and the
//! same slow statements and cores. The steady rate is spread over BENCH_STEADY_CONNECTIONS
//! (64) connections, each sending on its own clock: a connection carries one request at a time, so with 16 each
//! had 16 ms per request, and three processes on a slow machine, answering in 20 ms, were sent
//! 760-837 a second instead of 1,000.
//!
//! BENCH_DB_CPUS (a CPU list, such as `1`) gives the local PostgreSQL those cores and the
//! benchmark, its servers and the fake Clockify the others (`common/cpus.rs`), as in a cluster,
//! where a pod does not share its cores with the database; unset, every process shares every
//! core.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use addon_core::auth::TokenSigner;
use addon_testkit::{Alpn, FakeClockify, FakeResponse, keys};
use common::{Level, Server, drive, peak_rss_kib, psql};
use serde_json::json;
use sqlx::Row;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn list(name: &str, default: &str) -> Vec<usize> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

/// The fake Clockify the servers call, and how they reach it (BENCH_CLOCKIFY): `https` (the
/// default) serves HTTPS offering HTTP/2 and HTTP/1.1, as Clockify's API is reached over HTTPS;
/// `https-http1` offers HTTP/1.1 only, where a call in flight holds a connection of its own;
/// `http` is plain HTTP/1.1, without TLS's cost.
async fn fake_clockify() -> (FakeClockify, &'static str) {
    match std::env::var("BENCH_CLOCKIFY").as_deref() {
        Ok("https") | Err(_) => (
            FakeClockify::start_tls(Alpn::Http2AndHttp1).await,
            "HTTPS (ALPN h2, http/1.1)",
        ),
        Ok("https-http1") => (
            FakeClockify::start_tls(Alpn::Http1Only).await,
            "HTTPS (ALPN http/1.1)",
        ),
        Ok("http") => (FakeClockify::start().await, "plain HTTP/1.1"),
        Ok(other) => panic!("BENCH_CLOCKIFY={other:?}: expected https, https-http1 or http"),
    }
}

struct Measured {
    stored: i64,
    executed: i64,
    failed: i64,
    flows_per_sec: f64,
    start_p99_ms: f64,
    end_p99_ms: f64,
}

/// What happened to the deliveries received since `since`, once every execution finished (or
/// 600 s passed).
///
/// While the servers drain the queue, the wait asks only whether work is left, from the
/// indexes the engine itself uses (an id in the fan-out queue, an execution due or leased):
/// counting the level's rows on every poll scanned the delivery log, 100-180 ms a statement
/// every 50 ms, on the database the servers were being measured on.
async fn measure(pool: &sqlx::PgPool, since: i64, accepted: u64) -> Measured {
    let deadline = Instant::now() + Duration::from_secs(600);
    let stored = loop {
        let busy: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM webhook_queue)
                 OR EXISTS (SELECT 1 FROM flow_executions WHERE status IN ('PENDING', 'RETRY'))
                 OR EXISTS (SELECT 1 FROM flow_executions WHERE status = 'RUNNING')",
        )
        .fetch_one(pool)
        .await
        .expect("work left");
        if !busy || Instant::now() > deadline {
            let stored: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM webhook_log WHERE received_at >= $1")
                    .bind(since)
                    .fetch_one(pool)
                    .await
                    .expect("count");
            if stored as u64 >= accepted || Instant::now() > deadline {
                break stored;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let row = sqlx::query(
        "SELECT COUNT(*) FILTER (WHERE e.status = 'SUCCEEDED'),
                COUNT(*) FILTER (WHERE e.status <> 'SUCCEEDED'),
                COALESCE(MAX(e.finished_at) - MIN(w.received_at), 0),
                COALESCE(percentile_cont(0.99) WITHIN GROUP (ORDER BY e.started_at - w.received_at), 0)::float8,
                COALESCE(percentile_cont(0.99) WITHIN GROUP (ORDER BY e.finished_at - w.received_at), 0)::float8
           FROM flow_executions e JOIN webhook_log w ON w.id = e.webhook_id WHERE w.received_at >= $1",
    )
    .bind(since)
    .fetch_one(pool)
    .await
    .expect("measure");
    let span_ms: i64 = row.get(2);
    let executed: i64 = row.get(0);
    Measured {
        stored,
        executed,
        failed: row.get(1),
        flows_per_sec: executed as f64 * 1000.0 / span_ms.max(1) as f64,
        start_p99_ms: row.get(3),
        end_p99_ms: row.get(4),
    }
}

async fn stages(servers: &[Server]) -> Vec<(String, f64)> {
    let mut sum: Vec<(String, f64)> = Vec::new();
    for s in servers {
        for (stage, v) in common::stage_seconds(s.port).await {
            match sum.iter_mut().find(|(n, _)| *n == stage) {
                Some((_, t)) => *t += v,
                None => sum.push((stage, v)),
            }
        }
    }
    sum
}

fn slow_statements(servers: &[Server]) -> usize {
    servers
        .iter()
        .map(|s| s.log_lines("slow statement").len())
        .sum()
}

#[tokio::main]
async fn main() {
    addon_core::clockify::client::install_tls_provider();
    let secs: u64 = env_or("BENCH_SECONDS", 5);
    let workspaces: usize = env_or("BENCH_WORKSPACES", 64);
    let steady: Vec<f64> = std::env::var("BENCH_STEADY_RATE")
        .unwrap_or_else(|_| "1000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let steady_conns: usize = env_or("BENCH_STEADY_CONNECTIONS", 64);
    let levels = common::levels("16,64");
    let replicas = list("BENCH_REPLICAS", "1,2,3");
    let server = common::postgres_server();
    let cpus = common::cpus::Split::from_env(&server);
    // The binary measured: this build, or another (BENCH_SERVER_BIN: the static musl build the
    // images ship, an earlier release).
    let bin = common::server_bin();
    let (db, url) = common::fresh_database(&bin, &server, "universal-webhook");

    let (fake, transport) = fake_clockify().await;
    fake.respond(|_| FakeResponse::json(201, json!({"id": "tag"})));
    let signer =
        TokenSigner::from_rsa_pem(&keys().private_pem, "universal-webhook").expect("signer");
    // Each process's pool (DATABASE_MAX_CONNECTIONS): BENCH_DB_CONNECTIONS, or 10 for one
    // process and 5 each for more. The database has two cores: two or three processes with 10
    // connections each kept 20-30 statements running at once, which then waited for a core
    // (2,127 and 1,701 flows/s, 67 and 13 statements over 50 ms at 64 connections); with 5 each,
    // 2,475-2,619 and 2,229-2,300 accepted/s with 0-1 over 50 ms.
    let pool_size = |n: usize| env_or("BENCH_DB_CONNECTIONS", if n == 1 { 10u32 } else { 5 });
    let start = |n: usize| {
        let mut env = vec![
            ("DATABASE_URL", url.clone()),
            ("DATABASE_MAX_CONNECTIONS", pool_size(n).to_string()),
            ("CLOCKIFY_PUBLIC_KEY", keys().public_pem.clone()),
            ("CLOCKIFY_API_ALLOWED_HOSTS", fake.allow_entry()),
        ];
        if let Some(ca) = fake.ca_file() {
            env.push(("SSL_CERT_FILE", ca.display().to_string()));
        }
        let port = common::free_port();
        common::start_server(&bin, "universal-webhook", port, &env)
    };
    let first = replicas.first().copied().unwrap_or(1);
    let mut servers = vec![start(first)];
    common::wait_ready(servers[0].port).await;
    let targets =
        common::install_flow_workspaces(servers[0].port, workspaces, &signer, &fake.api_url())
            .await;
    let targets = Arc::new(targets);
    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    // Let the installs' bootstrap runs (requested before the setting) finish.
    tokio::time::sleep(Duration::from_secs(2)).await;

    println!(
        "Universal Webhook: one CLOCKIFY_API action per delivery (Clockify's NEW_TIME_ENTRY sample), {workspaces} workspaces, {secs} s per level, production logging, PostgreSQL; fake Clockify over {transport}; server: {bin}; {}",
        common::cpus::Split::describe(cpus.as_ref())
    );
    println!(
        "{:>5} {:>6} {:>11} {:>8} {:>8} {:>7} {:>8} {:>9} {:>10} {:>10} {:>7} {:>5} {:>11} {:>18}",
        "procs",
        "conns",
        "accepted/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "stored",
        "flows/s",
        "start p99",
        "end p99",
        "failed",
        "slow",
        "cpu busy/st",
        "peak RSS MiB"
    );
    let mut seed = 1u64;
    // The slow-statement lines of servers already stopped.
    let mut slow_lines: Vec<String> = Vec::new();
    let mut steady_lines = Vec::new();
    let mut stage_lines = Vec::new();
    for &n in &replicas {
        // Every process count starts afresh (its own pool size; peak RSS of this count only).
        if servers.len() != n {
            for s in &servers {
                slow_lines.extend(s.log_lines("slow statement"));
            }
            servers.clear();
            for _ in 0..n {
                let s = start(n);
                common::wait_ready(s.port).await;
                servers.push(s);
            }
        }
        let ports: Vec<u16> = servers.iter().map(|s| s.port).collect();
        for &conns in &levels {
            let before = stages(&servers).await;
            let slow_before = slow_statements(&servers);
            let since = addon_core::time::now_millis();
            let cpu = common::cpus::Times::now();
            let level: Level = drive(&ports, targets.clone(), conns, secs, seed, None).await;
            let cpu = cpu.share_until(&common::cpus::Times::now());
            seed += 1_000_000_000;
            let m = measure(&pool, since, level.accepted).await;
            let after = stages(&servers).await;
            let rss: Vec<String> = servers
                .iter()
                .map(|s| format!("{:.1}", peak_rss_kib(s.child.id()) as f64 / 1024.0))
                .collect();
            println!(
                "{:>5} {:>6} {:>11.0} {:>8.2} {:>8.2} {:>7} {:>8} {:>9.0} {:>10.0} {:>10.0} {:>7} {:>5} {:>11} {:>18}",
                n,
                conns,
                level.rps,
                level.p50_ms,
                level.p99_ms,
                level.errors,
                m.stored,
                m.flows_per_sec,
                m.start_p99_ms,
                m.end_p99_ms,
                m.failed,
                slow_statements(&servers) - slow_before,
                cpu,
                rss.join(" ")
            );
            if m.stored as u64 != level.accepted || m.executed != m.stored {
                println!(
                    "      ! {} accepted, {} stored, {} executed successfully",
                    level.accepted, m.stored, m.executed
                );
            }
            stage_lines.push(format!(
                "{n} procs, {conns} conns: {}",
                common::stage_shares(&before, &after)
            ));
        }
        for &rate in steady.iter().filter(|r| **r > 0.0) {
            let since = addon_core::time::now_millis();
            let slow_before = slow_statements(&servers);
            let cpu = common::cpus::Times::now();
            let level = drive(
                &ports,
                targets.clone(),
                steady_conns,
                secs,
                seed,
                Some(rate),
            )
            .await;
            let cpu = cpu.share_until(&common::cpus::Times::now());
            seed += 1_000_000_000;
            let m = measure(&pool, since, level.accepted).await;
            steady_lines.push(format!(
                "{n} procs, steady {rate:.0}/s over {steady_conns} connections for {secs} s: {:.0} accepted/s, {} errors, {} stored, receipt-to-start p99 {:.0} ms, receipt-to-end p99 {:.0} ms, {} slow, cpu busy/steal {cpu}",
                level.rps,
                level.errors,
                m.stored,
                m.start_p99_ms,
                m.end_p99_ms,
                slow_statements(&servers) - slow_before
            ));
        }
    }
    for l in steady_lines {
        println!("{l}");
    }
    // Per statement: how many were slow, the slowest and the time they took together.
    let mut slow: std::collections::BTreeMap<String, (usize, f64, f64)> = Default::default();
    for s in &servers {
        slow_lines.extend(s.log_lines("slow statement"));
    }
    for line in slow_lines {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        let fields = if v["fields"].is_object() {
            &v["fields"]
        } else {
            &v
        };
        let text = fields["summary"]
            .as_str()
            .or(fields["db.statement"].as_str())
            .unwrap_or(&line);
        let secs = fields["elapsed_secs"].as_f64().unwrap_or(0.0);
        let e = slow.entry(text.chars().take(100).collect()).or_default();
        e.0 += 1;
        e.1 = e.1.max(secs);
        e.2 += secs;
    }
    for (statement, (n, max, total)) in slow {
        println!(
            "slow statement x{n}, slowest {:.0} ms, {:.1} s in all: {statement}",
            max * 1000.0,
            total
        );
    }
    println!("time per stage (summed over concurrent work, all processes):");
    for l in stage_lines {
        println!("  {l}");
    }
    println!("fake Clockify received {} requests", fake.requests().len());
    pool.close().await;
    drop(servers);
    psql(
        &server,
        "postgres",
        &format!("DROP DATABASE {db} WITH (FORCE)"),
    );
}
