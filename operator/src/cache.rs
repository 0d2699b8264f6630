//! observe: what the operator knows of the cluster, from its watches, and of its own writes.
//!
//! - Every child kind is watched (filtered on the managed-by label) as metadata only, except
//!   Deployments and Jobs, whose status the decisions read; those are trimmed to what is read
//!   (the pod template's image and version, the Job's TTL and status). managedFields are cut to
//!   the hash of the operator's own entry ([`crate::drift`]). A thousand ClockifyAddons with
//!   their children fit in a few megabytes.
//! - [`Written`] remembers what this replica wrote until its watches show it: the answer to an
//!   apply, a deletion, a status write. A reconcile that starts before the watch event of the
//!   previous one's write arrives reads the write, not the stale cache, so it neither repeats
//!   the write nor reports the same transition twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::ResourceExt;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use serde::{Deserialize, Serialize};

use crate::crd::{ClockifyAddon, ClockifyAddonStatus};
use crate::drift::trim_managed_fields;
use crate::jobs::JobView;
use crate::meta::{APPLIED_ANNOTATION, LABEL_INSTANCE, OWNED_FIELDS_ANNOTATION};
use crate::plan::Kind;
use crate::views::{DeploymentState, JobRecord};

/// How long a write is remembered if its watch event never shows up.
pub const WRITE_MEMORY: Duration = Duration::from_secs(60);

/// A kind no Rust type for ships with k8s-openapi, as far as the metadata cache needs it (the
/// operator builds these as dynamic objects).
macro_rules! optional_kind {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $group:literal, $version:literal, $plural:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, Serialize, Deserialize)]
        pub struct $name {
            pub metadata: ObjectMeta,
        }

        impl Resource for $name {
            type DynamicType = ();
            type Scope = NamespaceResourceScope;

            fn kind(_: &()) -> std::borrow::Cow<'_, str> {
                $kind.into()
            }
            fn group(_: &()) -> std::borrow::Cow<'_, str> {
                $group.into()
            }
            fn version(_: &()) -> std::borrow::Cow<'_, str> {
                $version.into()
            }
            fn plural(_: &()) -> std::borrow::Cow<'_, str> {
                $plural.into()
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

optional_kind!(
    /// monitoring.coreos.com/v1 ServiceMonitor.
    ServiceMonitor,
    "ServiceMonitor",
    "monitoring.coreos.com",
    "v1",
    "servicemonitors"
);
optional_kind!(
    /// keda.sh/v1alpha1 ScaledObject.
    ScaledObject,
    "ScaledObject",
    "keda.sh",
    "v1alpha1",
    "scaledobjects"
);
optional_kind!(
    /// gateway.networking.k8s.io/v1 HTTPRoute.
    HttpRoute,
    "HTTPRoute",
    "gateway.networking.k8s.io",
    "v1",
    "httproutes"
);

pub type Meta<K> = PartialObjectMeta<K>;

/// What the operator keeps of a child it watches as metadata: its identity, owner, deletion,
/// and its change-detection stamps ([`crate::drift`]). A few hundred bytes, where the same
/// metadata as `ObjectMeta` (label and annotation maps, owner and managedFields entries) takes
/// over two kilobytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    uid: Option<Box<str>>,
    resource_version: Option<Box<str>>,
    generation: Option<i64>,
    deleting: bool,
    /// The controlling ClockifyAddon: (name, uid).
    controller: Option<Box<(Box<str>, Box<str>)>>,
    /// The instance label (how the backup volume, which has no owner, finds its ClockifyAddon).
    instance: Option<Box<str>>,
    applied: Option<Box<str>>,
    owned: Option<Box<str>>,
    /// The hash of the operator's own managedFields entry.
    live: Option<Box<str>>,
}

fn boxed(s: Option<String>) -> Option<Box<str>> {
    s.map(String::into_boxed_str)
}

fn unboxed(s: &Option<Box<str>>) -> Option<String> {
    s.as_deref().map(str::to_owned)
}

