//! One database API over PostgreSQL (production) and SQLite (the embedded default), through
//! sqlx's `Any` driver. The SQL is written once in the portable subset both understand:
//! `$n` placeholders, BIGINT epoch-millisecond timestamps, BIGINT 0/1 flags, JSON as TEXT.
//! The few statements that differ branch on [`Backend`].
//!
//! Migrations live in `migrations/core/NNNN_description.sql` (shared by every add-on), are embedded at build time,
//! and are applied by `clockify-addons migrate <addon>` under a lock (a PostgreSQL advisory
//! lock, or a lock file beside the SQLite database), so concurrent runs are safe.

use std::borrow::Cow;
use std::path::PathBuf;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyConnection, AnyPool, ConnectOptions, Connection, Executor, Row, SqlSafeStr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
        }
    }
}

/// A pool plus the backend it talks to.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unsupported database URL scheme (expected postgres:// or sqlite:)")]
    Scheme,
    #[error("cannot connect to the {backend} database: {source}")]
    Connect {
        backend: &'static str,
        source: sqlx::Error,
    },
    #[error("cannot create the directory of the SQLite database: {0}")]
    Directory(std::io::Error),
}

impl Db {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, DbError> {
        Self::connect_logging_slow(url, max_connections, Duration::from_secs(1)).await
    }

    /// [`Db::connect`], logging statements slower than `slow` as warnings.
    pub async fn connect_logging_slow(
        url: &str,
        max_connections: u32,
        slow: Duration,
    ) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(DbError::Scheme);
        };
        if let Some(path) = sqlite_path(url)
            && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(DbError::Directory)?;
        }
        let options: AnyConnectOptions = url.parse().map_err(|source| DbError::Connect {
            backend: backend.name(),
            source,
        })?;
        let options = options.log_slow_statements(tracing::log::LevelFilter::Warn, slow);
        let mut pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .idle_timeout(Duration::from_secs(300))
            .max_lifetime(Duration::from_secs(1800))
            // A ping per acquire doubles round trips on the hot path; broken connections
            // surface as errors and are dropped by the pool.
            .test_before_acquire(false)
            // A connection's buffers keep the size of the largest message it sent or read (an
            // ingest batch of 64 deliveries is ~150 KiB): without this every pooled connection
            // would hold that much for its life. Shrinking is a no-op for buffers already at
            // their 8 KiB default.
            .after_release(|conn, _meta| {
                Box::pin(async move {
                    conn.shrink_buffers();
                    Ok(true)
                })
            });
        if backend == Backend::Sqlite {
            pool = pool.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;")
                        .await?;
                    Ok(())
                })
            });
        }
        let pool = pool
            .connect_with(options)
            .await
            .map_err(|source| DbError::Connect {
                backend: backend.name(),
                source,
            })?;
        Ok(Self { pool, backend })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether the database answers at all.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// `sqlite://path?..` or `sqlite:path` to the file path; `None` for memory databases.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    Some(PathBuf::from(path))
}

/// The migrations of the schema every add-on shares (`migrations/core/`), embedded at build
/// time. Each add-on's database carries the whole core schema, so the core's SQL runs unchanged
/// on all of them; an add-on with tables of its own would add `migrations/<addon>/` files
/// numbered after the core's.
pub static CORE_MIGRATIONS: &[MigrationFile] = include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// One embedded migration file.
#[derive(Debug, Clone, Copy)]
pub struct MigrationFile {
    pub version: i64,
    pub description: &'static str,
    pub sql: &'static str,
}

/// The migrations of one add-on's database.
#[derive(Debug, Clone, Copy)]
pub struct MigrationSet {
    pub addon: &'static str,
    pub files: &'static [MigrationFile],
}

/// What a migration run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// `(version, description)` of every migration this run applied, in order.
    pub applied: Vec<(i64, String)>,
    /// The newest version the database now has.
    pub current: Option<i64>,
}

/// Whether the database schema is what this binary needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaStatus {
    pub required: i64,
    pub current: Option<i64>,
    pub missing: Vec<i64>,
    pub failed: bool,
}

