//! Load shedding, connection caps and header-read timeouts: no number of slow or stalled
//! clients can take the server down or stop its health checks.
#![cfg(test)]

use std::time::Duration;

use addon_core::auth::TokenKind;
use addon_testkit::{Backend, TestApp, backend_tests, json_of};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// Opens a request to `/ui/flows` that is authenticated and then stalls in its body: it holds
/// one request slot until the connection is dropped.
async fn stalled_request(app: &TestApp) -> TcpStream {
    let addr = addr(app);
    let mut tcp = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /ui/flows HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
        app.token(TokenKind::User, "ws1")
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp
}

/// Reads until the peer closes or `wait` passes; `None` when it stayed open.
async fn read_to_close(tcp: &mut TcpStream, wait: Duration) -> Option<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(wait, read).await.ok()?;
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Beyond the concurrency limit requests are answered 503 with Retry-After at once, as JSON;
/// health checks are exempt; when a slot frees, requests are served again.
async fn load_beyond_the_limit_is_shed(backend: Backend) {
    let app = TestApp::builder(&api_studio::DEFINITION, backend)
        .env("HTTP_MAX_CONCURRENT_REQUESTS", "2")
        .start()
        .await;
    app.install_settled("ws1").await;
    let mut first = stalled_request(&app).await;
    let mut second = stalled_request(&app).await;
    // Both must hold their slots (in their handlers, waiting for the body) before a third
    // request is sent; on a busy machine that can take a moment.
    let held = app
        .eventually(Duration::from_secs(15), || async {
            let in_flight = app.metric("http_requests_in_flight").await?;
            (in_flight >= 2.0).then_some(())
        })
        .await;
    if held.is_none() {
        let a = read_to_close(&mut first, Duration::from_millis(200)).await;
        let b = read_to_close(&mut second, Duration::from_millis(200)).await;
        panic!("the stalled requests do not hold their slots; they were answered {a:?} and {b:?}");
    }
    let flows = app.url("/ui/flows");
    let user = app.token(TokenKind::User, "ws1");
    let shed = app
        .eventually(Duration::from_secs(10), || {
            let req = app.http.get(&flows).bearer_auth(&user);
            async move {
                let r = req.send().await.ok()?;
                (r.status() == 503).then_some(r)
            }
        })
        .await
        .expect("a third request is shed");
    assert_eq!(
        shed.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let (_, body) = json_of(shed).await;
    assert_eq!(body["error"]["code"], "overloaded", "{body}");
    for path in ["/healthz", "/metrics"] {
        let (s, _) = app.get(path).await;
        assert_eq!(s, 200, "{path} is never shed");
    }
    let shed_count = app
        .metric("http_requests_shed_total")
        .await
        .expect("the shed counter is exported");
    assert!(shed_count >= 1.0, "{shed_count}");
    drop(first);
    let served = app
        .eventually(Duration::from_secs(5), || {
            let req = app.http.get(&flows).bearer_auth(&user);
            async move {
                let r = req.send().await.ok()?;
                (r.status() == 200).then_some(())
            }
        })
        .await;
    assert!(served.is_some(), "a freed slot serves again");
    drop(second);
    app.stop().await;
}

/// A client that never finishes its headers, or leaves a keep-alive connection idle, is cut
/// off after the header-read timeout; an open connection beyond the cap waits until one of
/// those closes, and is then served.
async fn slow_and_idle_connections_are_closed(backend: Backend) {
    let app = TestApp::builder(&api_studio::DEFINITION, backend)
        .env("HTTP_HEADER_READ_TIMEOUT_SECONDS", "1")
        .env("HTTP_MAX_CONNECTIONS", "2")
        .start()
        .await;
    let addr = addr(&app);
    // Half a request line, then silence.
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // A keep-alive connection that served one request and went idle.
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    idle.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Both slots are taken: a third client is not served while they are open...
    let mut third = TcpStream::connect(&addr).await.unwrap();
    third
        .write_all(
            format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    assert!(
        read_to_close(&mut third, Duration::from_millis(300))
            .await
            .is_none(),
        "served beyond the connection cap"
    );
    // ...and the two are closed by the server within the timeout (plus slack).
    let slow_end = read_to_close(&mut slow, Duration::from_secs(5)).await;
    assert!(slow_end.is_some(), "a stalled header was never cut off");
    assert!(
        read_to_close(&mut idle, Duration::from_secs(5))
            .await
            .is_some(),
        "an idle keep-alive connection was never closed"
    );
    let answer = read_to_close(&mut third, Duration::from_secs(5))
        .await
        .expect("the waiting client is served once a slot frees");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    app.stop().await;
}

backend_tests!(
    load_beyond_the_limit_is_shed,
    slow_and_idle_connections_are_closed,
);