impl Record {
    pub fn of(meta: &ObjectMeta) -> Self {
        let ann = |k: &str| meta.annotations.as_ref().and_then(|a| a.get(k)).cloned();
        Self {
            uid: boxed(meta.uid.clone()),
            resource_version: boxed(meta.resource_version.clone()),
            generation: meta.generation,
            deleting: meta.deletion_timestamp.is_some(),
            controller: meta
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true) && o.kind == "ClockifyAddon")
                .map(|o| Box::new((o.name.as_str().into(), o.uid.as_str().into()))),
            instance: boxed(
                meta.labels
                    .as_ref()
                    .and_then(|l| l.get(LABEL_INSTANCE))
                    .cloned(),
            ),
            applied: boxed(ann(APPLIED_ANNOTATION)),
            owned: boxed(ann(OWNED_FIELDS_ANNOTATION)),
            live: boxed(crate::drift::owned_fields(meta)),
        }
    }

    /// The metadata decisions read, rebuilt (see [`Record::of`]).
    pub fn to_meta(&self, ns: &str, name: &str) -> ObjectMeta {
        let annotations: std::collections::BTreeMap<String, String> = [
            (APPLIED_ANNOTATION, &self.applied),
            (OWNED_FIELDS_ANNOTATION, &self.owned),
        ]
        .into_iter()
        .filter_map(|(k, v)| unboxed(v).map(|v| (k.to_owned(), v)))
        .collect();
        let mut meta = ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(ns.to_owned()),
            uid: unboxed(&self.uid),
            resource_version: unboxed(&self.resource_version),
            generation: self.generation,
            deletion_timestamp: self.deleting.then_some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
                ),
            ),
            annotations: (!annotations.is_empty()).then_some(annotations),
            labels: unboxed(&self.instance).map(|i| [(LABEL_INSTANCE.to_owned(), i)].into()),
            owner_references: self.controller.as_deref().map(|(name, uid)| {
                vec![
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                        api_version: "clockify-addons.io/v1alpha1".to_owned(),
                        kind: "ClockifyAddon".to_owned(),
                        name: name.to_string(),
                        uid: uid.to_string(),
                        controller: Some(true),
                        block_owner_deletion: Some(true),
                    },
                ]
            }),
            ..ObjectMeta::default()
        };
        if let Some(live) = &self.live {
            meta.managed_fields = Some(vec![
                k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry {
                    manager: Some(crate::meta::MANAGER.to_owned()),
                    operation: Some("Apply".to_owned()),
                    fields_v1: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1(
                        serde_json::Value::String(live.to_string()),
                    )),
                    ..Default::default()
                },
            ]);
        }
        meta
    }

    pub fn uid(&self) -> Option<&str> {
        self.uid.as_deref()
    }

    /// The uid of the controlling ClockifyAddon.
    pub fn controller_uid(&self) -> Option<&str> {
        self.controller.as_deref().map(|(_, uid)| &**uid)
    }

    /// The ClockifyAddon to reconcile when this child changes.
    pub fn addon(&self) -> Option<&str> {
        self.controller
            .as_deref()
            .map(|(name, _)| &**name)
            .or(self.instance.as_deref())
    }
}

/// A child as its metadata-only watch delivers it, decoded straight into a [`Record`]: labels,
/// annotations and owners are read for what the record keeps, and the operator's managedFields
/// entry is hashed while it streams in ([`crate::drift::Hashed`]), so a page of a start-up's
/// list never holds field-set trees. Its `metadata` keeps what the watch itself needs (name,
/// namespace, resourceVersion).
#[derive(Debug)]
pub struct Slim<K> {
    pub metadata: ObjectMeta,
    pub record: Record,
    kind: std::marker::PhantomData<fn() -> K>,
}

impl<K> Clone for Slim<K> {
    fn clone(&self) -> Self {
        Self {
            metadata: self.metadata.clone(),
            record: self.record.clone(),
            kind: std::marker::PhantomData,
        }
    }
}

impl<K: Resource> Resource for Slim<K> {
    type DynamicType = K::DynamicType;
    type Scope = K::Scope;

