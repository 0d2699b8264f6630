//! Scheme + host (+ port) rules with `*.suffix` wildcards, shared by the Clockify API host
//! allowlist and the CORS origin list.

use url::Url;

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    /// `*.clockify.me` is stored as `.clockify.me`: any subdomain, never the bare domain.
    Suffix(String),
}

/// One rule: `host`, `*.suffix`, optionally with `scheme://` and `:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRule {
    scheme: String,
    pattern: HostPattern,
    port: Option<u16>,
}

impl HostRule {
    /// Parses one rule; `default_scheme` applies when the entry has none.
    pub fn parse(entry: &str, default_scheme: &str) -> Result<Self, String> {
        let entry = entry.trim();
        let (scheme, rest) = match entry.split_once("://") {
            Some((s, r)) => (s.to_ascii_lowercase(), r),
            None => (default_scheme.to_owned(), entry),
        };
        if scheme != "https" && scheme != "http" {
            return Err(format!("{entry:?}: scheme must be http or https"));
        }
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('@') || rest.contains('?') {
            return Err(format!("{entry:?}: expected a host, not a URL with a path"));
        }
        let (host, port) = match rest.rsplit_once(':') {
            // `[::1]` has colons but no port; `[::1]:80` and `host:80` do.
            Some((h, p)) if !p.contains(']') => {
                let port = p
                    .parse::<u16>()
                    .map_err(|_| format!("{entry:?}: bad port {p:?}"))?;
                (h, Some(port))
            }
            _ => (rest, None),
        };
        let host = host.to_ascii_lowercase();
        let pattern = if let Some(suffix) = host.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') || !suffix.contains('.') {
                return Err(format!(
                    "{entry:?}: a wildcard needs a domain with a dot, like *.clockify.me"
                ));
            }
            HostPattern::Suffix(format!(".{suffix}"))
        } else {
            if host.is_empty() || host.contains('*') {
                return Err(format!(
                    "{entry:?}: wildcards are only allowed as a leading `*.`"
                ));
            }
            HostPattern::Exact(host)
        };
        Ok(Self {
            scheme,
            pattern,
            port,
        })
    }

    pub fn parse_list(list: &str, default_scheme: &str) -> Result<Vec<Self>, String> {
        let rules: Vec<Self> = list
            .split(',')
            .filter(|e| !e.trim().is_empty())
            .map(|e| Self::parse(e, default_scheme))
            .collect::<Result<_, _>>()?;
        if rules.is_empty() {
            return Err("the list is empty".into());
        }
        Ok(rules)
    }

    /// Whether `url` (scheme, host, effective port) matches this rule.
    pub fn matches(&self, url: &Url) -> bool {
        if url.scheme() != self.scheme {
            return false;
        }
        let Some(host) = url.host_str() else {
            return false;
        };
        let host = host.to_ascii_lowercase();
        let host_ok = match &self.pattern {
            HostPattern::Exact(h) => *h == host,
            HostPattern::Suffix(s) => host.len() > s.len() && host.ends_with(s.as_str()),
        };
        let port_ok = match self.port {
            Some(p) => url.port_or_known_default() == Some(p),
            None => url.port().is_none(),
        };
        host_ok && port_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn wildcard_matches_subdomains_only() {
        let r = HostRule::parse("*.clockify.me", "https").unwrap();
        assert!(r.matches(&url("https://euc1.clockify.me/api")));
        assert!(r.matches(&url("https://reports.api.clockify.me/v1")));
        assert!(!r.matches(&url("https://clockify.me/")));
        assert!(!r.matches(&url("https://evilclockify.me/")));
        assert!(!r.matches(&url("https://clockify.me.evil.com/")));
        assert!(
            !r.matches(&url("http://euc1.clockify.me/")),
            "scheme must match"
        );
        assert!(
            !r.matches(&url("https://euc1.clockify.me:8443/")),
            "no other port"
        );
    }

    #[test]
    fn explicit_scheme_and_port() {
        let r = HostRule::parse("http://127.0.0.1:9000", "https").unwrap();
        assert!(r.matches(&url("http://127.0.0.1:9000/api")));
        assert!(!r.matches(&url("http://127.0.0.1:9001/api")));
        assert!(!r.matches(&url("https://127.0.0.1:9000/api")));
    }

    #[test]
    fn bad_entries_are_explained() {
        assert!(
            HostRule::parse("*", "https")
                .unwrap_err()
                .contains("wildcard")
        );
        assert!(
            HostRule::parse("ftp://x.com", "https")
                .unwrap_err()
                .contains("scheme")
        );
        assert!(
            HostRule::parse("https://x.com/path", "https")
                .unwrap_err()
                .contains("path")
        );
        assert!(
            HostRule::parse("a.*.com", "https")
                .unwrap_err()
                .contains("leading")
        );
        assert!(
            HostRule::parse_list(" , ", "https")
                .unwrap_err()
                .contains("empty")
        );
    }
}
