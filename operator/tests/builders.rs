//! Pure builders from YAML fixtures: every tier, HPA on and off, monitoring on and off,
//! overrides. No cluster, no client.
#![cfg(test)]

use clockify_operator::crd::{ClockifyAddon, Tier};
use clockify_operator::plan::{Capabilities, Child, Kind, plan};
use clockify_operator::settings::resolve;
use clockify_operator::{build, tier};
use serde_json::{Value, json};

fn fixture(name: &str) -> ClockifyAddon {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn example(name: &str) -> ClockifyAddon {
    let path = format!(
        "{}/../manifests/examples/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut a: ClockifyAddon =
        serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    a.metadata.uid = Some("00000000-0000-4000-8000-00000000000a".into());
    a
}

const SM: Capabilities = Capabilities {
    service_monitor: true,
    http_route: false,
    scaled_object: false,
};
const NO_SM: Capabilities = Capabilities {
    service_monitor: false,
    http_route: false,
    scaled_object: false,
};

fn kinds(p: &clockify_operator::plan::Plan) -> Vec<Kind> {
    p.children.iter().map(Child::kind).collect()
}

fn json_of(p: &clockify_operator::plan::Plan, kind: Kind) -> Value {
    p.children
        .iter()
        .find(|c| c.kind() == kind)
        .map(Child::to_json)
        .unwrap_or(Value::Null)
}

fn addon_for(t: Tier) -> ClockifyAddon {
    let mut a = example("api-studio-standard.yaml");
    a.spec.tier = t;
    a
}

#[test]
fn every_tier_gets_its_profile() {
    for profile in tier::PROFILES {
        let a = addon_for(profile.tier);
        let p = plan(&a, SM).unwrap();
        let d = json_of(&p, Kind::Deployment);
        let res = &d["spec"]["template"]["spec"]["containers"][0]["resources"];
        assert_eq!(
            res["requests"]["cpu"], profile.cpu_request,
            "{:?}",
            profile.tier
        );
        assert_eq!(
            res["limits"]["memory"], profile.memory_limit,
            "{:?}",
            profile.tier
        );
        let autoscaled = profile.max_replicas > profile.min_replicas;
        assert_eq!(
            kinds(&p).contains(&Kind::HorizontalPodAutoscaler),
            autoscaled,
            "{:?}",
            profile.tier
        );
        assert_eq!(
            d["spec"].get("replicas").is_some(),
            !autoscaled,
            "no replicas field when an HPA owns them: {:?}",
            profile.tier
        );
        assert_eq!(
            kinds(&p).contains(&Kind::PodDisruptionBudget),
            profile.min_replicas >= 2,
            "{:?}",
            profile.tier
        );
        let cm = json_of(&p, Kind::ConfigMap);
        assert_eq!(cm["data"]["ADDON_PLAN"], profile.tier.as_str());
        assert_eq!(
            cm["data"]["DATABASE_MAX_CONNECTIONS"],
            profile.db_connections.to_string()
        );
        if autoscaled {
            let h = json_of(&p, Kind::HorizontalPodAutoscaler);
            assert_eq!(h["spec"]["minReplicas"], profile.min_replicas);
            assert_eq!(h["spec"]["maxReplicas"], profile.max_replicas);
            assert_eq!(h["apiVersion"], "autoscaling/v2");
            assert_eq!(
                h["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
                70
            );
        }
        assert_eq!(
            resolve(&a).unwrap().backup_schedule,
            profile.backup_schedule
        );
    }
}

#[test]
fn apply_order_and_owner_references() {
    let a = example("api-studio-standard.yaml");
    let p = plan(&a, SM).unwrap();
    assert_eq!(
        kinds(&p),
        vec![
            Kind::ServiceAccount,
            Kind::ConfigMap,
            Kind::NetworkPolicy,
            Kind::Service,
            Kind::Ingress,
            Kind::Deployment,
            Kind::HorizontalPodAutoscaler,
            Kind::PodDisruptionBudget,
            Kind::ServiceMonitor,
            Kind::PersistentVolumeClaim,
            Kind::CronJob
        ]
    );
    assert_eq!(p.absent, vec![Kind::HTTPRoute, Kind::ScaledObject]);
    for c in &p.children {
        let j = c.to_json();
        if c.kind() == Kind::PersistentVolumeClaim {
            // It holds the backups: deleting the ClockifyAddon must not delete it.
            assert!(j["metadata"].get("ownerReferences").is_none());
            continue;
        }
        let owner = &j["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "ClockifyAddon", "{:?}", c.kind());
        assert_eq!(owner["controller"], true);
        assert_eq!(owner["uid"], "00000000-0000-4000-8000-00000000000a");
        assert_eq!(j["metadata"]["namespace"], "clockify-addons");
        assert_eq!(
            j["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "clockify-operator"
        );
    }
}

#[test]
fn hpa_off_fixes_replicas_and_prunes_the_autoscaler() {
    let a = fixture("hpa-off.yaml");
    let p = plan(&a, SM).unwrap();
    assert!(!kinds(&p).contains(&Kind::HorizontalPodAutoscaler));
    assert_eq!(
        p.absent,
        vec![
            Kind::Ingress,
            Kind::HTTPRoute,
            Kind::HorizontalPodAutoscaler,
            Kind::ScaledObject,
            Kind::CronJob
        ],
        "no exposure, no backup configured: no Ingress, HTTPRoute or CronJob"
    );
    let d = json_of(&p, Kind::Deployment);
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(
        json_of(&p, Kind::PodDisruptionBudget)["spec"]["maxUnavailable"],
        1
    );
}

#[test]
fn restricted_pod_security_probes_and_rolling_update() {
    let p = plan(&example("api-studio-standard.yaml"), SM).unwrap();
    let d = json_of(&p, Kind::Deployment);
    let pod = &d["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(
        c["securityContext"],
        json!({
            "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "runAsNonRoot": true,
            "runAsUser": 65532, "runAsGroup": 65532, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}
        })
    );
    assert_eq!(c["volumeMounts"][0]["mountPath"], "/tmp");
    assert!(pod["volumes"][0]["emptyDir"].is_object());
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/ready");
    assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
    assert_eq!(c["args"], json!(["serve", "api-studio"]));
    assert_eq!(c["image"], "ghcr.io/clockify-addons/clockify-addons:0.1.0");
    assert_eq!(c["envFrom"][0]["configMapRef"]["name"], "api-studio-config");
    // Secrets only by reference.
    let env = c["env"].as_array().unwrap();
    for var in env {
        assert!(var.get("value").is_none(), "{var}");
    }
    assert_eq!(
        env[0]["valueFrom"]["secretKeyRef"],
        json!({"name": "api-studio-db-app", "key": "uri", "optional": false})
    );
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["serviceAccountName"], "api-studio");
    // Shutdown: the preStop sleep drains, then the add-on's own deadline; the grace period
    // covers both.
    assert_eq!(
        c["lifecycle"],
        json!({"preStop": {"sleep": {"seconds": 5}}})
    );
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);
    let cm = json_of(&p, Kind::ConfigMap);
    assert_eq!(cm["data"]["SHUTDOWN_DRAIN_SECONDS"], "0");
    let deadline: i64 = cm["data"]["SHUTDOWN_TIMEOUT_SECONDS"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        5 + deadline < 30,
        "preStop + deadline within the grace period"
    );
    assert_eq!(
        d["spec"]["template"]["metadata"]["annotations"]["clockify-addons.io/version"],
        "0.1.0"
    );
}

/// A rotation in progress: the earlier keys come from their Secrets and are joined into one
/// list by Kubernetes' $(VAR) expansion, never written into the spec.
#[test]
fn previous_encryption_keys_are_passed_by_reference() {
    let mut a = example("api-studio-standard.yaml");
    a.spec.secrets.previous_token_encryption_key_refs = vec![
        clockify_operator::crd::SecretKeyRef {
            name: "keys".into(),
            key: "2026-06".into(),
        },
        clockify_operator::crd::SecretKeyRef {
            name: "keys".into(),
            key: "2026-01".into(),
        },
    ];
    let p = plan(&a, SM).unwrap();
    let d = json_of(&p, Kind::Deployment);
    let env = d["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .clone();
    let by_name = |n: &str| env.iter().find(|e| e["name"] == n).cloned().unwrap();
    assert_eq!(
        by_name("TOKEN_ENCRYPTION_PREVIOUS_KEY_1")["valueFrom"]["secretKeyRef"],
        json!({"name": "keys", "key": "2026-06", "optional": false})
    );
    assert_eq!(
        by_name("TOKEN_ENCRYPTION_PREVIOUS_KEY_2")["valueFrom"]["secretKeyRef"]["key"],
        "2026-01"
    );
    assert_eq!(
        by_name("TOKEN_ENCRYPTION_PREVIOUS_KEYS")["value"],
        "$(TOKEN_ENCRYPTION_PREVIOUS_KEY_1),$(TOKEN_ENCRYPTION_PREVIOUS_KEY_2)"
    );
    let pos = |n: &str| env.iter().position(|e| e["name"] == n).unwrap();
    assert!(
        pos("TOKEN_ENCRYPTION_PREVIOUS_KEY_2") < pos("TOKEN_ENCRYPTION_PREVIOUS_KEYS"),
        "$(VAR) expands only variables defined before it"
    );
}

#[test]
fn a_config_change_changes_the_template_hash() {
    let a = example("api-studio-standard.yaml");
    let s = resolve(&a).unwrap();
    let h1 = build::config_hash(&a, &s);
    assert_eq!(h1, build::config_hash(&a, &s), "stable");
    let mut b = a.clone();
    b.spec.base_url = "https://other.example.com".into();
    assert_ne!(h1, build::config_hash(&b, &resolve(&b).unwrap()));
    let mut c = a.clone();
    c.spec.secrets.token_encryption_key_ref.key = "rotated".into();
    assert_ne!(h1, build::config_hash(&c, &resolve(&c).unwrap()));
    let mut e = a.clone();
    e.spec
        .secrets
        .previous_token_encryption_key_refs
        .push(e.spec.secrets.token_encryption_key_ref.clone());
    assert_ne!(h1, build::config_hash(&e, &resolve(&e).unwrap()));
    let mut d = a.clone();
    d.spec.log_level = Some("debug".into());
    assert_ne!(h1, build::config_hash(&d, &resolve(&d).unwrap()));
}

#[test]
fn monitoring_modes() {
    let auto = example("api-studio-standard.yaml");
    assert!(kinds(&plan(&auto, SM).unwrap()).contains(&Kind::ServiceMonitor));
    let p = plan(&auto, NO_SM).unwrap();
    assert!(
        !kinds(&p).contains(&Kind::ServiceMonitor) && !p.service_monitor_missing,
        "Auto without the API: nothing, no error"
    );
    assert!(p.absent.contains(&Kind::ServiceMonitor));
    let enabled = example("universal-webhook-enterprise.yaml");
    assert!(
        plan(&enabled, NO_SM).unwrap().service_monitor_missing,
        "Enabled without the API is reported"
    );
    let sm = json_of(&plan(&enabled, SM).unwrap(), Kind::ServiceMonitor);
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(sm["spec"]["endpoints"][0]["interval"], "15s");
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "http");
    let off = fixture("monitoring-off.yaml");
    let p = plan(&off, SM).unwrap();
    assert!(!kinds(&p).contains(&Kind::ServiceMonitor));
    assert!(
        !kinds(&p).contains(&Kind::NetworkPolicy),
        "networkPolicy.enabled: false"
    );
    assert!(
        p.absent.contains(&Kind::NetworkPolicy) && p.absent.contains(&Kind::PodDisruptionBudget)
    );
}

#[test]
fn overrides_are_merged_without_breaking_selectors() {
    let a = fixture("overrides.yaml");
    let p = plan(&a, SM).unwrap();
    let d = json_of(&p, Kind::Deployment);
    let t = &d["spec"]["template"];
    let c = &t["spec"]["containers"][0];
    assert_eq!(
        c["image"],
        "registry.example.com/addons@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    );
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(t["spec"]["imagePullSecrets"], json!([{"name": "regcred"}]));
    assert_eq!(t["metadata"]["labels"]["cost-center"], "42");
    assert_eq!(
        t["metadata"]["labels"]["app.kubernetes.io/name"], "universal-webhook",
        "selector labels win"
    );
    assert_eq!(t["metadata"]["annotations"]["team"], "b");
    assert_eq!(c["resources"]["limits"]["cpu"], "3");
    assert_eq!(t["spec"]["nodeSelector"]["disktype"], "ssd");
    assert_eq!(t["spec"]["tolerations"][0]["key"], "dedicated");
    assert_eq!(
        t["spec"]["topologySpreadConstraints"][0]["topologyKey"],
        "topology.kubernetes.io/zone"
    );
    assert!(t["spec"]["affinity"]["nodeAffinity"].is_object());
    assert_eq!(t["spec"]["priorityClassName"], "high");
    let env: Vec<&str> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        env,
        vec![
            "DATABASE_URL",
            "TOKEN_ENCRYPTION_KEY",
            "REDIS_URL",
            "EXTRA_SETTING",
            "API_TOKEN"
        ]
    );
    let np = json_of(&p, Kind::NetworkPolicy);
    let ports: Vec<i64> = np["spec"]["egress"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ports"][0]["port"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ports,
        vec![53, 6432, 443, 6379],
        "DNS, the database's own port, HTTPS, Redis"
    );
    let h = json_of(&p, Kind::HorizontalPodAutoscaler);
    assert_eq!(
        (
            h["spec"]["minReplicas"].as_i64(),
            h["spec"]["maxReplicas"].as_i64()
        ),
        (Some(4), Some(12))
    );
    assert_eq!(
        h["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        55
    );
    assert_eq!(json_of(&p, Kind::ConfigMap)["data"]["RUST_LOG"], "debug");
}

#[test]
fn specs_the_schema_cannot_catch_are_refused_with_reasons() {
    let mut a = example("api-studio-standard.yaml");
    a.spec.replicas = Some(clockify_operator::crd::ReplicasSpec {
        max: Some(1),
        ..Default::default()
    });
    let err = plan(&a, SM).unwrap_err().0;
    assert!(
        err.contains("min 2 is greater than max 1") && err.contains("tier STANDARD"),
        "{err}"
    );

    let mut b = fixture("overrides.yaml");
    let overrides = b.spec.pod_overrides.as_mut().unwrap();
    overrides.env.push(k8s_openapi::api::core::v1::EnvVar {
        name: "DB_PASSWORD".into(),
        value: Some("hunter2".into()),
        ..Default::default()
    });
    let err = plan(&b, SM).unwrap_err().0;
    assert!(err.contains("DB_PASSWORD looks like a secret"), "{err}");
    assert!(!err.contains("hunter2"), "the value is never echoed");

    let mut c = fixture("overrides.yaml");
    c.spec
        .pod_overrides
        .as_mut()
        .unwrap()
        .env
        .push(k8s_openapi::api::core::v1::EnvVar {
            name: "DATABASE_URL".into(),
            value_from: Some(Default::default()),
            ..Default::default()
        });
    assert!(plan(&c, SM).unwrap_err().0.contains("set by the operator"));
}

fn backup_fixture() -> ClockifyAddon {
    fixture("backup-s3-restore.yaml")
}

#[test]
fn the_backup_cron_job_follows_the_tier_or_the_spec_and_runs_restricted() {
    // The schedule: the tier's by default, the spec's when given.
    for profile in tier::PROFILES {
        let a = addon_for(profile.tier);
        let cj = json_of(&plan(&a, SM).unwrap(), Kind::CronJob);
        assert_eq!(
            cj["spec"]["schedule"], profile.backup_schedule,
            "{:?}",
            profile.tier
        );
    }
    let a = backup_fixture();
    let p = plan(&a, SM).unwrap();
    let cj = json_of(&p, Kind::CronJob);
    assert_eq!(cj["metadata"]["name"], "restored-backup");
    assert_eq!(cj["spec"]["schedule"], "30 1 * * *");
    assert_eq!(cj["spec"]["concurrencyPolicy"], "Forbid");
    assert_eq!(cj["spec"]["timeZone"], "Etc/UTC");
    assert_eq!(
        cj["spec"]["suspend"], true,
        "a restore is requested and not done"
    );
    let pod = &cj["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(c["args"], json!(["backup", "reference"]));
    assert_eq!(
        c["image"],
        "ghcr.io/clockify-addons/clockify-addons:0.3.0-backup"
    );
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(pod["automountServiceAccountToken"], false);
    let env: Vec<&Value> = c["env"].as_array().unwrap().iter().collect();
    let get = |n: &str| {
        env.iter()
            .find(|e| e["name"] == n)
            .copied()
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(
        get("BACKUP_DESTINATION")["value"],
        "s3://clockify-backups/prod/team-c/restored"
    );
    assert_eq!(
        get("BACKUP_S3_ENDPOINT")["value"],
        "http://minio.storage.svc:9000"
    );
    assert_eq!(get("AWS_REGION")["value"], "eu-central-1");
    assert_eq!(get("BACKUP_KEEP_LAST")["value"], "7");
    assert_eq!(get("BACKUP_MAX_AGE_DAYS")["value"], "30");
    // Every credential by reference, none as a value.
    for name in ["DATABASE_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        assert!(get(name).get("value").is_none(), "{name}");
        assert!(
            get(name)["valueFrom"]["secretKeyRef"]["name"].is_string(),
            "{name}"
        );
    }
    assert_eq!(
        get("AWS_SECRET_ACCESS_KEY")["valueFrom"]["secretKeyRef"]["name"],
        "backup-s3"
    );
    assert_eq!(
        get("BACKUP_LABEL")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.labels['batch.kubernetes.io/job-name']"
    );
    // S3: no volume; the NetworkPolicy lets the pods reach the endpoint's port.
    assert!(!kinds(&p).contains(&Kind::PersistentVolumeClaim));
    let np = json_of(&p, Kind::NetworkPolicy);
    let ports: Vec<i64> = np["spec"]["egress"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r["ports"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["port"].as_i64().unwrap())
        })
        .collect();
    assert!(ports.contains(&9000), "{ports:?}");
}

#[test]
fn workload_identity_annotates_the_service_account_and_drops_static_keys() {
    let mut a = backup_fixture();
    let mut with_keys = json_of(&plan(&a, SM).unwrap(), Kind::ServiceAccount);
    assert!(
        with_keys["metadata"]["annotations"].is_null(),
        "{with_keys}"
    );
    a.spec.service_account_template = Some(Box::new(
        serde_json::from_value(json!({"metadata": {
            "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/backups"},
            "labels": {"team": "a", "app.kubernetes.io/name": "not-ours-to-set"}
        }}))
        .unwrap(),
    ));
    if let Some(b) = a.spec.backup.as_deref_mut()
        && let Some(s3) = b.destination.s3.as_mut()
    {
        s3.credentials_secret_ref = None;
    }
    let p = plan(&a, SM).unwrap();
    let sa = json_of(&p, Kind::ServiceAccount);
    assert_eq!(
        sa["metadata"]["annotations"],
        json!({"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/backups"})
    );
    assert_eq!(sa["metadata"]["labels"]["team"], "a");
    // The operator's own labels win; the rest of the account is unchanged.
    with_keys["metadata"]["annotations"] = sa["metadata"]["annotations"].clone();
    with_keys["metadata"]["labels"]["team"] = json!("a");
    assert_eq!(sa, with_keys);
    let cj = json_of(&p, Kind::CronJob);
    let pod = &cj["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], sa["metadata"]["name"]);
    let names: Vec<&str> = pod["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"BACKUP_DESTINATION"), "{names:?}");
    for key in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        assert!(
            !names.contains(&key),
            "no static key without a Secret: {names:?}"
        );
    }
}

#[test]
fn a_volume_destination_gets_a_claim_that_outlives_the_addon() {
    let mut a = example("api-studio-standard.yaml");
    if let Some(b) = a.spec.backup.as_mut() {
        b.destination.pvc.as_mut().unwrap().storage_class_name = Some("fast-ssd".into());
        b.image = Some("registry.example.com/pg-tools:17".into());
        b.suspend = Some(true);
    }
    let p = plan(&a, SM).unwrap();
    let pvc = json_of(&p, Kind::PersistentVolumeClaim);
    assert_eq!(pvc["metadata"]["name"], "api-studio-backups");
    assert!(pvc["metadata"].get("ownerReferences").is_none());
    assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "5Gi");
    assert_eq!(pvc["spec"]["storageClassName"], "fast-ssd");
    assert_eq!(pvc["spec"]["accessModes"], json!(["ReadWriteOnce"]));
    let cj = json_of(&p, Kind::CronJob);
    assert_eq!(cj["spec"]["suspend"], true);
    let pod = &cj["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(
        pod["containers"][0]["image"],
        "registry.example.com/pg-tools:17"
    );
    assert_eq!(
        pod["volumes"][1]["persistentVolumeClaim"]["claimName"],
        "api-studio-backups"
    );
    assert_eq!(
        pod["containers"][0]["volumeMounts"][1]["mountPath"],
        "/backups"
    );
    // A bad size is an invalid spec, with the reason.
    let mut bad = a.clone();
    bad.spec
        .backup
        .as_mut()
        .unwrap()
        .destination
        .pvc
        .as_mut()
        .unwrap()
        .size = "lots".into();
    let e = plan(&bad, SM).unwrap_err();
    assert!(e.0.contains("pvc.size \"lots\""), "{}", e.0);
}

#[test]
fn restore_jobs_read_only_and_never_retried_blindly() {
    let a = backup_fixture();
    let s = resolve(&a).unwrap();
    let b = s.backup.clone().unwrap();
    let job = serde_json::to_value(build::backup::restore_job(
        &a,
        &s,
        &b,
        "incident-42",
        "latest",
    ))
    .unwrap();
    assert_eq!(job["spec"]["backoffLimit"], 0);
    assert_eq!(
        job["metadata"]["annotations"]["clockify-addons.io/request"],
        "incident-42"
    );
    let c = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        c["args"],
        json!([
            "restore",
            "reference",
            "--from",
            "latest",
            "--request-id",
            "incident-42",
            "--force"
        ])
    );
    assert_eq!(c["terminationMessagePolicy"], "FallbackToLogsOnError");
    let m =
        serde_json::to_value(build::backup::restore_migration_job(&a, &s, "incident-42")).unwrap();
    assert_eq!(
        m["metadata"]["labels"]["app.kubernetes.io/component"],
        "restore"
    );
    assert_eq!(
        m["spec"]["template"]["spec"]["containers"][0]["args"],
        json!(["migrate", "reference"])
    );
    // Names fit in 63 characters for the longest ClockifyAddon name (40).
    let mut long = a.clone();
    long.metadata.name = Some("a".repeat(40));
    for n in [
        build::backup::restore_migration_job_name(&long, "x"),
        build::backup::on_demand_job_name(&long, "x"),
        build::backup::restore_job_name(&long, "x"),
    ] {
        assert!(n.len() <= 63, "{n}");
    }
    assert!(
        build::backup::cron_job_name(&long).len() <= 52,
        "CronJob names leave room for the Job suffix"
    );
}

#[test]
fn where_keda_is_served_the_add_on_scales_on_its_backlog() {
    let keda = Capabilities {
        scaled_object: true,
        ..SM
    };
    let mut a = example("api-studio-standard.yaml");
    let p = plan(&a, keda).unwrap();
    assert!(!kinds(&p).contains(&Kind::HorizontalPodAutoscaler));
    assert!(
        p.absent.contains(&Kind::HorizontalPodAutoscaler),
        "the CPU HPA goes"
    );
    let so = json_of(&p, Kind::ScaledObject);
    assert_eq!(so["apiVersion"], "keda.sh/v1alpha1");
    assert_eq!(
        so["spec"]["scaleTargetRef"],
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "api-studio"})
    );
    assert_eq!(
        (
            so["spec"]["minReplicaCount"].clone(),
            so["spec"]["maxReplicaCount"].clone()
        ),
        (json!(2), json!(4))
    );
    assert_eq!(
        so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["name"], "api-studio",
        "KEDA's HPA carries the add-on's name, so the replica hand-over sees it"
    );
    assert_eq!(
        so["spec"]["triggers"],
        json!([
            {"type": "metrics-api", "name": "backlog", "metricType": "AverageValue", "metadata": {
                "url": "http://api-studio.clockify-addons.svc:80/backlog",
                "valueLocation": "waiting", "targetValue": "100"}},
            {"type": "cpu", "name": "cpu", "metricType": "Utilization", "metadata": {"value": "70"}}
        ])
    );
    // Request rate through Prometheus; or KEDA declined: the CPU HPA.
    a.spec.replicas = Some(
        serde_json::from_value(json!({"work": {
        "backlogPerReplica": 50, "requestsPerSecondPerReplica": 40,
        "prometheusAddress": "http://prometheus.monitoring.svc:9090"}}))
        .unwrap(),
    );
    let so = json_of(&plan(&a, keda).unwrap(), Kind::ScaledObject);
    assert_eq!(so["spec"]["triggers"][0]["metadata"]["targetValue"], "50");
    assert_eq!(
        so["spec"]["triggers"][2],
        json!({"type": "prometheus", "name": "requests", "metricType": "AverageValue", "metadata": {
            "serverAddress": "http://prometheus.monitoring.svc:9090",
            "query": "sum(rate(http_requests_total{namespace=\"clockify-addons\",service=\"api-studio\"}[2m]))",
            "threshold": "40"}})
    );
    a.spec.replicas = Some(serde_json::from_value(json!({"work": {"enabled": false}})).unwrap());
    let p = plan(&a, keda).unwrap();
    assert!(kinds(&p).contains(&Kind::HorizontalPodAutoscaler));
    assert!(p.absent.contains(&Kind::ScaledObject));
    // Fixed replicas: neither.
    a.spec.replicas = Some(serde_json::from_value(json!({"min": 3, "max": 3})).unwrap());
    let p = plan(&a, keda).unwrap();
    assert!(!kinds(&p).contains(&Kind::HorizontalPodAutoscaler));
    assert!(!kinds(&p).contains(&Kind::ScaledObject));
    // Without KEDA: the CPU HPA, as before.
    let p = plan(&example("api-studio-standard.yaml"), SM).unwrap();
    assert!(kinds(&p).contains(&Kind::HorizontalPodAutoscaler));
}
