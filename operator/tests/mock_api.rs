//! The exact API calls of a reconcile, against a mocked API server (tower-test): first
//! creation, a no-op pass with zero writes, a status patch, drift, pruning, the ServiceMonitor
//! API absent, paused, and a malformed object. A missing call fails by timeout.
#![cfg(test)]

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use clockify_operator::cache::{MetaStore, Stores};
use clockify_operator::crd::{ClockifyAddon, ClockifyAddonStatus};
use clockify_operator::drift;
use clockify_operator::events::Recorder;
use clockify_operator::metrics::Metrics;
use clockify_operator::plan::{Capabilities, Child, Kind, plan, plan_with};
use clockify_operator::reconcile::{CapabilityCache, Context, reconcile};
use clockify_operator::secrets::SecretStore;
use clockify_operator::views::{DeploymentState, JobRecord};
use http::{Method, Request, Response};
use k8s_openapi::api::core::v1::Secret;
use kube::client::Body;
use kube::core::DeserializeGuard;
use kube::core::error_boundary::InvalidObject;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher;
use kube::{Client, Resource};
use serde_json::{Value, json};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const TIMEOUT: Duration = Duration::from_secs(5);

/// The mocked API server: each `expect` takes the next request, checks it, and answers.
struct ApiServer {
    handle: Pin<Box<Handle>>,
}

/// One request as the API server received it.
#[derive(Debug)]
struct Call {
    method: Method,
    path: String,
    query: BTreeMap<String, String>,
    content_type: Option<String>,
    body: Value,
}

impl ApiServer {
    async fn next(&mut self) -> (Call, tower_test::mock::SendResponse<Response<Body>>) {
        let (req, send) = tokio::time::timeout(TIMEOUT, self.handle.next_request())
            .await
            .expect("timed out waiting for the next API call")
            .expect("the client went away");
        let (parts, body) = req.into_parts();
        // Every call is one the operator's RBAC (generated from the same rules) allows.
        assert!(
            clockify_operator::rbac::allows(
                clockify_operator::rbac::RULES,
                parts.method.as_str(),
                parts.uri.path(),
                parts.uri.query().unwrap_or_default()
            ),
            "the operator's RBAC does not allow {} {}",
            parts.method,
            parts.uri
        );
        let bytes = body.collect_bytes().await.unwrap();
        let query = parts.uri.query().map(url_pairs).unwrap_or_default();
        let call = Call {
            method: parts.method,
            path: parts.uri.path().to_owned(),
            query,
            content_type: parts
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        };
        (call, send)
    }

    /// Expects `method path`, answers `status` with `body` (or echoes the request body).
    async fn expect(
        &mut self,
        method: Method,
        path: &str,
        status: u16,
        body: Option<Value>,
    ) -> Call {
        let (call, send) = self.next().await;
        assert_eq!(
            (&call.method, call.path.as_str()),
            (&method, path),
            "unexpected call: {call:#?}"
        );
        let answer = body.unwrap_or_else(|| call.body.clone());
        send.send_response(
            Response::builder()
                .status(status)
                .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                .unwrap(),
        );
        call
    }

    /// One server-side apply call of `path`: forced, by `manager`, as an apply patch; answered
    /// with the object as the API server would store it (managedFields included).
    async fn expect_patch(&mut self, path: &str, manager: &str, dry_run: bool) -> Call {
        let (call, send) = self.next().await;
        assert_eq!(
            (&call.method, call.path.as_str()),
            (&Method::PATCH, path),
            "unexpected call: {call:#?}"
        );
        assert_eq!(
            call.query.get("fieldManager").map(String::as_str),
            Some(manager),
            "{path}"
        );
        assert_eq!(
            call.query.get("force").map(String::as_str),
            Some("true"),
            "{path}"
        );
        assert_eq!(
            call.query.get("dryRun").map(String::as_str),
            dry_run.then_some("All"),
            "{path}"
        );
        assert_eq!(
            call.content_type.as_deref(),
            Some("application/apply-patch+yaml"),
            "{path}"
        );
        let answer = stored(call.body.clone(), manager);
        send.send_response(
            Response::builder()
                .status(200)
                .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                .unwrap(),
        );
        call
    }

    /// A child applied with change detection: a dry run, then the apply stamped with what the
    /// dry run said the operator owns. Returns the apply.
    async fn expect_apply(&mut self, path: &str) -> Call {
        let dry = self.expect_patch(path, MANAGER, true).await;
        let real = self.expect_patch(path, MANAGER, false).await;
        let ann = |c: &Call, k: &str| c.body["metadata"]["annotations"][k].clone();
        assert_eq!(
            ann(&real, "clockify-addons.io/owned-fields"),
            json!(drift::fields_hash(&fields(&dry.body))),
            "the apply records the field set of the dry run"
        );
        assert_eq!(
            ann(&real, "clockify-addons.io/applied"),
            ann(&dry, "clockify-addons.io/applied")
        );
        let mut unstamped = real.body.clone();
        unstamped["metadata"]["annotations"]["clockify-addons.io/owned-fields"] = json!("");
        assert_eq!(
            unstamped, dry.body,
            "the dry run and the apply send the same object"
        );
        real
    }

    /// A Job created (one apply, no dry run: Jobs are created once).
    async fn expect_create_job(&mut self, path: &str) -> Call {
        self.expect_patch(path, MANAGER, false).await
    }

    /// The hand-over of a Deployment's replicas to a field manager of their own.
    async fn expect_handover(&mut self, replicas: i32) -> Call {
        let call = self
            .expect_patch(path_of(Kind::Deployment), HANDOVER, false)
            .await;
        assert_eq!(call.body["spec"], json!({"replicas": replicas}));
        call
    }

    /// A Job's TTL set (or removed) by a merge patch.
    async fn expect_ttl(&mut self, path: &str, ttl: Value, job: Value) -> Call {
        let call = self.expect(Method::PATCH, path, 200, Some(job)).await;
        assert_eq!(
            call.content_type.as_deref(),
            Some("application/merge-patch+json")
        );
        assert_eq!(call.body, json!({"spec": {"ttlSecondsAfterFinished": ttl}}));
        call
    }

    async fn expect_event(&mut self, reason: &str) -> Call {
        let call = self
            .expect(
                Method::POST,
                "/apis/events.k8s.io/v1/namespaces/addons/events",
                201,
                None,
            )
            .await;
        assert_eq!(call.body["reason"], reason, "{:#?}", call.body);
        call
    }

    /// The status patch; answered with the whole object, as the API server does.
    async fn expect_status(&mut self) -> Call {
        let path =
            "/apis/clockify-addons.io/v1alpha1/namespaces/addons/clockifyaddons/api-studio/status";
        let (call, send) = self.next().await;
        assert_eq!(
            (&call.method, call.path.as_str()),
            (&Method::PATCH, path),
            "unexpected call: {call:#?}"
        );
        assert_eq!(
            call.query.get("fieldManager").map(String::as_str),
            Some("clockify-operator")
        );
        assert_eq!(
            call.content_type.as_deref(),
            Some("application/apply-patch+yaml")
        );
        let mut object = serde_json::to_value(addon()).unwrap();
        object["status"] = call.body["status"].clone();
        send.send_response(
            Response::builder()
                .status(200)
                .body(Body::from(serde_json::to_vec(&object).unwrap()))
                .unwrap(),
        );
        call
    }

    /// The discovery of the optional APIs: ServiceMonitor `served` or not; no Gateway API, no KEDA.
    async fn expect_discovery(&mut self, served: bool) {
        if served {
            let list = json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "monitoring.coreos.com/v1", "resources": [
                {"name": "servicemonitors", "singularName": "servicemonitor", "namespaced": true, "kind": "ServiceMonitor", "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]}
            ]});
            self.expect(
                Method::GET,
                "/apis/monitoring.coreos.com/v1",
                200,
                Some(list),
            )
            .await;
        } else {
            self.expect(
                Method::GET,
                "/apis/monitoring.coreos.com/v1",
                404,
                Some(not_found()),
            )
            .await;
        }
        // Neither the Gateway API nor KEDA is served.
        for group in [
            "/apis/gateway.networking.k8s.io/v1",
            "/apis/keda.sh/v1alpha1",
        ] {
            self.expect(Method::GET, group, 404, Some(not_found()))
                .await;
        }
    }
}

fn url_pairs(q: &str) -> BTreeMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

fn not_found() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"})
}

const MANAGER: &str = "clockify-operator";
const HANDOVER: &str = "clockify-operator-handover";

/// The field set server-side apply would record for `obj` (the mock's version: every key path,
/// list items by index; values never matter, as on a real server).
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

/// `obj` as the API server stores it after an apply by `manager`: identity, and the manager's
/// managedFields entry.
fn stored(mut obj: Value, manager: &str) -> Value {
    let f = fields(&obj);
    let name = obj["metadata"]["name"].as_str().unwrap_or("x").to_owned();
    let kind = obj["kind"].as_str().unwrap_or("X").to_owned();
    let m = &mut obj["metadata"];
    m["uid"] = json!(format!("uid-{kind}-{name}"));
    m["resourceVersion"] = json!("7");
    m["generation"] = json!(1);
    m["managedFields"] = json!([
        {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status", "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {}}},
        {"manager": manager, "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": f}
    ]);
    obj
}

/// A desired child as the operator leaves it in the cluster: stamped, applied, stored.
fn applied(child: &Child) -> Value {
    let mut v = child.to_json();
    let h = drift::desired_hash(&v);
    drift::stamp(&mut v, &h, "");
    let owned = drift::fields_hash(&fields(&v));
    drift::stamp(&mut v, &h, &owned);
    stored(v, MANAGER)
}

struct Writers {
    stores: Stores,
    deploy: Writer<DeploymentState>,
    job: Writer<JobRecord>,
}

fn ready<K: Resource<DynamicType = ()> + Clone>(w: &mut Writer<K>) {
    w.apply_watcher_event(&watcher::Event::InitDone);
}

impl Writers {
    /// Puts an object in the cache as the operator's watch would.
    fn insert(&mut self, kind: Kind, obj: Value) {
        let meta: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta =
            serde_json::from_value(obj["metadata"].clone()).unwrap();
        let s = &self.stores;
        match kind {
            Kind::ServiceAccount => s.service_accounts.insert(&meta),
            Kind::ConfigMap => s.config_maps.insert(&meta),
            Kind::NetworkPolicy => s.network_policies.insert(&meta),
            Kind::Service => s.services.insert(&meta),
            Kind::Ingress => s.ingresses.insert(&meta),
            Kind::HTTPRoute => s.http_routes.insert(&meta),
            Kind::ScaledObject => s.scaled_objects.insert(&meta),
            Kind::Deployment => {
                let d: DeploymentState = serde_json::from_value(obj).unwrap();
                self.deploy.apply_watcher_event(&watcher::Event::Apply(d));
            }
            Kind::HorizontalPodAutoscaler => s.hpas.insert(&meta),
            Kind::PodDisruptionBudget => s.pdbs.insert(&meta),
            Kind::Job => {
                let j: JobRecord = serde_json::from_value(obj).unwrap();
                self.job.apply_watcher_event(&watcher::Event::Apply(j));
            }
            Kind::CronJob => s.cron_jobs.insert(&meta),
            Kind::PersistentVolumeClaim => s.pvcs.insert(&meta),
            Kind::ServiceMonitor => s.service_monitors.insert(&meta),
        }
    }
}