    fn metadata_api() -> bool {
        true
    }
    fn kind(dt: &K::DynamicType) -> std::borrow::Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &K::DynamicType) -> std::borrow::Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &K::DynamicType) -> std::borrow::Cow<'_, str> {
        K::version(dt)
    }
    fn plural(dt: &K::DynamicType) -> std::borrow::Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// The parts of a managedFields entry [`Slim`] reads.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimEntry {
    manager: Option<String>,
    operation: Option<String>,
    subresource: Option<String>,
    #[serde(rename = "fieldsV1")]
    fields: Option<crate::drift::Hashed>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimOwner {
    kind: String,
    name: String,
    uid: String,
    controller: Option<bool>,
}

/// Metadata as the caches read it off the wire: the operator's managedFields entry hashed as it
/// streams in, the other entries skipped.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimMeta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    generation: Option<i64>,
    deletion_timestamp: Option<serde::de::IgnoredAny>,
    labels: Option<std::collections::BTreeMap<String, String>>,
    annotations: Option<std::collections::BTreeMap<String, String>>,
    owner_references: Option<Vec<SlimOwner>>,
    managed_fields: Option<Vec<SlimEntry>>,
}

/// [`SlimMeta`] taken apart.
pub struct MetaParts {
    /// What a watch needs of `metadata`: name, namespace, resourceVersion.
    pub metadata: ObjectMeta,
    pub record: Record,
    /// The labels and annotations not taken into the record.
    pub labels: std::collections::BTreeMap<String, String>,
    pub annotations: std::collections::BTreeMap<String, String>,
    /// The name of a CronJob that owns the object.
    pub cron_owner: Option<String>,
}

impl SlimMeta {
    pub fn into_parts(self) -> MetaParts {
        let m = self;
        let mut annotations = m.annotations.unwrap_or_default();
        let mut labels = m.labels.unwrap_or_default();
        let owners = m.owner_references.unwrap_or_default();
        let record = Record {
            uid: boxed(m.uid),
            resource_version: boxed(m.resource_version.clone()),
            generation: m.generation,
            deleting: m.deletion_timestamp.is_some(),
            controller: owners
                .iter()
                .find(|o| o.controller == Some(true) && o.kind == "ClockifyAddon")
                .map(|o| Box::new((o.name.as_str().into(), o.uid.as_str().into()))),
            instance: boxed(labels.remove(LABEL_INSTANCE)),
            applied: boxed(annotations.remove(APPLIED_ANNOTATION)),
            owned: boxed(annotations.remove(OWNED_FIELDS_ANNOTATION)),
            live: m
                .managed_fields
                .unwrap_or_default()
                .into_iter()
                .find(|e| {
                    e.manager.as_deref() == Some(crate::meta::MANAGER)
                        && e.operation.as_deref() == Some("Apply")
                        && e.subresource.as_deref().unwrap_or_default().is_empty()
                })
                .and_then(|e| e.fields)
                .map(|h| h.hex().into_boxed_str()),
        };
        MetaParts {
            metadata: ObjectMeta {
                name: m.name,
                namespace: m.namespace,
                resource_version: m.resource_version,
                generation: m.generation,
                ..ObjectMeta::default()
            },
            record,
            labels,
            annotations,
            cron_owner: owners
                .into_iter()
                .find(|o| o.kind == "CronJob")
                .map(|o| o.name),
        }
    }
}

impl<'de, K> Deserialize<'de> for Slim<K> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Object {
            metadata: SlimMeta,
        }
        let Object { metadata } = Object::deserialize(d)?;
        let parts = metadata.into_parts();
        Ok(Slim {
            metadata: ObjectMeta {
                generation: None,
                ..parts.metadata
            },
            record: parts.record,
            kind: std::marker::PhantomData,
        })
    }
}

/// Keyed by (namespace, name); records boxed so that a table's empty slots stay small.
type Records = HashMap<(Box<str>, Box<str>), Box<Record>>;

/// The [`Record`]s of one kind, fed by its metadata watch ([`Feeder`]).
#[derive(Clone, Default)]
pub struct MetaStore {
    records: Arc<std::sync::RwLock<Records>>,
    ready: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for MetaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaStore")
            .field("len", &self.len())
            .finish()
    }
}

