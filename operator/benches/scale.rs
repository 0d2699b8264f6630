//! The operator at scale, against a mocked API server.
//!
//!     cargo bench -p clockify-operator --bench scale
//!
//! Runs the real `clockify-operator run` binary (release) against a local fake API server (HTTP,
//! through a generated kubeconfig) that holds BENCH_ADDONS (default 1,000) ClockifyAddons and
//! their children as a real cluster would, answers every call, turns each status write into a
//! watch event (as an API server does, so the operator sees its own writes) and counts calls.
//! Prints:
//! - the time to reconcile every ClockifyAddon after start-up, and the writes it took;
//! - API writes per no-op reconcile (the pass the status watch events trigger; target 0);
//! - the operator's resident memory with everything in its caches;
//! - time from a new ClockifyAddon (a watch ADDED event) to all its children applied, p50 and p99.
//!
//! BENCH_OPERATOR_BIN runs another build of the operator, e.g. the static (musl) binary the
//! images ship: `./scripts/build-static.sh` with `PROFILE=release`, then
//! `BENCH_OPERATOR_BIN=$PWD/target/x86_64-unknown-linux-musl/release/clockify-operator` (an
//! absolute path: benchmarks run in the package directory).

use std::collections::HashMap;
use std::convert::Infallible;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use clockify_operator::crd::ClockifyAddon;
use clockify_operator::drift;
use clockify_operator::plan::{Capabilities, Child as PlanChild, Kind, plan, plan_with};
use futures::StreamExt;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::broadcast;

const BIN: &str = env!("CARGO_BIN_EXE_clockify-operator");
const NS: &str = "bench";

#[derive(Default)]
struct Counters {
    status_writes: AtomicU64,
    child_applies: AtomicU64,
    dry_runs: AtomicU64,
    deletes: AtomicU64,
    events: AtomicU64,
    reads: AtomicU64,
}

/// (added at, last child applied at, children applied)
type Applied = (Instant, Option<Instant>, usize);

struct Fake {
    /// Current ClockifyAddons by name.
    addons: Mutex<HashMap<String, Value>>,
    /// Children lists by plural.
    children: HashMap<&'static str, Vec<Value>>,
    /// ClockifyAddon watch events.
    events: broadcast::Sender<Value>,
    counters: Counters,
    resource_version: AtomicU64,
    /// When each new ClockifyAddon was added and its children applied.
    applied: Mutex<HashMap<String, Applied>>,
}

fn addon(i: usize) -> ClockifyAddon {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../manifests/examples/api-studio-standard.yaml"
    ))
    .expect("benchmark setup");
    let mut a: ClockifyAddon = serde_norway::from_str(&text).expect("benchmark setup");
    a.metadata.name = Some(format!("addon-{i:04}"));
    a.metadata.namespace = Some(NS.into());
    a.metadata.uid = Some(format!("00000000-0000-4000-8000-{i:012}"));
    a.metadata.generation = Some(1);
    a.metadata.resource_version = Some("1".into());
    a.spec.base_url = format!("https://addon-{i}.example.com");
    a
}

fn addon_json(a: &ClockifyAddon) -> Value {
    let mut v = serde_json::to_value(a).expect("benchmark setup");
    v["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
    v
}

/// The field set server-side apply records for `obj` (every key path; values never matter).
fn fields(obj: &Value) -> Value {
    fn walk(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                Value::Object(m.iter().map(|(k, v)| (format!("f:{k}"), walk(v))).collect())
            }
            Value::Array(a) => Value::Object(
                a.iter()
                    .enumerate()
                    .map(|(i, v)| (format!("i:{i}"), walk(v)))
                    .collect(),
            ),
            _ => json!({}),
        }
    }
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
        m.remove("status");
    }
    walk(&o)
}

/// `obj` as the API server answers an apply of it by `manager`.
fn answer_apply(mut obj: Value, manager: &str, rv: u64) -> Value {
    let f = fields(&obj);
    let name = obj["metadata"]["name"].as_str().unwrap_or("x").to_owned();
    let m = &mut obj["metadata"];
    m["uid"] = json!(format!("uid-{name}"));
    m["resourceVersion"] = json!(rv.to_string());
    m["generation"] = json!(1);
    m["managedFields"] = json!([{"manager": manager, "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": f}]);
    obj
}

