//! Outbound HTTP for GENERIC_HTTP flow actions.
//!
//! A request leaves only for a host on the workspace's allowlist (checked before connecting),
//! and never for a loopback, private, link-local or otherwise non-public address: every address
//! a name resolves to is checked, so DNS cannot point an allowed name inside the cluster
//! (unless `GENERIC_HTTP_ALLOW_PRIVATE_NETWORKS`). Redirects are not followed, proxies from the
//! environment are ignored, each request has a timeout, 429/5xx/connection failures are retried
//! a bounded number of times with backoff and jitter (honouring `Retry-After`), and every
//! attempt carries the same `Idempotency-Key` so a receiver can drop repeats. Credentials in
//! headers are marked sensitive and never logged.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use reqwest::header::RETRY_AFTER;
use url::Url;

use crate::clockify::client::retry_after;
use crate::flows::eval::HttpCall;
use crate::hostrule::HostRule;
use crate::metrics::Metrics;

/// Longest response excerpt kept in the execution log.
pub const EXCERPT_BYTES: usize = 2048;
/// Largest response body read at all.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// A `Retry-After` longer than this is not waited for inside one attempt.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// Header names whose values are credentials: marked sensitive, redacted in the execution log.
pub fn is_sensitive_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == "authorization"
        || n == "cookie"
        || n.contains("token")
        || n.contains("secret")
        || n.contains("signature")
        || n.contains("api-key")
        || n.contains("apikey")
        || n.contains("password")
}

/// The hosts one workspace's GENERIC_HTTP actions may call.
#[derive(Debug, Clone, Default)]
pub struct WorkspaceAllowlist {
    rules: Vec<HostRule>,
}

impl WorkspaceAllowlist {
    /// Parses stored rules; `Err` names the first bad one.
    pub fn parse<'a>(rules: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let rules = rules
            .into_iter()
            .map(|r| HostRule::parse(r, "https").map_err(|e| format!("{r:?}: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(Self { rules })
    }

    pub fn allows(&self, url: &Url) -> bool {
        self.rules.iter().any(|r| r.matches(url))
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// One allowlist entry as the UI submits it, normalised and checked.
pub fn normalise_rule(raw: &str) -> Result<String, String> {
    let rule = raw.trim().to_ascii_lowercase();
    if rule.is_empty() || rule.len() > 253 {
        return Err(
            "expected a host such as hooks.example.com, *.example.com or http://host:port".into(),
        );
    }
    if rule
        .chars()
        .any(|c| !(c.is_ascii_alphanumeric() || ".-:*/[]_".contains(c)))
    {
        return Err(format!(
            "{raw:?}: a host has only letters, digits, dots and dashes"
        ));
    }
    HostRule::parse(&rule, "https")?;
    Ok(rule)
}

#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("refused before connecting: {host} is not on this workspace's HTTP allowlist")]
    NotAllowed { host: String },
    #[error("refused before connecting: {host} is a private or local address")]
    PrivateAddress { host: String },
    #[error("request timed out after {attempts} attempt(s)")]
    Timeout { attempts: u32 },
    #[error("cannot reach {host} after {attempts} attempt(s): {message}")]
    Transport {
        host: String,
        attempts: u32,
        message: String,
    },
}

impl OutboundError {
    /// Whether a later attempt could succeed (the execution is retried with backoff).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Timeout { .. } | Self::Transport { .. })
    }

    pub fn outcome(&self) -> &'static str {
        match self {
            Self::NotAllowed { .. } | Self::PrivateAddress { .. } => "refused",
            Self::Timeout { .. } => "timeout",
            Self::Transport { .. } => "transport",
        }
    }
}

/// The answer to an outbound request (any status).
#[derive(Debug, Clone)]
pub struct OutboundResponse {
    pub status: u16,
    /// The first [`EXCERPT_BYTES`] of the body, as text.
    pub excerpt: String,
    pub attempts: u32,
    pub duration: Duration,
}

impl OutboundResponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// 429 and 5xx: worth another attempt later.
    pub fn is_transient_failure(&self) -> bool {
        self.status == 429 || self.status >= 500
    }
}

