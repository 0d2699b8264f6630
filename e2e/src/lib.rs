//! The e2e harness: a fresh namespace on the cluster of `KUBECONFIG`, the operator running in
//! the test process and watching it, the Secrets the examples need, and stand-ins for the parts
//! of a cluster that may be missing (see e2e/README.md):
//!
//! - **bare** (API server and etcd only): nothing runs Jobs, moves Deployments or collects
//!   garbage, so the suite writes Job and Deployment status itself and deletes children once it
//!   has checked the owner references the collector would follow;
//! - **controllers** (with kube-controller-manager, without kubelet): the real Deployment,
//!   ReplicaSet, Job, CronJob, HPA, garbage and PVC-protection controllers run; no pod ever
//!   runs, so the suite plays the kubelet: it marks pods Running and Ready, and ends Job pods
//!   with the outcome and termination message a test asks for.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clockify_operator::controller::{self, Options, Scope};
use clockify_operator::crd::{ClockifyAddon, ImageSpec};
use clockify_operator::metrics::Metrics;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// How long a step may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(120);

/// Waits until `f` gives something, or fails the test with `what`.
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Which control plane the suite found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// API server and etcd only.
    Bare,
    /// With kube-controller-manager, no kubelet: the suite plays the kubelet.
    Controllers,
    /// A cluster with nodes: pods really run (`E2E_IMAGE`, `E2E_DATABASE_URL`); outcomes
    /// cannot be forced.
    Full,
}

/// How the suite ends a Job (as the Job controller would on a bare control plane, or as the
/// kubelet would for its pod with controllers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub succeeded: bool,
    /// The pod's termination message (controllers only; a bare control plane has no pods).
    pub message: String,
}

impl Outcome {
    pub fn ok(message: &str) -> Self {
        Self {
            succeeded: true,
            message: message.to_owned(),
        }
    }
    pub fn failed(message: &str) -> Self {
        Self {
            succeeded: false,
            message: message.to_owned(),
        }
    }
}

/// What the stand-in kubelet does.
#[derive(Debug, Default)]
pub struct Kubelet {
    /// Job name -> how its pods end. Pods of other Jobs stay pending.
    pub jobs: Mutex<BTreeMap<String, Outcome>>,
    /// While true, add-on pods are left unready.
    pub hold: AtomicBool,
}

/// Only one test drives the cluster at a time: timings (a child back within 2 s) are measured.
static CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One test's world: its namespace, its operator, its stand-ins.
pub struct World {
    pub client: Client,
    pub ns: String,
    pub mode: Mode,
    /// The operator's metrics (API writes, reconciles).
    pub metrics: Metrics,
    pub kubelet: Arc<Kubelet>,
    stop: CancellationToken,
    operator: Option<tokio::task::JoinHandle<()>>,
    started: Instant,
    name: String,
    _guard: tokio::sync::MutexGuard<'static, ()>,
}

/// A minimal ServiceMonitor CRD (the Prometheus Operator's group, version and kind; any
/// content), so the operator discovers the API and manages ServiceMonitors.
fn service_monitor_crd() -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
        "spec": {"group": "monitoring.coreos.com", "scope": "Namespaced",
            "names": {"plural": "servicemonitors", "singular": "servicemonitor", "kind": "ServiceMonitor", "listKind": "ServiceMonitorList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}})
}

/// The Gateway API's HTTPRoute CRD, so the operator routes on Gateways: the published CRDs
/// (their schema, defaults and CEL rules) from `E2E_GATEWAY_API_CRDS` (a directory of their
/// YAML files, e.g. gateway-api's config/crd/standard), else a minimal one (any content).
fn gateway_api_crds() -> Vec<Value> {
    if let Some(dir) = std::env::var_os("E2E_GATEWAY_API_CRDS") {
        let mut out = Vec::new();
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .expect("E2E_GATEWAY_API_CRDS: a directory")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).expect("a CRD file");
            for doc in serde_norway::Deserializer::from_str(&text) {
                let v = Value::deserialize(doc).expect("CRD YAML");
                if v["kind"] == "CustomResourceDefinition" {
                    out.push(v);
                }
            }
        }
        assert!(
            out.iter()
                .any(|c| c["metadata"]["name"] == "httproutes.gateway.networking.k8s.io"),
            "E2E_GATEWAY_API_CRDS holds no HTTPRoute CRD"
        );
        return out;
    }
    vec![
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "httproutes.gateway.networking.k8s.io"},
        "spec": {"group": "gateway.networking.k8s.io", "scope": "Namespaced",
            "names": {"plural": "httproutes", "singular": "httproute", "kind": "HTTPRoute", "listKind": "HTTPRouteList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}),
    ]
}

