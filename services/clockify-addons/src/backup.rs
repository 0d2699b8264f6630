//! `backup`, `restore` and `backups`: the command-line side of `addon_backup`. The database
//! comes from DATABASE_URL only (never a flag: command lines are visible to other processes).

use std::path::PathBuf;
use std::process::ExitCode;

use addon_backup::{
    BackupOptions, Destination, Policy, RestoreOptions, RestoreOutcome, S3Options, Tools,
    throughput,
};
use addon_core::config::LogFormat;
use addon_core::telemetry;
use clap::Args;

use crate::Addon;

/// Backup stored, but retention could not prune.
const EXIT_PRUNE_FAILED: u8 = 3;

#[derive(Args)]
pub struct BackupArgs {
    pub addon: Addon,
    /// Where backups go: s3://bucket/prefix, file:///directory or a directory. S3 credentials
    /// come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, the endpoint of an S3-compatible
    /// service from BACKUP_S3_ENDPOINT, the region from AWS_REGION.
    #[arg(long = "to", env = "BACKUP_DESTINATION", value_name = "DESTINATION")]
    pub destination: String,
    /// Keep the newest N backups of this add-on.
    #[arg(long, env = "BACKUP_KEEP_LAST", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_last: Option<u32>,
    /// Delete backups older than this many days.
    #[arg(long, env = "BACKUP_MAX_AGE_DAYS", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_age_days: Option<u32>,
    /// Appended to the backup id, such as the Job's name.
    #[arg(long, env = "BACKUP_LABEL")]
    pub label: Option<String>,
    /// pg_dump's compression level, 0-9.
    #[arg(long, env = "BACKUP_COMPRESSION", value_parser = clap::value_parser!(u8).range(0..=9))]
    pub compress: Option<u8>,
}

#[derive(Args)]
pub struct RestoreArgs {
    pub addon: Addon,
    /// `latest`, a backup id (see `backups`), or the path or URL of a backup's .json manifest
    /// or .dump.
    #[arg(long)]
    pub from: String,
    /// Where `latest` and ids are looked up.
    #[arg(long, env = "BACKUP_DESTINATION")]
    pub destination: Option<String>,
    /// Replace the contents of a database that is not empty.
    #[arg(long)]
    pub force: bool,
    /// Names this restore: the database records it (in the restore's own transaction), and a
    /// restore with the same id later changes nothing and says when it was applied.
    #[arg(long)]
    pub request_id: Option<String>,
    /// Where the dump is staged while it is verified.
    #[arg(long, env = "BACKUP_WORK_DIR")]
    pub work_dir: Option<PathBuf>,
}

#[derive(Args)]
pub struct ListArgs {
    pub addon: Addon,
    #[arg(long, env = "BACKUP_DESTINATION")]
    pub destination: String,
    /// Print the manifests as JSON lines.
    #[arg(long)]
    pub json: bool,
}

pub enum Job {
    Backup(BackupArgs),
    Restore(RestoreArgs),
    List(ListArgs),
}

pub fn main(job: Job) -> ExitCode {
    telemetry::init(match std::env::var("LOG_FORMAT").as_deref() {
        Ok("json") => LogFormat::Json,
        _ => LogFormat::Text,
    });
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
    // object_store's S3 client speaks TLS through rustls with the ring provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    runtime.block_on(async {
        match job {
            Job::Backup(a) => backup(a).await,
            Job::Restore(a) => restore(a).await,
            Job::List(a) => list(a).await,
        }
    })
}

/// Writes the outcome where Kubernetes reads a container's termination message (the operator
/// sets TERMINATION_MESSAGE_PATH on its backup and restore Jobs and reports it in status).
fn termination_message(message: &str) {
    if let Some(path) = std::env::var_os("TERMINATION_MESSAGE_PATH") {
        let mut m: String = message.chars().take(1000).collect();
        m.push('\n');
        if let Err(e) = std::fs::write(&path, m) {
            tracing::warn!(error = %e, "cannot write the termination message");
        }
    }
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

fn database_url() -> Result<String, String> {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| "DATABASE_URL is required: the database to back up or restore into".into())
}

async fn backup(a: BackupArgs) -> ExitCode {
    let slug = a.addon.definition().slug;
    let s3 = S3Options::from_env();
    let result = async {
        let url = database_url().map_err(addon_backup::Error::Refused)?;
        let destination = Destination::parse(&a.destination, &s3)?;
        let retention = Policy {
            keep_last: a.keep_last,
            max_age: a.max_age_days.map(|d| time::Duration::days(i64::from(d))),
        };
        tracing::info!(addon = slug, destination = %destination, retention = %retention.describe(), "backup started");
        addon_backup::backup(BackupOptions {
            database_url: &url,
            addon: slug,
            destination: &destination,
            label: a.label.as_deref(),
            retention,
            compress: a.compress,
            tools: &Tools::from_env(),
        })
        .await
        .map(|r| (r, destination))
    }
    .await;
    match result {
        Ok((r, destination)) => {
            let m = &r.manifest;
            tracing::info!(
                outcome = "succeeded",
                addon = slug,
                id = %m.id,
                destination = %destination,
                size_bytes = m.size,
                sha256 = %m.sha256,
                schema_version = m.schema_version,
                duration_ms = r.duration.as_millis() as u64,
                mib_per_second = format!("{:.1}", throughput(m.size, r.duration)),
                pruned = r.deleted.len(),
                "backup stored"
            );
            for id in &r.deleted {
                tracing::info!(id = %id, "retention deleted backup");
            }
            for name in &r.orphans_removed {
                tracing::info!(object = %name, "deleted an unfinished dump");
            }
            match r.retention_error {
                None => {
                    termination_message(&format!("backup {} stored: {} bytes", m.id, m.size));
                    ExitCode::SUCCESS
                }
                Some(e) => {
                    tracing::error!(outcome = "pruning failed", id = %m.id, error = %e, "backup stored, but retention failed");
                    termination_message(&format!(
                        "backup {} stored, but retention failed: {e}",
                        m.id
                    ));
                    ExitCode::from(EXIT_PRUNE_FAILED)
                }
            }
        }
        Err(e) => {
            tracing::error!(outcome = "failed", addon = slug, error = %e, "backup failed; nothing new was kept");
            termination_message(&format!("backup failed: {e}"));
            ExitCode::FAILURE
        }
    }
}

