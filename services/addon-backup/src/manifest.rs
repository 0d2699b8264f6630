//! The manifest written beside every backup: what it holds and how to check it. A dump without
//! its manifest is an unfinished backup (the manifest is written last) and is never restored.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The `format` of manifests this version writes and reads.
pub const FORMAT: &str = "clockify-addons-backup/v1";
pub const MANIFEST_SUFFIX: &str = ".json";
pub const DUMP_SUFFIX: &str = ".dump";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The backup's name: `<UTC time to the ms>-<add-on>[-<label>]`; the dump is `<id>.dump`.
    pub id: String,
    /// Which add-on's database this is (api-studio, universal-webhook, reference).
    pub addon: String,
    /// When pg_dump started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// When the dump was stored.
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
    /// The newest database migration applied when the backup was taken.
    pub schema_version: Option<i64>,
    /// The database's name (never its credentials).
    pub database: String,
    /// The PostgreSQL server's version.
    pub server_version: String,
    /// pg_dump's version line.
    pub pg_dump_version: String,
    /// The dump's object name, beside the manifest.
    pub dump: String,
    /// Size of the dump in bytes.
    pub size: u64,
    /// Hex SHA-256 of the dump.
    pub sha256: String,
    /// The pg_dump format (always `custom`).
    pub dump_format: String,
}

impl Manifest {
    /// Parses a manifest and checks it is one this version can restore.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let m: Manifest =
            serde_json::from_slice(bytes).map_err(|e| format!("not a backup manifest: {e}"))?;
        if m.format != FORMAT {
            return Err(format!(
                "unknown manifest format {:?} (this version reads {FORMAT})",
                m.format
            ));
        }
        if m.sha256.len() != 64 || !m.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("the manifest's sha256 is not 64 hex digits".into());
        }
        if m.dump.contains('/') || !m.dump.ends_with(DUMP_SUFFIX) {
            return Err(format!(
                "the manifest names an unexpected dump object {:?}",
                m.dump
            ));
        }
        Ok(m)
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }
}

/// `20261122T063000.123Z`: sorts like the time it names (to the millisecond, so backups taken
/// in the same second get ids of their own).
pub fn compact_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// A backup id: the UTC time, the add-on, and an optional label (such as the Job's name),
/// reduced to characters safe in object names and file names.
pub fn backup_id(started: OffsetDateTime, addon: &str, label: Option<&str>) -> String {
    let mut id = format!("{}-{addon}", compact_time(started));
    if let Some(label) = label.map(sanitize).filter(|l| !l.is_empty()) {
        id.push('-');
        id.push_str(&label);
    }
    id
}

fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(100)
        .collect::<String>()
        .trim_matches('.')
        .to_owned()
}

/// Whether `id` is a well-formed backup id (what `restore --from` accepts besides `latest`).
pub fn is_backup_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 200
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !id.starts_with('.')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use time::macros::datetime;

    #[test]
    fn ids_sort_by_time_and_are_safe() {
        let a = backup_id(
            datetime!(2026-11-22 06:30:00 UTC),
            "api-studio",
            Some("job/../x y"),
        );
        assert_eq!(a, "20261122T063000.000Z-api-studio-job..xy");
        assert!(is_backup_id(&a));
        let b = backup_id(datetime!(2026-11-22 07:00:00 +01:00), "api-studio", None);
        assert_eq!(b, "20261122T060000.000Z-api-studio");
        assert!(b < a);
        assert!(!is_backup_id("../etc"));
        assert!(!is_backup_id(""));
    }

    #[test]
    fn manifests_round_trip_and_bad_ones_are_named() {
        let m = Manifest {
            format: FORMAT.into(),
            id: "20261122T063000Z-reference".into(),
            addon: "reference".into(),
            started_at: datetime!(2026-11-22 06:30:00 UTC),
            finished_at: datetime!(2026-11-22 06:30:02 UTC),
            schema_version: Some(4),
            database: "reference".into(),
            server_version: "15.20".into(),
            pg_dump_version: "pg_dump (PostgreSQL) 15.20".into(),
            dump: "20261122T063000Z-reference.dump".into(),
            size: 10,
            sha256: "a".repeat(64),
            dump_format: "custom".into(),
        };
        assert_eq!(Manifest::parse(&m.to_json()).unwrap(), m);
        let mut bad = m.clone();
        bad.sha256 = "xyz".into();
        assert!(
            Manifest::parse(&bad.to_json())
                .unwrap_err()
                .contains("sha256")
        );
        let mut bad = m.clone();
        bad.dump = "../../x.dump".into();
        assert!(
            Manifest::parse(&bad.to_json())
                .unwrap_err()
                .contains("dump object")
        );
        assert!(
            Manifest::parse(b"{}")
                .unwrap_err()
                .contains("not a backup manifest")
        );
    }
}
