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

/// Kubernetes keeps at most this many bytes of a termination message.
const TERMINATION_MESSAGE_LIMIT: usize = 4096;

fn termination_message_raw(message: &str) {
    if let Some(path) = std::env::var_os("TERMINATION_MESSAGE_PATH")
        && let Err(e) = std::fs::write(&path, message)
    {
        tracing::warn!(error = %e, "cannot write the termination message");
    }
}

/// The catalogue as `kubectl clockify backups` reads it where the pod's logs cannot be read:
/// JSON lines, newest backup first, each with what a table shows (id, times, size, schema,
/// SHA-256), as many as fit in a termination message, the unfinished and unreadable ones while
/// room is left, then `{"listed": N, "omitted": M}`: how many backups there are, and how many
/// lines did not fit.
fn catalogue_message(
    newest_last: &[&addon_backup::Manifest],
    orphans: &[(String, i64)],
    unreadable: &[String],
) -> String {
    // Room for the last line, `{"listed":N,"omitted":M}`.
    const BUDGET: usize = TERMINATION_MESSAGE_LIMIT - 48;
    let mut out = String::new();
    let lines =
        newest_last
            .iter()
            .rev()
            .map(|m| {
                serde_json::json!({
                    "id": m.id,
                    "startedAt": rfc3339(m.started_at),
                    "finishedAt": rfc3339(m.finished_at),
                    "size": m.size,
                    "schemaVersion": m.schema_version,
                    "sha256": m.sha256,
                })
            })
            .chain(
                orphans
                    .iter()
                    .map(|(n, t)| serde_json::json!({"unfinished": n, "modified": t})),
            )
            .chain(unreadable.iter().map(
                |w| serde_json::json!({"unreadable": w.chars().take(300).collect::<String>()}),
            ))
            .map(|v| v.to_string());
    let total = newest_last.len() + orphans.len() + unreadable.len();
    let mut written = 0;
    for line in lines {
        if out.len() + line.len() + 1 > BUDGET {
            break;
        }
        out.push_str(&line);
        out.push('\n');
        written += 1;
    }
    out.push_str(
        &serde_json::json!({"listed": newest_last.len(), "omitted": total - written}).to_string(),
    );
    out.push('\n');
    out
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
            termination_message_raw(&catalogue_message(
                &mine,
                &listing.orphans,
                &listing.unreadable,
            ));
            if a.json {
                for m in &mine {
                    println!("{}", serde_json::to_string(m).unwrap_or_default());
                }
                for (name, modified) in &listing.orphans {
                    println!(
                        "{}",
                        serde_json::json!({"unfinished": name, "modified": modified})
                    );
                }
                for why in &listing.unreadable {
                    println!("{}", serde_json::json!({"unreadable": why}));
                }
                println!(
                    "{}",
                    serde_json::json!({"listed": mine.len(), "omitted": 0})
                );
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
            termination_message(&format!("cannot list backups: {e}"));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(n: usize) -> addon_backup::Manifest {
        let t =
            time::OffsetDateTime::from_unix_timestamp(1_780_000_000 + n as i64 * 86_400).unwrap();
        addon_backup::Manifest {
            format: "clockify-addons-backup/v1".into(),
            id: format!("20260101T000000.000Z-universal-webhook-nightly-{n:04}"),
            addon: "universal-webhook".into(),
            started_at: t,
            finished_at: t + time::Duration::seconds(3),
            schema_version: Some(7),
            database: "uw".into(),
            server_version: "15.8".into(),
            pg_dump_version: "pg_dump (PostgreSQL) 15.8".into(),
            dump: format!("{n}.dump"),
            size: 52_311 + n as u64,
            sha256: "ab".repeat(32),
            dump_format: "custom".into(),
        }
    }

    #[test]
    fn the_catalogue_fits_a_termination_message_newest_first() {
        let few: Vec<_> = (0..3).map(manifest).collect();
        let refs: Vec<_> = few.iter().collect();
        let text = catalogue_message(&refs, &[("x.dump".into(), 1)], &["bad.json: eof".into()]);
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 6, "{text}");
        assert_eq!(lines[5], serde_json::json!({"listed": 3, "omitted": 0}));
        assert_eq!(lines[0]["id"], few[2].id, "newest first");
        assert_eq!(lines[0]["size"], 52_313);
        assert_eq!(lines[0]["schemaVersion"], 7);
        assert_eq!(lines[3]["unfinished"], "x.dump");
        assert_eq!(lines[4]["unreadable"], "bad.json: eof");

        let many: Vec<_> = (0..100).map(manifest).collect();
        let refs: Vec<_> = many.iter().collect();
        let text = catalogue_message(&refs, &[], &[]);
        assert!(text.len() <= TERMINATION_MESSAGE_LIMIT, "{}", text.len());
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let kept = lines.len() - 1;
        assert!(kept >= 10, "only {kept} fit");
        assert_eq!(lines[0]["id"], many[99].id);
        assert_eq!(lines[kept]["listed"], 100);
        assert_eq!(lines[kept]["omitted"], 100 - kept);
    }
}
