//! events: Kubernetes Events on a ClockifyAddon for every meaningful transition (children
//! created, updated, put back, pruned; migrations, backups and restores; Ready, Stalled and
//! Paused flipping), each published once: the transitions are computed from the status this
//! replica last wrote, not from a cache that may not show it yet.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};
use kube::{Client, Resource};
use serde_json::json;

use crate::converge::Changes;
use crate::crd::{ClockifyAddon, ClockifyAddonStatus};
use crate::reconcile::Context;
use crate::status::{self, Outcome};

/// How long an Event is remembered to count its repetitions, as client-go does.
const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);
/// The API server refuses a longer note.
const MAX_NOTE_BYTES: usize = 1024;

/// What makes two Events the same: client-go's isomorphic event key (type, action, reason,
/// reporter, object, note). kube-runtime's Recorder leaves the note out, so a second
/// `DriftCorrected` about another child would only bump the count of the first and keep its
/// note; this recorder makes it an Event of its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    type_: &'static str,
    action: String,
    reason: String,
    /// kind, namespace, name, uid (not the resourceVersion, which changes between repeats).
    regarding: (String, String, String, String),
    note: String,
}

#[derive(Debug, Clone)]
struct Sent {
    name: String,
    count: i32,
    last: Timestamp,
}

/// Publishes events.k8s.io/v1 Events; a repeat within [`SERIES_WINDOW`] becomes a series on the
/// first (`kubectl describe` shows "x3 over 2m") instead of a new object.
pub struct Recorder {
    client: Client,
    reporter: Reporter,
    sent: tokio::sync::Mutex<HashMap<Key, Sent>>,
}

impl Recorder {
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self {
            client,
            reporter,
            sent: Default::default(),
        }
    }

    pub async fn publish(
        &self,
        ev: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let ns = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let note = truncate(ev.note.clone().unwrap_or_default(), MAX_NOTE_BYTES);
        let type_ = match ev.type_ {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        };
        let key = Key {
            type_,
            action: ev.action.clone(),
            reason: ev.reason.clone(),
            regarding: (
                regarding.kind.clone().unwrap_or_default(),
                ns.clone(),
                regarding.name.clone().unwrap_or_default(),
                regarding.uid.clone().unwrap_or_default(),
            ),
            note: note.clone(),
        };
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &ns);
        // The lock is never held across a request: reconciles publish concurrently.
        let repeat = {
            let mut sent = self.sent.lock().await;
            sent.retain(|_, s| {
                now.duration_since(s.last).as_secs_f64() < SERIES_WINDOW.as_secs_f64()
            });
            sent.get(&key).cloned()
        };
        if let Some(s) = repeat {
            let series = json!({"series": EventSeries {
                count: s.count + 1,
                last_observed_time: MicroTime(now),
            }});
            match api
                .patch(&s.name, &PatchParams::default(), &Patch::Merge(&series))
                .await
            {
                Ok(_) => {
                    if let Some(s) = self.sent.lock().await.get_mut(&key) {
                        s.count += 1;
                        s.last = now;
                    }
                    return Ok(());
                }
                // Gone (expired, deleted): a new Event.
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let name = format!(
            "{}.{:x}",
            regarding
                .name
                .as_deref()
                .unwrap_or(&self.reporter.controller),
            now.as_nanosecond()
        );
        let event = K8sEvent {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(now)),
            action: Some(ev.action.clone()),
            reason: Some(ev.reason.clone()),
            note: Some(note),
            type_: Some(type_.to_owned()),
            regarding: Some(regarding.clone()),
            related: ev.secondary.clone(),
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| self.reporter.controller.clone()),
            ),
            ..K8sEvent::default()
        };
        api.create(&PostParams::default(), &event).await?;
        self.sent.lock().await.insert(
            key,
            Sent {
                name,
                count: 1,
                last: now,
            },
        );
        Ok(())
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max - 3;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("...");
    }
    s
}

pub async fn publish(
    ctx: &Context,
    addon_ref: &ObjectReference,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let ev = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action: action.to_owned(),
        secondary: None,
    };
    match ctx.recorder.publish(&ev, addon_ref).await {
        Ok(()) => ctx
            .metrics
            .writes
            .with_label_values(&["Event", "create"])
            .inc(),
        // An Event that cannot be written must not fail the reconcile.
        Err(e) => tracing::warn!(error = %e, reason, "cannot publish an event"),
    }
}