impl MetaStore {
    pub fn get(&self, ns: &str, name: &str) -> Option<ObjectMeta> {
        let records = self.records.read().ok()?;
        records
            .get(&(Box::from(ns), Box::from(name)))
            .map(|r| r.to_meta(ns, name))
    }

    /// Whether the store holds its watch's first full list.
    pub fn is_ready(&self) -> bool {
        self.ready.load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn len(&self) -> usize {
        self.records.read().map(|r| r.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Puts an object in (as its watch would).
    pub fn insert(&self, meta: &ObjectMeta) {
        let key = (
            Box::from(meta.namespace.as_deref().unwrap_or_default()),
            Box::from(meta.name.as_deref().unwrap_or_default()),
        );
        if let Ok(mut r) = self.records.write() {
            r.insert(key, Box::new(Record::of(meta)));
        }
    }

    /// Marks the first full list as held.
    pub fn mark_ready(&self) {
        self.ready.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Waits for the first full list.
    pub async fn wait_until_ready(&self) {
        while !self.is_ready() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Applies a metadata watch's events to a [`MetaStore`] (as kube's reflector does, relists
/// included) and says which ClockifyAddons the touched children belong to.
pub struct Feeder {
    store: MetaStore,
    relist: Option<Records>,
}

impl Feeder {
    pub fn new(store: MetaStore) -> Self {
        Self {
            store,
            relist: None,
        }
    }

    /// The (namespace, ClockifyAddon) of each child the event touched.
    pub fn apply<K>(
        &mut self,
        event: kube::runtime::watcher::Event<Slim<K>>,
    ) -> Vec<(String, String)> {
        use kube::runtime::watcher::Event;
        let key = |o: &Slim<K>| {
            (
                Box::from(o.metadata.namespace.as_deref().unwrap_or_default()),
                Box::from(o.metadata.name.as_deref().unwrap_or_default()),
            )
        };
        let owner = |o: &Slim<K>| {
            o.record.addon().map(|a| {
                (
                    o.metadata.namespace.clone().unwrap_or_default(),
                    a.to_owned(),
                )
            })
        };
        match event {
            Event::Init => {
                self.relist = Some(Records::new());
                Vec::new()
            }
            Event::InitApply(o) => {
                let touched = owner(&o);
                if let Some(relist) = self.relist.as_mut() {
                    relist.insert(key(&o), Box::new(o.record));
                }
                touched.into_iter().collect()
            }
            Event::InitDone => {
                if let (Some(relist), Ok(mut records)) =
                    (self.relist.take(), self.store.records.write())
                {
                    *records = relist;
                }
                self.store.mark_ready();
                Vec::new()
            }
            Event::Apply(o) => {
                let touched = owner(&o);
                if let Ok(mut records) = self.store.records.write() {
                    records.insert(key(&o), Box::new(o.record));
                }
                touched.into_iter().collect()
            }
            Event::Delete(o) => {
                if let Ok(mut records) = self.store.records.write() {
                    records.remove(&key(&o));
                }
                owner(&o).into_iter().collect()
            }
        }
    }
}

/// The cached children: every kind but Deployments and Jobs as [`Record`]s from metadata
/// watches (filtered on the managed-by label); Deployments and Jobs trimmed.
#[derive(Clone)]
pub struct Stores {
    pub service_accounts: MetaStore,
    pub config_maps: MetaStore,
    pub network_policies: MetaStore,
    pub services: MetaStore,
    pub deployments: Store<DeploymentState>,
    pub hpas: MetaStore,
    pub pdbs: MetaStore,
    pub jobs: Store<JobRecord>,
    pub cron_jobs: MetaStore,
    pub pvcs: MetaStore,
    pub ingresses: MetaStore,
    /// Watched once the cluster serves the API (see [`crate::controller`]); until this store is
    /// ready a reconcile reads ServiceMonitors from the API server.
    pub service_monitors: MetaStore,
    /// As ServiceMonitors, for the Gateway API.
    pub http_routes: MetaStore,
    /// As ServiceMonitors, for KEDA.
    pub scaled_objects: MetaStore,
    /// Digests of the Secrets in scope ([`crate::secrets`]).
    pub secrets: crate::secrets::SecretStore,
}

impl Stores {
    /// The cached metadata of the child of `kind` named `name` (None: not cached; for
    /// ServiceMonitor and HTTPRoute also when their store is not ready, see [`Stores::cached`]).
    pub fn meta(&self, kind: Kind, ns: &str, name: &str) -> Option<ObjectMeta> {
        match kind {
            Kind::ServiceAccount => self.service_accounts.get(ns, name),
            Kind::ConfigMap => self.config_maps.get(ns, name),
            Kind::NetworkPolicy => self.network_policies.get(ns, name),
            Kind::Service => self.services.get(ns, name),
            Kind::Ingress => self.ingresses.get(ns, name),
            Kind::HTTPRoute => self.http_routes.get(ns, name),
            Kind::Deployment => self
                .deployment(ns, name)
                .map(|d| d.record.to_meta(ns, name)),
            Kind::HorizontalPodAutoscaler => self.hpas.get(ns, name),
            Kind::ScaledObject => self.scaled_objects.get(ns, name),
            Kind::PodDisruptionBudget => self.pdbs.get(ns, name),
            Kind::ServiceMonitor => self.service_monitors.get(ns, name),
            Kind::PersistentVolumeClaim => self.pvcs.get(ns, name),
            Kind::CronJob => self.cron_jobs.get(ns, name),
            Kind::Job => self
                .jobs
                .get(&ObjectRef::new(name).within(ns))
                .map(|j| j.record.to_meta(ns, name)),
        }
    }

    /// Whether the ServiceMonitor cache holds its first full list.
    pub fn service_monitors_ready(&self) -> bool {
        self.service_monitors.is_ready()
    }

    /// Whether `kind` is cached: false for ServiceMonitor, HTTPRoute and ScaledObject until their watch
    /// (started once the cluster serves the API) holds its first full list.
    pub fn cached(&self, kind: Kind) -> bool {
        match kind {
            Kind::ServiceMonitor => self.service_monitors.is_ready(),
            Kind::HTTPRoute => self.http_routes.is_ready(),
            Kind::ScaledObject => self.scaled_objects.is_ready(),
            _ => true,
        }
    }

    pub fn deployment(&self, ns: &str, name: &str) -> Option<Arc<DeploymentState>> {
        self.deployments.get(&ObjectRef::new(name).within(ns))
    }

    /// This ClockifyAddon's Jobs of `component` (migration, backup, restore), owned by it or,
    /// for scheduled backups, by its CronJob `via_cron`.
    pub fn jobs_of(
        &self,
        addon: &ClockifyAddon,
        component: &str,
        via_cron: Option<&str>,
    ) -> Vec<Arc<JobRecord>> {
        let ns = addon.namespace();
        self.jobs
            .state()
            .into_iter()
            .filter(|j| j.metadata.namespace == ns && job_of(j, addon, component, via_cron))
            .collect()
    }

    /// Waits until every cache but the ServiceMonitors' has its first full list.
    pub async fn wait_until_ready(&self) -> bool {
        for s in [
            &self.service_accounts,
            &self.config_maps,
            &self.network_policies,
            &self.services,
            &self.hpas,
            &self.pdbs,
            &self.cron_jobs,
            &self.pvcs,
            &self.ingresses,
        ] {
            s.wait_until_ready().await;
        }
        self.secrets.wait_until_ready().await;
        synced(&self.deployments).await && synced(&self.jobs).await
    }
}

/// Waits for a store's first full list. The store's readiness signal wakes only one waiter (the
/// controller's own runner also waits on the main store), so this re-polls rather than rely on
/// being woken.
pub async fn synced<K>(store: &Store<K>) -> bool
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        match tokio::time::timeout(Duration::from_millis(100), store.wait_until_ready()).await {
            Ok(result) => return result.is_ok(),
            Err(_) => continue,
        }
    }
}

/// Whether a Job is `addon`'s, of `component` (see [`Stores::jobs_of`]).
pub fn job_of(
    j: &JobRecord,
    addon: &ClockifyAddon,
    component: &str,
    via_cron: Option<&str>,
) -> bool {
    let uid = addon.metadata.uid.as_deref();
    j.name_label.as_deref() == Some(addon.spec.addon.slug())
        && j.record.addon() == Some(addon.name_any().as_str())
        && j.component.as_deref() == Some(component)
        && (j.record.controller_uid().is_some_and(|u| Some(u) == uid)
            || via_cron.is_some_and(|c| j.cron_owner.as_deref() == Some(c)))
}

type Key = (Kind, String, String);

fn key(kind: Kind, ns: &str, name: &str) -> Key {
    (kind, ns.to_owned(), name.to_owned())
}

/// A resourceVersion as a number, for "is the cache older than my write". resourceVersions
/// are opaque by contract, but etcd3's are revisions; anything else compares as equal-or-not.
fn older(cached: Option<&str>, written: &str) -> bool {
    match cached {
        None => true,
        Some(c) => match (c.parse::<u64>(), written.parse::<u64>()) {
            (Ok(c), Ok(w)) => c < w,
            _ => false,
        },
    }
}

#[derive(Debug, Clone)]
struct Entry {
    at: Instant,
    meta: ObjectMeta,
    deployment: Option<Arc<DeploymentState>>,
    job: Option<Arc<JobRecord>>,
}

#[derive(Debug, Clone)]
struct Deleted {
    at: Instant,
    uid: Option<String>,
}

/// What this replica wrote, until its watches catch up ("read your writes").
#[derive(Debug, Default)]
pub struct Written {
    applied: Mutex<HashMap<Key, Entry>>,
    deleted: Mutex<HashMap<Key, Deleted>>,
    statuses: Mutex<HashMap<(String, String), StatusWrite>>,
}

/// A status write: when, the resourceVersion the API server answered with, the status.
type StatusWrite = (Instant, String, ClockifyAddonStatus);

impl Written {
    /// Forgets writes older than [`WRITE_MEMORY`] (their watch events have long arrived).
    fn sweep(&self) {
        if let Ok(mut m) = self.applied.lock() {
            m.retain(|_, e| e.at.elapsed() < WRITE_MEMORY);
        }
        if let Ok(mut m) = self.deleted.lock() {
            m.retain(|_, d| d.at.elapsed() < WRITE_MEMORY);
        }
        if let Ok(mut m) = self.statuses.lock() {
            m.retain(|_, s| s.0.elapsed() < WRITE_MEMORY);
        }
    }

    /// An apply's answer: the object as the API server stored it.
    pub fn applied(&self, kind: Kind, ns: &str, name: &str, answer: &serde_json::Value) {
        self.sweep();
        let Ok(mut meta) = serde_json::from_value::<ObjectMeta>(answer["metadata"].clone()) else {
            return;
        };
        trim_managed_fields(&mut meta);
        let k = key(kind, ns, name);
        if let Ok(mut d) = self.deleted.lock() {
            d.remove(&k);
        }
        let entry = Entry {
            at: Instant::now(),
            meta,
            deployment: (kind == Kind::Deployment)
                .then(|| DeploymentState::from_json(answer).map(Arc::new))
                .flatten(),
            job: (kind == Kind::Job)
                .then(|| JobRecord::from_json(answer).map(Arc::new))
                .flatten(),
        };
        if let Ok(mut a) = self.applied.lock() {
            a.insert(k, entry);
        }
    }

    /// A deletion of the object with `uid`.
    pub fn deleted(&self, kind: Kind, ns: &str, name: &str, uid: Option<String>) {
        let k = key(kind, ns, name);
        if let Ok(mut a) = self.applied.lock() {
            a.remove(&k);
        }
        if let Ok(mut d) = self.deleted.lock() {
            d.insert(
                k,
                Deleted {
                    at: Instant::now(),
                    uid,
                },
            );
        }
    }

    /// A status write and the resourceVersion the API server answered with.
    pub fn status(&self, ns: &str, name: &str, resource_version: String, s: ClockifyAddonStatus) {
        self.sweep();
        if let Ok(mut m) = self.statuses.lock() {
            m.insert(
                (ns.to_owned(), name.to_owned()),
                (Instant::now(), resource_version, s),
            );
        }
    }

    /// The entry written for `k` while the cache (at `cached_rv`) has not caught up with it.
    fn fresher(&self, k: &Key, cached_rv: Option<&str>) -> Option<Entry> {
        let mut map = self.applied.lock().ok()?;
        let e = map.get(k)?;
        let rv = e.meta.resource_version.clone().unwrap_or_default();
        if e.at.elapsed() < WRITE_MEMORY && older(cached_rv, &rv) {
            return Some(e.clone());
        }
        map.remove(k);
        None
    }

    /// Whether the cached object (`uid`) is one this replica deleted.
    fn gone(&self, k: &Key, uid: Option<&str>) -> bool {
        let Ok(mut map) = self.deleted.lock() else {
            return false;
        };
        match map.get(k) {
            Some(d)
                if d.at.elapsed() < WRITE_MEMORY && uid.is_some() && d.uid.as_deref() == uid =>
            {
                true
            }
            Some(_) => {
                map.remove(k);
                false
            }
            None => false,
        }
    }

    /// The metadata of a child: the cache's, unless this replica's last write is newer.
    pub fn meta(
        &self,
        kind: Kind,
        ns: &str,
        name: &str,
        cached: Option<ObjectMeta>,
    ) -> Option<ObjectMeta> {
        let k = key(kind, ns, name);
        if let Some(c) = &cached
            && self.gone(&k, c.uid.as_deref())
        {
            return None;
        }
        match self.fresher(
            &k,
            cached.as_ref().and_then(|c| c.resource_version.as_deref()),
        ) {
            Some(e) => Some(e.meta),
            None => cached,
        }
    }

    /// The Deployment: the cache's, unless this replica's last apply answered with a newer one.
    pub fn deployment(
        &self,
        ns: &str,
        name: &str,
        cached: Option<Arc<DeploymentState>>,
    ) -> Option<Arc<DeploymentState>> {
        let k = key(Kind::Deployment, ns, name);
        let rv = cached
            .as_ref()
            .and_then(|d| d.metadata.resource_version.clone());
        match self.fresher(&k, rv.as_deref()) {
            Some(Entry {
                deployment: Some(d),
                ..
            }) => Some(d),
            _ => cached,
        }
    }

    /// Jobs as the cache has them, with this replica's newer writes and deletions applied.
    pub fn jobs(
        &self,
        ns: &str,
        cached: Vec<Arc<JobRecord>>,
        wanted: impl Fn(&JobRecord) -> bool,
    ) -> Vec<JobView> {
        let mut out: Vec<Arc<JobRecord>> = Vec::new();
        let mut names = std::collections::BTreeSet::new();
        for j in cached {
            let name = j.metadata.name.clone().unwrap_or_default();
            let k = key(Kind::Job, ns, &name);
            if self.gone(&k, j.record.uid()) {
                continue;
            }
            names.insert(name);
            match self.fresher(&k, j.metadata.resource_version.as_deref()) {
                Some(Entry { job: Some(w), .. }) => out.push(w),
                _ => out.push(j),
            }
        }
        if let Ok(map) = self.applied.lock() {
            for ((kind, n, name), e) in map.iter() {
                if *kind == Kind::Job
                    && n == ns
                    && !names.contains(name)
                    && e.at.elapsed() < WRITE_MEMORY
                    && let Some(j) = &e.job
                    && wanted(j)
                {
                    out.push(j.clone());
                }
            }
        }
        out.iter().map(|j| j.view.clone()).collect()
    }

    /// The ClockifyAddon with the status this replica last wrote, if the cached object is older.
    pub fn addon(&self, addon: &ClockifyAddon) -> ClockifyAddon {
        let k = (addon.namespace().unwrap_or_default(), addon.name_any());
        let Ok(mut map) = self.statuses.lock() else {
            return addon.clone();
        };
        match map.get(&k) {
            Some((at, rv, s))
                if at.elapsed() < WRITE_MEMORY
                    && older(addon.metadata.resource_version.as_deref(), rv) =>
            {
                let mut a = addon.clone();
                a.status = Some(s.clone());
                a
            }
            Some(_) => {
                map.remove(&k);
                addon.clone()
            }
            None => addon.clone(),
        }
    }

    /// Forgets everything (a replica that stops leading).
    pub fn clear(&self) {
        for m in [&self.applied] {
            if let Ok(mut m) = m.lock() {
                m.clear();
            }
        }
        if let Ok(mut m) = self.deleted.lock() {
            m.clear();
        }
        if let Ok(mut m) = self.statuses.lock() {
            m.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(rv: &str, uid: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some("x".into()),
            resource_version: Some(rv.into()),
            uid: Some(uid.into()),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn a_write_is_read_until_the_cache_catches_up() {
        let w = Written::default();
        w.applied(
            Kind::Service,
            "ns",
            "x",
            &serde_json::json!({"metadata": meta("12", "u")}),
        );
        // The cache is older (or empty): the write is what counts.
        assert_eq!(
            w.meta(Kind::Service, "ns", "x", Some(meta("10", "u")))
                .unwrap()
                .resource_version
                .as_deref(),
            Some("12")
        );
        assert_eq!(
            w.meta(Kind::Service, "ns", "x", None)
                .unwrap()
                .resource_version
                .as_deref(),
            Some("12")
        );
        // Caught up (or newer, someone else's write): the cache counts, the write is forgotten.
        assert_eq!(
            w.meta(Kind::Service, "ns", "x", Some(meta("13", "u")))
                .unwrap()
                .resource_version
                .as_deref(),
            Some("13")
        );
        assert_eq!(
            w.meta(Kind::Service, "ns", "x", Some(meta("10", "u")))
                .unwrap()
                .resource_version
                .as_deref(),
            Some("10")
        );
    }

    #[test]
    fn a_streamed_child_becomes_the_same_record_as_its_metadata() {
        let text = r#"{"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": {
            "name": "x-backups", "namespace": "ns", "uid": "u-1", "resourceVersion": "42", "generation": 3,
            "deletionTimestamp": "2026-12-02T00:00:00Z", "finalizers": ["kubernetes.io/pvc-protection"],
            "labels": {"app.kubernetes.io/instance": "x", "app.kubernetes.io/name": "api-studio"},
            "annotations": {"clockify-addons.io/applied": "a1", "clockify-addons.io/owned-fields": "o1", "other": "y"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "z", "uid": "u-z"},
                                {"apiVersion": "clockify-addons.io/v1alpha1", "kind": "ClockifyAddon", "name": "x", "uid": "u-x", "controller": true}],
            "managedFields": [
                {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status", "fieldsV1": {"f:status": {}}},
                {"manager": "clockify-operator", "operation": "Update", "fieldsV1": {"f:spec": {}}},
                {"manager": "clockify-operator", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:b": {}, "f:a": {"k:{\"name\":\"c\"}": {".": {}}}}}}
            ]}}"#;
        let slim: Slim<k8s_openapi::api::core::v1::ConfigMap> = serde_json::from_str(text).unwrap();
        let meta: ObjectMeta = serde_json::from_value(
            serde_json::from_str::<serde_json::Value>(text).unwrap()["metadata"].clone(),
        )
        .unwrap();
        assert_eq!(slim.record, Record::of(&meta));
        assert_eq!(slim.record.addon(), Some("x"));
        assert_eq!(
            unboxed(&slim.record.live),
            crate::drift::owned_fields(&meta)
        );
        assert!(slim.record.live.is_some());
        assert_eq!(slim.metadata.resource_version.as_deref(), Some("42"));
        // Rebuilt, it reads the same to the change detection.
        let rebuilt = slim.record.to_meta("ns", "x-backups");
        assert_eq!(Record::of(&rebuilt), slim.record);
        assert_eq!(
            crate::drift::verdict("a1", Some(&rebuilt)),
            crate::drift::verdict("a1", Some(&meta))
        );
    }

    #[test]
    fn a_deleted_object_is_gone_until_the_cache_drops_it() {
        let w = Written::default();
        w.deleted(Kind::CronJob, "ns", "x", Some("u".into()));
        assert!(
            w.meta(Kind::CronJob, "ns", "x", Some(meta("10", "u")))
                .is_none()
        );
        // A new object under the same name is not the deleted one.
        assert!(
            w.meta(Kind::CronJob, "ns", "x", Some(meta("11", "v")))
                .is_some()
        );
    }
}
