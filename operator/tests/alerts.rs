//! The Helm chart's alerts and dashboard against the operator's real metrics: every expression
//! parses as PromQL, every clockify_operator_* series it reads is one the operator exports,
//! and every alert has a runbook entry.
#![cfg(test)]

use clockify_operator::metrics::{AddonSnapshot, Metrics};
use serde_json::Value;

fn chart_file(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../charts/clockify-operator/files/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// The metric families the operator exports (with a ClockifyAddon observed, so per-object
/// families appear).
fn exported() -> Vec<String> {
    let m = Metrics::new();
    m.observe_addon(
        "ns",
        "a",
        &AddonSnapshot {
            ready: true,
            migration_failed: false,
            backup: Some((false, 1.0, Some(86_400.0))),
        },
    );
    m.reconciles.with_label_values(&["success"]).inc();
    m.reconcile_duration
        .with_label_values(&["success"])
        .observe(0.01);
    m.writes.with_label_values(&["Job", "apply"]).inc();
    m.render()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// clockify_operator_* names an expression reads (histogram suffixes mapped to their family).
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("clockify_operator_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        names.push(family.to_owned());
        rest = &tail[end..];
    }
    names
}

fn runbook() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/runbook.md")).unwrap()
}

#[test]
fn alerts_parse_and_read_exported_metrics() {
    // The file is a Helm template: its Prometheus templates are escaped and one value is Helm's.
    let text = chart_file("alerts.yaml")
        .replace("{{`", "")
        .replace("`}}", "")
        .replace("{{ .Values.prometheusRule.notReadyFor }}", "15m");
    let doc: Value = serde_norway::from_str(&text).unwrap();
    let exported = exported();
    let runbook = runbook();
    let mut alerts = 0;
    for group in doc["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let name = rule["alert"].as_str().unwrap();
            let expr = rule["expr"].as_str().unwrap();
            if let Err(e) = promql_parser::parser::parse(expr) {
                panic!("{name}: {expr} does not parse: {e}");
            }
            for metric in metric_names(expr) {
                assert!(
                    exported.contains(&metric),
                    "{name} reads {metric}, which the operator does not export ({exported:?})"
                );
            }
            assert!(
                ["critical", "warning"].contains(&rule["labels"]["severity"].as_str().unwrap()),
                "{name}"
            );
            let anchor = rule["annotations"]["runbook_url"]
                .as_str()
                .unwrap()
                .rsplit_once('#')
                .unwrap()
                .1
                .to_owned();
            assert_eq!(anchor, name.to_lowercase());
            assert!(
                runbook.contains(&format!("## {name}")),
                "docs/runbook.md has no section for {name}"
            );
            alerts += 1;
        }
    }
    assert_eq!(alerts, 6);
}

#[test]
fn the_dashboard_reads_exported_metrics() {
    let dash: Value = serde_json::from_str(&chart_file("dashboard.json")).unwrap();
    let exported = exported();
    let mut queries = 0;
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            if let Err(e) = promql_parser::parser::parse(expr) {
                panic!("{}: {expr} does not parse: {e}", panel["title"]);
            }
            for metric in metric_names(expr) {
                assert!(exported.contains(&metric), "{metric} is not exported");
            }
            queries += 1;
        }
    }
    assert!(queries >= 10, "{queries}");
}
