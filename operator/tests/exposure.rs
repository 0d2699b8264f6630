//! Exposure: the Ingress and the HTTPRoute for baseUrl's host, the Gateway API fallback, the
//! NetworkPolicy admitting the ingress controller, and the paths: every route the services
//! define is either public or never exposed.
#![cfg(test)]

use std::collections::BTreeSet;

use clockify_operator::build::exposure::{Match, PRIVATE_PATHS, PUBLIC_PATHS};
use clockify_operator::crd::ClockifyAddon;
use clockify_operator::plan::{Capabilities, ExposureState, Kind, plan};
use serde_json::{Value, json};

fn example(name: &str) -> ClockifyAddon {
    let text = std::fs::read_to_string(format!(
        "{}/../manifests/examples/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let mut a: ClockifyAddon = serde_norway::from_str(&text).unwrap();
    a.metadata.uid = Some("00000000-0000-4000-8000-00000000000a".into());
    a
}

const NO_GATEWAY: Capabilities = Capabilities {
    service_monitor: true,
    http_route: false,
    scaled_object: false,
};
const GATEWAY: Capabilities = Capabilities {
    service_monitor: true,
    http_route: true,
    scaled_object: false,
};

fn child(p: &clockify_operator::plan::Plan, kind: Kind) -> Option<Value> {
    p.children
        .iter()
        .find(|c| c.kind() == kind)
        .map(|c| c.to_json())
}

fn public_paths() -> Vec<Value> {
    PUBLIC_PATHS
        .iter()
        .map(|(p, m)| {
            json!([
                p,
                if *m == Match::Exact {
                    "Exact"
                } else {
                    "Prefix"
                }
            ])
        })
        .collect()
}

#[test]
fn an_ingress_for_the_host_with_a_cert_manager_certificate() {
    let p = plan(&example("api-studio-standard.yaml"), GATEWAY).unwrap();
    assert!(child(&p, Kind::HTTPRoute).is_none(), "no Gateway named");
    let i = child(&p, Kind::Ingress).unwrap();
    assert_eq!(i["apiVersion"], "networking.k8s.io/v1");
    assert_eq!(i["spec"]["ingressClassName"], "nginx");
    assert_eq!(
        i["metadata"]["annotations"]["cert-manager.io/cluster-issuer"],
        "letsencrypt"
    );
    assert_eq!(
        i["spec"]["tls"],
        json!([{"hosts": ["api-studio.example.com"], "secretName": "api-studio-tls"}])
    );
    let rule = &i["spec"]["rules"][0];
    assert_eq!(rule["host"], "api-studio.example.com");
    let paths: Vec<Value> = rule["http"]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(
                p["backend"],
                json!({"service": {"name": "api-studio", "port": {"number": 80}}})
            );
            json!([p["path"], p["pathType"]])
        })
        .collect();
    assert_eq!(paths, public_paths());
    let text = i.to_string();
    for private in PRIVATE_PATHS {
        assert!(
            !text.contains(&format!("\"{private}\"")),
            "{private} exposed"
        );
    }
    assert_eq!(
        p.exposure,
        Some(ExposureState::Ingress {
            host: "api-studio.example.com".into(),
            instead_of_gateway: false
        })
    );
    // Only the ingress controller and Prometheus's namespace reach the port.
    let np = child(&p, Kind::NetworkPolicy).unwrap();
    assert_eq!(
        np["spec"]["ingress"],
        json!([{
            "ports": [{"protocol": "TCP", "port": 8080}],
            "from": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}},
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
            ]
        }])
    );
}

