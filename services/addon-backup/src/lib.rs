//! Backups of an add-on's PostgreSQL database.
//!
//! - [`backup`]: `pg_dump --format=custom` streamed (never staged on disk) to a [`Destination`]
//!   while its SHA-256 and size are computed; the manifest is written only once the dump is
//!   stored, so a listed backup is always complete. Retention runs only after that.
//! - [`restore`]: fetches the dump, refuses it unless its size and SHA-256 match the manifest
//!   (and pg_restore can read it), then applies it in one transaction: a failure leaves the
//!   database exactly as it was.

pub mod destination;
pub mod manifest;
pub mod pg;
pub mod retention;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::StreamExt;
use object_store::buffered::BufWriter;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub use destination::{Destination, Listing, S3Options};
pub use manifest::Manifest;
pub use pg::Tools;
pub use retention::Policy;

use manifest::{DUMP_SUFFIX, MANIFEST_SUFFIX};

/// Unfinished dumps (no manifest) older than this are removed by the next successful backup.
pub const ORPHAN_AGE: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("backup destination {0}")]
    Destination(String),
    #[error("{0}")]
    Database(String),
    #[error("{0}")]
    Tool(String),
    #[error("pg_dump failed ({status}): {stderr}")]
    Dump { status: String, stderr: String },
    #[error("storage: {0}")]
    Storage(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("the backup is unusable: {0}; nothing was restored")]
    Corrupt(String),
    #[error("{0}")]
    Refused(String),
    #[error("the restore failed and was rolled back (the database is as it was): {0}")]
    Restore(String),
    #[error("{0}")]
    Io(String),
}

impl Error {
    /// Whether the caller asked for something that cannot be done (not a failure of the system).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::Refused(_) | Self::Corrupt(_) | Self::NotFound(_)
        )
    }
}

fn io(what: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Io(format!("{what}: {e}"))
}

pub struct BackupOptions<'a> {
    pub database_url: &'a str,
    /// The add-on's slug, recorded in the manifest and checked by restore.
    pub addon: &'a str,
    pub destination: &'a Destination,
    /// Appended to the id, such as the Job's name.
    pub label: Option<&'a str>,
    pub retention: Policy,
    /// pg_dump's --compress level (0-9); pg_dump's default when unset.
    pub compress: Option<u8>,
    pub tools: &'a Tools,
}

#[derive(Debug)]
pub struct BackupReport {
    pub manifest: Manifest,
    pub duration: Duration,
    /// Ids of backups retention deleted.
    pub deleted: Vec<String>,
    /// Unfinished dumps removed.
    pub orphans_removed: Vec<String>,
    /// The backup is stored, but pruning failed with this.
    pub retention_error: Option<Error>,
}

/// Chunk size of multipart uploads (S3 needs at least 5 MiB per part).
const PART_SIZE: usize = 16 * 1024 * 1024;

