//! Prometheus metrics of one add-on process. Every label takes values from a fixed set
//! (route templates, status classes, known event names, static reasons), never from input.

use std::time::Instant;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    started: Instant,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub webhooks_received: IntCounterVec,
    pub auth_failures: IntCounterVec,
    /// Requests refused with 503 because `HTTP_MAX_CONCURRENT_REQUESTS` were in flight.
    pub http_shed: prometheus::IntCounter,
    /// Requests in flight (those the concurrency limit counts).
    pub http_in_flight: prometheus::IntGauge,
    pub lifecycle_events: IntCounterVec,
    pub flows_executed: IntCounterVec,
    pub api_calls: IntCounterVec,
    pub api_duration: Histogram,
    pub rate_limit_wait: Histogram,
    pub bootstrap_runs: IntCounterVec,
    pub retention_deleted: IntCounterVec,
    /// Flow executions scheduled for another attempt, by reason.
    pub flow_retries: IntCounterVec,
    /// From a delivery's fan-out to its execution's first attempt.
    pub flow_queue_delay: Histogram,
    /// GENERIC_HTTP requests by outcome.
    pub outbound_calls: IntCounterVec,
    pub outbound_duration: Histogram,
    /// Custom webhook deliveries by outcome (the source name is input: never a label).
    pub custom_webhooks_received: IntCounterVec,
    /// Seconds spent per pipeline stage (verify, store, fan_out, execute), summed over
    /// concurrent work: where a delivery's time goes.
    pub stage_seconds: prometheus::CounterVec,
    /// The shared queue's backlog by state (sampled; every replica reports the same queue).
    pub flow_backlog: prometheus::IntGaugeVec,
    /// Age of the oldest waiting work, in seconds.
    pub flow_backlog_oldest: prometheus::Gauge,
    /// 1 while this process would answer `/ready` with 200.
    pub ready: IntGauge,
    uptime: IntGauge,
}

fn histogram(registry: &Registry, name: &str, help: &str) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()))
        .expect("valid metric definition");
    registry
        .register(Box::new(h.clone()))
        .expect("metric registered once");
    h
}

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    registry
        .register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

