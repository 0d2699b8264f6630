//! Database access, one module per table group. Every function takes the [`Db`] and runs
//! portable SQL (see [`crate::db`]).

pub mod allowlist;
pub mod api_calls;
pub mod bootstrap;
pub mod contract;
pub mod entities;
pub mod executions;
pub mod flows;
pub mod installations;
pub mod rekey;
pub mod secrets;
pub mod waits;
pub mod webhooks;

use serde::de::DeserializeOwned;

use crate::db::Backend;

pub use crate::db::Db;

/// Decodes a JSON TEXT column.
pub(crate) fn json_col<T: DeserializeOwned>(
    text: &str,
    column: &'static str,
) -> Result<T, sqlx::Error> {
    serde_json::from_str(text)
        .map_err(|e| sqlx::Error::Decode(format!("column {column}: {e}").into()))
}

/// Caps a page size from a query parameter.
pub fn page_limit(requested: Option<i64>) -> i64 {
    requested.unwrap_or(50).clamp(1, 200)
}

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The smallest id [`new_id`] can produce at `millis` (epoch milliseconds): ids are UUIDv7,
/// whose text starts with their creation time, so `id >= id_floor(t)` selects rows created since
/// `t` on the primary key or any `(…, id)` index, with no index on a time column.
pub fn id_floor(millis: i64) -> String {
    let t = millis.clamp(0, (1 << 48) - 1) as u64;
    format!("{:08x}-{:04x}-0000-0000-000000000000", t >> 16, t & 0xffff)
}

/// The creation time (epoch milliseconds) of an id [`new_id`] made; `None` for any other text.
pub fn id_millis(id: &str) -> Option<i64> {
    let u = uuid::Uuid::parse_str(id).ok()?;
    let (secs, nanos) = u.get_timestamp()?.to_unix();
    Some(secs as i64 * 1000 + i64::from(nanos / 1_000_000))
}

/// Most rows (or keys) in one batch statement.
pub(crate) const MANY: usize = 64;

/// The type of a column in a batch bound as JSON (see [`json_rows`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Col {
    Text,
    BigInt,
}

/// A `SELECT` of the rows of one JSON parameter (`$1`, an array of objects keyed by column
/// name; a key left out reads as NULL), with the columns given: `json_to_recordset` on
/// PostgreSQL, `json_each` on SQLite. A batch of any size is one statement, prepared once per
/// connection, with one value to bind: multi-row `VALUES` needed a statement per batch size
/// (each prepared on every connection: 3 MiB of statement metadata in a pod under load) and a
/// bound value per cell.
pub(crate) fn json_rows(backend: Backend, columns: &[(&str, Col)]) -> String {
    match backend {
        Backend::Postgres => {
            let names: Vec<String> = columns.iter().map(|(c, _)| format!("r.{c}")).collect();
            let types: Vec<String> = columns
                .iter()
                .map(|(c, t)| match t {
                    Col::Text => format!("{c} TEXT"),
                    Col::BigInt => format!("{c} BIGINT"),
                })
                .collect();
            format!(
                "SELECT {} FROM json_to_recordset(CAST(CAST($1 AS TEXT) AS json)) AS r ({})",
                names.join(", "),
                types.join(", ")
            )
        }
        Backend::Sqlite => {
            let names: Vec<String> = columns
                .iter()
                .map(|(c, t)| match t {
                    Col::Text => format!("r.value ->> '{c}' AS {c}"),
                    Col::BigInt => format!("CAST(r.value ->> '{c}' AS BIGINT) AS {c}"),
                })
                .collect();
            format!("SELECT {} FROM json_each($1) AS r", names.join(", "))
        }
    }
}

