//! Retention: periodic, batched deletes so old rows go without long locks. A period of 0 days
//! keeps a table forever.

use std::time::Duration;

use crate::app::AppState;
use crate::config::RetentionConfig;
use crate::db::{Backend, Db};
use crate::time::{DAY_MILLIS, now_millis};

/// One table's rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub table: &'static str,
    pub age: Age,
    pub days: u32,
}

/// How a row's age is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Age {
    /// A column of epoch milliseconds.
    Column(&'static str),
    /// The row's time-ordered id (UUIDv7, see [`crate::store::id_floor`]): the primary key
    /// serves the delete, so the table needs no index on a time column.
    Id,
}

pub fn rules(c: &RetentionConfig) -> Vec<Rule> {
    vec![
        Rule {
            table: "webhook_log",
            age: Age::Id,
            days: c.webhook_log_days,
        },
        Rule {
            table: "flow_executions",
            age: Age::Id,
            days: c.flow_executions_days,
        },
        Rule {
            table: "entity_cache",
            age: Age::Column("fetched_at"),
            days: c.entity_cache_days,
        },
        Rule {
            table: "api_calls",
            age: Age::Column("called_at"),
            days: c.api_calls_days,
        },
        // The dashboard's rate-limit waits are kept as long as the runs they slowed.
        Rule {
            table: "rate_limit_waits",
            age: Age::Column("hour"),
            days: c.flow_executions_days,
        },
    ]
}

/// The batched delete of one rule: `$1` is the cutoff (milliseconds, or the smallest id of that
/// time), `$2` the batch size.
///
/// The batch is chosen by walking the age column's index (the primary key for [`Age::Id`]) from
/// the oldest row, stopping at the cutoff (`ORDER BY ... LIMIT`), and deleted by the rows'
/// addresses, so neither half depends on what PostgreSQL's statistics say or on which plan its
/// cache keeps. The form `key IN (SELECT key ... LIMIT n)` did: on a table never analysed (new,
/// or autovacuum off) it was planned as a sequential scan for rows older than the cutoff, which
/// read every stored row to find none (100-270 ms per sweep on the flows benchmark's tables,
/// under load), and once analysed its generic plan joined the batch to a sequential scan of the
/// whole table. On PostgreSQL the rows go by `ctid` (a TID scan; a row updated meanwhile has a
/// new address and is skipped by that batch, not by the sweep: [`apply`] goes on until a batch
/// deletes nothing); on SQLite by `rowid`, whose tables all have one.
pub fn delete_sql(rule: &Rule, backend: Backend) -> String {
    let c = match rule.age {
        Age::Column(c) => c,
        Age::Id => "id",
    };
    // Table and column names come from the static rules above, never from input.
    let t = rule.table;
    match backend {
        Backend::Postgres => format!(
            "DELETE FROM {t} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {t} WHERE {c} < $1 ORDER BY {c} LIMIT $2))"
        ),
        Backend::Sqlite => format!(
            "DELETE FROM {t} WHERE rowid IN (SELECT rowid FROM {t} WHERE {c} < $1 ORDER BY {c} LIMIT $2)"
        ),
    }
}

/// Deletes rows older than the rule allows, `batch` at a time; returns how many went.
pub async fn apply(db: &Db, rule: &Rule, batch: u32, now: i64) -> Result<u64, sqlx::Error> {
    if rule.days == 0 {
        return Ok(0);
    }
    let cutoff = now - i64::from(rule.days) * DAY_MILLIS;
    // Table and column names come from the static rules above, never from input.
    let sql = delete_sql(rule, db.backend());
    let mut total = 0;
    loop {
        let q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
        let q = match rule.age {
            Age::Column(_) => q.bind(cutoff),
            Age::Id => q.bind(crate::store::id_floor(cutoff)),
        };
        let n = q
            .bind(i64::from(batch))
            .execute(db.pool())
            .await?
            .rows_affected();
        total += n;
        // A short batch may be one whose rows were updated meanwhile (PostgreSQL deletes by
        // address), so only an empty one ends the sweep; it costs one walk of the index that
        // finds nothing.
        if n == 0 {
            return Ok(total);
        }
        tokio::task::yield_now().await;
    }
}

/// One pass over every rule.
pub async fn sweep(state: &AppState) {
    let now = now_millis();
    for rule in rules(&state.config.retention) {
        match apply(&state.db, &rule, state.config.retention.batch_size, now).await {
            Ok(0) => {}
            Ok(n) => {
                state
                    .metrics
                    .retention_deleted
                    .with_label_values(&[rule.table])
                    .inc_by(n);
                tracing::info!(
                    table = rule.table,
                    deleted = n,
                    days = rule.days,
                    "retention"
                );
            }
            Err(e) => {
                tracing::warn!(table = rule.table, error = %e, "retention failed; retrying next interval")
            }
        }
    }
}

pub async fn run(state: AppState) {
    // A short delay so start-up is not slowed by a large first sweep.
    let mut next = Duration::from_secs(30).min(state.config.retention.interval);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(next) => {}
            _ = state.shutdown.cancelled() => return,
        }
        sweep(&state).await;
        next = state.config.retention.interval;
    }
}
