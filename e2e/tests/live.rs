//! The operator against a live cluster. See e2e/README.md.
#![cfg(test)]

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use clockify_operator::controller::{self, Options, Scope};
use clockify_operator::crd::{ClockifyAddon, ImageSpec};
use clockify_operator::metrics::Metrics;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(120);

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

/// The examples, in the test namespace; with `E2E_IMAGE` they run that image.
fn examples(ns: &str) -> Vec<ClockifyAddon> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests/examples");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().is_some_and(|n| n != "kustomization.yaml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let mut a: ClockifyAddon =
                serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            a.metadata.namespace = Some(ns.to_owned());
            if let Ok(image) = std::env::var("E2E_IMAGE") {
                let (repository, tag) =
                    image.rsplit_once(':').unwrap_or((image.as_str(), "latest"));
                a.spec.image = Some(ImageSpec {
                    repository: Some(repository.into()),
                    tag: Some(tag.into()),
                    ..Default::default()
                });
            }
            a
        })
        .collect()
}

/// The Secrets the examples reference (database URL from `E2E_DATABASE_URL`).
async fn secrets(client: &Client, ns: &str, examples: &[ClockifyAddon]) {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let db = std::env::var("E2E_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://unused@db.invalid/x".into());
    let redis =
        std::env::var("E2E_REDIS_URL").unwrap_or_else(|_| "redis://unused.invalid:6379".into());
    for a in examples {
        let mut wanted = vec![
            (
                a.spec.database.url_secret_ref.name.clone(),
                a.spec.database.url_secret_ref.key.clone(),
                db.clone(),
            ),
            (
                a.spec.secrets.token_encryption_key_ref.name.clone(),
                a.spec.secrets.token_encryption_key_ref.key.clone(),
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into(),
            ),
        ];
        if let Some(r) = &a.spec.secrets.redis_url_ref {
            wanted.push((r.name.clone(), r.key.clone(), redis.clone()));
        }
        if let Some(s3) = a
            .spec
            .backup
            .as_ref()
            .and_then(|b| b.destination.s3.as_ref())
        {
            for key in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
                wanted.push((
                    s3.credentials_secret_ref.name.clone(),
                    key.to_owned(),
                    "e2e-unused".to_owned(),
                ));
            }
        }
        // One apply per Secret with all its keys (an apply owns exactly what it sends).
        let mut by_secret: std::collections::BTreeMap<
            String,
            serde_json::Map<String, serde_json::Value>,
        > = Default::default();
        for (name, key, value) in wanted {
            by_secret.entry(name).or_default().insert(key, value.into());
        }
        for (name, data) in by_secret {
            let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data});
            api.patch(
                &name,
                &PatchParams::apply("clockify-e2e").force(),
                &Patch::Apply(&secret),
            )
            .await
            .expect("secret");
        }
    }
}

