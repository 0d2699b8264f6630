//! The PostgreSQL client tools (pg_dump, pg_restore, psql) and the few queries a backup and a
//! restore need. Passwords reach the tools through PGPASSWORD, never their command lines.

use std::path::{Path, PathBuf};

use sqlx::Connection;
use sqlx::postgres::PgConnection;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

use crate::Error;

/// Where the client tools are: `PG_BIN_DIR` when set, else the PATH.
#[derive(Debug, Clone, Default)]
pub struct Tools {
    pub bin_dir: Option<PathBuf>,
}

impl Tools {
    pub fn from_env() -> Self {
        Self {
            bin_dir: std::env::var_os("PG_BIN_DIR").map(PathBuf::from),
        }
    }

    pub fn program(&self, name: &str) -> PathBuf {
        match &self.bin_dir {
            Some(dir) => dir.join(name),
            None => PathBuf::from(name),
        }
    }

    /// `pg_dump --version` and friends; a clear error when the tool is missing.
    pub async fn version(&self, name: &str) -> Result<String, Error> {
        let out = Command::new(self.program(name))
            .arg("--version")
            .output()
            .await
            .map_err(|e| missing(name, e))?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

fn missing(name: &str, e: std::io::Error) -> Error {
    Error::Tool(format!(
        "cannot run {name}: {e}. Backups need the PostgreSQL client tools: install postgresql-client (or set PG_BIN_DIR), or run the clockify-addons -backup image"
    ))
}

/// A database URL split for the client tools: the URL without its password, and the password.
#[derive(Clone)]
pub struct Target {
    pub url_without_password: String,
    password: Option<String>,
    pub database: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

impl Target {
    pub fn parse(database_url: &str) -> Result<Self, Error> {
        let mut url = url::Url::parse(database_url)
            .map_err(|e| Error::Database(format!("DATABASE_URL is not a URL: {e}")))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(Error::Database(format!(
                "backups need a PostgreSQL database (postgres://...), not {}:; for SQLite, copy the file while the add-on is stopped",
                url.scheme()
            )));
        }
        let password = url.password().map(|p| {
            percent_encoding::percent_decode_str(p)
                .decode_utf8_lossy()
                .into_owned()
        });
        let _ = url.set_password(None);
        let database = url.path().trim_start_matches('/').to_owned();
        if database.is_empty() {
            return Err(Error::Database("DATABASE_URL names no database".into()));
        }
        Ok(Self {
            url_without_password: url.to_string(),
            password,
            database: percent_encoding::percent_decode_str(&database)
                .decode_utf8_lossy()
                .into_owned(),
        })
    }

    /// A client tool connected to this database.
    pub fn command(&self, tools: &Tools, name: &str) -> Command {
        let mut c = Command::new(tools.program(name));
        c.env("PGAPPNAME", "clockify-addons-backup")
            .env("PGCONNECT_TIMEOUT", "15")
            .kill_on_drop(true);
        match &self.password {
            Some(p) => c.env("PGPASSWORD", p),
            None => c.env_remove("PGPASSWORD"),
        };
        c
    }
}

/// Reads a child's stderr (the last 16 KiB) for error messages.
pub fn capture_stderr(child: &mut Child) -> tokio::task::JoinHandle<String> {
    let stderr = child.stderr.take();
    tokio::spawn(async move {
        let Some(mut stderr) = stderr else {
            return String::new();
        };
        let mut all = Vec::new();
        let mut buf = [0u8; 8192];
        while let Ok(n) = stderr.read(&mut buf).await {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
            if all.len() > 32 * 1024 {
                all.drain(..all.len() - 16 * 1024);
            }
        }
        String::from_utf8_lossy(&all).trim().to_owned()
    })
}

pub fn spawn(mut cmd: Command, name: &str) -> Result<Child, Error> {
    cmd.spawn().map_err(|e| missing(name, e))
}

/// What a backup records about the database.
pub struct Facts {
    pub server_version: String,
    pub schema_version: Option<i64>,
    /// Relations in the database's own schemas (not the system's or extensions').
    pub relations: i64,
}

pub async fn facts(database_url: &str) -> Result<Facts, Error> {
    let mut conn = PgConnection::connect(database_url).await.map_err(|e| {
        Error::Database(format!(
            "cannot connect to the database: {}",
            redact(&e.to_string(), database_url)
        ))
    })?;
    let q = |e: sqlx::Error| Error::Database(format!("reading the database: {e}"));
    let server_version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&mut conn)
        .await
        .map_err(q)?;
    let relations: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
           AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')",
    )
    .fetch_one(&mut conn)
    .await
    .map_err(q)?;
    let has_migrations: bool =
        sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations') IS NOT NULL")
            .fetch_one(&mut conn)
            .await
            .map_err(q)?;
    let schema_version = if has_migrations {
        sqlx::query_scalar("SELECT max(version) FROM public._sqlx_migrations WHERE success")
            .fetch_one(&mut conn)
            .await
            .map_err(q)?
    } else {
        None
    };
    let _ = conn.close().await;
    Ok(Facts {
        server_version,
        schema_version,
        relations,
    })
}

/// Never lets a URL's password into a message.
pub fn redact(message: &str, database_url: &str) -> String {
    match url::Url::parse(database_url)
        .ok()
        .and_then(|u| u.password().map(str::to_owned))
    {
        Some(p) if !p.is_empty() => message.replace(&p, "***"),
        _ => message.to_owned(),
    }
}

/// Empties the database's own schemas inside the restore's transaction (`--force`): other
/// schemas are dropped; in `public` every table, view, sequence, type and routine is dropped
/// (the schema itself stays, with its owner and grants).
pub const WIPE_SQL: &str = r#"DO $wipe$
DECLARE r record;
BEGIN
  FOR r IN SELECT n.nspname FROM pg_namespace n
           WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'public') AND n.nspname NOT LIKE 'pg\_%'
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass AND d.objid = n.oid AND d.deptype = 'e')
  LOOP
    EXECUTE format('DROP SCHEMA %I CASCADE', r.nspname);
  END LOOP;
  FOR r IN SELECT c.relname, c.relkind FROM pg_class c
           WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
           ORDER BY c.relkind = 'S'
  LOOP
    EXECUTE format('DROP %s IF EXISTS public.%I CASCADE',
      CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE'
                     WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, r.relname);
  END LOOP;
  FOR r IN SELECT p.oid::regprocedure AS sig FROM pg_proc p
           WHERE p.pronamespace = 'public'::regnamespace
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
  LOOP
    EXECUTE format('DROP ROUTINE IF EXISTS %s CASCADE', r.sig);
  END LOOP;
  FOR r IN SELECT t.typname, t.typtype FROM pg_type t
           WHERE t.typnamespace = 'public'::regnamespace AND t.typtype IN ('e', 'd', 'r', 'm', 'c')
             AND (t.typtype <> 'c' OR (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c')
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')
  LOOP
    EXECUTE format('DROP %s IF EXISTS public.%I CASCADE', CASE r.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, r.typname);
  END LOOP;
END
$wipe$;
"#;

/// `pg_restore --list`: checks the archive is readable and counts the tables whose data it holds.
pub async fn archive_tables(tools: &Tools, file: &Path) -> Result<usize, Error> {
    let out = Command::new(tools.program("pg_restore"))
        .arg("--list")
        .arg(file)
        .output()
        .await
        .map_err(|e| missing("pg_restore", e))?;
    if !out.status.success() {
        return Err(Error::Corrupt(format!(
            "pg_restore cannot read the archive: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with(';') && l.contains(" TABLE DATA "))
        .count())
}
