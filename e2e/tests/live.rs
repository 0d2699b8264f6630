//! The operator against a live cluster, bare or with kube-controller-manager. See
//! e2e/README.md. Each test has a namespace and an operator of its own; they take turns.
#![cfg(test)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clockify_e2e::{Mode, Outcome, World, condition, eventually, write_deployment_status};
use clockify_operator::build::backup;
use clockify_operator::crd::RestorePhase;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::runtime::WatchStreamExt;
use serde_json::{Value, json};

/// Every child kind the operator keeps, with where it lives and what it is called.
fn child_kinds(addon: &str) -> Vec<(&'static str, ApiResource, String)> {
    vec![
        (
            "ServiceAccount",
            ApiResource::erase::<ServiceAccount>(&()),
            addon.to_owned(),
        ),
        (
            "ConfigMap",
            ApiResource::erase::<ConfigMap>(&()),
            format!("{addon}-config"),
        ),
        (
            "NetworkPolicy",
            ApiResource::erase::<NetworkPolicy>(&()),
            addon.to_owned(),
        ),
        (
            "Service",
            ApiResource::erase::<Service>(&()),
            addon.to_owned(),
        ),
        (
            "Deployment",
            ApiResource::erase::<Deployment>(&()),
            addon.to_owned(),
        ),
        (
            "HorizontalPodAutoscaler",
            ApiResource::erase::<HorizontalPodAutoscaler>(&()),
            addon.to_owned(),
        ),
        (
            "PodDisruptionBudget",
            ApiResource::erase::<PodDisruptionBudget>(&()),
            addon.to_owned(),
        ),
        (
            "ServiceMonitor",
            clockify_operator::build::service_monitor::api_resource(),
            addon.to_owned(),
        ),
        (
            "CronJob",
            ApiResource::erase::<CronJob>(&()),
            format!("{addon}-backup"),
        ),
        (
            "HTTPRoute",
            clockify_operator::build::exposure::http_route_resource(),
            addon.to_owned(),
        ),
    ]
}

fn dynamic(w: &World, ar: &ApiResource) -> Api<DynamicObject> {
    Api::namespaced_with(w.client.clone(), &w.ns, ar)
}

/// Touches each ClockifyAddon (an annotation, no spec change) so the operator runs a pass over
/// it, and returns (reconciles, API writes, Events) that pass made.
async fn no_op_pass(w: &World, names: &[String], round: u32) -> (f64, f64, usize) {
    let (writes, events, since) = (w.writes(), w.events().await.len(), w.reconciles());
    for name in names {
        w.patch_addon(
            name,
            json!({"metadata": {"annotations": {"e2e.clockify-addons.io/touch": round.to_string()}}}),
        )
        .await;
    }
    w.quiet_after(since, names.len() as f64).await;
    let new_events = w.events().await;
    (
        w.reconciles() - since,
        w.writes() - writes,
        new_events.len() - events,
    )
}

/// Waits until no pass is running, then asserts the next pass over `names` writes nothing.
async fn assert_quiet(w: &World, names: &[String], round: u32, what: &str) {
    let before = w.writes_by_kind();
    let events_before = w.events().await;
    let (reconciles, writes, events) = no_op_pass(w, names, round).await;
    let after = w.events().await;
    assert_eq!(
        (writes, events),
        (0.0, 0),
        "{what}: a pass over {names:?} ({reconciles} reconciles) wrote {writes} times and recorded {events} Events\nwrites before: {before}\nwrites after: {}\nnew Events: {:?}",
        w.writes_by_kind(),
        &after[events_before.len()..]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_examples_install_then_stay_quiet() {
    let Some(w) = World::start("examples").await else {
        return;
    };
    let examples = w.examples();
    w.create(&examples).await;
    let deploys: Api<Deployment> = w.api();

    // First install: the migration Job comes first, the Deployment only after it succeeded.
    let first = examples[0].name_any();
    let job = w.migration_job(&first, &examples[0].spec.version).await;
    assert_eq!(
        job.spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .args
            .as_deref(),
        Some(
            &[
                "migrate".to_owned(),
                examples[0].spec.addon.slug().to_owned()
            ][..]
        )
    );
    assert!(
        job.spec
            .as_ref()
            .unwrap()
            .ttl_seconds_after_finished
            .is_none(),
        "a migration Job has no TTL until it succeeded"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        deploys.get_opt(&first).await.unwrap().is_none(),
        "no Deployment before the database is migrated"
    );
    let started = Instant::now();
    w.install(&examples).await;
    w.figure(&format!(
        "{} examples migrated and Ready in {:.1} s",
        examples.len(),
        started.elapsed().as_secs_f64()
    ));

    for a in &examples {
        let name = a.name_any();
        let d = deploys.get(&name).await.unwrap();
        let owner = &d.metadata.owner_references.clone().unwrap_or_default()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.controller),
            ("ClockifyAddon", name.as_str(), Some(true))
        );
        let status = w.addon(&name).await.status.unwrap();
        let c = |t: &str| {
            status
                .conditions
                .iter()
                .find(|c| c.type_ == t)
                .map(|c| c.status.clone())
        };
        assert_eq!(c("Reconciling").as_deref(), Some("False"), "{name}");
        assert_eq!(c("Stalled").as_deref(), Some("False"), "{name}");
        assert_eq!(c("DatabaseMigrated").as_deref(), Some("True"), "{name}");
        assert_eq!(
            status.last_migration.as_ref().map(|m| m.version.as_str()),
            Some(a.spec.version.as_str())
        );
        // A migration that succeeded expires an hour later.
        let job = w.migration_job(&name, &a.spec.version).await;
        let ttl = eventually("the TTL of a succeeded migration Job", || async {
            w.api::<Job>()
                .get(&job.name_any())
                .await
                .ok()?
                .spec?
                .ttl_seconds_after_finished
        })
        .await;
        assert_eq!(ttl, 3600);
    }

    // No-op passes over every example: no write, no Event (twice, so the first pass is not
    // merely absorbing the install's last watch events).
    let names: Vec<String> = examples.iter().map(|a| a.name_any()).collect();
    for round in 1..=2 {
        let (reconciles, writes, events) = no_op_pass(&w, &names, round).await;
        w.figure(&format!(
            "no-op pass {round} over the {} examples: {reconciles} reconciles, {writes} API writes, {events} Events",
            names.len()
        ));
        assert_eq!(
            (writes, events),
            (0.0, 0),
            "a no-op pass wrote: {}",
            w.writes_by_kind()
        );
    }

    // Deleting the ClockifyAddons removes their children: by the garbage collector, or on a
    // bare control plane by the suite once it checked the owner references the collector follows.
    for a in &examples {
        w.addons()
            .delete(&a.name_any(), &DeleteParams::background())
            .await
            .expect("delete the ClockifyAddon");
    }
    if w.mode == Mode::Bare {
        for d in deploys.list(&Default::default()).await.unwrap().items {
            let owners = d.metadata.owner_references.clone().unwrap_or_default();
            assert!(
                owners
                    .iter()
                    .any(|o| o.kind == "ClockifyAddon" && o.controller == Some(true)),
                "{} has no controller owner",
                d.name_any()
            );
            deploys
                .delete(&d.name_any(), &DeleteParams::default())
                .await
                .unwrap();
        }
    }
    eventually("the Deployments to be gone", || async {
        deploys
            .list(&Default::default())
            .await
            .ok()
            .filter(|l| l.items.is_empty())
            .map(|_| ())
    })
    .await;
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_deleted_children_come_back_at_once() {
    let Some(w) = World::start("deletions").await else {
        return;
    };
    // Universal Webhook has every kind but the volume; API Studio's backups have one.
    let addons = vec![w.example("universal-webhook"), w.example("api-studio")];
    w.create(&addons).await;
    w.install(&addons).await;
    let mut kinds = child_kinds("universal-webhook");
    kinds.push((
        "PersistentVolumeClaim",
        ApiResource::erase::<PersistentVolumeClaim>(&()),
        "api-studio-backups".to_owned(),
    ));
    kinds.push((
        "Ingress",
        ApiResource::erase::<k8s_openapi::api::networking::v1::Ingress>(&()),
        "api-studio".to_owned(),
    ));
    let mut figures = Vec::new();
    for (kind, ar, name) in kinds {
        let api = dynamic(&w, &ar);
        let old = api
            .get(&name)
            .await
            .unwrap_or_else(|e| panic!("{kind} {name}: {e}"));
        let uid = old.metadata.uid.clone();
        let deleted = Instant::now();
        api.delete(&name, &DeleteParams::background())
            .await
            .unwrap_or_else(|e| panic!("delete {kind} {name}: {e}"));
        if kind == "PersistentVolumeClaim" && w.mode == Mode::Bare {
            // No PVC-protection controller: the suite lifts its finalizer, as it would.
            let _ = api
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"metadata": {"finalizers": null}})),
                )
                .await;
        }
        eventually(&format!("{kind} {name} to come back"), || async {
            let o = api.get_opt(&name).await.ok()??;
            (o.metadata.uid != uid && o.metadata.deletion_timestamp.is_none()).then_some(())
        })
        .await;
        let seconds = deleted.elapsed().as_secs_f64();
        figures.push(format!("{kind} {seconds:.2} s"));
        assert!(
            seconds < 2.0,
            "{kind} {name} came back only after {seconds:.2} s"
        );
    }
    w.figure(&format!(
        "deleted by hand, back after: {}",
        figures.join(", ")
    ));
    w.finish().await;
}

