//! The webhook log: every verified delivery, de-duplicated by delivery (never by entity), and
//! the queue the flow worker claims from.

use std::sync::atomic::{AtomicI64, Ordering};

use serde::Serialize;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::Db;
use crate::db::Backend;
use crate::time::{now_millis, rfc3339, rfc3339_opt};

#[derive(Debug, Clone)]
pub struct IncomingWebhook {
    pub id: String,
    pub workspace_id: String,
    pub event_type: String,
    pub delivery_key: String,
    pub entity_id: Option<String>,
    pub body: String,
    pub received_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Stored; `pending` when enabled flows exist and the worker has work.
    Accepted { pending: bool },
    /// The same delivery was stored before (a Clockify retry).
    Duplicate { id: String },
    /// The token is not one this workspace's live installation registered.
    UnknownToken,
}

/// Stores a delivery: checks the token was registered at install, de-duplicates by delivery
/// key, and queues it for fan-out only when the workspace has enabled flows.
pub async fn ingest(
    db: &Db,
    w: &IncomingWebhook,
    token_hash: &str,
) -> Result<IngestOutcome, sqlx::Error> {
    let one = [(w.clone(), token_hash.to_owned())];
    // One outcome per item, in order.
    ingest_many(db, &one)
        .await?
        .pop()
        .ok_or_else(|| sqlx::Error::Protocol("the ingest statement returned no outcome".into()))
}

/// Stores many deliveries in one statement (see [`crate::ingest`]): the same checks as
/// [`ingest`], one round trip and one commit for the lot, the rows bound as one JSON array.
pub async fn ingest_many(
    db: &Db,
    items: &[(IncomingWebhook, String)],
) -> Result<Vec<IngestOutcome>, sqlx::Error> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    /// One row of the statement's JSON parameter.
    #[derive(Serialize)]
    struct Row<'a> {
        id: &'a str,
        workspace_id: &'a str,
        event_type: &'a str,
        delivery_key: &'a str,
        entity_id: Option<&'a str>,
        body: &'a str,
        received_at: i64,
        token_hash: &'a str,
    }
    let batch: Vec<Row> = items
        .iter()
        .map(|(w, token_hash)| Row {
            id: &w.id,
            workspace_id: &w.workspace_id,
            event_type: &w.event_type,
            delivery_key: &w.delivery_key,
            entity_id: w.entity_id.as_deref(),
            body: &w.body,
            received_at: w.received_at,
            token_hash,
        })
        .collect();
    let batch = super::json_param(&batch)?;
    let rows = store(db, INGEST_MANY.get(db.backend()), |q| q.bind(batch)).await?;
    let stored: std::collections::HashMap<String, bool> = rows
        .into_iter()
        .map(|(id, status)| (id, status == QUEUED))
        .collect();
    let mut outcomes = Vec::with_capacity(items.len());
    for (w, token_hash) in items {
        outcomes.push(match stored.get(&w.id) {
            Some(pending) => IngestOutcome::Accepted { pending: *pending },
            // Not stored: a duplicate (possibly of a row in this very batch) or an unknown token.
            None => refused(db, w, token_hash).await?,
        });
    }
    Ok(outcomes)
}

static INGEST_MANY: super::PerBackend = super::PerBackend::new(ingest_many_sql);

const INGEST_MANY_TAIL: &str = ",
     facts AS (
         SELECT input.id, input.workspace_id, input.event_type, input.delivery_key, input.entity_id, input.body, input.received_at,
                EXISTS (SELECT 1 FROM installation_webhooks h JOIN installations i ON i.workspace_id = h.workspace_id
                        WHERE h.workspace_id = input.workspace_id AND h.token_hash = input.token_hash AND i.status <> 'DELETED') AS registered,
                EXISTS (SELECT 1 FROM flows f WHERE f.workspace_id = input.workspace_id AND f.enabled = 1) AS has_flows
         FROM input
     )
     INSERT INTO webhook_log (id, workspace_id, event_type, delivery_key, entity_id, body, received_at, status, processed_at)
     SELECT id, workspace_id, event_type, delivery_key, entity_id, body, received_at,
            CASE WHEN has_flows THEN 'QUEUED' ELSE 'PROCESSED' END,
            CASE WHEN has_flows THEN NULL ELSE received_at END
     FROM facts WHERE registered
     ON CONFLICT (workspace_id, delivery_key) DO NOTHING
     RETURNING id, status";