/// The example's Secrets, as every harness holds them.
fn example_secrets() -> SecretStore {
    let store = SecretStore::default();
    for (name, key) in [
        ("api-studio-db-app", "uri"),
        ("api-studio-keys", "token-key"),
    ] {
        store.insert(&secret(name, &[(key, "v1")]));
    }
    store.mark_ready();
    store
}

/// The plan a reconcile makes with the harness's Secrets.
fn planned(
    a: &ClockifyAddon,
) -> Result<clockify_operator::plan::Plan, clockify_operator::settings::Invalid> {
    let hash = example_secrets()
        .hash("addons", &clockify_operator::secrets::references(a))
        .unwrap();
    plan_with(
        a,
        Capabilities {
            service_monitor: true,
            http_route: false,
            scaled_object: false,
        },
        Some(hash),
    )
}

/// A Secret in the tests' namespace.
fn secret(name: &str, data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.into()),
            namespace: Some("addons".into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| {
                    (
                        (*k).to_owned(),
                        k8s_openapi::ByteString(v.as_bytes().to_vec()),
                    )
                })
                .collect(),
        ),
        ..Secret::default()
    }
}

/// A context over a mocked API server, its caches synced (the ServiceMonitor cache too,
/// unless `sm_cached` is false: the operator then reads ServiceMonitors from the API server).
fn harness_with(
    capabilities: CapabilityCache,
    sm_cached: bool,
) -> (Arc<Context>, ApiServer, Writers) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let (deploy_r, deploy) = reflector::store();
    let (job_r, job) = reflector::store();
    let stores = Stores {
        service_accounts: MetaStore::default(),
        config_maps: MetaStore::default(),
        network_policies: MetaStore::default(),
        services: MetaStore::default(),
        deployments: deploy_r,
        hpas: MetaStore::default(),
        pdbs: MetaStore::default(),
        jobs: job_r,
        cron_jobs: MetaStore::default(),
        pvcs: MetaStore::default(),
        service_monitors: MetaStore::default(),
        ingresses: MetaStore::default(),
        http_routes: MetaStore::default(),
        scaled_objects: MetaStore::default(),
        secrets: example_secrets(),
    };
    stores.ingresses.mark_ready();
    stores.http_routes.mark_ready();
    stores.scaled_objects.mark_ready();
    for s in [
        &stores.service_accounts,
        &stores.config_maps,
        &stores.network_policies,
        &stores.services,
        &stores.hpas,
        &stores.pdbs,
        &stores.cron_jobs,
        &stores.pvcs,
    ] {
        s.mark_ready();
    }
    if sm_cached {
        stores.service_monitors.mark_ready();
    }
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "clockify-operator".into(),
            instance: Some("test".into()),
        },
    );
    let ctx = Arc::new(Context::new(
        client,
        recorder,
        stores.clone(),
        Arc::new(capabilities),
        Metrics::new(),
    ));
    let mut w = Writers {
        stores,
        deploy,
        job,
    };
    ready(&mut w.deploy);
    ready(&mut w.job);
    (
        ctx,
        ApiServer {
            handle: Box::pin(handle),
        },
        w,
    )
}

fn harness(capabilities: CapabilityCache) -> (Arc<Context>, ApiServer, Writers) {
    harness_with(capabilities, true)
}

fn addon() -> ClockifyAddon {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../manifests/examples/api-studio-standard.yaml"
    ))
    .unwrap();
    let mut a: ClockifyAddon = serde_norway::from_str(&text).unwrap();
    a.metadata.namespace = Some("addons".into());
    a.metadata.uid = Some("5bd4a7b6-1111-4222-8333-944445555666".into());
    a.metadata.generation = Some(1);
    a.metadata.resource_version = Some("100".into());
    a
}

/// Runs one reconcile in the background.
fn start(
    ctx: &Arc<Context>,
    a: ClockifyAddon,
) -> tokio::task::JoinHandle<
    Result<kube::runtime::controller::Action, clockify_operator::reconcile::Error>,
> {
    let ctx = ctx.clone();
    tokio::spawn(async move { reconcile(Arc::new(DeserializeGuard(Ok(a))), ctx).await })
}

async fn finish(
    task: tokio::task::JoinHandle<
        Result<kube::runtime::controller::Action, clockify_operator::reconcile::Error>,
    >,
    api: &mut ApiServer,
) {
    tokio::time::timeout(TIMEOUT, task)
        .await
        .expect("reconcile finished")
        .expect("task")
        .expect("reconcile succeeded");
    // Nothing else was called.
    let extra = tokio::time::timeout(Duration::from_millis(100), api.handle.next_request()).await;
    assert!(
        extra.is_err(),
        "unexpected extra API call: {:?}",
        extra
            .ok()
            .flatten()
            .map(|(r, _)| (r.method().clone(), r.uri().clone()))
    );
}

