//! What decisions read of the Deployments and Jobs the operator starts, decoded straight from
//! the API server's JSON (a watch event, or the answer to an apply): a few hundred bytes each,
//! where a k8s-openapi `Deployment` or `Job` takes kilobytes even when trimmed (its pod template
//! structs alone), and a real cluster keeps several backup Jobs per ClockifyAddon.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::DeploymentStatus;
use k8s_openapi::api::batch::v1::{Job, JobSpec, JobStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::Deserialize;

use crate::build::deployment::MIGRATED_IMAGE_ANNOTATION;
use crate::cache::{Record, SlimMeta};
use crate::jobs::{self, JobView};
use crate::meta::{LABEL_COMPONENT, LABEL_NAME, VERSION_ANNOTATION};

/// A Deployment as decisions read it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeploymentState {
    /// Name, namespace, resourceVersion, generation (what a watch needs).
    pub metadata: ObjectMeta,
    pub record: Record,
    /// The image whose migration completed (`clockify-addons.io/migrated-image`).
    pub migrated_image: Option<String>,
    /// `spec.replicas`.
    pub replicas: Option<i32>,
    /// The version the pod template runs (`clockify-addons.io/version` on the template).
    pub version: Option<String>,
    /// The image of the `addon` container.
    pub image: Option<String>,
    pub status: Option<DeploymentStatus>,
}

#[derive(Deserialize)]
struct RawContainer {
    name: String,
    image: Option<String>,
}

#[derive(Deserialize, Default)]
struct RawPodSpec {
    #[serde(default)]
    containers: Vec<RawContainer>,
}

#[derive(Deserialize, Default)]
struct RawTemplateMeta {
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
struct RawTemplate {
    metadata: Option<RawTemplateMeta>,
    spec: Option<RawPodSpec>,
}

#[derive(Deserialize, Default)]
struct RawDeploymentSpec {
    replicas: Option<i32>,
    template: Option<RawTemplate>,
}

impl<'de> Deserialize<'de> for DeploymentState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            metadata: SlimMeta,
            spec: Option<RawDeploymentSpec>,
            status: Option<DeploymentStatus>,
        }
        let raw = Raw::deserialize(d)?;
        let mut parts = raw.metadata.into_parts();
        let spec = raw.spec.unwrap_or_default();
        let template = spec.template.unwrap_or_default();
        Ok(Self {
            metadata: parts.metadata,
            record: parts.record,
            migrated_image: parts.annotations.remove(MIGRATED_IMAGE_ANNOTATION),
            replicas: spec.replicas,
            version: template
                .metadata
                .and_then(|m| m.annotations)
                .and_then(|mut a| a.remove(VERSION_ANNOTATION)),
            image: template
                .spec
                .unwrap_or_default()
                .containers
                .into_iter()
                .find(|c| c.name == "addon")
                .and_then(|c| c.image),
            status: raw.status,
        })
    }
}

impl DeploymentState {
    /// From an object the API server answered with.
    pub fn from_json(v: &serde_json::Value) -> Option<Self> {
        serde_json::from_value(v.clone()).ok()
    }
}

/// A Job as decisions read it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub metadata: ObjectMeta,
    pub record: Record,
    /// The CronJob that started it (scheduled backups).
    pub cron_owner: Option<String>,
    /// `app.kubernetes.io/name` (the add-on's slug) and `app.kubernetes.io/component`.
    pub name_label: Option<String>,
    pub component: Option<String>,
    pub view: JobView,
}

impl<'de> Deserialize<'de> for JobRecord {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct RawSpec {
            ttl_seconds_after_finished: Option<i32>,
        }
        #[derive(Deserialize)]
        struct Raw {
            metadata: SlimMeta,
            spec: Option<RawSpec>,
            status: Option<JobStatus>,
        }
        let raw = Raw::deserialize(d)?;
        let mut parts = raw.metadata.into_parts();
        // The view from a Job holding only what it reads.
        let view = jobs::job_view(&Job {
            metadata: ObjectMeta {
                name: parts.metadata.name.clone(),
                annotations: Some(std::mem::take(&mut parts.annotations)),
                ..ObjectMeta::default()
            },
            spec: Some(JobSpec {
                ttl_seconds_after_finished: raw.spec.and_then(|s| s.ttl_seconds_after_finished),
                ..JobSpec::default()
            }),
            status: raw.status,
        });
        Ok(Self {
            metadata: parts.metadata,
            record: parts.record,
            cron_owner: parts.cron_owner,
            name_label: parts.labels.remove(LABEL_NAME),
            component: parts.labels.remove(LABEL_COMPONENT),
            view,
        })
    }
}