/// One edit of a field the operator sets, made as `kubectl edit` or `kubectl patch` would.
struct Edit {
    kind: &'static str,
    ar: ApiResource,
    name: String,
    patch: Patch<Value>,
    /// Whether the edit is undone: reads the field.
    undone: fn(&Value) -> bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_hand_edits_are_put_back_and_recorded_once() {
    let Some(w) = World::start("edits").await else {
        return;
    };
    let addons = vec![
        w.example("universal-webhook"),
        w.example("api-studio"),
        w.example("reference-free"),
    ];
    w.create(&addons).await;
    w.install(&addons).await;
    let uw = "universal-webhook".to_owned();
    let edits = vec![
        Edit {
            kind: "ServiceAccount",
            ar: ApiResource::erase::<ServiceAccount>(&()),
            name: uw.clone(),
            patch: Patch::Merge(
                json!({"metadata": {"labels": {"app.kubernetes.io/part-of": "tampered"}}}),
            ),
            undone: |o| o["metadata"]["labels"]["app.kubernetes.io/part-of"] == "clockify-addons",
        },
        Edit {
            kind: "ConfigMap",
            ar: ApiResource::erase::<ConfigMap>(&()),
            name: format!("{uw}-config"),
            patch: Patch::Merge(
                json!({"data": {"ADDON_BASE_URL": "https://tampered.example.com"}}),
            ),
            undone: |o| o["data"]["ADDON_BASE_URL"] == "https://webhooks.example.com",
        },
        Edit {
            kind: "NetworkPolicy",
            ar: ApiResource::erase::<NetworkPolicy>(&()),
            name: uw.clone(),
            patch: Patch::Merge(json!({"spec": {"egress": null}})),
            undone: |o| {
                o["spec"]["egress"]
                    .as_array()
                    .is_some_and(|e| !e.is_empty())
            },
        },
        Edit {
            kind: "Service",
            ar: ApiResource::erase::<Service>(&()),
            name: uw.clone(),
            patch: Patch::Strategic(json!({"spec": {"ports": [{"port": 80, "targetPort": 9999}]}})),
            undone: |o| o["spec"]["ports"][0]["targetPort"] == "http",
        },
        Edit {
            kind: "Deployment",
            ar: ApiResource::erase::<Deployment>(&()),
            name: uw.clone(),
            patch: Patch::Strategic(
                json!({"spec": {"template": {"spec": {"containers": [{"name": "addon", "image": "example.com/tampered:1"}]}}}}),
            ),
            undone: |o| {
                o["spec"]["template"]["spec"]["containers"][0]["image"] != "example.com/tampered:1"
            },
        },
        Edit {
            kind: "Deployment",
            ar: ApiResource::erase::<Deployment>(&()),
            name: uw.clone(),
            patch: Patch::Strategic(
                json!({"spec": {"template": {"spec": {"automountServiceAccountToken": null}}}}),
            ),
            undone: |o| o["spec"]["template"]["spec"]["automountServiceAccountToken"] == false,
        },
        Edit {
            kind: "HorizontalPodAutoscaler",
            ar: ApiResource::erase::<HorizontalPodAutoscaler>(&()),
            name: uw.clone(),
            patch: Patch::Merge(json!({"spec": {"maxReplicas": 99}})),
            undone: |o| o["spec"]["maxReplicas"] == 8,
        },
        Edit {
            kind: "PodDisruptionBudget",
            ar: ApiResource::erase::<PodDisruptionBudget>(&()),
            name: uw.clone(),
            patch: Patch::Merge(json!({"spec": {"maxUnavailable": 2}})),
            undone: |o| o["spec"]["maxUnavailable"] == 1,
        },
        Edit {
            kind: "ServiceMonitor",
            ar: clockify_operator::build::service_monitor::api_resource(),
            name: uw.clone(),
            patch: Patch::Merge(
                json!({"spec": {"endpoints": [{"port": "http", "interval": "99s"}]}}),
            ),
            undone: |o| o["spec"]["endpoints"][0]["interval"] == "15s",
        },
        Edit {
            kind: "CronJob",
            ar: ApiResource::erase::<CronJob>(&()),
            name: format!("{uw}-backup"),
            patch: Patch::Merge(json!({"spec": {"schedule": "5 5 * * *"}})),
            undone: |o| o["spec"]["schedule"] == "0 */6 * * *",
        },
        Edit {
            kind: "PersistentVolumeClaim",
            ar: ApiResource::erase::<PersistentVolumeClaim>(&()),
            name: "api-studio-backups".to_owned(),
            patch: Patch::Merge(
                json!({"metadata": {"labels": {"clockify-addons.io/tier": "FREE"}}}),
            ),
            undone: |o| o["metadata"]["labels"]["clockify-addons.io/tier"] == "STANDARD",
        },
    ];
    let mut figures = Vec::new();
    for (i, e) in edits.into_iter().enumerate() {
        let api = dynamic(&w, &e.ar);
        let drift_before = w
            .events()
            .await
            .iter()
            .filter(|(r, _)| r == "DriftCorrected")
            .count();
        let edited = Instant::now();
        let after = api
            .patch(
                &e.name,
                &PatchParams {
                    field_manager: Some("kubectl-edit".into()),
                    ..PatchParams::default()
                },
                &e.patch,
            )
            .await
            .unwrap_or_else(|err| panic!("edit {} {}: {err}", e.kind, e.name));
        assert!(
            !(e.undone)(&serde_json::to_value(&after).unwrap()),
            "the edit of {} {} changed nothing",
            e.kind,
            e.name
        );
        eventually(
            &format!("the edit of {} {} to be put back", e.kind, e.name),
            || async {
                let o = api.get(&e.name).await.ok()?;
                (e.undone)(&serde_json::to_value(&o).ok()?).then_some(())
            },
        )
        .await;
        figures.push(format!(
            "{} {:.2} s",
            e.kind,
            edited.elapsed().as_secs_f64()
        ));
        // Recorded once: exactly one DriftCorrected Event, naming the child.
        let names: Vec<String> = addons.iter().map(|a| a.name_any()).collect();
        w.quiet_after(w.reconciles(), 0.0).await;
        let drift: Vec<(String, String)> = w
            .events()
            .await
            .into_iter()
            .filter(|(r, _)| r == "DriftCorrected")
            .collect();
        assert_eq!(
            drift.len(),
            drift_before + 1,
            "edit {i} ({} {}): DriftCorrected Events {:?}",
            e.kind,
            e.name,
            &drift[drift_before..]
        );
        assert!(
            drift[drift_before]
                .1
                .contains(&format!("{} {}", e.kind, e.name)),
            "{:?}",
            drift[drift_before]
        );
        assert_quiet(
            &w,
            &names,
            i as u32,
            &format!("after the edit of {}", e.kind),
        )
        .await;
    }

    // kubectl scale on a fixed-replica add-on (FREE: one replica) is put back.
    let deploys: Api<Deployment> = w.api();
    deploys
        .patch_scale(
            "reference-free",
            &PatchParams {
                field_manager: Some("kubectl-scale".into()),
                ..PatchParams::default()
            },
            &Patch::Merge(&json!({"spec": {"replicas": 3}})),
        )
        .await
        .expect("kubectl scale");
    let scaled = Instant::now();
    eventually(
        "the scaled Deployment to be put back to 1 replica",
        || async {
            let d = deploys.get("reference-free").await.ok()?;
            (d.spec?.replicas == Some(1)).then_some(())
        },
    )
    .await;
    figures.push(format!(
        "kubectl scale {:.2} s",
        scaled.elapsed().as_secs_f64()
    ));
    w.figure(&format!(
        "hand edits put back after: {}",
        figures.join(", ")
    ));
    w.finish().await;
}

fn container_env(d: &Deployment) -> BTreeMap<String, Option<String>> {
    d.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .env
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.name, e.value))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_spec_changes_are_applied_exactly() {
    let Some(w) = World::start("spec").await else {
        return;
    };
    let addons = vec![
        w.example("reference-standard"),
        w.example("universal-webhook"),
    ];
    w.create(&addons).await;
    w.install(&addons).await;
    let names: Vec<String> = addons.iter().map(|a| a.name_any()).collect();
    let name = "reference-standard";
    let deploys: Api<Deployment> = w.api();

    // Overrides with values the API server normalises or drops: "" (omitted), "1000m" (stored
    // as "1"), "1.10" (a string, not a quantity).
    w.patch_addon(
        name,
        json!({"spec": {
            "image": {"pullSecrets": ["regcred"]},
            "podOverrides": {
                "labels": {"team": "payments"},
                "annotations": {"note": "e2e"},
                "env": [{"name": "FEATURE_FLAG", "value": ""}, {"name": "RATIO", "value": "1.10"}],
                "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
                "nodeSelector": {"disk": "ssd"},
                "resources": {"requests": {"cpu": "1000m", "memory": "128Mi"}, "limits": {"cpu": "2", "memory": "256Mi"}}
            }
        }}),
    )
    .await;
    let d = eventually("the overrides in the Deployment", || async {
        let d = deploys.get(name).await.ok()?;
        let t = d.spec.as_ref()?.template.spec.as_ref()?;
        t.node_selector.as_ref()?.get("disk")?;
        Some(d)
    })
    .await;
    let t = d.spec.as_ref().unwrap().template.clone();
    let ps = t.spec.as_ref().unwrap();
    assert_eq!(
        t.metadata.as_ref().unwrap().labels.as_ref().unwrap()["team"],
        "payments"
    );
    assert_eq!(ps.tolerations.as_ref().unwrap().len(), 1);
    assert_eq!(ps.image_pull_secrets.as_ref().unwrap()[0].name, "regcred");
    let env = container_env(&d);
    assert_eq!(env["RATIO"].as_deref(), Some("1.10"));
    assert_eq!(
        env["FEATURE_FLAG"], None,
        "the API server drops an empty value"
    );
    assert_eq!(
        ps.containers[0]
            .resources
            .as_ref()
            .unwrap()
            .requests
            .as_ref()
            .unwrap()["cpu"]
            .0,
        "1",
        "the API server stores 1000m as 1"
    );
    w.ready(name, "0.1.0").await;
    assert_quiet(&w, &names, 1, "overrides with \"\", 1000m and 1.10 settle").await;

    // S3 region "" (dropped from the CronJob's env by the API server) settles too.
    w.patch_addon(
        "universal-webhook",
        json!({"spec": {"backup": {"destination": {"s3": {"region": ""}}}}}),
    )
    .await;
    eventually("the empty region in the CronJob", || async {
        cron_env(&w, "universal-webhook-backup")
            .await?
            .iter()
            .any(|e| e["name"] == "AWS_REGION")
            .then_some(())
    })
    .await;
    w.ready("universal-webhook", "0.1.0").await;
    assert_quiet(&w, &names, 2, "s3.region \"\" settles").await;

    // A key rotation under way: earlier keys by reference, joined by $(VAR) expansion; the
    // server keeps the preStop sleep and the grace period as written.
    w.api::<k8s_openapi::api::core::v1::Secret>()
        .patch(
            "keys",
            &PatchParams::apply("clockify-e2e").force(),
            &Patch::Apply(
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keys"},
                "stringData": {"2026-06": "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="}}),
            ),
        )
        .await
        .expect("the previous key's Secret");
    w.patch_addon(
        name,
        json!({"spec": {"secrets": {"previousTokenEncryptionKeyRefs": [{"name": "keys", "key": "2026-06"}]}}}),
    )
    .await;
    let d = eventually("the previous key in the Deployment", || async {
        let d = deploys.get(name).await.ok()?;
        container_env(&d)
            .contains_key("TOKEN_ENCRYPTION_PREVIOUS_KEYS")
            .then_some(d)
    })
    .await;
    let env = container_env(&d);
    assert_eq!(
        env["TOKEN_ENCRYPTION_PREVIOUS_KEYS"].as_deref(),
        Some("$(TOKEN_ENCRYPTION_PREVIOUS_KEY_1)")
    );
    assert_eq!(
        env["TOKEN_ENCRYPTION_PREVIOUS_KEY_1"], None,
        "by reference only"
    );
    let pod = serde_json::to_value(&d).unwrap()["spec"]["template"]["spec"].clone();
    assert_eq!(
        pod["containers"][0]["lifecycle"],
        json!({"preStop": {"sleep": {"seconds": 5}}})
    );
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);
    w.patch_addon(
        name,
        json!({"spec": {"secrets": {"previousTokenEncryptionKeyRefs": null}}}),
    )
    .await;
    eventually("the previous key gone from the Deployment", || async {
        let d = deploys.get(name).await.ok()?;
        (!container_env(&d).contains_key("TOKEN_ENCRYPTION_PREVIOUS_KEYS")).then_some(())
    })
    .await;
    w.ready(name, "0.1.0").await;
    assert_quiet(&w, &names, 3, "a key rotation started and finished").await;

    // Workload identity: the ServiceAccount carries the annotation IRSA reads, and backups to
    // S3 drop their static keys. The operator's own labels are refused with the reason.
    let role = "arn:aws:iam::123456789012:role/clockify-backups";
    let refused = w
        .addons()
        .patch(
            "universal-webhook",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"serviceAccountTemplate": {"metadata": {"labels": {"app.kubernetes.io/name": "x"}}}}})),
        )
        .await
        .expect_err("reserved labels are refused");
    assert!(
        refused.to_string().contains("are the operator's own"),
        "{refused}"
    );
    w.patch_addon(
        "universal-webhook",
        json!({"spec": {
            "serviceAccountTemplate": {"metadata": {"annotations": {"eks.amazonaws.com/role-arn": role}, "labels": {"team": "payments"}}},
            "backup": {"destination": {"s3": {"credentialsSecretRef": null}}}
        }}),
    )
    .await;
    let sa = eventually("the role annotation on the ServiceAccount", || async {
        let sa = w
            .api::<ServiceAccount>()
            .get("universal-webhook")
            .await
            .ok()?;
        (sa.annotations().get("eks.amazonaws.com/role-arn")? == role).then_some(sa)
    })
    .await;
    assert_eq!(sa.labels()["team"], "payments");
    assert_eq!(sa.labels()["app.kubernetes.io/name"], "universal-webhook");
    eventually("the static keys gone from the CronJob", || async {
        let env = cron_env(&w, "universal-webhook-backup").await?;
        (!env.iter().any(|e| e["name"] == "AWS_ACCESS_KEY_ID")).then_some(())
    })
    .await;
    w.ready("universal-webhook", "0.1.0").await;
    assert_quiet(&w, &names, 4, "workload identity settles").await;

    // A string is compared as written: 1.10 -> 1.1 is a change.
    w.patch_addon(
        name,
        json!({"spec": {"podOverrides": {"env": [{"name": "FEATURE_FLAG", "value": ""}, {"name": "RATIO", "value": "1.1"}]}}}),
    )
    .await;
    eventually("RATIO 1.1 in the Deployment", || async {
        let d = deploys.get(name).await.ok()?;
        (container_env(&d).get("RATIO")?.as_deref() == Some("1.1")).then_some(())
    })
    .await;

    // Fields removed from the spec are removed from the child.
    w.patch_addon(name, json!({"spec": {"image": null, "podOverrides": null}}))
        .await;
    let d = eventually("the overrides gone from the Deployment", || async {
        let d = deploys.get(name).await.ok()?;
        let ps = d.spec.as_ref()?.template.spec.as_ref()?;
        (ps.node_selector.is_none() && ps.tolerations.is_none()).then_some(d)
    })
    .await;
    let t = d.spec.as_ref().unwrap().template.clone();
    let ps = t.spec.as_ref().unwrap();
    assert!(
        !t.metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap()
            .contains_key("team")
    );
    assert!(
        !t.metadata
            .as_ref()
            .unwrap()
            .annotations
            .as_ref()
            .unwrap()
            .contains_key("note")
    );
    assert!(
        ps.image_pull_secrets.is_none(),
        "{:?}",
        ps.image_pull_secrets
    );
    let env = container_env(&d);
    assert!(
        !env.contains_key("RATIO") && !env.contains_key("FEATURE_FLAG"),
        "{env:?}"
    );
    assert_ne!(
        ps.containers[0]
            .resources
            .as_ref()
            .unwrap()
            .requests
            .as_ref()
            .unwrap()["cpu"]
            .0,
        "1",
        "the tier's resources are back"
    );
    w.ready(name, "0.1.0").await;
    assert_quiet(&w, &names, 5, "after removing the overrides").await;
    w.finish().await;
}

