//! Test support: a fresh database per test (PostgreSQL or SQLite), a fake Clockify API that
//! records every request it receives, RSA keys and signed tokens, and a running add-on.

pub mod app;
pub mod browser;
pub mod clockify_data;
pub mod contract;
pub mod db;
pub mod fake;
pub mod keys;

pub use app::{TestApp, TestAppBuilder, json_of};
pub use db::{Backend, TestDb};
pub use fake::{Alpn, FakeClockify, FakeResponse, Recorded};
pub use keys::{keys, signer};

/// `../shared/clockify/<rel>` if present; tests that need it skip with a message otherwise.
pub fn shared(rel: &str) -> Option<std::path::PathBuf> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/clockify")
        .join(rel);
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "skipped: {} is absent (../shared/clockify beside the project root)",
            path.display()
        );
        None
    }
}

/// Declares one async test per backend: `backend_tests!(name, scenario)` where
/// `async fn scenario(backend: Backend)`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),+ $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Postgres).await
                }
            )+
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Sqlite).await
                }
            )+
        }
    };
}