pub async fn backup(o: BackupOptions<'_>) -> Result<BackupReport, Error> {
    let target = pg::Target::parse(o.database_url)?;
    let pg_dump_version = o.tools.version("pg_dump").await?;
    let facts = pg::facts(o.database_url).await?;
    let started_at = OffsetDateTime::now_utc();
    let clock = Instant::now();
    let id = manifest::backup_id(started_at, o.addon, o.label);
    let dump_name = format!("{id}{DUMP_SUFFIX}");

    let mut cmd = target.command(o.tools, "pg_dump");
    cmd.arg("--format=custom")
        .arg("--no-password")
        .arg(format!("--dbname={}", target.url_without_password))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(level) = o.compress {
        cmd.arg(format!("--compress={level}"));
    }
    let mut child = pg::spawn(cmd, "pg_dump")?;
    let stderr = pg::capture_stderr(&mut child);
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| Error::Tool("pg_dump has no stdout".into()))?;
    let mut writer = BufWriter::with_capacity(
        o.destination.store().clone(),
        o.destination.path(&dump_name),
        PART_SIZE,
    )
    .with_max_concurrency(4);
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let mut buf = vec![0u8; 1 << 20];
    let copied: Result<(), Error> = async {
        loop {
            let n = stdout
                .read(&mut buf)
                .await
                .map_err(io("reading pg_dump's output"))?;
            if n == 0 {
                return Ok(());
            }
            hasher.update(&buf[..n]);
            size += n as u64;
            writer.write_all(&buf[..n]).await.map_err(|e| {
                Error::Storage(format!("writing {dump_name} to {}: {e}", o.destination))
            })?;
        }
    }
    .await;
    let status = child.wait().await.map_err(io("waiting for pg_dump"))?;
    let stderr = stderr.await.unwrap_or_default();
    if let Err(e) = copied {
        let _ = child.kill().await;
        let _ = writer.abort().await;
        return Err(e);
    }
    if !status.success() {
        let _ = writer.abort().await;
        return Err(Error::Dump {
            status: status.to_string(),
            stderr: pg::redact(&stderr, o.database_url),
        });
    }
    writer
        .shutdown()
        .await
        .map_err(|e| Error::Storage(format!("storing {dump_name} in {}: {e}", o.destination)))?;
    let manifest = Manifest {
        format: manifest::FORMAT.to_owned(),
        id: id.clone(),
        addon: o.addon.to_owned(),
        started_at,
        finished_at: OffsetDateTime::now_utc(),
        schema_version: facts.schema_version,
        database: target.database.clone(),
        server_version: facts.server_version,
        pg_dump_version,
        dump: dump_name,
        size,
        sha256: hex::encode(hasher.finalize()),
        dump_format: "custom".to_owned(),
    };
    o.destination.put_manifest(&manifest).await?;
    let duration = clock.elapsed();
    let mut report = BackupReport {
        manifest,
        duration,
        deleted: Vec::new(),
        orphans_removed: Vec::new(),
        retention_error: None,
    };
    if let Err(e) = prune(&o, &mut report).await {
        report.retention_error = Some(e);
    }
    Ok(report)
}

/// Retention, after a backup succeeded: the policy over this add-on's backups, and unfinished
/// dumps older than [`ORPHAN_AGE`].
async fn prune(o: &BackupOptions<'_>, report: &mut BackupReport) -> Result<(), Error> {
    let listing = o.destination.list().await?;
    let now = OffsetDateTime::now_utc();
    let mine: Vec<&Manifest> = listing
        .backups
        .iter()
        .filter(|m| m.addon == o.addon)
        .collect();
    let entries: Vec<retention::Entry> = mine
        .iter()
        .map(|m| retention::Entry {
            id: m.id.clone(),
            finished_at: m.finished_at,
        })
        .collect();
    for id in retention::to_delete(&entries, o.retention, &report.manifest.id, now) {
        if let Some(m) = mine.iter().find(|m| m.id == id) {
            o.destination.delete(m).await?;
            report.deleted.push(id);
        }
    }
    let cutoff = now.unix_timestamp() - ORPHAN_AGE.as_secs() as i64;
    for (name, modified) in listing.orphans {
        if modified < cutoff && name.contains(&format!("-{}", o.addon)) {
            o.destination.delete_object(&name).await?;
            report.orphans_removed.push(name);
        }
    }
    Ok(())
}

pub struct RestoreOptions<'a> {
    pub database_url: &'a str,
    /// Names this restore. A restore with a request id records it in the database (in the same
    /// transaction), and a later restore with the same id finds the record and changes
    /// nothing: a request is applied once, whatever the caller remembers.
    pub request_id: Option<&'a str>,
    pub addon: &'a str,
    /// Where `from` is looked up when it is `latest` or an id.
    pub destination: Option<&'a Destination>,
    /// `latest`, a backup id, or the URL or path of a backup's manifest (.json) or dump (.dump).
    pub from: &'a str,
    /// Replace the contents of a database that is not empty.
    pub force: bool,
    /// Where the dump is staged while it is verified (the system's temporary directory when unset).
    pub work_dir: Option<PathBuf>,
    pub s3: &'a S3Options,
    pub tools: &'a Tools,
}

