//! Typed configuration, read once from environment variables and validated at start-up.
//!
//! Every variable is listed in [`VARIABLES`]; `clockify-addons config-table` prints that list as
//! the Markdown table in the README (a test fails when the README is stale). Problems are
//! collected so one start-up reports every bad variable at once, each message naming the
//! variable and, unless it is a secret, the value that was refused.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use url::Url;

use crate::clockify::allowlist::HostAllowlist;
use crate::http::cors::OriginList;

/// The public key Clockify publishes for verifying the tokens it signs (RS256).
pub const CLOCKIFY_PUBLIC_KEY_PEM: &str = include_str!("clockify-public-key.pem");

/// One documented environment variable.
#[derive(Debug, Clone, Copy)]
pub struct VarSpec {
    pub name: &'static str,
    /// Default shown in the docs; `""` means none.
    pub default: &'static str,
    pub secret: bool,
    pub description: &'static str,
}

macro_rules! var {
    ($name:literal, $default:literal, $secret:literal, $desc:literal) => {
        VarSpec {
            name: $name,
            default: $default,
            secret: $secret,
            description: $desc,
        }
    };
}

/// Every environment variable the add-on services read.
pub const VARIABLES: &[VarSpec] = &[
    var!(
        "ADDON_MODE",
        "production",
        false,
        "`production` or `development`. Production requires `DATABASE_URL`, `ADDON_BASE_URL` and `TOKEN_ENCRYPTION_KEY`, and never migrates the database on its own."
    ),
    var!(
        "ADDON_LISTEN_ADDR",
        "0.0.0.0:8080",
        false,
        "Socket address the HTTP server binds."
    ),
    var!(
        "ADDON_BASE_URL",
        "",
        false,
        "Public URL Clockify reaches the add-on at; the manifest's `baseUrl`. Required in production; development defaults to `http://localhost:<port>`."
    ),
    var!(
        "ADDON_KEY",
        "per add-on",
        false,
        "Manifest `key` (2-50 characters); tokens must carry it as `sub`."
    ),
    var!(
        "ADDON_NAME",
        "per add-on",
        false,
        "Manifest `name` (1-50 characters)."
    ),
    var!(
        "DATABASE_URL",
        "",
        true,
        "`postgres://...` (production) or `sqlite://path?mode=rwc` (embedded). Required in production."
    ),
    var!(
        "DATABASE_MAX_CONNECTIONS",
        "10",
        false,
        "Size of the database connection pool. On PostgreSQL each process holds one more connection, outside the pool, to LISTEN for work other replicas announce."
    ),
    var!(
        "DATABASE_SLOW_STATEMENT_MS",
        "250",
        false,
        "A statement that takes longer is logged as a warning (`slow statement`, with its text, never its values)."
    ),
    var!(
        "CLOCKIFY_PUBLIC_KEY",
        "Clockify's published key",
        false,
        "PEM of the RSA key that verifies Clockify's tokens (RS256 only)."
    ),
    var!(
        "CLOCKIFY_PUBLIC_KEY_FILE",
        "",
        false,
        "Path of a PEM file to read the verification key from instead."
    ),
    var!(
        "TOKEN_ENCRYPTION_KEY",
        "",
        true,
        "Base64 of 32 random bytes (`openssl rand -base64 32`); encrypts installation tokens, custom webhook secrets and flow header values at rest. Required in production."
    ),
    var!(
        "TOKEN_ENCRYPTION_PREVIOUS_KEYS",
        "",
        true,
        "Comma-separated earlier keys (base64 of 32 bytes each) that still decrypt during a key rotation; `clockify-addons rotate-key` re-encrypts everything under `TOKEN_ENCRYPTION_KEY`, after which they can go."
    ),
    var!(
        "REDIS_URL",
        "",
        true,
        "When set, the per-workspace Clockify API rate limit is shared by every replica through this Redis."
    ),
    var!(
        "CLOCKIFY_API_ALLOWED_HOSTS",
        "api.clockify.me,*.clockify.me",
        false,
        "Comma-separated hosts the Clockify API client may call (`*.suffix` wildcards; `http://host:port` entries allow plain HTTP to that host). Any other host is refused before a connection is made."
    ),
    var!(
        "CLOCKIFY_API_RATE_LIMIT",
        "50",
        false,
        "Requests per second per workspace to Clockify's API (Clockify's limit is 50). Requests are spaced evenly with 2% headroom for network jitter."
    ),
    var!(
        "CLOCKIFY_API_TIMEOUT_SECONDS",
        "10",
        false,
        "Timeout of one Clockify API request."
    ),
    var!(
        "CLOCKIFY_API_MAX_RETRIES",
        "4",
        false,
        "Retries of a Clockify API request answered 429 or 5xx (with backoff, jitter and `Retry-After`)."
    ),
    var!(
        "HTTP_REQUEST_TIMEOUT_SECONDS",
        "30",
        false,
        "Longest time one inbound request may take before it is answered 503."
    ),
    var!(
        "SHUTDOWN_TIMEOUT_SECONDS",
        "25",
        false,
        "One deadline from SIGTERM to exit: the drain delay, then in-flight requests and workers finish. Keep it below the pod's termination grace period (the operator does)."
    ),
    var!(
        "SHUTDOWN_DRAIN_SECONDS",
        "5",
        false,
        "After SIGTERM, `/ready` answers 503 and requests are still served this long (endpoints and proxies take a few seconds to stop sending) before the listener closes. Below `SHUTDOWN_TIMEOUT_SECONDS`. The operator sets 0 and drains in the pod's preStop hook instead."
    ),
    var!(
        "HTTP_HEADER_READ_TIMEOUT_SECONDS",
        "10",
        false,
        "A client must send a request's headers within this time, and an idle keep-alive connection is closed after it (slow or half-open connections cannot pile up)."
    ),
    var!(
        "HTTP_MAX_CONNECTIONS",
        "4096",
        false,
        "Open client connections at most; beyond, new ones wait in the kernel's backlog until one closes."
    ),
    var!(
        "HTTP_MAX_CONCURRENT_REQUESTS",
        "256",
        false,
        "Requests served at once at most; the next is answered 503 with `Retry-After` at once (load shedding). `/healthz`, `/ready` and `/metrics` are exempt."
    ),
    var!(
        "DATABASE_AUTO_MIGRATE",
        "true in development",
        false,
        "Development only: apply pending migrations at start-up. Production never migrates on its own (`clockify-addons migrate`)."
    ),
    var!(
        "CORS_ALLOWED_ORIGINS",
        "https://clockify.me,https://*.clockify.me",
        false,
        "Comma-separated browser origins allowed by CORS (`https://*.suffix` wildcards)."
    ),
    var!(
        "RETENTION_WEBHOOK_LOG_DAYS",
        "90",
        false,
        "Days webhook deliveries are kept; 0 keeps them forever."
    ),
    var!(
        "RETENTION_FLOW_EXECUTIONS_DAYS",
        "30",
        false,
        "Days flow executions are kept; 0 keeps them forever."
    ),
    var!(
        "RETENTION_ENTITY_CACHE_DAYS",
        "7",
        false,
        "Days cached workspace entities are kept; 0 keeps them forever."
    ),
    var!(
        "RETENTION_INTERVAL_SECONDS",
        "3600",
        false,
        "How often retention runs."
    ),
    var!(
        "RETENTION_BATCH_SIZE",
        "1000",
        false,
        "Rows deleted per statement, so retention never holds long locks."
    ),
    var!(
        "BOOTSTRAP_MAX_PAGES",
        "20",
        false,
        "Pages fetched per endpoint when a workspace is bootstrapped."
    ),
    var!(
        "BOOTSTRAP_PAGE_SIZE",
        "50",
        false,
        "`page-size` of bootstrap requests (1-200)."
    ),
    var!(
        "FLOW_CONCURRENCY",
        "256",
        false,
        "Flow executions one process runs at once, counting those waiting for their workspace's API rate limit (50 calls/s each): enough that every busy workspace has one waiting at its limit, so this is well above the core count."
    ),
    var!(
        "FLOW_LEASE_SECONDS",
        "60",
        false,
        "How long a claimed flow execution stays with its worker without a heartbeat (renewed every third of it); after that another replica resumes it at its next step."
    ),
    var!(
        "FLOW_MAX_ATTEMPTS",
        "5",
        false,
        "Attempts of a flow execution whose action failed transiently (timeout, 429, 5xx) before it is marked FAILED."
    ),
    var!(
        "FLOW_RETRY_BACKOFF_SECONDS",
        "10",
        false,
        "Delay before the second attempt of a failed flow execution; doubles with each attempt (with jitter), at most one hour."
    ),
    var!(
        "GENERIC_HTTP_TIMEOUT_SECONDS",
        "10",
        false,
        "Timeout of one GENERIC_HTTP action request (an action may ask for less)."
    ),
    var!(
        "GENERIC_HTTP_MAX_RETRIES",
        "2",
        false,
        "Immediate retries of a GENERIC_HTTP request answered 429/5xx or not answered, before the execution is retried later."
    ),
    var!(
        "GENERIC_HTTP_ALLOW_PRIVATE_NETWORKS",
        "false",
        false,
        "Let GENERIC_HTTP actions reach loopback, private and link-local addresses. Off in production: an allowlisted name that resolves inside the network is refused."
    ),
    var!(
        "CUSTOM_WEBHOOK_SECRET_GRACE_HOURS",
        "24",
        false,
        "After a custom webhook secret is rotated, how long the previous one is still accepted."
    ),
    var!(
        "CUSTOM_WEBHOOK_TOLERANCE_SECONDS",
        "300",
        false,
        "How far a custom webhook's signed `webhook-timestamp` may be from now, either way; older (or later) deliveries are refused as replays."
    ),
    var!(
        "CUSTOM_WEBHOOK_RATE_LIMIT",
        "100",
        false,
        "Custom webhook deliveries accepted per second per workspace (bursts of the same size); beyond it 429 with Retry-After. 0 disables the limit."
    ),
    var!(
        "API_CALL_RATE_LIMIT",
        "50",
        false,
        "Calls through POST /api-call accepted per second per workspace (bursts of the same size); beyond it 429 with Retry-After. 0 disables the limit (Clockify's own 50/s limit still applies)."
    ),
    var!(
        "RETENTION_API_CALLS_DAYS",
        "30",
        false,
        "Days the `/api-call` log is kept; 0 keeps it forever."
    ),
    var!(
        "LOG_FORMAT",
        "json",
        false,
        "`json` (one object per line) or `text`."
    ),
    var!(
        "RUST_LOG",
        "info",
        false,
        "Log filter, e.g. `info,addon_core=debug`."
    ),
];

