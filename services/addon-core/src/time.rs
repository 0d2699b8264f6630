//! Time as the database stores it: milliseconds since the Unix epoch (portable across
//! PostgreSQL and SQLite), rendered as RFC 3339 in API responses.

use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn now_secs() -> i64 {
    now_millis() / 1000
}

pub const DAY_MILLIS: i64 = 24 * 60 * 60 * 1000;

/// RFC 3339 text for a stored timestamp.
pub fn rfc3339(millis: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

pub fn rfc3339_opt(millis: Option<i64>) -> Option<String> {
    millis.map(rfc3339)
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_utc() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            super::rfc3339(1_600_000_000_123),
            "2020-09-13T12:26:40.123Z"
        );
    }
}
