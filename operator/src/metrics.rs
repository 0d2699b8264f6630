//! Operator metrics on the admin port. Operator-wide series take fixed label values (kinds,
//! categories); per-ClockifyAddon series (`addon_namespace`, `addon`) exist while the object
//! does, for the alerts in the Helm chart.
//!
//! No series carries a label Prometheus sets on every scraped target (`namespace`, `pod`,
//! `service`, `job`, `instance`, `container`, `endpoint`): through a ServiceMonitor such a label
//! would be renamed `exported_namespace` and the target's (the operator's own namespace) would
//! take its place, so every alert would group by the operator's namespace.

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// The labels of per-ClockifyAddon series: its namespace and name.
pub const ADDON_LABELS: [&str; 2] = ["addon_namespace", "addon"];

/// Labels Prometheus attaches to every target it scrapes (through a ServiceMonitor); a series
/// must not carry them (see the module's documentation).
pub const TARGET_LABELS: [&str; 7] = [
    "namespace",
    "pod",
    "service",
    "job",
    "instance",
    "container",
    "endpoint",
];

#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    pub reconciles: IntCounterVec,
    pub reconcile_duration: HistogramVec,
    pub errors: IntCounterVec,
    pub writes: IntCounterVec,
    pub managed: IntGauge,
    pub leader: IntGauge,
    /// Per ClockifyAddon: 1 while its Ready condition is True.
    pub addon_ready: IntGaugeVec,
    /// Per ClockifyAddon: 1 while its database migration has failed.
    pub migration_failed: IntGaugeVec,
    /// Per ClockifyAddon with backups: 1 while the newest backup failed.
    pub backup_failed: IntGaugeVec,
    /// Per ClockifyAddon with backups: when the newest successful backup finished (Unix
    /// seconds), or when the ClockifyAddon was created if none has.
    pub backup_last_success: GaugeVec,
    /// Per ClockifyAddon with backups: the longest gap between two scheduled runs, in seconds.
    pub backup_interval: GaugeVec,
    /// The ClockifyAddons that have series.
    addons: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<(String, String)>>>,
}

/// Per-ClockifyAddon values, as the last reconcile saw them.
#[derive(Debug, Clone, PartialEq)]
pub struct AddonSnapshot {
    pub ready: bool,
    pub migration_failed: bool,
    /// (newest failed, last success or creation time, schedule interval) when backups are on.
    pub backup: Option<(bool, f64, Option<f64>)>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(
            Opts::new(
                "clockify_operator_reconciles_total",
                "Reconciles by result (success, error).",
            ),
            &["result"],
        )
        .expect("valid metric");
        let reconcile_duration = HistogramVec::new(
            HistogramOpts::new(
                "clockify_operator_reconcile_duration_seconds",
                "Reconcile duration.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["result"],
        )
        .expect("valid metric");
        let errors = IntCounterVec::new(
            Opts::new(
                "clockify_operator_reconcile_errors_total",
                "Reconcile errors by category.",
            ),
            &["category"],
        )
        .expect("valid metric");
        let writes = IntCounterVec::new(
            Opts::new(
                "clockify_operator_api_writes_total",
                "API writes by kind and verb (apply, delete, status, event).",
            ),
            &["kind", "verb"],
        )
        .expect("valid metric");
        let managed = IntGauge::new(
            "clockify_operator_managed_objects",
            "ClockifyAddons in the operator's cache.",
        )
        .expect("valid metric");
        let leader = IntGauge::new(
            "clockify_operator_leader",
            "1 while this replica holds the leader lease.",
        )
        .expect("valid metric");
        let per_addon = |name: &str, help: &str| {
            IntGaugeVec::new(Opts::new(name, help), &ADDON_LABELS).expect("valid metric")
        };
        let addon_ready = per_addon(
            "clockify_operator_addon_ready",
            "1 while the ClockifyAddon's Ready condition is True.",
        );
        let migration_failed = per_addon(
            "clockify_operator_addon_migration_failed",
            "1 while the ClockifyAddon's database migration Job has failed.",
        );
        let backup_failed = per_addon(
            "clockify_operator_backup_failed",
            "1 while the ClockifyAddon's newest backup failed.",
        );
        let backup_last_success = GaugeVec::new(
            Opts::new(
                "clockify_operator_backup_last_success_timestamp_seconds",
                "When the newest successful backup finished (the ClockifyAddon's creation time until one has).",
            ),
            &ADDON_LABELS,
        )
        .expect("valid metric");
        let backup_interval = GaugeVec::new(
            Opts::new(
                "clockify_operator_backup_interval_seconds",
                "The longest gap between two scheduled backups.",
            ),
            &ADDON_LABELS,
        )
        .expect("valid metric");
        for c in [
            Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(reconcile_duration.clone()),
            Box::new(errors.clone()),
            Box::new(writes.clone()),
            Box::new(managed.clone()),
            Box::new(leader.clone()),
            Box::new(addon_ready.clone()),
            Box::new(migration_failed.clone()),
            Box::new(backup_failed.clone()),
            Box::new(backup_last_success.clone()),
            Box::new(backup_interval.clone()),
        ] {
            registry.register(c).expect("metric registered once");
        }
        for category in crate::reconcile::Error::CATEGORIES {
            errors.with_label_values(&[category]);
        }
        Self {
            registry,
            reconciles,
            reconcile_duration,
            errors,
            writes,
            managed,
            leader,
            addon_ready,
            migration_failed,
            backup_failed,
            backup_last_success,
            backup_interval,
            addons: Default::default(),
        }
    }