/// Plays the Job controller where none runs: the migration Job succeeded.
async fn complete_job(jobs: &Api<Job>, name: &str) {
    let now = k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let status = json!({"status": {
    "startTime": now, "completionTime": now, "succeeded": 1,
    "conditions": [
        {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached", "message": "written by the e2e suite", "lastProbeTime": now, "lastTransitionTime": now},
        {"type": "Complete", "status": "True", "reason": "CompletionsReached", "message": "written by the e2e suite", "lastProbeTime": now, "lastTransitionTime": now}
    ]}});
    jobs.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("write Job status");
}

/// Plays the Deployment controller where none runs: every replica updated and available.
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

/// Plays the Job controller where none runs: the Job failed.
async fn fail_job(jobs: &Api<Job>, name: &str) {
    let now = k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let status = json!({"status": {
    "startTime": now, "failed": 2,
    "conditions": [
        {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded", "message": "written by the e2e suite", "lastProbeTime": now, "lastTransitionTime": now},
        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "written by the e2e suite", "lastProbeTime": now, "lastTransitionTime": now}
    ]}});
    jobs.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("write Job status");
}

/// The job, once it exists.
async fn job_named(jobs: &Api<Job>, name: &str) -> Job {
    eventually(&format!("Job {name}"), || async {
        jobs.get_opt(name).await.ok().flatten()
    })
    .await
}

/// The backup CronJob and volume; an on-demand backup by annotation and its outcome in status
/// (and, where the suite plays the Job controller, a failed one); a restore request that scales
/// down, restores, migrates, scales up, and never runs again.
#[allow(clippy::too_many_arguments)]
async fn backups_and_restore(
    client: &Client,
    ns: &str,
    addons: &Api<ClockifyAddon>,
    deploys: &Api<Deployment>,
    jobs: &Api<Job>,
    name: &str,
    job_controller: bool,
    bare: bool,
) {
    use clockify_operator::build::backup;
    let cron = eventually("the backup CronJob", || async {
        Api::<CronJob>::namespaced(client.clone(), ns)
            .get_opt(&format!("{name}-backup"))
            .await
            .ok()
            .flatten()
    })
    .await;
    let spec = cron.spec.clone().unwrap();
    assert_eq!(spec.concurrency_policy.as_deref(), Some("Forbid"));
    assert_eq!(spec.schedule, "0 2 * * *", "the STANDARD tier's schedule");
    let pvc = Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
        .get_opt(&format!("{name}-backups"))
        .await
        .unwrap()
        .expect("the backup volume");
    assert!(
        pvc.metadata.owner_references.is_none(),
        "the volume outlives the ClockifyAddon"
    );

    // On demand.
    let backup_now = |value: String| json!({"metadata": {"annotations": {"clockify-addons.io/backup-now": value}}});
    let request = format!("e2e-{:04x}", rand::random::<u16>());
    addons
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&backup_now(request.clone())),
        )
        .await
        .expect("annotate");
    let current = addons.get(name).await.unwrap();
    let job_name = backup::on_demand_job_name(&current, &request);
    let job = job_named(jobs, &job_name).await;
    assert_eq!(
        job.spec.unwrap().template.spec.unwrap().containers[0].args,
        Some(vec![
            "backup".to_owned(),
            current.spec.addon.slug().to_owned()
        ])
    );
    if !job_controller {
        complete_job(jobs, &job_name).await;
    }
    let recorded = eventually("the on-demand backup in status", || async {
        let a = addons.get(name).await.ok()?;
        let s = a.status.clone()?;
        (s.last_backup.as_ref()?.job == job_name).then_some(s)
    })
    .await;
    let result = recorded.last_backup.clone().unwrap().result;
    let expected = if result == "Succeeded" {
        "True"
    } else {
        "False"
    };
    assert_eq!(
        condition_of(&recorded, "BackupSucceeded").as_deref(),
        Some(expected)
    );
    assert_eq!(recorded.on_demand_backup.as_ref().unwrap().request, request);
    if !job_controller {
        assert_eq!(result, "Succeeded");
        // A failed one turns the condition false; the last success is kept.
        let request = format!("e2e-fail-{:04x}", rand::random::<u16>());
        addons
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(&backup_now(request.clone())),
            )
            .await
            .expect("annotate");
        let failing = backup::on_demand_job_name(&current, &request);
        job_named(jobs, &failing).await;
        fail_job(jobs, &failing).await;
        let s = eventually("the failed backup in status", || async {
            let s = addons.get(name).await.ok()?.status?;
            (s.last_backup.as_ref()?.job == failing).then_some(s)
        })
        .await;
        assert_eq!(
            condition_of(&s, "BackupSucceeded").as_deref(),
            Some("False")
        );
        assert_eq!(s.last_successful_backup.unwrap().job, job_name);
    }

    // A restore, once.
    let restore = json!({"spec": {"restore": {"requestId": "e2e-restore", "from": "latest"}}});
    addons
        .patch(name, &PatchParams::default(), &Patch::Merge(&restore))
        .await
        .expect("request a restore");
    eventually("the Deployment scaled to zero", || async {
        let d = deploys.get(name).await.ok()?;
        (d.spec?.replicas == Some(0)).then_some(())
    })
    .await;
    let restore_job = backup::restore_job_name(&current, "e2e-restore");
    let migrate_job = backup::restore_migration_job_name(&current, "e2e-restore");
    for step in [&restore_job, &migrate_job] {
        eventually(&format!("Job {step}"), || async {
            if bare {
                settle_deployment(deploys, name).await;
            }
            jobs.get_opt(step).await.ok().flatten()
        })
        .await;
        if !job_controller {
            complete_job(jobs, step).await;
        }
    }
    let done = eventually("the restore to succeed", || async {
        if bare {
            settle_deployment(deploys, name).await;
        }
        let s = addons.get(name).await.ok()?.status?;
        let r = s.restore.clone()?;
        r.phase.is_final().then_some(s)
    })
    .await;
    let r = done.restore.clone().unwrap();
    assert_eq!(
        r.phase,
        clockify_operator::crd::RestorePhase::Succeeded,
        "{:?}",
        r.message
    );
    assert_eq!(condition_of(&done, "Restored").as_deref(), Some("True"));
    // Never again: the Jobs stay as they were, the record stays.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let again = addons.get(name).await.unwrap().status.unwrap();
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
}

fn condition(a: &ClockifyAddon, t: &str) -> Option<String> {
    a.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| c.status.clone())
}

