//! Leader election with a coordination.k8s.io/v1 Lease: only the holder runs the controller
//! (and so only the holder writes). The claimant is the pod name. Every step is an optimistic
//! update on the Lease's resourceVersion, so two replicas can never both win.
//!
//! Whether another holder's lease has expired is judged, as client-go does, by this replica's
//! own clock only: by how long ago it last saw the Lease's record change, never by comparing the
//! `renewTime` another node wrote with the local time. A few seconds of clock skew between nodes
//! can therefore neither shorten a lease (two leaders) nor stretch it.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;

/// The parts of a Lease that change when its holder renews or hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    holder: Option<String>,
    renew_time: Option<String>,
    acquire_time: Option<String>,
    transitions: Option<i32>,
    duration: Option<i32>,
}

impl Record {
    fn of(spec: &LeaseSpec) -> Self {
        let t = |m: &Option<MicroTime>| m.as_ref().map(|t| t.0.to_string());
        Self {
            holder: spec.holder_identity.clone(),
            renew_time: t(&spec.renew_time),
            acquire_time: t(&spec.acquire_time),
            transitions: spec.lease_transitions,
            duration: spec.lease_duration_seconds,
        }
    }
}

pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    /// How long a lease is valid without renewal.
    pub lease_duration: Duration,
    /// How often the holder renews.
    pub renew_every: Duration,
    /// The Lease's record as last seen, and when (on this replica's clock) it was first seen so.
    observed: Mutex<Option<(Record, Instant)>>,
}

impl Clone for LeaderElector {
    fn clone(&self) -> Self {
        Self {
            api: self.api.clone(),
            name: self.name.clone(),
            identity: self.identity.clone(),
            lease_duration: self.lease_duration,
            renew_every: self.renew_every,
            observed: Mutex::new(self.observed.lock().ok().and_then(|o| o.clone())),
        }
    }
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElector")
            .field("name", &self.name)
            .field("identity", &self.identity)
            .finish()
    }
}

impl LeaderElector {
    pub fn new(api: Api<Lease>, name: &str, identity: &str) -> Self {
        Self {
            api,
            name: name.to_owned(),
            identity: identity.to_owned(),
            lease_duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
            observed: Mutex::new(None),
        }
    }

    /// Notes the Lease's record; returns how long ago (on this replica's clock) it last changed.
    fn observe(&self, record: Record) -> Duration {
        let now = Instant::now();
        let Ok(mut observed) = self.observed.lock() else {
            return Duration::ZERO;
        };
        match observed.as_ref() {
            Some((seen, at)) if *seen == record => now.duration_since(*at),
            _ => {
                *observed = Some((record, now));
                Duration::ZERO
            }
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    fn spec(&self, now: Timestamp, acquired: Option<MicroTime>, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.lease_duration.as_secs() as i32),
            acquire_time: Some(acquired.unwrap_or(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Takes or renews the lease; `Ok(true)` while this replica holds it.
    pub async fn acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(now, None, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let duration = Duration::from_secs(
            u64::try_from(spec.lease_duration_seconds.unwrap_or(15)).unwrap_or(15),
        );
        // Expired when nobody renewed it for a lease duration, as this replica saw it.
        let unchanged_for = self.observe(Record::of(&spec));
        let expired = spec.renew_time.is_none() || unchanged_for >= duration;
        let mine = holder.as_deref() == Some(self.identity.as_str());
        if !(mine || holder.is_none() || expired) {
            return Ok(false);
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!mine);
        lease.spec = Some(self.spec(
            now,
            if mine { spec.acquire_time } else { None },
            transitions,
        ));
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(written) => {
                if let Some(spec) = &written.spec {
                    self.observe(Record::of(spec));
                }
                Ok(true)
            }
            // Someone else updated it first: they hold it.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the lease up (on shutdown) so another replica takes over at once.
    pub async fn release(&self) {
        if let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await
            && lease
                .spec
                .as_ref()
                .and_then(|s| s.holder_identity.as_deref())
                == Some(self.identity.as_str())
        {
            if let Some(spec) = lease.spec.as_mut() {
                spec.holder_identity = None;
                spec.renew_time = None;
            }
            let _ = self
                .api
                .replace(&self.name, &PostParams::default(), &lease)
                .await;
        }
    }
}

/// Tracks whether a leader may still act: it must step down once it failed to renew for a
/// lease duration, before another replica can take over.
#[derive(Debug)]
pub struct Tenure {
    last_renewed: Option<Instant>,
    lease_duration: Duration,
}

impl Tenure {
    pub fn new(lease_duration: Duration) -> Self {
        Self {
            last_renewed: None,
            lease_duration,
        }
    }

    pub fn renewed(&mut self) {
        self.last_renewed = Some(Instant::now());
    }

    pub fn lost(&mut self) {
        self.last_renewed = None;
    }

    /// Leading and still within the lease (with a safety margin of a fifth).
    pub fn valid(&self) -> bool {
        self.last_renewed
            .is_some_and(|t| t.elapsed() < self.lease_duration.mul_f32(0.8))
    }
}