/// Rows (or keys) as the one JSON array parameter a batch statement binds ([`json_rows`],
/// [`json_values`]).
pub(crate) fn json_param<T: serde::Serialize + ?Sized>(rows: &T) -> Result<String, sqlx::Error> {
    serde_json::to_string(rows).map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

/// The values of one JSON array parameter (`$1`) as a one-column `SELECT` of `value`, for
/// `IN ({in})`: one statement whatever the number of keys.
pub(crate) fn json_values(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => {
            "SELECT value FROM json_array_elements_text(CAST(CAST($1 AS TEXT) AS json))"
        }
        Backend::Sqlite => "SELECT value FROM json_each($1)",
    }
}

/// `template` with `{in}` replaced by the keys of one JSON array parameter ([`json_values`]).
pub(crate) fn in_list_sql(template: &str, backend: Backend) -> String {
    template.replace("{in}", json_values(backend))
}

/// A statement built by `build` once per backend, at first use, then borrowed: the batch
/// statements are assembled from parts and never formatted again.
pub(crate) struct PerBackend {
    built: [std::sync::OnceLock<String>; 2],
    build: fn(Backend) -> String,
}

impl PerBackend {
    pub(crate) const fn new(build: fn(Backend) -> String) -> Self {
        Self {
            built: [std::sync::OnceLock::new(), std::sync::OnceLock::new()],
            build,
        }
    }

    pub(crate) fn get(&self, backend: Backend) -> &str {
        let slot = match backend {
            Backend::Postgres => 0,
            Backend::Sqlite => 1,
        };
        self.built[slot].get_or_init(|| (self.build)(backend))
    }
}

/// The backend a connection talks to.
pub(crate) fn backend_of(conn: &sqlx::AnyConnection) -> Backend {
    if conn.backend_name().eq_ignore_ascii_case("sqlite") {
        Backend::Sqlite
    } else {
        Backend::Postgres
    }
}

/// Runs `template` (one `{in}` list) over `keys`, at most [`MANY`] per statement, each batch
/// bound as one JSON array.
///
/// These statements, and the other batches that look rows up by a JSON list of keys
/// ([`executions::write_many`]), are planned at each execution (unnamed statements), not
/// prepared once. The planner cannot see into the JSON (it assumes 100
/// rows), so the join it picks depends only on the table's size when it plans: a statement
/// prepared while the table was small kept its hash join over a sequential scan as the table
/// grew, each write scanning every stored execution until an `ANALYZE` replanned it. Planned
/// afresh, each one probes the primary key once the table is large enough for that to pay; the
/// price is one more round trip (Parse and Describe) per batch, tens a second. The flows
/// benchmark's 20-second level at 64 connections (one process, ~37,000 executions stored):
/// execution writes over 50 ms in the database went from 86 (the slowest 224 ms) to 2 (93 ms),
/// and as the server timed them, from 157 to 18.
pub(crate) async fn fetch_in(
    conn: &mut sqlx::AnyConnection,
    template: &str,
    keys: &[&str],
) -> Result<Vec<sqlx::any::AnyRow>, sqlx::Error> {
    let mut out = Vec::new();
    if keys.is_empty() {
        return Ok(out);
    }
    let sql = in_list_sql(template, backend_of(conn));
    for chunk in keys.chunks(MANY) {
        let keys = json_param(chunk)?;
        // Placeholders only; the keys are bound.
        out.extend(
            sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .persistent(false)
                .bind(keys)
                .fetch_all(&mut *conn)
                .await?,
        );
    }
    Ok(out)
}

/// A list statement with only the filters given: `head` binds `$1` (the workspace), each
/// present filter appends ` AND <condition>` with its `?` (if any) numbered `$n`, and `tail` takes the next placeholder where it
/// says `{next}` (the page size). Each combination is its own static statement, so every plan
/// (generic or custom) uses the index that matches it, unlike one catch-all `($n = '' OR ...)`.
pub(crate) fn filtered_sql(head: &str, filters: &[(&str, bool)], tail: &str) -> String {
    let mut sql = head.to_owned();
    let mut n = 1;
    for (condition, present) in filters {
        if *present {
            let condition = if condition.contains('?') {
                n += 1;
                condition.replace('?', &format!("${n}"))
            } else {
                (*condition).to_owned()
            };
            sql.push_str(&format!(" AND {condition}"));
        }
    }
    sql.push(' ');
    sql.push_str(&tail.replace("{next}", &format!("${}", n + 1)));
    sql
}