/// The children as the operator left them in the cluster: what it applied, stamped, plus server
/// defaults and (for the Deployment) a status.
fn stored_children(a: &ClockifyAddon, ready: bool) -> Vec<(Kind, Value)> {
    planned(a)
        .unwrap()
        .children
        .iter()
        .map(|c| {
            let mut v = applied(c);
            if c.kind() == Kind::Deployment {
                v["spec"]["template"]["spec"]["dnsPolicy"] = json!("ClusterFirst");
                v["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"] = json!("/dev/termination-log");
                v["spec"]["replicas"] = json!(2);
                v["status"] = if ready {
                    json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2,
                           "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                                          {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]})
                } else {
                    json!({"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 0, "availableReplicas": 0})
                };
            }
            if c.kind() == Kind::Service {
                v["spec"]["clusterIP"] = json!("10.0.0.12");
                v["spec"]["sessionAffinity"] = json!("None");
            }
            (c.kind(), v)
        })
        .collect()
}

fn fill(w: &mut Writers, children: &[(Kind, Value)]) {
    for (kind, v) in children {
        w.insert(*kind, v.clone());
    }
}

const NS_PATHS: [(&str, Kind); 11] = [
    (
        "/api/v1/namespaces/addons/serviceaccounts/api-studio",
        Kind::ServiceAccount,
    ),
    (
        "/api/v1/namespaces/addons/configmaps/api-studio-config",
        Kind::ConfigMap,
    ),
    (
        "/apis/networking.k8s.io/v1/namespaces/addons/networkpolicies/api-studio",
        Kind::NetworkPolicy,
    ),
    (
        "/api/v1/namespaces/addons/services/api-studio",
        Kind::Service,
    ),
    (
        "/apis/networking.k8s.io/v1/namespaces/addons/ingresses/api-studio",
        Kind::Ingress,
    ),
    (
        "/apis/apps/v1/namespaces/addons/deployments/api-studio",
        Kind::Deployment,
    ),
    (
        "/apis/autoscaling/v2/namespaces/addons/horizontalpodautoscalers/api-studio",
        Kind::HorizontalPodAutoscaler,
    ),
    (
        "/apis/policy/v1/namespaces/addons/poddisruptionbudgets/api-studio",
        Kind::PodDisruptionBudget,
    ),
    (
        "/apis/monitoring.coreos.com/v1/namespaces/addons/servicemonitors/api-studio",
        Kind::ServiceMonitor,
    ),
    (
        "/api/v1/namespaces/addons/persistentvolumeclaims/api-studio-backups",
        Kind::PersistentVolumeClaim,
    ),
    (
        "/apis/batch/v1/namespaces/addons/cronjobs/api-studio-backup",
        Kind::CronJob,
    ),
];

/// The migration Job path for the addon's current image.
fn job_path(a: &ClockifyAddon) -> String {
    let image = clockify_operator::settings::resolve(a).unwrap().image;
    format!(
        "/apis/batch/v1/namespaces/addons/jobs/{}",
        clockify_operator::build::job::job_name(a, &image)
    )
}

fn path_of(kind: Kind) -> &'static str {
    NS_PATHS
        .iter()
        .find(|(_, k)| *k == kind)
        .map(|(p, _)| *p)
        .unwrap()
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or(&Value::Null)
}

/// The status a reconcile writes, taken from its status patch.
fn status_of(call: &Call) -> ClockifyAddonStatus {
    serde_json::from_value(call.body["status"].clone()).unwrap()
}

#[tokio::test]
async fn first_creation_applies_every_child_then_migrates_first() {
    // ServiceMonitors not cached yet: the operator asks the API server.
    let (ctx, mut api, _w) = harness_with(CapabilityCache::default(), false);
    let a = addon();
    let task = start(&ctx, a.clone());
    api.expect_discovery(true).await;
    let sm = api
        .expect(
            Method::GET,
            path_of(Kind::ServiceMonitor),
            404,
            Some(not_found()),
        )
        .await;
    assert!(sm.query.is_empty(), "a plain GET of one object: {sm:#?}");
    for (path, kind) in NS_PATHS {
        if kind == Kind::Deployment {
            continue; // not before the database is migrated
        }
        let call = api.expect_apply(path).await;
        if kind == Kind::PersistentVolumeClaim {
            // The backup volume outlives the ClockifyAddon: no owner, no garbage collection.
            assert!(
                call.body["metadata"].get("ownerReferences").is_none(),
                "{path}"
            );
        } else {
            assert_eq!(
                call.body["metadata"]["ownerReferences"][0]["uid"],
                "5bd4a7b6-1111-4222-8333-944445555666",
                "{path}"
            );
        }
        assert_eq!(call.body["kind"], kind.as_str());
        if kind == Kind::PersistentVolumeClaim {
            assert_eq!(call.body["spec"]["resources"]["requests"]["storage"], "5Gi");
        }
        if kind == Kind::CronJob {
            // The schedule: the STANDARD tier's, as the example gives none.
            assert_eq!(call.body["spec"]["schedule"], "0 2 * * *");
            assert_eq!(call.body["spec"]["concurrencyPolicy"], "Forbid");
            assert_eq!(call.body["spec"]["suspend"], false);
            let c = &call.body["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
            assert_eq!(c["args"], json!(["backup", "api-studio"]));
            assert_eq!(
                c["image"],
                "ghcr.io/clockify-addons/clockify-addons:0.1.0-backup"
            );
            let env = c["env"].as_array().unwrap();
            let keep = env
                .iter()
                .find(|e| e["name"] == "BACKUP_KEEP_LAST")
                .unwrap();
            assert_eq!(keep["value"], "14");
        }
    }
    let job = api.expect_create_job(&job_path(&a)).await;
    assert_eq!(
        job.body["spec"]["template"]["spec"]["containers"][0]["args"],
        json!(["migrate", "api-studio"])
    );
    assert_eq!(
        job.body["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/clockify-addons/clockify-addons:0.1.0"
    );
    assert_eq!(job.body["spec"]["activeDeadlineSeconds"], 600);
    assert!(
        job.body["spec"].get("ttlSecondsAfterFinished").is_none(),
        "no TTL until it succeeded: a failed migration Job stays"
    );
    assert_eq!(
        job.body["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"],
        true
    );
    let created = api.expect_event("Created").await;
    assert!(
        created.body["note"]
            .as_str()
            .unwrap()
            .contains("Service api-studio")
    );
    assert_eq!(created.body["type"], "Normal");
    api.expect_event("MigrationStarted").await;
    let status = api.expect_status().await;
    let s = &status.body["status"];
    assert_eq!(s["observedGeneration"], 1);
    assert_eq!(condition(s, "Ready")["status"], "False");
    assert_eq!(condition(s, "Reconciling")["status"], "True");
    assert_eq!(condition(s, "Reconciling")["reason"], "Migrating");
    assert_eq!(condition(s, "Stalled")["status"], "False");
    assert_eq!(condition(s, "DatabaseMigrated")["status"], "False");
    assert!(
        condition(s, "Ready")["message"]
            .as_str()
            .unwrap()
            .contains("first install")
    );
    assert_eq!(s["targetVersion"], "0.1.0");
    assert!(
        s.get("currentVersion").is_none(),
        "no rollout has completed"
    );
    assert_eq!(s["url"], "http://api-studio.addons.svc:80");
    finish(task, &mut api).await;
    let writes = ctx.metrics.render();
    assert!(
        writes.contains(r#"clockify_operator_api_writes_total{kind="Job",verb="apply"} 1"#),
        "{writes}"
    );
    assert!(
        !writes.contains(r#"kind="Deployment",verb="apply""#),
        "{writes}"
    );
    // Per-ClockifyAddon series for the chart's alerts.
    for series in [
        r#"clockify_operator_addon_ready{addon="api-studio",addon_namespace="addons"} 0"#,
        r#"clockify_operator_addon_migration_failed{addon="api-studio",addon_namespace="addons"} 0"#,
        r#"clockify_operator_backup_failed{addon="api-studio",addon_namespace="addons"} 0"#,
        r#"clockify_operator_backup_interval_seconds{addon="api-studio",addon_namespace="addons"} 86400"#,
    ] {
        assert!(writes.contains(series), "{series}\n{writes}");
    }
    // Gone from the cluster: its series go too.
    ctx.metrics.retain_addons(&Default::default());
    assert!(!ctx.metrics.render().contains("api-studio"));
}

/// Runs a reconcile that finds a healthy world and captures the status it writes.
async fn settled_status(a: &ClockifyAddon) -> ClockifyAddonStatus {
    let (ctx, mut api, mut w) = harness(CapabilityCache::known(true));
    let children = stored_children(a, true);
    fill(&mut w, &children);
    let task = start(&ctx, a.clone());
    api.expect_event("Ready").await;
    let s = status_of(&api.expect_status().await);
    finish(task, &mut api).await;
    s
}

#[tokio::test]
async fn a_no_op_pass_writes_nothing() {
    let mut a = addon();
    a.status = Some(settled_status(&a).await);
    let (ctx, mut api, mut w) = harness(CapabilityCache::known(true));
    let children = stored_children(&a, true);
    fill(&mut w, &children);
    let task = start(&ctx, a.clone());
    // One read (ServiceMonitors are not cached) and not a single write.
    finish(task, &mut api).await;
    assert!(
        !ctx.metrics
            .render()
            .contains("clockify_operator_api_writes_total{"),
        "no writes counted"
    );
}

#[tokio::test]
async fn a_rollout_completing_patches_only_the_status() {
    let mut a = addon();
    // The status of the first pass: rollout in progress.
    let (ctx, mut api, mut w) = harness(CapabilityCache::known(true));
    let children = stored_children(&a, false);
    fill(&mut w, &children);
    let task = start(&ctx, a.clone());
    let progressing = status_of(&api.expect_status().await);
    finish(task, &mut api).await;
    assert_eq!(
        progressing
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap()
            .status,
        "False"
    );
    a.status = Some(progressing.clone());

    // The Deployment finished rolling out.
    let (ctx, mut api, mut w) = harness(CapabilityCache::known(true));
    let children = stored_children(&a, true);
    fill(&mut w, &children);
    let task = start(&ctx, a.clone());
    api.expect_event("Ready").await;
    let ready = api.expect_status().await;
    finish(task, &mut api).await;
    let s = &ready.body["status"];
    assert_eq!(condition(s, "Ready")["status"], "True");
    assert_eq!(condition(s, "Reconciling")["status"], "False");
    assert_eq!(
        s["currentVersion"], "0.1.0",
        "moves once the rollout completed"
    );
    assert_eq!(s["readyReplicas"], 2);
    // Stalled stayed False: its transition time did not move.
    let before = progressing
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .unwrap();
    assert_eq!(
        condition(s, "Stalled")["lastTransitionTime"],
        json!(before.last_transition_time)
    );
}

#[tokio::test]
async fn drift_is_put_back() {
    let mut a = addon();
    a.status = Some(settled_status(&a).await);
    let (ctx, mut api, mut w) = harness(CapabilityCache::known(true));
    let mut children = stored_children(&a, true);
    for (kind, v) in &mut children {
        if *kind == Kind::Deployment {
            // `kubectl edit` of the image: the value changes and the API server moves the
            // field to the editor's managedFields entry.
            v["spec"]["template"]["spec"]["containers"][0]["image"] =
                json!("attacker/image:latest");
            take(
                v,
                "/f:spec/f:template/f:spec/f:containers/i:0/f:image",
                "kubectl-edit",
            );
        }
        if *kind == Kind::NetworkPolicy {
            // A field removed by a merge patch: gone from the object and from every entry.
            v["spec"].as_object_mut().unwrap().remove("egress");
            take(v, "/f:spec/f:egress", "");
        }
        if *kind == Kind::ConfigMap {
            // A key the operator does not set: not the operator's business.
            v["data"]["EXTRA"] = json!("added by hand");
            v["metadata"]["managedFields"]
                .as_array_mut()
                .unwrap()
                .push(json!({"manager": "kubectl-edit", "operation": "Update", "fieldsV1": {"f:data": {"f:EXTRA": {}}}}));
        }
    }
    // And someone deleted the Service.
    children.retain(|(k, _)| *k != Kind::Service);
    fill(&mut w, &children);
    let task = start(&ctx, a.clone());
    let np = api.expect_apply(path_of(Kind::NetworkPolicy)).await;
    assert!(
        np.body["spec"]["egress"]
            .as_array()
            .is_some_and(|e| !e.is_empty())
    );
    let svc = api.expect_apply(path_of(Kind::Service)).await;
    assert_eq!(
        svc.body["spec"]["selector"]["app.kubernetes.io/instance"],
        "api-studio"
    );
    let deploy = api.expect_apply(path_of(Kind::Deployment)).await;
    assert_eq!(
        deploy.body["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/clockify-addons/clockify-addons:0.1.0"
    );
    api.expect_event("Created").await;
    let restored = api.expect_event("DriftCorrected").await;
    let note = restored.body["note"].as_str().unwrap();
    assert!(
        note.contains("NetworkPolicy api-studio") && note.contains("Deployment api-studio"),
        "{note}"
    );
    assert!(!note.contains("ConfigMap"), "{note}");
    finish(task, &mut api).await;
}

/// What the API server does to the operator's managedFields entry when someone else changes
/// (`by` a manager) or removes (`by` "") a field the operator set.
fn take(v: &mut Value, fields_path: &str, by: &str) {
    let (parent, leaf) = fields_path.rsplit_once('/').unwrap();
    let entries = v["metadata"]["managedFields"].as_array_mut().unwrap();
    for e in entries.iter_mut() {
        if e["manager"] == MANAGER
            && let Some(p) = e["fieldsV1"].pointer_mut(parent)
        {
            p.as_object_mut().unwrap().remove(leaf);
        }
    }
    if !by.is_empty() {
        let mut set = json!({});
        let mut at = &mut set;
        for seg in fields_path.trim_start_matches('/').split('/') {
            at[seg] = json!({});
            at = &mut at[seg];
        }
        entries.push(json!({"manager": by, "operation": "Update", "fieldsV1": set}));
    }
}

#[tokio::test]
async fn a_spec_change_is_an_update_and_a_removed_field_goes() {
    let mut a = addon();
    a.spec.pod_overrides = Some(Box::new(clockify_operator::crd::PodOverrides {
        node_selector: [("disk".to_owned(), "ssd".to_owned())].into(),
        ..Default::default()
    }));
    a.status = Some(settled_status(&a).await);
    let (ctx, mut api, mut w) = harness(CapabilityCache::known(true));
    fill(&mut w, &stored_children(&a, true));
    // The override removed from the spec: the Deployment is applied without it.
    let mut b = a.clone();
    b.spec.pod_overrides = None;
    b.metadata.generation = Some(2);
    let task = start(&ctx, b.clone());
    let d = api.expect_apply(path_of(Kind::Deployment)).await;
    assert!(
        d.body["spec"]["template"]["spec"]
            .get("nodeSelector")
            .is_none(),
        "{:#?}",
        d.body["spec"]["template"]["spec"]
    );
    // The backup pods take the overrides too.
    let c = api.expect_apply(path_of(Kind::CronJob)).await;
    assert!(
        c.body["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            .get("nodeSelector")
            .is_none()
    );
    let ev = api.expect_event("Updated").await;
    let note = ev.body["note"].as_str().unwrap();
    assert!(
        note.contains("Deployment api-studio") && note.contains("CronJob api-studio-backup"),
        "{note}"
    );
    api.expect_status().await;
    finish(task, &mut api).await;
}

#[tokio::test]
async fn children_no_longer_desired_are_pruned() {
    let mut a = addon();
    a.status = Some(settled_status(&a).await);
    let (ctx, mut api, mut w) = harness(CapabilityCache::known(true));
    // The cluster holds the autoscaled children (the HPA had scaled to 3); the spec now fixes 2.
    let mut children = stored_children(&a, true);
    for (kind, v) in &mut children {
        if *kind == Kind::Deployment {
            v["spec"]["replicas"] = json!(3);
            for field in [
                "replicas",
                "updatedReplicas",
                "readyReplicas",
                "availableReplicas",
            ] {
                v["status"][field] = json!(3);
            }
        }
    }
    fill(&mut w, &children);
    a.spec.replicas = Some(clockify_operator::crd::ReplicasSpec {
        min: Some(2),
        max: Some(2),
        ..Default::default()
    });
    a.metadata.generation = Some(2);
    let task = start(&ctx, a.clone());
    let deploy = api.expect_apply(path_of(Kind::Deployment)).await;
    assert_eq!(
        deploy.body["spec"]["replicas"], 2,
        "the Deployment owns its replicas again"
    );
    let del = api
        .expect(
            Method::DELETE,
            path_of(Kind::HorizontalPodAutoscaler),
            200,
            Some(json!({"kind": "Status", "apiVersion": "v1", "status": "Success"})),
        )
        .await;
    assert_eq!(del.body["propagationPolicy"], "Background");
    api.expect_event("Updated").await;
    let pruned = api.expect_event("Pruned").await;
    assert!(
        pruned.body["note"]
            .as_str()
            .unwrap()
            .contains("HorizontalPodAutoscaler api-studio")
    );
    let status = api.expect_status().await;
    assert_eq!(status.body["status"]["observedGeneration"], 2);
    finish(task, &mut api).await;
}

#[tokio::test]
async fn without_the_service_monitor_api_nothing_fails() {
    let (ctx, mut api, _w) = harness(CapabilityCache::default());
    let a = addon();
    let task = start(&ctx, a.clone());
    api.expect_discovery(false).await;
    for (path, kind) in NS_PATHS {
        if kind != Kind::ServiceMonitor && kind != Kind::Deployment {
            api.expect_apply(path).await;
        }
    }
    api.expect_create_job(&job_path(&a)).await;
    api.expect_event("Created").await;
    api.expect_event("MigrationStarted").await;
    let status = api.expect_status().await;
    assert!(
        condition(&status.body["status"], "Monitoring").is_null(),
        "Auto: no complaint"
    );
    finish(task, &mut api).await;

    // Enabled: reported as a condition and an Event, still no error.
    let mut enabled = addon();
    enabled.spec.monitoring = Some(Box::new(clockify_operator::crd::MonitoringSpec {
        service_monitor: Some(clockify_operator::crd::ServiceMonitorMode::Enabled),
        interval: None,
    }));
    let (ctx, mut api, _w) = harness(CapabilityCache::known(false));
    let task = start(&ctx, enabled);
    for (path, kind) in NS_PATHS {
        if kind != Kind::ServiceMonitor && kind != Kind::Deployment {
            api.expect_apply(path).await;
        }
    }
    api.expect_create_job(&job_path(&addon())).await;
    api.expect_event("Created").await;
    api.expect_event("MigrationStarted").await;
    let warning = api.expect_event("ServiceMonitorAPIMissing").await;
    assert_eq!(warning.body["type"], "Warning");
    let status = api.expect_status().await;
    assert_eq!(
        condition(&status.body["status"], "Monitoring")["status"],
        "False"
    );
    finish(task, &mut api).await;
}

#[tokio::test]
async fn paused_changes_nothing_and_says_so() {
    let mut a = addon();
    a.status = Some(settled_status(&a).await);
    let (ctx, mut api, mut w) = harness(CapabilityCache::known(true));
    let children = stored_children(&a, true);
    fill(&mut w, &children);
    a.metadata.annotations =
        Some([("clockify-addons.io/paused".to_owned(), "true".to_owned())].into());
    a.spec.version = "0.2.0".into();
    a.metadata.generation = Some(2);
    let task = start(&ctx, a.clone());
    api.expect_event("NotReady").await;
    api.expect_event("Paused").await;
    let status = api.expect_status().await;
    let s = &status.body["status"];
    assert_eq!(condition(s, "Paused")["status"], "True");
    assert_eq!(condition(s, "Ready")["status"], "False");
    assert!(
        condition(s, "Ready")["message"]
            .as_str()
            .unwrap()
            .contains("not applied")
    );
    assert_eq!(condition(s, "Reconciling")["status"], "False");
    finish(task, &mut api).await;
}

#[tokio::test]
async fn a_malformed_object_is_reported_once_on_itself() {
    let (ctx, mut api, _w) = harness(CapabilityCache::known(true));
    let meta = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        name: Some("api-studio".into()),
        namespace: Some("addons".into()),
        uid: Some("5bd4a7b6-1111-4222-8333-944445555666".into()),
        generation: Some(4),
        ..Default::default()
    };
    let invalid = InvalidObject {
        error: "spec.replicas.min: invalid type: string \"two\", expected i32".into(),
        metadata: meta,
    };
    let run = |ctx: Arc<Context>, invalid: InvalidObject| {
        tokio::spawn(async move {
            reconcile(
                Arc::new(DeserializeGuard::<ClockifyAddon>(Err(invalid))),
                ctx,
            )
            .await
        })
    };
    let task = run(ctx.clone(), invalid.clone());
    let ev = api.expect_event("InvalidObject").await;
    assert_eq!(ev.body["type"], "Warning");
    assert!(ev.body["note"].as_str().unwrap().contains("invalid type"));
    let status = api.expect_status().await;
    assert_eq!(
        condition(&status.body["status"], "Stalled")["status"],
        "True"
    );
    assert_eq!(
        condition(&status.body["status"], "Stalled")["reason"],
        "InvalidObject"
    );
    finish(task, &mut api).await;
    // The same generation again: nothing more.
    let task = run(ctx.clone(), invalid);
    finish(task, &mut api).await;
}

#[tokio::test]
async fn a_refused_child_stalls_with_the_reason() {
    let (ctx, mut api, _w) = harness(CapabilityCache::known(false));
    let a = addon();
    let task = start(&ctx, a.clone());
    api.expect_apply(path_of(Kind::ServiceAccount)).await;
    api.expect_apply(path_of(Kind::ConfigMap)).await;
    let invalid = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Invalid", "code": 422,
        "message": "NetworkPolicy.networking.k8s.io \"api-studio\" is invalid: spec.egress[1].ports[0].port: Invalid value: 0"});
    api.expect(
        Method::PATCH,
        path_of(Kind::NetworkPolicy),
        422,
        Some(invalid),
    )
    .await;
    let ev = api.expect_event("ApplyRejected").await;
    assert_eq!(ev.body["type"], "Warning");
    let status = api.expect_status().await;
    let stalled = condition(&status.body["status"], "Stalled");
    assert_eq!(stalled["status"], "True");
    assert!(
        stalled["message"]
            .as_str()
            .unwrap()
            .contains("spec.egress[1]")
    );
    finish(task, &mut api).await;
}

#[test]
fn plan_paths_cover_every_kind() {
    let children = plan(
        &addon(),
        Capabilities {
            service_monitor: true,
            http_route: false,
            scaled_object: false,
        },
    )
    .unwrap()
    .children;
    assert_eq!(
        children.iter().map(Child::kind).collect::<Vec<_>>(),
        NS_PATHS.iter().map(|(_, k)| *k).collect::<Vec<_>>()
    );
}

// ---- Zero-downtime upgrades: the migration Job first, then the rollout. ----

fn addon_at(version: &str, generation: i64) -> ClockifyAddon {
    let mut a = addon();
    // A pinned backup image: the backup CronJob stays as it is across these upgrades (by
    // default its image follows spec.version and the CronJob is updated with it).
    if let Some(b) = a.spec.backup.as_mut() {
        b.image = Some("registry.example.com/clockify-addons:backup".into());
    }
    a.spec.version = version.into();
    a.metadata.generation = Some(generation);
    a
}

enum JobPhase {
    Active,
    Succeeded,
    Failed,
}

/// The migration Job of `a` as the API server stores it.
fn stored_job(a: &ClockifyAddon, phase: JobPhase) -> Value {
    let s = clockify_operator::settings::resolve(a).unwrap();
    let mut v = serde_json::to_value(clockify_operator::build::migration_job(a, &s)).unwrap();
    v["metadata"]["uid"] = json!(format!("job-{}", a.spec.version));
    v["metadata"]["resourceVersion"] = json!("9");
    v["status"] = match phase {
        JobPhase::Active => json!({"active": 1, "startTime": "2026-11-22T04:00:00Z"}),
        JobPhase::Succeeded => {
            json!({"succeeded": 1, "startTime": "2026-11-22T04:00:00Z", "completionTime": "2026-11-22T04:00:42Z",
            "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": "2026-11-22T04:00:42Z"}]})
        }
        JobPhase::Failed => json!({"failed": 3, "startTime": "2026-11-22T04:00:00Z",
            "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                            "message": "Job has reached the specified backoff limit", "lastTransitionTime": "2026-11-22T04:03:00Z"}]}),
    };
    v
}

/// The world after version 0.1.0 settled: its children, healthy.
async fn v1_world() -> (Vec<(Kind, Value)>, ClockifyAddonStatus) {
    let v1 = addon_at("0.1.0", 1);
    (stored_children(&v1, true), settled_status(&v1).await)
}

async fn reconcile_in(
    a: &ClockifyAddon,
    children: &[(Kind, Value)],
    jobs: &[Value],
    script: impl AsyncFnOnce(&mut ApiServer),
) {
    let (ctx, mut api, mut w) = harness(CapabilityCache::known(true));
    fill(&mut w, children);
    for j in jobs {
        w.insert(Kind::Job, j.clone());
    }
    let task = start(&ctx, a.clone());
    script(&mut api).await;
    finish(task, &mut api).await;
}

#[tokio::test]
async fn an_upgrade_starts_the_migration_job_and_holds_the_deployment() {
    let (children, v1_status) = v1_world().await;
    let mut a = addon_at("0.2.0", 2);
    a.status = Some(v1_status);
    let status = std::sync::Arc::new(std::sync::Mutex::new(Value::Null));
    let out = status.clone();
    reconcile_in(&a, &children, &[], async |api| {
        let job = api.expect_create_job(&job_path(&a)).await;
        assert_eq!(
            job.body["spec"]["template"]["spec"]["containers"][0]["image"],
            "ghcr.io/clockify-addons/clockify-addons:0.2.0"
        );
        assert_eq!(
            job.body["metadata"]["annotations"]["clockify-addons.io/generation"],
            "2"
        );
        api.expect_event("MigrationStarted").await;
        api.expect_event("NotReady").await;
        *out.lock().unwrap() = api.expect_status().await.body["status"].clone();
    })
    .await;
    let s = status.lock().unwrap().clone();
    assert_eq!(condition(&s, "Reconciling")["reason"], "Migrating");
    assert_eq!(condition(&s, "DatabaseMigrated")["status"], "False");
    assert!(
        condition(&s, "Ready")["message"]
            .as_str()
            .unwrap()
            .contains("version 0.1.0 keeps serving")
    );
    assert_eq!(
        condition(&s, "Available")["status"],
        "True",
        "the old version still serves"
    );
    assert_eq!(s["targetVersion"], "0.2.0");
    assert_eq!(s["currentVersion"], "0.1.0");
}

/// The status an upgrade to 0.2.0 leaves while its Job runs.
async fn migrating_status() -> ClockifyAddonStatus {
    let (children, v1_status) = v1_world().await;
    let mut a = addon_at("0.2.0", 2);
    a.status = Some(v1_status);
    let (ctx, mut api, mut w) = harness(CapabilityCache::known(true));
    fill(&mut w, &children);
    w.insert(Kind::Job, stored_job(&a, JobPhase::Active));
    let task = start(&ctx, a.clone());
    api.expect_event("NotReady").await;
    let s = status_of(&api.expect_status().await);
    finish(task, &mut api).await;
    s
}

#[tokio::test]
async fn a_restart_mid_migration_resumes_without_writes() {
    let (children, _) = v1_world().await;
    let mut a = addon_at("0.2.0", 2);
    a.status = Some(migrating_status().await);
    // A fresh operator (new context, caches filled from the cluster): the Job still runs.
    let job = stored_job(&a, JobPhase::Active);
    reconcile_in(&a, &children, &[job], async |_api| {}).await;
}

#[tokio::test]
async fn a_successful_migration_rolls_the_deployment_then_reports_ready() {
    let (children, _) = v1_world().await;
    let mut a = addon_at("0.2.0", 2);
    a.status = Some(migrating_status().await);
    let job = stored_job(&a, JobPhase::Succeeded);
    let status = std::sync::Arc::new(std::sync::Mutex::new(Value::Null));
    let out = status.clone();
    reconcile_in(&a, &children, std::slice::from_ref(&job), async |api| {
        let d = api.expect_apply(path_of(Kind::Deployment)).await;
        assert_eq!(
            d.body["spec"]["template"]["spec"]["containers"][0]["image"],
            "ghcr.io/clockify-addons/clockify-addons:0.2.0"
        );
        assert_eq!(
            d.body["metadata"]["annotations"]["clockify-addons.io/migrated-image"],
            "ghcr.io/clockify-addons/clockify-addons:0.2.0"
        );
        assert_eq!(
            d.body["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
            0
        );
        // The Job succeeded: it may now expire.
        let mut expiring = job.clone();
        expiring["spec"]["ttlSecondsAfterFinished"] = json!(3600);
        api.expect_ttl(&job_path(&a), json!(3600), expiring).await;
        api.expect_event("MigrationSucceeded").await;
        let rollout = api.expect_event("RolloutStarted").await;
        assert!(rollout.body["note"].as_str().unwrap().contains("0.2.0"));
        *out.lock().unwrap() = api.expect_status().await.body["status"].clone();
    })
    .await;
    let s = status.lock().unwrap().clone();
    assert_eq!(condition(&s, "DatabaseMigrated")["status"], "True");
    assert_eq!(s["lastMigration"]["version"], "0.2.0");
    assert!(
        s["lastMigration"]["job"]
            .as_str()
            .unwrap()
            .starts_with("api-studio-migrate-")
    );
    assert!(
        s["lastMigration"]["finishedAt"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-22T04:00:42")
    );
    assert_eq!(
        condition(&s, "Ready")["status"],
        "False",
        "old pods still run"
    );
    assert_eq!(
        s["currentVersion"], "0.1.0",
        "moves only once the rollout completed"
    );

    // The rollout completed: Ready, and the current version moves.
    let mut a = a.clone();
    a.status = Some(serde_json::from_value(s).unwrap());
    let rolled = stored_children(&a, true);
    let out2 = status.clone();
    let mut job = job.clone();
    job["spec"]["ttlSecondsAfterFinished"] = json!(3600);
    reconcile_in(&a, &rolled, &[job], async |api| {
        api.expect_event("Ready").await;
        *out2.lock().unwrap() = api.expect_status().await.body["status"].clone();
    })
    .await;
    let s = status.lock().unwrap().clone();
    assert_eq!(condition(&s, "Ready")["status"], "True");
    assert_eq!(s["currentVersion"], "0.2.0");
}

#[tokio::test]
async fn a_failed_migration_keeps_the_old_version_until_the_spec_changes() {
    let (children, _) = v1_world().await;
    let mut a = addon_at("0.2.0", 2);
    a.status = Some(migrating_status().await);
    let failed = stored_job(&a, JobPhase::Failed);
    let status = std::sync::Arc::new(std::sync::Mutex::new(Value::Null));
    let out = status.clone();
    reconcile_in(&a, &children, std::slice::from_ref(&failed), async |api| {
        let ev = api.expect_event("MigrationFailed").await;
        assert_eq!(ev.body["type"], "Warning");
        assert!(
            ev.body["note"]
                .as_str()
                .unwrap()
                .contains("BackoffLimitExceeded")
        );
        *out.lock().unwrap() = api.expect_status().await.body["status"].clone();
    })
    .await;
    let s = status.lock().unwrap().clone();
    let stalled = condition(&s, "Stalled");
    assert_eq!(stalled["status"], "True");
    assert_eq!(stalled["reason"], "MigrationFailed");
    let msg = stalled["message"].as_str().unwrap();
    assert!(
        msg.contains("api-studio-migrate-")
            && msg.contains("BackoffLimitExceeded")
            && msg.contains("version 0.1.0 keeps serving"),
        "{msg}"
    );
    assert_eq!(
        condition(&s, "DatabaseMigrated")["reason"],
        "MigrationFailed"
    );

    // It stays so: another pass writes nothing.
    let mut same = a.clone();
    same.status = Some(serde_json::from_value(s.clone()).unwrap());
    reconcile_in(
        &same,
        &children,
        std::slice::from_ref(&failed),
        async |_api| {},
    )
    .await;

    // The spec changes (same image, longer timeout): the failed Job goes and a new one starts.
    let mut retry = same.clone();
    retry.metadata.generation = Some(3);
    retry.spec.database.migrations = Some(clockify_operator::crd::MigrationsSpec {
        timeout_seconds: Some(1200),
        backoff_limit: None,
    });
    reconcile_in(
        &retry,
        &children,
        std::slice::from_ref(&failed),
        async |api| {
            let del = api
                .expect(
                    Method::DELETE,
                    &job_path(&retry),
                    200,
                    Some(json!({"kind": "Status", "apiVersion": "v1", "status": "Success"})),
                )
                .await;
            assert_eq!(del.body["propagationPolicy"], "Background");
            let job = api.expect_create_job(&job_path(&retry)).await;
            assert_eq!(job.body["spec"]["activeDeadlineSeconds"], 1200);
            assert_eq!(
                job.body["metadata"]["annotations"]["clockify-addons.io/generation"],
                "3"
            );
            api.expect_event("MigrationRetried").await;
            api.expect_event("MigrationStarted").await;
            let st = api.expect_status().await;
            assert_eq!(condition(&st.body["status"], "Stalled")["status"], "False");
            assert_eq!(
                condition(&st.body["status"], "Reconciling")["reason"],
                "Migrating"
            );
        },
    )
    .await;

    // Or a new version: a Job of its own; the failed one stays (it has no TTL).
    let mut newer = same.clone();
    newer.spec.version = "0.2.1".into();
    newer.metadata.generation = Some(3);
    reconcile_in(
        &newer,
        &children,
        std::slice::from_ref(&failed),
        async |api| {
            let job = api.expect_create_job(&job_path(&newer)).await;
            assert_eq!(
                job.body["spec"]["template"]["spec"]["containers"][0]["image"],
                "ghcr.io/clockify-addons/clockify-addons:0.2.1"
            );
            api.expect_event("MigrationStarted").await;
            api.expect_status().await;
        },
    )
    .await;
}

#[tokio::test]
async fn a_failed_migration_outlives_any_ttl_and_the_retry_annotation_retries_it_once() {
    let (children, _) = v1_world().await;
    let mut a = addon_at("0.2.0", 2);
    a.status = Some(migrating_status().await);
    // A failed Job an earlier release created with a TTL: the TTL goes, so the Job controller
    // never deletes it (which would have started a silent retry).
    let mut failed = stored_job(&a, JobPhase::Failed);
    failed["spec"]["ttlSecondsAfterFinished"] = json!(3600);
    let mut kept = failed.clone();
    kept["spec"]
        .as_object_mut()
        .unwrap()
        .remove("ttlSecondsAfterFinished");
    let status = std::sync::Arc::new(std::sync::Mutex::new(Value::Null));
    let out = status.clone();
    reconcile_in(&a, &children, std::slice::from_ref(&failed), async |api| {
        api.expect_ttl(&job_path(&a), Value::Null, kept.clone())
            .await;
        api.expect_event("MigrationFailed").await;
        *out.lock().unwrap() = api.expect_status().await.body["status"].clone();
    })
    .await;
    let s = status.lock().unwrap().clone();
    let msg = condition(&s, "Stalled")["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        msg.contains("stays failed until you act")
            && msg.contains("clockify-addons.io/retry-migration"),
        "{msg}"
    );

    // Same spec, the annotation set: the failed Job goes, a new one carries the value.
    let mut retry = a.clone();
    retry.status = Some(serde_json::from_value(s.clone()).unwrap());
    retry.metadata.annotations = Some(
        [(
            "clockify-addons.io/retry-migration".to_owned(),
            "lock-fixed".to_owned(),
        )]
        .into(),
    );
    let created = std::sync::Arc::new(std::sync::Mutex::new(Value::Null));
    let job_out = created.clone();
    reconcile_in(
        &retry,
        &children,
        std::slice::from_ref(&kept),
        async |api| {
            api.expect(
                Method::DELETE,
                &job_path(&retry),
                200,
                Some(json!({"kind": "Status", "apiVersion": "v1", "status": "Success"})),
            )
            .await;
            let job = api.expect_create_job(&job_path(&retry)).await;
            *job_out.lock().unwrap() = job.body.clone();
            api.expect_event("MigrationRetried").await;
            api.expect_event("MigrationStarted").await;
            api.expect_status().await;
        },
    )
    .await;
    let job = created.lock().unwrap().clone();
    assert_eq!(
        job["metadata"]["annotations"]["clockify-addons.io/retry-migration"],
        "lock-fixed"
    );

    // That value acted on: when the new Job fails too, nothing retries it.
    let mut failed_again: Value = stored_job(&retry, JobPhase::Failed);
    failed_again["metadata"]["annotations"]["clockify-addons.io/retry-migration"] =
        json!("lock-fixed");
    let mut settled = retry.clone();
    settled.status = Some(serde_json::from_value(s).unwrap());
    reconcile_in(&settled, &children, &[failed_again], async |_api| {}).await;
}

#[tokio::test]
async fn an_image_change_mid_migration_replaces_the_stale_job() {
    let (children, _) = v1_world().await;
    let migrating = migrating_status().await;
    let running = stored_job(&addon_at("0.2.0", 2), JobPhase::Active);
    let mut a = addon_at("0.2.1", 3);
    a.status = Some(migrating);
    reconcile_in(&a, &children, &[running], async |api| {
        let stale = job_path(&addon_at("0.2.0", 2));
        api.expect(
            Method::DELETE,
            &stale,
            200,
            Some(json!({"kind": "Status", "apiVersion": "v1", "status": "Success"})),
        )
        .await;
        let job = api.expect_create_job(&job_path(&a)).await;
        assert_eq!(
            job.body["spec"]["template"]["spec"]["containers"][0]["image"],
            "ghcr.io/clockify-addons/clockify-addons:0.2.1"
        );
        api.expect_event("MigrationSuperseded").await;
        api.expect_event("MigrationStarted").await;
        let st = api.expect_status().await;
        assert!(
            condition(&st.body["status"], "Reconciling")["message"]
                .as_str()
                .unwrap()
                .contains("0.2.1")
        );
    })
    .await;
}

#[test]
fn job_names_follow_the_image() {
    let a = addon_at("0.2.0", 1);
    let name = clockify_operator::build::job::job_name(
        &a,
        "ghcr.io/clockify-addons/clockify-addons:0.2.0",
    );
    assert!(
        name.starts_with("api-studio-migrate-") && name.len() == "api-studio-migrate-".len() + 8,
        "{name}"
    );
    assert_ne!(
        name,
        clockify_operator::build::job::job_name(
            &a,
            "ghcr.io/clockify-addons/clockify-addons:0.2.1"
        )
    );
    assert!(name.len() <= 63, "a Job name must fit a label value");
}

// ---- Backups and restores ----

const PODS: &str = "/api/v1/namespaces/addons/pods";

/// A backup Job as the API server stores it: started by the CronJob, or on demand.
fn backup_job(name: &str, phase: JobPhase, finished: &str) -> Value {
    let a = addon();
    let mut labels = clockify_operator::build::backup::component_labels(&a, "backup");
    labels.insert("batch.kubernetes.io/job-name".into(), name.into());
    let status = match phase {
        JobPhase::Active => json!({"active": 1, "startTime": "2026-11-22T02:00:00Z"}),
        JobPhase::Succeeded => {
            json!({"succeeded": 1, "startTime": "2026-11-22T02:00:00Z", "completionTime": finished,
            "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": finished}]})
        }
        JobPhase::Failed => json!({"failed": 2, "startTime": "2026-11-22T02:00:00Z",
            "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                            "message": "Job has reached the specified backoff limit", "lastTransitionTime": finished}]}),
    };
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": "addons", "uid": format!("uid-{name}"), "resourceVersion": "11",
                     "labels": labels,
                     "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "api-studio-backup",
                                          "uid": "uid-CronJob", "controller": true}]},
        "spec": {"template": {"spec": {"containers": [{"name": "backup", "image": "x"}], "restartPolicy": "Never"}}},
        "status": status,
    })
}

/// The pods of a Job, the last one terminated with `message`.
fn pods_with(job: &str, message: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "12"}, "items": [{
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("{job}-x7k2p"), "namespace": "addons", "labels": {"batch.kubernetes.io/job-name": job}},
        "status": {"startTime": "2026-11-22T02:00:01Z", "containerStatuses": [{
            "name": "backup", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "message": message}}}]}
    }]})
}