impl Metrics {
    pub fn new(addon_key: &str, version: &str) -> Self {
        let registry = Registry::new();
        let http_requests = counter(
            &registry,
            "http_requests_total",
            "HTTP requests by route and status.",
            &["method", "route", "status"],
        );
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["method", "route"],
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(http_duration.clone()))
            .expect("metric registered once");
        let webhooks_received = counter(
            &registry,
            "webhooks_received_total",
            "Webhook deliveries by event type and outcome (accepted, duplicate, rejected).",
            &["event_type", "outcome"],
        );
        let auth_failures = counter(
            &registry,
            "auth_failures_total",
            "Refused tokens by route group and reason.",
            &["group", "reason"],
        );
        let http_shed = prometheus::IntCounter::new(
            "http_requests_shed_total",
            "Requests answered 503 at once because the concurrency limit was reached.",
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(http_shed.clone()))
            .expect("metric registered once");
        let http_in_flight = prometheus::IntGauge::new(
            "http_requests_in_flight",
            "Requests being served (health and metrics excluded).",
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(http_in_flight.clone()))
            .expect("metric registered once");
        let lifecycle_events = counter(
            &registry,
            "lifecycle_events_total",
            "Lifecycle calls handled, by event.",
            &["event"],
        );
        let flows_executed = counter(
            &registry,
            "flows_executed_total",
            "Flow runs by final status.",
            &["status"],
        );
        let api_calls = counter(
            &registry,
            "api_calls_total",
            "Clockify API calls by outcome.",
            &["outcome"],
        );
        let api_duration = Histogram::with_opts(
            HistogramOpts::new(
                "api_call_duration_seconds",
                "Clockify API call latency, retries included.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(api_duration.clone()))
            .expect("metric registered once");
        let rate_limit_wait = Histogram::with_opts(
            HistogramOpts::new(
                "api_rate_limit_wait_seconds",
                "Time Clockify API calls waited for the per-workspace rate limit.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(rate_limit_wait.clone()))
            .expect("metric registered once");
        let bootstrap_runs = counter(
            &registry,
            "bootstrap_runs_total",
            "Finished bootstrap runs by final state.",
            &["state"],
        );
        let retention_deleted = counter(
            &registry,
            "retention_deleted_total",
            "Rows deleted by retention, by table.",
            &["table"],
        );
        let flow_retries = counter(
            &registry,
            "flow_retries_total",
            "Flow executions scheduled for another attempt, by reason (failed: a transient action failure; interrupted: the worker holding it stopped).",
            &["reason"],
        );
        let flow_queue_delay = histogram(
            &registry,
            "flow_queue_delay_seconds",
            "Time from a delivery's fan-out to the first attempt of its flow execution.",
        );
        let outbound_calls = counter(
            &registry,
            "outbound_http_calls_total",
            "GENERIC_HTTP action requests by outcome.",
            &["outcome"],
        );
        let outbound_duration = histogram(
            &registry,
            "outbound_http_call_duration_seconds",
            "GENERIC_HTTP action request latency, retries included.",
        );
        let custom_webhooks_received = counter(
            &registry,
            "custom_webhooks_received_total",
            "Custom webhook deliveries by outcome (accepted, duplicate, rejected, rate_limited).",
            &["outcome"],
        );
        let stage_seconds = prometheus::CounterVec::new(
            Opts::new(
                "pipeline_stage_seconds_total",
                "Seconds spent per stage of the webhook pipeline, summed over concurrent work: verify (token and body checks), store (waiting for the delivery's commit), fan_out (claiming deliveries and queueing executions), execute (running flow executions, API calls included).",
            ),
            &["stage"],
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(stage_seconds.clone()))
            .expect("metric registered once");
        for stage in ["verify", "store", "fan_out", "execute"] {
            stage_seconds.with_label_values(&[stage]);
        }
        let flow_backlog = prometheus::IntGaugeVec::new(
            Opts::new(
                "flow_backlog",
                "Work in the flow queue shared by every replica, sampled every 5 s: queued_deliveries (stored, not yet fanned out), due (executions waiting for an executor), scheduled (retries waiting for their time), running (under a lease). Every replica reports the same queue: aggregate with max, not sum.",
            ),
            &["state"],
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(flow_backlog.clone()))
            .expect("metric registered once");
        for state in BACKLOG_STATES {
            flow_backlog.with_label_values(&[state]);
        }
        let flow_backlog_oldest = prometheus::Gauge::new(
            "flow_backlog_oldest_seconds",
            "Age of the oldest waiting work in the flow queue (a queued delivery or a due execution), sampled every 5 s; 0 when nothing waits.",
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(flow_backlog_oldest.clone()))
            .expect("metric registered once");
        let ready = IntGauge::new(
            "addon_ready",
            "1 while this process is ready to serve (what /ready answers: not draining, database reachable, schema current), 0 otherwise; checked every 15 s and on every /ready.",
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(ready.clone()))
            .expect("metric registered once");
        let uptime = IntGauge::new(
            "addon_uptime_seconds",
            "Seconds since this process started.",
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(uptime.clone()))
            .expect("metric registered once");
        let info = prometheus::IntGaugeVec::new(
            Opts::new("addon_info", "The add-on this process serves."),
            &["addon", "version"],
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(info.clone()))
            .expect("metric registered once");
        info.with_label_values(&[addon_key, version]).set(1);
        // Series that alerts and dashboards read exist from the start, at zero.
        for status in ["SUCCEEDED", "FAILED", "SKIPPED"] {
            flows_executed.with_label_values(&[status]);
        }
        for outcome in [
            "2xx",
            "4xx",
            "429",
            "5xx",
            "timeout",
            "transport",
            "refused",
        ] {
            api_calls.with_label_values(&[outcome]);
        }
        for state in ["COMPLETE", "COMPLETE_WITH_ERRORS", "FAILED"] {
            bootstrap_runs.with_label_values(&[state]);
        }
        for reason in ["failed", "interrupted"] {
            flow_retries.with_label_values(&[reason]);
        }
        Self {
            registry,
            started: Instant::now(),
            http_requests,
            http_duration,
            webhooks_received,
            auth_failures,
            http_shed,
            http_in_flight,
            lifecycle_events,
            flows_executed,
            api_calls,
            api_duration,
            rate_limit_wait,
            bootstrap_runs,
            retention_deleted,
            flow_retries,
            flow_queue_delay,
            outbound_calls,
            outbound_duration,
            custom_webhooks_received,
            stage_seconds,
            flow_backlog,
            flow_backlog_oldest,
            ready,
            uptime,
        }
    }

    /// Sets the backlog gauges from a sample.
    pub fn set_backlog(&self, b: &crate::store::executions::Backlog) {
        for (state, n) in
            BACKLOG_STATES
                .iter()
                .zip([b.queued_deliveries, b.due, b.scheduled, b.running])
        {
            self.flow_backlog.with_label_values(&[state]).set(n);
        }
        self.flow_backlog_oldest.set(b.oldest_ms as f64 / 1000.0);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        self.uptime.set(self.started.elapsed().as_secs() as i64);
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for well-formed families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// The `state` label values of `flow_backlog`, in [`Metrics::set_backlog`]'s order.
const BACKLOG_STATES: [&str; 4] = ["queued_deliveries", "due", "scheduled", "running"];

/// The event types Clockify sends; anything else is counted as `OTHER` to bound cardinality.
pub const KNOWN_EVENTS: &[&str] = &[
    "APPROVAL_REQUEST_STATUS_UPDATED",
    "ASSIGNMENT_CREATED",
    "ASSIGNMENT_DELETED",
    "ASSIGNMENT_PUBLISHED",
    "ASSIGNMENT_UPDATED",
    "BALANCE_UPDATED",
    "BILLABLE_RATE_UPDATED",
    "CLIENT_DELETED",
    "CLIENT_UPDATED",
    "COST_RATE_UPDATED",
    "EXPENSE_CREATED",
    "EXPENSE_DELETED",
    "EXPENSE_RESTORED",
    "EXPENSE_UPDATED",
    "INVOICE_UPDATED",
    "LIMITED_USERS_ADDED_TO_WORKSPACE",
    "NEW_APPROVAL_REQUEST",
    "NEW_CLIENT",
    "NEW_INVOICE",
    "NEW_PROJECT",
    "NEW_TAG",
    "NEW_TASK",
    "NEW_TIMER_STARTED",
    "NEW_TIME_ENTRY",
    "PROJECT_DELETED",
    "PROJECT_UPDATED",
    "TAG_DELETED",
    "TAG_UPDATED",
    "TASK_DELETED",
    "TASK_UPDATED",
    "TIMER_STOPPED",
    "TIME_ENTRY_DELETED",
    "TIME_ENTRY_RESTORED",
    "TIME_ENTRY_SPLIT",
    "TIME_ENTRY_UPDATED",
    "TIME_OFF_REQUESTED",
    "TIME_OFF_REQUEST_APPROVED",
    "TIME_OFF_REQUEST_REJECTED",
    "TIME_OFF_REQUEST_WITHDRAWN",
    "USERS_INVITED_TO_WORKSPACE",
    "USER_ACTIVATED_ON_WORKSPACE",
    "USER_DEACTIVATED_ON_WORKSPACE",
    "USER_DELETED_FROM_WORKSPACE",
    "USER_EMAIL_CHANGED",
    "USER_GROUP_CREATED",
    "USER_GROUP_DELETED",
    "USER_GROUP_UPDATED",
    "USER_JOINED_WORKSPACE",
    "USER_UPDATED",
];

pub fn event_label(event: &str) -> &str {
    if KNOWN_EVENTS.contains(&event) {
        event
    } else {
        "OTHER"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_required_families() {
        let m = Metrics::new("api-studio", "0.1.0");
        m.webhooks_received
            .with_label_values(&["NEW_TAG", "accepted"])
            .inc();
        m.flows_executed.with_label_values(&["SUCCEEDED"]).inc();
        m.api_calls.with_label_values(&["2xx"]).inc();
        let text = m.render();
        for family in [
            "webhooks_received_total",
            "flows_executed_total",
            "api_calls_total",
            "addon_uptime_seconds",
            "addon_info",
        ] {
            assert!(text.contains(family), "{family} missing");
        }
        assert_eq!(event_label("NEW_TAG"), "NEW_TAG");
        assert_eq!(event_label("<script>"), "OTHER");
    }
}
