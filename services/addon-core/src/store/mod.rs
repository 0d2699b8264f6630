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

/// Most values in one `IN (...)` list or multi-row statement.
pub(crate) const MANY: usize = 64;

/// `n` placeholders numbered from `$from`, comma-separated.
pub(crate) fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The rows of a multi-row `VALUES`: `rows` copies of `row`, each column of which holds `{}`
/// for its own placeholder (numbered across the rows from `$1`, in column order) or is a
/// literal without one.
pub(crate) fn values_rows(rows: usize, row: &[&str]) -> String {
    let per_row = row.iter().filter(|c| c.contains("{}")).count();
    (0..rows)
        .map(|r| {
            let mut n = r * per_row;
            let columns: Vec<String> = row
                .iter()
                .map(|c| {
                    if c.contains("{}") {
                        n += 1;
                        c.replace("{}", &format!("${n}"))
                    } else {
                        (*c).to_owned()
                    }
                })
                .collect();
            format!("({})", columns.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `template` with `{in}` replaced by `n` placeholders from `$1`.
pub(crate) fn in_list_sql(template: &str, n: usize) -> String {
    template.replace("{in}", &placeholders(1, n))
}

/// Runs `template` (one `{in}` list) over `keys` in chunks of at most [`MANY`], each padded to
/// a power of two by repeating its last key (`IN` ignores repeats), so a handful of statement
/// shapes cover every count and stay prepared.
pub(crate) async fn fetch_in(
    conn: &mut sqlx::AnyConnection,
    template: &str,
    keys: &[&str],
) -> Result<Vec<sqlx::any::AnyRow>, sqlx::Error> {
    let mut out = Vec::new();
    for chunk in keys.chunks(MANY) {
        let Some(last) = chunk.last() else { continue };
        let n = chunk.len().next_power_of_two();
        let sql = in_list_sql(template, n);
        // Placeholders only; every value is bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for i in 0..n {
            q = q.bind(*chunk.get(i).unwrap_or(last));
        }
        out.extend(q.fetch_all(&mut *conn).await?);
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
    fn values_rows_number_placeholders_across_rows_and_keep_literals() {
        assert_eq!(
            super::values_rows(3, &["{}", "'[]'", "CAST({} AS BIGINT)"]),
            "($1, '[]', CAST($2 AS BIGINT)), ($3, '[]', CAST($4 AS BIGINT)), ($5, '[]', CAST($6 AS BIGINT))"
        );
        assert_eq!(super::values_rows(0, &["{}"]), "");
        // The multi-row statements bind every placeholder they number.
        let queue = super::executions::queue_many_sql(2);
        assert!(queue.contains("$30") && !queue.contains("$31"), "{queue}");
        let write = super::executions::write_many_sql(2);
        assert!(
            write.contains("CAST($22 AS BIGINT)") && !write.contains("$23"),
            "{write}"
        );
        let ingest = super::webhooks::ingest_many_sql(2);
        assert!(
            ingest.contains("CAST($15 AS BIGINT), $16)") && !ingest.contains("$17"),
            "{ingest}"
        );
    }

    #[test]
    fn in_lists_are_numbered_placeholders() {
        assert_eq!(super::placeholders(3, 3), "$3, $4, $5");
        assert_eq!(
            super::in_list_sql("SELECT 1 WHERE x IN ({in})", 2),
            "SELECT 1 WHERE x IN ($1, $2)"
        );
    }
}
