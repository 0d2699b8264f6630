//! What the cluster serves that changes the plan: the ServiceMonitor, HTTPRoute and KEDA
//! ScaledObject APIs,
//! discovered and re-checked at most once a minute.

use std::time::{Duration, Instant};

use kube::Client;
use tokio::sync::Mutex;

use crate::plan::Capabilities;
use crate::reconcile::Error;

/// How long a discovery answer is trusted.
pub const CAPABILITY_TTL: Duration = Duration::from_secs(60);

/// Whether the cluster serves the optional APIs, asked at most once per [`CAPABILITY_TTL`].
#[derive(Default)]
pub struct CapabilityCache {
    answer: Mutex<Option<(Instant, Capabilities)>>,
    /// A fixed answer (tests and benchmarks): never asks the API server.
    pinned: Option<Capabilities>,
}

/// Whether `group_version` serves `plural` (a group not served at all is a plain no).
async fn served(client: &Client, group_version: &str, plural: &str) -> Result<bool, Error> {
    match client.list_api_group_resources(group_version).await {
        Ok(list) => Ok(list.resources.iter().any(|r| r.name == plural)),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(Error::Discovery(e)),
    }
}

impl CapabilityCache {
    /// ServiceMonitor as given, no Gateway API.
    pub fn known(service_monitor: bool) -> Self {
        Self::pinned(Capabilities {
            service_monitor,
            ..Capabilities::default()
        })
    }

    pub fn pinned(capabilities: Capabilities) -> Self {
        Self {
            answer: Mutex::new(None),
            pinned: Some(capabilities),
        }
    }

    pub async fn get(&self, client: &Client) -> Result<Capabilities, Error> {
        if let Some(c) = self.pinned {
            return Ok(c);
        }
        let mut answer = self.answer.lock().await;
        if let Some((at, c)) = *answer
            && at.elapsed() < CAPABILITY_TTL
        {
            return Ok(c);
        }
        let c = Capabilities {
            service_monitor: served(client, "monitoring.coreos.com/v1", "servicemonitors").await?,
            http_route: served(client, "gateway.networking.k8s.io/v1", "httproutes").await?,
            scaled_object: served(client, "keda.sh/v1alpha1", "scaledobjects").await?,
        };
        *answer = Some((Instant::now(), c));
        Ok(c)
    }
}