/// The status of a stored delivery whose id is in `webhook_queue` until the fan-out takes it.
const QUEUED: &str = "QUEUED";

/// PostgreSQL's [`store`]: `insert` and the queueing of what it stored as one statement.
pub(crate) fn stored_and_queued_sql(insert: &str) -> String {
    format!(
        "WITH stored AS ({insert}),
              queued AS (INSERT INTO webhook_queue (webhook_id) SELECT id FROM stored WHERE status = '{QUEUED}')
         SELECT id, status FROM stored"
    )
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// Runs `insert` (an insert into `webhook_log` returning `id, status`, its values bound by
/// `bind`) and puts the ids of the rows it stored as QUEUED into `webhook_queue`, atomically:
/// on PostgreSQL in the same statement, on SQLite in one transaction.
async fn store<'q>(
    db: &Db,
    insert: &str,
    bind: impl FnOnce(AnyQuery<'q>) -> AnyQuery<'q>,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    let decode = |rows: Vec<AnyRow>| {
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("status")?)))
            .collect::<Result<Vec<(String, String)>, sqlx::Error>>()
    };
    match db.backend() {
        Backend::Postgres => {
            let sql = stored_and_queued_sql(insert);
            // Placeholders only; every value is bound.
            let rows = bind(sqlx::query(sqlx::AssertSqlSafe(sql)))
                .fetch_all(db.pool())
                .await?;
            decode(rows)
        }
        Backend::Sqlite => {
            let mut tx = db.pool().begin().await?;
            // Placeholders only; every value is bound.
            let rows = bind(sqlx::query(sqlx::AssertSqlSafe(insert.to_owned())))
                .fetch_all(&mut *tx)
                .await?;
            let stored = decode(rows)?;
            let queued: Vec<&str> = stored
                .iter()
                .filter(|(_, status)| status == QUEUED)
                .map(|(id, _)| id.as_str())
                .collect();
            super::fetch_in(&mut tx, ENQUEUE_SQLITE, &queued).await?;
            tx.commit().await?;
            Ok(stored)
        }
    }
}

/// The statement that stores a batch of deliveries (one JSON parameter; see
/// [`super::json_rows`]).
pub fn ingest_many_sql(backend: Backend) -> String {
    use super::Col::{BigInt, Text};
    let rows = super::json_rows(
        backend,
        &[
            ("id", Text),
            ("workspace_id", Text),
            ("event_type", Text),
            ("delivery_key", Text),
            ("entity_id", Text),
            ("body", Text),
            ("received_at", BigInt),
            ("token_hash", Text),
        ],
    );
    format!("WITH input AS ({rows}){INGEST_MANY_TAIL}")
}

/// Why a delivery was not stored.
async fn refused(
    db: &Db,
    w: &IncomingWebhook,
    token_hash: &str,
) -> Result<IngestOutcome, sqlx::Error> {
    if !super::installations::webhook_token_known(db, &w.workspace_id, token_hash).await? {
        return Ok(IngestOutcome::UnknownToken);
    }
    let id: String = sqlx::query(REFUSED)
        .bind(&w.workspace_id)
        .bind(&w.delivery_key)
        .fetch_one(db.pool())
        .await?
        .try_get(0)?;
    Ok(IngestOutcome::Duplicate { id })
}

/// A delivery claimed for fan-out.
#[derive(Debug, Clone)]
pub struct ClaimedWebhook {
    pub id: String,
    pub workspace_id: String,
    pub event_type: String,
    pub body: String,
    /// `None`: a Clockify webhook; otherwise the custom source.
    pub source: Option<String>,
}

