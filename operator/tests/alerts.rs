//! The Helm chart's alerts and dashboard against the operator's real metrics: every expression
//! parses as PromQL, every clockify_operator_* series it reads is one the operator exports,
//! every label it groups by is one those series carry (or a scrape target's), no exported
//! series carries a label Prometheus reserves for targets, and every alert has a runbook entry.
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

/// The label names of each exported family (from the exposition text).
fn exported_labels() -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
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
    families(&m.render())
}

/// The label names of each family in an exposition text.
fn families(text: &str) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let mut out: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, _) = line.rsplit_once(' ').unwrap();
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        let set = out.entry(family.to_owned()).or_default();
        for pair in labels
            .trim_end_matches('}')
            .split(',')
            .filter(|p| !p.is_empty())
        {
            // Histogram buckets' `le` included.
            set.insert(pair.split_once('=').unwrap().0.to_owned());
        }
    }
    out
}

/// Every series name an expression selects.
fn metrics(e: &promql_parser::parser::Expr, names: &mut Vec<String>) {
    use promql_parser::parser::Expr;
    match e {
        Expr::VectorSelector(v) => names.extend(v.name.clone()),
        Expr::MatrixSelector(m) => names.extend(m.vs.name.clone()),
        Expr::Aggregate(a) => metrics(&a.expr, names),
        Expr::Unary(u) => metrics(&u.expr, names),
        Expr::Binary(b) => {
            metrics(&b.lhs, names);
            metrics(&b.rhs, names);
        }
        Expr::Paren(p) => metrics(&p.expr, names),
        Expr::Subquery(s) => metrics(&s.expr, names),
        Expr::Call(c) => c.args.args.iter().for_each(|a| metrics(a, names)),
        _ => {}
    }
}

/// Every `by (...)` of an expression with the metric families it aggregates.
fn groupings(expr: &promql_parser::parser::Expr, out: &mut Vec<(Vec<String>, Vec<String>)>) {
    use promql_parser::parser::{Expr, LabelModifier};
    match expr {
        Expr::Aggregate(a) => {
            if let Some(LabelModifier::Include(labels)) = &a.modifier {
                let mut names = Vec::new();
                metrics(&a.expr, &mut names);
                out.push((labels.labels.clone(), names));
            }
            groupings(&a.expr, out);
        }
        Expr::Unary(u) => groupings(&u.expr, out),
        Expr::Binary(b) => {
            groupings(&b.lhs, out);
            groupings(&b.rhs, out);
        }
        Expr::Paren(p) => groupings(&p.expr, out),
        Expr::Subquery(s) => groupings(&s.expr, out),
        Expr::Call(c) => c.args.args.iter().for_each(|a| groupings(a, out)),
        _ => {}
    }
}

/// Asserts each `by (...)` of `expr` groups by labels its series have: those the operator
/// exports on them, or (for the operator's own series, never per ClockifyAddon) the labels a
/// scrape gives every target.
fn assert_groupings(what: &str, expr: &str) {
    let exported = exported_labels();
    let parsed = promql_parser::parser::parse(expr).unwrap();
    let mut found = Vec::new();
    groupings(&parsed, &mut found);
    for (labels, metrics) in found {
        for metric in metrics
            .iter()
            .filter(|m| m.starts_with("clockify_operator_"))
        {
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| metric.strip_suffix(s))
                .unwrap_or(metric);
            let own = &exported[family];
            let per_addon = own.contains("addon");
            for label in &labels {
                let from_target =
                    clockify_operator::metrics::TARGET_LABELS.contains(&label.as_str());
                assert!(
                    own.contains(label) || (from_target && !per_addon),
                    "{what}: groups {family} by {label:?}, which its series do not carry ({own:?}){}",
                    if from_target {
                        " - a scrape sets it to the operator's own target"
                    } else {
                        ""
                    }
                );
            }
        }
    }
}