/// Renders [`VARIABLES`] as the Markdown table the README carries.
pub fn markdown_table() -> String {
    let mut out =
        String::from("| Variable | Default | Secret | Description |\n|---|---|---|---|\n");
    for v in VARIABLES {
        let default = if v.default.is_empty() {
            "-".to_owned()
        } else {
            format!("`{}`", v.default)
        };
        let secret = if v.secret { "yes" } else { "" };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            v.name, default, secret, v.description
        ));
    }
    out
}

/// A snapshot of environment variables. Empty values count as unset.
#[derive(Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may be secrets: show names only.
        f.debug_struct("Env")
            .field("names", &self.vars.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Env {
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars().collect(),
        }
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// Sets a variable unless it is already set (used by `dev` to supply defaults).
    pub fn set_default(&mut self, name: &str, value: impl Into<String>) {
        if self.get(name).is_none() {
            self.vars.insert(name.to_owned(), value.into());
        }
    }

    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.vars.insert(name.to_owned(), value.into());
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }
}

/// Every problem found in the configuration; each names its variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .problems.join("\n  - "))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Production,
    Development,
}

/// Per-add-on defaults that the environment may override.
#[derive(Debug, Clone)]
pub struct AddonDefaults {
    pub key: &'static str,
    pub name: &'static str,
    /// Used for the embedded development database file name.
    pub slug: &'static str,
}