/// Every combination of [`filtered_sql`] for the SQL contract, named by the filters present.
pub(crate) fn filtered_variants(
    name: &str,
    head: &str,
    conditions: &[(&str, &str)],
    tail: &str,
) -> Vec<(String, String)> {
    (0..1usize << conditions.len())
        .map(|mask| {
            let filters: Vec<(&str, bool)> = conditions
                .iter()
                .enumerate()
                .map(|(i, (_, c))| (*c, mask & (1 << i) != 0))
                .collect();
            let present: Vec<&str> = conditions
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, (label, _))| *label)
                .collect();
            let suffix = if present.is_empty() {
                String::new()
            } else {
                format!("_by_{}", present.join("_"))
            };
            (
                format!("{name}{suffix}"),
                filtered_sql(head, &filters, tail),
            )
        })
        .collect()
}

#[cfg(test)]
mod sql_tests {
    #[test]
    fn id_floors_sort_below_every_id_of_their_millisecond_and_above_earlier_ones() {
        let now = crate::time::now_millis();
        let id = super::new_id();
        assert!(super::id_floor(now - 1) <= id, "{id}");
        assert!(super::id_floor(now + 2) > id, "{id}");
        assert_eq!(super::id_floor(0), "00000000-0000-0000-0000-000000000000");
    }

    #[test]
    fn filtered_statements_hold_only_the_filters_given() {
        let sql = super::filtered_sql(
            "SELECT id FROM t WHERE w = $1",
            &[
                ("a = ?", true),
                ("b = ?", false),
                ("c IS NULL", true),
                ("id < ?", true),
            ],
            "ORDER BY id DESC LIMIT {next}",
        );
        assert_eq!(
            sql,
            "SELECT id FROM t WHERE w = $1 AND a = $2 AND c IS NULL AND id < $3 ORDER BY id DESC LIMIT $4"
        );
        let all = super::filtered_variants(
            "t::list",
            "H",
            &[("a", "a = ?"), ("b", "b = ?")],
            "L {next}",
        );
        let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["t::list", "t::list_by_a", "t::list_by_b", "t::list_by_a_b"]
        );
        assert_eq!(all[3].1, "H AND a = $2 AND b = $3 L $4");
    }

    #[test]
    fn batches_are_one_json_parameter_in_each_dialect() {
        use super::Col::{BigInt, Text};
        use crate::db::Backend;
        let cols = [("id", Text), ("at", BigInt)];
        assert_eq!(
            super::json_rows(Backend::Postgres, &cols),
            "SELECT r.id, r.at FROM json_to_recordset(CAST(CAST($1 AS TEXT) AS json)) AS r (id TEXT, at BIGINT)"
        );
        assert_eq!(
            super::json_rows(Backend::Sqlite, &cols),
            "SELECT r.value ->> 'id' AS id, CAST(r.value ->> 'at' AS BIGINT) AS at FROM json_each($1) AS r"
        );
        // Every batch statement binds one value, whatever the batch's size.
        for backend in [Backend::Postgres, Backend::Sqlite] {
            for sql in [
                super::executions::queue_many_sql(backend),
                super::executions::write_many_sql(backend),
                super::webhooks::ingest_many_sql(backend),
                super::in_list_sql("SELECT 1 WHERE x IN ({in})", backend),
            ] {
                assert!(sql.contains("$1") && !sql.contains("$2"), "{sql}");
            }
        }
        assert_eq!(
            super::in_list_sql("SELECT 1 WHERE x IN ({in})", Backend::Sqlite),
            "SELECT 1 WHERE x IN (SELECT value FROM json_each($1))"
        );
    }
}