#[test]
fn no_series_carries_a_label_prometheus_reserves_for_targets() {
    for (family, labels) in exported_labels() {
        for label in labels {
            assert!(
                !clockify_operator::metrics::TARGET_LABELS.contains(&label.as_str()),
                "{family} carries {label:?}: a ServiceMonitor scrape would rename it exported_{label} and put the operator's own {label} in its place"
            );
        }
    }
    // The per-ClockifyAddon series carry the add-on's namespace and name.
    let labels = exported_labels();
    assert_eq!(
        labels["clockify_operator_addon_ready"],
        ["addon", "addon_namespace"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    // And the check would catch the old labels.
    let parsed =
        promql_parser::parser::parse("max by (namespace, name) (clockify_operator_addon_ready)")
            .unwrap();
    let mut found = Vec::new();
    groupings(&parsed, &mut found);
    assert_eq!(found[0].0, vec!["namespace".to_owned(), "name".to_owned()]);
    let caught = std::panic::catch_unwind(|| {
        assert_groupings(
            "old",
            "max by (namespace, name) (clockify_operator_addon_ready)",
        )
    });
    assert!(
        caught.is_err(),
        "grouping per-add-on series by namespace passes"
    );
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
        if group["name"] == "clockify-addons" {
            continue; // see the_add_on_alerts_read_the_add_ons_series
        }
        for rule in group["rules"].as_array().unwrap() {
            let name = rule["alert"].as_str().unwrap();
            let expr = rule["expr"].as_str().unwrap();
            if let Err(e) = promql_parser::parser::parse(expr) {
                panic!("{name}: {expr} does not parse: {e}");
            }
            assert_groupings(name, expr);
            // Per-ClockifyAddon alerts are routed by the add-on's namespace.
            if expr.contains("addon_namespace") {
                assert_eq!(
                    rule["labels"]["namespace"], "{{ $labels.addon_namespace }}",
                    "{name}"
                );
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
    let add_ons = add_on_families();
    let mut queries = 0;
    let mut add_on_queries = 0;
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            if let Err(e) = promql_parser::parser::parse(expr) {
                panic!("{}: {expr} does not parse: {e}", panel["title"]);
            }
            let title = panel["title"].as_str().unwrap_or_default();
            assert_groupings(title, expr);
            for metric in metric_names(expr) {
                assert!(exported.contains(&metric), "{metric} is not exported");
            }
            if title.starts_with("Add-ons:") {
                check_add_on_expr(title, expr, &add_ons);
                add_on_queries += 1;
            }
            queries += 1;
        }
    }
    assert!(queries >= 10, "{queries}");
    assert_eq!(add_on_queries, 9, "the add-ons' panels");
}

/// The add-ons' own metric families and their labels (addon-core's registry, with every
/// labelled family the alerts read touched once).
fn add_on_families() -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let m = addon_core::metrics::Metrics::new("api-studio", "0.1.0");
    m.http_requests
        .with_label_values(&["GET", "/ui/flows", "500"])
        .inc();
    m.http_duration
        .with_label_values(&["GET", "/ui/flows"])
        .observe(0.01);
    m.auth_failures
        .with_label_values(&["webhook", "signature"])
        .inc();
    families(&m.render())
}

/// The add-ons' alerts: each parses, reads only series the add-ons export (restricted to their
/// pods by `addon_info`), groups by labels those series carry or the scrape of their
/// ServiceMonitor gives, and has its runbook section.
#[test]
fn the_add_on_alerts_read_the_add_ons_series() {
    let text = chart_file("alerts.yaml")
        .replace("{{`", "")
        .replace("`}}", "")
        .replace("{{ .Values.prometheusRule.notReadyFor }}", "15m");
    let doc: Value = serde_norway::from_str(&text).unwrap();
    let families = add_on_families();
    let runbook = runbook();
    let group = doc["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "clockify-addons")
        .expect("the add-ons' alert group");
    let mut names = Vec::new();
    for rule in group["rules"].as_array().unwrap() {
        let name = rule["alert"].as_str().unwrap();
        let expr = rule["expr"].as_str().unwrap();
        check_add_on_expr(name, expr, &families);
        assert!(
            ["critical", "warning"].contains(&rule["labels"]["severity"].as_str().unwrap()),
            "{name}"
        );
        let anchor = rule["annotations"]["runbook_url"]
            .as_str()
            .unwrap()
            .rsplit_once('#')
            .unwrap()
            .1;
        assert_eq!(anchor, name.to_lowercase());
        assert!(
            runbook.contains(&format!("## {name}\n")),
            "docs/runbook.md has no section for {name}"
        );
        names.push(name.to_owned());
    }
    assert_eq!(
        names,
        [
            "ClockifyAddonErrors",
            "ClockifyAddonSlow",
            "ClockifyAddonFlowFailures",
            "ClockifyAddonFlowBacklog",
            "ClockifyAddonRateLimited",
            "ClockifyAddonSignatureFailures",
            "ClockifyAddonPodsNotReady"
        ]
    );
    // The check would catch a series the add-ons do not export.
    assert!(!families.contains_key("http_requests_failed_total"));
    assert!(families["flow_backlog"].contains("state"));
}

/// An expression over the add-ons' series: it parses, reads only families the add-ons export,
/// is restricted to their pods by `addon_info`, and groups by labels those series or the scrape
/// of their ServiceMonitor carry.
fn check_add_on_expr(
    what: &str,
    expr: &str,
    families: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
) {
    let parsed = promql_parser::parser::parse(expr)
        .unwrap_or_else(|e| panic!("{what}: {expr} does not parse: {e}"));
    let family = |m: &str| {
        ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| m.strip_suffix(s))
            .unwrap_or(m)
            .to_owned()
    };
    let mut read = Vec::new();
    metrics(&parsed, &mut read);
    assert!(
        read.iter().any(|m| m == "addon_info"),
        "{what} is not restricted to the add-ons' pods"
    );
    for metric in &read {
        assert!(
            families.contains_key(&family(metric)),
            "{what} reads {metric}, which the add-ons do not export"
        );
    }
    let mut found = Vec::new();
    groupings(&parsed, &mut found);
    for (labels, series) in found {
        // addon_info only filters (`and on (namespace, pod)`): an `and` keeps the left side's
        // series and labels.
        for metric in series.into_iter().filter(|m| m != "addon_info") {
            let f = family(&metric);
            for label in &labels {
                assert!(
                    families[&f].contains(label)
                        || clockify_operator::metrics::TARGET_LABELS.contains(&label.as_str()),
                    "{what}: groups {f} by {label:?}, which neither its series nor the scrape carry"
                );
            }
        }
    }
}
