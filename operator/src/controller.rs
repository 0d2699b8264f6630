//! The runtime: watches (ClockifyAddons and every child kind, filtered on the managed-by
//! label), the controller with bounded concurrency, leader election, the admin port, and
//! graceful shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::core::DeserializeGuard;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::events::Reporter;

use crate::events::Recorder;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::cache::{Feeder, HttpRoute, MetaStore, ScaledObject, ServiceMonitor, Slim, Stores};
use crate::crd::ClockifyAddon;
use crate::leader::{LeaderElector, Tenure};
use crate::meta::{MANAGED_SELECTOR, MANAGER};
use crate::metrics::Metrics;
use crate::reconcile::{CapabilityCache, Context, error_policy, reconcile};
use crate::secrets::SecretStore;
use crate::views::{DeploymentState, JobRecord};

/// Objects per page of a watch's initial list: small pages keep the transient memory of a
/// start-up (every object of a page decoded at once, managedFields included) low.
const PAGE_SIZE: u32 = 100;

/// Where the operator looks.
#[derive(Debug, Clone)]
pub enum Scope {
    Cluster,
    /// Only this namespace: the operator then needs only a Role there.
    Namespace(String),
}

impl Scope {
    pub fn api<K>(&self, client: Client) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
    {
        match self {
            Self::Cluster => Api::all(client),
            Self::Namespace(ns) => Api::namespaced(client, ns),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub scope: Scope,
    pub concurrency: u16,
    /// None: no leader election (a single replica).
    pub lease: Option<(String, String)>,
    pub identity: String,
}

/// A reflector over one child kind, filtered on the managed-by label, trimmed by `trim`
/// (metadata only for most kinds: see [`crate::cache`]). Deletions trigger a reconcile too, so a
/// child deleted by hand is back at once.
fn child_watch<K>(
    api: Api<K>,
) -> (
    Store<K>,
    impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(
        api,
        watcher::Config::default()
            .labels(MANAGED_SELECTOR)
            .page_size(PAGE_SIZE),
    )
    .default_backoff()
    .reflect(writer)
    .touched_objects();
    (reader, stream)
}

/// A ClockifyAddon to reconcile.
type AddonRef = ObjectRef<DeserializeGuard<ClockifyAddon>>;

/// A namespaced kind the operator watches.
trait Watched:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + Clone
    + DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
}

impl<K> Watched for K where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
{
}

/// The ClockifyAddons a watch event touched, as (namespace, name), to reconcile.
fn addon_refs(touched: Vec<(String, String)>) -> impl futures::Stream<Item = AddonRef> {
    futures::stream::iter(
        touched
            .into_iter()
            .map(|(ns, name)| ObjectRef::new(&name).within(&ns)),
    )
}

/// A metadata-only watch of a child kind into a [`MetaStore`]; yields the ClockifyAddons whose
/// children it touched (deletions included).
fn meta_watch<K>(
    api: Api<Slim<K>>,
) -> (
    MetaStore,
    impl futures::Stream<Item = AddonRef> + Send + 'static,
)
where
    K: Watched,
{
    let store = MetaStore::default();
    let mut feeder = Feeder::new(store.clone());
    let stream = watcher(
        api,
        watcher::Config::default()
            .labels(MANAGED_SELECTOR)
            .page_size(PAGE_SIZE),
    )
    .default_backoff()
    .map(move |event| match event {
        Ok(event) => feeder.apply(event),
        Err(e) => {
            tracing::debug!(kind = K::kind(&()).as_ref(), error = %e, "child watch");
            Vec::new()
        }
    })
    .flat_map(addon_refs);
    (store, stream)
}

/// The watch of an optional kind (ServiceMonitor, HTTPRoute), started once the cluster serves
/// its API (`served` reads the discovery answer, looked up every minute until then); its store
/// stays unready meanwhile and reconciles ask the API server instead.
fn optional_watch<K>(
    client: &Client,
    scope: &Scope,
    capabilities: Arc<CapabilityCache>,
    served: fn(&crate::plan::Capabilities) -> bool,
) -> (
    MetaStore,
    impl futures::Stream<Item = AddonRef> + Send + 'static,
)
where
    K: Watched,
{
    let api = scope.api::<Slim<K>>(client.clone());
    let (store, stream) = meta_watch::<K>(api);
    let client = client.clone();
    let stream = futures::stream::once(async move {
        loop {
            match capabilities.get(&client).await {
                Ok(c) if served(&c) => break,
                Ok(_) => {}
                Err(e) => tracing::debug!(kind = K::kind(&()).as_ref(), error = %e, "discovery"),
            }
            tokio::time::sleep(crate::capabilities::CAPABILITY_TTL).await;
        }
        stream
    })
    .flatten();
    (store, stream)
}

/// The watch of every Secret in scope (but Helm's releases and ServiceAccount tokens), kept as
/// digests ([`crate::secrets`]); yields the ClockifyAddons whose referenced Secrets changed.
fn secret_watch(
    api: Api<Secret>,
    store: SecretStore,
) -> impl futures::Stream<Item = AddonRef> + Send + 'static {
    watcher(
        api,
        watcher::Config::default()
            .fields(crate::secrets::FIELD_SELECTOR)
            .page_size(PAGE_SIZE),
    )
    .default_backoff()
    .map(move |event| match event {
        Ok(event) => store.apply(event),
        Err(e) => {
            tracing::debug!(error = %e, "Secret watch");
            Vec::new()
        }
    })
    .flat_map(addon_refs)
}

