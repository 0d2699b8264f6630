//! The hosts the Clockify API client may call. Checked before any connection is made, so an
//! `apiUrl` from an install payload or a token claim can never point the client elsewhere (SSRF).

use url::Url;

use crate::hostrule::HostRule;

#[derive(Debug, Clone)]
pub struct HostAllowlist {
    rules: Vec<HostRule>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AllowlistError {
    #[error("not an absolute URL")]
    NotAUrl,
    #[error("host {host:?} is not on CLOCKIFY_API_ALLOWED_HOSTS")]
    HostNotAllowed { host: String },
}

impl Default for HostAllowlist {
    fn default() -> Self {
        Self::parse(Self::DEFAULT).expect("the default allowlist parses")
    }
}

impl HostAllowlist {
    /// Clockify's global host and every regional, reports and PTO host under clockify.me.
    pub const DEFAULT: &'static str = "api.clockify.me,*.clockify.me";

    pub fn parse(list: &str) -> Result<Self, String> {
        Ok(Self {
            rules: HostRule::parse_list(list, "https")?,
        })
    }

    /// Adds one rule (tests point the client at a local fake Clockify this way).
    pub fn with(mut self, entry: &str) -> Result<Self, String> {
        self.rules.push(HostRule::parse(entry, "https")?);
        Ok(self)
    }

    pub fn check(&self, url: &Url) -> Result<(), AllowlistError> {
        if self.rules.iter().any(|r| r.matches(url)) {
            return Ok(());
        }
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{}://{h}:{p}", url.scheme()),
            (Some(h), None) => format!("{}://{h}", url.scheme()),
            (None, _) => return Err(AllowlistError::NotAUrl),
        };
        Err(AllowlistError::HostNotAllowed { host })
    }

    pub fn check_str(&self, raw: &str) -> Result<Url, AllowlistError> {
        let url = Url::parse(raw).map_err(|_| AllowlistError::NotAUrl)?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(AllowlistError::NotAUrl);
        }
        self.check(&url)?;
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_accepts_clockify_regions_and_refuses_others() {
        let a = HostAllowlist::default();
        for ok in [
            "https://api.clockify.me/api",
            "https://euc1.clockify.me/api/v1",
            "https://use2.clockify.me/api",
            "https://euw2.clockify.me/api",
            "https://apse2.clockify.me/api",
            "https://reports.api.clockify.me/v1",
            "https://pto.api.clockify.me/v1",
        ] {
            assert!(a.check_str(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://api.clockify.me/api",
            "https://169.254.169.254/latest",
            "https://localhost/api",
            "https://clockify.me.attacker.net/api",
            "https://user:pw@api.clockify.me/api",
            "not a url",
        ] {
            assert!(a.check_str(bad).is_err(), "{bad}");
        }
    }
}