/// Whether an address is on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                // 100.64.0.0/10: carrier-grade NAT; 198.18.0.0/15: benchmarking.
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let seg = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // fc00::/7 unique local, fe80::/10 link-local, 2001:db8::/32 documentation.
                || (seg[0] & 0xfe00) == 0xfc00
                || (seg[0] & 0xffc0) == 0xfe80
                || (seg[0] == 0x2001 && seg[1] == 0x0db8))
        }
    }
}

/// A name that resolves only to non-public addresses: a refusal, not a network failure, so it
/// is never retried.
#[derive(Debug)]
struct ResolvesPrivate(String);

impl std::fmt::Display for ResolvesPrivate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} resolves only to private or local addresses", self.0)
    }
}

impl std::error::Error for ResolvesPrivate {}

/// Whether the error chain holds a [`ResolvesPrivate`].
fn resolved_private(e: &reqwest::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<ResolvesPrivate>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// Resolves names and drops every non-public address (all of them: a name that resolves only
/// inside the network fails to resolve).
#[derive(Debug)]
struct PublicOnlyResolver;

impl reqwest::dns::Resolve for PublicOnlyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = addrs.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(
                    Box::new(ResolvesPrivate(host)) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[derive(Debug, Clone)]
pub struct OutboundConfig {
    pub timeout: Duration,
    pub max_retries: u32,
    pub allow_private_networks: bool,
}

#[derive(Clone, Debug)]
pub struct OutboundClient {
    http: reqwest::Client,
    config: Arc<OutboundConfig>,
    min_backoff: Duration,
    metrics: Metrics,
}

impl OutboundClient {
    pub fn new(config: OutboundConfig, metrics: Metrics) -> Result<Self, reqwest::Error> {
        crate::clockify::client::install_tls_provider();
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(Duration::from_secs(5).min(config.timeout))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("clockify-addons/", env!("CARGO_PKG_VERSION")))
            .pool_idle_timeout(Duration::from_secs(30));
        if !config.allow_private_networks {
            builder = builder.dns_resolver(PublicOnlyResolver);
        }
        Ok(Self {
            http: builder.build()?,
            config: Arc::new(config),
            min_backoff: Duration::from_millis(200),
            metrics,
        })
    }

    /// Shortens the first backoff step (tests).
    pub fn with_min_backoff(mut self, d: Duration) -> Self {
        self.min_backoff = d;
        self
    }

    /// Checks the URL against the allowlist and, for IP literals, the address itself.
    fn admit(&self, allowlist: &WorkspaceAllowlist, url: &Url) -> Result<(), OutboundError> {
        let host = url.host_str().unwrap_or_default().to_owned();
        if !allowlist.allows(url) {
            let shown = match url.port() {
                Some(p) => format!("{}://{host}:{p}", url.scheme()),
                None => format!("{}://{host}", url.scheme()),
            };
            return Err(OutboundError::NotAllowed { host: shown });
        }
        if !self.config.allow_private_networks {
            let literal = match url.host() {
                Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
                Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
                _ => None,
            };
            if literal.is_some_and(|ip| !is_public(ip)) || host == "localhost" {
                return Err(OutboundError::PrivateAddress { host });
            }
        }
        Ok(())
    }

    /// Sends one request with bounded retries. Any status is `Ok`; `Err` means refused or no
    /// answer at all.
    pub async fn send(
        &self,
        allowlist: &WorkspaceAllowlist,
        call: &HttpCall,
        idempotency_key: &str,
    ) -> Result<OutboundResponse, OutboundError> {
        let started = Instant::now();
        let result = self
            .send_inner(allowlist, call, idempotency_key, started)
            .await;
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
        self.metrics
            .outbound_calls
            .with_label_values(&[outcome])
            .inc();
        self.metrics
            .outbound_duration
            .observe(started.elapsed().as_secs_f64());
        result
    }

    async fn send_inner(
        &self,
        allowlist: &WorkspaceAllowlist,
        call: &HttpCall,
        idempotency_key: &str,
        started: Instant,
    ) -> Result<OutboundResponse, OutboundError> {
        self.admit(allowlist, &call.url)?;
        let host = call.url.host_str().unwrap_or_default().to_owned();
        let timeout = call
            .timeout
            .unwrap_or(self.config.timeout)
            .min(self.config.timeout.max(Duration::from_secs(60)));
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(self.min_backoff)
            .with_max_delay(Duration::from_secs(5))
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(self.config.max_retries as usize)
            .build();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let mut rb = self
                .http
                .request(call.method.clone(), call.url.clone())
                .timeout(timeout)
                .header("Idempotency-Key", idempotency_key);
            for (name, value) in &call.headers {
                rb = rb.header(name.clone(), value.clone());
            }
            if let Some(body) = &call.body {
                rb = rb.json(body);
            }
            let err = match rb.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    if status == 429 || status >= 500 {
                        let ra = retry_after(resp.headers().get(RETRY_AFTER));
                        if ra.is_none_or(|d| d <= MAX_RETRY_AFTER)
                            && let Some(delay) = backoff.next()
                        {
                            tokio::time::sleep(ra.map_or(delay, |d| d.max(delay))).await;
                            continue;
                        }
                    }
                    return Ok(OutboundResponse {
                        status,
                        excerpt: read_excerpt(resp).await,
                        attempts,
                        duration: started.elapsed(),
                    });
                }
                Err(e) => e,
            };
            if resolved_private(&err) {
                return Err(OutboundError::PrivateAddress { host });
            }
            if let Some(delay) = backoff.next() {
                tokio::time::sleep(delay).await;
                continue;
            }
            return Err(if err.is_timeout() {
                OutboundError::Timeout { attempts }
            } else {
                OutboundError::Transport {
                    host,
                    attempts,
                    message: describe(&err),
                }
            });
        }
    }
}