/// KEDA's ScaledObject CRD: the published one from `E2E_KEDA_CRDS` (a directory holding
/// keda.sh_scaledobjects.yaml, as in kedacore/keda's config/crd/bases), else a minimal one.
fn keda_crd() -> Value {
    if let Some(dir) = std::env::var_os("E2E_KEDA_CRDS") {
        let path = std::path::Path::new(&dir).join("keda.sh_scaledobjects.yaml");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("E2E_KEDA_CRDS: {}: {e}", path.display()));
        return serde_norway::from_str(&text).expect("the ScaledObject CRD");
    }
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "scaledobjects.keda.sh"},
        "spec": {"group": "keda.sh", "scope": "Namespaced",
            "names": {"plural": "scaledobjects", "singular": "scaledobject", "kind": "ScaledObject", "listKind": "ScaledObjectList"},
            "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}})
}

/// Deletes a CRD (and so every object of it) and waits until the API is gone.
async fn remove_crd(client: &Client, name: &str) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    if crds.get_opt(name).await.ok().flatten().is_none() {
        return;
    }
    let _ = crds.delete(name, &DeleteParams::background()).await;
    eventually(&format!("the CRD {name} gone"), || async {
        crds.get_opt(name).await.ok()?.is_none().then_some(())
    })
    .await;
}

async fn install_crd(client: &Client, crd: Value) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = crd["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    crds.patch(
        &name,
        &PatchParams::apply("clockify-e2e").force(),
        &Patch::Apply(&crd),
    )
    .await
    .unwrap_or_else(|e| panic!("install the CRD {name}: {e}"));
    eventually(&format!("the CRD {name} to be established"), || async {
        let c = crds.get(&name).await.ok()?;
        c.status?
            .conditions?
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
            .then_some(())
    })
    .await;
}

impl World {
    /// None without `KUBECONFIG` (the test then says it skipped).
    pub async fn start(name: &str) -> Option<World> {
        Self::start_with(name, false).await
    }

