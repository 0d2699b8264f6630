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
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, PersistentVolumeClaim, PodSpec, PodTemplateSpec, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::Resource;
use kube::ResourceExt;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use serde::{Deserialize, Serialize};

use crate::build::deployment::MIGRATED_IMAGE_ANNOTATION;
use crate::crd::{ClockifyAddon, ClockifyAddonStatus};
use crate::drift::trim_managed_fields;
use crate::jobs::{self, JobView};
use crate::meta::{
    APPLIED_ANNOTATION, LABEL_INSTANCE, OWNED_FIELDS_ANNOTATION, VERSION_ANNOTATION,
};
use crate::plan::Kind;

/// How long a write is remembered if its watch event never shows up.
pub const WRITE_MEMORY: Duration = Duration::from_secs(60);

/// monitoring.coreos.com/v1 ServiceMonitor, as far as the metadata cache needs it (no Rust type
/// for it ships with k8s-openapi; the operator builds it as a dynamic object).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ServiceMonitor {
    pub metadata: ObjectMeta,
}

impl Resource for ServiceMonitor {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> std::borrow::Cow<'_, str> {
        "ServiceMonitor".into()
    }
    fn group(_: &()) -> std::borrow::Cow<'_, str> {
        "monitoring.coreos.com".into()
    }
    fn version(_: &()) -> std::borrow::Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> std::borrow::Cow<'_, str> {
        "servicemonitors".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

pub type Meta<K> = PartialObjectMeta<K>;

/// The cached children, from watches filtered on the managed-by label.
#[derive(Clone)]
pub struct Stores {
    pub service_accounts: Store<Meta<ServiceAccount>>,
    pub config_maps: Store<Meta<ConfigMap>>,
    pub network_policies: Store<Meta<NetworkPolicy>>,
    pub services: Store<Meta<Service>>,
    pub deployments: Store<Deployment>,
    pub hpas: Store<Meta<HorizontalPodAutoscaler>>,
    pub pdbs: Store<Meta<PodDisruptionBudget>>,
    pub jobs: Store<Job>,
    pub cron_jobs: Store<Meta<CronJob>>,
    pub pvcs: Store<Meta<PersistentVolumeClaim>>,
    /// Watched once the cluster serves the API (see [`crate::controller`]); until this store is
    /// ready a reconcile reads ServiceMonitors from the API server.
    pub service_monitors: Store<Meta<ServiceMonitor>>,
}

fn meta_of<K>(store: &Store<K>, ns: &str, name: &str) -> Option<ObjectMeta>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store
        .get(&ObjectRef::new(name).within(ns))
        .map(|o| o.meta().clone())
}

/// Cuts a child's metadata to what the operator reads: identity, owner, deletion, the instance
/// label (how Jobs and the backup volume find their ClockifyAddon), the annotations in `keep`
/// and the hash of the operator's own managedFields entry. A thousand ClockifyAddons' children
/// then fit in a few megabytes.
pub fn slim(meta: &mut ObjectMeta, keep: &[&str]) {
    trim_managed_fields(meta);
    if let Some(labels) = meta.labels.as_mut() {
        labels.retain(|k, _| k == LABEL_INSTANCE);
    }
    if let Some(a) = meta.annotations.as_mut() {
        a.retain(|k, _| keep.contains(&k.as_str()));
    }
    meta.creation_timestamp = None;
    meta.finalizers = None;
}

/// The annotations decisions read on every child.
const CHILD_ANNOTATIONS: [&str; 2] = [APPLIED_ANNOTATION, OWNED_FIELDS_ANNOTATION];

/// A child watched as metadata, cut by [`slim`].
pub fn trim_meta<K>(o: &mut Meta<K>) {
    o.types = None;
    slim(&mut o.metadata, &CHILD_ANNOTATIONS);
}

/// A Deployment cut to what decisions read: slim metadata (with the migrated image), replicas,
/// the pod template's annotations and containers' names and images, and status.
pub fn trim_deployment(d: &mut Deployment) {
    slim(
        &mut d.metadata,
        &[
            APPLIED_ANNOTATION,
            OWNED_FIELDS_ANNOTATION,
            MIGRATED_IMAGE_ANNOTATION,
        ],
    );
    if let Some(spec) = d.spec.as_mut() {
        let template = std::mem::take(&mut spec.template);
        spec.selector = LabelSelector::default();
        spec.strategy = None;
        spec.template = PodTemplateSpec {
            metadata: template.metadata.map(|m| ObjectMeta {
                annotations: m.annotations.map(|mut a| {
                    a.retain(|k, _| k == VERSION_ANNOTATION);
                    a
                }),
                ..ObjectMeta::default()
            }),
            spec: template.spec.map(|s| PodSpec {
                containers: s
                    .containers
                    .into_iter()
                    .map(|c| Container {
                        name: c.name,
                        image: c.image,
                        ..Container::default()
                    })
                    .collect(),
                ..PodSpec::default()
            }),
        };
    }
}

/// A Job cut to its metadata, TTL and status.
pub fn trim_job(j: &mut Job) {
    trim_managed_fields(&mut j.metadata);
    if let Some(spec) = j.spec.as_mut() {
        spec.template = PodTemplateSpec::default();
        spec.selector = None;
    }
}

