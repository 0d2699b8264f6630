//! `kubectl clockify`: the ClockifyAddons of a cluster on day two.
//!
//!     kubectl clockify status [NAME] [-A] [-o table|json|yaml]
//!     kubectl clockify backup NAME [--wait] [--timeout 30m]
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
                emit(&format!(
                    "backup {} stored at {}: {}\n",
                    b.backup_id.as_deref().unwrap_or("?"),
                    b.location.as_deref().unwrap_or("?"),
                    b.size_bytes.map(plugin::size).unwrap_or_default()
                ));
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

async fn run(cli: Cli) -> Result<(), Error> {
    match &cli.command {
        Command::Completion { shell } => {
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "kubectl-clockify",
                &mut std::io::stdout(),
            );
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
