//! `kubectl clockify`: the ClockifyAddons of a cluster on day two.
//!
//!     kubectl clockify status [NAME] [-A] [-o table|json|yaml]
//!     kubectl clockify backup NAME [--wait] [--timeout 30m]
//!     kubectl clockify backups NAME [-o table|json|yaml]
//!     kubectl clockify restore NAME --from ID|latest --yes [--wait]
//!     kubectl clockify report NAME [-f bundle.tar.gz]
//!     kubectl clockify completion bash|zsh|fish
//!
//! Installed next to kubectl as `kubectl-clockify` (`cargo install --path operator`, or from
//! the operator image's /usr/local/bin), kubectl finds it as a plugin. It uses the current
//! kubeconfig context, like kubectl.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use clockify_operator::crd::{BACKUP_NOW_ANNOTATION, ClockifyAddon};
use clockify_operator::plugin::{self, BackupProgress};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "kubectl-clockify",
    bin_name = "kubectl clockify",
    version,
    about = "Day-two commands for ClockifyAddons"
)]
struct Cli {
    /// The namespace (default: the kubeconfig context's).
    #[arg(short, long, global = true)]
    namespace: Option<String>,
    /// The kubeconfig context (default: the current one).
    #[arg(long, global = true)]
    context: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Table,
    Json,
    Yaml,
}

#[derive(Subcommand)]
enum Command {
    /// Version, replicas, readiness, last backup and migration, conditions: of every
    /// ClockifyAddon, or of one in full.
    Status {
        /// One ClockifyAddon (all in the namespace when omitted).
        name: Option<String>,
        /// Every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Takes an on-demand backup (the operator runs it as a Job); with --wait, waits for it
    /// and prints the result.
    Backup {
        name: String,
        #[arg(long)]
        wait: bool,
        /// How long --wait waits, such as 30m or 90s.
        #[arg(long, default_value = "30m", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// Lists the backups at the add-on's destination (S3 or its volume), newest first. A
    /// short Job reads them from inside the cluster, as the add-on's backups run: its
    /// ServiceAccount, credentials and volume, but not the database's credentials.
    Backups {
        name: String,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
        /// How long to wait for the listing Job, such as 90s or 5m.
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// Restores the database from a backup, as the operator does it: the add-on is scaled to
    /// zero, the restore runs once no pod of it is left, then it migrates and scales back.
    /// Refused while another restore is under way.
    Restore {
        name: String,
        /// A backup id (`kubectl clockify status NAME` shows the last good one), or latest.
        #[arg(long)]
        from: String,
        /// Confirms that the database is to be replaced.
        #[arg(long)]
        yes: bool,
        #[arg(long)]
        wait: bool,
        #[arg(long, default_value = "60m", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// Writes a support bundle (tar.gz): the ClockifyAddon, its children, their Events and the
    /// operator's logs. No Secret is read; env values that look like secrets are redacted.
    Report {
        name: String,
        /// Where to write it (default: clockify-report-NAME-TIME.tar.gz).
        #[arg(short = 'f', long)]
        file: Option<std::path::PathBuf>,
        /// The operator's namespace, for its logs.
        #[arg(long, default_value = "clockify-system")]
        operator_namespace: String,
    },
    /// Prints a shell completion script.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?}: a duration such as 90s, 30m or 2h"))?;
    match unit {
        "s" | "" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("{s:?}: a duration such as 90s, 30m or 2h")),
    }
}

/// A failure worth its own exit code and a sentence, never a backtrace.
#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("cannot reach the cluster: {0} (check KUBECONFIG and the context)")]
    Config(String),
    #[error("ClockifyAddon {0} not found in namespace {1}")]
    NotFound(String, String),
    #[error(
        "the cluster does not serve ClockifyAddons (is the CRD installed? kubectl apply -k crds/)"
    )]
    NoCrd,
    #[error("{0}")]
    Api(String),
    #[error("backup {0} failed: {1}")]
    BackupFailed(String, String),
    #[error("timed out after {0:?} waiting for the backup (its Job: {1})")]
    Timeout(Duration, String),
    #[error("{0}")]
    Refused(String),
    #[error("listing the backups failed (Job {0}): {1}")]
    CatalogFailed(String, String),
    #[error("restore {0} failed: {1}")]
    RestoreFailed(String, String),
    #[error("writing {0}: {1}")]
    Write(String, std::io::Error),
}

