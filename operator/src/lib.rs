//! The clockify-operator: the `ClockifyAddon` API ([`crd`]), tier profiles ([`tier`]), pure
//! builders ([`build`], [`plan`]), decisions ([`upgrade`], [`restore`], [`backups`],
//! [`drift`]), status ([`status`], [`rollout`]), the reconcile pipeline ([`reconcile`] over
//! [`cache`], [`converge`], [`apply`], [`events`], [`pods`]), and the runtime
//! ([`controller`], [`leader`], [`admin`]).

pub mod admin;
pub mod apply;
pub mod backups;
pub mod build;
pub mod cache;
pub mod capabilities;
pub mod controller;
pub mod converge;
pub mod crd;
pub mod drift;
pub mod events;
pub mod jobs;
pub mod leader;
pub mod meta;
pub mod metrics;
pub mod plan;
pub mod plugin;
pub mod pods;
pub mod rbac;
pub mod reconcile;
pub mod reference;
pub mod render;
pub mod restore;
pub mod rollout;
pub mod secrets;
pub mod settings;
pub mod status;
pub mod tier;
pub mod upgrade;
pub mod views;

pub use crd::{ClockifyAddon, ClockifyAddonSpec, ClockifyAddonStatus};

/// The CRD as YAML, as `crds/` holds it.
pub fn crd_yaml() -> Result<String, serde_norway::Error> {
    use kube::CustomResourceExt;
    serde_norway::to_string(&ClockifyAddon::crd())
}