async fn expect_pods(api: &mut ApiServer, job: &str, answer: Value, status: u16) {
    let call = api.expect(Method::GET, PODS, status, Some(answer)).await;
    assert_eq!(
        call.query.get("labelSelector").map(String::as_str),
        Some(format!("batch.kubernetes.io%2Fjob-name%3D{job}").as_str()),
        "{call:#?}"
    );
}

#[tokio::test]
async fn a_finished_backup_is_recorded_once_with_its_id_and_an_event() {
    let mut a = addon();
    a.status = Some(settled_status(&a).await);
    let before = a.status.clone().unwrap();
    let unknown = before
        .conditions
        .iter()
        .find(|c| c.type_ == "BackupSucceeded")
        .unwrap();
    assert_eq!(
        (unknown.status.as_str(), unknown.reason.as_str()),
        ("Unknown", "NoBackupYet")
    );
    let children = stored_children(&a, true);
    let name = "api-studio-backup-29400120";
    let job = backup_job(name, JobPhase::Succeeded, "2026-11-22T02:00:40Z");
    let id = format!("20261122T020000.512Z-api-studio-{name}");
    let status = std::sync::Arc::new(std::sync::Mutex::new(Value::Null));
    let out = status.clone();
    let message = format!("backup {id} stored: 52311 bytes");
    reconcile_in(&a, &children, std::slice::from_ref(&job), async |api| {
        expect_pods(api, name, pods_with(name, &message), 200).await;
        let ev = api.expect_event("BackupSucceeded").await;
        assert_eq!(ev.body["type"], "Normal");
        assert!(ev.body["note"].as_str().unwrap().contains(&id));
        *out.lock().unwrap() = api.expect_status().await.body["status"].clone();
    })
    .await;
    let s = status.lock().unwrap().clone();
    assert_eq!(s["lastBackup"]["job"], name);
    assert_eq!(s["lastBackup"]["result"], "Succeeded");
    assert_eq!(s["lastBackup"]["backupId"], id.as_str());
    assert_eq!(s["lastBackup"]["finishedAt"], "2026-11-22T02:00:40Z");
    assert_eq!(s["lastBackup"]["startedAt"], "2026-11-22T02:00:00Z");
    assert_eq!(s["lastBackup"]["sizeBytes"], 52311);
    assert_eq!(
        s["lastBackup"]["location"],
        format!("pvc://api-studio-backups/{id}.dump")
    );
    assert_eq!(s["lastSuccessfulBackup"], s["lastBackup"]);
    let c = condition(&s, "BackupSucceeded");
    assert_eq!(
        (c["status"].as_str(), c["reason"].as_str()),
        (Some("True"), Some("BackupSucceeded"))
    );
    assert!(c["message"].as_str().unwrap().contains(&id));

    // Recorded: the next pass reads no pods and writes nothing.
    let mut again = a.clone();
    again.status = Some(serde_json::from_value(s.clone()).unwrap());
    reconcile_in(
        &again,
        &children,
        std::slice::from_ref(&job),
        async |_api| {},
    )
    .await;

    // The CronJob's history limit removed the Job: status still remembers it.
    reconcile_in(&again, &children, &[], async |_api| {}).await;
}

