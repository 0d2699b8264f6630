//! apply: every write the operator makes to the API server, each counted in
//! `clockify_operator_api_writes_total` and remembered in [`crate::cache::Written`] so the next
//! reconcile reads it even before the watch event arrives.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use serde_json::json;

use crate::build::service_monitor;
use crate::crd::{ClockifyAddon, ClockifyAddonStatus};
use crate::drift;
use crate::meta::{HANDOVER_MANAGER, MANAGER};
use crate::plan::{Child, Kind};
use crate::reconcile::{Context, Error};

/// Where the API server keeps objects of `kind`.
pub fn api_resource(kind: Kind) -> ApiResource {
    match kind {
        Kind::ServiceAccount => ApiResource::erase::<ServiceAccount>(&()),
        Kind::ConfigMap => ApiResource::erase::<ConfigMap>(&()),
        Kind::NetworkPolicy => ApiResource::erase::<NetworkPolicy>(&()),
        Kind::Service => ApiResource::erase::<Service>(&()),
        Kind::Ingress => ApiResource::erase::<Ingress>(&()),
        Kind::HTTPRoute => crate::build::exposure::http_route_resource(),
        Kind::Deployment => ApiResource::erase::<Deployment>(&()),
        Kind::HorizontalPodAutoscaler => ApiResource::erase::<HorizontalPodAutoscaler>(&()),
        Kind::ScaledObject => crate::build::scaling::scaled_object_resource(),
        Kind::PodDisruptionBudget => ApiResource::erase::<PodDisruptionBudget>(&()),
        Kind::ServiceMonitor => service_monitor::api_resource(),
        Kind::PersistentVolumeClaim => ApiResource::erase::<PersistentVolumeClaim>(&()),
        Kind::CronJob => ApiResource::erase::<CronJob>(&()),
        Kind::Job => ApiResource::erase::<Job>(&()),
    }
}

fn api(ctx: &Context, kind: Kind, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(ctx.client.clone(), ns, &api_resource(kind))
}

fn count(ctx: &Context, kind: &str, verb: &str) {
    ctx.metrics.writes.with_label_values(&[kind, verb]).inc();
}

/// What an apply answered.
#[derive(Debug, Clone)]
pub struct Applied {
    pub meta: ObjectMeta,
}