#[derive(Debug)]
pub struct RestoreReport {
    pub manifest: Manifest,
    pub source: String,
    pub database: String,
    /// Tables whose rows the archive held.
    pub tables: usize,
    /// Whether a non-empty database was replaced (--force).
    pub replaced: bool,
    /// The schema version the database now has.
    pub schema_version: Option<i64>,
    pub download: Duration,
    pub apply: Duration,
}

/// A restore this database already holds (see [`RestoreOptions::request_id`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorRestore {
    pub request_id: String,
    pub backup_id: String,
    /// When it was applied (RFC 3339).
    pub restored_at: String,
}

/// What [`restore`] did.
#[derive(Debug)]
pub enum RestoreOutcome {
    Restored(Box<RestoreReport>),
    /// The request had been applied already: nothing was changed.
    AlreadyApplied(PriorRestore),
}

/// The table a restore with a request id leaves its record in (spelled out in the statements,
/// which must be static).
pub const RESTORE_LOG: &str = "public.clockify_restore_log";

/// Whether a restore request id is one the record can hold (letters, digits, '-', '_', '.';
/// at most 63; starting with a letter or digit).
pub fn is_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 63
        && id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The database's record of restore `request_id`, if it holds one.
pub async fn prior_restore(
    database_url: &str,
    request_id: &str,
) -> Result<Option<PriorRestore>, Error> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(database_url)
        .await
        .map_err(|e| {
            Error::Database(format!(
                "cannot connect to the database: {}",
                pg::redact(&e.to_string(), database_url)
            ))
        })?;
    let q = |e: sqlx::Error| Error::Database(format!("reading the restore record: {e}"));
    let exists: bool =
        sqlx::query_scalar("SELECT to_regclass('public.clockify_restore_log') IS NOT NULL")
            .fetch_one(&mut conn)
            .await
            .map_err(q)?;
    let row: Option<(String, String)> = if exists {
        sqlx::query_as(
            "SELECT backup_id, to_char(restored_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
             FROM public.clockify_restore_log WHERE request_id = $1",
        )
        .bind(request_id)
        .fetch_optional(&mut conn)
        .await
        .map_err(q)?
    } else {
        None
    };
    let _ = conn.close().await;
    Ok(row.map(|(backup_id, restored_at)| PriorRestore {
        request_id: request_id.to_owned(),
        backup_id,
        restored_at,
    }))
}

/// Run first in a restore's transaction: the records already in the database are kept aside
/// (in a temporary table, which the wipe of `--force` does not touch), so replacing the
/// contents never forgets which requests were applied.
const KEEP_RESTORE_LOG: &str = "CREATE TEMP TABLE clockify_restore_log_kept (request_id text, backup_id text, restored_at timestamptz) ON COMMIT DROP;
DO $keep$ BEGIN
  IF to_regclass('public.clockify_restore_log') IS NOT NULL THEN
    INSERT INTO pg_temp.clockify_restore_log_kept SELECT request_id, backup_id, restored_at FROM public.clockify_restore_log;
  END IF;
END $keep$;
";

/// Run last, before the COMMIT: the kept records back, and this restore's own (both values
/// checked by [`is_request_id`] and [`manifest::is_backup_id`]: plain characters only).
fn record_sql(request_id: Option<&str>, backup_id: &str) -> String {
    let new = request_id
        .map(|id| {
            format!(
                "INSERT INTO public.clockify_restore_log (request_id, backup_id) VALUES ('{id}', '{backup_id}') ON CONFLICT (request_id) DO NOTHING;\n"
            )
        })
        .unwrap_or_default();
    format!(
        "DO $record$ BEGIN
  IF {wanted} OR EXISTS (SELECT 1 FROM pg_temp.clockify_restore_log_kept) THEN
    CREATE TABLE IF NOT EXISTS public.clockify_restore_log (request_id text PRIMARY KEY, backup_id text NOT NULL, restored_at timestamptz NOT NULL DEFAULT now());
    INSERT INTO public.clockify_restore_log SELECT * FROM pg_temp.clockify_restore_log_kept ON CONFLICT (request_id) DO NOTHING;
  END IF;
END $record$;
{new}",
        wanted = request_id.is_some()
    )
}