async fn migration_job(jobs: &Api<Job>, addon: &str, version: &str) -> Job {
    eventually(
        &format!("the migration Job of {addon} for {version}"),
        || async {
            let list = jobs
                .list(&ListParams::default().labels(&format!(
                    "app.kubernetes.io/instance={addon},app.kubernetes.io/component=migration"
                )))
                .await
                .ok()?;
            list.items.into_iter().find(|j| {
                j.annotations()
                    .get("clockify-addons.io/version")
                    .map(String::as_str)
                    == Some(version)
            })
        },
    )
    .await
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

    let ns = format!("clockify-e2e-{:06x}", rand::random::<u32>() & 0xff_ffff);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await
        .expect("namespace");

    // The operator, out of cluster, watching that namespace, with leader election.
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
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    let examples = examples(&ns);
    secrets(&client, &ns, &examples).await;
    for a in &examples {
        addons
            .create(&PostParams::default(), a)
            .await
            .unwrap_or_else(|e| panic!("create {}: {e}", a.name_any()));
    }

    // First install: the migration Job comes first, the Deployment only after it succeeded.
    let first_job = migration_job(&jobs, &examples[0].name_any(), &examples[0].spec.version).await;
    assert!(
        deploys
            .get_opt(&examples[0].name_any())
            .await
            .unwrap()
            .is_none(),
        "no Deployment before the database is migrated"
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    let job_controller = jobs
        .get(&first_job.name_any())
        .await
        .unwrap()
        .status
        .and_then(|s| s.start_time)
        .is_some();
    if job_controller && std::env::var_os("E2E_IMAGE").is_none() {
        eprintln!(
            "the cluster runs the Job controller: set E2E_IMAGE (a clockify-addons image it can pull) and E2E_DATABASE_URL \
             (a PostgreSQL it can reach) to go past the migration; the migration Jobs were created as expected, stopping here"
        );
        stop.cancel();
        let _ = operator.await;
        let _ = namespaces.delete(&ns, &DeleteParams::background()).await;
        return;
    }
    for a in &examples {
        let job = migration_job(&jobs, &a.name_any(), &a.spec.version).await;
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
            Some(&["migrate".to_owned(), a.spec.addon.slug().to_owned()][..])
        );
        if !job_controller {
            complete_job(&jobs, &job.name_any()).await;
        }
    }
    if !job_controller {
        eprintln!("no Job controller (bare control plane): the suite writes migration Job status");
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

    // Ready once the Deployments are available (written by the suite on a bare control plane).
    let bare = {
        tokio::time::sleep(Duration::from_secs(10)).await;
        deploys
            .get(&examples[0].name_any())
            .await
            .unwrap()
            .status
            .and_then(|s| s.observed_generation)
            .is_none()
    };
    if bare {
        eprintln!(
            "no Deployment controller (bare control plane): the suite writes Deployment status"
        );
    }
    let wait_ready = |version: String, name: String| {
        let (addons, deploys) = (addons.clone(), deploys.clone());
        async move {
            eventually(&format!("{name} Ready at {version}"), || async {
                if bare {
                    settle_deployment(&deploys, &name).await;
                }
                let a = addons.get(&name).await.ok()?;
                (condition(&a, "Ready").as_deref() == Some("True")
                    && a.status.as_ref()?.current_version.as_deref() == Some(version.as_str()))
                .then_some(a)
            })
            .await
        }
    };
    for a in &examples {
        let ready = wait_ready(a.spec.version.clone(), a.name_any()).await;
        let status = ready.status.unwrap();
        assert_eq!(status.observed_generation, ready.metadata.generation);
        assert_eq!(
            condition_of(&status, "Reconciling").as_deref(),
            Some("False")
        );
        assert_eq!(condition_of(&status, "Stalled").as_deref(), Some("False"));
        assert_eq!(
            condition_of(&status, "DatabaseMigrated").as_deref(),
            Some("True")
        );
        assert_eq!(
            status.last_migration.as_ref().map(|m| m.version.as_str()),
            Some(a.spec.version.as_str())
        );
    }

    // An upgrade: a new Job with the new image while the old version keeps serving, then the rollout.
    let first = examples[0].name_any();
    if std::env::var_os("E2E_IMAGE").is_none() {
        let patch = json!({"spec": {"version": "0.1.1"}});
        addons
            .patch(&first, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("upgrade");
        let job = migration_job(&jobs, &first, "0.1.1").await;
        let held = deploys.get(&first).await.unwrap();
        let image = held.spec.unwrap().template.spec.unwrap().containers[0]
            .image
            .clone()
            .unwrap();
        assert!(
            image.ends_with(":0.1.0"),
            "the Deployment keeps the old image while migrating: {image}"
        );
        let migrating = addons.get(&first).await.unwrap();
        assert_eq!(
            condition(&migrating, "DatabaseMigrated").as_deref(),
            Some("False")
        );
        if !job_controller {
            complete_job(&jobs, &job.name_any()).await;
        }
        eventually("the Deployment to roll to 0.1.1", || async {
            let d = deploys.get(&first).await.ok()?;
            d.spec?.template.spec?.containers[0]
                .image
                .as_deref()?
                .ends_with(":0.1.1")
                .then_some(())
        })
        .await;
        wait_ready("0.1.1".into(), first.clone()).await;
    }

    // Backups on the STANDARD API Studio example (a volume destination).
    backups_and_restore(
        &client,
        &ns,
        &addons,
        &deploys,
        &jobs,
        "api-studio",
        job_controller,
        bare,
    )
    .await;

    // A child edited by hand is put back; one deleted by hand comes back.
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

    // Deleting the ClockifyAddons removes their children: by the garbage collector, or on a bare
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
        eprintln!("no garbage collector (bare control plane): the suite deletes the children");
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