/// Claims up to `limit` deliveries that await flows, oldest first, inside the caller's fan-out
/// transaction: their ids leave `webhook_queue` and commit together with the executions the
/// caller queues, or not at all. Then, while the queue has no more, deliveries a release before
/// migration 7 stored PENDING (its pods run during the rolling upgrade), marked PROCESSED; a
/// search that finds none is repeated only after [`LEGACY_RECHECK_MS`] (see [`LegacyPending`]).
/// PostgreSQL skips rows other replicas hold; SQLite serialises writers anyway.
pub async fn claim_for_fan_out(
    conn: &mut AnyConnection,
    backend: Backend,
    limit: i64,
    legacy: &LegacyPending,
) -> Result<Vec<ClaimedWebhook>, sqlx::Error> {
    let (dequeue, legacy_sql) = match backend {
        Backend::Postgres => (DEQUEUE_POSTGRES, FAN_OUT_CLAIM_POSTGRES),
        Backend::Sqlite => (DEQUEUE_SQLITE, FAN_OUT_CLAIM_SQLITE),
    };
    let ids: Vec<String> = sqlx::query(dequeue)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    let claimed = |r: &AnyRow| {
        Ok(ClaimedWebhook {
            id: r.try_get("id")?,
            workspace_id: r.try_get("workspace_id")?,
            event_type: r.try_get("event_type")?,
            body: r.try_get("body")?,
            source: r.try_get("source")?,
        })
    };
    let keys: Vec<&str> = ids.iter().map(String::as_str).collect();
    // An id whose delivery retention already removed is simply gone from the queue.
    let mut out = super::fetch_in(conn, CLAIMED, &keys)
        .await?
        .iter()
        .map(claimed)
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    out.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    let left = limit - ids.len() as i64;
    let now = now_millis();
    if left > 0 && now >= legacy.next_check.load(Ordering::Relaxed) {
        let rows = sqlx::query(legacy_sql)
            .bind(now)
            .bind(left)
            .fetch_all(&mut *conn)
            .await?;
        for r in &rows {
            out.push(claimed(r)?);
        }
        let next = if rows.is_empty() {
            now + LEGACY_RECHECK_MS
        } else {
            0
        };
        legacy.next_check.store(next, Ordering::Relaxed);
    }
    Ok(out)
}

/// How long a search for deliveries an earlier release left PENDING that found none is not
/// repeated.
pub const LEGACY_RECHECK_MS: i64 = 1000;

/// When the fan-out next looks for deliveries a release before migration 7 stored PENDING in
/// `webhook_log`. There are such rows only while pods of that release run (a rolling upgrade),
/// so a search that found none waits [`LEGACY_RECHECK_MS`]: a fan-out that took less than a
/// full batch from the queue no longer pays that statement every time, and such a delivery
/// waits at most a second longer. A new value searches at once.
#[derive(Debug, Default)]
pub struct LegacyPending {
    next_check: AtomicI64,
}

/// The bodies of many deliveries at once, as `(id, body)`.
pub async fn bodies(
    conn: &mut AnyConnection,
    ids: &[&str],
) -> Result<Vec<(String, String)>, sqlx::Error> {
    let rows = super::fetch_in(conn, BODIES, ids).await?;
    rows.iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("body")?)))
        .collect()
}

#[derive(Debug, Clone)]
pub struct IncomingCustom {
    pub id: String,
    pub workspace_id: String,
    pub source: String,
    pub event_type: String,
    pub delivery_key: String,
    pub body: String,
    pub received_at: i64,
}

/// Stores a custom delivery (its signature was checked against the workspace's secret);
/// queued for fan-out when the workspace has enabled custom flows.
pub async fn ingest_custom(db: &Db, w: &IncomingCustom) -> Result<IngestOutcome, sqlx::Error> {
    let rows = store(db, INGEST_CUSTOM, |q| {
        q.bind(&w.id)
            .bind(&w.workspace_id)
            .bind(&w.event_type)
            .bind(&w.delivery_key)
            .bind(&w.body)
            .bind(w.received_at)
            .bind(&w.source)
    })
    .await?;
    if let Some((_, status)) = rows.into_iter().next() {
        return Ok(IngestOutcome::Accepted {
            pending: status == QUEUED,
        });
    }
    let id: String = sqlx::query(REFUSED)
        .bind(&w.workspace_id)
        .bind(&w.delivery_key)
        .fetch_one(db.pool())
        .await?
        .try_get(0)?;
    Ok(IngestOutcome::Duplicate { id })
}

/// A webhook log entry as the UI shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEntry {
    pub id: String,
    /// `clockify`, or the custom source it came from.
    pub source: String,
    pub event_type: String,
    pub entity_id: Option<String>,
    pub status: String,
    pub received_at: String,
    pub processed_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

