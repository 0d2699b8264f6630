//! `clockify-addons`: serve, migrate, back up and restore, run locally, and sign development
//! tokens.

mod backup;
mod dev;

use std::process::ExitCode;

// Its `memcpy` and `memmove` replace musl's (linked for their symbols alone).
#[cfg(all(target_arch = "x86_64", target_env = "musl"))]
use musl_memcpy as _;

use addon_core::addon::AddonDefinition;
use addon_core::auth::TokenKind;
use addon_core::config::{CoreConfig, Env, LogFormat};
use addon_core::db::Db;
use addon_core::{App, telemetry};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "clockify-addons",
    version,
    about = "Clockify add-on services: API Studio, Universal Webhook and the reference add-on."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Addon {
    ApiStudio,
    UniversalWebhook,
    Reference,
}

impl Addon {
    /// Every add-on, in the order `dev` gives them ports (8000, 8001, 8002).
    const ALL: [Addon; 3] = [Addon::ApiStudio, Addon::UniversalWebhook, Addon::Reference];

    fn definition(self) -> &'static AddonDefinition {
        match self {
            Self::ApiStudio => &api_studio::DEFINITION,
            Self::UniversalWebhook => &universal_webhook::DEFINITION,
            Self::Reference => &reference::DEFINITION,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    Webhook,
    Lifecycle,
    User,
    Installation,
}

#[derive(Subcommand)]
enum Command {
    /// Serve one add-on, configured from environment variables (see the README's table).
    Serve { addon: Addon },
    /// Apply the add-on's pending database migrations (DATABASE_URL) under a lock, then exit.
    Migrate { addon: Addon },
    /// Run the add-ons locally, API Studio on http://localhost:8000, Universal Webhook on 8001
    /// and the reference add-on on 8002, each with its own embedded SQLite database, signature
    /// verification on, and a development key pair (see `sign`).
    Dev {
        /// Where the SQLite databases and development keys live.
        #[arg(long, default_value = ".clockify-dev")]
        data_dir: std::path::PathBuf,
        /// The first add-on's port; the others follow.
        #[arg(long, default_value_t = 8000)]
        port: u16,
        /// Run only this add-on (on --port); repeat for several.
        #[arg(long, value_enum)]
        addon: Vec<Addon>,
    },
    /// Print a token signed with the development key that `dev` accepts.
    Sign {
        #[arg(long)]
        workspace: String,
        #[arg(long, value_enum)]
        kind: Kind,
        #[arg(long, value_enum, default_value = "api-studio")]
        addon: Addon,
        /// The `backendUrl` claim.
        #[arg(long, default_value = "https://api.clockify.me/api")]
        api_url: String,
        #[arg(long, default_value = ".clockify-dev")]
        data_dir: std::path::PathBuf,
    },
    /// Back up the add-on's PostgreSQL database (DATABASE_URL): pg_dump in custom format streamed
    /// to a directory or S3-compatible storage with a manifest (time, add-on, schema version,
    /// size, SHA-256), then retention. Exit code 0: stored (and pruned); 1: failed, nothing
    /// new kept; 3: stored, but pruning failed.
    Backup(backup::BackupArgs),
    /// Restore a backup into DATABASE_URL after checking its size and SHA-256; refuses a
    /// database that is not empty unless --force. All or nothing: a failure leaves the database
    /// as it was. Run `migrate` afterwards when the backup's schema is older.
    Restore(backup::RestoreArgs),
    /// List the backups in a destination, oldest first.
    Backups(backup::ListArgs),
    /// Re-encrypt every stored credential of the add-on's database (DATABASE_URL) under
    /// TOKEN_ENCRYPTION_KEY, reading older values with TOKEN_ENCRYPTION_PREVIOUS_KEYS; in
    /// batches, one transaction each, safe to repeat and to run while the add-on serves. Exit
    /// code 0: everything is under the new key (the previous keys can be removed); 1: some
    /// values could not be opened (listed by table and row).
    RotateKey {
        addon: Addon,
        /// Rows per transaction.
        #[arg(long, default_value_t = 500)]
        batch: u32,
    },
    /// Print the environment variable reference as a Markdown table.
    ConfigTable,
    /// Print every SQL statement the add-on issues (its SQL contract); --write stores it as
    /// migrations/<addon>/contract/<latest migration>.sql.
    SqlContract {
        addon: Addon,
        #[arg(long)]
        write: bool,
    },
    /// Generate the API explorer's catalogue from Clockify's OpenAPI document; --write stores
    /// it as services/addon-core/catalog/clockify-api.json (run from the repository's root).
    ExplorerCatalog {
        /// Clockify's OpenAPI document (../shared/clockify/clockify-api-v1.openapi.json).
        #[arg(long)]
        openapi: std::path::PathBuf,
        /// Clockify's webhook body samples (../shared/clockify/webhook-samples): the flow
        /// builder's event fields, stored as services/addon-core/catalog/webhook-events.json.
        #[arg(long)]
        webhook_samples: Option<std::path::PathBuf>,
        #[arg(long)]
        write: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Backup and restore report their outcome in the exit code (see `backup`).
    let command = match cli.command {
        Command::Backup(a) => return backup::main(backup::Job::Backup(a)),
        Command::Restore(a) => return backup::main(backup::Job::Restore(a)),
        Command::Backups(a) => return backup::main(backup::Job::List(a)),
        other => other,
    };
    let cli = Cli { command };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Backup(_) | Command::Restore(_) | Command::Backups(_) => {
            anyhow::bail!("backup commands run through backup::main")
        }
        Command::Serve { addon } => serve(addon.definition(), Env::from_process()).await,
        Command::Migrate { addon } => migrate(addon.definition(), &Env::from_process()).await,
        Command::RotateKey { addon, batch } => {
            rotate_key(addon.definition(), &Env::from_process(), batch).await
        }
        Command::Dev {
            data_dir,
            port,
            addon,
        } => {
            let addons = if addon.is_empty() {
                Addon::ALL.to_vec()
            } else {
                addon
            };
            dev_serve(&data_dir, port, &addons).await
        }
        Command::Sign {
            workspace,
            kind,
            addon,
            api_url,
            data_dir,
        } => {
            let token = dev::sign(
                &data_dir,
                addon.definition(),
                &workspace,
                kind.into(),
                &api_url,
            )?;
            println!("{token}");
            Ok(())
        }
        Command::ConfigTable => {
            print!("{}", addon_core::config::markdown_table());
            Ok(())
        }
        Command::ExplorerCatalog {
            openapi,
            webhook_samples,
            write,
        } => {
            use addon_core::explorer;
            let mut outputs = vec![(
                explorer::CATALOG_PATH,
                explorer::generate_file(&openapi).map_err(anyhow::Error::msg)?,
            )];
            if let Some(dir) = webhook_samples {
                outputs.push((
                    explorer::EVENTS_PATH,
                    explorer::generate_events(&dir).map_err(anyhow::Error::msg)?,
                ));
            }
            for (path, text) in outputs {
                if write {
                    std::fs::write(path, text)?;
                    println!("wrote {path}");
                } else {
                    print!("{text}");
                }
            }
            Ok(())
        }
        Command::SqlContract { addon, write } => {
            let def = addon.definition();
            let text = addon_core::store::contract::render(
                def.slug,
                def.migrations.latest_version(),
                &def.contract(),
            );
            if write {
                let path = std::path::PathBuf::from(def.contract_path());
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                std::fs::write(&path, text)?;
                println!("wrote {}", path.display());
            } else {
                print!("{text}");
            }
            Ok(())
        }
    }
}

impl From<Kind> for TokenKind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Webhook => TokenKind::Webhook,
            Kind::Lifecycle => TokenKind::Lifecycle,
            Kind::User => TokenKind::User,
            Kind::Installation => TokenKind::Installation,
        }
    }
}

