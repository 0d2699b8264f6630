//! Pieces the benchmarks share: the server process, peak RSS, psql, webhook bodies and the
//! load driver (signed deliveries over keep-alive HTTP/1 connections).
#![allow(dead_code)]

pub mod cpus;

use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;

pub struct Server {
    pub child: Child,
    pub port: u16,
    /// The server's log (production format).
    pub log: std::path::PathBuf,
}

impl Server {
    /// Lines of the server's log holding `needle`.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // BENCH_KEEP_LOGS=1 leaves the servers' logs for a closer look.
        if std::env::var_os("BENCH_KEEP_LOGS").is_none() {
            let _ = std::fs::remove_file(&self.log);
        } else {
            eprintln!("server log kept: {}", self.log.display());
        }
    }
}

pub fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

pub fn psql(server: &str, db: &str, sql: &str) {
    let out = Command::new("psql")
        .args([
            &format!("{server}/{db}"),
            "-v",
            "ON_ERROR_STOP=1",
            "-q",
            "-c",
            sql,
        ])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Clockify's published NEW_TIME_ENTRY sample for workspace `ws`, with id `i` (built once;
/// id and workspace are spliced in). The sample is sent as published (pretty-printed, 2.4 kB).
pub fn body_for(i: u64, ws: &str) -> String {
    static TEMPLATE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEMPLATE
        .get_or_init(body_template)
        .replace("@@ID@@", &format!("{i:024x}"))
        .replace("@@WS@@", ws)
}

/// Clockify's workspace id in the published samples.
const SAMPLE_WS: &str = "5f11791a4e759e12c40733ba";

fn body_template() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/clockify/webhook-samples/NEW_TIME_ENTRY.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the benchmarks send Clockify's published NEW_TIME_ENTRY sample; cannot read {}: {e}",
            path.display()
        )
    });
    let sample: serde_json::Value = serde_json::from_str(&text).expect("the sample is JSON");
    let id = sample["id"].as_str().expect("the sample has an id");
    // The entry's own id only (ids of its project, task and tags stay as published).
    text.replacen(&format!("\"id\": \"{id}\""), "\"id\": \"@@ID@@\"", 1)
        .replace(SAMPLE_WS, "@@WS@@")
}

