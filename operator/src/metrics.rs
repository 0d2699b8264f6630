//! Operator metrics on the admin port. Labels take fixed values only (kinds, categories).

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    pub reconciles: IntCounterVec,
    pub reconcile_duration: HistogramVec,
    pub errors: IntCounterVec,
    pub writes: IntCounterVec,
    pub managed: IntGauge,
    pub leader: IntGauge,
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
        for c in [
            Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(reconcile_duration.clone()),
            Box::new(errors.clone()),
            Box::new(writes.clone()),
            Box::new(managed.clone()),
            Box::new(leader.clone()),
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
        }
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