async fn serve(def: &'static AddonDefinition, env: Env) -> anyhow::Result<()> {
    let config = CoreConfig::from_env(&env, &def.defaults)?;
    telemetry::init(config.log_format);
    let app = App::build(def, config).await?;
    app.run(addon_core::http::serve::shutdown_signal()).await?;
    Ok(())
}

/// Every chosen add-on in this one process, on consecutive ports, until Ctrl-C or SIGTERM.
async fn dev_serve(data_dir: &std::path::Path, port: u16, addons: &[Addon]) -> anyhow::Result<()> {
    if addons.len() > 1 && std::env::var_os("DATABASE_URL").is_some() {
        anyhow::bail!(
            "DATABASE_URL names one database, but each add-on needs its own: unset it (each add-on then gets a SQLite file in {}) or run one add-on with --addon",
            data_dir.display()
        );
    }
    let mut apps = Vec::new();
    for (i, addon) in addons.iter().enumerate() {
        let def = addon.definition();
        let port = port.checked_add(i as u16).ok_or_else(|| {
            anyhow::anyhow!("--port {port}: no room for {} add-ons", addons.len())
        })?;
        let env = dev::environment(data_dir, def, port)?;
        let config = CoreConfig::from_env(&env, &def.defaults)
            .map_err(|e| anyhow::anyhow!("{}: {e}", def.slug))?;
        if i == 0 {
            telemetry::init(config.log_format);
        }
        let app = App::build(def, config)
            .await
            .map_err(|e| anyhow::anyhow!("{}: {e}", def.slug))?;
        println!(
            "{} (development) on http://localhost:{port}  (manifest: /manifest, tokens: clockify-addons sign --addon {} ...)",
            def.defaults.name, def.slug
        );
        apps.push(app);
    }
    println!("  data: {}", data_dir.display());
    let stop = tokio_util::sync::CancellationToken::new();
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            addon_core::http::serve::shutdown_signal().await;
            stop.cancel();
        });
    }
    let mut running = tokio::task::JoinSet::new();
    for app in apps {
        running.spawn(app.run(stop.clone().cancelled_owned()));
    }
    let mut result = Ok(());
    while let Some(done) = running.join_next().await {
        // One add-on stopping (or failing) stops the others.
        stop.cancel();
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => result = Err(e.into()),
            Err(e) => result = Err(anyhow::anyhow!("an add-on task failed: {e}")),
        }
    }
    result
}

