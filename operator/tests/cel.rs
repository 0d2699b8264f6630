//! The CRD's CEL rules, evaluated client-side with the same rules the API server runs: the
//! examples pass; what must never be admitted is refused.
#![cfg(test)]

use clockify_operator::crd::ClockifyAddon;
use kube::CustomResourceExt;
use kube::core::cel::Validator;
use serde_json::{Value, json};

fn schema() -> Value {
    let crd = ClockifyAddon::crd();
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap()
}

fn example() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../manifests/examples/api-studio-standard.yaml"
    ))
    .unwrap();
    serde_norway::from_str(&text).unwrap()
}

fn errors(obj: &Value, old: Option<&Value>) -> String {
    match Validator::new().validate(&schema(), obj, old) {
        Ok(()) => String::new(),
        Err(e) => format!("{e:?}"),
    }
}

fn with(mut v: Value, pointer: &str, value: Value) -> Value {
    *v.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{pointer}")) = value;
    v
}

#[test]
fn every_example_is_admitted() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests/examples");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().is_some_and(|n| n == "kustomization.yaml") {
            continue;
        }
        let v: Value = serde_norway::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(errors(&v, None), "", "{}", path.display());
        let _: ClockifyAddon =
            serde_json::from_value(v).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

#[test]
fn min_above_max_is_refused() {
    let bad = with(
        example(),
        "/spec/database",
        json!({"urlSecretRef": {"name": "d", "key": "uri"}}),
    );
    let mut bad = bad;
    bad["spec"]["replicas"] = json!({"min": 5, "max": 2});
    assert!(errors(&bad, None).contains("replicas.min must not be greater than replicas.max"));
    bad["spec"]["replicas"] = json!({"min": 2, "max": 5});
    assert_eq!(errors(&bad, None), "");
}

#[test]
fn exactly_one_backup_destination() {
    let none = with(example(), "/spec/backup/destination", json!({}));
    assert!(errors(&none, None).contains("exactly one backup destination"));
    let both = with(
        example(),
        "/spec/backup/destination",
        json!({"pvc": {"size": "1Gi"}, "s3": {"bucket": "bkt", "credentialsSecretRef": {"name": "c"}}}),
    );
    assert!(errors(&both, None).contains("exactly one backup destination"));
}

#[test]
fn malformed_schedules_are_refused() {
    for bad in [
        "every night",
        "0 2 * *",
        "0 2 * * * *",
        "@sometimes",
        "0;2 * * * *",
        "",
    ] {
        let mut v = example();
        v["spec"]["backup"]["schedule"] = json!(bad);
        assert!(
            errors(&v, None).contains("schedule must be a cron expression"),
            "{bad:?} admitted"
        );
    }
    for good in [
        "0 2 * * *",
        "*/15 * * * *",
        "0 0 1,15 * MON-FRI",
        "@daily",
        "30 4 * * 0",
    ] {
        let mut e = example();
        e["spec"]["backup"]["schedule"] = json!(good);
        assert_eq!(errors(&e, None), "", "{good:?} refused");
    }
}

#[test]
fn the_addon_cannot_change() {
    let old = example();
    let mut new = example();
    new["spec"]["addon"] = json!("reference");
    new["spec"]["tier"] = json!("STANDARD");
    assert!(errors(&new, Some(&old)).contains("addon cannot be changed"));
    let mut same = example();
    same["spec"]["version"] = json!("0.2.0");
    assert_eq!(errors(&same, Some(&old)), "", "other fields may change");
}

#[test]
fn plans_tiers_urls_and_names() {
    let mut uw = example();
    uw["spec"]["addon"] = json!("universalWebhook");
    assert!(errors(&uw, None).contains("universalWebhook needs tier ENTERPRISE"));
    let mut free = example();
    free["spec"]["tier"] = json!("FREE");
    assert!(errors(&free, None).contains("apiStudio needs tier STANDARD"));
    let http = with(
        example(),
        "/spec/baseUrl",
        json!("http://plain.example.com"),
    );
    assert!(errors(&http, None).contains("baseUrl must be an https"));
    let long = with(
        example(),
        "/metadata/name",
        json!("a-name-that-is-far-too-long-for-its-children-to-fit"),
    );
    assert!(errors(&long, None).contains("metadata.name must be a DNS label"));
    let upper = with(example(), "/metadata/name", json!("ApiStudio"));
    assert!(errors(&upper, None).contains("metadata.name must be a DNS label"));
    let digest = {
        let mut e = example();
        e["spec"]["image"] = json!({"digest": "latest"});
        e
    };
    assert!(errors(&digest, None).contains("digest must look like"));
}

#[test]
fn restore_requests_are_checked() {
    let mut v = example();
    v["spec"]["restore"] = json!({"requestId": "incident-42", "from": "latest"});
    assert_eq!(errors(&v, None), "");
    let mut id = v.clone();
    id["spec"]["restore"]["from"] = json!("20261122T020000.512Z-api-studio-api-studio-backup-1");
    assert_eq!(errors(&id, None), "");
    let mut bad = v.clone();
    bad["spec"]["restore"]["requestId"] = json!("no spaces please");
    assert!(
        errors(&bad, None).contains("requestId must be"),
        "{}",
        errors(&bad, None)
    );
    let mut bad = v.clone();
    bad["spec"]["restore"]["from"] = json!("../../etc");
    assert!(errors(&bad, None).contains("from must be latest or a backup id"));
    let mut without_backup = v.clone();
    without_backup["spec"]
        .as_object_mut()
        .unwrap()
        .remove("backup");
    assert!(
        errors(&without_backup, None).contains("restore reads from spec.backup.destination"),
        "{}",
        errors(&without_backup, None)
    );
}

#[test]
fn exposure_and_work_scaling_rules() {
    let empty = with(example(), "/spec/exposure", json!({}));
    assert!(
        errors(&empty, None).contains("exposure needs ingress, gateway, or both"),
        "{}",
        errors(&empty, None)
    );
    let both_issuers = with(
        example(),
        "/spec/exposure",
        json!({"ingress": {"tls": {"issuer": "a", "clusterIssuer": "b"}}}),
    );
    assert!(errors(&both_issuers, None).contains("set issuer or clusterIssuer, not both"));
    let no_cert = with(example(), "/spec/exposure", json!({"ingress": {"tls": {}}}));
    assert!(errors(&no_cert, None).contains("tls needs secretName"));
    let ours = with(
        example(),
        "/spec/exposure",
        json!({"ingress": {"annotations": {"clockify-addons.io/applied": "x"}}}),
    );
    assert!(errors(&ours, None).contains("annotations under clockify-addons.io/"));
    let fine = with(
        example(),
        "/spec/exposure",
        json!({"ingress": {"className": "nginx", "tls": {"clusterIssuer": "letsencrypt"}},
               "gateway": {"name": "public"}}),
    );
    assert_eq!(errors(&fine, None), "");
    let rps = set_replicas(json!({"work": {"requestsPerSecondPerReplica": 40}}));
    assert!(errors(&rps, None).contains("requestsPerSecondPerReplica needs prometheusAddress"));
    let addr = set_replicas(
        json!({"work": {"requestsPerSecondPerReplica": 40, "prometheusAddress": "prometheus:9090"}}),
    );
    assert!(errors(&addr, None).contains("prometheusAddress must be an http"));
}

fn set_replicas(replicas: Value) -> Value {
    let mut v = example();
    v["spec"]["replicas"] = replicas;
    v
}