#[derive(Debug, Clone)]
pub struct ApiClientConfig {
    pub allowed_hosts: HostAllowlist,
    pub rate_limit_per_second: u32,
    pub timeout: Duration,
    pub max_retries: u32,
}

#[derive(Debug, Clone)]
pub struct RetentionConfig {
    pub webhook_log_days: u32,
    pub flow_executions_days: u32,
    pub entity_cache_days: u32,
    pub api_calls_days: u32,
    pub interval: Duration,
    pub batch_size: u32,
}

/// Flow execution: concurrency, leases and retries.
#[derive(Debug, Clone)]
pub struct FlowConfig {
    pub concurrency: u32,
    pub lease: Duration,
    pub max_attempts: u32,
    pub retry_backoff: Duration,
}

/// Custom webhooks (Universal Webhook).
#[derive(Debug, Clone)]
pub struct CustomWebhookConfig {
    pub secret_grace: Duration,
    /// Per second per workspace; 0: unlimited.
    pub rate_limit: u32,
    /// `POST /api-call` calls per second per workspace; 0: unlimited.
    pub api_call_rate_limit: u32,
    /// Largest distance of a signed `webhook-timestamp` from now.
    pub tolerance: Duration,
}

#[derive(Debug, Clone)]
pub struct BootstrapConfig {
    pub max_pages: u32,
    pub page_size: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// The validated configuration of one add-on process.
#[derive(Debug)]
pub struct CoreConfig {
    pub mode: Mode,
    pub listen_addr: SocketAddr,
    pub base_url: Url,
    pub addon_key: String,
    pub addon_name: String,
    pub database_url: SecretString,
    pub database_max_connections: u32,
    /// Statements slower than this are logged as warnings.
    pub database_slow_statement: std::time::Duration,
    pub clockify_public_key_pem: String,
    /// `None` only in development mode, where an ephemeral key is used.
    pub token_encryption_key: Option<SecretBox<[u8; 32]>>,
    /// Earlier keys that still decrypt (a rotation in progress).
    pub token_encryption_previous_keys: Vec<SecretBox<[u8; 32]>>,
    pub redis_url: Option<SecretString>,
    pub api: ApiClientConfig,
    pub request_timeout: Duration,
    pub shutdown_timeout: Duration,
    pub shutdown_drain: Duration,
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    pub max_concurrent_requests: usize,
    /// Apply pending migrations at start-up (development only).
    pub auto_migrate: bool,
    pub cors_origins: OriginList,
    pub retention: RetentionConfig,
    pub bootstrap: BootstrapConfig,
    pub flows: FlowConfig,
    pub outbound: crate::outbound::OutboundConfig,
    pub custom_webhooks: CustomWebhookConfig,
    pub log_format: LogFormat,
}

struct Loader<'a> {
    env: &'a Env,
    problems: Vec<String>,
}

