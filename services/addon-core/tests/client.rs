//! The Clockify API client against a local fake Clockify that records what it receives:
//! allowlist, retries, Retry-After, timeouts, redaction, and the per-workspace rate limit
//! (in process, and shared across "replicas" through the real Redis on 127.0.0.1:6379).
#![cfg(test)]

use std::time::{Duration, Instant};

use addon_core::clockify::allowlist::HostAllowlist;
use addon_core::clockify::{ApiError, ApiRequest, ApiTarget, ClockifyClient, RateLimiter};
use addon_core::config::ApiClientConfig;
use addon_core::metrics::Metrics;
use addon_testkit::{FakeClockify, FakeResponse, Recorded};
use reqwest::Method;
use secrecy::SecretString;
use serde_json::json;

const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.installation-token.sig";

fn config(fake: &FakeClockify, max_retries: u32, timeout: Duration) -> ApiClientConfig {
    ApiClientConfig {
        allowed_hosts: HostAllowlist::default().with(&fake.allow_entry()).unwrap(),
        rate_limit_per_second: 50,
        timeout,
        max_retries,
    }
}

fn client(
    fake: &FakeClockify,
    max_retries: u32,
    timeout: Duration,
    limiter: RateLimiter,
) -> ClockifyClient {
    ClockifyClient::new(
        &config(fake, max_retries, timeout),
        limiter,
        Metrics::new("test", "0"),
    )
    .unwrap()
    .with_min_backoff(Duration::from_millis(20))
}

fn target(fake: &FakeClockify, ws: &str) -> ApiTarget {
    ApiTarget {
        workspace_id: ws.into(),
        api_url: fake.api_url(),
        token: SecretString::from(TOKEN.to_owned()),
    }
}

#[tokio::test]
async fn disallowed_hosts_are_never_contacted() {
    let fake = FakeClockify::start().await;
    let c = client(&fake, 3, Duration::from_secs(5), RateLimiter::local(50));
    // Same server, but under a name the allowlist does not hold.
    for api_url in [
        format!("http://localhost:{}/api", fake.port),
        "https://169.254.169.254/api".to_owned(),
        "http://api.clockify.me/api".to_owned(),
    ] {
        let t = ApiTarget {
            api_url: api_url.clone(),
            ..target(&fake, "ws")
        };
        let err = c
            .send(&t, &ApiRequest::get("/v1/workspaces/ws/tags"))
            .await
            .unwrap_err();
        assert!(matches!(err, ApiError::NotAllowed(_)), "{api_url}: {err}");
        assert!(
            err.to_string()
                .contains("not on CLOCKIFY_API_ALLOWED_HOSTS"),
            "{err}"
        );
    }
    for path in [
        "/v1/../admin",
        "//evil.com/x",
        "/v2/x",
        "/v1/x?y=1",
        "/v1/a b",
        // Dot segments the URL parser would normalise away, however they are spelled.
        "/v1/workspaces/ws/%2e%2e/%2e%2e/user",
        "/v1/workspaces/ws/%2E%2E/other/projects/p1",
        "/v1/workspaces/ws/.%2e/.%2E/.%2e/.%2e/admin",
        "/v1/workspaces/ws/%2e/tags",
        "/v1/workspaces/ws/tags/.",
        // Separators and escapes hidden in a segment, and double encoding.
        "/v1/workspaces/ws/x%2F..%2F..%2Fuser",
        "/v1/workspaces/ws/x%5C..%5Cuser",
        "/v1/workspaces/ws/%252e%252e/user",
        "/v1/workspaces/ws/tags%3Fx=1",
        "/v1/workspaces/ws/tags%00",
        "/v1/workspaces/ws//tags",
    ] {
        let err = c
            .send(&target(&fake, "ws"), &ApiRequest::get(path))
            .await
            .unwrap_err();
        assert!(matches!(err, ApiError::BadPath(_)), "{path}: {err}");
    }
    for path in [
        "/v1/workspaces/other/projects/p1",
        "/v1/workspaces/%6Fther/projects/p1",
    ] {
        let err = c
            .send(&target(&fake, "ws"), &ApiRequest::get(path))
            .await
            .unwrap_err();
        assert!(
            matches!(err, ApiError::OtherWorkspace { .. }),
            "{path}: {err}"
        );
    }
    assert!(fake.requests().is_empty(), "no request reached any server");
}

