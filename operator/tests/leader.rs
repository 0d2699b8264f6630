//! Leader election against a mocked API server: create, renew, stand by, take over a lease
//! nobody renewed (judged on the local clock, whatever the holder's clock wrote), lose a race,
//! release. And the admin port's endpoints.
#![cfg(test)]

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clockify_operator::admin::{AdminState, router};
use clockify_operator::leader::LeaderElector;
use clockify_operator::metrics::Metrics;
use http::{Method, Request, Response};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::client::Body;
use kube::{Api, Client};
use serde_json::{Value, json};
use tower::ServiceExt;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;
const PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/ops/leases/clockify-operator";

fn elector() -> (LeaderElector, Pin<Box<Handle>>) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    (
        LeaderElector::new(
            Api::<Lease>::namespaced(client, "ops"),
            "clockify-operator",
            "pod-a",
        ),
        Box::pin(handle),
    )
}

async fn answer(
    handle: &mut Pin<Box<Handle>>,
    method: Method,
    path: &str,
    status: u16,
    body: Value,
) -> Value {
    let (req, send) = tokio::time::timeout(Duration::from_secs(5), handle.next_request())
        .await
        .expect("a call")
        .expect("client");
    assert_eq!(
        (req.method().clone(), req.uri().path().to_owned()),
        (method, path.to_owned())
    );
    assert!(
        clockify_operator::rbac::allows(
            clockify_operator::rbac::LEASE_RULES,
            req.method().as_str(),
            req.uri().path(),
            req.uri().query().unwrap_or_default()
        ),
        "the Lease Role does not allow {} {}",
        req.method(),
        req.uri()
    );
    let sent: Value = serde_json::from_slice(&req.into_body().collect_bytes().await.unwrap())
        .unwrap_or(Value::Null);
    let reply = if body.is_null() { sent.clone() } else { body };
    send.send_response(
        Response::builder()
            .status(status)
            .body(Body::from(serde_json::to_vec(&reply).unwrap()))
            .unwrap(),
    );
    sent
}

fn lease(holder: &str, renewed_ago: i64, transitions: i32) -> Value {
    let renew = Timestamp::now() - SignedDuration::from_secs(renewed_ago);
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "clockify-operator", "namespace": "ops", "resourceVersion": "42"},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "acquireTime": "2026-01-01T00:00:00.000000Z",
                 "renewTime": renew.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(), "leaseTransitions": transitions}})
}

fn not_found() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"})
}

#[tokio::test]
async fn creates_the_lease_when_there_is_none() {
    let (e, mut h) = elector();
    let task = tokio::spawn(async move { e.acquire_or_renew().await });
    answer(&mut h, Method::GET, PATH, 404, not_found()).await;
    let created = answer(
        &mut h,
        Method::POST,
        "/apis/coordination.k8s.io/v1/namespaces/ops/leases",
        201,
        Value::Null,
    )
    .await;
    assert_eq!(created["spec"]["holderIdentity"], "pod-a");
    assert_eq!(created["spec"]["leaseDurationSeconds"], 15);
    assert!(task.await.unwrap().unwrap());
}

#[tokio::test]
async fn renews_its_own_lease_keeping_the_acquire_time() {
    let (e, mut h) = elector();
    let task = tokio::spawn(async move { e.acquire_or_renew().await });
    answer(&mut h, Method::GET, PATH, 200, lease("pod-a", 3, 2)).await;
    let put = answer(&mut h, Method::PUT, PATH, 200, Value::Null).await;
    assert_eq!(
        put["metadata"]["resourceVersion"], "42",
        "optimistic update"
    );
    assert_eq!(put["spec"]["acquireTime"], "2026-01-01T00:00:00.000000Z");
    assert_eq!(put["spec"]["leaseTransitions"], 2);
    assert!(task.await.unwrap().unwrap());
}

#[tokio::test]
async fn stands_by_while_another_replica_holds_a_fresh_lease() {
    let (e, mut h) = elector();
    let task = tokio::spawn(async move { e.acquire_or_renew().await });
    answer(&mut h, Method::GET, PATH, 200, lease("pod-b", 3, 0)).await;
    assert!(!task.await.unwrap().unwrap());
    let next = tokio::time::timeout(Duration::from_millis(100), h.next_request()).await;
    assert!(!matches!(next, Ok(Some(_))), "no write");
}

/// A Lease renewed `renewed_ago` seconds before now on its holder's clock, with a renewTime
/// that differs per `round` (each renewal writes a new one).
fn renewed(holder: &str, renewed_ago: i64, round: i64) -> Value {
    let mut l = lease(holder, renewed_ago, 4);
    l["metadata"]["resourceVersion"] = json!(format!("{}", 42 + round));
    let t = Timestamp::now() - SignedDuration::from_secs(renewed_ago)
        + SignedDuration::from_millis(round);
    l["spec"]["renewTime"] = json!(t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string());
    l
}

