//! Hostile traffic against the release binary on PostgreSQL, as issue 13 reproduced it.
//!
//!     cargo bench -p clockify-addons --bench hostile
//!
//! Starts `clockify-addons serve universal-webhook` on a fresh database with a local stand-in
//! for Clockify's API, installs one workspace, then:
//!
//! 1. opens 100 connections at once, each announcing a 5 MB webhook under a forged token and
//!    streaming it: prints the answers, the time, and the server's RSS before, at its peak and
//!    after they closed;
//! 2. stores flows at the engine's limits (32 placeholders of the whole delivery; 31 of a
//!    30,000-character value, just under the 1 MiB render budget) and sends the largest
//!    delivery accepted (5 MB): prints how each execution ended, what reached the API
//!    stand-in, and the peak RSS;
//! 3. checks the process is still serving (`/healthz`, `/ready`).
//!
//! Environment: TEST_POSTGRES_URL, BENCH_SERVER_BIN (another build of the binary).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use addon_core::auth::{DevKeyPair, TokenKind, TokenSigner};
use common::peak_rss_kib;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WS: &str = "5f11791a4e759e12c40733ba";
const MB5: usize = 5 * 1024 * 1024;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// A stand-in for Clockify's API: answers 200 `{}` and counts requests and body bytes.
async fn api_stand_in() -> (u16, Arc<AtomicUsize>, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bench setup");
    let port = listener.local_addr().expect("bench setup").port();
    let (requests, bytes) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicU64::new(0)));
    let (r, b) = (requests.clone(), bytes.clone());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (r, b) = (r.clone(), b.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let (r, b) = (r.clone(), b.clone());
                        async move {
                            use http_body_util::BodyExt;
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|c| c.to_bytes().len())
                                .unwrap_or(0);
                            r.fetch_add(1, Ordering::Relaxed);
                            b.fetch_add(body as u64, Ordering::Relaxed);
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .header("content-type", "application/json")
                                    .body(http_body_util::Full::new(bytes::Bytes::from_static(
                                        b"{}",
                                    )))
                                    .expect("bench setup"),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (port, requests, bytes)
}

