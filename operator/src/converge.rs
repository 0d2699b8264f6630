//! apply -> prune: every desired child whose [`Verdict`] is not in sync is applied; optional
//! children no longer desired are deleted. A pass over an unchanged world makes no API call at
//! all (the caches answer), so a no-op reconcile writes nothing.

use std::sync::Arc;

use crate::views::DeploymentState;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::Api;

use crate::apply;
use crate::crd::ClockifyAddon;
use crate::drift::{self, Verdict};
use crate::plan::{Child, Kind, Plan};
use crate::reconcile::{Context, Error};

/// What a pass changed, for Events.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Children that did not exist.
    pub created: Vec<String>,
    /// Children whose desired object changed.
    pub updated: Vec<String>,
    /// Children someone else changed, put back.
    pub drifted: Vec<String>,
    /// Children no longer desired, deleted.
    pub pruned: Vec<String>,
    /// Migration Jobs started, superseded or retried: (event reason, note).
    pub migration: Vec<(&'static str, String)>,
    /// Backups and restores: (warning, event reason, note).
    pub backup: Vec<(bool, &'static str, String)>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.created.is_empty()
            && self.updated.is_empty()
            && self.drifted.is_empty()
            && self.pruned.is_empty()
            && self.migration.is_empty()
            && self.backup.is_empty()
    }
}

/// A child's metadata as the operator knows it: its cache with its own writes on top, or for
/// a ServiceMonitor or HTTPRoute not cached yet, the API server's answer.
pub async fn observed(
    ctx: &Context,
    kind: Kind,
    ns: &str,
    name: &str,
) -> Result<Option<ObjectMeta>, Error> {
    let cached = if !ctx.stores.cached(kind) {
        let api: Api<kube::api::DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), ns, &crate::apply::api_resource(kind));
        api.get_metadata_opt(name)
            .await
            .map_err(|source| Error::Read {
                kind: kind.as_str(),
                name: name.to_owned(),
                source,
            })?
            .map(|o| o.metadata)
    } else {
        ctx.stores.meta(kind, ns, name)
    };
    Ok(ctx.written.meta(kind, ns, name, cached))
}

/// The Deployment as the operator knows it (its cache, or its own newer write).
pub fn deployment(ctx: &Context, ns: &str, name: &str) -> Option<Arc<DeploymentState>> {
    ctx.written
        .deployment(ns, name, ctx.stores.deployment(ns, name))
}

/// What each desired child needs.
pub async fn verdicts(plan: &Plan, ctx: &Context, ns: &str) -> Result<Vec<Verdict>, Error> {
    let mut out = Vec::with_capacity(plan.children.len());
    for child in &plan.children {
        let observed = observed(ctx, child.kind(), ns, &child.name()).await?;
        out.push(drift::verdict(
            &drift::desired_hash(&child.to_json()),
            observed.as_ref(),
        ));
    }
    Ok(out)
}

/// The children that are not as the plan says (for a paused ClockifyAddon).
pub async fn out_of_sync(plan: &Plan, ctx: &Context, ns: &str) -> Result<Vec<String>, Error> {
    Ok(plan
        .children
        .iter()
        .zip(verdicts(plan, ctx, ns).await?)
        .filter(|(_, v)| *v != Verdict::InSync)
        .map(|(c, _)| format!("{} {}", c.kind().as_str(), c.name()))
        .collect())
}

/// Applies what is not in sync and prunes what is no longer desired.
pub async fn converge(
    addon: &ClockifyAddon,
    plan: &Plan,
    ctx: &Context,
    ns: &str,
) -> Result<Changes, Error> {
    let mut changes = Changes::default();
    for (child, verdict) in plan.children.iter().zip(verdicts(plan, ctx, ns).await?) {
        let label = format!("{} {}", child.kind().as_str(), child.name());
        match verdict {
            Verdict::InSync => continue,
            Verdict::Create => changes.created.push(label),
            Verdict::Update => changes.updated.push(label),
            Verdict::Drifted => changes.drifted.push(label),
        }
        tracing::debug!(kind = child.kind().as_str(), name = %child.name(), ?verdict, "applying");
        match child {
            Child::Deployment(_) if plan.settings.autoscaled() => {
                apply_autoscaled(plan, child, ctx, ns).await?
            }
            _ => {
                apply::apply_child(ctx, child, ns).await?;
            }
        }
    }
    for kind in &plan.absent {
        let served = match kind {
            Kind::ServiceMonitor => plan.capabilities.service_monitor,
            Kind::HTTPRoute => plan.capabilities.http_route,
            Kind::ScaledObject => plan.capabilities.scaled_object,
            _ => true,
        };
        if !served {
            continue; // the API is not served: there is nothing to look up
        }
        let name = crate::plan::optional_name(addon, *kind);
        let Some(meta) = observed(ctx, *kind, ns, &name).await? else {
            continue;
        };
        let ours = addon.metadata.uid.as_deref().is_some_and(|uid| {
            meta.owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == uid && o.controller == Some(true))
        });
        if ours {
            apply::delete(ctx, *kind, ns, &name, meta.uid.clone()).await?;
            changes.pruned.push(format!("{} {}", kind.as_str(), name));
        }
    }
    Ok(changes)
}

/// Applies the Deployment of an autoscaled add-on, which sets no `spec.replicas`. While no
/// autoscaler runs yet (just created, or switching from a fixed count), or the count is below
/// the minimum (scaling back after a restore), the count is first handed to a field manager of
/// its own, so letting go of it never resets it to 1; an autoscaler that already runs is never
/// fought.
async fn apply_autoscaled(
    plan: &Plan,
    child: &Child,
    ctx: &Context,
    ns: &str,
) -> Result<(), Error> {
    let name = child.name();
    let (min, max) = (plan.settings.min_replicas, plan.settings.max_replicas);
    let live = deployment(ctx, ns, &name);
    let hpa = observed(ctx, Kind::HorizontalPodAutoscaler, ns, &name).await?;
    let live_replicas = live.as_ref().map(|d| d.replicas.unwrap_or(1));
    match live_replicas {
        Some(n) if hpa.is_none() || n < min => {
            apply::hand_over_replicas(ctx, ns, &name, n.clamp(min, max)).await?;
            apply::apply_child(ctx, child, ns).await?;
        }
        Some(_) => {
            apply::apply_child(ctx, child, ns).await?;
        }
        None => {
            apply::apply_child(ctx, child, ns).await?;
            apply::hand_over_replicas(ctx, ns, &name, min).await?;
        }
    }
    Ok(())
}