#[tokio::test]
async fn a_failed_backup_turns_the_condition_false_with_the_reason() {
    let mut a = addon();
    let mut s = settled_status(&a).await;
    s.last_backup = Some(clockify_operator::crd::BackupRecord {
        job: "api-studio-backup-29400120".into(),
        result: "Succeeded".into(),
        started_at: Some("2026-11-22T02:00:00Z".into()),
        finished_at: Some("2026-11-22T02:00:40Z".into()),
        backup_id: Some("20261122T020000.512Z-api-studio-api-studio-backup-29400120".into()),
        location: None,
        size_bytes: None,
        message: Some("backup ... stored".into()),
    });
    s.last_successful_backup = s.last_backup.clone();
    a.status = Some(s);
    let children = stored_children(&a, true);
    let name = "api-studio-backup-29400840";
    let failed = backup_job(name, JobPhase::Failed, "2026-11-23T02:03:00Z");
    let reason = "backup failed: pg_dump failed (exit status: 1): pg_dump: error: connection to server at \"db\" (10.0.0.5), port 5432 failed: Connection refused";
    let status = std::sync::Arc::new(std::sync::Mutex::new(Value::Null));
    let out = status.clone();
    reconcile_in(&a, &children, std::slice::from_ref(&failed), async |api| {
        expect_pods(api, name, pods_with(name, reason), 200).await;
        let ev = api.expect_event("BackupFailed").await;
        assert_eq!(ev.body["type"], "Warning");
        assert!(
            ev.body["note"]
                .as_str()
                .unwrap()
                .contains("Connection refused")
        );
        *out.lock().unwrap() = api.expect_status().await.body["status"].clone();
    })
    .await;
    let s = status.lock().unwrap().clone();
    let c = condition(&s, "BackupSucceeded");
    assert_eq!(
        (c["status"].as_str(), c["reason"].as_str()),
        (Some("False"), Some("BackupFailed"))
    );
    let msg = c["message"].as_str().unwrap();
    assert!(
        msg.contains(name) && msg.contains("Connection refused"),
        "{msg}"
    );
    assert!(
        msg.contains("the last successful backup finished at 2026-11-22T02:00:40Z"),
        "{msg}"
    );
    assert_eq!(s["lastBackup"]["result"], "Failed");
    assert!(s["lastBackup"].get("backupId").is_none());
    assert_eq!(
        s["lastSuccessfulBackup"]["job"],
        "api-studio-backup-29400120"
    );
    assert_eq!(
        condition(&s, "Ready")["status"],
        "True",
        "a failed backup does not make the add-on unready"
    );

    // The next failure, with its pods not readable (no RBAC, or gone): the Job's own reason.
    let mut later = a.clone();
    later.status = Some(serde_json::from_value(s).unwrap());
    let name2 = "api-studio-backup-29401560";
    let failed2 = backup_job(name2, JobPhase::Failed, "2026-11-24T02:03:00Z");
    let out = status.clone();
    reconcile_in(&later, &children, &[failed.clone(), failed2], async |api| {
        let forbidden = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403, "message": "pods is forbidden"});
        expect_pods(api, name2, forbidden, 403).await;
        api.expect_event("BackupFailed").await;
        *out.lock().unwrap() = api.expect_status().await.body["status"].clone();
    })
    .await;
    let s = status.lock().unwrap().clone();
    assert_eq!(s["lastBackup"]["job"], name2);
    assert!(
        s["lastBackup"]["message"]
            .as_str()
            .unwrap()
            .contains("BackoffLimitExceeded")
    );
}

