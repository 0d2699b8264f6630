//! Scaling on the work versus on CPU: webhooks whose flows wait on a slow Clockify (each API
//! call answers after BENCH_CLOCKIFY_MS, default 2,000 ms: a Clockify that is slow or makes
//! the add-on wait out its rate limits) pile up a backlog while the CPU stays moderate. The same load runs twice, on a fresh database each time, with the
//! replica decision of a CPU HorizontalPodAutoscaler, then with KEDA's (backlog and CPU, the
//! ScaledObject the operator makes where KEDA is served):
//!
//!     cargo bench -p clockify-addons --bench scaling
//!
//! No kubelet runs here, so the decision is simulated and a replica is a `serve` process on
//! the shared PostgreSQL: every BENCH_POLL_MS (default 1,000; KEDA polls every 15 s, the HPA
//! every 15 s, scaled down so a run takes seconds) the loop reads each process's CPU over the
//! interval (/proc, as cAdvisor does) and the add-on's `GET /backlog`, computes the
//! autoscaler's ask (the HPA's rule: ceil(replicas x utilisation / target), nothing within 10%
//! of the target; KEDA's metrics-api trigger: ceil(waiting / backlogPerReplica)), and starts the
//! replicas asked for, up to BENCH_MAX_REPLICAS (4); a replica counts once it is ready. Never
//! down (the autoscaler's 5-minute stabilisation). Each process is one pod as the
//! universal-webhook ENTERPRISE tier sizes it: 200m CPU requested, the CPU target 70%, and
//! FLOW_CONCURRENCY (BENCH_FLOW_CONCURRENCY, default 64) executions at a time, so one replica
//! runs 32 flows a second against a 2 s Clockify. The load: BENCH_RATE (150) webhooks a
//! second for BENCH_LOAD_SECONDS (10) over 16 connections, 64 workspaces (BENCH_RATE=0: as fast
//! as answered, a burst the ingest itself makes CPU-heavy).
//!
//! Prints, per decision rule, the replicas and backlog over time, and the time from the first
//! webhook to the last flow's end.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use addon_core::auth::TokenSigner;
use addon_testkit::{FakeClockify, FakeResponse, keys};
use common::{Server, drive, psql};
use serde_json::json;
use sqlx::Row;

const BIN: &str = env!("CARGO_BIN_EXE_clockify-addons");
/// The ENTERPRISE tier's CPU request, in cores, and the autoscaler's target.
const CPU_REQUEST: f64 = 0.2;
const CPU_TARGET: f64 = 0.70;
/// The ScaledObject's default backlogPerReplica.
const BACKLOG_PER_REPLICA: f64 = 100.0;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Rule {
    Cpu,
    Work,
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat; 12 and 13 after the state field.
    (ticks(11) + ticks(12)) / 100.0
}

/// The HPA's ask from CPU: ceil(replicas x utilisation / target), unchanged within 10%.
fn cpu_ask(replicas: usize, utilisation: f64) -> usize {
    let ratio = utilisation / CPU_TARGET;
    if (ratio - 1.0).abs() <= 0.1 {
        return replicas;
    }
    (replicas as f64 * ratio).ceil() as usize
}

/// KEDA's metrics-api ask (AverageValue): ceil(waiting / backlogPerReplica).
fn backlog_ask(waiting: f64) -> usize {
    (waiting / BACKLOG_PER_REPLICA).ceil() as usize
}

struct Run {
    timeline: Vec<String>,
    drained_s: f64,
    accepted: u64,
    max_replicas: usize,
    failed: i64,
    peak_waiting: f64,
    start_p99_ms: f64,
}