/// A transport error without the URL (its query may carry data) and never a header.
fn describe(e: &reqwest::Error) -> String {
    let mut msg = if e.is_connect() {
        "connection failed".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    msg
}

async fn read_excerpt(mut resp: reqwest::Response) -> String {
    let mut buf = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        buf.extend_from_slice(&chunk);
        if buf.len() >= MAX_RESPONSE_BYTES {
            break;
        }
    }
    excerpt(&String::from_utf8_lossy(&buf), EXCERPT_BYTES)
}

/// The text cut to at most `max` bytes on a character boundary.
pub fn excerpt(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &text[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_addresses() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in [
            "1.1.1.1",
            "140.82.112.3",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn sensitive_headers() {
        for h in [
            "Authorization",
            "X-Api-Key",
            "X-Auth-Token",
            "X-Hub-Signature-256",
            "Cookie",
        ] {
            assert!(is_sensitive_header(h), "{h}");
        }
        for h in ["Content-Type", "X-Event", "Accept"] {
            assert!(!is_sensitive_header(h), "{h}");
        }
    }

    #[test]
    fn rules_normalise() {
        assert_eq!(
            normalise_rule(" Hooks.Example.com ").unwrap(),
            "hooks.example.com"
        );
        assert!(normalise_rule("*.example.com").is_ok());
        assert!(normalise_rule("http://127.0.0.1:9000").is_ok());
        assert!(normalise_rule("").is_err());
        assert!(normalise_rule("not a host/").is_err());
    }

    #[test]
    fn excerpts_cut_on_char_boundaries() {
        assert_eq!(excerpt("abc", 5), "abc");
        assert_eq!(excerpt("ééé", 3), "é…");
    }
}