fn entry(r: &AnyRow, with_body: bool) -> Result<WebhookEntry, sqlx::Error> {
    let body = if with_body {
        let text: String = r.try_get("body")?;
        Some(serde_json::from_str(&text).unwrap_or(Value::String(text)))
    } else {
        None
    };
    let source: Option<String> = r.try_get("source")?;
    Ok(WebhookEntry {
        id: r.try_get("id")?,
        source: source.unwrap_or_else(|| CLOCKIFY_SOURCE.to_owned()),
        event_type: r.try_get("event_type")?,
        entity_id: r.try_get("entity_id")?,
        status: r.try_get("status")?,
        received_at: rfc3339(r.try_get("received_at")?),
        processed_at: rfc3339_opt(r.try_get("processed_at")?),
        body,
    })
}

/// The `source` of Clockify's own webhooks in the log and its filters.
pub const CLOCKIFY_SOURCE: &str = "clockify";

/// Newest first; `before` is the id of the last entry of the previous page; `source` is
/// `clockify` or a custom source.
pub async fn list(
    db: &Db,
    workspace_id: &str,
    event_type: Option<&str>,
    source: Option<&str>,
    before: Option<&str>,
    since: Option<i64>,
    limit: i64,
) -> Result<Vec<WebhookEntry>, sqlx::Error> {
    let since = since.map(super::id_floor);
    // Clockify's own deliveries have no source.
    let source = source.map(|s| (s == CLOCKIFY_SOURCE, s));
    let present = [
        event_type.is_some(),
        source.is_some_and(|(clockify, _)| clockify),
        source.is_some_and(|(clockify, _)| !clockify),
        before.is_some(),
        since.is_some(),
    ];
    let filters: Vec<(&str, bool)> = LIST_FILTERS
        .iter()
        .zip(present)
        .map(|((_, c), p)| (*c, p))
        .collect();
    let sql = super::filtered_sql(LIST_HEAD, &filters, LIST_TAIL);
    // Placeholders only; every value is bound.
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(workspace_id);
    if let Some(e) = event_type {
        q = q.bind(e);
    }
    if let Some((false, s)) = source {
        q = q.bind(s);
    }
    if let Some(b) = before {
        q = q.bind(b);
    }
    if let Some(s) = since {
        q = q.bind(s);
    }
    let rows = q.bind(limit).fetch_all(db.pool()).await?;
    rows.iter().map(|r| entry(r, false)).collect()
}

pub async fn get(
    db: &Db,
    workspace_id: &str,
    id: &str,
) -> Result<Option<WebhookEntry>, sqlx::Error> {
    sqlx::query(GET)
        .bind(workspace_id)
        .bind(id)
        .fetch_optional(db.pool())
        .await?
        .map(|r| entry(&r, true))
        .transpose()
}

/// Deliveries received since `since` (by their time-ordered id: an index-only scan).
pub async fn count(db: &Db, workspace_id: &str, since: i64) -> Result<i64, sqlx::Error> {
    sqlx::query(COUNT)
        .bind(workspace_id)
        .bind(super::id_floor(since))
        .fetch_one(db.pool())
        .await?
        .try_get(0)
}

/// Deliveries per hour since `since`: (hour as epoch milliseconds, count), oldest first.
pub async fn per_hour(
    db: &Db,
    workspace_id: &str,
    since: i64,
) -> Result<Vec<(i64, i64)>, sqlx::Error> {
    let rows = sqlx::query(PER_HOUR)
        .bind(workspace_id)
        .bind(super::id_floor(since))
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get::<i64, _>("h")? * 3_600_000, r.try_get("n")?)))
        .collect()
}