impl Loader<'_> {
    fn parse<T: FromStr>(&mut self, name: &str, default: T, expected: &str) -> T {
        match self.env.get(name) {
            None => default,
            Some(raw) => match raw.parse::<T>() {
                Ok(v) => v,
                Err(_) => {
                    self.problems
                        .push(format!("{name}: expected {expected}, got {raw:?}"));
                    default
                }
            },
        }
    }

    fn bounded(&mut self, name: &str, default: u32, min: u32, max: u32) -> u32 {
        let v = self.parse::<u32>(name, default, &format!("an integer from {min} to {max}"));
        if v < min || v > max {
            self.problems.push(format!(
                "{name}: expected an integer from {min} to {max}, got {v}"
            ));
            return default;
        }
        v
    }

    /// A duration in whole seconds within `min..=max` (an unbounded one could overflow the
    /// timers that add it to the clock).
    fn seconds(&mut self, name: &str, default: u64, min: u64, max: u64) -> Duration {
        let v = self.parse::<u64>(
            name,
            default,
            &format!("a whole number of seconds from {min} to {max}"),
        );
        if v < min || v > max {
            self.problems.push(format!(
                "{name}: expected a whole number of seconds from {min} to {max}, got {v}"
            ));
            return Duration::from_secs(default);
        }
        Duration::from_secs(v)
    }
}