/// The ClockifyAddon a Deployment or Job belongs to: its controller, or (a scheduled backup's
/// Job, owned by the CronJob) its instance label.
fn addon_of_deployment(d: DeploymentState) -> Option<AddonRef> {
    let ns = d.metadata.namespace.clone()?;
    Some(ObjectRef::new(d.record.addon()?).within(&ns))
}

fn addon_of_job(j: JobRecord) -> Option<AddonRef> {
    let ns = j.metadata.namespace.clone()?;
    Some(ObjectRef::new(j.record.addon()?).within(&ns))
}

/// Runs the controller until `stop` is cancelled; marks `ready` once every cache is synced.
pub async fn run_controller(
    client: Client,
    opts: &Options,
    metrics: Metrics,
    ready: Arc<AtomicBool>,
    stop: CancellationToken,
) {
    let capabilities = Arc::new(CapabilityCache::default());
    let (service_accounts, sa_stream) =
        meta_watch::<ServiceAccount>(opts.scope.api(client.clone()));
    let (config_maps, cm_stream) = meta_watch::<ConfigMap>(opts.scope.api(client.clone()));
    let (network_policies, np_stream) = meta_watch::<NetworkPolicy>(opts.scope.api(client.clone()));
    let (services, svc_stream) = meta_watch::<Service>(opts.scope.api(client.clone()));
    let (deployments, deploy_stream) =
        child_watch(opts.scope.api::<DeploymentState>(client.clone()));
    let (hpas, hpa_stream) = meta_watch::<HorizontalPodAutoscaler>(opts.scope.api(client.clone()));
    let (pdbs, pdb_stream) = meta_watch::<PodDisruptionBudget>(opts.scope.api(client.clone()));
    let (jobs, job_stream) = child_watch(opts.scope.api::<JobRecord>(client.clone()));
    let (cron_jobs, cron_stream) = meta_watch::<CronJob>(opts.scope.api(client.clone()));
    let (pvcs, pvc_stream) = meta_watch::<PersistentVolumeClaim>(opts.scope.api(client.clone()));
    let (service_monitors, sm_stream) =
        optional_watch::<ServiceMonitor>(&client, &opts.scope, capabilities.clone(), |c| {
            c.service_monitor
        });
    let (http_routes, route_stream) =
        optional_watch::<HttpRoute>(&client, &opts.scope, capabilities.clone(), |c| c.http_route);
    let (scaled_objects, so_stream) =
        optional_watch::<ScaledObject>(&client, &opts.scope, capabilities.clone(), |c| {
            c.scaled_object
        });
    let (ingresses, ingress_stream) = meta_watch::<Ingress>(opts.scope.api(client.clone()));
    let secrets = SecretStore::default();
    let secret_stream = secret_watch(opts.scope.api(client.clone()), secrets.clone());
    let children = futures::stream::select_all([
        sa_stream.boxed(),
        cm_stream.boxed(),
        np_stream.boxed(),
        svc_stream.boxed(),
        hpa_stream.boxed(),
        pdb_stream.boxed(),
        cron_stream.boxed(),
        pvc_stream.boxed(),
        sm_stream.boxed(),
        route_stream.boxed(),
        so_stream.boxed(),
        ingress_stream.boxed(),
        secret_stream.boxed(),
    ]);
    let stores = Stores {
        service_accounts,
        config_maps,
        network_policies,
        services,
        deployments,
        hpas,
        pdbs,
        jobs,
        cron_jobs,
        pvcs,
        service_monitors,
        ingresses,
        http_routes,
        scaled_objects,
        secrets,
    };

    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: MANAGER.to_owned(),
            instance: Some(opts.identity.clone()),
        },
    );
    let ctx = Arc::new(Context::new(
        client.clone(),
        recorder,
        stores.clone(),
        capabilities,
        metrics.clone(),
    ));
    // Reconciles wait until the child caches are synced (see `Context::caches_synced`).
    ctx.caches_synced.store(false, Ordering::Release);
    // ClockifyAddons whole, without managedFields.
    let (addon_store, addon_writer) = reflector::store();
    let addons = watcher(
        opts.scope
            .api::<DeserializeGuard<ClockifyAddon>>(client.clone()),
        watcher::Config::default().page_size(PAGE_SIZE),
    )
    .default_backoff()
    .modify(|a| a.managed_fields_mut().clear())
    .reflect(addon_writer)
    .applied_objects();
    let controller = Controller::for_stream(addons, addon_store)
        .reconcile_on(children)
        .watches_stream(deploy_stream, addon_of_deployment)
        .watches_stream(job_stream, addon_of_job)
        .with_config(ControllerConfig::default().concurrency(opts.concurrency))
        .graceful_shutdown_on({
            let stop = stop.clone();
            async move { stop.cancelled().await }
        });
    let main_store = controller.store();
    {
        let ready = ready.clone();
        let metrics = metrics.clone();
        let main_store = main_store.clone();
        let stop = stop.clone();
        let ctx = ctx.clone();
        tokio::spawn(async move {
            if crate::cache::synced(&main_store).await && stores.wait_until_ready().await {
                ctx.caches_synced.store(true, Ordering::Release);
                ready.store(true, Ordering::Relaxed);
                tracing::info!("caches synced");
            }
            // Objects managed, for the gauge.
            loop {
                metrics.managed.set(main_store.len() as i64);
                // Per-ClockifyAddon series live as long as their object.
                let present = main_store
                    .state()
                    .iter()
                    .filter_map(|o| {
                        let meta = match &o.0 {
                            Ok(a) => &a.metadata,
                            Err(invalid) => &invalid.metadata,
                        };
                        Some((meta.namespace.clone()?, meta.name.clone()?))
                    })
                    .collect();
                metrics.retain_addons(&present);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.cancelled() => break,
                }
            }
        });
    }
    controller
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "controller event");
            }
        })
        .await;
    tracing::info!("controller stopped");
}

