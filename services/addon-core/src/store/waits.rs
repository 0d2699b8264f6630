//! Waits for rate limits per workspace and hour (migration 0008): what the dashboard shows as
//! "rate-limit waits". The Clockify client reports a call that waited for the add-on's own
//! per-workspace limit or for Clockify's 429 answers; they are tallied and written in batches.

use std::collections::HashMap;

use sqlx::Row;

use super::Db;

const HOUR: i64 = 3_600_000;

/// Waits counted in memory until the next [`flush`]: one write per workspace and hour every
/// few seconds, whatever the number of calls that waited (a busy workspace waits on most).
#[derive(Debug, Default)]
pub struct Tally(std::sync::Mutex<HashMap<(String, i64), Counts>>);

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    waits: i64,
    throttled: i64,
    wait_ms: i64,
}

impl Counts {
    fn merge(&mut self, o: Counts) {
        self.waits += o.waits;
        self.throttled += o.throttled;
        self.wait_ms += o.wait_ms;
    }
}

impl Tally {
    /// One call that waited `wait_ms` at `at` (and whether Clockify answered it 429).
    pub fn add(&self, workspace_id: &str, at: i64, wait_ms: i64, throttled: bool) {
        let counts = Counts {
            waits: 1,
            throttled: i64::from(throttled),
            wait_ms,
        };
        self.merge(workspace_id.to_owned(), at - at.rem_euclid(HOUR), counts);
    }

    fn merge(&self, workspace_id: String, hour: i64, counts: Counts) {
        if let Ok(mut m) = self.0.lock() {
            m.entry((workspace_id, hour)).or_default().merge(counts);
        }
    }

    fn take(&self) -> Vec<((String, i64), Counts)> {
        self.0
            .lock()
            .map(|mut m| m.drain().collect())
            .unwrap_or_default()
    }
}

/// Writes what the tally holds; what cannot be written stays for the next flush.
pub async fn flush(db: &Db, tally: &Tally) -> Result<usize, sqlx::Error> {
    let mut written = 0;
    let mut pending = tally.take().into_iter();
    while let Some(((ws, hour), c)) = pending.next() {
        let result = sqlx::query(RECORD)
            .bind(&ws)
            .bind(hour)
            .bind(c.waits)
            .bind(c.throttled)
            .bind(c.wait_ms)
            .execute(db.pool())
            .await;
        if let Err(e) = result {
            tally.merge(ws, hour, c);
            for ((ws, hour), c) in pending {
                tally.merge(ws, hour, c);
            }
            return Err(e);
        }
        written += 1;
    }
    Ok(written)
}

/// Flushes every two seconds, and once more when the add-on stops.
pub async fn run(db: Db, tally: std::sync::Arc<Tally>, stop: tokio_util::sync::CancellationToken) {
    loop {
        let stopping = tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => false,
            _ = stop.cancelled() => true,
        };
        if let Err(e) = flush(&db, &tally).await {
            tracing::warn!(error = %e, "cannot record rate-limit waits; retrying");
        }
        if stopping {
            return;
        }
    }
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
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (workspace_id, hour) DO UPDATE SET waits = rate_limit_waits.waits + excluded.waits,
             throttled = rate_limit_waits.throttled + excluded.throttled,
             wait_ms = rate_limit_waits.wait_ms + excluded.wait_ms";
const PER_HOUR: &str = "SELECT hour, waits, throttled, wait_ms FROM rate_limit_waits
         WHERE workspace_id = $1 AND hour >= $2 ORDER BY hour";

pub(crate) const STATEMENTS: &[(&str, &str)] =
    &[("waits::record", RECORD), ("waits::per_hour", PER_HOUR)];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_add_up_per_workspace_and_hour() {
        let t = Tally::default();
        t.add("ws1", 3_600_000 + 5, 100, false);
        t.add("ws1", 3_600_000 + 9_000, 1_000, true);
        t.add("ws1", 7_200_000, 7, false);
        t.add("ws2", 3_600_000, 1, false);
        let mut all = t.take();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            all,
            [
                (
                    ("ws1".into(), 3_600_000),
                    Counts {
                        waits: 2,
                        throttled: 1,
                        wait_ms: 1_100
                    }
                ),
                (
                    ("ws1".into(), 7_200_000),
                    Counts {
                        waits: 1,
                        throttled: 0,
                        wait_ms: 7
                    }
                ),
                (
                    ("ws2".into(), 3_600_000),
                    Counts {
                        waits: 1,
                        throttled: 0,
                        wait_ms: 1
                    }
                ),
            ]
        );
        assert!(t.take().is_empty(), "taken once");
    }
}