impl JobRecord {
    pub fn from_json(v: &serde_json::Value) -> Option<Self> {
        serde_json::from_value(v.clone()).ok()
    }
}

macro_rules! resource_of {
    ($view:ty, $k8s:ty) => {
        impl Resource for $view {
            type DynamicType = ();
            type Scope = k8s_openapi::NamespaceResourceScope;

            fn kind(_: &()) -> std::borrow::Cow<'_, str> {
                <$k8s as k8s_openapi::Resource>::KIND.into()
            }
            fn group(_: &()) -> std::borrow::Cow<'_, str> {
                <$k8s as k8s_openapi::Resource>::GROUP.into()
            }
            fn version(_: &()) -> std::borrow::Cow<'_, str> {
                <$k8s as k8s_openapi::Resource>::VERSION.into()
            }
            fn plural(_: &()) -> std::borrow::Cow<'_, str> {
                <$k8s as k8s_openapi::Resource>::URL_PATH_SEGMENT.into()
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

resource_of!(DeploymentState, k8s_openapi::api::apps::v1::Deployment);
resource_of!(JobRecord, Job);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_deployment_is_read_into_what_decisions_need() {
        let d = DeploymentState::from_json(&json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "a", "namespace": "ns", "uid": "u", "resourceVersion": "7", "generation": 3,
                "annotations": {"clockify-addons.io/migrated-image": "img:1", "clockify-addons.io/applied": "h"},
                "ownerReferences": [{"apiVersion": "clockify-addons.io/v1alpha1", "kind": "ClockifyAddon", "name": "a", "uid": "ua", "controller": true}],
                "managedFields": [{"manager": "clockify-operator", "operation": "Apply", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"replicas": 2, "selector": {}, "template": {
                "metadata": {"annotations": {"clockify-addons.io/version": "1.0", "x": "y"}},
                "spec": {"containers": [{"name": "sidecar", "image": "s"}, {"name": "addon", "image": "img:1", "env": [{"name": "A", "value": "B"}]}]}}},
            "status": {"observedGeneration": 3, "replicas": 2}
        }))
        .unwrap();
        assert_eq!(d.replicas, Some(2));
        assert_eq!(d.version.as_deref(), Some("1.0"));
        assert_eq!(d.image.as_deref(), Some("img:1"));
        assert_eq!(d.migrated_image.as_deref(), Some("img:1"));
        assert_eq!(d.metadata.generation, Some(3));
        assert_eq!(d.record.addon(), Some("a"));
        assert!(d.record.to_meta("ns", "a").managed_fields.is_some());
        assert_eq!(d.status.unwrap().observed_generation, Some(3));
    }

    #[test]
    fn a_job_is_read_into_its_view() {
        let j = JobRecord::from_json(&json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "a-backup-1", "namespace": "ns", "uid": "u", "resourceVersion": "7",
                "labels": {"app.kubernetes.io/name": "api-studio", "app.kubernetes.io/instance": "a", "app.kubernetes.io/component": "backup"},
                "annotations": {"clockify-addons.io/version": "1.0", "clockify-addons.io/image": "img", "clockify-addons.io/generation": "4", "clockify-addons.io/retry-migration": "r"},
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "a-backup", "uid": "uc", "controller": true}]},
            "spec": {"ttlSecondsAfterFinished": 60, "template": {"spec": {"containers": [{"name": "backup", "image": "x"}]}}},
            "status": {"startTime": "2026-12-02T00:00:00Z", "completionTime": "2026-12-02T00:01:00Z",
                "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": "2026-12-02T00:01:00Z"}]}
        }))
        .unwrap();
        assert_eq!(j.view.state, crate::jobs::JobState::Succeeded);
        assert_eq!(j.view.generation, 4);
        assert_eq!(j.view.ttl, Some(60));
        assert_eq!(j.view.retry.as_deref(), Some("r"));
        assert_eq!(j.view.version.as_deref(), Some("1.0"));
        assert_eq!(j.cron_owner.as_deref(), Some("a-backup"));
        assert_eq!(j.component.as_deref(), Some("backup"));
        assert_eq!(j.name_label.as_deref(), Some("api-studio"));
        assert_eq!(j.record.addon(), Some("a"), "by its instance label");
    }
}
