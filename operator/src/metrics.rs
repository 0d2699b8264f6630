//! Operator metrics on the admin port. Operator-wide series take fixed label values (kinds,
//! categories); per-ClockifyAddon series (`addon_namespace`, `addon`) exist while the object
//! does, for the alerts in the Helm chart.
//!
//! No series carries a label Prometheus sets on every scraped target (`namespace`, `pod`,
//! `service`, `job`, `instance`, `container`, `endpoint`): through a ServiceMonitor such a label
//! would be renamed `exported_namespace` and the target's (the operator's own namespace) would
//! take its place, so every alert would group by the operator's namespace.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Gauge, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
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
    /// The per-ClockifyAddon series ([`AddonSeries`]).
    addons: AddonSeries,
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
        let addons = AddonSeries::new();
        for c in [
            Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(reconcile_duration.clone()),
            Box::new(errors.clone()),
            Box::new(writes.clone()),
            Box::new(managed.clone()),
            Box::new(leader.clone()),
            Box::new(addons.clone()),
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
            addons,
        }
    }

    /// Records what a reconcile saw of one ClockifyAddon.
    pub fn observe_addon(&self, ns: &str, name: &str, snap: &AddonSnapshot) {
        if let Ok(mut a) = self.addons.values.lock() {
            match a.get_mut(&(ns, name) as &dyn AddonKey) {
                Some(v) => *v = snap.clone(),
                None => {
                    a.insert((ns.into(), name.into()), snap.clone());
                }
            }
        }
    }

    /// Drops the series of ClockifyAddons that no longer exist.
    pub fn retain_addons(&self, present: &std::collections::HashSet<(String, String)>) {
        if let Ok(mut a) = self.addons.values.lock() {
            a.retain(|(ns, name), _| present.contains(&(ns.to_string(), name.to_string())));
        }
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// (namespace, name), borrowed or owned, so that the map is searched without allocating.
trait AddonKey {
    fn key(&self) -> (&str, &str);
}

impl AddonKey for (Box<str>, Box<str>) {
    fn key(&self) -> (&str, &str) {
        (&self.0, &self.1)
    }
}

impl AddonKey for (&str, &str) {
    fn key(&self) -> (&str, &str) {
        (self.0, self.1)
    }
}

impl<'a> std::borrow::Borrow<dyn AddonKey + 'a> for (Box<str>, Box<str>) {
    fn borrow(&self) -> &(dyn AddonKey + 'a) {
        self
    }
}

impl PartialEq for dyn AddonKey + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for dyn AddonKey + '_ {}

impl PartialOrd for dyn AddonKey + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for dyn AddonKey + '_ {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

/// The last snapshot of each ClockifyAddon, by (namespace, name).
type Snapshots = BTreeMap<(Box<str>, Box<str>), AddonSnapshot>;

/// The per-ClockifyAddon series, kept as one small snapshot per ClockifyAddon and turned into
/// series when Prometheus scrapes (as kube-state-metrics does), not as five metric vectors
/// whose every child carries its own copy of names, help and label pairs.
#[derive(Clone)]
struct AddonSeries {
    descs: Arc<[Desc; 5]>,
    values: Arc<Mutex<Snapshots>>,
}

/// Name, help and type of each per-ClockifyAddon series, in [`AddonSeries::descs`] order.
const ADDON_SERIES: [(&str, &str); 5] = [
    (
        "clockify_operator_addon_ready",
        "1 while the ClockifyAddon's Ready condition is True.",
    ),
    (
        "clockify_operator_addon_migration_failed",
        "1 while the ClockifyAddon's database migration Job has failed.",
    ),
    (
        "clockify_operator_backup_failed",
        "1 while the ClockifyAddon's newest backup failed.",
    ),
    (
        "clockify_operator_backup_last_success_timestamp_seconds",
        "When the newest successful backup finished (the ClockifyAddon's creation time until one has).",
    ),
    (
        "clockify_operator_backup_interval_seconds",
        "The longest gap between two scheduled backups.",
    ),
];

impl AddonSeries {
    fn new() -> Self {
        let desc = |(name, help): (&str, &str)| {
            Desc::new(
                name.to_owned(),
                help.to_owned(),
                ADDON_LABELS.iter().map(|l| (*l).to_owned()).collect(),
                Default::default(),
            )
            .expect("valid metric")
        };
        Self {
            descs: Arc::new(ADDON_SERIES.map(desc)),
            values: Default::default(),
        }
    }

    /// The five values of a snapshot (None: no series).
    fn values(snap: &AddonSnapshot) -> [Option<f64>; 5] {
        let flag = |b: bool| f64::from(u8::from(b));
        let backup = snap.backup;
        [
            Some(flag(snap.ready)),
            Some(flag(snap.migration_failed)),
            backup.map(|(failed, _, _)| flag(failed)),
            backup.map(|(_, last, _)| last),
            backup.and_then(|(_, _, interval)| interval),
        ]
    }
}

impl std::fmt::Debug for AddonSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = self.values.lock().map(|v| v.len()).unwrap_or_default();
        f.debug_struct("AddonSeries").field("addons", &len).finish()
    }
}