#[tokio::test(start_paused = true)]
async fn takes_over_a_lease_nobody_renewed_for_a_lease_duration_on_its_own_clock() {
    let (e, mut h) = elector();
    let e = Arc::new(e);
    // The holder's clock is a minute behind: its renewTime looks a minute old. Seen for the
    // first time, that says nothing: the lease is not taken.
    let stale = renewed("pod-b", 60, 0);
    let task = tokio::spawn({
        let e = e.clone();
        async move { e.acquire_or_renew().await }
    });
    answer(&mut h, Method::GET, PATH, 200, stale.clone()).await;
    assert!(!task.await.unwrap().unwrap(), "taken on a skewed renewTime");
    // Still the same record 10 s later (on this replica's clock): not yet.
    tokio::time::advance(Duration::from_secs(10)).await;
    let task = tokio::spawn({
        let e = e.clone();
        async move { e.acquire_or_renew().await }
    });
    answer(&mut h, Method::GET, PATH, 200, stale.clone()).await;
    assert!(!task.await.unwrap().unwrap());
    // A full lease duration without a change: expired, taken over.
    tokio::time::advance(Duration::from_secs(6)).await;
    let task = tokio::spawn({
        let e = e.clone();
        async move { e.acquire_or_renew().await }
    });
    answer(&mut h, Method::GET, PATH, 200, stale).await;
    let put = answer(&mut h, Method::PUT, PATH, 200, Value::Null).await;
    assert_eq!(put["spec"]["holderIdentity"], "pod-a");
    assert_eq!(put["spec"]["leaseTransitions"], 5);
    assert_ne!(put["spec"]["acquireTime"], "2026-01-01T00:00:00.000000Z");
    assert!(task.await.unwrap().unwrap());
}

#[tokio::test(start_paused = true)]
async fn a_holder_that_keeps_renewing_is_never_displaced_whatever_its_clock_says() {
    let (e, mut h) = elector();
    let e = Arc::new(e);
    // Its clock is a minute behind, but it renews every 5 s: the record keeps changing.
    for round in 0..8 {
        let task = tokio::spawn({
            let e = e.clone();
            async move { e.acquire_or_renew().await }
        });
        answer(&mut h, Method::GET, PATH, 200, renewed("pod-b", 60, round)).await;
        assert!(!task.await.unwrap().unwrap(), "round {round}");
        tokio::time::advance(Duration::from_secs(5)).await;
    }
    // Its clock a minute ahead and it stopped renewing: expired after a lease duration here,
    // not a minute later.
    let ahead = renewed("pod-b", -60, 99);
    let task = tokio::spawn({
        let e = e.clone();
        async move { e.acquire_or_renew().await }
    });
    answer(&mut h, Method::GET, PATH, 200, ahead.clone()).await;
    assert!(!task.await.unwrap().unwrap());
    tokio::time::advance(Duration::from_secs(15)).await;
    let task = tokio::spawn({
        let e = e.clone();
        async move { e.acquire_or_renew().await }
    });
    answer(&mut h, Method::GET, PATH, 200, ahead).await;
    answer(&mut h, Method::PUT, PATH, 200, Value::Null).await;
    assert!(task.await.unwrap().unwrap());
}

#[tokio::test(start_paused = true)]
async fn loses_a_race_without_error() {
    let (e, mut h) = elector();
    let e = Arc::new(e);
    let stale = renewed("pod-b", 60, 0);
    let task = tokio::spawn({
        let e = e.clone();
        async move { e.acquire_or_renew().await }
    });
    answer(&mut h, Method::GET, PATH, 200, stale.clone()).await;
    assert!(!task.await.unwrap().unwrap());
    tokio::time::advance(Duration::from_secs(16)).await;
    let task = tokio::spawn(async move { e.acquire_or_renew().await });
    answer(&mut h, Method::GET, PATH, 200, stale).await;
    let conflict = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409, "message": "the object has been modified"});
    answer(&mut h, Method::PUT, PATH, 409, conflict).await;
    assert!(!task.await.unwrap().unwrap());
}

#[tokio::test]
async fn releases_on_shutdown() {
    let (e, mut h) = elector();
    let task = tokio::spawn(async move { e.release().await });
    answer(&mut h, Method::GET, PATH, 200, lease("pod-a", 1, 1)).await;
    let put = answer(&mut h, Method::PUT, PATH, 200, Value::Null).await;
    assert!(put["spec"].get("holderIdentity").is_none_or(Value::is_null));
    task.await.unwrap();
}

#[tokio::test]
async fn admin_port_reports_liveness_readiness_and_metrics() {
    let ready = Arc::new(AtomicBool::new(false));
    let metrics = Metrics::new();
    metrics.reconciles.with_label_values(&["success"]).inc();
    let app = router(AdminState {
        metrics,
        ready: ready.clone(),
    });
    let status = |path: &'static str| {
        let app = app.clone();
        async move {
            app.oneshot(Request::get(path).body(axum::body::Body::empty()).unwrap())
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status("/live").await, 200);
    assert_eq!(status("/ready").await, 503, "not before caches sync");
    ready.store(true, Ordering::Relaxed);
    assert_eq!(status("/ready").await, 200);
    let resp = app
        .clone()
        .oneshot(
            Request::get("/metrics")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let text = String::from_utf8(
        axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    assert!(text.contains(r#"clockify_operator_reconciles_total{result="success"} 1"#));
    assert!(text.contains(r#"clockify_operator_reconcile_errors_total{category="apply"} 0"#));
}
