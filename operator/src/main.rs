//! `clockify-operator`: run the controller, print the CRD, or render a ClockifyAddon's objects.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::{Parser, Subcommand};
use clockify_operator::admin::{self, AdminState};
use clockify_operator::controller::{self, Options, Scope};
use clockify_operator::metrics::Metrics;
use clockify_operator::plan::Capabilities;
use clockify_operator::render;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "clockify-operator",
    version,
    about = "Runs Clockify add-ons on Kubernetes from ClockifyAddon resources."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller against the cluster of KUBECONFIG or the in-cluster service account.
    Run {
        /// Watch only this namespace (the operator then needs only a Role there).
        #[arg(long, env = "WATCH_NAMESPACE")]
        namespace: Option<String>,
        /// Address of the admin port (/live, /ready, /metrics).
        #[arg(long, env = "ADMIN_ADDR", default_value = "0.0.0.0:8080")]
        admin_addr: SocketAddr,
        /// ClockifyAddons reconciled at once.
        #[arg(long, env = "CONCURRENCY", default_value_t = 4)]
        concurrency: u16,
        /// Run without leader election (one replica only).
        #[arg(long)]
        no_leader_election: bool,
        /// Name of the leader-election Lease.
        #[arg(long, env = "LEASE_NAME", default_value = "clockify-operator")]
        lease_name: String,
        /// Namespace of the Lease; defaults to the watched namespace, then POD_NAMESPACE, then "default".
        #[arg(long, env = "LEASE_NAMESPACE")]
        lease_namespace: Option<String>,
        /// This replica's identity in the Lease; defaults to POD_NAME, then HOSTNAME.
        #[arg(long, env = "POD_NAME")]
        identity: Option<String>,
        /// Log as JSON (default) or text.
        #[arg(long, env = "LOG_FORMAT", default_value = "json")]
        log_format: String,
    },
    /// Print the ClockifyAddon CustomResourceDefinition as YAML.
    Crd,
    /// Print every object the operator would create for the ClockifyAddons in a file, in apply order.
    Render {
        #[arg(short = 'f', long = "file")]
        file: std::path::PathBuf,
        /// Render as if the cluster did not serve monitoring.coreos.com/v1 ServiceMonitor.
        #[arg(long)]
        no_service_monitor_api: bool,
        /// Render as if the cluster did not serve gateway.networking.k8s.io/v1 HTTPRoute (a
        /// named Gateway then falls back to the Ingress).
        #[arg(long)]
        no_gateway_api: bool,
        /// Render as if the cluster served keda.sh/v1alpha1 ScaledObject (autoscaled add-ons
        /// then scale on their backlog instead of a CPU HorizontalPodAutoscaler).
        #[arg(long)]
        keda: bool,
    },
    /// Print the tier profiles as a Markdown table.
    Tiers,
    /// Print the CRD reference (docs/crd-reference.md) as Markdown.
    CrdReference,
    /// Print the operator's RBAC rules (what the Helm chart and the kustomize base grant).
    Rbac {
        /// The leader-election rules instead.
        #[arg(long)]
        lease: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Crd => {
            print!("{}", clockify_operator::crd_yaml()?);
            Ok(())
        }
        Command::Tiers => {
            print!("{}", clockify_operator::tier::markdown_table());
            Ok(())
        }
        Command::CrdReference => {
            print!("{}", clockify_operator::reference::markdown());
            Ok(())
        }
        Command::Rbac { lease } => {
            use clockify_operator::rbac;
            print!(
                "{}",
                rbac::rules_yaml(if lease {
                    rbac::LEASE_RULES
                } else {
                    rbac::RULES
                })
            );
            Ok(())
        }
        Command::Render {
            file,
            no_service_monitor_api,
            no_gateway_api,
            keda,
        } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            let addons = render::parse(&text)?;
            print!(
                "{}",
                render::render(
                    &addons,
                    Capabilities {
                        service_monitor: !no_service_monitor_api,
                        http_route: !no_gateway_api,
                        scaled_object: keda,
                    }
                )?
            );
            Ok(())
        }
        Command::Run {
            namespace,
            admin_addr,
            concurrency,
            no_leader_election,
            lease_name,
            lease_namespace,
            identity,
            log_format,
        } => {
            init_logs(&log_format);
            rustls::crypto::ring::default_provider()
                .install_default()
                .ok();
            let client = kube::Client::try_default()
                .await
                .map_err(|e| anyhow::anyhow!("cannot build a Kubernetes client: {e}"))?;
            let identity = identity
                .or_else(|| std::env::var("HOSTNAME").ok())
                .unwrap_or_else(|| format!("clockify-operator-{}", std::process::id()));
            let lease_ns = lease_namespace
                .or_else(|| namespace.clone())
                .or_else(|| std::env::var("POD_NAMESPACE").ok())
                .unwrap_or_else(|| "default".to_owned());
            let opts = Options {
                scope: namespace
                    .clone()
                    .map(Scope::Namespace)
                    .unwrap_or(Scope::Cluster),
                concurrency: concurrency.max(1),
                lease: (!no_leader_election).then_some((lease_ns, lease_name)),
                identity,
            };
            let metrics = Metrics::new();
            let ready = Arc::new(AtomicBool::new(false));
            let shutdown = CancellationToken::new();
            let listener = tokio::net::TcpListener::bind(admin_addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {admin_addr}: {e}"))?;
            let admin = tokio::spawn({
                let router = admin::router(AdminState {
                    metrics: metrics.clone(),
                    ready: ready.clone(),
                });
                let shutdown = shutdown.clone();
                async move {
                    let _ = axum::serve(listener, router)
                        .with_graceful_shutdown(async move { shutdown.cancelled().await })
                        .await;
                }
            });
            tracing::info!(scope = ?opts.scope, identity = %opts.identity, %admin_addr, "clockify-operator starting");
            let signal = tokio::spawn({
                let shutdown = shutdown.clone();
                async move {
                    shutdown_signal().await;
                    shutdown.cancel();
                }
            });
            controller::run(client, opts, metrics, ready, shutdown.clone()).await;
            shutdown.cancel();
            signal.abort();
            let _ = admin.await;
            tracing::info!("clockify-operator stopped");
            Ok(())
        }
    }
}

fn init_logs(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,kube=warn".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == "text" {
        builder.try_init()
    } else {
        builder.json().flatten_event(true).try_init()
    };
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