/// Starts `bin serve <addon>` with production settings and production logging (JSON at
/// `info`, into a log file the benchmark reads afterwards); `env` adds or overrides variables.
pub fn start_server(bin: &str, addon: &str, port: u16, env: &[(&str, String)]) -> Server {
    let log = std::env::temp_dir().join(format!("bench-{addon}-{port}.log"));
    let file = std::fs::File::create(&log).expect("server log file");
    let mut cmd = Command::new(bin);
    cmd.args(["serve", addon])
        .env_remove("RUST_LOG")
        .env("ADDON_MODE", "production")
        .env("ADDON_BASE_URL", "https://bench.example")
        .env("ADDON_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env(
            "TOKEN_ENCRYPTION_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        )
        // Any statement over 50 ms is logged, and counted by the benchmark (a lower
        // BENCH_SLOW_STATEMENT_MS shows which statements a run waits on).
        .env(
            "DATABASE_SLOW_STATEMENT_MS",
            std::env::var("BENCH_SLOW_STATEMENT_MS").unwrap_or_else(|_| "50".into()),
        )
        .stdout(file.try_clone().expect("log file"))
        .stderr(file);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("start server");
    Server { child, port, log }
}

/// Waits until the server answers `/ready`.
pub async fn wait_ready(port: u16) {
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http
            .get(format!("http://127.0.0.1:{port}/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server on port {port} never became ready");
}

/// A free TCP port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port()
}

/// The `pipeline_stage_seconds_total` series of a server: (stage, seconds).
pub async fn stage_seconds(port: u16) -> Vec<(String, f64)> {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body");
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("pipeline_stage_seconds_total{stage=\"")?;
            let (stage, value) = rest.split_once("\"} ")?;
            Some((stage.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// Each stage's share of the server time spent between two [`stage_seconds`] readings,
/// formatted as `verify 3% store 40% ...`.
pub fn stage_shares(before: &[(String, f64)], after: &[(String, f64)]) -> String {
    let spent: Vec<(String, f64)> = after
        .iter()
        .map(|(stage, v)| {
            let b = before
                .iter()
                .find(|(s, _)| s == stage)
                .map_or(0.0, |(_, b)| *b);
            (stage.clone(), v - b)
        })
        .collect();
    let total: f64 = spent.iter().map(|(_, v)| v).sum();
    spent
        .iter()
        .map(|(stage, v)| {
            format!(
                "{stage} {:.0}% ({v:.1} s)",
                if total > 0.0 { 100.0 * v / total } else { 0.0 }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub struct Level {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub errors: u64,
    /// Deliveries accepted.
    pub accepted: u64,
}

/// Drives `POST /webhooks/clockify` over `conns` keep-alive connections for `secs` seconds,
/// connection `c` to `ports[c % len]`; request `i` of connection `c` signs as
/// `targets[(c + i) % len]` (webhook token, workspace). A connection that fails is counted and
/// reconnected; it keeps sending until the end. With `rate` (requests per second in all), each
/// connection paces its requests evenly instead of sending as fast as it is answered.
pub async fn drive(
    ports: &[u16],
    targets: Arc<Vec<(String, String)>>,
    conns: usize,
    secs: u64,
    seed: u64,
    rate: Option<f64>,
) -> Level {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..conns {
        let stop = stop.clone();
        let targets = targets.clone();
        let port = ports[c % ports.len()];
        let interval = rate.map(|r| Duration::from_secs_f64(conns as f64 / r));
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(50_000);
            let mut errors = 0u64;
            let mut i = 0u64;
            let mut tick = interval.map(|d| {
                let mut t = tokio::time::interval_at(
                    tokio::time::Instant::now() + d.mul_f64(c as f64 / conns as f64),
                    d,
                );
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                t
            });
            'connection: while !stop.load(Ordering::Relaxed) {
                let Ok(stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
                    errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                stream.set_nodelay(true).ok();
                let Ok((mut send, conn)) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                        .await
                else {
                    errors += 1;
                    continue;
                };
                tokio::spawn(conn);
                while !stop.load(Ordering::Relaxed) {
                    if let Some(t) = tick.as_mut() {
                        t.tick().await;
                    }
                    let n = seed + (c as u64) * 10_000_000 + i;
                    // Requests rotate over the targets (workspaces), starting at the connection's.
                    let (token, ws) = &targets[(c + i as usize) % targets.len()];
                    i += 1;
                    let req = Request::post("/webhooks/clockify")
                        .header("host", "127.0.0.1")
                        .header("content-type", "application/json")
                        .header("clockify-signature", token.as_str())
                        .header("clockify-webhook-event-type", "NEW_TIME_ENTRY")
                        .body(Full::new(Bytes::from(body_for(n, ws))))
                        .expect("request");
                    let t = Instant::now();
                    match send.send_request(req).await {
                        Ok(resp) => {
                            let ok = resp.status() == 200;
                            let _ = resp.into_body().collect().await;
                            if ok {
                                lat.push(t.elapsed().as_micros() as u32);
                            } else {
                                errors += 1;
                            }
                        }
                        Err(_) => {
                            errors += 1;
                            continue 'connection;
                        }
                    }
                }
            }
            (lat, errors)
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await.expect("load task");
        all.extend(lat);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    Level {
        accepted: all.len() as u64,
        rps: all.len() as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        p999_ms: pct(0.999),
        errors,
    }
}

/// The binary a benchmark measures: this build, or another (`BENCH_SERVER_BIN`, such as an
/// earlier release).
pub fn server_bin() -> String {
    std::env::var("BENCH_SERVER_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_clockify-addons").to_owned())
}

/// The PostgreSQL server (`TEST_POSTGRES_URL`, else the local one).
pub fn postgres_server() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A fresh database on `server` migrated by `bin migrate <addon>`: `(name, url)`.
pub fn fresh_database(bin: &str, server: &str, addon: &str) -> (String, String) {
    let db = format!("bench_{}", uuid::Uuid::new_v4().simple());
    psql(server, "postgres", &format!("CREATE DATABASE {db}"));
    let url = format!("{server}/{db}");
    let migrate = Command::new(bin)
        .args(["migrate", addon])
        .env("DATABASE_URL", &url)
        .output()
        .expect("migrate");
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    (db, url)
}

/// Parses a comma-separated list of connection counts (`BENCH_LEVELS`).
pub fn levels(default: &str) -> Vec<usize> {
    std::env::var("BENCH_LEVELS")
        .unwrap_or_else(|_| default.into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

/// Installs Universal Webhook in `workspaces` workspaces through the server on `port` (bootstrap
/// off), each with one flow: on a billable NEW_TIME_ENTRY, one CLOCKIFY_API action
/// (`POST /v1/workspaces/{id}/tags`) against `api`. Returns each workspace's (webhook token,
/// workspace id) for [`drive`].
pub async fn install_flow_workspaces(
    port: u16,
    workspaces: usize,
    signer: &addon_core::auth::TokenSigner,
    api: &str,
) -> Vec<(String, String)> {
    use addon_core::auth::TokenKind;
    use serde_json::json;
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let mut targets = Vec::new();
    for w in 0..workspaces {
        let ws = format!("{w:024x}");
        let sign = |kind| signer.sign(kind, &ws, api).expect("sign");
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
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
        targets.push((webhook, ws));
    }
    targets
}
