//! The Clockify API client: host allowlist checked before connecting, the per-workspace rate
//! limit before every attempt, bounded retries with exponential backoff and jitter on 429
//! (honouring `Retry-After`) and 5xx, timeouts, and the installation token kept out of every
//! log line and error.

use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use reqwest::Method;
use reqwest::header::{HeaderValue, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use url::Url;

use super::allowlist::{AllowlistError, HostAllowlist};
use super::ratelimit::RateLimiter;
use crate::config::ApiClientConfig;
use crate::metrics::Metrics;

/// Largest response body read from Clockify.
const MAX_RESPONSE_BYTES: usize = 10 * 1024 * 1024;
/// A `Retry-After` longer than this is not waited for: the 429 is returned to the caller.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Where and as whom to call: one installation.
#[derive(Clone)]
pub struct ApiTarget {
    pub workspace_id: String,
    /// The installation's `apiUrl`, e.g. `https://api.clockify.me/api`.
    pub api_url: String,
    pub token: SecretString,
}

impl std::fmt::Debug for ApiTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiTarget")
            .field("workspace_id", &self.workspace_id)
            .field("api_url", &self.api_url)
            .finish()
    }
}

/// One call, relative to the API base: `path` starts with `/v1/`.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    /// A JSON body.
    pub body: Option<Value>,
    /// A `multipart/form-data` body instead (Clockify's uploads: expenses with a receipt, images).
    pub form: Option<Vec<FormField>>,
}

/// One part of a `multipart/form-data` body.
#[derive(Debug, Clone)]
pub enum FormField {
    Text {
        name: String,
        value: String,
    },
    File {
        name: String,
        filename: String,
        content_type: String,
        bytes: bytes::Bytes,
    },
}

/// The form for one attempt (a `reqwest` form is consumed by the request that sends it).
fn multipart(fields: &[FormField]) -> Result<reqwest::multipart::Form, String> {
    let mut form = reqwest::multipart::Form::new();
    for field in fields {
        form = match field {
            FormField::Text { name, value } => form.text(name.clone(), value.clone()),
            FormField::File {
                name,
                filename,
                content_type,
                bytes,
            } => form.part(
                name.clone(),
                reqwest::multipart::Part::bytes(bytes.to_vec())
                    .file_name(filename.clone())
                    .mime_str(content_type)
                    .map_err(|e| format!("{name}: content type {content_type:?}: {e}"))?,
            ),
        };
    }
    Ok(form)
}

impl ApiRequest {
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: Method::GET,
            path: path.into(),
            query: Vec::new(),
            body: None,
            form: None,
        }
    }

    pub fn query(mut self, name: &str, value: impl ToString) -> Self {
        self.query.push((name.to_owned(), value.to_string()));
        self
    }
}

/// Clockify's answer (any status; see [`ApiResponse::is_success`]).
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub body: Value,
    pub attempts: u32,
    pub duration: Duration,
}

impl ApiResponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("refused before connecting: {0}")]
    NotAllowed(#[from] AllowlistError),
    #[error(
        "invalid API path {0:?}: expected /v1/... whose segments, percent-decoded, are not empty, `.` or `..` and hold no `/`, `\\`, `?`, `#` or spaces"
    )]
    BadPath(String),
    #[error(
        "API path {path:?} leaves workspace {workspace}: calls run only in the installation's own workspace"
    )]
    OtherWorkspace { path: String, workspace: String },
    #[error("Clockify API request timed out after {attempts} attempt(s)")]
    Timeout { attempts: u32 },
    #[error("cannot reach the Clockify API after {attempts} attempt(s): {message}")]
    Transport { attempts: u32, message: String },
}

impl ApiError {
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::NotAllowed(_) | Self::BadPath(_) | Self::OtherWorkspace { .. } => "refused",
            Self::Timeout { .. } => "timeout",
            Self::Transport { .. } => "transport",
        }
    }
}

/// Told of every call that waited for a rate limit: the workspace, how long, and whether
/// Clockify answered it 429 (the app stores it for the dashboard).
#[derive(Clone)]
pub struct WaitRecorder(pub std::sync::Arc<WaitFn>);

/// (workspace, how long it waited, whether Clockify answered 429).
pub type WaitFn = dyn Fn(&str, Duration, bool) + Send + Sync;

impl std::fmt::Debug for WaitRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WaitRecorder")
    }
}

#[derive(Clone, Debug)]
pub struct ClockifyClient {
    http: reqwest::Client,
    allowlist: HostAllowlist,
    limiter: RateLimiter,
    max_retries: u32,
    min_backoff: Duration,
    metrics: Metrics,
    waits: Option<WaitRecorder>,
}

