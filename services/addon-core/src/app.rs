//! Building and running one add-on process: `App::build` wires configuration, database,
//! verifier, cipher, client and router and binds the listener (port 0 in tests);
//! `App::run` serves until shutdown, with the flow worker, the bootstrap runner and retention
//! running beside the server.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::addon::AddonDefinition;
use crate::auth::TokenVerifier;
use crate::clockify::{ApiTarget, ClockifyClient, RateLimiter};
use crate::config::CoreConfig;
use crate::crypto::TokenCipher;
use crate::db::Db;
use crate::http::{AppError, LIMIT_DEFAULT};
use crate::metrics::Metrics;
use crate::store::installations::{InstallStatus, Installation};

/// Shared by every handler and background task.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    /// The add-on this process serves.
    pub def: &'static AddonDefinition,
    pub config: CoreConfig,
    pub db: Db,
    /// Checks Clockify's RS256 tokens.
    pub verifier: TokenVerifier,
    /// Encrypts installation tokens at rest.
    pub cipher: TokenCipher,
    /// The Clockify API client (allowlist, rate limit, retries).
    pub client: ClockifyClient,
    pub metrics: Metrics,
    /// Wakes the flow fan-out when a delivery awaits flows.
    pub flow_work: Notify,
    /// Wakes the flow executor when executions were queued.
    pub execution_work: Notify,
    /// Outbound HTTP for GENERIC_HTTP actions.
    pub outbound: crate::outbound::OutboundClient,
    /// Per-workspace limit on custom webhooks (None: unlimited).
    pub custom_webhook_limiter: Option<KeyedLimiter>,
    /// Per-workspace limit on `POST /api-call` (None: unlimited).
    pub api_call_limiter: Option<KeyedLimiter>,
    /// Wakes the bootstrap runner when a run is requested.
    pub bootstrap_work: Notify,
    /// Stores webhook deliveries with group commit.
    pub ingest: crate::ingest::Ingest,
    /// Cancelled when the drain delay after SIGTERM is over: the listener closes and the
    /// background work stops.
    pub shutdown: CancellationToken,
    /// Cancelled as SIGTERM arrives: `/ready` answers 503 while requests are still served.
    pub draining: CancellationToken,
    /// Identifies this process as owner of claimed work.
    pub instance_id: String,
    /// Rate-limit waits counted until they are written (see [`crate::store::waits`]).
    pub waits: Arc<crate::store::waits::Tally>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("addon", &self.def.slug)
            .field("instance_id", &self.instance_id)
            .finish()
    }
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// The API target of a live installation (its token decrypted).
    pub fn target(&self, installation: &Installation) -> Result<ApiTarget, AppError> {
        if installation.status == InstallStatus::Deleted {
            return Err(AppError::Forbidden(
                "the add-on is not installed in this workspace".into(),
            ));
        }
        let enc = installation
            .auth_token_enc
            .as_deref()
            .ok_or_else(|| AppError::Conflict("the installation has no API token".into()))?;
        let token: SecretString = self
            .cipher
            .decrypt(&installation.workspace_id, enc)
            .map_err(|e| {
                AppError::Internal(format!(
                    "installation token of {}: {e}",
                    installation.workspace_id
                ))
            })?;
        Ok(ApiTarget {
            workspace_id: installation.workspace_id.clone(),
            api_url: installation.api_url.clone(),
            token,
        })
    }
}

/// An in-process limiter keyed by workspace.
pub type KeyedLimiter = Arc<governor::DefaultKeyedRateLimiter<String>>;

/// `per_second` per key with a second's worth of burst; None when 0 (unlimited).
pub fn keyed_limiter(per_second: u32) -> Option<KeyedLimiter> {
    std::num::NonZeroU32::new(per_second).map(|n| {
        Arc::new(governor::RateLimiter::keyed(
            governor::Quota::per_second(n).allow_burst(n),
        ))
    })
}