impl CoreConfig {
    pub fn from_env(env: &Env, defaults: &AddonDefaults) -> Result<Self, ConfigError> {
        let mut l = Loader {
            env,
            problems: Vec::new(),
        };

        let mode = match env.get("ADDON_MODE").unwrap_or("production") {
            "production" => Mode::Production,
            "development" => Mode::Development,
            other => {
                l.problems.push(format!(
                    "ADDON_MODE: expected `production` or `development`, got {other:?}"
                ));
                Mode::Production
            }
        };
        let production = mode == Mode::Production;

        let listen_addr = l.parse::<SocketAddr>(
            "ADDON_LISTEN_ADDR",
            SocketAddr::from(([0, 0, 0, 0], 8080)),
            "a socket address such as 0.0.0.0:8080",
        );

        let base_url = match env.get("ADDON_BASE_URL") {
            Some(raw) => match Url::parse(raw) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                    if production && u.scheme() != "https" {
                        l.problems.push(format!(
                            "ADDON_BASE_URL: production requires an https:// URL, got {raw:?}"
                        ));
                    }
                    u
                }
                _ => {
                    l.problems.push(format!(
                        "ADDON_BASE_URL: expected an absolute http(s) URL, got {raw:?}"
                    ));
                    dev_base_url(listen_addr)
                }
            },
            None => {
                if production {
                    l.problems.push("ADDON_BASE_URL is required in production: the public https URL Clockify calls".into());
                }
                dev_base_url(listen_addr)
            }
        };

        let addon_key = env.get("ADDON_KEY").unwrap_or(defaults.key).to_owned();
        if !(2..=50).contains(&addon_key.chars().count()) {
            l.problems.push(format!(
                "ADDON_KEY: must be 2 to 50 characters, got {addon_key:?}"
            ));
        }
        let addon_name = env.get("ADDON_NAME").unwrap_or(defaults.name).to_owned();
        if !(1..=50).contains(&addon_name.chars().count()) {
            l.problems.push(format!(
                "ADDON_NAME: must be 1 to 50 characters, got {addon_name:?}"
            ));
        }

        let database_url = match env.get("DATABASE_URL") {
            Some(raw) => {
                if !(raw.starts_with("postgres://")
                    || raw.starts_with("postgresql://")
                    || raw.starts_with("sqlite:"))
                {
                    // Never echo the value: it may hold a password.
                    l.problems
                        .push("DATABASE_URL: expected a postgres:// or sqlite: URL".into());
                }
                SecretString::from(raw.to_owned())
            }
            None => {
                if production {
                    l.problems
                        .push("DATABASE_URL is required in production: a postgres:// URL".into());
                }
                SecretString::from(format!(
                    "sqlite://.clockify-dev/{}.db?mode=rwc",
                    defaults.slug
                ))
            }
        };
        let database_max_connections = l.bounded("DATABASE_MAX_CONNECTIONS", 10, 1, 1000);
        let database_slow_statement = std::time::Duration::from_millis(u64::from(l.bounded(
            "DATABASE_SLOW_STATEMENT_MS",
            250,
            1,
            600_000,
        )));

        let clockify_public_key_pem = match (
            env.get("CLOCKIFY_PUBLIC_KEY"),
            env.get("CLOCKIFY_PUBLIC_KEY_FILE"),
        ) {
            (Some(_), Some(_)) => {
                l.problems.push(
                    "CLOCKIFY_PUBLIC_KEY and CLOCKIFY_PUBLIC_KEY_FILE are both set: set only one"
                        .into(),
                );
                String::new()
            }
            (Some(pem), None) => pem.replace("\\n", "\n"),
            (None, Some(path)) => match std::fs::read_to_string(path) {
                Ok(pem) => pem,
                Err(e) => {
                    l.problems.push(format!(
                        "CLOCKIFY_PUBLIC_KEY_FILE: cannot read {path:?}: {e}"
                    ));
                    String::new()
                }
            },
            (None, None) => CLOCKIFY_PUBLIC_KEY_PEM.to_owned(),
        };
        if !clockify_public_key_pem.is_empty()
            && jsonwebtoken::DecodingKey::from_rsa_pem(clockify_public_key_pem.as_bytes()).is_err()
        {
            l.problems
                .push("CLOCKIFY_PUBLIC_KEY: not a PEM-encoded RSA public key".into());
        }

        let decode_key = |raw: &str| -> Option<SecretBox<[u8; 32]>> {
            match base64::engine::general_purpose::STANDARD.decode(raw.trim()) {
                Ok(bytes) if bytes.len() == 32 => {
                    let mut key = [0u8; 32];
                    key.copy_from_slice(&bytes);
                    Some(SecretBox::new(Box::new(key)))
                }
                _ => None,
            }
        };
        let token_encryption_key = match env.get("TOKEN_ENCRYPTION_KEY") {
            Some(raw) => match decode_key(raw) {
                Some(k) => Some(k),
                None => {
                    l.problems.push(
                        "TOKEN_ENCRYPTION_KEY: expected base64 of exactly 32 bytes (openssl rand -base64 32)".into(),
                    );
                    None
                }
            },
            None => {
                if production {
                    l.problems.push(
                        "TOKEN_ENCRYPTION_KEY is required in production: base64 of 32 random bytes (openssl rand -base64 32)"
                            .into(),
                    );
                }
                None
            }
        };
        let mut token_encryption_previous_keys = Vec::new();
        for (i, raw) in env
            .get("TOKEN_ENCRYPTION_PREVIOUS_KEYS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .enumerate()
        {
            match decode_key(raw) {
                Some(k) => token_encryption_previous_keys.push(k),
                // Never echo a key: name its position.
                None => l.problems.push(format!(
                    "TOKEN_ENCRYPTION_PREVIOUS_KEYS: key {} of the list is not base64 of exactly 32 bytes",
                    i + 1
                )),
            }
        }
        if token_encryption_key.is_none() && !token_encryption_previous_keys.is_empty() {
            l.problems.push(
                "TOKEN_ENCRYPTION_PREVIOUS_KEYS needs TOKEN_ENCRYPTION_KEY (the key that encrypts)"
                    .into(),
            );
        }

        let redis_url = env.get("REDIS_URL").map(|raw| {
            if !(raw.starts_with("redis://") || raw.starts_with("rediss://")) {
                l.problems
                    .push("REDIS_URL: expected a redis:// or rediss:// URL".into());
            }
            SecretString::from(raw.to_owned())
        });

        let allowed_hosts = match HostAllowlist::parse(
            env.get("CLOCKIFY_API_ALLOWED_HOSTS")
                .unwrap_or(HostAllowlist::DEFAULT),
        ) {
            Ok(a) => a,
            Err(e) => {
                l.problems.push(format!("CLOCKIFY_API_ALLOWED_HOSTS: {e}"));
                HostAllowlist::default()
            }
        };
        let api = ApiClientConfig {
            allowed_hosts,
            rate_limit_per_second: l.bounded("CLOCKIFY_API_RATE_LIMIT", 50, 1, 10_000),
            timeout: l.seconds("CLOCKIFY_API_TIMEOUT_SECONDS", 10, 1, 300),
            max_retries: l.bounded("CLOCKIFY_API_MAX_RETRIES", 4, 0, 20),
        };

        let cors_origins = match OriginList::parse(
            env.get("CORS_ALLOWED_ORIGINS")
                .unwrap_or(OriginList::DEFAULT),
        ) {
            Ok(o) => o,
            Err(e) => {
                l.problems.push(format!("CORS_ALLOWED_ORIGINS: {e}"));
                OriginList::default()
            }
        };

        let retention = RetentionConfig {
            webhook_log_days: l.bounded("RETENTION_WEBHOOK_LOG_DAYS", 90, 0, 36_500),
            flow_executions_days: l.bounded("RETENTION_FLOW_EXECUTIONS_DAYS", 30, 0, 36_500),
            entity_cache_days: l.bounded("RETENTION_ENTITY_CACHE_DAYS", 7, 0, 36_500),
            api_calls_days: l.bounded("RETENTION_API_CALLS_DAYS", 30, 0, 36_500),
            interval: l.seconds("RETENTION_INTERVAL_SECONDS", 3600, 1, 604_800),
            batch_size: l.bounded("RETENTION_BATCH_SIZE", 1000, 1, 100_000),
        };
        let bootstrap = BootstrapConfig {
            max_pages: l.bounded("BOOTSTRAP_MAX_PAGES", 20, 1, 10_000),
            page_size: l.bounded("BOOTSTRAP_PAGE_SIZE", 50, 1, 200),
        };
        let flows = FlowConfig {
            concurrency: l.bounded("FLOW_CONCURRENCY", 256, 1, 4096),
            lease: l.seconds("FLOW_LEASE_SECONDS", 60, 2, 3600),
            max_attempts: l.bounded("FLOW_MAX_ATTEMPTS", 5, 1, 100),
            retry_backoff: l.seconds("FLOW_RETRY_BACKOFF_SECONDS", 10, 0, 3600),
        };
        let outbound = crate::outbound::OutboundConfig {
            timeout: Duration::from_secs(u64::from(l.bounded(
                "GENERIC_HTTP_TIMEOUT_SECONDS",
                10,
                1,
                60,
            ))),
            max_retries: l.bounded("GENERIC_HTTP_MAX_RETRIES", 2, 0, 10),
            allow_private_networks: l.parse::<bool>(
                "GENERIC_HTTP_ALLOW_PRIVATE_NETWORKS",
                false,
                "true or false",
            ),
        };
        let custom_webhooks = CustomWebhookConfig {
            secret_grace: Duration::from_secs(
                3600 * u64::from(l.bounded("CUSTOM_WEBHOOK_SECRET_GRACE_HOURS", 24, 0, 720)),
            ),
            rate_limit: l.bounded("CUSTOM_WEBHOOK_RATE_LIMIT", 100, 0, 100_000),
            api_call_rate_limit: l.bounded("API_CALL_RATE_LIMIT", 50, 0, 100_000),
            tolerance: l.seconds("CUSTOM_WEBHOOK_TOLERANCE_SECONDS", 300, 30, 3600),
        };
        let request_timeout = l.seconds("HTTP_REQUEST_TIMEOUT_SECONDS", 30, 1, 600);
        let shutdown_timeout = l.seconds("SHUTDOWN_TIMEOUT_SECONDS", 25, 1, 600);
        let shutdown_drain = l.seconds("SHUTDOWN_DRAIN_SECONDS", 5, 0, 120);
        if shutdown_drain >= shutdown_timeout {
            l.problems.push(format!(
                "SHUTDOWN_DRAIN_SECONDS ({}) must be below SHUTDOWN_TIMEOUT_SECONDS ({}): the drain is part of the shutdown deadline",
                shutdown_drain.as_secs(),
                shutdown_timeout.as_secs()
            ));
        }
        let header_read_timeout = l.seconds("HTTP_HEADER_READ_TIMEOUT_SECONDS", 10, 1, 300);
        let max_connections = l.bounded("HTTP_MAX_CONNECTIONS", 4096, 1, 1_000_000) as usize;
        let max_concurrent_requests =
            l.bounded("HTTP_MAX_CONCURRENT_REQUESTS", 256, 1, 100_000) as usize;
        let auto_migrate = l.parse::<bool>("DATABASE_AUTO_MIGRATE", !production, "true or false");
        if production && auto_migrate {
            l.problems.push(
                "DATABASE_AUTO_MIGRATE: production never migrates on its own; run `clockify-addons migrate`".into(),
            );
        }
        if production
            && env
                .get("DATABASE_URL")
                .is_some_and(|u| u.starts_with("sqlite:"))
        {
            l.problems.push(
                "DATABASE_URL: production needs PostgreSQL (postgres://); sqlite: is the embedded default of development mode".into(),
            );
        }
        let log_format = match env.get("LOG_FORMAT").unwrap_or("json") {
            "json" => LogFormat::Json,
            "text" => LogFormat::Text,
            other => {
                l.problems.push(format!(
                    "LOG_FORMAT: expected `json` or `text`, got {other:?}"
                ));
                LogFormat::Json
            }
        };

        if !l.problems.is_empty() {
            return Err(ConfigError {
                problems: l.problems,
            });
        }
        Ok(Self {
            mode,
            listen_addr,
            base_url,
            addon_key,
            addon_name,
            database_url,
            database_max_connections,
            database_slow_statement,
            clockify_public_key_pem,
            token_encryption_key,
            token_encryption_previous_keys,
            redis_url,
            api,
            request_timeout,
            shutdown_timeout,
            shutdown_drain,
            header_read_timeout,
            max_connections,
            max_concurrent_requests,
            auto_migrate,
            cors_origins,
            retention,
            bootstrap,
            flows,
            outbound,
            custom_webhooks,
            log_format,
        })
    }

    /// The keyring: `TOKEN_ENCRYPTION_KEY` first (it encrypts), then the previous keys; `None`
    /// without a key (development: the caller uses an ephemeral one).
    pub fn keyring(&self) -> Option<crate::crypto::TokenCipher> {
        let primary = self.token_encryption_key.as_ref()?;
        let mut keys = vec![SecretBox::new(Box::new(*primary.expose_secret()))];
        keys.extend(
            self.token_encryption_previous_keys
                .iter()
                .map(|k| SecretBox::new(Box::new(*k.expose_secret()))),
        );
        Some(crate::crypto::TokenCipher::ring(&keys))
    }

    pub fn database_url(&self) -> &str {
        self.database_url.expose_secret()
    }
}