/// One connection announcing a 5 MB body under a forged token and streaming it; the status
/// the server answered (0: none).
async fn forged_upload(addr: String) -> u16 {
    let Ok(mut tcp) = TcpStream::connect(&addr).await else {
        return 0;
    };
    let head = format!(
        "POST /webhooks/clockify HTTP/1.1\r\nHost: {addr}\r\nClockify-Signature: eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.Zm9yZ2Vk\r\nClockify-Webhook-Event-Type: NEW_TIME_ENTRY\r\nContent-Type: application/json\r\nContent-Length: {MB5}\r\n\r\n"
    );
    if tcp.write_all(head.as_bytes()).await.is_err() {
        return 0;
    }
    let chunk = vec![b' '; 64 * 1024];
    let (mut rd, mut wr) = tcp.into_split();
    let writer = tokio::spawn(async move {
        let mut sent = 0;
        while sent < MB5 {
            if wr.write_all(&chunk).await.is_err() {
                break;
            }
            sent += chunk.len();
        }
    });
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(30), rd.read(&mut buf))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(0);
    writer.abort();
    String::from_utf8_lossy(&buf[..n])
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    addon_core::clockify::client::install_tls_provider();
    let bin = common::server_bin();
    let server = common::postgres_server();
    let (_db, url) = common::fresh_database(&bin, &server, "universal-webhook");
    let (api_port, api_requests, api_bytes) = api_stand_in().await;
    let api = format!("http://127.0.0.1:{api_port}/api");

    let keys = DevKeyPair::generate().expect("keys");
    let signer = TokenSigner::from_rsa_pem(&keys.private_pem, "universal-webhook").expect("signer");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bench setup")
        .local_addr()
        .expect("bench setup")
        .port();
    let proc = common::start_server(
        &bin,
        "universal-webhook",
        port,
        &[
            ("DATABASE_URL", url.clone()),
            ("CLOCKIFY_PUBLIC_KEY", keys.public_pem.clone()),
            (
                "CLOCKIFY_API_ALLOWED_HOSTS",
                format!("http://127.0.0.1:{api_port}"),
            ),
        ],
    );
    let pid = proc.child.id();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    common::wait_ready(port).await;
    let sign = |k| signer.sign(k, WS, &api).expect("sign");
    let webhook = sign(TokenKind::Webhook);
    let r = http
        .post(format!("{base}/lifecycle/installed"))
        .header("X-Addon-Lifecycle-Token", sign(TokenKind::Lifecycle))
        .json(&json!({
            "addonId": "bench", "authToken": sign(TokenKind::Installation), "workspaceId": WS, "apiUrl": api,
            "webhooks": [{"path": "/webhooks/clockify", "webhookType": "ADDON", "authToken": webhook}]
        }))
        .send()
        .await
        .expect("bench setup");
    assert_eq!(r.status(), 200, "{}", r.text().await.expect("bench setup"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled = api_requests.load(Ordering::Relaxed);

    // 1. 100 forged 5 MB uploads at once.
    let before = rss_kib(pid);
    let sampling = Arc::new(AtomicU64::new(before));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (sampling, stop) = (sampling.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                sampling.fetch_max(rss_kib(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let started = Instant::now();
    let addr = format!("127.0.0.1:{port}");
    let uploads: Vec<_> = (0..100)
        .map(|_| tokio::spawn(forged_upload(addr.clone())))
        .collect();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for u in uploads {
        *statuses.entry(u.await.unwrap_or(0)).or_default() += 1;
    }
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.await;
    println!(
        "100 connections x 5 MB under a forged token: answers {statuses:?} in {:.2} s; RSS {} before, {} at peak, {} after they closed",
        took.as_secs_f64(),
        mib(before),
        mib(sampling.load(Ordering::Relaxed)),
        mib(rss_kib(pid))
    );

    // 2. Flows at the engine's limits and the largest delivery accepted.
    let user = sign(TokenKind::User);
    let placeholders = |expr: &str, n: usize| -> Value {
        let mut o = serde_json::Map::new();
        for i in 0..n {
            o.insert(format!("f{i}"), json!(format!("{{{{{expr}}}}}")));
        }
        Value::Object(o)
    };
    for (name, body) in [
        ("the whole delivery, 32 times", placeholders("$", 32)),
        (
            "the description, 31 times",
            placeholders("$.description", 31),
        ),
    ] {
        let r = http
            .post(format!("{base}/ui/flows"))
            .bearer_auth(&user)
            .json(
                &json!({"name": name, "triggerEvents": ["NEW_TIME_ENTRY"], "actions": [{
                    "method": "POST", "path": "/v1/workspaces/{{workspaceId}}/tags", "body": body
                }]}),
            )
            .send()
            .await
            .expect("bench setup");
        assert_eq!(r.status(), 201, "{}", r.text().await.expect("bench setup"));
    }
    // A 30,000-character description: 31 copies render to just under the 1 MiB budget.
    let description = "d".repeat(30_000);
    let filler = "x".repeat(MB5 - 40_000);
    let delivery =
        json!({"id": "te-huge", "workspaceId": WS, "description": description, "filler": filler});
    let text = delivery.to_string();
    let rss_before = rss_kib(pid);
    let started = Instant::now();
    let r = http
        .post(format!("{base}/webhooks/clockify"))
        .header("Clockify-Signature", &webhook)
        .header("Clockify-Webhook-Event-Type", "NEW_TIME_ENTRY")
        .header("content-type", "application/json")
        .body(text.clone())
        .send()
        .await
        .expect("bench setup");
    let status = r.status();
    let answer: Value = r.json().await.unwrap_or(Value::Null);
    let mut outcome = Vec::new();
    for _ in 0..600 {
        let v: Value = http
            .get(format!("{base}/ui/executions"))
            .bearer_auth(&user)
            .send()
            .await
            .expect("bench setup")
            .json()
            .await
            .expect("bench setup");
        outcome = v["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| matches!(e["status"].as_str(), Some("SUCCEEDED" | "FAILED")))
            .collect();
        if outcome.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "largest delivery accepted: {:.2} MB answered {} {} in {:.2} s",
        text.len() as f64 / 1e6,
        status.as_u16(),
        answer["status"],
        started.elapsed().as_secs_f64()
    );
    for e in &outcome {
        println!(
            "  flow {:?}: {} {}",
            e["flowName"]
                .as_str()
                .or(e["flowId"].as_str())
                .unwrap_or("?"),
            e["status"],
            e["error"].as_str().unwrap_or("")
        );
    }
    println!(
        "  API stand-in received {} request(s), {:.2} MB; RSS {} before the delivery, {} now, peak over the whole run {}",
        api_requests.load(Ordering::Relaxed) - settled,
        api_bytes.load(Ordering::Relaxed) as f64 / 1e6,
        mib(rss_before),
        mib(rss_kib(pid)),
        mib(peak_rss_kib(pid))
    );

    // 3. Still serving.
    let health = http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .map(|r| r.status().as_u16());
    let ready = http
        .get(format!("{base}/ready"))
        .send()
        .await
        .map(|r| r.status().as_u16());
    println!(
        "afterwards: /healthz {health:?}, /ready {ready:?}, process alive: {}",
        rss_kib(pid) > 0
    );
}
