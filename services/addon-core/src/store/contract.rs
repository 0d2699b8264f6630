//! The SQL contract: every statement the code issues, by name.
//!
//! Each release commits its contract as `migrations/<addon>/contract/<NNNN>.sql`, NNNN being
//! the newest migration it ships (`clockify-addons sql-contract <addon> --write`; CI fails when
//! the file for the current version is stale). Migrations are expand-only: a test prepares every
//! earlier release's statements against the fully migrated schema on PostgreSQL and SQLite, so
//! the previous release keeps working while a new one's migration has run and its pods roll.
//! Preparing checks every table, column and type a statement names without changing any data.

use crate::config::RetentionConfig;
use crate::db::Backend;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub name: String,
    pub sql: String,
    /// Statements only one backend runs (dialect differences).
    pub only: Option<Backend>,
}

fn stmt(name: impl Into<String>, sql: impl Into<String>, only: Option<Backend>) -> Statement {
    Statement {
        name: name.into(),
        sql: sql.into().trim().to_owned(),
        only,
    }
}

/// Every statement the shared core issues (add-ons append their own).
pub fn core_statements() -> Vec<Statement> {
    let mut out = Vec::new();
    for list in [
        super::installations::STATEMENTS,
        super::webhooks::STATEMENTS,
        super::flows::STATEMENTS,
        super::executions::STATEMENTS,
        super::entities::STATEMENTS,
        super::bootstrap::STATEMENTS,
        super::allowlist::STATEMENTS,
        super::secrets::STATEMENTS,
        super::api_calls::STATEMENTS,
        super::rekey::STATEMENTS,
        super::waits::STATEMENTS,
    ] {
        out.extend(list.iter().map(|(n, s)| stmt(*n, *s, None)));
    }
    // Deliveries are stored and queued in one statement on PostgreSQL, in one transaction on
    // SQLite (see `webhooks::store`). Batches are one JSON parameter whose expansion is
    // written in each backend's dialect (see `store::json_rows`).
    for backend in [Backend::Postgres, Backend::Sqlite] {
        let suffix = backend.name();
        let only = Some(backend);
        for (name, insert) in [
            (
                "webhooks::ingest_many",
                super::webhooks::ingest_many_sql(backend),
            ),
            (
                "webhooks::ingest_custom",
                super::webhooks::INGEST_CUSTOM.to_owned(),
            ),
        ] {
            let sql = match backend {
                Backend::Postgres => super::webhooks::stored_and_queued_sql(&insert),
                Backend::Sqlite => insert,
            };
            out.push(stmt(format!("{name}_{suffix}"), sql, only));
        }
        out.push(stmt(
            format!("executions::queue_many_{suffix}"),
            super::executions::queue_many_sql(backend),
            only,
        ));
        out.push(stmt(
            format!("executions::write_many_{suffix}"),
            super::executions::write_many_sql(backend),
            only,
        ));
        for (name, template) in [
            ("flows::enabled_many", super::flows::ENABLED_MANY),
            ("flows::by_ids", super::flows::BY_IDS),
            ("installations::get_many", super::installations::GET_MANY),
            ("webhooks::bodies", super::webhooks::BODIES),
            ("webhooks::claimed", super::webhooks::CLAIMED),
        ] {
            out.push(stmt(
                format!("{name}_{suffix}"),
                super::in_list_sql(template, backend),
                only,
            ));
        }
    }
    out.push(stmt(
        "webhooks::enqueue_sqlite",
        super::in_list_sql(super::webhooks::ENQUEUE_SQLITE, Backend::Sqlite),
        Some(Backend::Sqlite),
    ));
    for (name, sql) in super::executions::list_statements()
        .into_iter()
        .chain(super::webhooks::list_statements())
    {
        out.push(stmt(name, sql, None));
    }
    let (name, sql) = crate::worker::wake::STATEMENT;
    out.push(stmt(name, sql, Some(Backend::Postgres)));
    for (name, pg, lite) in [
        (
            "webhooks::dequeue",
            super::webhooks::DEQUEUE_POSTGRES,
            super::webhooks::DEQUEUE_SQLITE,
        ),
        (
            "webhooks::claim_for_fan_out",
            super::webhooks::FAN_OUT_CLAIM_POSTGRES,
            super::webhooks::FAN_OUT_CLAIM_SQLITE,
        ),
        (
            "executions::claim_due",
            super::executions::CLAIM_DUE_POSTGRES,
            super::executions::CLAIM_DUE_SQLITE,
        ),
        (
            "executions::heartbeat",
            super::executions::HEARTBEAT_POSTGRES,
            super::executions::HEARTBEAT_SQLITE,
        ),
        (
            "executions::reclaim_expired",
            super::executions::RECLAIM_EXPIRED_POSTGRES,
            super::executions::RECLAIM_EXPIRED_SQLITE,
        ),
    ] {
        out.push(stmt(
            format!("{name}_postgres"),
            pg,
            Some(Backend::Postgres),
        ));
        out.push(stmt(format!("{name}_sqlite"), lite, Some(Backend::Sqlite)));
    }
    let any_config = RetentionConfig {
        webhook_log_days: 1,
        flow_executions_days: 1,
        entity_cache_days: 1,
        api_calls_days: 1,
        interval: std::time::Duration::from_secs(1),
        batch_size: 1,
    };
    for rule in crate::retention::rules(&any_config) {
        for backend in [Backend::Postgres, Backend::Sqlite] {
            out.push(stmt(
                format!("retention::{}_{}", rule.table, backend.name()),
                crate::retention::delete_sql(&rule, backend),
                Some(backend),
            ));
        }
    }
    out
}

