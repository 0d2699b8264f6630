//! Flows reach Clockify's API over HTTPS, as they do in production, on the real binary: the
//! fake Clockify serves a self-signed certificate the process trusts through `SSL_CERT_FILE`,
//! and records the HTTP version and the connection of every call. Two bursts of concurrent calls
//! (the fake holds each for a moment, so they overlap): over HTTP/2 they share a connection;
//! over HTTP/1.1, where a call in flight holds a connection of its own, the second burst finds
//! the first burst's connections kept and opens none (each would be a TLS handshake).
#![cfg(test)]

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use addon_testkit::{Alpn, Backend, FakeClockify, FakeResponse, Recorded, TestDb};
use reqwest::Version;
use serde_json::json;
use sqlx::Row;

const WORKSPACES: &[&str] = &["ws-a", "ws-b", "ws-c", "ws-d"];
/// Deliveries per workspace and burst: 48 calls, started within about 250 ms (Clockify's 50
/// calls per second per workspace) and each held a second, so they overlap.
const PER_WORKSPACE: usize = 12;
const HOLD: Duration = Duration::from_secs(1);

/// Sends one burst, waits until every one of its flows succeeded, and returns the calls the
/// fake received in it.
async fn burst(
    http: &reqwest::Client,
    base: &str,
    tokens: &[String],
    fake: &FakeClockify,
    pool: &sqlx::PgPool,
    n: usize,
) -> Vec<Recorded> {
    fake.clear();
    for i in 0..PER_WORKSPACE {
        for (ws, token) in WORKSPACES.iter().zip(tokens) {
            common::deliver(http, base, token, ws, &format!("te-{n}-{i}")).await;
        }
    }
    let expected = (n * WORKSPACES.len() * PER_WORKSPACE) as i64;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let done: i64 =
            sqlx::query("SELECT COUNT(*) FROM flow_executions WHERE status = 'SUCCEEDED'")
                .fetch_one(pool)
                .await
                .unwrap()
                .get(0);
        if done >= expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "burst {n}: {done} of {expected} flows succeeded in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The flows' calls (an install's bootstrap, requested before it was turned off, GETs).
    let calls: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|c| c.method == "POST" && c.path.ends_with("/tags"))
        .collect();
    assert_eq!(
        calls.len(),
        WORKSPACES.len() * PER_WORKSPACE,
        "burst {n}: one call per delivery"
    );
    calls
}

fn connections(calls: &[Recorded]) -> BTreeSet<SocketAddr> {
    calls.iter().map(|c| c.peer).collect()
}

/// Two bursts against a fake offering `alpn`; returns the connections each used and checks
/// every call came over `version`.
async fn two_bursts(alpn: Alpn, version: Version) -> (BTreeSet<SocketAddr>, BTreeSet<SocketAddr>) {
    addon_core::clockify::client::install_tls_provider();
    let db = TestDb::new(Backend::Postgres).await;
    common::migrate(&db);
    let fake = FakeClockify::start_tls(alpn).await;
    assert!(fake.api_url().starts_with("https://"));
    // The flows' POSTs are held; anything else (an install's bootstrap, requested before it
    // was turned off, GETs) is answered at once, so it holds no connection during a burst.
    fake.respond(|call| {
        if call.method == "POST" {
            FakeResponse::json(201, json!({"id": "tag"})).delayed(HOLD)
        } else {
            FakeResponse::json(200, json!([]))
        }
    });
    let port = common::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut server = common::spawn(&db, &fake, port, &[]);
    common::ready(&http, &base).await;
    let mut tokens = Vec::new();
    for ws in WORKSPACES {
        tokens.push(common::install(&http, &base, &fake, ws, &[("tags", "tags")]).await);
    }
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let first = burst(&http, &base, &tokens, &fake, &pool, 1).await;
    let second = burst(&http, &base, &tokens, &fake, &pool, 2).await;
    server.kill();
    pool.close().await;
    for call in first.iter().chain(&second) {
        assert_eq!(call.version, version, "{} {}", call.method, call.path);
        assert_eq!(call.header("content-type"), Some("application/json"));
    }
    (connections(&first), connections(&second))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_carries_concurrent_calls_on_one_connection() {
    let (first, second) = two_bursts(Alpn::Http2AndHttp1, Version::HTTP_2).await;
    // (Calls that start while the first handshake is under way may open a connection of their
    // own; once one is up, every call shares it.)
    assert_eq!(
        second.len(),
        1,
        "the second burst's 48 calls share one connection: {second:?}"
    );
    assert!(
        second.is_subset(&first),
        "and it is one the first burst opened ({} connections)",
        first.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_connections_a_burst_needed_are_kept_for_the_next() {
    let (first, second) = two_bursts(Alpn::Http1Only, Version::HTTP_11).await;
    // The calls overlapped, each holding a connection of its own: more than a small idle pool
    // (such as the 16 the client once kept) would hold.
    assert!(
        first.len() > 24,
        "the first burst's calls overlapped on {} connections",
        first.len()
    );
    // A connection of its own is opened only for calls beyond the ones the first burst had in
    // flight together.
    let opened = second.difference(&first).count();
    assert!(
        opened <= second.len().saturating_sub(first.len()),
        "the second burst used {} connections and the first burst kept {}, but it opened {opened}",
        second.len(),
        first.len()
    );
}