    /// As [`World::start`]; with `keda`, the cluster also serves KEDA's ScaledObject (the
    /// published CRD from `E2E_KEDA_CRDS`, else a minimal one) until the next test starts
    /// without it (no KEDA controller runs: nothing scales on it).
    pub async fn start_with(name: &str, keda: bool) -> Option<World> {
        if std::env::var_os("KUBECONFIG").is_none() {
            eprintln!(
                "skipped: KUBECONFIG is not set, so there is no cluster to test against (see e2e/README.md)"
            );
            return None;
        }
        let guard = CLUSTER.lock().await;
        if let Ok(filter) = std::env::var("E2E_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_writer(std::io::stderr)
                .try_init();
        }
        rustls::crypto::ring::default_provider()
            .install_default()
            .ok();
        let client = Client::try_default()
            .await
            .expect("a client from KUBECONFIG");
        let crd: Value = serde_norway::from_str(include_str!(
            "../../crds/clockify-addons.io_clockifyaddons.yaml"
        ))
        .expect("the committed CRD");
        install_crd(&client, crd).await;
        install_crd(&client, service_monitor_crd()).await;
        for crd in gateway_api_crds() {
            install_crd(&client, crd).await;
        }
        if keda {
            install_crd(&client, keda_crd()).await;
        } else {
            remove_crd(&client, "scaledobjects.keda.sh").await;
        }
        // The PriorityClass an example's pods ask for (a cluster has it before such an add-on).
        let _ = Api::<k8s_openapi::api::scheduling::v1::PriorityClass>::all(client.clone())
            .patch(
                "addons-critical",
                &PatchParams::apply("clockify-e2e").force(),
                &Patch::Apply(
                    json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                    "metadata": {"name": "addons-critical"}, "value": 1000000}),
                ),
            )
            .await;

        let ns = format!("e2e-{name}-{:05x}", rand::random::<u32>() & 0xf_ffff);
        let namespaces: Api<Namespace> = Api::all(client.clone());
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}})).expect("namespace"),
            )
            .await
            .expect("namespace");
        // kube-controller-manager's ServiceAccount controller gives every namespace a default
        // ServiceAccount within a moment; a bare control plane never does.
        let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
        let mut mode = Mode::Bare;
        for _ in 0..30 {
            if sas.get_opt("default").await.ok().flatten().is_some() {
                mode = Mode::Controllers;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let nodes = Api::<k8s_openapi::api::core::v1::Node>::all(client.clone())
            .list(&ListParams::default().limit(1))
            .await
            .map(|l| !l.items.is_empty())
            .unwrap_or(false);
        if nodes {
            mode = Mode::Full;
            if std::env::var_os("E2E_IMAGE").is_none() {
                eprintln!(
                    "skipped: this cluster has nodes, so its Jobs and pods really run: set E2E_IMAGE and E2E_DATABASE_URL (see e2e/README.md)"
                );
                return None;
            }
        }
        eprintln!("[{name}] namespace {ns}, control plane: {mode:?}");

        let stop = CancellationToken::new();
        let metrics = Metrics::new();
        let opts = Options {
            scope: Scope::Namespace(ns.clone()),
            concurrency: 4,
            lease: Some((ns.clone(), "clockify-operator".into())),
            identity: format!("e2e-{name}"),
        };
        let operator = tokio::spawn(controller::run(
            client.clone(),
            opts,
            metrics.clone(),
            Arc::new(AtomicBool::new(false)),
            stop.clone(),
        ));
        let kubelet = Arc::new(Kubelet::default());
        if mode == Mode::Controllers {
            tokio::spawn(play_kubelet(
                client.clone(),
                ns.clone(),
                kubelet.clone(),
                stop.clone(),
            ));
        }
        Some(World {
            client,
            ns,
            mode,
            metrics,
            kubelet,
            stop,
            operator: Some(operator),
            started: Instant::now(),
            name: name.to_owned(),
            _guard: guard,
        })
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn addons(&self) -> Api<ClockifyAddon> {
        self.api()
    }

    /// The shipped examples, in this namespace; with `E2E_IMAGE` they run that image.
    pub fn examples(&self) -> Vec<ClockifyAddon> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests/examples");
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .expect("manifests/examples")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.file_name().is_some_and(|n| n != "kustomization.yaml"))
            .collect();
        paths.sort();
        paths
            .into_iter()
            .map(|path| {
                let text = std::fs::read_to_string(&path).expect("example");
                let mut a: ClockifyAddon = serde_norway::from_str(&text).expect("example");
                a.metadata.namespace = Some(self.ns.clone());
                if let Ok(image) = std::env::var("E2E_IMAGE") {
                    let (repository, tag) =
                        image.rsplit_once(':').unwrap_or((image.as_str(), "latest"));
                    a.spec.image = Some(Box::new(ImageSpec {
                        repository: Some(repository.into()),
                        tag: Some(tag.into()),
                        ..Default::default()
                    }));
                }
                a
            })
            .collect()
    }

    /// One example by name.
    pub fn example(&self, name: &str) -> ClockifyAddon {
        self.examples()
            .into_iter()
            .find(|a| a.name_any() == name)
            .unwrap_or_else(|| panic!("no example named {name}"))
    }

    /// The Secrets the ClockifyAddons reference (database URL from `E2E_DATABASE_URL`).
    pub async fn secrets(&self, addons: &[ClockifyAddon]) {
        let api: Api<Secret> = self.api();
        let db = std::env::var("E2E_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://unused@db.invalid/x".into());
        let redis =
            std::env::var("E2E_REDIS_URL").unwrap_or_else(|_| "redis://unused.invalid:6379".into());
        let mut by_secret: BTreeMap<String, serde_json::Map<String, Value>> = BTreeMap::new();
        for a in addons {
            let mut wanted = vec![
                (
                    a.spec.database.url_secret_ref.name.clone(),
                    a.spec.database.url_secret_ref.key.clone(),
                    db.clone(),
                ),
                (
                    a.spec.secrets.token_encryption_key_ref.name.clone(),
                    a.spec.secrets.token_encryption_key_ref.key.clone(),
                    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into(),
                ),
            ];
            if let Some(r) = &a.spec.secrets.redis_url_ref {
                wanted.push((r.name.clone(), r.key.clone(), redis.clone()));
            }
            if let Some(s3) = a
                .spec
                .backup
                .as_ref()
                .and_then(|b| b.destination.s3.as_ref())
            {
                for key in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
                    let Some(creds) = &s3.credentials_secret_ref else {
                        continue;
                    };
                    wanted.push((creds.name.clone(), key.to_owned(), "e2e-unused".to_owned()));
                }
            }
            for (name, key, value) in wanted {
                by_secret.entry(name).or_default().insert(key, value.into());
            }
        }
        // One apply per Secret with all its keys (an apply owns exactly what it sends).
        for (name, data) in by_secret {
            let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data});
            api.patch(
                &name,
                &PatchParams::apply("clockify-e2e").force(),
                &Patch::Apply(&secret),
            )
            .await
            .expect("secret");
        }
    }

    /// Creates the ClockifyAddons (and their Secrets).
    pub async fn create(&self, addons: &[ClockifyAddon]) {
        self.secrets(addons).await;
        for a in addons {
            self.addons()
                .create(&PostParams::default(), a)
                .await
                .unwrap_or_else(|e| panic!("create {}: {e}", a.name_any()));
        }
    }

    /// Merge-patches a ClockifyAddon.
    pub async fn patch_addon(&self, name: &str, patch: Value) -> ClockifyAddon {
        self.addons()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap_or_else(|e| panic!("patch {name}: {e}"))
    }

    /// The ClockifyAddon now.
    pub async fn addon(&self, name: &str) -> ClockifyAddon {
        self.addons().get(name).await.expect("the ClockifyAddon")
    }

    /// Ends a Job as the test says: on a bare control plane by writing its status, with
    /// controllers by ending its pods (the kubelet stand-in), so the Job controller decides.
    pub async fn finish_job(&self, name: &str, outcome: Outcome) {
        match self.mode {
            // The Job really runs.
            Mode::Full => {}
            Mode::Bare => {
                write_job_status(&self.api(), name, outcome.succeeded).await;
            }
            Mode::Controllers => {
                if let Ok(mut jobs) = self.kubelet.jobs.lock() {
                    jobs.insert(name.to_owned(), outcome);
                }
            }
        }
    }

    /// Finishes a Job once it exists, successfully, with a termination message fit for it.
    pub async fn complete_job(&self, name: &str) {
        let message = if name.contains("-backup-") {
            format!("backup 20261202T000000.000Z-{name} stored: 52311 bytes")
        } else if name.contains("-restore-") {
            "restored backup 20261202T000000.000Z-e2e (3 tables) into db".to_owned()
        } else {
            "migrations applied".to_owned()
        };
        self.job(name).await;
        self.finish_job(name, Outcome::ok(&message)).await;
    }

    /// A Job, once it exists.
    pub async fn job(&self, name: &str) -> Job {
        let jobs: Api<Job> = self.api();
        eventually(&format!("Job {name}"), || async {
            jobs.get_opt(name).await.ok().flatten()
        })
        .await
    }

    /// The migration Job of `addon` for `version`, once it exists.
    pub async fn migration_job(&self, addon: &str, version: &str) -> Job {
        let jobs: Api<Job> = self.api();
        eventually(
            &format!("the migration Job of {addon} for {version}"),
            || async {
                let list = jobs
                    .list(&ListParams::default().labels(&format!(
                        "app.kubernetes.io/instance={addon},app.kubernetes.io/component=migration"
                    )))
                    .await
                    .ok()?;
                list.items.into_iter().find(|j| {
                    j.annotations()
                        .get("clockify-addons.io/version")
                        .map(String::as_str)
                        == Some(version)
                })
            },
        )
        .await
    }

    /// Plays the Deployment controller where none runs (bare): every replica of the current
    /// generation updated and available. With controllers this is the kubelet stand-in's job.
    /// Whether the suite decides how Jobs end and when pods are ready.
    pub fn controls_pods(&self) -> bool {
        self.mode != Mode::Full
    }

    pub async fn settle(&self, name: &str) {
        if self.mode == Mode::Bare {
            write_deployment_status(&self.api(), name, true, true).await;
        }
    }

    /// Waits until the ClockifyAddon is Ready at `version` (settling its Deployment meanwhile
    /// on a bare control plane).
    pub async fn ready(&self, name: &str, version: &str) -> ClockifyAddon {
        eventually(&format!("{name} Ready at {version}"), || async {
            self.settle(name).await;
            let a = self.addons().get(name).await.ok()?;
            (condition(&a, "Ready").as_deref() == Some("True")
                && a.status.as_ref()?.current_version.as_deref() == Some(version)
                && a.status.as_ref()?.observed_generation == a.metadata.generation)
                .then_some(a)
        })
        .await
    }

    /// Takes the ClockifyAddons through their first install: migration Jobs completed,
    /// Deployments settled, all Ready.
    pub async fn install(&self, addons: &[ClockifyAddon]) {
        for a in addons {
            let job = self.migration_job(&a.name_any(), &a.spec.version).await;
            self.complete_job(&job.name_any()).await;
        }
        for a in addons {
            self.ready(&a.name_any(), &a.spec.version).await;
        }
    }

    /// The operator's API writes so far (every kind and verb).
    pub fn writes(&self) -> f64 {
        self.metric_sum("clockify_operator_api_writes_total")
    }

    /// The operator's API writes of one kind so far.
    pub fn writes_of(&self, kind: &str) -> f64 {
        self.metric_sum(&format!(
            "clockify_operator_api_writes_total{{kind=\"{kind}\""
        ))
    }

    /// Reconciles so far.
    pub fn reconciles(&self) -> f64 {
        self.metric_sum("clockify_operator_reconciles_total")
    }

    /// The operator's writes so far, by kind and verb (for messages).
    pub fn writes_by_kind(&self) -> String {
        self.metrics
            .render()
            .lines()
            .filter(|l| l.starts_with("clockify_operator_api_writes_total{"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn metric_sum(&self, name: &str) -> f64 {
        self.metrics
            .render()
            .lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
            .sum()
    }

    /// The operator's Events in the namespace: (reason, note), oldest first, each as many times
    /// as it happened.
    pub async fn events(&self) -> Vec<(String, String)> {
        let api: Api<Event> = self.api();
        let mut list: Vec<Event> = api
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e.reporting_controller.as_deref() == Some("clockify-operator"))
            .collect();
        list.sort_by_key(|e| e.metadata.creation_timestamp.clone().map(|t| t.0));
        // An Event repeated (a series) counts as often as it happened.
        list.into_iter()
            .flat_map(|e| {
                let n = e.series.as_ref().map_or(1, |s| s.count.max(1)) as usize;
                std::iter::repeat_n(
                    (e.reason.unwrap_or_default(), e.note.unwrap_or_default()),
                    n,
                )
            })
            .collect()
    }

    /// Waits until the operator has run `n` more reconciles than `since` and then been idle
    /// for a second (no reconcile).
    pub async fn quiet_after(&self, since: f64, n: f64) {
        eventually("the operator to reconcile and go quiet", || async {
            let before = self.reconciles();
            if before < since + n {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(1000)).await;
            (self.reconciles() == before).then_some(())
        })
        .await;
    }

    /// Prints a figure for the closing note, prefixed so a reader can collect them.
    pub fn figure(&self, what: &str) {
        eprintln!("E2E-FIGURE [{:?}] {}: {what}", self.mode, self.name);
    }
}

impl World {
    /// Stops the operator (it releases its Lease), deletes the namespace (a bare control plane
    /// never finishes deleting it), and prints the test's wall time.
    pub async fn finish(mut self) {
        self.stop.cancel();
        if let Some(op) = self.operator.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), op).await;
        }
        let _ = Api::<Namespace>::all(self.client.clone())
            .delete(&self.ns, &DeleteParams::background())
            .await;
        self.figure(&format!(
            "wall time {:.1} s",
            self.started.elapsed().as_secs_f64()
        ));
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // A failed test: stop the operator at least.
        self.stop.cancel();
        if let Some(op) = self.operator.take() {
            op.abort();
        }
    }
}