/// The environment of a CronJob's container, as the API server stores it.
async fn cron_env(w: &World, name: &str) -> Option<Vec<Value>> {
    let c = w.api::<CronJob>().get(name).await.ok()?;
    serde_json::to_value(&c).ok()?["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        [0]["env"]
        .as_array()
        .cloned()
}

/// Ready, Reconciling, status.observedGeneration and metadata.generation of one status.
type Seen = (Option<String>, Option<String>, Option<i64>, Option<i64>);

/// Every distinct [`Seen`] of a ClockifyAddon, as a watch sees them.
fn conditions_log(
    w: &World,
    name: &str,
) -> (
    std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
    tokio::task::JoinHandle<()>,
) {
    use futures::StreamExt;
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let api = w.addons();
    let task = tokio::spawn({
        let log = log.clone();
        let name = name.to_owned();
        async move {
            let cfg =
                kube::runtime::watcher::Config::default().fields(&format!("metadata.name={name}"));
            let mut stream = kube::runtime::watcher(api, cfg).applied_objects().boxed();
            while let Some(Ok(a)) = stream.next().await {
                let entry = (
                    condition(&a, "Ready"),
                    condition(&a, "Reconciling"),
                    a.status.as_ref().and_then(|s| s.observed_generation),
                    a.metadata.generation,
                );
                if let Ok(mut l) = log.lock()
                    && l.last() != Some(&entry)
                {
                    l.push(entry);
                }
            }
        }
    });
    (log, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_ready_waits_for_the_rollout() {
    let Some(w) = World::start("kstatus").await else {
        return;
    };
    if !w.controls_pods() {
        eprintln!("skipped: on a cluster with nodes the suite cannot hold pods or fail Jobs");
        w.finish().await;
        return;
    }
    let addon = w.example("reference-standard");
    let name = addon.name_any();
    w.create(std::slice::from_ref(&addon)).await;
    w.install(std::slice::from_ref(&addon)).await;
    let deploys: Api<Deployment> = w.api();
    let (log, watch) = conditions_log(&w, &name);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A change to the pod template (the log level changes the configuration hash).
    w.kubelet
        .hold
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let changed = w
        .patch_addon(&name, json!({"spec": {"logLevel": "debug"}}))
        .await;
    let generation = changed.metadata.generation;
    let seen = eventually("the operator to observe the new generation", || async {
        let a = w.addon(&name).await;
        (a.status.as_ref()?.observed_generation == generation).then_some(a)
    })
    .await;
    assert_eq!(
        condition(&seen, "Ready").as_deref(),
        Some("False"),
        "{:?}",
        seen.status
    );
    assert_eq!(condition(&seen, "Reconciling").as_deref(), Some("True"));
    if w.mode == Mode::Bare {
        // Not yet observed by the Deployment controller.
        write_deployment_status(&deploys, &name, false, false).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            condition(&w.addon(&name).await, "Ready").as_deref(),
            Some("False")
        );
        // Observed, rolling.
        write_deployment_status(&deploys, &name, true, false).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            condition(&w.addon(&name).await, "Ready").as_deref(),
            Some("False")
        );
    } else {
        // The Deployment controller observes the generation, new pods wait for the kubelet.
        eventually(
            "the Deployment controller to observe the new template",
            || async {
                let d = deploys.get(&name).await.ok()?;
                (d.status?.observed_generation == d.metadata.generation).then_some(())
            },
        )
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let a = w.addon(&name).await;
        assert_eq!(
            condition(&a, "Ready").as_deref(),
            Some("False"),
            "{:?}",
            a.status
        );
        assert_eq!(condition(&a, "Reconciling").as_deref(), Some("True"));
    }
    w.kubelet
        .hold
        .store(false, std::sync::atomic::Ordering::Relaxed);
    let ready = w.ready(&name, "0.1.0").await;
    // Ready now means the rollout of this generation finished.
    let d = deploys.get(&name).await.unwrap();
    let ds = d.status.clone().unwrap();
    assert_eq!(ds.observed_generation, d.metadata.generation);
    let replicas = d.spec.unwrap().replicas.unwrap_or(1);
    assert_eq!(ds.updated_replicas, Some(replicas));
    assert_eq!(ds.available_replicas, Some(replicas));
    assert_eq!(ready.status.unwrap().observed_generation, generation);
    tokio::time::sleep(Duration::from_secs(2)).await;
    watch.abort();
    // No flapping: Ready went True -> False -> True, once.
    let readiness: Vec<Option<String>> =
        log.lock()
            .unwrap()
            .iter()
            .map(|e| e.0.clone())
            .fold(Vec::new(), |mut v, r| {
                if v.last() != Some(&r) {
                    v.push(r);
                }
                v
            });
    assert_eq!(
        readiness,
        vec![
            Some("True".into()),
            Some("False".into()),
            Some("True".into())
        ],
        "{:?}",
        log.lock().unwrap()
    );
    let events: Vec<String> = w.events().await.into_iter().map(|e| e.0).collect();
    assert_eq!(
        events.iter().filter(|r| *r == "NotReady").count(),
        1,
        "{events:?}"
    );
    w.figure(&format!(
        "status writes seen during the rollout: {:?}",
        log.lock().unwrap()
    ));
    w.finish().await;
}

/// Which field manager owns a Deployment's spec.replicas.
fn replicas_owner(d: &Deployment) -> Vec<String> {
    d.metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| {
            m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.pointer("/f:spec/f:replicas").is_some())
        })
        .map(|m| {
            format!(
                "{}/{}",
                m.manager.clone().unwrap_or_default(),
                m.operation.clone().unwrap_or_default()
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_the_autoscaler_takes_over_without_a_dip() {
    use futures::StreamExt;
    let Some(w) = World::start("handoff").await else {
        return;
    };
    let mut addon = w.example("reference-standard");
    addon.spec.replicas = Some(clockify_operator::crd::ReplicasSpec {
        min: Some(3),
        max: Some(3),
        ..Default::default()
    });
    let name = addon.name_any();
    w.create(std::slice::from_ref(&addon)).await;
    w.install(std::slice::from_ref(&addon)).await;
    let deploys: Api<Deployment> = w.api();
    assert_eq!(
        deploys.get(&name).await.unwrap().spec.unwrap().replicas,
        Some(3)
    );
    assert!(
        w.api::<HorizontalPodAutoscaler>()
            .get_opt(&name)
            .await
            .unwrap()
            .is_none()
    );

    // Every replica count the Deployment has from now on.
    let counts = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Option<i32>>::new()));
    let watch = tokio::spawn({
        let counts = counts.clone();
        let api = deploys.clone();
        let cfg =
            kube::runtime::watcher::Config::default().fields(&format!("metadata.name={name}"));
        async move {
            let mut s = kube::runtime::watcher(api, cfg).applied_objects().boxed();
            while let Some(Ok(d)) = s.next().await {
                if let Ok(mut c) = counts.lock() {
                    c.push(d.spec.and_then(|s| s.replicas));
                }
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Fixed 3 -> autoscaled 2..5: the count stays 3, held by the hand-over manager.
    w.patch_addon(&name, json!({"spec": {"replicas": {"min": 2, "max": 5}}}))
        .await;
    eventually("the HorizontalPodAutoscaler", || async {
        w.api::<HorizontalPodAutoscaler>()
            .get_opt(&name)
            .await
            .ok()?
    })
    .await;
    let d = eventually("spec.replicas held by another manager", || async {
        let d = deploys.get(&name).await.ok()?;
        let owners = replicas_owner(&d);
        (!owners.is_empty() && !owners.iter().any(|o| o.starts_with("clockify-operator/")))
            .then_some(d)
    })
    .await;
    assert_eq!(
        d.spec.as_ref().unwrap().replicas,
        Some(3),
        "{:?}",
        replicas_owner(&d)
    );
    w.figure(&format!(
        "after the switch, spec.replicas is owned by {:?}",
        replicas_owner(&d)
    ));

    // The autoscaler scales (the HPA controller, or the suite in its place): never fought.
    let deployment_writes = w.writes_of("Deployment");
    match w.mode {
        Mode::Controllers | Mode::Full => {
            // Raising the minimum above the count makes the HPA controller scale up.
            w.patch_addon(&name, json!({"spec": {"replicas": {"min": 4}}}))
                .await;
        }
        Mode::Bare => {
            deploys
                .patch_scale(
                    &name,
                    &PatchParams {
                        field_manager: Some("horizontal-pod-autoscaler".into()),
                        ..PatchParams::default()
                    },
                    &Patch::Merge(&json!({"spec": {"replicas": 4}})),
                )
                .await
                .expect("scale as the autoscaler would");
        }
    }
    eventually("4 replicas", || async {
        (deploys.get(&name).await.ok()?.spec?.replicas == Some(4)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let d = deploys.get(&name).await.unwrap();
    assert_eq!(
        d.spec.as_ref().unwrap().replicas,
        Some(4),
        "the operator fought the autoscaler"
    );
    assert_eq!(
        w.writes_of("Deployment"),
        deployment_writes,
        "the operator wrote to the Deployment the autoscaler scaled: {}",
        w.writes_by_kind()
    );
    w.figure(&format!(
        "after the autoscaler scaled, spec.replicas is owned by {:?}",
        replicas_owner(&d)
    ));

    // Back to a fixed count: the operator takes the field back, the autoscaler goes.
    w.patch_addon(&name, json!({"spec": {"replicas": {"min": 2, "max": 2}}}))
        .await;
    eventually("2 replicas and no autoscaler", || async {
        let d = deploys.get(&name).await.ok()?;
        let hpa = w
            .api::<HorizontalPodAutoscaler>()
            .get_opt(&name)
            .await
            .ok()?;
        (d.spec?.replicas == Some(2) && hpa.is_none()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    watch.abort();
    let seen = counts.lock().unwrap().clone();
    assert!(
        seen.iter().all(|c| c.is_some_and(|n| n >= 2)),
        "the count dipped: {seen:?}"
    );
    w.figure(&format!(
        "replica counts seen through the switches: {seen:?}"
    ));
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_upgrades_and_failed_migrations() {
    let Some(w) = World::start("upgrades").await else {
        return;
    };
    if std::env::var_os("E2E_IMAGE").is_some() {
        eprintln!("skipped: with E2E_IMAGE the versions are real images");
        w.finish().await;
        return;
    }
    let addon = w.example("reference-standard");
    let name = addon.name_any();
    w.create(std::slice::from_ref(&addon)).await;
    w.install(std::slice::from_ref(&addon)).await;
    let deploys: Api<Deployment> = w.api();
    let jobs: Api<Job> = w.api();
    let image = |d: &Deployment| {
        d.spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .image
            .clone()
            .unwrap()
    };

    // An upgrade: a new Job while the old image keeps serving, then the rollout.
    w.patch_addon(&name, json!({"spec": {"version": "0.1.1"}}))
        .await;
    let job = w.migration_job(&name, "0.1.1").await;
    assert!(image(&deploys.get(&name).await.unwrap()).ends_with(":0.1.0"));
    let migrating = eventually("DatabaseMigrated False", || async {
        let a = w.addon(&name).await;
        (condition(&a, "DatabaseMigrated").as_deref() == Some("False")).then_some(a)
    })
    .await;
    assert_eq!(condition(&migrating, "Ready").as_deref(), Some("False"));
    w.complete_job(&job.name_any()).await;
    w.ready(&name, "0.1.1").await;
    assert!(image(&deploys.get(&name).await.unwrap()).ends_with(":0.1.1"));

    // A failed migration stays failed: the old version serves, the Job stays (no TTL), nothing
    // retries it, whatever passes run.
    w.patch_addon(&name, json!({"spec": {"version": "0.1.2"}}))
        .await;
    let failed = w.migration_job(&name, "0.1.2").await;
    w.finish_job(
        &failed.name_any(),
        Outcome::failed("relation \"flows\" is locked"),
    )
    .await;
    let stalled = eventually("Stalled MigrationFailed", || async {
        let a = w.addon(&name).await;
        (condition(&a, "Stalled").as_deref() == Some("True")).then_some(a)
    })
    .await;
    let message = stalled
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .unwrap()
        .message
        .clone();
    assert!(
        message.contains("clockify-addons.io/retry-migration"),
        "{message}"
    );
    assert!(message.contains("0.1.1 keeps serving"), "{message}");
    let uid = jobs.get(&failed.name_any()).await.unwrap().metadata.uid;
    let names = vec![name.clone()];
    assert_quiet(&w, &names, 1, "a failed migration").await;
    let still = jobs.get(&failed.name_any()).await.unwrap();
    assert_eq!(still.metadata.uid, uid, "the failed Job was not replaced");
    assert!(
        still.spec.unwrap().ttl_seconds_after_finished.is_none(),
        "a failed Job never expires"
    );
    assert!(image(&deploys.get(&name).await.unwrap()).ends_with(":0.1.1"));

    // Someone acts: the retry annotation starts a new Job (once per value).
    w.patch_addon(
        &name,
        json!({"metadata": {"annotations": {"clockify-addons.io/retry-migration": "fixed-the-lock"}}}),
    )
    .await;
    let retried = eventually("a new migration Job", || async {
        let j = jobs.get_opt(&failed.name_any()).await.ok()??;
        (j.metadata.uid != uid).then_some(j)
    })
    .await;
    assert_eq!(
        retried
            .annotations()
            .get("clockify-addons.io/retry-migration")
            .map(String::as_str),
        Some("fixed-the-lock")
    );
    w.complete_job(&retried.name_any()).await;
    w.ready(&name, "0.1.2").await;
    let reasons: Vec<String> = w.events().await.into_iter().map(|e| e.0).collect();
    assert_eq!(
        reasons.iter().filter(|r| *r == "MigrationRetried").count(),
        1,
        "{reasons:?}"
    );
    assert_eq!(
        reasons.iter().filter(|r| *r == "MigrationFailed").count(),
        1,
        "{reasons:?}"
    );
    w.finish().await;
}

/// A pod of the add-on that takes its time to go: it carries a finalizer the suite lifts later.
async fn straggler(w: &World, name: &str) -> String {
    let pods: Api<Pod> = w.api();
    let hold = json!({"metadata": {"finalizers": ["e2e.clockify-addons.io/hold"]}});
    match w.mode {
        Mode::Controllers | Mode::Full => {
            let pod = eventually("an add-on pod", || async {
                pods.list(&ListParams::default().labels(&format!(
                    "app.kubernetes.io/instance={name},app.kubernetes.io/component=addon"
                )))
                .await
                .ok()?
                .items
                .into_iter()
                .next()
            })
            .await;
            pods.patch(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&hold),
            )
            .await
            .expect("hold a pod");
            pod.name_any()
        }
        Mode::Bare => {
            // No ReplicaSet controller: the suite makes the pod itself, then deletes it.
            let pod: Pod = serde_json::from_value(json!({
                "metadata": {"name": format!("{name}-straggler"), "finalizers": ["e2e.clockify-addons.io/hold"],
                    "labels": {"app.kubernetes.io/name": "api-studio", "app.kubernetes.io/instance": name, "app.kubernetes.io/component": "addon"}},
                "spec": {"serviceAccountName": name, "automountServiceAccountToken": false,
                    "containers": [{"name": "addon", "image": "example.com/addon:0.1.0"}]}}))
            .unwrap();
            pods.create(&PostParams::default(), &pod)
                .await
                .expect("straggler");
            pods.delete(&format!("{name}-straggler"), &DeleteParams::default())
                .await
                .expect("delete the straggler");
            format!("{name}-straggler")
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_backups_and_restores_run_once() {
    let Some(w) = World::start("backups").await else {
        return;
    };
    if !w.controls_pods() {
        eprintln!("skipped: on a cluster with nodes the suite cannot hold pods or fail Jobs");
        w.finish().await;
        return;
    }
    let addon = w.example("api-studio");
    let name = addon.name_any();
    w.create(std::slice::from_ref(&addon)).await;
    w.install(std::slice::from_ref(&addon)).await;
    let deploys: Api<Deployment> = w.api();
    let jobs: Api<Job> = w.api();
    let cron = w
        .api::<CronJob>()
        .get(&format!("{name}-backup"))
        .await
        .unwrap();
    let spec = cron.spec.clone().unwrap();
    assert_eq!(spec.concurrency_policy.as_deref(), Some("Forbid"));
    assert_eq!(spec.schedule, "0 2 * * *", "the STANDARD tier's schedule");
    let pvc = w
        .api::<PersistentVolumeClaim>()
        .get(&format!("{name}-backups"))
        .await
        .unwrap();
    assert!(
        pvc.metadata.owner_references.is_none(),
        "the volume outlives the ClockifyAddon"
    );

    // On demand, once per value.
    let backup_now =
        |v: &str| json!({"metadata": {"annotations": {"clockify-addons.io/backup-now": v}}});
    let current = w.patch_addon(&name, backup_now("e2e-1")).await;
    let job_name = backup::on_demand_job_name(&current, "e2e-1");
    let job = w.job(&job_name).await;
    assert_eq!(
        job.spec.unwrap().template.spec.unwrap().containers[0].args,
        Some(vec!["backup".to_owned(), "api-studio".to_owned()])
    );
    w.complete_job(&job_name).await;
    let recorded = eventually("the on-demand backup in status", || async {
        let s = w.addon(&name).await.status?;
        (s.last_backup.as_ref()?.job == job_name).then_some(s)
    })
    .await;
    let last = recorded.last_backup.clone().unwrap();
    assert_eq!(last.result, "Succeeded");
    if w.mode == Mode::Controllers {
        // The pod's termination message, read once.
        assert_eq!(
            last.backup_id.as_deref(),
            Some(format!("20261202T000000.000Z-{job_name}").as_str())
        );
        assert_eq!(last.size_bytes, Some(52311));
    }
    let failing = backup::on_demand_job_name(&current, "e2e-2");
    w.patch_addon(&name, backup_now("e2e-2")).await;
    w.job(&failing).await;
    w.finish_job(
        &failing,
        Outcome::failed("backup failed: pg_dump: connection refused"),
    )
    .await;
    let s = eventually("the failed backup in status", || async {
        let s = w.addon(&name).await.status?;
        (s.last_backup.as_ref()?.job == failing).then_some(s)
    })
    .await;
    assert_eq!(s.last_successful_backup.unwrap().job, job_name);
    if w.mode == Mode::Controllers {
        assert_eq!(
            s.last_backup.unwrap().message.as_deref(),
            Some("backup failed: pg_dump: connection refused")
        );
    }

    // A restore waits until no pod of the add-on is left, terminating ones included.
    let held = straggler(&w, &name).await;
    w.patch_addon(
        &name,
        json!({"spec": {"restore": {"requestId": "e2e-restore", "from": "latest"}}}),
    )
    .await;
    eventually("the Deployment scaled to zero", || async {
        w.settle(&name).await;
        (deploys.get(&name).await.ok()?.spec?.replicas == Some(0)).then_some(())
    })
    .await;
    let restore_job = backup::restore_job_name(&current, "e2e-restore");
    let waiting = eventually("the restore to wait for the terminating pod", || async {
        w.settle(&name).await;
        let r = w.addon(&name).await.status?.restore?;
        r.message.as_deref()?.contains("1 terminating").then_some(r)
    })
    .await;
    assert_eq!(waiting.phase, RestorePhase::ScalingDown);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        jobs.get_opt(&restore_job).await.unwrap().is_none(),
        "no restore under a live pod"
    );
    w.api::<Pod>()
        .patch(
            &held,
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"finalizers": null}})),
        )
        .await
        .expect("let the pod go");
    let job = w.job(&restore_job).await;
    let args = job.spec.unwrap().template.spec.unwrap().containers[0]
        .args
        .clone()
        .unwrap();
    assert!(
        args.windows(2)
            .any(|p| p == ["--request-id", "e2e-restore"]),
        "{args:?}"
    );
    w.finish_job(
        &restore_job,
        Outcome::ok("restored backup 20261202T000000.000Z-api-studio-x (12 tables) into app"),
    )
    .await;
    let migrate_job = backup::restore_migration_job_name(&current, "e2e-restore");
    w.complete_job(&migrate_job).await;
    let done = eventually("the restore to succeed", || async {
        w.settle(&name).await;
        let s = w.addon(&name).await.status?;
        s.restore.as_ref()?.phase.is_final().then_some(s)
    })
    .await;
    let r = done.restore.clone().unwrap();
    assert_eq!(r.phase, RestorePhase::Succeeded, "{:?}", r.message);
    if w.mode == Mode::Controllers {
        assert!(
            r.report
                .as_deref()
                .unwrap_or_default()
                .contains("12 tables"),
            "{r:?}"
        );
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let again = w.addon(&name).await.status.unwrap();
    assert_eq!(again.restore, done.restore);
    let restores = jobs
        .list(&ListParams::default().labels(&format!(
            "app.kubernetes.io/instance={name},app.kubernetes.io/component=restore"
        )))
        .await
        .unwrap();
    assert_eq!(
        restores.items.len(),
        2,
        "one restore Job and one migration Job"
    );

    // The ClockifyAddon deleted and created again from Git, spec.restore still set: its status
    // is gone, so the operator runs the request's Job again, and the restore finds its own
    // record in the database and changes nothing (services/addon-backup tests that part).
    w.addons()
        .delete(&name, &DeleteParams::background())
        .await
        .unwrap();
    eventually("the ClockifyAddon gone", || async {
        w.addons()
            .get_opt(&name)
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    if w.mode == Mode::Bare {
        for j in jobs.list(&ListParams::default()).await.unwrap().items {
            let _ = jobs
                .delete(&j.name_any(), &DeleteParams::background())
                .await;
        }
        let _ = deploys.delete(&name, &DeleteParams::background()).await;
    }
    eventually("the old children gone", || async {
        let none = jobs
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .is_empty()
            && deploys.get_opt(&name).await.ok()?.is_none();
        none.then_some(())
    })
    .await;
    let mut again = w.example("api-studio");
    again.spec.restore = Some(Box::new(clockify_operator::crd::RestoreSpec {
        request_id: "e2e-restore".into(),
        from: "latest".into(),
    }));
    w.addons()
        .create(&PostParams::default(), &again)
        .await
        .unwrap();
    let recreated = w.addon(&name).await;
    let rerun = backup::restore_job_name(&recreated, "e2e-restore");
    w.job(&rerun).await;
    w.finish_job(
        &rerun,
        Outcome::ok("restore e2e-restore was already applied to database app at 2026-12-02T00:00:00Z (backup 20261202T000000.000Z-api-studio-x); nothing was restored"),
    )
    .await;
    w.complete_job(&backup::restore_migration_job_name(
        &recreated,
        "e2e-restore",
    ))
    .await;
    // Then the first install's own migration, and the Deployment.
    let job = w.migration_job(&name, "0.1.0").await;
    w.complete_job(&job.name_any()).await;
    let done = eventually(
        "the re-created ClockifyAddon's restore to finish",
        || async {
            w.settle(&name).await;
            let s = w.addon(&name).await.status?;
            s.restore.as_ref()?.phase.is_final().then_some(s)
        },
    )
    .await;
    let r = done.restore.unwrap();
    assert_eq!(r.phase, RestorePhase::Succeeded, "{r:?}");
    if w.mode == Mode::Controllers {
        assert!(
            r.report
                .unwrap_or_default()
                .contains("nothing was restored")
        );
    }
    w.finish().await;
}

/// The secrets hash in a Deployment's pod template.
async fn secrets_hash(w: &World, name: &str) -> Option<String> {
    let d = w.api::<Deployment>().get(name).await.ok()?;
    d.spec?
        .template
        .metadata?
        .annotations?
        .get("clockify-addons.io/secrets-hash")
        .cloned()
}

/// Applies a Secret with exactly these keys (and labels).
async fn put_secret(w: &World, name: &str, data: Value, labels: Value) {
    w.api::<k8s_openapi::api::core::v1::Secret>()
        .patch(
            name,
            &PatchParams::apply("clockify-e2e").force(),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name, "labels": labels}, "stringData": data})),
        )
        .await
        .expect("secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_rotated_secret_rolls_each_reader_once() {
    let Some(w) = World::start("secrets").await else {
        return;
    };
    // Two add-ons share one token-encryption key Secret; a third reads its own.
    let mut addons = vec![
        w.example("reference-standard"),
        w.example("reference-pro"),
        w.example("universal-webhook"),
    ];
    for a in &mut addons[..2] {
        a.spec.secrets.token_encryption_key_ref.name = "shared-keys".into();
        a.spec.secrets.token_encryption_key_ref.key = "token-key".into();
    }
    w.create(&addons).await;
    w.install(&addons).await;
    let names: Vec<String> = addons.iter().map(|a| a.name_any()).collect();
    let mut hashes = BTreeMap::new();
    for n in &names {
        hashes.insert(
            n.clone(),
            secrets_hash(&w, n).await.expect("a secrets hash"),
        );
    }
    assert_quiet(&w, &names, 1, "installed").await;

    // The shared key rotates: each of its two readers rolls, with one Deployment apply each.
    let (deploy_writes, writes, since) = (w.writes_of("Deployment"), w.writes(), Instant::now());
    put_secret(
        &w,
        "shared-keys",
        json!({"token-key": "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="}),
        json!({}),
    )
    .await;
    for n in &names[..2] {
        let old = hashes[n].clone();
        let new = eventually(&format!("{n} rolled for the new key"), || async {
            secrets_hash(&w, n).await.filter(|h| *h != old)
        })
        .await;
        hashes.insert(n.clone(), new);
    }
    let rolled_in = since.elapsed();
    for n in &names[..2] {
        w.ready(n, "0.1.0").await;
    }
    w.quiet_after(w.reconciles(), 0.0).await;
    assert_eq!(
        w.writes_of("Deployment") - deploy_writes,
        2.0,
        "one Deployment apply per reader: {}",
        w.writes_by_kind()
    );
    assert_eq!(
        secrets_hash(&w, "universal-webhook").await.as_deref(),
        Some(hashes["universal-webhook"].as_str()),
        "an add-on that does not read the Secret stays as it was"
    );
    w.figure(&format!(
        "one Secret read by 2 add-ons rotated: both templates changed within {:.0} ms; {} API writes in all ({} Deployment applies; the rest status patches and Events)",
        rolled_in.as_secs_f64() * 1000.0,
        w.writes() - writes,
        w.writes_of("Deployment") - deploy_writes
    ));
    assert_quiet(&w, &names, 2, "rotated").await;

    // A label on the Secret, and a Secret nobody reads: no pass writes anything.
    let writes = w.writes();
    put_secret(
        &w,
        "shared-keys",
        json!({"token-key": "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="}),
        json!({"team": "payments"}),
    )
    .await;
    put_secret(&w, "unrelated", json!({"k": "v"}), json!({})).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(w.writes(), writes, "{}", w.writes_by_kind());

    // A key goes missing: Stalled names it, the Deployment stays as it was.
    let deploy_writes = w.writes_of("Deployment");
    let secrets = w.api::<k8s_openapi::api::core::v1::Secret>();
    let mut keys = secrets.get("universal-webhook-keys").await.expect("secret");
    let data = keys.data.get_or_insert_default();
    let kept = data.remove("token-key").expect("the key");
    data.insert("other".into(), kept.clone());
    secrets
        .replace("universal-webhook-keys", &PostParams::default(), &keys)
        .await
        .expect("replace");
    let stalled = eventually("Stalled for the missing key", || async {
        let a = w.addon("universal-webhook").await;
        (condition(&a, "Stalled").as_deref() == Some("True")).then_some(a)
    })
    .await;
    let c = stalled
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .unwrap();
    assert_eq!(c.reason, "SecretMissing");
    assert!(
        c.message.contains(&format!(
            "Secret {}/universal-webhook-keys has no key",
            w.ns
        )),
        "{}",
        c.message
    );
    assert_eq!(w.writes_of("Deployment"), deploy_writes);
    // Put back with the same value: Ready again, and the pods were never rolled.
    let mut keys = secrets.get("universal-webhook-keys").await.expect("secret");
    keys.data = Some([("token-key".to_owned(), kept)].into());
    secrets
        .replace("universal-webhook-keys", &PostParams::default(), &keys)
        .await
        .expect("replace");
    w.ready("universal-webhook", "0.1.0").await;
    assert_eq!(w.writes_of("Deployment"), deploy_writes);
    assert_eq!(
        secrets_hash(&w, "universal-webhook").await.as_deref(),
        Some(hashes["universal-webhook"].as_str())
    );
    // Nothing any event said carries a value.
    for (_, note) in w.events().await {
        assert!(!note.contains("ICEiIyQl"), "{note}");
    }
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_exposure_routes_only_the_public_paths() {
    let Some(w) = World::start("exposure").await else {
        return;
    };
    let addons = vec![w.example("api-studio"), w.example("universal-webhook")];
    w.create(&addons).await;
    w.install(&addons).await;
    let names: Vec<String> = addons.iter().map(|a| a.name_any()).collect();
    let public: Vec<Value> = clockify_operator::build::exposure::PUBLIC_PATHS
        .iter()
        .map(|(p, _)| json!(p))
        .collect();

    // An Ingress for api-studio's host, as the server keeps it.
    let ingresses = w.api::<k8s_openapi::api::networking::v1::Ingress>();
    let i = serde_json::to_value(ingresses.get("api-studio").await.expect("the Ingress")).unwrap();
    assert_eq!(i["spec"]["rules"][0]["host"], "api-studio.example.com");
    let paths: Vec<Value> = i["spec"]["rules"][0]["http"]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].clone())
        .collect();
    assert_eq!(paths, public);
    assert_eq!(
        i["metadata"]["annotations"]["cert-manager.io/cluster-issuer"],
        "letsencrypt"
    );
    let a = w.addon("api-studio").await;
    assert_eq!(condition(&a, "Exposed").as_deref(), Some("True"));
    // The NetworkPolicy admits the ingress controller's namespace (and Prometheus's).
    let np =
        serde_json::to_value(w.api::<NetworkPolicy>().get("api-studio").await.unwrap()).unwrap();
    assert_eq!(
        np["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "ingress-nginx"
    );

    // universal-webhook names a Gateway, and the cluster serves HTTPRoute: a route, no Ingress.
    let routes = dynamic(
        &w,
        &clockify_operator::build::exposure::http_route_resource(),
    );
    let r = routes
        .get("universal-webhook")
        .await
        .expect("the HTTPRoute");
    assert_eq!(r.data["spec"]["hostnames"], json!(["webhooks.example.com"]));
    assert_eq!(r.data["spec"]["parentRefs"][0]["name"], "public");
    assert!(
        ingresses
            .get_opt("universal-webhook")
            .await
            .unwrap()
            .is_none()
    );
    let uw = w.addon("universal-webhook").await;
    let exposed = uw
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == "Exposed")
        .cloned()
        .expect("Exposed");
    assert_eq!(
        (exposed.status.as_str(), exposed.reason.as_str()),
        ("True", "HTTPRoute")
    );
    assert_quiet(&w, &names, 1, "exposed").await;

    // Exposure removed: the Ingress goes, and so does the condition.
    w.patch_addon("api-studio", json!({"spec": {"exposure": null}}))
        .await;
    eventually("the Ingress pruned", || async {
        ingresses
            .get_opt("api-studio")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    eventually("the Exposed condition gone", || async {
        let a = w.addon("api-studio").await;
        (a.status.as_ref()?.observed_generation == a.metadata.generation
            && condition(&a, "Exposed").is_none())
        .then_some(())
    })
    .await;
    w.ready("api-studio", "0.1.0").await;
    assert_quiet(&w, &names, 2, "exposure removed").await;
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_where_keda_is_served_the_add_on_scales_on_its_backlog() {
    let Some(w) = World::start_with("keda", true).await else {
        return;
    };
    let addons = vec![w.example("api-studio")];
    w.create(&addons).await;
    w.install(&addons).await;
    let names = vec!["api-studio".to_owned()];
    let scaled = dynamic(
        &w,
        &clockify_operator::build::scaling::scaled_object_resource(),
    );
    let hpas = w.api::<HorizontalPodAutoscaler>();
    let so = scaled.get("api-studio").await.expect("the ScaledObject");
    assert_eq!(so.data["spec"]["minReplicaCount"], 2);
    assert_eq!(so.data["spec"]["maxReplicaCount"], 4);
    assert_eq!(so.data["spec"]["triggers"][0]["type"], "metrics-api");
    assert_eq!(
        so.data["spec"]["triggers"][0]["metadata"]["url"],
        format!("http://api-studio.{}.svc:80/backlog", w.ns)
    );
    assert!(
        hpas.get_opt("api-studio").await.unwrap().is_none(),
        "no CPU HPA"
    );
    let d = w.api::<Deployment>().get("api-studio").await.unwrap();
    assert!(
        d.spec.unwrap().replicas.is_some_and(|r| r >= 2),
        "the hand-over keeps the minimum until KEDA's autoscaler takes over"
    );
    assert_quiet(&w, &names, 1, "scaled by KEDA").await;

    // KEDA declined in the spec: the CPU HPA comes back, the ScaledObject goes.
    w.patch_addon(
        "api-studio",
        json!({"spec": {"replicas": {"work": {"enabled": false}}}}),
    )
    .await;
    eventually("the CPU HPA back and the ScaledObject pruned", || async {
        let hpa = hpas.get_opt("api-studio").await.ok()?;
        let so = scaled.get_opt("api-studio").await.ok()?;
        (hpa.is_some() && so.is_none()).then_some(())
    })
    .await;
    w.ready("api-studio", "0.1.0").await;
    assert_quiet(&w, &names, 2, "back on the CPU HPA").await;
    w.finish().await;
}

/// `kubectl clockify`, the real binary, against the server: status, an on-demand backup it
/// waits for, the catalogue listed by a Job the server accepts (its pod's log cannot be read
/// where no kubelet runs, so the termination message serves), a restore asked once, a report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_kubectl_clockify_drives_an_add_on() {
    let Some(w) = World::start("plugin").await else {
        return;
    };
    if !w.controls_pods() {
        eprintln!("skipped: on a cluster with nodes the suite cannot end the plugin's Jobs");
        w.finish().await;
        return;
    }
    let addon = w.example("api-studio");
    let name = addon.name_any();
    w.create(std::slice::from_ref(&addon)).await;
    w.install(std::slice::from_ref(&addon)).await;

    // status: the table, one add-on in JSON, a clear error for a missing one.
    clockify_e2e::plugin_binary();
    let started = Instant::now();
    let run = w.plugin(&["status"]).await.unwrap();
    w.figure(&format!("status: {:.2} s", started.elapsed().as_secs_f64()));
    assert!(run.ok, "{run:?}");
    let row = run.stdout.lines().nth(1).unwrap_or_default().to_owned();
    for cell in [
        name.as_str(),
        "api-studio",
        "STANDARD",
        "2/2",
        "Ready",
        "none yet",
    ] {
        assert!(row.contains(cell), "{cell} in {row}");
    }
    let run = w.plugin(&["status", &name, "-o", "json"]).await.unwrap();
    assert!(run.ok, "{run:?}");
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        (v["name"].as_str(), v["state"].as_str()),
        (Some(name.as_str()), Some("Ready"))
    );
    let run = w.plugin(&["status", "nope"]).await.unwrap();
    assert!(!run.ok);
    assert_eq!(
        run.stderr.trim(),
        format!("error: ClockifyAddon nope not found in namespace {}", w.ns)
    );

    // backup --wait: the operator's Job, ended as the test says; the plugin prints the result.
    let jobs: Api<Job> = w.api();
    let of = |component: &'static str| {
        let jobs = jobs.clone();
        let selector =
            format!("app.kubernetes.io/instance={name},app.kubernetes.io/component={component}");
        async move {
            eventually(&format!("a {component} Job"), || async {
                jobs.list(&ListParams::default().labels(&selector))
                    .await
                    .ok()?
                    .items
                    .into_iter()
                    .find(|j| {
                        j.metadata.deletion_timestamp.is_none()
                            && j.status
                                .as_ref()
                                .and_then(|s| s.completion_time.as_ref())
                                .is_none()
                            && j.status.as_ref().and_then(|s| s.failed).is_none()
                    })
            })
            .await
        }
    };
    let backup = w.plugin(&["backup", &name, "--wait", "--timeout", "90s"]);
    let job = of("backup").await.name_any();
    w.complete_job(&job).await;
    let run = backup.await.unwrap();
    assert!(run.ok, "{run:?}");
    if w.mode == Mode::Controllers {
        assert!(
            run.stdout
                .contains(&format!("backup 20261202T000000.000Z-{job} stored at"))
                && run.stdout.contains("51.1 KiB"),
            "{run:?}"
        );
    } else {
        assert!(
            run.stdout.contains(&format!("backup Job {job} succeeded")),
            "{run:?}"
        );
    }

    // backups: a Job made from the backup CronJob's pod, without the database's credentials.
    let listing = w.plugin(&["backups", &name]);
    let job = of("catalog").await;
    let job_name = job.name_any();
    assert_eq!(job.owner_references()[0].name, name);
    let spec = job.spec.clone().unwrap();
    assert_eq!(spec.backoff_limit, Some(0));
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some(name.as_str()));
    let c = &pod.containers[0];
    assert_eq!(
        c.args.as_deref().unwrap(),
        ["backups", "api-studio", "--json"]
    );
    let env: Vec<&str> = c.env.iter().flatten().map(|e| e.name.as_str()).collect();
    assert!(
        env.contains(&"BACKUP_DESTINATION") && !env.contains(&"DATABASE_URL"),
        "{env:?}"
    );
    let claim = pod
        .volumes
        .iter()
        .flatten()
        .find_map(|v| v.persistent_volume_claim.clone())
        .unwrap();
    assert_eq!(claim.read_only, Some(true));
    let catalogue = [
        json!({"id": "20261203T020000.000Z-api-studio-nightly", "startedAt": "2026-12-03T02:00:00Z", "finishedAt": "2026-12-03T02:00:04Z", "size": 3_145_728, "schemaVersion": 6, "sha256": "fedcba9876543210fedcba9876543210"}),
        json!({"id": "20261202T020000.000Z-api-studio-nightly", "startedAt": "2026-12-02T02:00:00Z", "finishedAt": "2026-12-02T02:00:03Z", "size": 52_311, "schemaVersion": 6, "sha256": "0123456789abcdef0123456789abcdef"}),
        json!({"listed": 2, "omitted": 0}),
    ]
    .iter()
    .map(Value::to_string)
    .collect::<Vec<_>>()
    .join("\n");
    w.finish_job_with_pod(&job_name, Outcome::ok(&catalogue))
        .await;
    let run = listing.await.unwrap();
    assert!(run.ok, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("ID"), "{run:?}");
    assert!(
        lines[1].starts_with("20261203T020000.000Z-api-studio-nightly")
            && lines[1].contains("3.0 MiB")
            && lines[1].contains("fedcba987654"),
        "{run:?}"
    );
    assert!(
        lines[2].starts_with("20261202T020000.000Z-api-studio-nightly")
            && lines[2].contains("51.1 KiB"),
        "{run:?}"
    );
    assert!(
        !run.stdout.contains("older"),
        "the whole catalogue: {run:?}"
    );
    eventually("the catalogue Job deleted", || async {
        jobs.get_opt(&job_name)
            .await
            .ok()?
            .is_none_or(|j| j.metadata.deletion_timestamp.is_some())
            .then_some(())
    })
    .await;
    // A listing that fails says why.
    let listing = w.plugin(&["backups", &name, "-o", "json"]);
    let job_name = of("catalog").await.name_any();
    w.finish_job_with_pod(
        &job_name,
        Outcome::failed("cannot list backups: listing /backups: permission denied"),
    )
    .await;
    let run = listing.await.unwrap();
    assert!(!run.ok);
    assert!(
        run.stderr.contains(&format!("listing the backups failed (Job {job_name}): cannot list backups: listing /backups: permission denied")),
        "{run:?}"
    );

    // restore: only with --yes, and never over another.
    let run = w
        .plugin(&["restore", &name, "--from", "latest"])
        .await
        .unwrap();
    assert!(
        !run.ok && run.stderr.contains("Run again with --yes"),
        "{run:?}"
    );
    assert!(w.addon(&name).await.spec.restore.is_none());
    let run = w
        .plugin(&["restore", &name, "--from", "latest", "--yes"])
        .await
        .unwrap();
    assert!(run.ok, "{run:?}");
    let r = w
        .addon(&name)
        .await
        .spec
        .restore
        .expect("the restore asked for");
    assert_eq!(r.from, "latest");
    assert!(run.stdout.contains(&r.request_id), "{run:?}");
    let run = w
        .plugin(&["restore", &name, "--from", "latest", "--yes"])
        .await
        .unwrap();
    assert!(!run.ok && run.stderr.contains("is under way"), "{run:?}");

    // report: the bundle holds the ClockifyAddon, its children and their Events.
    let dir = std::env::temp_dir().join(format!("e2e-report-{}", w.ns));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bundle.tar.gz");
    let run = w
        .plugin(&["report", &name, "-f", file.to_str().unwrap()])
        .await
        .unwrap();
    assert!(run.ok, "{run:?}");
    let listing = std::process::Command::new("tar")
        .arg("-tzf")
        .arg(&file)
        .output()
        .unwrap();
    let entries = String::from_utf8_lossy(&listing.stdout).into_owned();
    for entry in [
        "README.txt",
        "clockifyaddon.yaml",
        "status.txt",
        "events.yaml",
    ] {
        assert!(
            entries.contains(&format!("clockify-report-{name}/{entry}")),
            "{entry} in {entries}"
        );
    }
    for kind in [
        "Deployment",
        "Service",
        "CronJob",
        "ServiceAccount",
        "ConfigMap",
    ] {
        assert!(
            entries.contains(&format!("children/{kind}-")),
            "{kind} in {entries}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    w.finish().await;
}