/// The contract file's text.
pub fn render(addon: &str, version: i64, statements: &[Statement]) -> String {
    let mut out = format!(
        "-- SQL contract of {addon} at migration {version}: every statement the code issues.\n\
         -- Generated by `clockify-addons sql-contract {addon} --write`; do not edit. Later releases'\n\
         -- migrations must keep every statement here valid (expand-only).\n"
    );
    for s in statements {
        out.push_str(&format!("\n-- name: {}\n", s.name));
        if let Some(b) = s.only {
            out.push_str(&format!("-- only: {}\n", b.name()));
        }
        out.push_str(&s.sql);
        out.push_str(";\n");
    }
    out
}

pub fn parse(text: &str) -> Result<Vec<Statement>, String> {
    let mut out: Vec<Statement> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("-- name: ") {
            out.push(stmt(name.trim(), "", None));
        } else if let Some(b) = line.strip_prefix("-- only: ") {
            let last = out.last_mut().ok_or("`-- only:` before any `-- name:`")?;
            last.only = Some(match b.trim() {
                "postgres" => Backend::Postgres,
                "sqlite" => Backend::Sqlite,
                other => return Err(format!("unknown backend {other:?}")),
            });
        } else if let Some(last) = out.last_mut() {
            last.sql.push_str(line);
            last.sql.push('\n');
        }
    }
    for s in &mut out {
        s.sql = s.sql.trim().trim_end_matches(';').trim().to_owned();
        if s.sql.is_empty() {
            return Err(format!("{}: no SQL", s.name));
        }
    }
    Ok(out)
}

/// Prepares every statement meant for `backend` on a fresh connection to `url` (a pooled one's
/// statement cache could hide a schema change); returns the failures.
pub async fn check(
    url: &str,
    backend: Backend,
    statements: &[Statement],
) -> Result<Vec<String>, sqlx::Error> {
    use sqlx::Executor;
    let mut conn = crate::db::connect_one(url).await?;
    let mut failures = Vec::new();
    for s in statements
        .iter()
        .filter(|s| s.only.is_none_or(|b| b == backend))
    {
        if let Err(e) = (&mut conn)
            .prepare(sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(
                s.sql.clone(),
            )))
            .await
        {
            failures.push(format!("{}: {e}", s.name));
        }
    }
    Ok(failures)
}