/// Installs the ring TLS provider for every rustls user in the process (idempotent).
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl ClockifyClient {
    pub fn new(
        config: &ApiClientConfig,
        limiter: RateLimiter,
        metrics: Metrics,
    ) -> Result<Self, reqwest::Error> {
        install_tls_provider();
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(Duration::from_secs(5).min(config.timeout))
            // A redirect could lead off the allowlist: never follow one.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("clockify-addons/", env!("CARGO_PKG_VERSION")))
            // Over TLS the client offers HTTP/2, which carries every call on one connection.
            // Over HTTP/1.1 a connection carries one call at a time: every connection a load
            // needed is kept for its next call, since a cap on idle ones made a steady load
            // close and reopen them, a TLS handshake each (one per two calls at 64 busy
            // workspaces, and a fifth less throughput; docs/design.md). The calls in flight
            // are bounded by the executor's slots, and an idle connection closes after 30 s.
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            http,
            allowlist: config.allowed_hosts.clone(),
            limiter,
            max_retries: config.max_retries,
            min_backoff: Duration::from_millis(200),
            metrics,
            waits: None,
        })
    }

    /// Reports every call that waited for a rate limit to `recorder`.
    pub fn with_wait_recorder(mut self, recorder: WaitRecorder) -> Self {
        self.waits = Some(recorder);
        self
    }

    /// Shortens the first backoff step (tests).
    pub fn with_min_backoff(mut self, d: Duration) -> Self {
        self.min_backoff = d;
        self
    }

    pub fn allowlist(&self) -> &HostAllowlist {
        &self.allowlist
    }

    pub fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }

    /// Checks that an `apiUrl` is one the client would call.
    pub fn check_api_url(&self, api_url: &str) -> Result<Url, AllowlistError> {
        self.allowlist.check_str(api_url)
    }

    /// The URL of a request, checked as the server will read it: every segment is
    /// percent-decoded before it is judged (so `%2e%2e` is the `..` it means), a path under
    /// `/v1/workspaces/` must name the target's own workspace, and the URL the parser builds must
    /// hold exactly the path asked for (nothing normalised away), so what is checked, sent and
    /// logged is one path.
    fn url(&self, target: &ApiTarget, req: &ApiRequest) -> Result<Url, ApiError> {
        let p = &req.path;
        let bad = || ApiError::BadPath(p.clone());
        scoped_path(p, &target.workspace_id)?;
        let base = self.allowlist.check_str(&target.api_url)?;
        let base_path = base.path().trim_end_matches('/').to_owned();
        let mut url = Url::parse(&format!("{}{}", base.as_str().trim_end_matches('/'), p))
            .map_err(|_| bad())?;
        if url.path() != format!("{base_path}{p}") {
            return Err(bad());
        }
        if !req.query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(req.query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        // The joined URL must still be on the allowlist (the host can never change, but check).
        self.allowlist.check(&url)?;
        Ok(url)
    }

    fn retryable(method: &Method, status: u16) -> bool {
        let idempotent = matches!(
            *method,
            Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
        );
        match status {
            429 | 503 => true,
            500 | 502 | 504 => idempotent,
            _ => false,
        }
    }

    /// Sends one request with retries. A response of any status is `Ok`; `Err` means no usable
    /// answer (refused, timed out, unreachable).
    pub async fn send(
        &self,
        target: &ApiTarget,
        req: &ApiRequest,
    ) -> Result<ApiResponse, ApiError> {
        let started = Instant::now();
        let result = self.send_inner(target, req, started).await;
        self.metrics
            .api_duration
            .observe(started.elapsed().as_secs_f64());
        let outcome = match &result {
            Ok(r) if r.status == 429 => "429",
            Ok(r) => match r.status {
                200..=299 => "2xx",
                300..=399 => "3xx",
                400..=499 => "4xx",
                _ => "5xx",
            },
            Err(e) => e.outcome(),
        };
        self.metrics.api_calls.with_label_values(&[outcome]).inc();
        if let Err(e) = &result {
            tracing::warn!(workspace_id = %target.workspace_id, method = %req.method, path = %req.path, error = %e, "Clockify API call failed");
        }
        result
    }

    async fn send_inner(
        &self,
        target: &ApiTarget,
        req: &ApiRequest,
        started: Instant,
    ) -> Result<ApiResponse, ApiError> {
        let url = self.url(target, req)?;
        let mut token = HeaderValue::from_str(target.token.expose_secret()).map_err(|_| {
            ApiError::Transport {
                attempts: 0,
                message: "installation token is not a valid header value".into(),
            }
        })?;
        token.set_sensitive(true);
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(self.min_backoff)
            .with_max_delay(Duration::from_secs(10))
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(self.max_retries as usize)
            .build();
        let mut attempts = 0u32;
        // Time spent waiting for rate limits (ours, and Clockify's 429s), for the dashboard.
        let mut waited_total = Duration::ZERO;
        let mut throttled = false;
        let record = |waited: Duration, throttled: bool| {
            if let Some(r) = &self.waits
                && (throttled || waited >= Duration::from_millis(1))
            {
                (r.0)(&target.workspace_id, waited, throttled);
            }
        };
        loop {
            attempts += 1;
            let waited = self.limiter.acquire(&target.workspace_id).await;
            waited_total += waited;
            self.metrics.rate_limit_wait.observe(waited.as_secs_f64());
            let mut rb = self
                .http
                .request(req.method.clone(), url.clone())
                .header("X-Addon-Token", token.clone());
            if let Some(body) = &req.body {
                rb = rb.json(body);
            } else if let Some(fields) = &req.form {
                rb = rb.multipart(
                    multipart(fields)
                        .map_err(|message| ApiError::Transport { attempts, message })?,
                );
            }
            match rb.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    throttled |= status == 429;
                    if Self::retryable(&req.method, status) {
                        let retry_after = retry_after(resp.headers().get(RETRY_AFTER));
                        if let Some(delay) = backoff.next() {
                            let delay = match retry_after {
                                Some(ra) if ra > MAX_RETRY_AFTER => None,
                                Some(ra) => Some(ra.max(delay)),
                                None => Some(delay),
                            };
                            if let Some(delay) = delay {
                                tracing::debug!(status, attempt = attempts, delay_ms = delay.as_millis() as u64, path = %req.path, "retrying Clockify API call");
                                tokio::time::sleep(delay).await;
                                if status == 429 {
                                    waited_total += delay;
                                }
                                continue;
                            }
                        }
                    }
                    let body = read_body(resp).await;
                    record(waited_total, throttled);
                    return Ok(ApiResponse {
                        status,
                        body,
                        attempts,
                        duration: started.elapsed(),
                    });
                }
                Err(e) => {
                    let timeout = e.is_timeout();
                    // A connection that never opened sent nothing: safe to retry for any method.
                    let retry = e.is_connect()
                        || (timeout && !matches!(req.method, Method::POST | Method::PATCH));
                    if retry && let Some(delay) = backoff.next() {
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    record(waited_total, throttled);
                    return Err(if timeout {
                        ApiError::Timeout { attempts }
                    } else {
                        ApiError::Transport {
                            attempts,
                            message: describe(&e),
                        }
                    });
                }
            }
        }
    }
}