    /// Records what a reconcile saw of one ClockifyAddon.
    pub fn observe_addon(&self, ns: &str, name: &str, snap: &AddonSnapshot) {
        let l = [ns, name];
        self.addon_ready
            .with_label_values(&l)
            .set(i64::from(snap.ready));
        self.migration_failed
            .with_label_values(&l)
            .set(i64::from(snap.migration_failed));
        match snap.backup {
            Some((failed, last, interval)) => {
                self.backup_failed
                    .with_label_values(&l)
                    .set(i64::from(failed));
                self.backup_last_success.with_label_values(&l).set(last);
                match interval {
                    Some(i) => self.backup_interval.with_label_values(&l).set(i),
                    None => {
                        let _ = self.backup_interval.remove_label_values(&l);
                    }
                }
            }
            None => {
                let _ = self.backup_failed.remove_label_values(&l);
                let _ = self.backup_last_success.remove_label_values(&l);
                let _ = self.backup_interval.remove_label_values(&l);
            }
        }
        if let Ok(mut a) = self.addons.lock() {
            a.insert((ns.to_owned(), name.to_owned()));
        }
    }

    /// Drops the series of ClockifyAddons that no longer exist.
    pub fn retain_addons(&self, present: &std::collections::HashSet<(String, String)>) {
        let Ok(mut known) = self.addons.lock() else {
            return;
        };
        known.retain(|key| {
            if present.contains(key) {
                return true;
            }
            let l = [key.0.as_str(), key.1.as_str()];
            let _ = self.addon_ready.remove_label_values(&l);
            let _ = self.migration_failed.remove_label_values(&l);
            let _ = self.backup_failed.remove_label_values(&l);
            let _ = self.backup_last_success.remove_label_values(&l);
            let _ = self.backup_interval.remove_label_values(&l);
            false
        });
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// The longest gap between consecutive runs of a cron schedule (UTC), over its next 60 runs.
pub fn schedule_interval(schedule: &str) -> Option<f64> {
    let cron: croner::Cron = schedule.parse().ok()?;
    let start = k8s_openapi::jiff::civil::date(2026, 1, 1).at(0, 0, 0, 0);
    let runs: Vec<k8s_openapi::jiff::civil::DateTime> = cron.iter_after(start).take(60).collect();
    runs.windows(2)
        .filter_map(|w| w[1].duration_since(w[0]).as_secs_f64().into())
        .fold(None, |max: Option<f64>, gap| {
            Some(max.map_or(gap, |m| m.max(gap)))
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn schedule_intervals() {
        let i = |s| super::schedule_interval(s);
        assert_eq!(i("0 2 * * *"), Some(86_400.0));
        assert_eq!(i("0 */6 * * *"), Some(21_600.0));
        assert_eq!(i("0 3 * * 0"), Some(7.0 * 86_400.0));
        assert_eq!(i("@daily"), Some(86_400.0));
        assert_eq!(i("0 2,14 * * *"), Some(43_200.0));
        assert_eq!(i("not a schedule"), None);
    }
}
