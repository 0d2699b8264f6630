//! Waits for rate limits per workspace and hour (migration 0008): what the dashboard shows as
//! "rate-limit waits". The Clockify client records a call that waited for the add-on's own
//! per-workspace limit or for Clockify's 429 answers.

use sqlx::Row;

use super::Db;

const HOUR: i64 = 3_600_000;

/// Adds one call that waited `wait_ms` (and whether Clockify answered it 429) to its hour.
pub async fn record(
    db: &Db,
    workspace_id: &str,
    at: i64,
    wait_ms: i64,
    throttled: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(RECORD)
        .bind(workspace_id)
        .bind(at - at.rem_euclid(HOUR))
        .bind(i64::from(throttled))
        .bind(wait_ms)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// One hour's waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hour {
    /// Epoch millis of the hour's start.
    pub hour: i64,
    pub waits: i64,
    pub throttled: i64,
    pub wait_ms: i64,
}

/// The hours since `since` that had waits, oldest first.
pub async fn per_hour(db: &Db, workspace_id: &str, since: i64) -> Result<Vec<Hour>, sqlx::Error> {
    let rows = sqlx::query(PER_HOUR)
        .bind(workspace_id)
        .bind(since)
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Hour {
                hour: r.try_get("hour")?,
                waits: r.try_get("waits")?,
                throttled: r.try_get("throttled")?,
                wait_ms: r.try_get("wait_ms")?,
            })
        })
        .collect()
}

// Every statement this module issues, named for the SQL contract (see `store::contract`).
const RECORD: &str = "INSERT INTO rate_limit_waits (workspace_id, hour, waits, throttled, wait_ms)
         VALUES ($1, $2, 1, $3, $4)
         ON CONFLICT (workspace_id, hour) DO UPDATE SET waits = rate_limit_waits.waits + 1,
             throttled = rate_limit_waits.throttled + excluded.throttled,
             wait_ms = rate_limit_waits.wait_ms + excluded.wait_ms";
const PER_HOUR: &str = "SELECT hour, waits, throttled, wait_ms FROM rate_limit_waits
         WHERE workspace_id = $1 AND hour >= $2 ORDER BY hour";

pub(crate) const STATEMENTS: &[(&str, &str)] =
    &[("waits::record", RECORD), ("waits::per_hour", PER_HOUR)];
