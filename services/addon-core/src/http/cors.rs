//! CORS limited to Clockify's web origins (configurable).

use axum::http::{HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};
use url::Url;

use crate::hostrule::HostRule;

#[derive(Debug, Clone)]
pub struct OriginList {
    rules: Vec<HostRule>,
    entries: Vec<String>,
}

impl Default for OriginList {
    fn default() -> Self {
        Self::parse(Self::DEFAULT).expect("the default origin list parses")
    }
}

impl OriginList {
    pub const DEFAULT: &'static str = "https://clockify.me,https://*.clockify.me";

    pub fn parse(list: &str) -> Result<Self, String> {
        let rules = HostRule::parse_list(list, "https")?;
        let entries = list
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect();
        Ok(Self { rules, entries })
    }

    /// The origins as CSP source expressions (for `frame-ancestors`).
    pub fn csp_sources(&self) -> String {
        self.entries.join(" ")
    }

    pub fn allows(&self, origin: &str) -> bool {
        match Url::parse(origin) {
            Ok(url) => url.path() == "/" && self.rules.iter().any(|r| r.matches(&url)),
            Err(_) => false,
        }
    }

    pub fn layer(&self) -> CorsLayer {
        let list = self.clone();
        CorsLayer::new()
            .allow_origin(AllowOrigin::predicate(move |origin: &HeaderValue, _| {
                origin.to_str().map(|o| list.allows(o)).unwrap_or(false)
            }))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .max_age(std::time::Duration::from_secs(600))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clockify_origins_only() {
        let o = OriginList::default();
        assert!(o.allows("https://clockify.me"));
        assert!(o.allows("https://app.clockify.me"));
        assert!(!o.allows("https://evil.example"));
        assert!(!o.allows("http://app.clockify.me"));
        assert!(!o.allows("null"));
    }
}
