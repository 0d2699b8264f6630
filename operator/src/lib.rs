//! The clockify-operator: the `ClockifyAddon` API ([`crd`]), tier profiles ([`tier`]), pure
//! builders ([`build`], [`plan`]), status ([`status`]), the reconcile pipeline
//! ([`reconcile`]), and the runtime ([`controller`], [`leader`], [`admin`]).

pub mod admin;
pub mod backups;
pub mod build;
pub mod controller;
pub mod crd;
pub mod jobs;
pub mod leader;
pub mod meta;
pub mod metrics;
pub mod plan;
pub mod rbac;
pub mod reconcile;
pub mod reference;
pub mod render;
pub mod restore;
pub mod rollout;
pub mod settings;
pub mod status;
pub mod subset;
pub mod tier;
pub mod upgrade;

pub use crd::{ClockifyAddon, ClockifyAddonSpec, ClockifyAddonStatus};

/// The CRD as YAML, as `crds/` holds it.
pub fn crd_yaml() -> Result<String, serde_norway::Error> {
    use kube::CustomResourceExt;
    serde_norway::to_string(&ClockifyAddon::crd())
}
