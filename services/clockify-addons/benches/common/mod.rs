//! Pieces the benchmarks share: the server process, peak RSS, psql, webhook bodies and the
//! load driver (signed deliveries over keep-alive HTTP/1 connections).
#![allow(dead_code)]

use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use serde_json::json;

pub struct Server {
    pub child: Child,
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

/// A NEW_TIME_ENTRY body of `ws` with id `i` (built once; id and workspace are spliced in).
pub fn body_for(i: u64, ws: &str) -> String {
    static TEMPLATE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEMPLATE
        .get_or_init(body_template)
        .replace("@@ID@@", &format!("{i:024x}"))
        .replace("@@WS@@", ws)
}

fn body_template() -> String {
    const WS: &str = "@@WS@@";
    let mut b = json!({
        "id": "@@ID@@", "description": "Webhook Test Description", "tagIds": ["5f118b747db7a8637ffcaf33"],
        "userId": "5ef1cf219f130f232cc34ddc", "billable": true, "taskId": "5f1189847db7a8637ffcaf25",
        "projectId": "5f11849d4e759e12c40733d5",
        "timeInterval": {"start": "2020-07-17T11:35:01Z", "end": "2020-07-17T12:35:01Z", "duration": "PT1H"},
        "workspaceId": WS, "isLocked": false, "hourlyRate": null, "costRate": null,
        "project": {"name": "Project", "clientId": "5f1183584e759e12c40733cb", "clientName": "Client", "workspaceId": WS,
                    "billable": true, "color": "#795548", "archived": false, "duration": "PT0S", "note": "Test Note",
                    "id": "5f11849d4e759e12c40733d5", "public": true, "template": false},
        "task": {"name": "Task", "workspaceId": WS, "projectId": "5f11849d4e759e12c40733d5", "status": "ACTIVE", "id": "5f1189847db7a8637ffcaf25"},
        "user": {"name": "User", "id": "5ef1cf219f130f232cc34ddc", "status": "ACTIVE"},
        "tags": [{"name": "Tag", "workspaceId": WS, "archived": false, "id": "5f118b747db7a8637ffcaf33"}]
    });
    b["customFieldValues"] = json!([{"customFieldId": "5f118d9a7db7a8637ffcaf47", "value": "Custom field test value", "name": "Custom field"}]);
    b.to_string()
}

pub struct Level {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
    /// Deliveries accepted.
    pub accepted: u64,
}

/// Drives `POST /webhooks/clockify` over `conns` keep-alive connections for `secs` seconds;
/// request `i` of connection `c` signs as `targets[(c + i) % len]` (webhook token, workspace).
pub async fn drive(
    port: u16,
    targets: Arc<Vec<(String, String)>>,
    conns: usize,
    secs: u64,
    seed: u64,
) -> Level {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..conns {
        let stop = stop.clone();
        let targets = targets.clone();
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect");
            stream.set_nodelay(true).ok();
            let (mut send, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .expect("handshake");
            tokio::spawn(conn);
            let mut lat = Vec::with_capacity(50_000);
            let mut errors = 0u64;
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
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
                        break;
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