/// Finds the manifest `from` names.
pub async fn resolve(
    from: &str,
    addon: &str,
    destination: Option<&Destination>,
    s3: &S3Options,
) -> Result<(Destination, Manifest), Error> {
    let from = from.trim();
    let explicit = from.ends_with(MANIFEST_SUFFIX) || from.ends_with(DUMP_SUFFIX);
    if explicit {
        let (dir, name) = from.rsplit_once('/').unwrap_or((".", from));
        let dir = if dir.is_empty() { "/" } else { dir };
        let dest = Destination::parse(dir, s3)?;
        let manifest_name = match name.strip_suffix(DUMP_SUFFIX) {
            Some(id) => format!("{id}{MANIFEST_SUFFIX}"),
            None => name.to_owned(),
        };
        let m = dest.read_manifest(&manifest_name).await?;
        return Ok((dest, m));
    }
    let dest = destination.ok_or_else(|| {
        Error::Refused(format!(
            "--from {from:?} needs a destination to look in (BACKUP_DESTINATION or --destination), or give the manifest's full path or URL"
        ))
    })?;
    if from == "latest" {
        let listing = dest.list().await?;
        let m = listing
            .backups
            .into_iter()
            .rfind(|m| m.addon == addon)
            .ok_or_else(|| Error::NotFound(format!("no {addon} backup in {dest}")))?;
        return Ok((dest.clone(), m));
    }
    if !manifest::is_backup_id(from) {
        return Err(Error::Refused(format!(
            "--from {from:?} is neither latest, a backup id (see `backups list`), nor a path or URL ending in .json or .dump"
        )));
    }
    let m = dest
        .read_manifest(&format!("{from}{MANIFEST_SUFFIX}"))
        .await?;
    Ok((dest.clone(), m))
}

pub async fn restore(o: RestoreOptions<'_>) -> Result<RestoreOutcome, Error> {
    let target = pg::Target::parse(o.database_url)?;
    if let Some(id) = o.request_id {
        if !is_request_id(id) {
            return Err(Error::Refused(format!(
                "request id {id:?} must be letters, digits, '-', '_' or '.', at most 63, starting with a letter or digit"
            )));
        }
        // Applied once: before anything else, even before looking for the backup.
        if let Some(prior) = prior_restore(o.database_url, id).await? {
            return Ok(RestoreOutcome::AlreadyApplied(prior));
        }
    }
    o.tools.version("pg_restore").await?;
    o.tools.version("psql").await?;
    let (dest, m) = resolve(o.from, o.addon, o.destination, o.s3).await?;
    if m.addon != o.addon {
        return Err(Error::Refused(format!(
            "backup {} is of the {} add-on, not {}; nothing was restored",
            m.id, m.addon, o.addon
        )));
    }
    let before = pg::facts(o.database_url).await?;
    if before.relations > 0 && !o.force {
        return Err(Error::Refused(format!(
            "database {} is not empty ({} tables, views or sequences); restore into an empty database, or pass --force to replace its contents",
            target.database, before.relations
        )));
    }

    // Stage and verify: nothing touches the database until the dump is proven whole.
    let clock = Instant::now();
    let staged = match &o.work_dir {
        Some(dir) => tempfile::Builder::new().prefix("restore-").tempfile_in(dir),
        None => tempfile::Builder::new().prefix("restore-").tempfile(),
    }
    .map_err(io("creating the staging file"))?;
    let mut file =
        tokio::fs::File::from_std(staged.reopen().map_err(io("opening the staging file"))?);
    let mut stream = dest.read(&m.dump).await?;
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        hasher.update(&chunk);
        size += chunk.len() as u64;
        if size > m.size {
            return Err(Error::Corrupt(format!(
                "{} holds more than the {} bytes its manifest records",
                m.dump, m.size
            )));
        }
        file.write_all(&chunk)
            .await
            .map_err(io("staging the dump"))?;
    }
    file.flush().await.map_err(io("staging the dump"))?;
    drop(file);
    if size != m.size {
        return Err(Error::Corrupt(format!(
            "{} is {size} bytes but its manifest records {} (truncated)",
            m.dump, m.size
        )));
    }
    let digest = hex::encode(hasher.finalize());
    if digest != m.sha256 {
        return Err(Error::Corrupt(format!(
            "the SHA-256 of {} is {digest} but its manifest records {} (corrupted)",
            m.dump, m.sha256
        )));
    }
    let tables = pg::archive_tables(o.tools, staged.path()).await?;
    let download = clock.elapsed();

    let clock = Instant::now();
    let record = record_sql(o.request_id, &m.id);
    apply(
        &target,
        o.tools,
        staged.path(),
        before.relations > 0,
        &record,
        o.database_url,
    )
    .await?;
    let apply = clock.elapsed();
    let after = pg::facts(o.database_url).await?;
    Ok(RestoreOutcome::Restored(Box::new(RestoreReport {
        source: format!("{dest}/{}", m.dump),
        database: target.database,
        tables,
        replaced: before.relations > 0,
        schema_version: after.schema_version,
        manifest: m,
        download,
        apply,
    })))
}