fn dev_base_url(addr: SocketAddr) -> Url {
    let port = addr.port();
    Url::parse(&format!("http://localhost:{port}"))
        .expect("a fixed host with a numeric port is a valid URL")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: AddonDefaults = AddonDefaults {
        key: "api-studio",
        name: "API Studio",
        slug: "api-studio",
    };
    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn prod() -> Env {
        Env::from_pairs([
            ("DATABASE_URL", "postgres://u:hunter2@db/x"),
            ("ADDON_BASE_URL", "https://addon.example.com"),
            ("TOKEN_ENCRYPTION_KEY", KEY),
        ])
    }

    #[test]
    fn production_needs_database_base_url_and_key() {
        let err = CoreConfig::from_env(&Env::default(), &DEFAULTS).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("DATABASE_URL is required"), "{text}");
        assert!(text.contains("ADDON_BASE_URL is required"), "{text}");
        assert!(text.contains("TOKEN_ENCRYPTION_KEY is required"), "{text}");
        assert_eq!(err.problems.len(), 3);
    }

    #[test]
    fn valid_production_config_loads_with_defaults() {
        let cfg = CoreConfig::from_env(&prod(), &DEFAULTS).unwrap();
        assert_eq!(cfg.mode, Mode::Production);
        assert_eq!(cfg.addon_key, "api-studio");
        assert_eq!(cfg.api.rate_limit_per_second, 50);
        assert_eq!(cfg.retention.webhook_log_days, 90);
        assert_eq!(cfg.retention.flow_executions_days, 30);
        assert_eq!(cfg.retention.entity_cache_days, 7);
        assert_eq!(cfg.listen_addr.port(), 8080);
        assert!(cfg.token_encryption_key.is_some());
    }

    #[test]
    fn bad_values_name_the_variable_and_never_print_secrets() {
        let mut env = prod();
        env.set("DATABASE_URL", "mysql://root:hunter2@db/x");
        env.set("TOKEN_ENCRYPTION_KEY", "c2hvcnQ=");
        env.set("CLOCKIFY_API_RATE_LIMIT", "fifty");
        env.set("ADDON_LISTEN_ADDR", "nowhere");
        env.set("LOG_FORMAT", "xml");
        let err = CoreConfig::from_env(&env, &DEFAULTS).unwrap_err();
        let text = err.to_string();
        for var in [
            "DATABASE_URL",
            "TOKEN_ENCRYPTION_KEY",
            "CLOCKIFY_API_RATE_LIMIT",
            "ADDON_LISTEN_ADDR",
            "LOG_FORMAT",
        ] {
            assert!(text.contains(var), "{var} missing from: {text}");
        }
        assert!(
            text.contains("\"fifty\""),
            "non-secret values are quoted: {text}"
        );
        assert!(!text.contains("hunter2"), "secret leaked: {text}");
        assert!(!text.contains("c2hvcnQ"), "secret leaked: {text}");
    }

    #[test]
    fn production_refuses_plain_http_base_url() {
        let mut env = prod();
        env.set("ADDON_BASE_URL", "http://addon.example.com");
        let text = CoreConfig::from_env(&env, &DEFAULTS)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("ADDON_BASE_URL: production requires an https:// URL"),
            "{text}"
        );
    }

    #[test]
    fn development_has_embedded_defaults() {
        let env = Env::from_pairs([
            ("ADDON_MODE", "development"),
            ("ADDON_LISTEN_ADDR", "127.0.0.1:8000"),
        ]);
        let cfg = CoreConfig::from_env(&env, &DEFAULTS).unwrap();
        assert_eq!(cfg.base_url.as_str(), "http://localhost:8000/");
        assert!(cfg.database_url().starts_with("sqlite://"));
        assert!(cfg.token_encryption_key.is_none());
    }

    #[test]
    fn production_refuses_sqlite_self_migration_and_a_drain_past_the_deadline() {
        for (name, value, expected) in [
            (
                "DATABASE_URL",
                "sqlite://x.db?mode=rwc",
                "production needs PostgreSQL",
            ),
            (
                "DATABASE_AUTO_MIGRATE",
                "true",
                "production never migrates on its own",
            ),
            (
                "SHUTDOWN_DRAIN_SECONDS",
                "25",
                "SHUTDOWN_DRAIN_SECONDS (25) must be below SHUTDOWN_TIMEOUT_SECONDS (25)",
            ),
        ] {
            let mut env = prod();
            env.set(name, value);
            let text = CoreConfig::from_env(&env, &DEFAULTS)
                .unwrap_err()
                .to_string();
            assert!(text.contains(expected), "{name}={value}: {text}");
        }
        let mut env = prod();
        env.set("ADDON_MODE", "development");
        env.set("DATABASE_URL", "sqlite://x.db?mode=rwc");
        let cfg = CoreConfig::from_env(&env, &DEFAULTS).unwrap();
        assert!(cfg.auto_migrate, "development migrates by default");
    }

    #[test]
    fn durations_are_bounded_and_named() {
        for (name, value, expected) in [
            (
                "CLOCKIFY_API_TIMEOUT_SECONDS",
                "18446744073709551615",
                "from 1 to 300, got 18446744073709551615",
            ),
            ("SHUTDOWN_TIMEOUT_SECONDS", "601", "from 1 to 600, got 601"),
            ("SHUTDOWN_DRAIN_SECONDS", "121", "from 0 to 120, got 121"),
            (
                "HTTP_HEADER_READ_TIMEOUT_SECONDS",
                "0",
                "from 1 to 300, got 0",
            ),
            ("HTTP_MAX_CONNECTIONS", "0", "an integer from 1 to 1000000"),
            (
                "HTTP_MAX_CONCURRENT_REQUESTS",
                "100001",
                "an integer from 1 to 100000",
            ),
            ("FLOW_LEASE_SECONDS", "1", "from 2 to 3600, got 1"),
            (
                "RETENTION_INTERVAL_SECONDS",
                "-5",
                "a whole number of seconds from 1 to 604800, got \"-5\"",
            ),
            (
                "HTTP_REQUEST_TIMEOUT_SECONDS",
                "99999999999999999999",
                "from 1 to 600, got \"99999999999999999999\"",
            ),
        ] {
            let mut env = prod();
            env.set(name, value);
            let text = CoreConfig::from_env(&env, &DEFAULTS)
                .unwrap_err()
                .to_string();
            assert!(
                text.contains(&format!("{name}: expected")) && text.contains(expected),
                "{text}"
            );
        }
    }

    #[test]
    fn out_of_range_numbers_are_refused() {
        let mut env = prod();
        env.set("BOOTSTRAP_PAGE_SIZE", "500");
        env.set("ADDON_KEY", "x");
        let text = CoreConfig::from_env(&env, &DEFAULTS)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("BOOTSTRAP_PAGE_SIZE: expected an integer from 1 to 200, got 500"),
            "{text}"
        );
        assert!(
            text.contains("ADDON_KEY: must be 2 to 50 characters"),
            "{text}"
        );
    }

    #[test]
    fn the_public_key_must_be_rsa_pem() {
        let mut env = prod();
        env.set("CLOCKIFY_PUBLIC_KEY", "not a key");
        let text = CoreConfig::from_env(&env, &DEFAULTS)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("CLOCKIFY_PUBLIC_KEY: not a PEM-encoded RSA public key"),
            "{text}"
        );
    }

    #[test]
    fn embedded_key_is_clockifys_published_key() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/clockify/clockify-public-key.pem");
        let Ok(published) = std::fs::read_to_string(&path) else {
            eprintln!("skipped: {} is absent", path.display());
            return;
        };
        assert_eq!(published.trim(), CLOCKIFY_PUBLIC_KEY_PEM.trim());
    }

    #[test]
    fn every_variable_read_is_documented() {
        let full = include_str!("config.rs");
        let source = &full[..full.find("#[cfg(test)]").unwrap_or(full.len())];
        let documented: Vec<&str> = VARIABLES.iter().map(|v| v.name).collect();
        for piece in source
            .split("env.get(\"")
            .skip(1)
            .chain(source.split("(\"").skip(1))
        {
            let name: String = piece
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                .collect();
            let looks_like_var =
                name.len() > 3 && name.contains('_') && piece[name.len()..].starts_with('"');
            if looks_like_var {
                assert!(
                    documented.contains(&name.as_str()),
                    "{name} is read but not in VARIABLES"
                );
            }
        }
    }
}