async fn restore(a: RestoreArgs) -> ExitCode {
    let def = a.addon.definition();
    let s3 = S3Options::from_env();
    let result = async {
        let url = database_url().map_err(addon_backup::Error::Refused)?;
        let destination = match &a.destination {
            Some(d) => Some(Destination::parse(d, &s3)?),
            None => None,
        };
        addon_backup::restore(RestoreOptions {
            database_url: &url,
            request_id: a.request_id.as_deref(),
            addon: def.slug,
            destination: destination.as_ref(),
            from: &a.from,
            force: a.force,
            work_dir: a.work_dir.clone(),
            s3: &s3,
            tools: &Tools::from_env(),
        })
        .await
    }
    .await;
    match result {
        Ok(RestoreOutcome::AlreadyApplied(p)) => {
            let message = format!(
                "restore {} was already applied to this database at {} (backup {}); nothing was restored",
                p.request_id, p.restored_at, p.backup_id
            );
            tracing::info!(outcome = "already-applied", addon = def.slug, request_id = %p.request_id, backup = %p.backup_id, restored_at = %p.restored_at, "restore skipped");
            println!("{message}");
            termination_message(&message);
            ExitCode::SUCCESS
        }
        Ok(RestoreOutcome::Restored(r)) => {
            let m = &r.manifest;
            tracing::info!(
                outcome = "succeeded",
                addon = def.slug,
                id = %m.id,
                database = %r.database,
                size_bytes = m.size,
                tables = r.tables,
                replaced = r.replaced,
                schema_version = r.schema_version,
                fetch_ms = r.download.as_millis() as u64,
                apply_ms = r.apply.as_millis() as u64,
                "restore finished"
            );
            println!(
                "restored backup {} ({}, taken {}, schema version {}, {:.1} MiB, SHA-256 verified)",
                m.id,
                m.addon,
                rfc3339(m.started_at),
                m.schema_version.map_or("none".into(), |v| v.to_string()),
                m.size as f64 / 1_048_576.0
            );
            println!("  from      {}", r.source);
            println!(
                "  into      database {} ({})",
                r.database,
                if r.replaced {
                    "its previous contents were replaced"
                } else {
                    "it was empty"
                }
            );
            println!(
                "  tables    {} with data; fetched and verified in {:.1} s, applied in {:.1} s",
                r.tables,
                r.download.as_secs_f64(),
                r.apply.as_secs_f64()
            );
            let required = def.migrations.latest_version();
            if r.schema_version.unwrap_or(0) < required {
                println!(
                    "  next      run `clockify-addons migrate {}`: this release needs schema version {required}",
                    def.slug
                );
            }
            termination_message(&format!(
                "restored backup {} ({} tables) into {}{}",
                m.id,
                r.tables,
                r.database,
                a.request_id
                    .as_deref()
                    .map(|id| format!("; recorded as restore {id}"))
                    .unwrap_or_default()
            ));
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(outcome = if e.is_refusal() { "refused" } else { "failed" }, addon = def.slug, error = %e, "restore did not run");
            termination_message(&format!("restore failed: {e}"));
            ExitCode::FAILURE
        }
    }
}

async fn list(a: ListArgs) -> ExitCode {
    let slug = a.addon.definition().slug;
    let listed = async {
        let d = Destination::parse(&a.destination, &S3Options::from_env())?;
        d.list().await.map(|l| (d, l))
    }
    .await;
    match listed {
        Ok((d, listing)) => {
            let mine: Vec<_> = listing.backups.iter().filter(|m| m.addon == slug).collect();
            if a.json {
                for m in &mine {
                    println!("{}", serde_json::to_string(m).unwrap_or_default());
                }
            } else {
                println!("{} backups of {slug} in {d}", mine.len());
                for m in &mine {
                    println!(
                        "  {}  {:>10.1} MiB  schema {}  sha256 {}",
                        m.id,
                        m.size as f64 / 1_048_576.0,
                        m.schema_version.map_or("-".into(), |v| v.to_string()),
                        &m.sha256[..12]
                    );
                }
                for (name, _) in &listing.orphans {
                    println!("  unfinished (no manifest): {name}");
                }
                for why in &listing.unreadable {
                    println!("  unreadable manifest: {why}");
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot list backups");
            ExitCode::FAILURE
        }
    }
}