/// Events on every meaningful transition: children created, changed back, pruned; Ready,
/// Stalled and Paused flipping.
pub async fn publish_events(
    addon: &ClockifyAddon,
    ctx: &Context,
    changes: &Changes,
    before: Option<&ClockifyAddonStatus>,
    after: &ClockifyAddonStatus,
    outcome: &Outcome,
) {
    let r = addon.object_ref(&());
    if !changes.created.is_empty() {
        publish(
            ctx,
            &r,
            EventType::Normal,
            "Created",
            "Apply",
            format!("created {}", changes.created.join(", ")),
        )
        .await;
    }
    if !changes.updated.is_empty() {
        publish(
            ctx,
            &r,
            EventType::Normal,
            "Updated",
            "Apply",
            format!(
                "applied the desired state to {}",
                changes.updated.join(", ")
            ),
        )
        .await;
    }
    if !changes.drifted.is_empty() {
        publish(
            ctx,
            &r,
            EventType::Normal,
            "DriftCorrected",
            "Apply",
            format!(
                "put back what was changed outside the operator in {}",
                changes.drifted.join(", ")
            ),
        )
        .await;
    }
    if status::condition_status(Some(after), status::DATABASE_MIGRATED) == Some("True")
        && status::condition_status(before, status::DATABASE_MIGRATED) == Some("False")
    {
        let job = after
            .last_migration
            .as_ref()
            .map(|m| m.job.clone())
            .unwrap_or_default();
        publish(
            ctx,
            &r,
            EventType::Normal,
            "MigrationSucceeded",
            "Migrate",
            format!(
                "migration Job {job} succeeded; rolling out version {}",
                addon.spec.version
            ),
        )
        .await;
    }
    for (reason, note) in &changes.migration {
        publish(ctx, &r, EventType::Normal, reason, "Migrate", note.clone()).await;
    }
    for (warning, reason, note) in &changes.backup {
        let kind = if *warning {
            EventType::Warning
        } else {
            EventType::Normal
        };
        let action = if reason.starts_with("Restore") {
            "Restore"
        } else {
            "Backup"
        };
        publish(ctx, &r, kind, reason, action, note.clone()).await;
    }
    if !changes.pruned.is_empty() {
        publish(
            ctx,
            &r,
            EventType::Normal,
            "Pruned",
            "Delete",
            format!("deleted {} (no longer desired)", changes.pruned.join(", ")),
        )
        .await;
    }
    let was = |t| status::condition_status(before, t);
    let is = |t| status::condition_status(Some(after), t);
    let message = |t: &str| {
        after
            .conditions
            .iter()
            .find(|c| c.type_ == t)
            .map(|c| c.message.clone())
            .unwrap_or_default()
    };
    if is(status::STALLED) == Some("True") && was(status::STALLED) != Some("True") {
        let reason = match outcome {
            Outcome::Invalid(_) => "InvalidSpec",
            Outcome::Rejected(_) => "ApplyRejected",
            Outcome::SecretMissing(_) => "SecretMissing",
            _ => after
                .conditions
                .iter()
                .find(|c| c.type_ == status::STALLED)
                .map(|c| {
                    if c.reason == "MigrationFailed" {
                        "MigrationFailed"
                    } else {
                        "RolloutStuck"
                    }
                })
                .unwrap_or("RolloutStuck"),
        };
        publish(
            ctx,
            &r,
            EventType::Warning,
            reason,
            "Reconcile",
            message(status::STALLED),
        )
        .await;
    }
    if is(status::READY) != was(status::READY) {
        match is(status::READY) {
            Some("True") => {
                publish(
                    ctx,
                    &r,
                    EventType::Normal,
                    "Ready",
                    "Reconcile",
                    message(status::READY),
                )
                .await
            }
            _ if was(status::READY) == Some("True") => {
                publish(
                    ctx,
                    &r,
                    EventType::Warning,
                    "NotReady",
                    "Reconcile",
                    message(status::READY),
                )
                .await
            }
            _ => {}
        }
    }
    if is(status::PAUSED) == Some("True") && was(status::PAUSED) != Some("True") {
        publish(
            ctx,
            &r,
            EventType::Normal,
            "Paused",
            "Reconcile",
            message(status::PAUSED),
        )
        .await;
    }
    if is(status::PAUSED).is_none() && was(status::PAUSED) == Some("True") {
        publish(
            ctx,
            &r,
            EventType::Normal,
            "Resumed",
            "Reconcile",
            "reconciliation resumed".to_owned(),
        )
        .await;
    }
    if is(status::EXPOSED) == Some("False") && was(status::EXPOSED) != Some("False") {
        publish(
            ctx,
            &r,
            EventType::Warning,
            "GatewayAPIMissing",
            "Reconcile",
            message(status::EXPOSED),
        )
        .await;
    }
    if is(status::MONITORING) == Some("False") && was(status::MONITORING) != Some("False") {
        publish(
            ctx,
            &r,
            EventType::Warning,
            "ServiceMonitorAPIMissing",
            "Reconcile",
            message(status::MONITORING),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn notes_are_cut_on_a_character_boundary() {
        let long = "é".repeat(600);
        let cut = super::truncate(long, 1024);
        assert!(cut.len() <= 1024 && cut.ends_with("..."));
        assert_eq!(super::truncate("short".into(), 1024), "short");
    }
}