/// Runs until `shutdown`: as leader the controller runs; as standby it waits for the lease.
pub async fn run(
    client: Client,
    opts: Options,
    metrics: Metrics,
    ready: Arc<AtomicBool>,
    shutdown: CancellationToken,
) {
    let Some((lease_ns, lease_name)) = opts.lease.clone() else {
        metrics.leader.set(1);
        run_controller(client, &opts, metrics, ready, shutdown).await;
        return;
    };
    let elector = LeaderElector::new(
        Api::<Lease>::namespaced(client.clone(), &lease_ns),
        &lease_name,
        &opts.identity,
    );
    let mut tenure = Tenure::new(elector.lease_duration);
    let mut running: Option<(CancellationToken, tokio::task::JoinHandle<()>)> = None;
    loop {
        match elector.acquire_or_renew().await {
            Ok(true) => tenure.renewed(),
            Ok(false) => tenure.lost(),
            Err(e) => tracing::warn!(error = %e, "cannot reach the leader lease"),
        }
        match (tenure.valid(), running.is_some()) {
            (true, false) => {
                tracing::info!(identity = elector.identity(), lease = %lease_name, "became leader");
                metrics.leader.set(1);
                ready.store(false, Ordering::Relaxed);
                let stop = shutdown.child_token();
                let task = tokio::spawn({
                    let (client, opts, metrics, ready, stop) = (
                        client.clone(),
                        opts.clone(),
                        metrics.clone(),
                        ready.clone(),
                        stop.clone(),
                    );
                    async move { run_controller(client, &opts, metrics, ready, stop).await }
                });
                running = Some((stop, task));
            }
            (false, true) => {
                tracing::warn!(
                    identity = elector.identity(),
                    "lost the leader lease; stopping the controller"
                );
                if let Some((stop, task)) = running.take() {
                    stop.cancel();
                    let _ = task.await;
                }
                metrics.leader.set(0);
                // A standby reports no ClockifyAddon: the new leader does.
                metrics.retain_addons(&Default::default());
            }
            (false, false) => {
                // Standing by is a healthy state.
                ready.store(true, Ordering::Relaxed);
            }
            (true, true) => {}
        }
        let wait = if running.is_some() {
            elector.renew_every
        } else {
            Duration::from_secs(2)
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => break,
        }
    }
    if let Some((stop, task)) = running.take() {
        stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(20), task).await;
    }
    elector.release().await;
    metrics.leader.set(0);
}