#[tokio::test]
async fn sends_the_installation_token_and_query() {
    let fake = FakeClockify::start().await;
    fake.respond(|_| FakeResponse::json(200, json!([{"id": "p1"}])));
    let c = client(&fake, 3, Duration::from_secs(5), RateLimiter::local(50));
    let resp = c
        .send(
            &target(&fake, "ws1"),
            &ApiRequest::get("/v1/workspaces/ws1/projects").query("page", 2),
        )
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, json!([{"id": "p1"}]));
    let r = &fake.requests()[0];
    assert_eq!(r.path, "/api/v1/workspaces/ws1/projects");
    assert_eq!(r.query["page"], "2");
    assert_eq!(r.header("x-addon-token"), Some(TOKEN));
    // The token never shows in Debug output.
    assert!(!format!("{:?}", target(&fake, "ws1")).contains(TOKEN));
}

#[tokio::test]
async fn retries_429_honouring_retry_after() {
    let fake = FakeClockify::start().await;
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let s = seen.clone();
    fake.respond(move |_| {
        if s.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            FakeResponse::json(429, json!({"message": "slow down"})).header("Retry-After", "1")
        } else {
            FakeResponse::json(201, json!({"id": "t1"}))
        }
    });
    let c = client(&fake, 3, Duration::from_secs(5), RateLimiter::local(50));
    let req = ApiRequest {
        method: Method::POST,
        path: "/v1/workspaces/ws/tags".into(),
        query: vec![],
        body: Some(json!({"name": "x"})),
        form: None,
    };
    let resp = c.send(&target(&fake, "ws"), &req).await.unwrap();
    assert_eq!((resp.status, resp.attempts), (201, 2));
    let reqs = fake.requests();
    assert!(
        reqs[1].at.duration_since(reqs[0].at) >= Duration::from_millis(990),
        "Retry-After: 1 was honoured"
    );
    assert_eq!(reqs[1].body, json!({"name": "x"}), "the body is sent again");
}