async fn run(rule: Rule, server: &str, fake: &FakeClockify, signer: &TokenSigner) -> Run {
    let poll = Duration::from_millis(env_or("BENCH_POLL_MS", 1000));
    let max: usize = env_or("BENCH_MAX_REPLICAS", 4);
    let secs: u64 = env_or("BENCH_LOAD_SECONDS", 10);
    let rate = Some(env_or("BENCH_RATE", 150.0)).filter(|r| *r > 0.0);
    let (db, url) = common::fresh_database(BIN, server, "universal-webhook");
    let env = vec![
        ("DATABASE_URL", url.clone()),
        ("DATABASE_MAX_CONNECTIONS", "10".to_owned()),
        (
            "FLOW_CONCURRENCY",
            env_or("BENCH_FLOW_CONCURRENCY", 64u32).to_string(),
        ),
        ("CLOCKIFY_PUBLIC_KEY", keys().public_pem.clone()),
        ("CLOCKIFY_API_ALLOWED_HOSTS", fake.allow_entry()),
    ];
    let start = || common::start_server(BIN, "universal-webhook", common::free_port(), &env);
    let first = start();
    common::wait_ready(first.port).await;
    let targets =
        Arc::new(common::install_flow_workspaces(first.port, 64, signer, &fake.api_url()).await);
    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    let http = reqwest::Client::new();
    let backlog_url = format!("http://127.0.0.1:{}/backlog", first.port);
    let mut ready: Vec<Server> = vec![first];
    let mut starting: Vec<Server> = Vec::new();

    let t0 = Instant::now();
    let since = addon_core::time::now_millis();
    let mut load = Some({
        let ports = vec![ready[0].port];
        let targets = targets.clone();
        tokio::spawn(async move { drive(&ports, targets, 16, secs, 1, rate).await })
    });
    let mut timeline = Vec::new();
    let mut cpu_before: Vec<f64> = ready.iter().map(|s| cpu_seconds(s.child.id())).collect();
    let mut last = Instant::now();
    let mut accepted = None;
    let mut max_replicas = 1;
    let mut peak_waiting = 0f64;
    let deadline = Instant::now() + Duration::from_secs(600);
    let drained_s = loop {
        tokio::time::sleep(poll).await;
        if let Some(done) = load.take_if(|h| h.is_finished()) {
            accepted = Some(done.await.expect("load").accepted);
        }
        // Replicas that became ready join (their CPU counted from now).
        let mut still = Vec::new();
        for s in starting.drain(..) {
            let ok = http
                .get(format!("http://127.0.0.1:{}/ready", s.port))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ok {
                cpu_before.push(cpu_seconds(s.child.id()));
                ready.push(s);
            } else {
                still.push(s);
            }
        }
        starting = still;
        let elapsed = last.elapsed().as_secs_f64();
        last = Instant::now();
        let used: Vec<f64> = ready
            .iter()
            .zip(&cpu_before)
            .map(|(s, before)| cpu_seconds(s.child.id()) - before)
            .collect();
        cpu_before = ready.iter().map(|s| cpu_seconds(s.child.id())).collect();
        let utilisation = used.iter().sum::<f64>() / (elapsed * CPU_REQUEST * ready.len() as f64);
        let b: serde_json::Value = match http.get(&backlog_url).send().await {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => json!({}),
        };
        let waiting = b["waiting"].as_f64().unwrap_or(0.0);
        let running = b["running"].as_f64().unwrap_or(0.0);
        peak_waiting = peak_waiting.max(waiting);
        let replicas = ready.len() + starting.len();
        let ask = match rule {
            Rule::Cpu => cpu_ask(ready.len(), utilisation),
            Rule::Work => cpu_ask(ready.len(), utilisation).max(backlog_ask(waiting)),
        }
        .clamp(1, max);
        for _ in replicas..ask {
            starting.push(start());
        }
        max_replicas = max_replicas.max(ask.max(replicas));
        timeline.push(format!(
            "{:>5.1} s  replicas {} (+{} starting)  waiting {:>6.0}  running {:>4.0}  CPU {:>4.0}% of requests  ask {}",
            t0.elapsed().as_secs_f64(),
            ready.len(),
            starting.len(),
            waiting,
            running,
            utilisation * 100.0,
            ask
        ));
        if let Some(n) = accepted {
            let row = sqlx::query(
                "SELECT COUNT(*) FILTER (WHERE e.status IN ('SUCCEEDED', 'FAILED', 'SKIPPED')),
                        COALESCE(MAX(e.finished_at) - $1, 0)
                   FROM flow_executions e JOIN webhook_log w ON w.id = e.webhook_id
                  WHERE w.received_at >= $1",
            )
            .bind(since)
            .fetch_one(&pool)
            .await
            .expect("count");
            let (done, span_ms): (i64, i64) = (row.get(0), row.get(1));
            if done as u64 >= n || Instant::now() > deadline {
                break span_ms as f64 / 1000.0;
            }
        }
    };
    let row = sqlx::query(
        "SELECT COUNT(*) FILTER (WHERE e.status <> 'SUCCEEDED'),
                COALESCE(percentile_cont(0.99) WITHIN GROUP (ORDER BY e.started_at - w.received_at), 0)::float8
           FROM flow_executions e JOIN webhook_log w ON w.id = e.webhook_id WHERE w.received_at >= $1",
    )
    .bind(since)
    .fetch_one(&pool)
    .await
    .expect("failed");
    let (failed, start_p99_ms): (i64, f64) = (row.get(0), row.get(1));
    pool.close().await;
    drop(ready);
    drop(starting);
    psql(
        server,
        "postgres",
        &format!("DROP DATABASE {db} WITH (FORCE)"),
    );
    Run {
        timeline,
        drained_s,
        accepted: accepted.unwrap_or(0),
        max_replicas,
        failed,
        peak_waiting,
        start_p99_ms,
    }
}

#[tokio::main]
async fn main() {
    addon_core::clockify::client::install_tls_provider();
    let latency = Duration::from_millis(env_or("BENCH_CLOCKIFY_MS", 2000));
    let server = common::postgres_server();
    let fake = FakeClockify::start().await;
    fake.respond(move |_| FakeResponse::json(201, json!({"id": "tag"})).delayed(latency));
    let signer =
        TokenSigner::from_rsa_pem(&keys().private_pem, "universal-webhook").expect("signer");
    println!(
        "Universal Webhook: {} webhooks/s for {} s (0: as fast as answered), flows waiting {} ms on Clockify, release build, PostgreSQL; replicas decided every {} ms",
        env_or("BENCH_RATE", 150.0),
        env_or("BENCH_LOAD_SECONDS", 10u64),
        latency.as_millis(),
        env_or("BENCH_POLL_MS", 1000u64)
    );
    let mut summary = Vec::new();
    for (rule, name) in [
        (Rule::Cpu, "CPU HorizontalPodAutoscaler (70% of 200m)"),
        (
            Rule::Work,
            "KEDA ScaledObject (backlog 100/replica, and CPU)",
        ),
    ] {
        let r = run(rule, &server, &fake, &signer).await;
        println!("{name}:");
        for l in &r.timeline {
            println!("  {l}");
        }
        summary.push(format!(
            "{name}: {} webhooks accepted, at most {} replicas, backlog peak {:.0}, receipt-to-start p99 {:.1} s, every flow ended {:.1} s after the first webhook, {} failed",
            r.accepted,
            r.max_replicas,
            r.peak_waiting,
            r.start_p99_ms / 1000.0,
            r.drained_s,
            r.failed
        ));
    }
    for s in summary {
        println!("{s}");
    }
}