/// Server-side apply of a desired child, stamped for change detection ([`drift`]): a dry run
/// learns which fields the API server assigns to the operator for exactly this object, and the
/// apply records that set's hash and the desired object's hash on the child.
pub async fn apply_child(ctx: &Context, child: &Child, ns: &str) -> Result<Applied, Error> {
    let kind = child.kind();
    let name = child.name();
    let err = |source| Error::Apply {
        kind: kind.as_str(),
        name: name.clone(),
        source,
    };
    let mut body = child.to_json();
    let applied = drift::desired_hash(&body);
    let api = api(ctx, kind, ns);
    // The field set does not depend on the annotations' values: any placeholder will do.
    drift::stamp(&mut body, &applied, "");
    let dry = api
        .patch(
            &name,
            &PatchParams::apply(MANAGER).force().dry_run(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(err)?;
    let owned = drift::owned_fields(&dry.metadata).unwrap_or_default();
    drift::stamp(&mut body, &applied, &owned);
    let obj = api
        .patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(err)?;
    count(ctx, kind.as_str(), "apply");
    ctx.written.applied(
        kind,
        ns,
        &name,
        &serde_json::to_value(&obj).unwrap_or_default(),
    );
    Ok(Applied { meta: obj.metadata })
}

/// Creates a Job (server-side apply; a Job is created once and never changed but for its TTL).
pub async fn create_job(ctx: &Context, job: &Job, ns: &str) -> Result<(), Error> {
    let name = job.metadata.name.clone().unwrap_or_default();
    let created = Api::<Job>::namespaced(ctx.client.clone(), ns)
        .patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(job),
        )
        .await
        .map_err(|source| Error::Apply {
            kind: "Job",
            name: name.clone(),
            source,
        })?;
    count(ctx, "Job", "apply");
    ctx.written.applied(
        Kind::Job,
        ns,
        &name,
        &serde_json::to_value(&created).unwrap_or_default(),
    );
    Ok(())
}

/// Sets (or with None removes) a finished Job's `ttlSecondsAfterFinished`.
pub async fn set_job_ttl(
    ctx: &Context,
    ns: &str,
    name: &str,
    ttl: Option<i32>,
) -> Result<(), Error> {
    let patch = json!({"spec": {"ttlSecondsAfterFinished": ttl}});
    let job = Api::<Job>::namespaced(ctx.client.clone(), ns)
        .patch(
            name,
            &PatchParams {
                field_manager: Some(MANAGER.to_owned()),
                ..PatchParams::default()
            },
            &Patch::Merge(&patch),
        )
        .await;
    match job {
        Ok(job) => {
            count(ctx, "Job", "patch");
            ctx.written.applied(
                Kind::Job,
                ns,
                name,
                &serde_json::to_value(&job).unwrap_or_default(),
            );
            Ok(())
        }
        // Gone meanwhile: nothing to keep or to expire.
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(source) => Err(Error::Apply {
            kind: "Job",
            name: name.to_owned(),
            source,
        }),
    }
}

/// Hands `spec.replicas` of a Deployment to a field manager of its own, at `replicas`, before
/// the operator's apply stops setting it (an autoscaler takes over). Without this the API server
/// would reset the field to its default of 1 the moment the operator let go, before the
/// autoscaler reacts. The autoscaler's own writes then take the field from the hand-over
/// manager, which disappears.
pub async fn hand_over_replicas(
    ctx: &Context,
    ns: &str,
    name: &str,
    replicas: i32,
) -> Result<(), Error> {
    let body = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns}, "spec": {"replicas": replicas}});
    let d = Api::<Deployment>::namespaced(ctx.client.clone(), ns)
        .patch(
            name,
            &PatchParams::apply(HANDOVER_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(|source| Error::Apply {
            kind: "Deployment",
            name: name.to_owned(),
            source,
        })?;
    count(ctx, "Deployment", "handover");
    ctx.written.applied(
        Kind::Deployment,
        ns,
        name,
        &serde_json::to_value(&d).unwrap_or_default(),
    );
    Ok(())
}

/// Deletes a child (background propagation); already gone is fine.
pub async fn delete(
    ctx: &Context,
    kind: Kind,
    ns: &str,
    name: &str,
    uid: Option<String>,
) -> Result<(), Error> {
    match api(ctx, kind, ns)
        .delete(name, &DeleteParams::background())
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(source) => {
            return Err(Error::Prune {
                kind: kind.as_str(),
                name: name.to_owned(),
                source,
            });
        }
    }
    count(ctx, kind.as_str(), "delete");
    ctx.written.deleted(kind, ns, name, uid);
    Ok(())
}

/// Writes the ClockifyAddon's status (server-side apply of the status subresource).
pub async fn write_status(
    ctx: &Context,
    addon: &ClockifyAddon,
    status: &ClockifyAddonStatus,
) -> Result<(), Error> {
    let (ns, name) = (
        addon.metadata.namespace.clone().unwrap_or_default(),
        addon.metadata.name.clone().unwrap_or_default(),
    );
    let api: Api<ClockifyAddon> = Api::namespaced(ctx.client.clone(), &ns);
    let patch = json!({"apiVersion": "clockify-addons.io/v1alpha1", "kind": "ClockifyAddon", "status": status});
    let written = api
        .patch_status(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(Error::Status)?;
    count(ctx, "ClockifyAddon", "status");
    ctx.written.status(
        &ns,
        &name,
        written.metadata.resource_version.unwrap_or_default(),
        status.clone(),
    );
    Ok(())
}
