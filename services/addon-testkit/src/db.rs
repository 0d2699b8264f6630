//! A fresh database per test: a new PostgreSQL database (dropped afterwards) or a SQLite file
//! in a temporary directory.

use sqlx::Executor;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// The PostgreSQL server tests use (`TEST_POSTGRES_URL`, default the local trust-auth server).
pub fn postgres_server() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

#[derive(Debug)]
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Postgres => {
                let name = format!("test_{}", uuid::Uuid::new_v4().simple());
                let mut admin =
                    addon_core::db::connect_one(&format!("{}/postgres", postgres_server()))
                        .await
                        .expect("PostgreSQL on 127.0.0.1:5432 (set TEST_POSTGRES_URL otherwise)");
                admin
                    .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .await
                    .expect("create test database");
                Self {
                    backend,
                    url: format!("{}/{name}", postgres_server()),
                    name: Some(name),
                    _dir: None,
                }
            }
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}/test.db?mode=rwc", dir.path().display());
                Self {
                    backend,
                    url,
                    name: None,
                    _dir: Some(dir),
                }
            }
        }
    }
}

impl TestDb {
    /// Another handle on the same database, as a second process would hold it; dropping it
    /// leaves the database to the original.
    pub fn share(&self) -> TestDb {
        TestDb {
            backend: self.backend,
            url: self.url.clone(),
            name: None,
            _dir: None,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.name.take() else { return };
        // Drop the database from a thread of its own: Drop cannot await.
        let server = postgres_server();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut admin) =
                    addon_core::db::connect_one(&format!("{server}/postgres")).await
                {
                    let _ = admin
                        .execute(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .await;
                }
            });
        })
        .join();
    }
}