/// Needs only DATABASE_URL: the migration Job carries no other secret.
async fn rotate_key(def: &'static AddonDefinition, env: &Env, batch: u32) -> anyhow::Result<()> {
    telemetry::init(if env.get("LOG_FORMAT") == Some("json") {
        LogFormat::Json
    } else {
        LogFormat::Text
    });
    let config = addon_core::config::CoreConfig::from_env(env, &def.defaults)?;
    let ring = config.keyring().ok_or_else(|| {
        anyhow::anyhow!("TOKEN_ENCRYPTION_KEY is required: the key to re-encrypt under")
    })?;
    let db = Db::connect(config.database_url(), 2).await?;
    let status = def.migrations.status(&db).await?;
    if !status.is_current() {
        anyhow::bail!(
            "{}: the database schema is behind this release; run `clockify-addons migrate {}` first",
            def.slug,
            def.slug
        );
    }
    let started = std::time::Instant::now();
    let report = addon_core::store::rekey::rotate(&db, &ring, batch).await?;
    db.close().await;
    println!(
        "{}: examined {} stored values, re-encrypted {} under key {} in {:.1} s",
        def.slug,
        report.examined,
        report.reencrypted,
        ring.primary_id(),
        started.elapsed().as_secs_f64()
    );
    if report.failed.is_empty() {
        println!(
            "{}: every stored value is under key {}; TOKEN_ENCRYPTION_PREVIOUS_KEYS can be emptied",
            def.slug,
            ring.primary_id()
        );
        Ok(())
    } else {
        for f in &report.failed {
            println!("{}: cannot re-encrypt {f}", def.slug);
        }
        anyhow::bail!(
            "{} stored values could not be opened with keys {:?}",
            report.failed.len(),
            ring.key_ids()
        )
    }
}

async fn migrate(def: &'static AddonDefinition, env: &Env) -> anyhow::Result<()> {
    telemetry::init(if env.get("LOG_FORMAT") == Some("json") {
        LogFormat::Json
    } else {
        LogFormat::Text
    });
    let url = env
        .get("DATABASE_URL")
        .ok_or_else(|| anyhow::anyhow!("DATABASE_URL is required: the database to migrate"))?;
    let db = Db::connect(url, 1).await?;
    let report = def
        .migrations
        .migrate(&db, url)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e}", def.slug))?;
    db.close().await;
    if report.applied.is_empty() {
        println!(
            "{}: database schema is up to date (version {})",
            def.slug,
            report.current.unwrap_or(0)
        );
    } else {
        for (version, description) in &report.applied {
            println!("{}: applied {version} {description}", def.slug);
        }
        println!(
            "{}: database schema is now at version {}",
            def.slug,
            report.current.unwrap_or(0)
        );
    }
    Ok(())
}