#[tokio::test]
async fn retries_5xx_only_where_safe_and_gives_up() {
    let fake = FakeClockify::start().await;
    fake.respond(|r| {
        if r.method == Method::GET {
            FakeResponse::json(503, json!({}))
        } else {
            FakeResponse::json(500, json!({}))
        }
    });
    let c = client(&fake, 2, Duration::from_secs(5), RateLimiter::local(50));
    let resp = c
        .send(
            &target(&fake, "ws"),
            &ApiRequest::get("/v1/workspaces/ws/tags"),
        )
        .await
        .unwrap();
    assert_eq!(
        (resp.status, resp.attempts),
        (503, 3),
        "GET: 1 try + 2 retries, then the last answer"
    );
    fake.clear();
    let post = ApiRequest {
        method: Method::POST,
        path: "/v1/workspaces/ws/tags".into(),
        query: vec![],
        body: Some(json!({})),
        form: None,
    };
    let resp = c.send(&target(&fake, "ws"), &post).await.unwrap();
    assert_eq!(
        (resp.status, resp.attempts),
        (500, 1),
        "a POST answered 500 may have been applied: not retried"
    );
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn timeouts_are_bounded_and_reported() {
    let fake = FakeClockify::start().await;
    fake.respond(|_| FakeResponse::json(200, json!({})).delayed(Duration::from_secs(3)));
    let c = client(&fake, 1, Duration::from_millis(300), RateLimiter::local(50));
    let started = Instant::now();
    let err = c
        .send(
            &target(&fake, "ws"),
            &ApiRequest::get("/v1/workspaces/ws/tags"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Timeout { attempts: 2 }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(!err.to_string().contains(TOKEN));
}

/// The most requests any workspace made inside one second.
fn max_in_any_second(reqs: &[Recorded], ws: &str) -> usize {
    let mut times: Vec<Instant> = reqs
        .iter()
        .filter(|r| r.workspace() == Some(ws))
        .map(|r| r.at)
        .collect();
    times.sort();
    let mut best = 0;
    let mut j = 0;
    for i in 0..times.len() {
        while j < times.len() && times[j].duration_since(times[i]) < Duration::from_secs(1) {
            j += 1;
        }
        best = best.max(j - i);
    }
    best
}

async fn hammer(
    c: ClockifyClient,
    fake: FakeClockify,
    ws: &'static str,
    callers: usize,
    each: usize,
) {
    let mut tasks = Vec::new();
    for _ in 0..callers {
        let c = c.clone();
        let t = target(&fake, ws);
        tasks.push(tokio::spawn(async move {
            for _ in 0..each {
                let r = c
                    .send(&t, &ApiRequest::get(format!("/v1/workspaces/{ws}/tags")))
                    .await
                    .unwrap();
                assert_eq!(r.status, 200);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_workspace_exceeds_50_per_second_under_concurrent_callers() {
    let fake = FakeClockify::start().await;
    let c = client(&fake, 0, Duration::from_secs(5), RateLimiter::local(50));
    let started = Instant::now();
    // 8 callers x 20 requests on one workspace, 4 x 10 on another, all at once.
    tokio::join!(
        hammer(c.clone(), fake.clone(), "wsA", 8, 20),
        hammer(c.clone(), fake.clone(), "wsB", 4, 10)
    );
    let elapsed = started.elapsed();
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 200);
    let a = max_in_any_second(&reqs, "wsA");
    let b = max_in_any_second(&reqs, "wsB");
    assert!(a <= 50, "wsA made {a} requests within one second");
    assert!(b <= 50, "wsB made {b} requests within one second");
    assert!(a >= 45, "the limit is used, not starved: {a}");
    // 160 requests at 50/s take at least ~3.2 s; wsB is not held back by wsA.
    assert!(elapsed >= Duration::from_millis(3100), "{elapsed:?}");
    let b_times: Vec<_> = reqs
        .iter()
        .filter(|r| r.workspace() == Some("wsB"))
        .map(|r| r.at)
        .collect();
    let b_span = b_times
        .iter()
        .max()
        .unwrap()
        .duration_since(*b_times.iter().min().unwrap());
    assert!(
        b_span < Duration::from_millis(1200),
        "wsB's 40 requests are not queued behind wsA: {b_span:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_the_budget_through_redis() {
    let url = SecretString::from(
        std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned()),
    );
    let namespace = format!("test-{}", uuid::Uuid::new_v4().simple());
    // Two limiters with their own connections: two replicas of one add-on.
    let replica1 = RateLimiter::redis(&url, 50, &namespace)
        .await
        .expect("Redis on 127.0.0.1:6379");
    let replica2 = RateLimiter::redis(&url, 50, &namespace).await.unwrap();
    assert!(replica1.is_shared());
    let fake = FakeClockify::start().await;
    let started = Instant::now();
    tokio::join!(
        hammer(
            client(&fake, 0, Duration::from_secs(5), replica1),
            fake.clone(),
            "wsR",
            4,
            25
        ),
        hammer(
            client(&fake, 0, Duration::from_secs(5), replica2),
            fake.clone(),
            "wsR",
            4,
            25
        ),
    );
    let elapsed = started.elapsed();
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 200);
    let max = max_in_any_second(&reqs, "wsR");
    assert!(
        max <= 50,
        "two replicas together made {max} requests within one second"
    );
    // Alone, each replica would finish its 100 in ~2 s; sharing, the 200 take ~4 s.
    assert!(elapsed >= Duration::from_millis(3900), "{elapsed:?}");
}