#[test]
fn an_httproute_on_the_gateway_where_the_api_is_served_else_the_ingress() {
    let a = example("universal-webhook-enterprise.yaml");
    let p = plan(&a, GATEWAY).unwrap();
    assert!(child(&p, Kind::Ingress).is_none());
    assert!(
        p.absent.contains(&Kind::Ingress),
        "a fallback Ingress is pruned"
    );
    let r = child(&p, Kind::HTTPRoute).unwrap();
    assert_eq!(r["apiVersion"], "gateway.networking.k8s.io/v1");
    assert_eq!(r["kind"], "HTTPRoute");
    assert_eq!(
        r["spec"]["parentRefs"],
        json!([{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "public", "namespace": "gateways", "sectionName": "https"}])
    );
    assert_eq!(r["spec"]["hostnames"], json!(["webhooks.example.com"]));
    let rules = r["spec"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(
        rules[0]["backendRefs"],
        json!([{"group": "", "kind": "Service", "name": "universal-webhook", "port": 80, "weight": 1}])
    );
    let matches: Vec<Value> = rules[0]["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let t = m["path"]["type"].as_str().unwrap();
            json!([
                m["path"]["value"],
                if t == "PathPrefix" { "Prefix" } else { t }
            ])
        })
        .collect();
    assert_eq!(matches, public_paths());
    assert!(matches!(p.exposure, Some(ExposureState::Routed { .. })));

    // No Gateway API: the Ingress, with the given certificate Secret, and the condition says so.
    let p = plan(&a, NO_GATEWAY).unwrap();
    assert!(child(&p, Kind::HTTPRoute).is_none());
    let i = child(&p, Kind::Ingress).unwrap();
    assert_eq!(
        i["spec"]["tls"][0]["secretName"],
        "webhooks-example-com-tls"
    );
    assert!(i["metadata"].get("annotations").is_none());
    assert_eq!(
        p.exposure,
        Some(ExposureState::Ingress {
            host: "webhooks.example.com".into(),
            instead_of_gateway: true
        })
    );

    // Only a Gateway, and no Gateway API: nothing routes, and the condition says why.
    let mut only_gateway = a.clone();
    only_gateway.spec.exposure.as_mut().unwrap().ingress = None;
    let p = plan(&only_gateway, NO_GATEWAY).unwrap();
    assert!(child(&p, Kind::Ingress).is_none() && child(&p, Kind::HTTPRoute).is_none());
    assert_eq!(p.exposure, Some(ExposureState::GatewayApiMissing));
}

#[test]
fn the_host_must_be_routable_and_the_url_pathless() {
    let mut a = example("api-studio-standard.yaml");
    for (url, expect) in [
        (
            "https://example.com/addons/api-studio",
            "exposure: baseUrl https://example.com/addons/api-studio has a path",
        ),
        ("https://localhost", "(localhost) is not a DNS name"),
        ("https://*.example.com", "is not a DNS name"),
        ("https://[::1]:8443", "is not a DNS name"),
    ] {
        a.spec.base_url = url.into();
        let e = plan(&a, NO_GATEWAY).unwrap_err();
        assert!(e.0.contains(expect), "{url}: {}", e.0);
    }
    // A port and a trailing slash are fine; the host is lower-cased.
    a.spec.base_url = "https://Addons.Example.com:8443/".into();
    let p = plan(&a, NO_GATEWAY).unwrap();
    assert_eq!(
        child(&p, Kind::Ingress).unwrap()["spec"]["rules"][0]["host"],
        "addons.example.com"
    );
    // Without exposure a path is the operator's business no more than before.
    a.spec.exposure = None;
    a.spec.base_url = "https://example.com/addons/api-studio".into();
    assert!(plan(&a, NO_GATEWAY).is_ok());
}

/// Every path a service routes, from its source: each route is added with the `path = "..."`
/// of its `#[utoipa::path]` (see services/clockify-addons/tests/openapi.rs, which fails on a
/// route added any other way).
fn service_routes() -> BTreeSet<String> {
    fn walk(dir: &std::path::Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                let flat: String = text.split_whitespace().collect::<Vec<_>>().join("");
                for part in flat.split("#[utoipa::path(").skip(1) {
                    if let Some(rest) = part.split_once("path=\"").map(|(_, rest)| rest)
                        && let Some(end) = rest.find('"')
                    {
                        out.insert(rest[..end].to_owned());
                    }
                }
                // Routes documented at run time, by their constant (the reference add-on's
                // per-event receivers).
                for part in flat.split("(\"/webhooks/").skip(1) {
                    if let Some(end) = part.find('"') {
                        out.insert(format!("/webhooks/{}", &part[..end]));
                    }
                }
                // Constants routed by name (the Clockify webhook receiver).
                for line in text.lines() {
                    if let Some(rest) = line
                        .trim()
                        .strip_prefix("pub const WEBHOOK_PATH: &str = \"")
                    {
                        out.insert(rest.trim_end_matches("\";").to_owned());
                    }
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../services"),
        &mut out,
    );
    out
}

fn public(route: &str) -> bool {
    PUBLIC_PATHS.iter().any(|(p, m)| match m {
        Match::Exact => route == *p,
        Match::Prefix => route == *p || route.starts_with(&format!("{p}/")),
    })
}

#[test]
fn every_service_route_is_public_or_private_by_decision() {
    let routes = service_routes();
    assert!(routes.len() > 20, "found the routes: {routes:?}");
    for must in [
        "/manifest",
        "/lifecycle/installed",
        "/webhooks/clockify",
        "/metrics",
    ] {
        assert!(routes.contains(must), "{must} in {routes:?}");
    }
    for r in &routes {
        let private = PRIVATE_PATHS.contains(&r.as_str());
        assert!(
            public(r) != private,
            "{r}: add it to PUBLIC_PATHS or PRIVATE_PATHS in operator/src/build/exposure.rs"
        );
    }
    for p in PRIVATE_PATHS {
        assert!(!public(p), "{p} must never be exposed");
    }
}