/// The `kubectl-clockify` binary, built once by cargo for the suite (the tests run the real
/// program, as a user would).
pub fn plugin_binary() -> &'static std::path::Path {
    static PATH: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let out =
            std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args([
                    "build",
                    "-q",
                    "-p",
                    "clockify-operator",
                    "--bin",
                    "kubectl-clockify",
                    "--message-format=json",
                ])
                .output()
                .expect("run cargo build");
        assert!(
            out.status.success(),
            "building kubectl-clockify: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|m| m["target"]["name"] == "kubectl-clockify")
            .find_map(|m| m["executable"].as_str().map(std::path::PathBuf::from))
            .expect("cargo names the kubectl-clockify executable")
    })
}

/// What a run of `kubectl clockify` gave.
#[derive(Debug)]
pub struct PluginRun {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl World {
    /// Starts `kubectl clockify ARGS -n <the test's namespace>` against the cluster.
    pub fn plugin(&self, args: &[&str]) -> tokio::task::JoinHandle<PluginRun> {
        let mut cmd = tokio::process::Command::new(plugin_binary());
        cmd.args(args).args(["-n", &self.ns]).kill_on_drop(true);
        tokio::spawn(async move {
            let out = tokio::time::timeout(WAIT, cmd.output())
                .await
                .expect("kubectl clockify finished in time")
                .expect("run kubectl-clockify");
            PluginRun {
                ok: out.status.success(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        })
    }

    /// Ends a Job's pod with `outcome` in every mode: on a bare control plane the suite also
    /// creates the pod, from the Job's template, as the Job controller would.
    pub async fn finish_job_with_pod(&self, name: &str, outcome: Outcome) {
        if self.mode == Mode::Bare {
            let job = self.job(name).await;
            let template = job.spec.clone().unwrap_or_default().template;
            let mut meta = template.metadata.unwrap_or_default();
            meta.name = Some(format!("{name}-e2e"));
            meta.labels
                .get_or_insert_default()
                .insert("batch.kubernetes.io/job-name".into(), name.to_owned());
            meta.owner_references = Some(vec![
                k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                    api_version: "batch/v1".into(),
                    kind: "Job".into(),
                    name: name.to_owned(),
                    uid: job.metadata.uid.clone().unwrap_or_default(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                },
            ]);
            let pod = Pod {
                metadata: meta,
                spec: template.spec,
                ..Pod::default()
            };
            let pods: Api<Pod> = self.api();
            pods.create(&PostParams::default(), &pod)
                .await
                .expect("create the Job's pod");
            let container = pod
                .spec
                .as_ref()
                .map(|s| s.containers[0].clone())
                .unwrap_or_default();
            let now = now();
            let code = if outcome.succeeded { 0 } else { 1 };
            let status = json!({"status": {"phase": if outcome.succeeded { "Succeeded" } else { "Failed" },
                "startTime": now,
                "containerStatuses": [{"name": container.name, "image": container.image, "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": code, "reason": if outcome.succeeded { "Completed" } else { "Error" },
                        "message": outcome.message, "startedAt": now, "finishedAt": now}}}]}});
            pods.patch_status(
                &format!("{name}-e2e"),
                &PatchParams::default(),
                &Patch::Merge(&status),
            )
            .await
            .expect("write the pod's status");
        }
        self.finish_job(name, outcome).await;
    }
}

/// A condition's status.
pub fn condition(a: &ClockifyAddon, t: &str) -> Option<String> {
    a.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| c.status.clone())
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Writes a Job's final status as the Job controller would.
pub async fn write_job_status(jobs: &Api<Job>, name: &str, succeeded: bool) {
    let now = now();
    let status = if succeeded {
        json!({"status": {"startTime": now, "completionTime": now, "succeeded": 1,
            "conditions": [
                {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached", "message": "written by the e2e suite", "lastProbeTime": now, "lastTransitionTime": now},
                {"type": "Complete", "status": "True", "reason": "CompletionsReached", "message": "written by the e2e suite", "lastProbeTime": now, "lastTransitionTime": now}]}})
    } else {
        json!({"status": {"startTime": now, "failed": 1,
            "conditions": [
                {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded", "message": "written by the e2e suite", "lastProbeTime": now, "lastTransitionTime": now},
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "written by the e2e suite", "lastProbeTime": now, "lastTransitionTime": now}]}})
    };
    jobs.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("write Job status");
}

/// Writes a Deployment's status as its controller would: `observed` (the current generation
/// observed) and `done` (every replica updated and available).
pub async fn write_deployment_status(
    deploys: &Api<Deployment>,
    name: &str,
    observed: bool,
    done: bool,
) {
    let Ok(d) = deploys.get(name).await else {
        return;
    };
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let generation = d.metadata.generation.unwrap_or(1);
    let observed_generation = if observed { generation } else { generation - 1 };
    let (updated, available) = if done { (replicas, replicas) } else { (0, 0) };
    let status = json!({"status": {
        "observedGeneration": observed_generation, "replicas": replicas, "updatedReplicas": updated,
        "readyReplicas": available, "availableReplicas": available,
        "conditions": [
            {"type": "Available", "status": if done { "True" } else { "False" }, "reason": "MinimumReplicasAvailable", "message": "written by the e2e suite"},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": "written by the e2e suite"}]}});
    deploys
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("write Deployment status");
}

/// The kubelet stand-in: add-on pods Running and Ready (unless held); Job pods ended as the
/// test asked, with their termination message.
async fn play_kubelet(client: Client, ns: String, kubelet: Arc<Kubelet>, stop: CancellationToken) {
    let pods: Api<Pod> = Api::namespaced(client, &ns);
    let mut done: std::collections::HashSet<String> = Default::default();
    while !stop.is_cancelled() {
        let list = pods.list(&ListParams::default()).await.map(|l| l.items);
        for p in list.unwrap_or_default() {
            let uid = p.metadata.uid.clone().unwrap_or_default();
            if done.contains(&uid) || p.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let labels = p.labels();
            let container = p
                .spec
                .as_ref()
                .and_then(|s| s.containers.first())
                .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
                .unwrap_or_default();
            let now = now();
            let status = if let Some(job) = labels.get("batch.kubernetes.io/job-name") {
                let outcome = kubelet.jobs.lock().ok().and_then(|j| j.get(job).cloned());
                let Some(o) = outcome else { continue };
                json!({"status": {"phase": if o.succeeded { "Succeeded" } else { "Failed" },
                    "startTime": now,
                    "containerStatuses": [{"name": container.0, "image": container.1, "imageID": "", "ready": false, "restartCount": 0,
                        "state": {"terminated": {"exitCode": if o.succeeded { 0 } else { 1 }, "reason": if o.succeeded { "Completed" } else { "Error" },
                            "message": o.message, "startedAt": now, "finishedAt": now}}}]}})
            } else if labels
                .get("app.kubernetes.io/component")
                .map(String::as_str)
                == Some("addon")
            {
                if kubelet.hold.load(std::sync::atomic::Ordering::Relaxed) {
                    continue;
                }
                json!({"status": {"phase": "Running", "startTime": now,
                    "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now},
                                   {"type": "ContainersReady", "status": "True", "lastTransitionTime": now}],
                    "containerStatuses": [{"name": container.0, "image": container.1, "imageID": "", "ready": true, "started": true, "restartCount": 0,
                        "state": {"running": {"startedAt": now}}}]}})
            } else {
                continue;
            };
            if pods
                .patch_status(
                    &p.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&status),
                )
                .await
                .is_ok()
            {
                done.insert(uid);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