/// Admits one request of `key`, or says how many seconds to wait (429 with Retry-After).
pub fn admit(limiter: Option<&KeyedLimiter>, key: &str) -> Result<(), AppError> {
    let Some(limiter) = limiter else {
        return Ok(());
    };
    limiter.check_key(&key.to_owned()).map_err(|not_until| {
        let wait = not_until.wait_time_from(governor::clock::Clock::now(limiter.clock()));
        AppError::RateLimited {
            retry_after: wait.as_secs().max(1),
        }
    })
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Database(#[from] crate::db::DbError),
    #[error(transparent)]
    Migrate(#[from] crate::db::MigrateError),
    #[error("CLOCKIFY_PUBLIC_KEY: {0}")]
    PublicKey(jsonwebtoken::errors::Error),
    #[error("REDIS_URL: cannot connect to Redis: {0}")]
    Redis(redis::RedisError),
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(reqwest::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

pub struct App {
    state: AppState,
    listener: TcpListener,
    router: Router,
    /// The ingest writers: stopped only after the server has drained, since in-flight
    /// webhook requests wait on them.
    ingest_tasks: tokio_util::task::TaskTracker,
    ingest_stop: CancellationToken,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("state", &self.state).finish()
    }
}

impl App {
    pub async fn build(
        def: &'static AddonDefinition,
        config: CoreConfig,
    ) -> Result<Self, StartupError> {
        let db = Db::connect_logging_slow(
            config.database_url(),
            config.database_max_connections,
            config.database_slow_statement,
        )
        .await?;
        if config.auto_migrate {
            let report = def.migrations.migrate(&db, config.database_url()).await?;
            for (v, d) in &report.applied {
                tracing::info!(version = v, description = %d, "applied migration");
            }
        } else {
            match def.migrations.status(&db).await {
                Ok(s) if s.is_current() => {}
                Ok(s) => tracing::warn!(
                    missing = ?s.missing, failed = s.failed,
                    "database schema is behind this binary: run `clockify-addons migrate {}`; /ready answers 503 until then", def.slug
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the schema version; /ready answers 503 until the database is reachable")
                }
            }
        }
        let verifier = TokenVerifier::new(&config.clockify_public_key_pem, &config.addon_key)
            .map_err(StartupError::PublicKey)?;
        let cipher = match config.keyring() {
            Some(ring) => {
                tracing::info!(key_ids = ?ring.key_ids(), "token encryption keys loaded (the first encrypts)");
                ring
            }
            None => {
                tracing::warn!(
                    "TOKEN_ENCRYPTION_KEY is not set: using a key that lives only as long as this process (development)"
                );
                TokenCipher::ephemeral()
            }
        };
        // A stored token under a key the ring lacks cannot be used: say which key, at once.
        if let Ok(in_use) = crate::store::installations::key_ids_in_use(&db).await {
            let ring = cipher.key_ids();
            let missing: Vec<&String> = in_use
                .iter()
                .filter(|id| *id != "v1" && !ring.contains(&id.as_str()))
                .collect();
            if !missing.is_empty() {
                tracing::error!(
                    missing = ?missing, ring = ?ring,
                    "installation tokens are encrypted with keys this process does not have: add them to TOKEN_ENCRYPTION_PREVIOUS_KEYS (then run `clockify-addons rotate-key`)"
                );
            } else if in_use.iter().any(|id| id != cipher.primary_id()) {
                tracing::info!(in_use = ?in_use, primary = cipher.primary_id(), "some stored values are under earlier keys: re-encrypting them under the first in the background");
            }
        }
        let metrics = Metrics::new(&config.addon_key, env!("CARGO_PKG_VERSION"));
        let limiter = match &config.redis_url {
            Some(url) => {
                RateLimiter::redis(url, config.api.rate_limit_per_second, &config.addon_key)
                    .await
                    .map_err(StartupError::Redis)?
            }
            None => RateLimiter::local(config.api.rate_limit_per_second),
        };
        let waits = Arc::new(crate::store::waits::Tally::default());
        let tally = waits.clone();
        let client = ClockifyClient::new(&config.api, limiter, metrics.clone())
            .map_err(StartupError::HttpClient)?
            .with_wait_recorder(crate::clockify::client::WaitRecorder(Arc::new(
                move |workspace: &str, waited: Duration, throttled: bool| {
                    let ms = i64::try_from(waited.as_millis()).unwrap_or(i64::MAX);
                    tally.add(workspace, crate::time::now_millis(), ms, throttled);
                },
            )));
        let outbound =
            crate::outbound::OutboundClient::new(config.outbound.clone(), metrics.clone())
                .map_err(StartupError::HttpClient)?;
        let custom_webhook_limiter = keyed_limiter(config.custom_webhooks.rate_limit);
        let api_call_limiter = keyed_limiter(config.custom_webhooks.api_call_rate_limit);
        let listener = TcpListener::bind(config.listen_addr)
            .await
            .map_err(|source| StartupError::Bind {
                addr: config.listen_addr,
                source,
            })?;
        let instance_id = format!(
            "{}-{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into()),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let ingest_tasks = tokio_util::task::TaskTracker::new();
        let ingest_stop = CancellationToken::new();
        // Half the pool writes deliveries; the rest serves the UI, the worker and bootstrap.
        let writers = (config.database_max_connections as usize / 2).clamp(1, 8);
        let ingest =
            crate::ingest::Ingest::start(db.clone(), writers, ingest_stop.clone(), &ingest_tasks);
        ingest_tasks.close();
        let state = AppState(Arc::new(Inner {
            def,
            config,
            db,
            ingest,
            verifier,
            cipher,
            client,
            metrics,
            outbound,
            custom_webhook_limiter,
            api_call_limiter,
            flow_work: Notify::new(),
            execution_work: Notify::new(),
            bootstrap_work: Notify::new(),
            shutdown: CancellationToken::new(),
            draining: CancellationToken::new(),
            instance_id,
            waits,
        }));
        let router = router(&state);
        Ok(Self {
            state,
            listener,
            router,
            ingest_tasks,
            ingest_stop,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// The router alone (tests drive it with `oneshot`).
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Serves until `shutdown` resolves or the state's token is cancelled, with background work.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let state = self.state.clone();
        let token = state.shutdown.clone();
        let deadline = crate::http::serve::Deadline::default();
        {
            // SIGTERM: unready at once, keep serving for the drain delay, then stop accepting;
            // everything after the signal shares one deadline.
            let token = token.clone();
            let draining = state.draining.clone();
            let deadline = deadline.clone();
            let (drain, timeout) = (state.config.shutdown_drain, state.config.shutdown_timeout);
            tokio::spawn(async move {
                tokio::select! {
                    _ = shutdown => {}
                    _ = token.cancelled() => return,
                }
                deadline.set(tokio::time::Instant::now() + timeout);
                draining.cancel();
                tracing::info!(
                    drain_secs = drain.as_secs(),
                    deadline_secs = timeout.as_secs(),
                    "draining: /ready answers 503, requests still served"
                );
                tokio::select! {
                    _ = tokio::time::sleep(drain) => {}
                    _ = token.cancelled() => {}
                }
                token.cancel();
            });
        }
        let tracker = tokio_util::task::TaskTracker::new();
        tracker.spawn(crate::worker::run(state.clone()));
        tracker.spawn(crate::bootstrap::run(state.clone()));
        tracker.spawn(crate::retention::run(state.clone()));
        tracker.spawn(crate::routes::health::readiness_loop(state.clone()));
        tracker.spawn(rekey(state.clone()));
        tracker.spawn(crate::store::waits::run(
            state.db.clone(),
            state.waits.clone(),
            state.shutdown.clone(),
        ));
        tracker.close();
        tracing::info!(
            addon = state.def.slug, addr = %self.listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            mode = ?state.config.mode, "serving"
        );
        let grace = state.config.shutdown_timeout;
        let limits = crate::http::serve::ConnectionLimits {
            header_read_timeout: state.config.header_read_timeout,
            max_connections: state.config.max_connections,
        };
        let served = crate::http::serve::serve(
            self.listener,
            self.router,
            token.clone(),
            deadline.clone(),
            grace,
            limits,
        )
        .await;
        token.cancel();
        // Requests have drained: the ingest writers finish what is queued and stop.
        self.ingest_stop.cancel();
        // Whatever is left of the one deadline (at least a moment to write what is queued).
        let left = || deadline.remaining(grace).max(Duration::from_millis(200));
        let _ = tokio::time::timeout(left(), self.ingest_tasks.wait()).await;
        if tokio::time::timeout(left(), tracker.wait()).await.is_err() {
            tracing::warn!("background work did not stop before the shutdown deadline");
        }
        state.db.close().await;
        tracing::info!("stopped");
        served
    }
}

fn router(state: &AppState) -> Router {
    // The document is built from the same router it describes; its own route reads it once
    // the router is complete.
    let document: Arc<std::sync::OnceLock<String>> = Arc::default();
    let served = document.clone();
    let (app, doc) = (state.def.routes)()
        .merge(crate::routes::health::routes())
        .routes(crate::openapi::documented::<
            crate::openapi::__path_openapi_document,
        >(
            "/openapi.json",
            axum::routing::get(move || {
                let served = served.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        served.get().cloned().unwrap_or_default(),
                    )
                }
            }),
            |_| {},
        ))
        .split_for_parts();
    let doc = crate::openapi::finish(doc, &state.config.addon_name, state.def.description);
    let _ = document.set(doc.to_string());
    let app = app.with_state(state.clone());
    crate::http::layers::apply(
        app,
        LIMIT_DEFAULT,
        state.metrics.clone(),
        &state.config.cors_origins,
        state.config.request_timeout,
        state.config.max_concurrent_requests,
    )
}

/// With earlier keys in the ring (a key rotation under way), re-encrypts every stored value
/// under the first key in the background while the add-on serves: once every replica runs
/// the new ring, the earlier keys can be dropped. The same work as `clockify-addons rotate-key`;
/// each row is updated only if it still holds what was read, so replicas doing it at once,
/// or a request writing the same row, are harmless.
async fn rekey(state: AppState) {
    if state.cipher.key_ids().len() < 2 {
        return;
    }
    let started = std::time::Instant::now();
    let run = crate::store::rekey::rotate(&state.db, &state.cipher, REKEY_BATCH);
    tokio::select! {
        _ = state.shutdown.cancelled() => {}
        result = run => match result {
            Ok(report) if report.failed.is_empty() => tracing::info!(
                examined = report.examined,
                reencrypted = report.reencrypted,
                primary = state.cipher.primary_id(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "stored values are under the first token key: the earlier keys may be removed once every replica runs this ring"
            ),
            Ok(report) => tracing::error!(
                examined = report.examined,
                reencrypted = report.reencrypted,
                failed = ?report.failed,
                "stored values no key of the ring opens: keep the key they were written with"
            ),
            Err(e) => tracing::warn!(error = %e, "re-encrypting under the first token key failed; the next start tries again (or run `clockify-addons rotate-key`)"),
        },
    }
}

/// Rows per transaction of the background re-encryption.
const REKEY_BATCH: u32 = 200;