fn api_error(e: kube::Error, what: &str, ns: &str) -> Error {
    match e {
        kube::Error::Api(s)
            if s.code == 404
                && s.details
                    .as_ref()
                    .is_some_and(|d| d.kind == "clockifyaddons") =>
        {
            Error::NotFound(what.to_owned(), ns.to_owned())
        }
        kube::Error::Api(s) if s.code == 404 => Error::NoCrd,
        kube::Error::Api(s) if s.code == 403 => Error::Api(format!("not allowed: {}", s.message)),
        e => Error::Api(e.to_string()),
    }
}

async fn client(cli: &Cli) -> Result<(Client, String), Error> {
    let options = kube::config::KubeConfigOptions {
        context: cli.context.clone(),
        ..Default::default()
    };
    let config = kube::Config::from_kubeconfig(&options)
        .await
        .or_else(|e| kube::Config::incluster().map_err(|_| e))
        .map_err(|e| Error::Config(e.to_string()))?;
    let ns = cli
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).map_err(|e| Error::Config(e.to_string()))?;
    Ok((client, ns))
}

/// Writes to stdout; a closed pipe (`| head`) ends the program quietly, as kubectl does.
fn emit(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if out
        .write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        std::process::exit(0);
    }
}

fn print(value: &serde_json::Value, output: Output) {
    match output {
        Output::Json => emit(&format!(
            "{}\n",
            serde_json::to_string_pretty(value).unwrap_or_default()
        )),
        Output::Yaml => emit(&serde_norway::to_string(value).unwrap_or_default()),
        Output::Table => {}
    }
}

async fn status(
    client: Client,
    ns: &str,
    name: Option<&str>,
    all: bool,
    output: Output,
) -> Result<(), Error> {
    let now = Timestamp::now();
    if let Some(name) = name {
        let api: Api<ClockifyAddon> = Api::namespaced(client, ns);
        let a = api.get(name).await.map_err(|e| api_error(e, name, ns))?;
        match output {
            Output::Table => emit(&plugin::status_detail(&a, now)),
            o => print(&plugin::status_value(&a), o),
        }
        return Ok(());
    }
    let api: Api<ClockifyAddon> = if all {
        Api::all(client)
    } else {
        Api::namespaced(client, ns)
    };
    // Pages of 500, as kubectl asks.
    let mut addons = Vec::new();
    let mut params = ListParams::default().limit(500);
    loop {
        let page = api.list(&params).await.map_err(|e| api_error(e, "", ns))?;
        addons.extend(page.items);
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => params = params.continue_token(&c),
            _ => break,
        }
    }
    match output {
        Output::Table if addons.is_empty() => {
            if all {
                eprintln!("No ClockifyAddons found.");
            } else {
                eprintln!("No ClockifyAddons found in namespace {ns}.");
            }
        }
        Output::Table => emit(&plugin::status_table(&addons, all, now)),
        o => print(
            &json!({"items": addons.iter().map(plugin::status_value).collect::<Vec<_>>()}),
            o,
        ),
    }
    Ok(())
}