impl Stores {
    /// The cached metadata of the child of `kind` named `name` (None: not cached; for
    /// ServiceMonitor also when its store is not ready, see [`Stores::service_monitors_ready`]).
    pub fn meta(&self, kind: Kind, ns: &str, name: &str) -> Option<ObjectMeta> {
        match kind {
            Kind::ServiceAccount => meta_of(&self.service_accounts, ns, name),
            Kind::ConfigMap => meta_of(&self.config_maps, ns, name),
            Kind::NetworkPolicy => meta_of(&self.network_policies, ns, name),
            Kind::Service => meta_of(&self.services, ns, name),
            Kind::Deployment => meta_of(&self.deployments, ns, name),
            Kind::HorizontalPodAutoscaler => meta_of(&self.hpas, ns, name),
            Kind::PodDisruptionBudget => meta_of(&self.pdbs, ns, name),
            Kind::ServiceMonitor => meta_of(&self.service_monitors, ns, name),
            Kind::PersistentVolumeClaim => meta_of(&self.pvcs, ns, name),
            Kind::CronJob => meta_of(&self.cron_jobs, ns, name),
            Kind::Job => meta_of(&self.jobs, ns, name),
        }
    }

    /// Whether the ServiceMonitor cache holds its first full list.
    pub fn service_monitors_ready(&self) -> bool {
        use futures::FutureExt;
        self.service_monitors
            .wait_until_ready()
            .now_or_never()
            .is_some_and(|r| r.is_ok())
    }

    pub fn deployment(&self, ns: &str, name: &str) -> Option<Arc<Deployment>> {
        self.deployments.get(&ObjectRef::new(name).within(ns))
    }

    /// This ClockifyAddon's Jobs matching `selector` and owned by it (or, for backups, by its
    /// CronJob `via_cron`).
    pub fn jobs_of(
        &self,
        addon: &ClockifyAddon,
        selector: &std::collections::BTreeMap<String, String>,
        via_cron: Option<&str>,
    ) -> Vec<Arc<Job>> {
        let uid = addon.meta().uid.clone();
        self.jobs
            .state()
            .into_iter()
            .filter(|j| j.namespace() == addon.namespace())
            .filter(|j| selector.iter().all(|(k, v)| j.labels().get(k) == Some(v)))
            .filter(|j| {
                j.owner_references().iter().any(|o| {
                    (uid.is_some() && Some(&o.uid) == uid.as_ref())
                        || via_cron.is_some_and(|c| o.kind == "CronJob" && o.name == c)
                })
            })
            .collect()
    }

    /// Waits until every cache but the ServiceMonitors' has its first full list.
    pub async fn wait_until_ready(&self) -> bool {
        synced(&self.service_accounts).await
            && synced(&self.config_maps).await
            && synced(&self.network_policies).await
            && synced(&self.services).await
            && synced(&self.deployments).await
            && synced(&self.hpas).await
            && synced(&self.pdbs).await
            && synced(&self.jobs).await
            && synced(&self.cron_jobs).await
            && synced(&self.pvcs).await
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
    deployment: Option<Arc<Deployment>>,
    job: Option<Arc<Job>>,
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

    /// An apply's answer (its metadata trimmed like the cache's).
    pub fn applied(
        &self,
        kind: Kind,
        ns: &str,
        name: &str,
        mut meta: ObjectMeta,
        deployment: Option<Deployment>,
        job: Option<Job>,
    ) {
        self.sweep();
        trim_managed_fields(&mut meta);
        let k = key(kind, ns, name);
        if let Ok(mut d) = self.deleted.lock() {
            d.remove(&k);
        }
        if let Ok(mut a) = self.applied.lock() {
            a.insert(
                k,
                Entry {
                    at: Instant::now(),
                    meta,
                    deployment: deployment.map(|mut d| {
                        trim_deployment(&mut d);
                        Arc::new(d)
                    }),
                    job: job.map(|mut j| {
                        trim_job(&mut j);
                        Arc::new(j)
                    }),
                },
            );
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
        cached: Option<Arc<Deployment>>,
    ) -> Option<Arc<Deployment>> {
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
        cached: Vec<Arc<Job>>,
        wanted: impl Fn(&Job) -> bool,
    ) -> Vec<JobView> {
        let mut out: Vec<Arc<Job>> = Vec::new();
        let mut names = std::collections::BTreeSet::new();
        for j in cached {
            let name = j.name_any();
            let k = key(Kind::Job, ns, &name);
            if self.gone(&k, j.metadata.uid.as_deref()) {
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
        out.iter().map(|j| jobs::job_view(j)).collect()
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
        w.applied(Kind::Service, "ns", "x", meta("12", "u"), None, None);
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

    #[test]
    fn trimmed_deployments_keep_what_decisions_read() {
        let mut d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "a", "annotations": {"k": "v"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}, "annotations": {"clockify-addons.io/version": "1"}},
                                  "spec": {"containers": [{"name": "addon", "image": "i:1", "env": [{"name": "A", "value": "B"}]}]}}},
            "status": {"observedGeneration": 1}
        }))
        .unwrap();
        trim_deployment(&mut d);
        let spec = d.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(3));
        let t = &spec.template;
        assert_eq!(
            t.spec.as_ref().unwrap().containers[0].image.as_deref(),
            Some("i:1")
        );
        assert!(t.spec.as_ref().unwrap().containers[0].env.is_none());
        assert!(t.metadata.as_ref().unwrap().labels.is_none());
        assert_eq!(
            t.metadata.as_ref().unwrap().annotations.as_ref().unwrap()["clockify-addons.io/version"],
            "1"
        );
        assert_eq!(d.status.unwrap().observed_generation, Some(1));
    }
}
