//! The operator against a live cluster. See e2e/README.md.
#![cfg(test)]

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use clockify_operator::controller::{self, Options, Scope};
use clockify_operator::crd::ClockifyAddon;
use clockify_operator::metrics::Metrics;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(90);

async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn examples(ns: &str) -> Vec<ClockifyAddon> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests/examples");
    let mut out = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    for path in paths {
        let mut a: ClockifyAddon =
            serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        a.metadata.namespace = Some(ns.to_owned());
        out.push(a);
    }
    out
}

/// Plays the Deployment controller when none runs: marks every replica updated and available.
async fn settle_deployment(deploys: &Api<Deployment>, name: &str) {
    let Ok(d) = deploys.get(name).await else {
        return;
    };
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = json!({"status": {
    "observedGeneration": d.metadata.generation, "replicas": replicas, "updatedReplicas": replicas,
    "readyReplicas": replicas, "availableReplicas": replicas,
    "conditions": [
        {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "written by the e2e suite"},
        {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": "written by the e2e suite"}
    ]}});
    deploys
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("write Deployment status");
}

fn condition(a: &ClockifyAddon, t: &str) -> Option<String> {
    a.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| c.status.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_on_a_live_cluster() {
    if std::env::var_os("KUBECONFIG").is_none() {
        eprintln!(
            "skipped: KUBECONFIG is not set, so there is no cluster to test against (see e2e/README.md)"
        );
        return;
    }
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();
    let client = Client::try_default()
        .await
        .expect("a client from KUBECONFIG");

    // The CRD, as committed.
    let crd: CustomResourceDefinition = serde_norway::from_str(include_str!(
        "../../crds/clockify-addons.io_clockifyaddons.yaml"
    ))
    .unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        &crd.name_any(),
        &PatchParams::apply("clockify-e2e").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("install the CRD");
    eventually("the CRD to be established", || async {
        let c = crds.get(&crd.name_any()).await.ok()?;
        c.status?
            .conditions?
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
            .then_some(())
    })
    .await;

    // A namespace of our own.
    let ns = format!("clockify-e2e-{:06x}", rand::random::<u32>() & 0xff_ffff);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await
        .expect("create the test namespace");

    // The operator, out of cluster, watching that namespace.
    let stop = CancellationToken::new();
    let opts = Options {
        scope: Scope::Namespace(ns.clone()),
        concurrency: 4,
        lease: Some((ns.clone(), "clockify-operator".into())),
        identity: "e2e".into(),
    };
    let operator = tokio::spawn(controller::run(
        client.clone(),
        opts,
        Metrics::new(),
        Arc::new(AtomicBool::new(false)),
        stop.clone(),
    ));

    let addons: Api<ClockifyAddon> = Api::namespaced(client.clone(), &ns);
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let examples = examples(&ns);
    for a in &examples {
        addons
            .create(&PostParams::default(), a)
            .await
            .unwrap_or_else(|e| panic!("create {}: {e}", a.name_any()));
    }

    // Children appear, owned by their ClockifyAddon.
    for a in &examples {
        let name = a.name_any();
        let d = eventually(&format!("Deployment {name}"), || async {
            deploys.get_opt(&name).await.ok().flatten()
        })
        .await;
        let owner = &d.metadata.owner_references.clone().unwrap_or_default()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.controller),
            ("ClockifyAddon", name.as_str(), Some(true))
        );
        assert!(
            services.get_opt(&name).await.unwrap().is_some(),
            "Service {name}"
        );
        assert!(
            Api::<ServiceAccount>::namespaced(client.clone(), &ns)
                .get_opt(&name)
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            Api::<ConfigMap>::namespaced(client.clone(), &ns)
                .get_opt(&format!("{name}-config"))
                .await
                .unwrap()
                .is_some()
        );
    }

    // Status: Ready once the Deployments are available. On a bare control plane nothing moves
    // them, so after a grace period the suite writes their status itself.
    let bare = {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let d = deploys.get(&examples[0].name_any()).await.unwrap();
        d.status.and_then(|s| s.observed_generation).is_none()
    };
    if bare {
        eprintln!(
            "no Deployment controller is running (bare control plane): the suite writes Deployment status"
        );
    }
    for a in &examples {
        let name = a.name_any();
        let ready = eventually(&format!("{name} Ready"), || async {
            if bare {
                settle_deployment(&deploys, &name).await;
            }
            let a = addons.get(&name).await.ok()?;
            (condition(&a, "Ready").as_deref() == Some("True")).then_some(a)
        })
        .await;
        let status = ready.status.unwrap();
        assert_eq!(status.observed_generation, ready.metadata.generation);
        assert_eq!(condition_of(&status, "Reconciling"), Some("False".into()));
        assert_eq!(condition_of(&status, "Stalled"), Some("False".into()));
        assert_eq!(
            status.current_version.as_deref(),
            Some(a.spec.version.as_str())
        );
    }

    // A child edited by hand is put back; one deleted by hand comes back.
    let first = examples[0].name_any();
    let tamper = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": first},
        "spec": {"template": {"spec": {"containers": [{"name": "addon", "image": "example.com/tampered:1"}]}}}});
    deploys
        .patch(
            &first,
            &PatchParams::apply("someone-else").force(),
            &Patch::Apply(&tamper),
        )
        .await
        .expect("tamper");
    eventually("the Deployment image to be restored", || async {
        let d = deploys.get(&first).await.ok()?;
        let image = d.spec?.template.spec?.containers.first()?.image.clone()?;
        (image != "example.com/tampered:1").then_some(())
    })
    .await;
    services
        .delete(&first, &DeleteParams::default())
        .await
        .expect("delete the Service");
    eventually("the Service to be recreated", || async {
        let s = services.get_opt(&first).await.ok()??;
        s.metadata.deletion_timestamp.is_none().then_some(())
    })
    .await;

    // Deleting a ClockifyAddon removes its children: by the garbage collector, or on a bare
    // control plane by the suite once it has checked the owner references the collector follows.
    for a in &examples {
        addons
            .delete(&a.name_any(), &DeleteParams::background())
            .await
            .expect("delete the ClockifyAddon");
    }
    let gc = {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if deploys
                .list(&Default::default())
                .await
                .map(|l| l.items.is_empty())
                .unwrap_or(false)
            {
                break true;
            }
            if Instant::now() > deadline {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    if !gc {
        eprintln!(
            "no garbage collector is running (bare control plane): the suite deletes the children"
        );
        for d in deploys.list(&Default::default()).await.unwrap().items {
            let owner = d.metadata.owner_references.clone().unwrap_or_default();
            assert!(
                owner
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

    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), operator).await;
    let _ = namespaces.delete(&ns, &DeleteParams::background()).await;
}

fn condition_of(s: &clockify_operator::ClockifyAddonStatus, t: &str) -> Option<String> {
    s.conditions
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| c.status.clone())
}