/// A child as the operator leaves it in the cluster: stamped with its change-detection
/// annotations, with the operator's managedFields entry, server defaults and (for Deployments)
/// a ready status.
fn stored(c: &PlanChild) -> Value {
    let mut v = c.to_json();
    let h = drift::desired_hash(&v);
    drift::stamp(&mut v, &h, "");
    let owned = drift::fields_hash(&fields(&v));
    drift::stamp(&mut v, &h, &owned);
    let mut v = answer_apply(v, "clockify-operator", 1);
    v["metadata"]["uid"] = json!(format!("{}-{}", c.kind().as_str(), c.name()));
    if c.kind() == Kind::Deployment {
        v["spec"]["replicas"] = json!(2);
        v["status"] = json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2,
            "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]});
    }
    v
}

/// An object as a metadata-only request sees it.
fn partial(v: &Value) -> Value {
    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": v["metadata"]})
}

fn plural(kind: Kind) -> &'static str {
    match kind {
        Kind::ServiceAccount => "serviceaccounts",
        Kind::ConfigMap => "configmaps",
        Kind::NetworkPolicy => "networkpolicies",
        Kind::Service => "services",
        Kind::Ingress => "ingresses",
        Kind::HTTPRoute => "httproutes",
        Kind::ScaledObject => "scaledobjects",
        Kind::Deployment => "deployments",
        Kind::HorizontalPodAutoscaler => "horizontalpodautoscalers",
        Kind::PodDisruptionBudget => "poddisruptionbudgets",
        Kind::ServiceMonitor => "servicemonitors",
        Kind::PersistentVolumeClaim => "persistentvolumeclaims",
        Kind::CronJob => "cronjobs",
        Kind::Job => "jobs",
    }
}

/// A list response with a continue token (the offset of the next page).
async fn paged(resp: Response, next: usize) -> Response {
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("benchmark setup");
    let mut v: Value = serde_json::from_slice(&bytes).expect("benchmark setup");
    v["metadata"]["continue"] = json!(next.to_string());
    axum::Json(v).into_response()
}

