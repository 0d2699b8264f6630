//! What the cluster serves that changes the plan: the ServiceMonitor API, discovered and
//! re-checked at most once a minute.

use std::time::{Duration, Instant};

use kube::Client;
use tokio::sync::Mutex;

use crate::plan::Capabilities;
use crate::reconcile::Error;

/// How long a discovery answer about ServiceMonitor is trusted.
pub const CAPABILITY_TTL: Duration = Duration::from_secs(60);

/// Whether the cluster serves ServiceMonitor, asked at most once per [`CAPABILITY_TTL`].
#[derive(Default)]
pub struct CapabilityCache {
    answer: Mutex<Option<(Instant, bool)>>,
    /// A fixed answer (tests and benchmarks): never asks the API server.
    pinned: Option<bool>,
}

impl CapabilityCache {
    pub fn known(service_monitor: bool) -> Self {
        Self {
            answer: Mutex::new(None),
            pinned: Some(service_monitor),
        }
    }

    pub async fn get(&self, client: &Client) -> Result<Capabilities, Error> {
        if let Some(served) = self.pinned {
            return Ok(Capabilities {
                service_monitor: served,
            });
        }
        let mut answer = self.answer.lock().await;
        if let Some((at, served)) = *answer
            && at.elapsed() < CAPABILITY_TTL
        {
            return Ok(Capabilities {
                service_monitor: served,
            });
        }
        let served = match client
            .list_api_group_resources("monitoring.coreos.com/v1")
            .await
        {
            Ok(list) => list.resources.iter().any(|r| r.name == "servicemonitors"),
            // Not served: no ServiceMonitor, and never an error.
            Err(kube::Error::Api(s)) if s.code == 404 => false,
            Err(e) => return Err(Error::Discovery(e)),
        };
        *answer = Some((Instant::now(), served));
        Ok(Capabilities {
            service_monitor: served,
        })
    }
}