impl SchemaStatus {
    pub fn is_current(&self) -> bool {
        self.missing.is_empty() && !self.failed
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error during migration: {0}")]
    Database(#[from] sqlx::Error),
    #[error("cannot take the migration lock file {path}: {source}")]
    Lock {
        path: String,
        source: std::io::Error,
    },
}

impl MigrationSet {
    pub fn latest_version(&self) -> i64 {
        self.files.iter().map(|f| f.version).max().unwrap_or(0)
    }

    pub fn migrator(&self) -> Migrator {
        let migrations = self
            .files
            .iter()
            .map(|f| {
                Migration::new(
                    f.version,
                    Cow::Borrowed(f.description),
                    MigrationType::Simple,
                    f.sql.into_sql_str(),
                    false,
                )
            })
            .collect();
        let mut m = Migrator::with_migrations(migrations);
        // We hold our own lock around the whole run (see `migrate`).
        m.set_locking(false);
        // Migrations are expand-only, so an older release (a rollback) works on a newer schema:
        // migrations it does not know are not an error.
        m.set_ignore_missing(true);
        m
    }

    /// A stable advisory-lock key per add-on.
    fn lock_key(&self) -> i64 {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(format!("clockify-addons:migrate:{}", self.addon));
        let mut b = [0u8; 8];
        b.copy_from_slice(&digest[..8]);
        i64::from_be_bytes(b)
    }

    /// Applies pending migrations under a lock and reports what it applied.
    pub async fn migrate(
        &self,
        db: &Db,
        database_url: &str,
    ) -> Result<MigrationReport, MigrateError> {
        // SQLite: a lock file beside the database serialises processes; PostgreSQL: an advisory lock.
        let _file_lock = match sqlite_path(database_url) {
            Some(path) if db.backend == Backend::Sqlite => Some(lock_file(path).await?),
            _ => None,
        };
        let mut conn = db.pool.acquire().await?;
        if db.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(self.lock_key())
                .execute(&mut *conn)
                .await?;
        }
        let result = self.migrate_locked(db.backend, &mut conn).await;
        if db.backend == Backend::Postgres {
            // Unlock even after a failure; the session ending would also release it.
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(self.lock_key())
                .execute(&mut *conn)
                .await;
        }
        result
    }

    async fn migrate_locked(
        &self,
        backend: Backend,
        conn: &mut AnyConnection,
    ) -> Result<MigrationReport, MigrateError> {
        let before = applied_versions(backend, conn).await?;
        self.migrator().run(&mut *conn).await?;
        let after = applied_versions(backend, conn).await?;
        let applied = self
            .files
            .iter()
            .filter(|f| after.contains(&f.version) && !before.contains(&f.version))
            .map(|f| (f.version, f.description.to_owned()))
            .collect();
        Ok(MigrationReport {
            applied,
            current: after.iter().copied().max(),
        })
    }

    /// Compares the database with the migrations this binary carries.
    pub async fn status(&self, db: &Db) -> Result<SchemaStatus, sqlx::Error> {
        let mut conn = db.pool.acquire().await?;
        let applied = applied_versions(db.backend, &mut conn).await?;
        let failed = if table_exists(db.backend, &mut conn).await? {
            let n: i64 = sqlx::query("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = FALSE")
                .fetch_one(&mut *conn)
                .await?
                .try_get(0)?;
            n > 0
        } else {
            false
        };
        let missing = self
            .files
            .iter()
            .map(|f| f.version)
            .filter(|v| !applied.contains(v))
            .collect();
        Ok(SchemaStatus {
            required: self.latest_version(),
            current: applied.iter().copied().max(),
            missing,
            failed,
        })
    }
}

async fn lock_file(db_path: PathBuf) -> Result<std::fs::File, MigrateError> {
    let mut path = db_path.into_os_string();
    path.push(".migrate.lock");
    let path = PathBuf::from(path);
    let shown = path.display().to_string();
    tokio::task::spawn_blocking(move || {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        file.lock()?;
        Ok(file)
    })
    .await
    .map_err(|e| MigrateError::Lock {
        path: shown.clone(),
        source: std::io::Error::other(e),
    })?
    .map_err(|source| MigrateError::Lock {
        path: shown,
        source,
    })
}

async fn table_exists(backend: Backend, conn: &mut AnyConnection) -> Result<bool, sqlx::Error> {
    let sql = match backend {
        Backend::Postgres => {
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'"
        }
        Backend::Sqlite => {
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'"
        }
    };
    let n: i64 = sqlx::query(sql).fetch_one(&mut *conn).await?.try_get(0)?;
    Ok(n > 0)
}

async fn applied_versions(
    backend: Backend,
    conn: &mut AnyConnection,
) -> Result<Vec<i64>, sqlx::Error> {
    if !table_exists(backend, conn).await? {
        return Ok(Vec::new());
    }
    let rows =
        sqlx::query("SELECT version FROM _sqlx_migrations WHERE success = TRUE ORDER BY version")
            .fetch_all(&mut *conn)
            .await?;
    rows.iter().map(|r| r.try_get::<i64, _>(0)).collect()
}

/// Opens one connection outside any pool (used by tests and tools that create databases).
pub async fn connect_one(url: &str) -> Result<AnyConnection, sqlx::Error> {
    sqlx::any::install_default_drivers();
    AnyConnection::connect(url).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            sqlite_path("sqlite://.clockify-dev/a.db?mode=rwc"),
            Some(PathBuf::from(".clockify-dev/a.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:/tmp/x.db"),
            Some(PathBuf::from("/tmp/x.db"))
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://x/y"), None);
    }
}
