//! "Does the object in the cluster already say what we would apply?" Server-side apply is a
//! write even when nothing changes; this check lets a no-op reconcile write nothing, while a
//! field edited by hand (or a deleted object) still fails it and is put back.
//!
//! `desired` is a subset of `observed` when every field it sets has the same value there; the
//! server's defaults (extra fields) do not matter. Quantities compare by value ("1" == "1000m"),
//! and empty objects or lists in `desired` match absent ones.

use serde_json::Value;

pub fn is_subset(desired: &Value, observed: &Value) -> bool {
    match (desired, observed) {
        (Value::Null, _) => true,
        (Value::Object(d), Value::Object(o)) => d.iter().all(|(k, dv)| match o.get(k) {
            Some(ov) => is_subset(dv, ov),
            None => is_empty(dv),
        }),
        (Value::Object(d), Value::Null) => d.is_empty(),
        (Value::Array(d), Value::Array(o)) => {
            d.len() == o.len() && d.iter().zip(o).all(|(dv, ov)| is_subset(dv, ov))
        }
        (Value::Array(d), Value::Null) => d.is_empty(),
        (Value::String(d), Value::String(o)) => d == o || quantities_equal(d, o),
        (Value::Number(d), Value::Number(o)) => d.as_f64() == o.as_f64(),
        (d, o) => d == o,
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// A Kubernetes quantity ("500m", "1.5", "256Mi", "1e3") as a number.
pub fn parse_quantity(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let n: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        s if s.starts_with(['e', 'E']) => 10f64.powi(s[1..].parse().ok()?),
        _ => return None,
    };
    Some(n * factor)
}

fn quantities_equal(a: &str, b: &str) -> bool {
    match (parse_quantity(a), parse_quantity(b)) {
        (Some(x), Some(y)) => (x - y).abs() <= f64::EPSILON * x.abs().max(y.abs()).max(1.0),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_defaults_do_not_matter() {
        let desired = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "a", "image": "x"}]}}}});
        let observed = json!({"spec": {"replicas": 2, "progressDeadlineSeconds": 600,
            "template": {"spec": {"containers": [{"name": "a", "image": "x", "terminationMessagePath": "/dev/termination-log"}], "dnsPolicy": "ClusterFirst"}}}});
        assert!(is_subset(&desired, &observed));
    }

    #[test]
    fn edits_and_deletions_are_seen() {
        let desired = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [{"image": "x"}]}}}});
        assert!(!is_subset(
            &desired,
            &json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [{"image": "x"}]}}}})
        ));
        assert!(!is_subset(
            &desired,
            &json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [{"image": "y"}]}}}})
        ));
        assert!(!is_subset(
            &desired,
            &json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}})
        ));
        assert!(!is_subset(
            &desired,
            &json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [{"image": "x"}, {"image": "z"}]}}}})
        ));
        assert!(!is_subset(
            &json!({"metadata": {"labels": {"a": "1"}}}),
            &json!({"metadata": {"labels": {"b": "1"}}})
        ));
    }

    #[test]
    fn quantities_and_empties() {
        assert!(is_subset(&json!({"cpu": "1"}), &json!({"cpu": "1000m"})));
        assert!(is_subset(&json!({"cpu": "0.5"}), &json!({"cpu": "500m"})));
        assert!(is_subset(
            &json!({"memory": "1Gi"}),
            &json!({"memory": "1024Mi"})
        ));
        assert!(!is_subset(
            &json!({"memory": "1Gi"}),
            &json!({"memory": "1G"})
        ));
        assert!(!is_subset(
            &json!({"version": "0.4.0"}),
            &json!({"version": "0.4"})
        ));
        assert!(is_subset(
            &json!({"tolerations": [], "labels": {}}),
            &json!({})
        ));
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
        assert_eq!(parse_quantity("12Mi"), Some(12.0 * 1024.0 * 1024.0));
        assert_eq!(parse_quantity("x"), None);
    }
}