impl Collector for AddonSeries {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Ok(values) = self.values.lock() else {
            return Vec::new();
        };
        let mut families: Vec<MetricFamily> = ADDON_SERIES
            .iter()
            .map(|(name, help)| {
                let mut f = MetricFamily::default();
                f.set_name((*name).to_owned());
                f.set_help((*help).to_owned());
                f.set_field_type(MetricType::GAUGE);
                f
            })
            .collect();
        for ((ns, name), snap) in values.iter() {
            for (family, value) in families.iter_mut().zip(Self::values(snap)) {
                let Some(value) = value else { continue };
                let mut m = Metric::default();
                let label = |n: &str, v: &str| {
                    let mut l = LabelPair::default();
                    l.set_name(n.to_owned());
                    l.set_value(v.to_owned());
                    l
                };
                // Label pairs sorted by name, as the encoder expects.
                m.set_label(vec![label("addon", name), label("addon_namespace", ns)]);
                let mut g = Gauge::default();
                g.set_value(value);
                m.set_gauge(g);
                family.mut_metric().push(m);
            }
        }
        families.retain(|f| !f.get_metric().is_empty());
        families
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
    use super::{AddonSnapshot, Metrics};

    #[test]
    fn per_addon_series_follow_the_snapshots() {
        let m = Metrics::new();
        let plain = AddonSnapshot {
            ready: true,
            migration_failed: false,
            backup: None,
        };
        m.observe_addon("team-a", "studio", &plain);
        m.observe_addon(
            "team-b",
            "hooks",
            &AddonSnapshot {
                ready: false,
                migration_failed: true,
                backup: Some((true, 1_700_000_000.0, Some(86_400.0))),
            },
        );
        let text = m.render();
        for line in [
            "# TYPE clockify_operator_addon_ready gauge",
            r#"clockify_operator_addon_ready{addon="studio",addon_namespace="team-a"} 1"#,
            r#"clockify_operator_addon_ready{addon="hooks",addon_namespace="team-b"} 0"#,
            r#"clockify_operator_addon_migration_failed{addon="hooks",addon_namespace="team-b"} 1"#,
            r#"clockify_operator_backup_failed{addon="hooks",addon_namespace="team-b"} 1"#,
            r#"clockify_operator_backup_last_success_timestamp_seconds{addon="hooks",addon_namespace="team-b"} 1700000000"#,
            r#"clockify_operator_backup_interval_seconds{addon="hooks",addon_namespace="team-b"} 86400"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        // No backups: no backup series for that add-on.
        assert!(!text.contains(r#"clockify_operator_backup_failed{addon="studio""#));
        // A new snapshot replaces the old one; a vanished add-on loses its series.
        m.observe_addon(
            "team-a",
            "studio",
            &AddonSnapshot {
                ready: false,
                ..plain
            },
        );
        m.retain_addons(&[("team-a".to_owned(), "studio".to_owned())].into());
        let text = m.render();
        assert!(text.contains(
            r#"clockify_operator_addon_ready{addon="studio",addon_namespace="team-a"} 0"#
        ));
        assert!(!text.contains("team-b"), "{text}");
        m.retain_addons(&Default::default());
        assert!(!m.render().contains("clockify_operator_addon_ready"));
    }

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