fn list(items: Vec<Value>, rv: u64) -> Response {
    axum::Json(json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": rv.to_string()}, "items": items})).into_response()
}

fn watch_stream(rx: Option<broadcast::Receiver<Value>>) -> Response {
    let stream = match rx {
        Some(rx) => tokio_stream_from(rx).boxed(),
        None => futures::stream::pending::<Result<Bytes, Infallible>>().boxed(),
    };
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .expect("benchmark setup")
}

fn tokio_stream_from(
    mut rx: broadcast::Receiver<Value>,
) -> impl futures::Stream<Item = Result<Bytes, Infallible>> {
    async_stream(move |tx| async move {
        while let Ok(ev) = rx.recv().await {
            let mut line = serde_json::to_vec(&ev).expect("benchmark setup");
            line.push(b'\n');
            if tx.send(Ok(Bytes::from(line))).await.is_err() {
                break;
            }
        }
    })
}

/// A stream fed by a task.
fn async_stream<F, Fut>(f: F) -> impl futures::Stream<Item = Result<Bytes, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<Bytes, Infallible>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    tokio::spawn(f(tx));
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

async fn handle(
    State(fake): State<Arc<Fake>>,
    method: Method,
    uri: Uri,
    headers: axum::http::HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    // Metadata-only lists and watches, as kube asks for them.
    let metadata_only = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=PartialObjectMetadata"));
    let watching = q.get("watch").is_some_and(|w| w == "true" || w == "1");
    let rv = fake.resource_version.load(Ordering::Relaxed);
    if method == Method::GET {
        fake.counters.reads.fetch_add(1, Ordering::Relaxed);
        if path == "/apis/monitoring.coreos.com/v1" {
            return (StatusCode::NOT_FOUND, axum::Json(json!({"kind": "Status", "apiVersion": "v1", "code": 404, "status": "Failure", "reason": "NotFound", "message": "not found"}))).into_response();
        }
        if path.ends_with("/clockifyaddons") {
            if watching {
                return watch_stream(Some(fake.events.subscribe()));
            }
            let items: Vec<Value> = fake.addons.lock().values().cloned().collect();
            return list(items, rv);
        }
        let last = path.rsplit('/').next().unwrap_or_default();
        if let Some(items) = fake.children.get(last) {
            if watching {
                return watch_stream(None);
            }
            // Pages, as an API server serves them (kube asks for 500 at a time).
            let start: usize = q.get("continue").and_then(|c| c.parse().ok()).unwrap_or(0);
            let limit: usize = q
                .get("limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(usize::MAX);
            let end = start.saturating_add(limit).min(items.len());
            let page = items[start.min(end)..end].iter();
            let page: Vec<Value> = if metadata_only {
                page.map(partial).collect()
            } else {
                page.cloned().collect()
            };
            let mut resp = list(page, rv);
            if end < items.len() {
                resp = paged(resp, end).await;
            }
            return resp;
        }
        return (StatusCode::NOT_FOUND, axum::Json(json!({"kind": "Status", "apiVersion": "v1", "code": 404, "status": "Failure", "reason": "NotFound", "message": "not found"}))).into_response();
    }
    let sent: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if method == Method::POST && path.ends_with("/events") {
        fake.counters.events.fetch_add(1, Ordering::Relaxed);
        return (StatusCode::CREATED, axum::Json(sent)).into_response();
    }
    if method == Method::PATCH && path.ends_with("/status") {
        fake.counters.status_writes.fetch_add(1, Ordering::Relaxed);
        let name = path.rsplit('/').nth(1).unwrap_or_default().to_owned();
        let rv = fake.resource_version.fetch_add(1, Ordering::Relaxed) + 1;
        let updated = {
            let mut addons = fake.addons.lock();
            let Some(obj) = addons.get_mut(&name) else {
                return StatusCode::NOT_FOUND.into_response();
            };
            obj["status"] = sent["status"].clone();
            obj["metadata"]["resourceVersion"] = json!(rv.to_string());
            obj.clone()
        };
        let _ = fake
            .events
            .send(json!({"type": "MODIFIED", "object": updated}));
        return axum::Json(updated).into_response();
    }
    if method == Method::PATCH {
        let manager = q.get("fieldManager").cloned().unwrap_or_default();
        let rv = fake.resource_version.fetch_add(1, Ordering::Relaxed) + 1;
        let answer = answer_apply(sent.clone(), &manager, rv);
        if q.contains_key("dryRun") {
            fake.counters.dry_runs.fetch_add(1, Ordering::Relaxed);
            return axum::Json(answer).into_response();
        }
        fake.counters.child_applies.fetch_add(1, Ordering::Relaxed);
        if std::env::var_os("BENCH_DEBUG").is_some() {
            eprintln!("apply {path}");
        }
        // The ClockifyAddon it belongs to (the backup volume has no owner, but its label).
        let owner = sent["metadata"]["labels"]["app.kubernetes.io/instance"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if manager == "clockify-operator"
            && let Some(entry) = fake.applied.lock().get_mut(&owner)
        {
            entry.1 = Some(Instant::now());
            entry.2 += 1;
        }
        return axum::Json(answer).into_response();
    }
    if method == Method::DELETE {
        fake.counters.deletes.fetch_add(1, Ordering::Relaxed);
        return axum::Json(json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}))
            .into_response();
    }
    StatusCode::METHOD_NOT_ALLOWED.into_response()
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

async fn metric(admin: &str, name: &str) -> f64 {
    let text = reqwest_get(&format!("http://{admin}/metrics"))
        .await
        .unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn reqwest_get(url: &str) -> Option<String> {
    let stream =
        tokio::net::TcpStream::connect(url.trim_start_matches("http://").split('/').next()?)
            .await
            .ok()?;
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .ok()?;
    tokio::spawn(conn);
    let path = format!("/{}", url.trim_start_matches("http://").split_once('/')?.1);
    let resp = send
        .send_request(
            hyper::Request::get(path)
                .header("host", "x")
                .body(http_body_util::Empty::<Bytes>::new())
                .ok()?,
        )
        .await
        .ok()?;
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .ok()?
        .to_bytes();
    String::from_utf8(bytes.to_vec()).ok()
}

struct Operator(Child);

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("BENCH_ADDONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let new_ones: usize = std::env::var("BENCH_NEW")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let caps = Capabilities {
        service_monitor: false,
        http_route: false,
        scaled_object: false,
    };
    let mut addons = HashMap::new();
    let mut children: HashMap<&'static str, Vec<Value>> = HashMap::new();
    for kind in [
        Kind::ServiceAccount,
        Kind::ConfigMap,
        Kind::NetworkPolicy,
        Kind::Service,
        Kind::Ingress,
        Kind::Deployment,
        Kind::HorizontalPodAutoscaler,
        Kind::PodDisruptionBudget,
        Kind::PersistentVolumeClaim,
        Kind::CronJob,
        Kind::Job,
    ] {
        children.insert(plural(kind), Vec::new());
    }
    // The Secrets every example references (the operator watches them whole).
    let secrets = vec![
        json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": "api-studio-db-app", "namespace": NS, "resourceVersion": "1", "uid": "secret-db"},
            "data": {"uri": "cG9zdGdyZXM6Ly9hcHA6cGFzc3dvcmRAZGIvYXBw"}}),
        json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": "api-studio-keys", "namespace": NS, "resourceVersion": "1", "uid": "secret-keys"},
            "data": {"token-key": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}}),
    ];
    let digests = clockify_operator::secrets::SecretStore::default();
    for v in &secrets {
        digests.insert(&serde_json::from_value(v.clone()).expect("benchmark setup"));
    }
    children.insert("secrets", secrets);
    for i in 0..n {
        let a = addon(i);
        let hash = digests
            .hash(NS, &clockify_operator::secrets::references(&a))
            .expect("benchmark setup");
        for c in plan_with(&a, caps, Some(hash))
            .expect("benchmark setup")
            .children
        {
            children
                .get_mut(plural(c.kind()))
                .expect("benchmark setup")
                .push(stored(&c));
        }
        addons.insert(
            a.metadata.name.clone().expect("benchmark setup"),
            addon_json(&a),
        );
    }
    let (events, _) = broadcast::channel(65_536);
    let fake = Arc::new(Fake {
        addons: Mutex::new(addons),
        children,
        events,
        counters: Counters::default(),
        resource_version: AtomicU64::new(1000),
        applied: Mutex::new(HashMap::new()),
    });
    let app = Router::new().fallback(handle).with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("benchmark setup");
    let api = listener.local_addr().expect("benchmark setup");
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().expect("benchmark setup");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{api}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: {NS}\ncurrent-context: fake\nusers:\n- name: fake\n  user: {{}}\n"
        ),
    )
    .expect("benchmark setup");
    let admin = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("benchmark setup")
        .local_addr()
        .expect("benchmark setup")
        .to_string();
    let started = Instant::now();
    // BENCH_WRAP runs the operator under a profiler (e.g. "heaptrack -o /tmp/op").
    let wrap = std::env::var("BENCH_WRAP").unwrap_or_default();
    let bin = std::env::var("BENCH_OPERATOR_BIN").unwrap_or_else(|_| BIN.to_owned());
    println!("  operator binary: {bin}");
    let mut words = wrap.split_whitespace();
    let mut command = match words.next() {
        Some(tool) => {
            let mut c = Command::new(tool);
            c.args(words).arg(&bin);
            c
        }
        None => Command::new(&bin),
    };
    let child = command
        .args([
            "run",
            "--no-leader-election",
            "--admin-addr",
            &admin,
            "--concurrency",
            "8",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env(
            "RUST_LOG",
            std::env::var("BENCH_OPERATOR_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(match std::env::var("BENCH_OPERATOR_LOG_FILE") {
            Ok(path) => Stdio::from(std::fs::File::create(path).expect("log file")),
            Err(_) => Stdio::null(),
        })
        .spawn()
        .expect("start the operator");
    let op = Operator(child);
    let pid = op.0.id();

    // First pass: every ClockifyAddon reconciled once (one status write each).
    while fake.counters.status_writes.load(Ordering::Relaxed) < n as u64 {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the first pass did not finish"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first_pass = started.elapsed();
    let applies_first = fake.counters.child_applies.load(Ordering::Relaxed);
    // Second pass: each status write came back as a watch event; those reconciles must be no-ops.
    let before_second = metric(&admin, "clockify_operator_reconciles_total").await;
    let writes_before = fake.counters.status_writes.load(Ordering::Relaxed)
        + fake.counters.child_applies.load(Ordering::Relaxed)
        + fake.counters.deletes.load(Ordering::Relaxed);
    let mut reconciles = before_second;
    for _ in 0..600 {
        reconciles = metric(&admin, "clockify_operator_reconciles_total").await;
        if reconciles >= 2.0 * n as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let writes_after = fake.counters.status_writes.load(Ordering::Relaxed)
        + fake.counters.child_applies.load(Ordering::Relaxed)
        + fake.counters.deletes.load(Ordering::Relaxed);
    let no_op_reconciles = (reconciles - n as f64).max(1.0);
    let mut managed = 0.0;
    for _ in 0..50 {
        managed = metric(&admin, "clockify_operator_managed_objects").await;
        if managed >= n as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rss = rss_kib(pid, "VmRSS:");
    let hwm = rss_kib(pid, "VmHWM:");

    // New ClockifyAddons: time from the ADDED event to the last of their children applied.
    let expected_children = plan(&addon(0), caps)
        .expect("benchmark setup")
        .children
        .len();
    let mut latencies = Vec::new();
    for j in 0..new_ones {
        let a = addon(n + j);
        let name = a.metadata.name.clone().expect("benchmark setup");
        let obj = addon_json(&a);
        fake.addons.lock().insert(name.clone(), obj.clone());
        fake.applied
            .lock()
            .insert(name.clone(), (Instant::now(), None, 0));
        let _ = fake.events.send(json!({"type": "ADDED", "object": obj}));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (t0, last, count) = *fake.applied.lock().get(&name).expect("benchmark setup");
            if count >= expected_children {
                latencies.push(last.expect("benchmark setup").duration_since(t0));
                break;
            }
            assert!(
                Instant::now() < deadline,
                "children of {name} were not applied"
            );
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
    latencies.sort();
    let pct = |p: f64| {
        latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)].as_secs_f64()
            * 1000.0
    };

    println!(
        "clockify-operator at scale against a mocked API server (release build, {n} ClockifyAddons, {} children)",
        n * expected_children
    );
    println!(
        "  start-up to every ClockifyAddon reconciled: {:.2} s ({:.0} reconciles/s), {} child applies (all children were already in sync)",
        first_pass.as_secs_f64(),
        n as f64 / first_pass.as_secs_f64(),
        applies_first
    );
    println!(
        "  API writes per no-op reconcile: {:.3} ({} writes over {:.0} reconciles triggered by the operator's own status writes)",
        (writes_after - writes_before) as f64 / no_op_reconciles,
        writes_after - writes_before,
        no_op_reconciles
    );
    println!(
        "  operator memory with {managed:.0} ClockifyAddons and their children cached: RSS {:.1} MiB, peak {:.1} MiB",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    println!(
        "  new ClockifyAddon to all {expected_children} first-install objects applied (children and the migration Job): p50 {:.2} ms, p99 {:.2} ms over {new_ones} objects",
        pct(0.5),
        pct(0.99)
    );
    println!(
        "  reads during the run: {}, dry-run applies: {}, events: {}",
        fake.counters.reads.load(Ordering::Relaxed),
        fake.counters.dry_runs.load(Ordering::Relaxed),
        fake.counters.events.load(Ordering::Relaxed)
    );
    drop(op);
}