async fn backup(
    client: Client,
    ns: &str,
    name: &str,
    wait: bool,
    timeout: Duration,
) -> Result<(), Error> {
    let api: Api<ClockifyAddon> = Api::namespaced(client, ns);
    let a = api.get(name).await.map_err(|e| api_error(e, name, ns))?;
    if a.spec.backup.is_none() {
        return Err(Error::Api(format!(
            "ClockifyAddon {ns}/{name} has no spec.backup: say where backups go first (docs/backups.md)"
        )));
    }
    let request = Timestamp::now().strftime("%Y%m%dT%H%M%SZ").to_string();
    let patch = json!({"metadata": {"annotations": {BACKUP_NOW_ANNOTATION: request}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| api_error(e, name, ns))?;
    emit(&format!(
        "backup of {ns}/{name} requested ({BACKUP_NOW_ANNOTATION}={request})\n"
    ));
    if !wait {
        return Ok(());
    }
    let started = Instant::now();
    let mut job = String::new();
    loop {
        let a = api.get(name).await.map_err(|e| api_error(e, name, ns))?;
        match plugin::backup_progress(&a, &request) {
            BackupProgress::Requested => {}
            BackupProgress::Running { job: j } => {
                if job != j {
                    emit(&format!("running as Job {j}\n"));
                    job = j;
                }
            }
            BackupProgress::Finished(b) if b.result == clockify_operator::backups::SUCCEEDED => {
                emit(&match &b.backup_id {
                    Some(id) => format!(
                        "backup {id} stored at {}{}\n",
                        b.location.as_deref().unwrap_or("its destination"),
                        b.size_bytes
                            .map(|n| format!(": {}", plugin::size(n)))
                            .unwrap_or_default()
                    ),
                    None => format!(
                        "backup Job {} succeeded (its pod reported no backup id)\n",
                        b.job
                    ),
                });
                return Ok(());
            }
            BackupProgress::Finished(b) => {
                return Err(Error::BackupFailed(
                    b.job,
                    b.message.unwrap_or_else(|| "no message".to_owned()),
                ));
            }
        }
        if started.elapsed() > timeout {
            return Err(Error::Timeout(timeout, job));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn backups(
    client: Client,
    ns: &str,
    name: &str,
    output: Output,
    timeout: Duration,
) -> Result<(), Error> {
    use k8s_openapi::api::batch::v1::{CronJob, Job};
    use kube::api::{DeleteParams, PostParams};
    let api: Api<ClockifyAddon> = Api::namespaced(client.clone(), ns);
    let a = api.get(name).await.map_err(|e| api_error(e, name, ns))?;
    if a.spec.backup.is_none() {
        return Err(Error::Refused(format!(
            "ClockifyAddon {ns}/{name} has no spec.backup: it has no backups to list"
        )));
    }
    let cron_name = clockify_operator::build::backup::cron_job_name(&a);
    let crons: Api<CronJob> = Api::namespaced(client.clone(), ns);
    let cron = match crons.get(&cron_name).await {
        Ok(c) => c,
        Err(kube::Error::Api(s)) if s.code == 404 => {
            return Err(Error::Refused(format!(
                "the operator has not created the backup CronJob {ns}/{cron_name} yet: see `kubectl clockify status {name}`"
            )));
        }
        Err(e) => return Err(api_error(e, &cron_name, ns)),
    };
    let now = Timestamp::now();
    let request = format!(
        "{}-{}",
        now.strftime("%Y%m%dT%H%M%SZ"),
        now.subsec_nanosecond()
    );
    let job = plugin::catalog_job(&a, &cron, &request).map_err(Error::Refused)?;
    let job_name = job.metadata.name.clone().unwrap_or_default();
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    jobs.create(&PostParams::default(), &job)
        .await
        .map_err(|e| api_error(e, &job_name, ns))?;
    eprintln!("listing the backups of {ns}/{name} with Job {job_name}");
    let result = catalog_of(&client, ns, &jobs, &job_name, timeout).await;
    // The Job (and its pod) go, whatever happened; its TTL removes it otherwise.
    if let Err(e) = jobs.delete(&job_name, &DeleteParams::background()).await {
        eprintln!(
            "warning: could not delete Job {job_name} ({e}); it is removed {} s after it finished",
            plugin::CATALOG_DEADLINE_SECONDS
        );
    }
    let catalog = result?;
    match output {
        Output::Table => emit(&catalog.table(Timestamp::now())),
        o => print(&catalog.value(), o),
    }
    Ok(())
}

/// Waits for the catalogue Job and reads what it listed: from its pod's log, or where the log
/// cannot be read, from its termination message.
async fn catalog_of(
    client: &Client,
    ns: &str,
    jobs: &Api<k8s_openapi::api::batch::v1::Job>,
    job_name: &str,
    timeout: Duration,
) -> Result<plugin::Catalog, Error> {
    use k8s_openapi::api::core::v1::Pod;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let selector = format!("batch.kubernetes.io/job-name={job_name}");
    let started = Instant::now();
    let succeeded = loop {
        let job = jobs
            .get(job_name)
            .await
            .map_err(|e| api_error(e, job_name, ns))?;
        let st = job.status.unwrap_or_default();
        let condition = |t: &str| {
            st.conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == t && c.status == "True")
        };
        if st.succeeded.unwrap_or(0) > 0 || condition("Complete") {
            break true;
        }
        if st.failed.unwrap_or(0) > 0 || condition("Failed") {
            break false;
        }
        if started.elapsed() > timeout {
            let why = pods
                .list(&ListParams::default().labels(&selector))
                .await
                .ok()
                .and_then(|l| l.items.into_iter().next())
                .map(|p| plugin::pod_waiting(&p))
                .unwrap_or_else(|| "no pod was created".to_owned());
            return Err(Error::CatalogFailed(
                job_name.to_owned(),
                format!("not finished after {timeout:?} ({why})"),
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let pod = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| api_error(e, job_name, ns))?
        .items
        .into_iter()
        .max_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0));
    let Some(pod) = pod else {
        return Err(Error::CatalogFailed(
            job_name.to_owned(),
            "its pod is gone, and what it listed with it".to_owned(),
        ));
    };
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let message = plugin::termination_message(&pod).unwrap_or_default();
    if !succeeded {
        return Err(Error::CatalogFailed(
            job_name.to_owned(),
            if message.is_empty() {
                plugin::pod_waiting(&pod)
            } else {
                message.trim().to_owned()
            },
        ));
    }
    let from_log = match pods.logs(&pod_name, &kube::api::LogParams::default()).await {
        Ok(log) => plugin::Catalog::parse(&log),
        Err(e) => {
            eprintln!(
                "warning: cannot read the log of pod {pod_name} ({e}); reading its termination message"
            );
            None
        }
    };
    from_log
        .or_else(|| plugin::Catalog::parse(&message))
        .ok_or_else(|| {
            Error::CatalogFailed(
                job_name.to_owned(),
                "it succeeded but neither its log nor its termination message holds a catalogue"
                    .to_owned(),
            )
        })
}

async fn restore(
    client: Client,
    ns: &str,
    name: &str,
    from: &str,
    yes: bool,
    wait: Option<Duration>,
) -> Result<(), Error> {
    let api: Api<ClockifyAddon> = Api::namespaced(client, ns);
    let a = api.get(name).await.map_err(|e| api_error(e, name, ns))?;
    let (request, patch) =
        plugin::restore_patch(&a, from, Timestamp::now()).map_err(Error::Refused)?;
    if !yes {
        return Err(Error::Refused(format!(
            "this replaces the database of {ns}/{name} with backup {from}; the add-on is scaled to zero until it is done. Run again with --yes"
        )));
    }
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| api_error(e, name, ns))?;
    emit(&format!(
        "restore {request} of {ns}/{name} from {from} requested\n"
    ));
    let Some(timeout) = wait else {
        return Ok(());
    };
    let started = Instant::now();
    let mut phase = String::new();
    loop {
        let a = api.get(name).await.map_err(|e| api_error(e, name, ns))?;
        if let Some(r) = a.status.as_ref().and_then(|s| s.restore.as_ref())
            && r.request_id == request
            && r.phase.as_str() != phase
        {
            phase = r.phase.as_str().to_owned();
            emit(&format!("{phase}\n"));
        }
        match plugin::restore_outcome(&a, &request) {
            Some(Ok(msg)) => {
                emit(&format!("restored: {msg}\n"));
                return Ok(());
            }
            Some(Err(msg)) => return Err(Error::RestoreFailed(request, msg)),
            None => {}
        }
        if started.elapsed() > timeout {
            return Err(Error::Timeout(timeout, request));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// One file of the bundle.
struct Bundle {
    files: Vec<(String, Vec<u8>)>,
    notes: Vec<String>,
    /// The uids of what it holds (whose Events belong in it).
    uids: std::collections::BTreeSet<String>,
}

impl Bundle {
    fn yaml(&mut self, path: String, mut v: serde_json::Value) {
        plugin::redact(&mut v);
        self.files.push((
            path,
            serde_norway::to_string(&v).unwrap_or_default().into_bytes(),
        ));
    }
}

/// Every object of `ar` in `ns` labelled as this instance's (absent APIs are skipped).
async fn children(
    client: &Client,
    ns: &str,
    name: &str,
    ar: &kube::api::ApiResource,
    bundle: &mut Bundle,
) {
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), ns, ar);
    let selector = format!("app.kubernetes.io/instance={name}");
    match api.list(&ListParams::default().labels(&selector)).await {
        Ok(list) => {
            for mut o in list.items {
                o.types = Some(kube::api::TypeMeta {
                    api_version: ar.api_version.clone(),
                    kind: ar.kind.clone(),
                });
                let n = o.metadata.name.clone().unwrap_or_default();
                bundle.uids.extend(o.metadata.uid.clone());
                bundle.yaml(
                    format!("children/{}-{n}.yaml", ar.kind),
                    serde_json::to_value(&o).unwrap_or_default(),
                );
            }
        }
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => bundle.notes.push(format!("{}: {e}", ar.plural)),
    }
}

async fn report(
    client: Client,
    ns: &str,
    name: &str,
    file: Option<std::path::PathBuf>,
    operator_ns: &str,
) -> Result<(), Error> {
    use k8s_openapi::api;
    use kube::api::ApiResource;
    let addons: Api<ClockifyAddon> = Api::namespaced(client.clone(), ns);
    let a = addons.get(name).await.map_err(|e| api_error(e, name, ns))?;
    let now = Timestamp::now();
    let mut bundle = Bundle {
        files: Vec::new(),
        notes: Vec::new(),
        uids: a.metadata.uid.clone().into_iter().collect(),
    };
    bundle.yaml(
        "clockifyaddon.yaml".into(),
        serde_json::to_value(&a).unwrap_or_default(),
    );
    bundle.files.push((
        "status.txt".into(),
        plugin::status_detail(&a, now).into_bytes(),
    ));
    // Every kind the operator makes (where the API is served), and the pods under them.
    use clockify_operator::plan::Kind;
    let mut kinds: Vec<ApiResource> = [
        Kind::ServiceAccount,
        Kind::ConfigMap,
        Kind::NetworkPolicy,
        Kind::Service,
        Kind::Ingress,
        Kind::HTTPRoute,
        Kind::Deployment,
        Kind::HorizontalPodAutoscaler,
        Kind::ScaledObject,
        Kind::PodDisruptionBudget,
        Kind::ServiceMonitor,
        Kind::PersistentVolumeClaim,
        Kind::CronJob,
        Kind::Job,
    ]
    .into_iter()
    .map(clockify_operator::apply::api_resource)
    .collect();
    kinds.push(ApiResource::erase::<api::apps::v1::ReplicaSet>(&()));
    kinds.push(ApiResource::erase::<api::core::v1::Pod>(&()));
    for ar in &kinds {
        children(&client, ns, name, ar, &mut bundle).await;
    }
    // Events about the ClockifyAddon and its children.
    let events: Api<api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    match events.list(&ListParams::default()).await {
        Ok(list) => {
            let mut mine: Vec<_> = list
                .items
                .into_iter()
                .filter(|e| {
                    e.regarding
                        .as_ref()
                        .and_then(|r| r.uid.as_ref())
                        .is_some_and(|u| bundle.uids.contains(u))
                })
                .collect();
            mine.sort_by_key(|e| e.metadata.creation_timestamp.clone().map(|t| t.0));
            bundle.yaml(
                "events.yaml".into(),
                serde_json::to_value(&mine).unwrap_or_default(),
            );
        }
        Err(e) => bundle.notes.push(format!("events: {e}")),
    }
    // The operator's logs (its pods by their chart and kustomize label).
    let pods: Api<api::core::v1::Pod> = Api::namespaced(client.clone(), operator_ns);
    match pods
        .list(&ListParams::default().labels("app.kubernetes.io/name=clockify-operator"))
        .await
    {
        Ok(list) if list.items.is_empty() => bundle.notes.push(format!(
            "no operator pod found in namespace {operator_ns} (--operator-namespace)"
        )),
        Ok(list) => {
            for p in list.items {
                let pod = p.metadata.name.clone().unwrap_or_default();
                let params = kube::api::LogParams {
                    tail_lines: Some(5000),
                    ..Default::default()
                };
                match pods.logs(&pod, &params).await {
                    Ok(text) => bundle
                        .files
                        .push((format!("operator-logs/{pod}.log"), text.into_bytes())),
                    Err(e) => bundle.notes.push(format!("logs of {pod}: {e}")),
                }
            }
        }
        Err(e) => bundle.notes.push(format!("operator pods: {e}")),
    }
    let mut readme = format!(
        "Support bundle for ClockifyAddon {ns}/{name}, written {now} by kubectl-clockify {}.\n\
         clockifyaddon.yaml, status.txt, children/ (labelled app.kubernetes.io/instance={name}),\n\
         events.yaml, operator-logs/. No Secret was read; env values that look like secrets are\n\
         redacted; managedFields are dropped.\n",
        env!("CARGO_PKG_VERSION")
    );
    for n in &bundle.notes {
        readme.push_str(&format!("not collected: {n}\n"));
    }
    bundle
        .files
        .insert(0, ("README.txt".into(), readme.into_bytes()));
    let path = file.unwrap_or_else(|| {
        format!(
            "clockify-report-{name}-{}.tar.gz",
            now.strftime("%Y%m%dT%H%M%SZ")
        )
        .into()
    });
    let shown = path.display().to_string();
    let out = std::fs::File::create(&path).map_err(|e| Error::Write(shown.clone(), e))?;
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        out,
        flate2::Compression::default(),
    ));
    let top = format!("clockify-report-{name}");
    for (p, bytes) in &bundle.files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(now.as_second().max(0) as u64);
        header.set_cksum();
        tar.append_data(&mut header, format!("{top}/{p}"), bytes.as_slice())
            .map_err(|e| Error::Write(shown.clone(), e))?;
    }
    tar.into_inner()
        .and_then(|gz| gz.finish())
        .map_err(|e| Error::Write(shown.clone(), e))?;
    emit(&format!(
        "wrote {shown}: {} files{}\n",
        bundle.files.len(),
        if bundle.notes.is_empty() {
            String::new()
        } else {
            format!(
                " ({} parts not collected: see README.txt)",
                bundle.notes.len()
            )
        }
    ));
    Ok(())
}

async fn run(cli: Cli) -> Result<(), Error> {
    match &cli.command {
        Command::Completion { shell } => {
            // Into a buffer first: clap_complete panics on a closed pipe; emit() does not.
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "kubectl-clockify", &mut script);
            emit(&String::from_utf8_lossy(&script));
            Ok(())
        }
        Command::Status {
            name,
            all_namespaces,
            output,
        } => {
            let (client, ns) = client(&cli).await?;
            status(client, &ns, name.as_deref(), *all_namespaces, *output).await
        }
        Command::Backup {
            name,
            wait,
            timeout,
        } => {
            let (client, ns) = client(&cli).await?;
            backup(client, &ns, name, *wait, *timeout).await
        }
        Command::Backups {
            name,
            output,
            timeout,
        } => {
            let (client, ns) = client(&cli).await?;
            backups(client, &ns, name, *output, *timeout).await
        }
        Command::Restore {
            name,
            from,
            yes,
            wait,
            timeout,
        } => {
            let (client, ns) = client(&cli).await?;
            restore(client, &ns, name, from, *yes, wait.then_some(*timeout)).await
        }
        Command::Report {
            name,
            file,
            operator_namespace,
        } => {
            let (client, ns) = client(&cli).await?;
            report(client, &ns, name, file.clone(), operator_namespace).await
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
