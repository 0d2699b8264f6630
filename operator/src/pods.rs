//! What the operator reads from pods (best effort, never cached): a finished Job's termination
//! message, and whether any pod of an add-on is left before a restore.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde_json::Value;

use crate::crd::ClockifyAddon;
use crate::meta::selector_labels;
use crate::reconcile::{Context, Error};
use crate::restore::PodsLeft;

/// The add-on's pods (component `addon`), terminating ones included.
pub async fn pods_left(ctx: &Context, addon: &ClockifyAddon, ns: &str) -> Result<PodsLeft, Error> {
    let selector = selector_labels(addon)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let list = pods
        .list_metadata(&ListParams::default().labels(&selector))
        .await
        .map_err(|source| Error::Read {
            kind: "Pod",
            name: selector.clone(),
            source,
        })?;
    Ok(PodsLeft {
        total: list.items.len(),
        terminating: list
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_some())
            .count(),
    })
}

/// The termination message of a finished Job's pod (what the backup or restore reported).
/// Reading pods is best effort: without it, status falls back to the Job's own reason.
pub async fn termination_message(ctx: &Context, ns: &str, job: &str) -> Option<String> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let lp = ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}"));
    match pods.list(&lp).await {
        Ok(list) => {
            let mut messages: Vec<(String, String)> = list
                .items
                .iter()
                .flat_map(|p| {
                    let started = p
                        .status
                        .as_ref()
                        .and_then(|s| s.start_time.as_ref())
                        .map(|t| t.0.to_string())
                        .unwrap_or_default();
                    p.status
                        .as_ref()
                        .and_then(|s| s.container_statuses.clone())
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(move |c| {
                            c.state
                                .and_then(|s| s.terminated)
                                .and_then(|t| t.message)
                                .map(|m| (started.clone(), m.trim().to_owned()))
                        })
                })
                .filter(|(_, m)| !m.is_empty())
                .collect();
            messages.sort();
            messages.pop().map(|(_, m)| last_line(&m))
        }
        Err(e) => {
            tracing::warn!(job, error = %e, "cannot read the Job's pods for its termination message");
            None
        }
    }
}

/// A termination message may be the tail of a log (FallbackToLogsOnError): its last line, and
/// from a JSON log line, its error or message.
fn last_line(m: &str) -> String {
    let line = m
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(m)
        .trim();
    match serde_json::from_str::<Value>(line) {
        Ok(v) => v
            .get("error")
            .or_else(|| v.get("message"))
            .and_then(Value::as_str)
            .unwrap_or(line)
            .to_owned(),
        Err(_) => line.chars().take(1000).collect(),
    }
}