// Every statement this module issues, named for the SQL contract (see `store::contract`).
/// PostgreSQL skips rows other replicas hold.
pub(crate) const DEQUEUE_POSTGRES: &str = "DELETE FROM webhook_queue
         WHERE webhook_id IN (SELECT webhook_id FROM webhook_queue ORDER BY webhook_id LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING webhook_id";
/// SQLite serialises writers anyway.
pub(crate) const DEQUEUE_SQLITE: &str = "DELETE FROM webhook_queue
         WHERE webhook_id IN (SELECT webhook_id FROM webhook_queue ORDER BY webhook_id LIMIT $1)
         RETURNING webhook_id";
/// `{in}`: the ids of stored deliveries (see [`super::fetch_in`]); SQLite's half of [`store`].
pub(crate) const ENQUEUE_SQLITE: &str =
    "INSERT INTO webhook_queue (webhook_id) SELECT id FROM webhook_log WHERE id IN ({in})";
/// `{in}`: the ids just taken from the queue.
pub(crate) const CLAIMED: &str =
    "SELECT id, workspace_id, event_type, body, source FROM webhook_log WHERE id IN ({in})";
/// Deliveries of a release before migration 7 (PostgreSQL skips rows other replicas hold).
pub(crate) const FAN_OUT_CLAIM_POSTGRES: &str =
    "UPDATE webhook_log SET status = 'PROCESSED', claimed_at = $1, processed_at = $1
             WHERE id IN (SELECT id FROM webhook_log
                          WHERE status = 'PENDING'
                          ORDER BY received_at LIMIT $2 FOR UPDATE SKIP LOCKED)
             RETURNING id, workspace_id, event_type, body, source";
/// Deliveries of a release before migration 7.
pub(crate) const FAN_OUT_CLAIM_SQLITE: &str =
    "UPDATE webhook_log SET status = 'PROCESSED', claimed_at = $1, processed_at = $1
             WHERE id IN (SELECT id FROM webhook_log
                          WHERE status = 'PENDING'
                          ORDER BY received_at LIMIT $2)
             RETURNING id, workspace_id, event_type, body, source";
/// `{in}`: a list of delivery ids (see [`super::fetch_in`]).
pub(crate) const BODIES: &str = "SELECT id, body FROM webhook_log WHERE id IN ({in})";
pub(crate) const INGEST_CUSTOM: &str = "WITH facts AS (
             SELECT EXISTS (SELECT 1 FROM flows f WHERE f.workspace_id = $2 AND f.enabled = 1 AND f.trigger_source = 'CUSTOM') AS has_flows
         )
         INSERT INTO webhook_log (id, workspace_id, event_type, delivery_key, entity_id, body, received_at, status, processed_at, source)
         SELECT $1, $2, $3, $4, NULL, $5, CAST($6 AS BIGINT),
                CASE WHEN has_flows THEN 'QUEUED' ELSE 'PROCESSED' END,
                CASE WHEN has_flows THEN NULL ELSE CAST($6 AS BIGINT) END,
                $7
         FROM facts WHERE 1 = 1
         ON CONFLICT (workspace_id, delivery_key) DO NOTHING
         RETURNING id, status";
const REFUSED: &str = "SELECT id FROM webhook_log WHERE workspace_id = $1 AND delivery_key = $2";
/// The status a delivery is shown with: PENDING while its id waits in `webhook_queue`.
macro_rules! shown_status {
    () => {
        "CASE WHEN status = 'QUEUED' THEN CASE WHEN EXISTS (SELECT 1 FROM webhook_queue q WHERE q.webhook_id = webhook_log.id) THEN 'PENDING' ELSE 'PROCESSED' END ELSE status END AS status"
    };
}
const LIST_HEAD: &str = concat!(
    "SELECT id, source, event_type, entity_id, ",
    shown_status!(),
    ", received_at, processed_at FROM webhook_log WHERE workspace_id = $1"
);
/// The optional filters of [`list`], in binding order: (name, condition). Clockify's own
/// deliveries have no source: that filter binds nothing.
pub(crate) const LIST_FILTERS: &[(&str, &str)] = &[
    ("event", "event_type = ?"),
    ("clockify", "source IS NULL"),
    ("source", "source = ?"),
    ("before", "id < ?"),
    ("since", "id >= ?"),
];
const LIST_TAIL: &str = "ORDER BY id DESC LIMIT {next}";

/// Every shape of [`list`], for the SQL contract.
pub(crate) fn list_statements() -> Vec<(String, String)> {
    super::filtered_variants("webhooks::list", LIST_HEAD, LIST_FILTERS, LIST_TAIL)
}
const GET: &str = concat!(
    "SELECT id, source, event_type, entity_id, ",
    shown_status!(),
    ", received_at, processed_at, body FROM webhook_log WHERE workspace_id = $1 AND id = $2"
);
const COUNT: &str = "SELECT COUNT(*) FROM webhook_log WHERE workspace_id = $1 AND id >= $2";
const PER_HOUR: &str = "SELECT received_at / 3600000 AS h, COUNT(*) AS n FROM webhook_log
         WHERE workspace_id = $1 AND id >= $2 GROUP BY received_at / 3600000 ORDER BY h";

/// The statements of this module, for the SQL contract.
pub(crate) const STATEMENTS: &[(&str, &str)] = &[
    ("webhooks::refused", REFUSED),
    ("webhooks::per_hour", PER_HOUR),
    ("webhooks::get", GET),
    ("webhooks::count", COUNT),
];