#[tokio::test]
async fn the_backup_now_annotation_runs_one_backup_per_value() {
    let mut a = addon();
    a.status = Some(settled_status(&a).await);
    let children = stored_children(&a, true);
    a.metadata.annotations = Some(
        [(
            "clockify-addons.io/backup-now".to_owned(),
            "before-upgrade-0.2".to_owned(),
        )]
        .into(),
    );
    let job_name = clockify_operator::build::backup::on_demand_job_name(&a, "before-upgrade-0.2");
    let status = std::sync::Arc::new(std::sync::Mutex::new(Value::Null));
    let out = status.clone();
    let applied = std::sync::Arc::new(std::sync::Mutex::new(Value::Null));
    let job_out = applied.clone();
    reconcile_in(&a, &children, &[], async |api| {
        let job = api
            .expect_create_job(&format!("/apis/batch/v1/namespaces/addons/jobs/{job_name}"))
            .await;
        *job_out.lock().unwrap() = job.body.clone();
        let ev = api.expect_event("BackupStarted").await;
        assert!(
            ev.body["note"]
                .as_str()
                .unwrap()
                .contains("before-upgrade-0.2")
        );
        *out.lock().unwrap() = api.expect_status().await.body["status"].clone();
    })
    .await;
    let job = applied.lock().unwrap().clone();
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(
        pod["containers"][0]["args"],
        json!(["backup", "api-studio"])
    );
    assert_eq!(
        job["metadata"]["ownerReferences"][0]["uid"],
        "5bd4a7b6-1111-4222-8333-944445555666"
    );
    assert_eq!(
        job["metadata"]["labels"]["app.kubernetes.io/component"],
        "backup"
    );
    assert_eq!(job["spec"]["ttlSecondsAfterFinished"], 86400);
    assert_eq!(
        pod["volumes"][1]["persistentVolumeClaim"]["claimName"],
        "api-studio-backups"
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let s = status.lock().unwrap().clone();
    assert_eq!(s["onDemandBackup"]["request"], "before-upgrade-0.2");
    assert_eq!(s["onDemandBackup"]["job"], job_name.as_str());

    // Acted on: while it runs, and after, the same value starts nothing.
    let mut same = a.clone();
    same.status = Some(serde_json::from_value(s).unwrap());
    let mut running = backup_job(&job_name, JobPhase::Active, "");
    running["metadata"]["ownerReferences"] = json!([{"apiVersion": "clockify-addons.io/v1alpha1", "kind": "ClockifyAddon",
        "name": "api-studio", "uid": "5bd4a7b6-1111-4222-8333-944445555666", "controller": true}]);
    reconcile_in(
        &same,
        &children,
        std::slice::from_ref(&running),
        async |_api| {},
    )
    .await;

    // A new value: one more backup.
    let mut next = same.clone();
    next.metadata.annotations = Some(
        [(
            "clockify-addons.io/backup-now".to_owned(),
            "2026-11-22T12:00".to_owned(),
        )]
        .into(),
    );
    let next_job = clockify_operator::build::backup::on_demand_job_name(&next, "2026-11-22T12:00");
    assert_ne!(next_job, job_name);
    reconcile_in(
        &next,
        &children,
        std::slice::from_ref(&running),
        async |api| {
            api.expect_create_job(&format!("/apis/batch/v1/namespaces/addons/jobs/{next_job}"))
                .await;
            api.expect_event("BackupStarted").await;
            let st = api.expect_status().await;
            assert_eq!(
                st.body["status"]["onDemandBackup"]["request"],
                "2026-11-22T12:00"
            );
        },
    )
    .await;
}

/// A restore Job (or its migration Job) of request `id`, as the API server stores it.
fn restore_job_stored(a: &ClockifyAddon, id: &str, migrate: bool, phase: JobPhase) -> Value {
    let s = clockify_operator::settings::resolve(a).unwrap();
    let b = s.backup.clone().unwrap();
    let job = if migrate {
        clockify_operator::build::backup::restore_migration_job(a, &s, id)
    } else {
        clockify_operator::build::backup::restore_job(a, &s, &b, id, "latest")
    };
    let mut v = serde_json::to_value(job).unwrap();
    v["metadata"]["uid"] = json!(format!("uid-{migrate}"));
    v["metadata"]["resourceVersion"] = json!("20");
    v["status"] = match phase {
        JobPhase::Active => json!({"active": 1, "startTime": "2026-11-22T09:00:00Z"}),
        JobPhase::Succeeded => {
            json!({"succeeded": 1, "startTime": "2026-11-22T09:00:00Z", "completionTime": "2026-11-22T09:04:00Z",
            "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": "2026-11-22T09:04:00Z"}]})
        }
        JobPhase::Failed => json!({"failed": 1, "startTime": "2026-11-22T09:00:00Z",
            "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                            "message": "Job has reached the specified backoff limit", "lastTransitionTime": "2026-11-22T09:01:00Z"}]}),
    };
    v
}

/// The world as a restore's first pass left it (the Deployment applied at zero replicas, the
/// backup CronJob suspended), with the Deployment's pods gone.
fn scaled_to_zero(a: &ClockifyAddon, children: &[(Kind, Value)]) -> Vec<(Kind, Value)> {
    let desired = planned(a).unwrap().children;
    children
        .iter()
        .map(|(k, v)| {
            let mut v = v.clone();
            let child = desired.iter().find(|c| c.kind() == *k).unwrap();
            if *k == Kind::Deployment {
                let mut d = child.clone();
                if let Child::Deployment(d) = &mut d {
                    d.spec.as_mut().unwrap().replicas = Some(0);
                }
                let status = v["status"].clone();
                v = applied(&d);
                v["metadata"]["generation"] = json!(2);
                v["status"] = status;
                v["status"] = json!({"observedGeneration": 2, "replicas": 0, "updatedReplicas": 0, "readyReplicas": 0, "availableReplicas": 0,
                    "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]});
            }
            if *k == Kind::CronJob {
                let mut c = child.clone();
                if let Child::CronJob(c) = &mut c {
                    c.spec.as_mut().unwrap().suspend = Some(true);
                }
                v = applied(&c);
            }
            (*k, v)
        })
        .collect()
}

/// The pods of the add-on that are left (`total`, of which `terminating`).
fn addon_pods(total: usize, terminating: usize) -> Value {
    let items: Vec<Value> = (0..total)
        .map(|i| {
            let mut m = json!({"name": format!("api-studio-5d9c-{i}"), "namespace": "addons"});
            if i < terminating {
                m["deletionTimestamp"] = json!("2026-11-22T09:00:00Z");
            }
            json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": m})
        })
        .collect();
    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList", "metadata": {"resourceVersion": "30"}, "items": items})
}

/// The pods list a restore makes before it starts: the add-on's own, as metadata.
async fn expect_addon_pods(api: &mut ApiServer, answer: Value) {
    let call = api.expect(Method::GET, PODS, 200, Some(answer)).await;
    assert_eq!(
        call.query.get("labelSelector").map(String::as_str),
        Some(
            "app.kubernetes.io%2Fcomponent%3Daddon%2Capp.kubernetes.io%2Finstance%3Dapi-studio%2Capp.kubernetes.io%2Fname%3Dapi-studio"
        ),
        "{call:#?}"
    );
}

/// A settled ClockifyAddon, its healthy children, and the same scaled to zero.
async fn restore_world() -> (ClockifyAddon, Vec<(Kind, Value)>, Vec<(Kind, Value)>) {
    let mut settled = addon();
    settled.status = Some(settled_status(&settled).await);
    let healthy = stored_children(&settled, true);
    let down = scaled_to_zero(&settled, &healthy);
    (settled, healthy, down)
}

fn with_status(a: &ClockifyAddon, s: &Value) -> ClockifyAddon {
    let mut a = a.clone();
    a.status = Some(serde_json::from_value(s.clone()).unwrap());
    a
}

#[tokio::test]
async fn a_restore_scales_down_restores_migrates_scales_up_and_never_repeats() {
    let (settled, healthy, down) = restore_world().await;
    let mut a = settled.clone();
    a.metadata.generation = Some(2);
    a.spec.restore = Some(Box::new(clockify_operator::crd::RestoreSpec {
        request_id: "incident-42".into(),
        from: "latest".into(),
    }));
    let restore_path = format!(
        "/apis/batch/v1/namespaces/addons/jobs/{}",
        clockify_operator::build::backup::restore_job_name(&a, "incident-42")
    );
    let migrate_path = format!(
        "/apis/batch/v1/namespaces/addons/jobs/{}",
        clockify_operator::build::backup::restore_migration_job_name(&a, "incident-42")
    );
    let status = std::sync::Arc::new(std::sync::Mutex::new(Value::Null));

    // 1. Scale to zero; backups are suspended while the database is replaced.
    let out = status.clone();
    reconcile_in(&a, &healthy, &[], async |api| {
        let d = api.expect_apply(path_of(Kind::Deployment)).await;
        assert_eq!(d.body["spec"]["replicas"], 0);
        let cron = api.expect_apply(path_of(Kind::CronJob)).await;
        assert_eq!(cron.body["spec"]["suspend"], true);
        let ev = api.expect_event("RestoreScalingDown").await;
        assert!(ev.body["note"].as_str().unwrap().contains("incident-42"));
        api.expect_event("NotReady").await;
        *out.lock().unwrap() = api.expect_status().await.body["status"].clone();
    })
    .await;
    let s = status.lock().unwrap().clone();
    assert_eq!(s["restore"]["requestId"], "incident-42");
    assert_eq!(s["restore"]["phase"], "ScalingDown");
    assert_eq!(condition(&s, "Restored")["reason"], "ScalingDown");
    assert_eq!(condition(&s, "Ready")["reason"], "Restoring");
    assert_eq!(condition(&s, "Reconciling")["status"], "True");
    let started_at = s["restore"]["startedAt"].clone();

    // 2. Scaled to zero, but a pod is still terminating (in its grace period it still
    //    writes): the restore waits, and looks again soon.
    let a2 = with_status(&a, &s);
    let (ctx, mut api, mut w) = harness(CapabilityCache::known(true));
    fill(&mut w, &down);
    let task = start(&ctx, a2.clone());
    expect_addon_pods(&mut api, addon_pods(1, 1)).await;
    let st = api.expect_status().await;
    let action = tokio::time::timeout(TIMEOUT, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        action,
        kube::runtime::controller::Action::requeue(Duration::from_secs(2)),
        "pods going away are not watched: the restore looks again"
    );
    let waiting = &st.body["status"]["restore"];
    assert_eq!(waiting["phase"], "ScalingDown");
    assert!(
        waiting["message"]
            .as_str()
            .unwrap()
            .contains("waiting for 1 pod(s) to stop (1 terminating)"),
        "{waiting}"
    );
    assert!(waiting.get("job").is_none());

    // 3. The pods are gone: the restore Job starts.
    let out = status.clone();
    reconcile_in(&a2, &down, &[], async |api| {
        expect_addon_pods(api, addon_pods(0, 0)).await;
        let job = api.expect_create_job(&restore_path).await;
        let c = &job.body["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            c["args"],
            json!([
                "restore",
                "api-studio",
                "--from",
                "latest",
                "--request-id",
                "incident-42",
                "--force"
            ])
        );
        assert_eq!(job.body["spec"]["backoffLimit"], 0);
        assert_eq!(
            job.body["metadata"]["labels"]["app.kubernetes.io/component"],
            "restore"
        );
        let mounts = c["volumeMounts"].as_array().unwrap();
        assert!(
            mounts
                .iter()
                .any(|m| m["mountPath"] == "/backups" && m["readOnly"] == true)
        );
        api.expect_event("RestoreStarted").await;
        *out.lock().unwrap() = api.expect_status().await.body["status"].clone();
    })
    .await;
    let s = status.lock().unwrap().clone();
    assert_eq!(s["restore"]["phase"], "Restoring");
    assert_eq!(s["restore"]["startedAt"], started_at);

    // 3. Restored: the migration Job brings the schema to this version.
    let a3 = with_status(&a, &s);
    let restored = restore_job_stored(&a, "incident-42", false, JobPhase::Succeeded);
    let out = status.clone();
    let restore_job = clockify_operator::build::backup::restore_job_name(&a, "incident-42");
    let report = "restored backup 20261122T020000.512Z-api-studio-x (12 tables) into app";
    reconcile_in(&a3, &down, std::slice::from_ref(&restored), async |api| {
        // What the restore reported, read once.
        expect_pods(api, &restore_job, pods_with(&restore_job, report), 200).await;
        let job = api.expect_create_job(&migrate_path).await;
        assert_eq!(
            job.body["spec"]["template"]["spec"]["containers"][0]["args"],
            json!(["migrate", "api-studio"])
        );
        api.expect_event("RestoreMigrating").await;
        *out.lock().unwrap() = api.expect_status().await.body["status"].clone();
    })
    .await;
    let s = status.lock().unwrap().clone();
    assert_eq!(s["restore"]["phase"], "Migrating");
    assert_eq!(s["restore"]["report"], report);

    // 4. Migrated: the Deployment is applied again, releasing the zero replicas (the
    //    autoscaler takes over).
    let a4 = with_status(&a, &s);
    let migrated = restore_job_stored(&a, "incident-42", true, JobPhase::Succeeded);
    let out = status.clone();
    reconcile_in(
        &a4,
        &down,
        &[restored.clone(), migrated.clone()],
        async |api| {
            // The count goes to a hand-over manager at the minimum before the operator lets
            // go of it: never reset to 1 while the autoscaler catches up.
            api.expect_handover(2).await;
            let d = api.expect_apply(path_of(Kind::Deployment)).await;
            assert!(
                d.body["spec"].get("replicas").is_none(),
                "{:#?}",
                d.body["spec"]
            );
            api.expect_event("RestoreScalingUp").await;
            *out.lock().unwrap() = api.expect_status().await.body["status"].clone();
        },
    )
    .await;
    let s = status.lock().unwrap().clone();
    assert_eq!(s["restore"]["phase"], "ScalingUp");

    // 5. Available again: succeeded, and backups resume on the next pass.
    let a5 = with_status(&a, &s);
    let up = scaled_to_zero(&settled, &healthy)
        .into_iter()
        .zip(healthy.iter())
        .map(|((k, suspended), (_, fine))| {
            (
                k,
                if k == Kind::CronJob {
                    suspended
                } else {
                    fine.clone()
                },
            )
        })
        .collect::<Vec<_>>();
    let out = status.clone();
    reconcile_in(
        &a5,
        &up,
        &[restored.clone(), migrated.clone()],
        async |api| {
            // Backups resume with the outcome.
            let cron = api.expect_apply(path_of(Kind::CronJob)).await;
            assert_eq!(cron.body["spec"]["suspend"], false);
            let ev = api.expect_event("RestoreSucceeded").await;
            assert_eq!(ev.body["type"], "Normal");
            api.expect_event("Ready").await;
            *out.lock().unwrap() = api.expect_status().await.body["status"].clone();
        },
    )
    .await;
    let s = status.lock().unwrap().clone();
    assert_eq!(s["restore"]["phase"], "Succeeded");
    assert!(s["restore"]["finishedAt"].is_string());
    assert_eq!(condition(&s, "Restored")["status"], "True");
    assert_eq!(condition(&s, "Ready")["status"], "True");

    // 6. Recorded as done: the request never runs again, with its Jobs still in the cluster
    //    or gone.
    let a6 = with_status(&a, &s);
    reconcile_in(
        &a6,
        &healthy,
        &[restored.clone(), migrated.clone()],
        async |_api| {},
    )
    .await;
    reconcile_in(&a6, &healthy, &[], async |_api| {}).await;
}

#[tokio::test]
async fn a_failed_restore_scales_back_and_reports_why() {
    let (settled, healthy, down) = restore_world().await;
    let mut a = settled.clone();
    a.metadata.generation = Some(2);
    a.spec.restore = Some(Box::new(clockify_operator::crd::RestoreSpec {
        request_id: "bad-backup".into(),
        from: "20261101T000000.000Z-api-studio".into(),
    }));
    let mut s = settled.status.clone().unwrap();
    s.restore = Some(clockify_operator::crd::RestoreStatus {
        request_id: "bad-backup".into(),
        from: "20261101T000000.000Z-api-studio".into(),
        phase: clockify_operator::crd::RestorePhase::Restoring,
        job: Some(clockify_operator::build::backup::restore_job_name(
            &a,
            "bad-backup",
        )),
        message: None,
        report: None,
        started_at: Some("2026-11-22T09:00:00Z".into()),
        finished_at: None,
    });
    a.status = Some(s);
    let failed = restore_job_stored(&a, "bad-backup", false, JobPhase::Failed);
    let job_name = clockify_operator::build::backup::restore_job_name(&a, "bad-backup");
    let why = "restore failed: the backup is unusable: the SHA-256 of 20261101T000000.000Z-api-studio.dump is 00ff but its manifest records 12ab (corrupted); nothing was restored";
    let status = std::sync::Arc::new(std::sync::Mutex::new(Value::Null));
    let out = status.clone();
    reconcile_in(&a, &down, std::slice::from_ref(&failed), async |api| {
        expect_pods(api, &job_name, pods_with(&job_name, why), 200).await;
        api.expect_handover(2).await;
        let d = api.expect_apply(path_of(Kind::Deployment)).await;
        assert!(d.body["spec"].get("replicas").is_none());
        let cron = api.expect_apply(path_of(Kind::CronJob)).await;
        assert_eq!(cron.body["spec"]["suspend"], false);
        let ev = api.expect_event("RestoreFailed").await;
        assert_eq!(ev.body["type"], "Warning");
        assert!(ev.body["note"].as_str().unwrap().contains("corrupted"));
        *out.lock().unwrap() = api.expect_status().await.body["status"].clone();
    })
    .await;
    let s = status.lock().unwrap().clone();
    assert_eq!(s["restore"]["phase"], "Failed");
    let c = condition(&s, "Restored");
    assert_eq!(
        (c["status"].as_str(), c["reason"].as_str()),
        (Some("False"), Some("RestoreFailed"))
    );
    let msg = c["message"].as_str().unwrap();
    assert!(
        msg.contains("corrupted") && msg.contains("left as it was"),
        "{msg}"
    );
    // Final: with the pods back, the next pass only updates the replica counts; the restore
    // is not touched again (no pods read, no Jobs, the same record).
    let again = with_status(&a, &s);
    let recorded = s["restore"].clone();
    reconcile_in(
        &again,
        &healthy,
        std::slice::from_ref(&failed),
        async |api| {
            let st = api.expect_status().await;
            assert_eq!(st.body["status"]["restore"], recorded);
            assert_eq!(st.body["status"]["readyReplicas"], 2);
        },
    )
    .await;
}

#[tokio::test]
async fn a_rotated_secret_rolls_the_pods_with_one_deployment_apply() {
    let mut a = addon();
    a.status = Some(settled_status(&a).await);
    let (ctx, mut api, mut w) = harness(CapabilityCache::known(true));
    let children = stored_children(&a, true);
    fill(&mut w, &children);
    let hash_of = |v: &Value| {
        v["spec"]["template"]["metadata"]["annotations"]["clockify-addons.io/secrets-hash"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let before = hash_of(
        &children
            .iter()
            .find(|(k, _)| *k == Kind::Deployment)
            .unwrap()
            .1,
    );
    // The first pass notes which Secrets the object reads: nothing to write.
    finish(start(&ctx, a.clone()), &mut api).await;

    // The database password rotates: the watch brings this ClockifyAddon back.
    let touched = ctx
        .stores
        .secrets
        .insert(&secret("api-studio-db-app", &[("uri", "v2")]));
    assert_eq!(
        touched,
        vec![("addons".to_owned(), "api-studio".to_owned())]
    );
    // A Secret nothing reads changes: nothing to look at.
    assert!(
        ctx.stores
            .secrets
            .insert(&secret("unrelated", &[("uri", "v2")]))
            .is_empty()
    );
    let task = start(&ctx, a.clone());
    let deploy = api.expect_apply(path_of(Kind::Deployment)).await;
    let after = hash_of(&deploy.body);
    assert_ne!(after, before, "a new hash rolls the pods");
    let text = serde_json::to_string(&deploy.body).unwrap();
    assert!(!text.contains("\"v2\""), "never the value itself");
    // Whatever else the pass says, it writes no other child.
    loop {
        let next = tokio::time::timeout(Duration::from_millis(500), api.next()).await;
        let Ok((call, send)) = next else { break };
        assert!(
            call.path.ends_with("/status") || call.path.ends_with("/events"),
            "unexpected write: {} {}",
            call.method,
            call.path
        );
        send.send_response(
            Response::builder()
                .status(200)
                .body(Body::from(serde_json::to_vec(&call.body).unwrap()))
                .unwrap(),
        );
    }
    finish(task, &mut api).await;
    let writes = ctx.metrics.render();
    assert!(
        writes.contains(r#"kind="Deployment",verb="apply"} 1"#),
        "{writes}"
    );
}

#[tokio::test]
async fn a_missing_secret_or_key_stalls_naming_it_and_applies_nothing() {
    let mut a = addon();
    a.status = Some(settled_status(&a).await);
    for (secret_now, expect) in [
        (
            None,
            "Secret addons/api-studio-keys named by spec.secrets.tokenEncryptionKeyRef does not exist",
        ),
        (
            Some(secret("api-studio-keys", &[("other", "x")])),
            "Secret addons/api-studio-keys has no key \"token-key\", which spec.secrets.tokenEncryptionKeyRef names",
        ),
    ] {
        let (ctx, mut api, mut w) = harness(CapabilityCache::known(true));
        fill(&mut w, &stored_children(&a, true));
        let keys = secret("api-studio-keys", &[]);
        ctx.stores.secrets.remove(&keys);
        if let Some(s) = &secret_now {
            ctx.stores.secrets.insert(s);
        }
        let task = start(&ctx, a.clone());
        let event = api.expect_event("SecretMissing").await;
        assert!(
            event.body["note"].as_str().unwrap().contains(expect),
            "{:#}",
            event.body
        );
        api.expect_event("NotReady").await;
        let status = api.expect_status().await;
        let s = &status.body["status"];
        assert_eq!(condition(s, "Stalled")["status"], "True");
        assert_eq!(condition(s, "Stalled")["reason"], "SecretMissing");
        assert!(
            condition(s, "Stalled")["message"]
                .as_str()
                .unwrap()
                .starts_with(expect),
            "{s:#}"
        );
        assert_eq!(condition(s, "Ready")["status"], "False");
        finish(task, &mut api).await;
        // The Secret arrives: the watch brings the object back, and the pass goes through.
        let touched = ctx
            .stores
            .secrets
            .insert(&secret("api-studio-keys", &[("token-key", "v1")]));
        assert_eq!(
            touched,
            vec![("addons".to_owned(), "api-studio".to_owned())]
        );
    }
}