/// A transport error without the URL's query (it may carry user data) and never a header.
fn describe(e: &reqwest::Error) -> String {
    let mut msg = if e.is_connect() {
        "connection failed".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    if let Some(s) = source.take() {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
    }
    msg
}

async fn read_body(mut resp: reqwest::Response) -> Value {
    let mut buf = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        if buf.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Value::String(format!(
                "<response larger than {MAX_RESPONSE_BYTES} bytes truncated>"
            ));
        }
        buf.extend_from_slice(&chunk);
    }
    if buf.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(&buf)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&buf).into_owned()))
}

/// `Retry-After` as seconds or an HTTP date.
/// Judges an API path as the server will read it: `/v1/...`, printable ASCII, every segment
/// percent-decoded and then refused when empty, `.`, `..` or holding a separator, a control
/// character or another `%` (double encoding); a path under `/v1/workspaces/{id}` must name
/// `workspace_id`. Returns the decoded segments.
pub fn scoped_path(p: &str, workspace_id: &str) -> Result<Vec<String>, ApiError> {
    let bad = || ApiError::BadPath(p.to_owned());
    if !p.starts_with("/v1/") || !p.chars().all(|c| c.is_ascii_graphic()) {
        return Err(bad());
    }
    let mut decoded = Vec::new();
    for segment in p[1..].split('/') {
        let d = percent_encoding::percent_decode_str(segment)
            .decode_utf8()
            .map_err(|_| bad())?;
        if d.is_empty()
            || d == "."
            || d == ".."
            || d.contains(['/', '\\', '?', '#', ' ', '%'])
            || d.chars().any(char::is_control)
            || segment.contains(['?', '#', '\\'])
        {
            return Err(bad());
        }
        decoded.push(d.into_owned());
    }
    if decoded.get(1).is_some_and(|s| s == "workspaces")
        && let Some(named) = decoded.get(2)
        && named != workspace_id
    {
        return Err(ApiError::OtherWorkspace {
            path: p.to_owned(),
            workspace: workspace_id.to_owned(),
        });
    }
    Ok(decoded)
}

pub fn retry_after(value: Option<&HeaderValue>) -> Option<Duration> {
    let text = value?.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(text).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(
            retry_after(Some(&HeaderValue::from_static("3"))),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            retry_after(Some(&HeaderValue::from_static(
                "Wed, 21 Oct 2015 07:28:00 GMT"
            ))),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(Some(&HeaderValue::from_static("soon"))), None);
        assert_eq!(retry_after(None), None);
    }

    #[test]
    fn retry_policy_by_method() {
        assert!(ClockifyClient::retryable(&Method::POST, 429));
        assert!(ClockifyClient::retryable(&Method::POST, 503));
        assert!(!ClockifyClient::retryable(&Method::POST, 500));
        assert!(ClockifyClient::retryable(&Method::GET, 500));
        assert!(!ClockifyClient::retryable(&Method::GET, 404));
    }
}