/// Destructive DDL that would break the previous release. A statement may carry
/// `-- contract-phase: <why>` to mark a deliberate, documented contraction.
pub fn lint_migration(sql: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for statement in sql.split(';') {
        let text: String = statement
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join(" ");
        let upper = text.to_ascii_uppercase();
        let upper = upper.split_whitespace().collect::<Vec<_>>().join(" ");
        if upper.is_empty() || statement.contains("-- contract-phase:") {
            continue;
        }
        for (pattern, why) in [
            ("DROP TABLE", "drops a table the previous release reads"),
            ("DROP COLUMN", "drops a column the previous release reads"),
            ("RENAME", "renames what the previous release names"),
            (
                "ALTER COLUMN",
                "changes a column the previous release writes",
            ),
            ("TRUNCATE", "deletes data"),
            ("DELETE FROM", "deletes data"),
        ] {
            if upper.contains(pattern) {
                problems.push(format!("{why}: {}", text.trim()));
            }
        }
        if upper.contains("ADD COLUMN") && upper.contains("NOT NULL") && !upper.contains("DEFAULT")
        {
            problems.push(format!("adds a NOT NULL column without a DEFAULT (the previous release's inserts fail): {}", text.trim()));
        }
    }
    problems
}

/// Rules every statement keeps so that a later, expand-only migration cannot break it:
/// `SELECT *` changes shape when a column is added, and PostgreSQL then refuses to run the
/// cached prepared statement ("cached plan must not change result type").
pub fn lint_statement(s: &Statement) -> Option<String> {
    let flat = s
        .sql
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_uppercase();
    if flat.contains("SELECT *")
        || flat.contains("RETURNING *")
        || flat.contains(".*") && !flat.contains("INPUT.*")
    {
        return Some(format!(
            "{}: name the columns instead of `*` (an added column would break cached plans)",
            s.name
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_statement_selects_star() {
        let problems: Vec<_> = core_statements()
            .iter()
            .filter_map(lint_statement)
            .collect();
        assert!(problems.is_empty(), "{problems:#?}");
        assert!(lint_statement(&stmt("x", "SELECT * FROM flows", None)).is_some());
    }

    #[test]
    fn render_and_parse_round_trip() {
        let stmts = core_statements();
        assert!(stmts.len() > 40);
        let names: std::collections::HashSet<_> = stmts.iter().map(|s| &s.name).collect();
        assert_eq!(names.len(), stmts.len(), "names are unique");
        assert_eq!(parse(&render("x", 1, &stmts)).unwrap(), stmts);
    }

    #[test]
    fn the_lint_catches_destructive_ddl() {
        assert!(lint_migration("ALTER TABLE flows ADD COLUMN note TEXT;").is_empty());
        assert!(
            lint_migration("ALTER TABLE flows ADD COLUMN n BIGINT NOT NULL DEFAULT 0;").is_empty()
        );
        assert!(lint_migration("CREATE INDEX x ON flows (name);").is_empty());
        for bad in [
            "DROP TABLE flows;",
            "ALTER TABLE flows DROP COLUMN name;",
            "ALTER TABLE flows RENAME COLUMN name TO title;",
            "ALTER TABLE flows ALTER COLUMN name TYPE BIGINT;",
            "ALTER TABLE flows ADD COLUMN n BIGINT NOT NULL;",
            "DELETE FROM flows;",
        ] {
            assert!(!lint_migration(bad).is_empty(), "{bad}");
        }
        assert!(
            lint_migration(
                "-- contract-phase: column unused since 0.3\nALTER TABLE flows DROP COLUMN legacy;"
            )
            .is_empty()
        );
    }
}