/// `pg_restore --file=-` (the archive as SQL) into `psql`, framed by BEGIN and a COMMIT written
/// only after pg_restore finished cleanly: an error anywhere leaves the transaction uncommitted,
/// so PostgreSQL rolls it back. With `wipe`, the database's own objects are dropped first, in
/// the same transaction. The records of earlier restores are kept across it, and `record` (with
/// this restore's own) runs after the archive, before the COMMIT.
async fn apply(
    target: &pg::Target,
    tools: &Tools,
    archive: &std::path::Path,
    wipe: bool,
    record: &str,
    database_url: &str,
) -> Result<(), Error> {
    let mut restore = tokio::process::Command::new(tools.program("pg_restore"));
    restore
        .arg("--no-owner")
        .arg("--no-acl")
        .arg("--file=-")
        .arg(archive)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut psql = target.command(tools, "psql");
    psql.arg("-X")
        .arg("--quiet")
        .arg("--no-password")
        .arg("--set=ON_ERROR_STOP=1")
        .arg(format!("--dbname={}", target.url_without_password))
        .arg("--file=-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut psql = pg::spawn(psql, "psql")?;
    let psql_err = pg::capture_stderr(&mut psql);
    let mut restore = pg::spawn(restore, "pg_restore")?;
    let restore_err = pg::capture_stderr(&mut restore);
    let mut sql_in = psql
        .stdin
        .take()
        .ok_or_else(|| Error::Tool("psql has no stdin".into()))?;
    let mut sql = restore
        .stdout
        .take()
        .ok_or_else(|| Error::Tool("pg_restore has no stdout".into()))?;

    let fed: Result<(), std::io::Error> = async {
        sql_in.write_all(b"BEGIN;\n").await?;
        sql_in.write_all(KEEP_RESTORE_LOG.as_bytes()).await?;
        if wipe {
            sql_in.write_all(pg::WIPE_SQL.as_bytes()).await?;
        }
        tokio::io::copy(&mut sql, &mut sql_in).await?;
        Ok(())
    }
    .await;
    let restored = restore.wait().await.map_err(io("waiting for pg_restore"))?;
    let restore_stderr = restore_err.await.unwrap_or_default();
    if fed.is_ok() && restored.success() {
        // Only now may the transaction commit, with the restore's record.
        let _ = sql_in.write_all(record.as_bytes()).await;
        let _ = sql_in.write_all(b"COMMIT;\n").await;
    }
    drop(sql_in);
    let applied = psql.wait().await.map_err(io("waiting for psql"))?;
    let psql_stderr = psql_err.await.unwrap_or_default();
    if !restored.success() {
        return Err(Error::Restore(format!(
            "pg_restore ({restored}): {}",
            pg::redact(&restore_stderr, database_url)
        )));
    }
    if !applied.success() || fed.is_err() {
        let detail = if psql_stderr.is_empty() {
            fed.err().map(|e| e.to_string()).unwrap_or_default()
        } else {
            psql_stderr
        };
        return Err(Error::Restore(format!(
            "psql ({applied}): {}",
            pg::redact(&detail, database_url)
        )));
    }
    Ok(())
}

/// Megabytes per second, for log lines and benchmarks.
pub fn throughput(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1_048_576.0 / d.as_secs_f64().max(1e-9)
}
