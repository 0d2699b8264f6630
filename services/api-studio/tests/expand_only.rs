//! Migrations are expand-only: every earlier release's SQL (its committed contract) still
//! prepares against the fully migrated schema, on PostgreSQL and SQLite, and no migration holds
//! destructive DDL.
#![cfg(test)]

use addon_core::db::Db;
use addon_core::store::contract::{check, lint_migration, parse};
use addon_testkit::{Backend, TestDb, backend_tests};

fn contracts() -> Vec<(String, String)> {
    addon_testkit::contract::contracts("api-studio")
}

#[test]
fn this_releases_contract_is_current() {
    addon_testkit::contract::assert_contract_current(&api_studio::DEFINITION);
}

#[test]
fn migrations_hold_no_destructive_ddl() {
    for m in addon_core::db::CORE_MIGRATIONS {
        let problems = lint_migration(m.sql);
        assert!(
            problems.is_empty(),
            "migration {} {}: {problems:#?}",
            m.version,
            m.description
        );
    }
}

async fn migrated(backend: Backend) -> (TestDb, Db) {
    addon_testkit::contract::migrated(&api_studio::DEFINITION, backend).await
}

async fn every_release_runs_on_the_newest_schema(backend: Backend) {
    assert!(
        contracts().len() >= 2,
        "a previous release's contract is committed"
    );
    addon_testkit::contract::assert_releases_run_on_newest_schema(&api_studio::DEFINITION, backend)
        .await;
}

/// The check is not vacuous: a destructive change breaks the previous release's contract.
async fn a_destructive_change_would_be_caught(backend: Backend) {
    let (t, db) = migrated(backend).await;
    sqlx::query("ALTER TABLE flows RENAME COLUMN name TO title")
        .execute(db.pool())
        .await
        .unwrap();
    let (_, first) = contracts().into_iter().next().unwrap();
    let failures = check(&t.url, db.backend(), &parse(&first).unwrap())
        .await
        .unwrap();
    assert!(
        failures.iter().any(|f| f.starts_with("flows::")),
        "{failures:#?}"
    );
    db.close().await;
}

backend_tests!(
    every_release_runs_on_the_newest_schema,
    a_destructive_change_would_be_caught
);

fn old_statement(name: &str) -> String {
    let (_, first) = contracts().into_iter().next().unwrap();
    parse(&first)
        .unwrap()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("{name}"))
        .sql
}

/// A pod of the previous release keeps its prepared statements across the new release's
/// migration: PostgreSQL keeps plans per connection, and a `SELECT *` plan fails with "cached
/// plan must not change result type" once a column is added. The store names its columns, so
/// the old statements keep working; since 0.9.1 sqlx also re-prepares a statement that fails
/// that way (launchbadge/sqlx#4274), so even a `SELECT *` recovers on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_pods_cached_statements_survive_the_migration() {
    let t = TestDb::new(Backend::Postgres).await;
    let old_pod = Db::connect(&t.url, 1).await.unwrap(); // one connection: its statements stay cached
    let release1 = addon_core::db::MigrationSet {
        addon: "api-studio",
        files: &addon_core::db::CORE_MIGRATIONS[..1],
    };
    release1.migrate(&old_pod, &t.url).await.unwrap();
    let list = old_statement("executions::list");
    let run_list = |db: &Db| {
        let q = sqlx::query(sqlx::AssertSqlSafe(list.clone()))
            .bind("ws")
            .bind("")
            .bind("")
            .bind("")
            .bind("")
            .bind(50i64);
        let pool = db.pool().clone();
        async move { q.fetch_all(&pool).await.map(|r| r.len()) }
    };
    let star = || sqlx::query("SELECT * FROM flow_executions WHERE workspace_id = $1").bind("ws");
    run_list(&old_pod).await.unwrap();
    star().fetch_all(old_pod.pool()).await.unwrap();

    // The new release's migration Job runs.
    let job = Db::connect(&t.url, 1).await.unwrap();
    api_studio::DEFINITION
        .migrations
        .migrate(&job, &t.url)
        .await
        .unwrap();
    job.close().await;

    run_list(&old_pod)
        .await
        .expect("the old pod's statement still runs");
    star()
        .fetch_all(old_pod.pool())
        .await
        .expect("sqlx re-prepares a statement whose cached plan went stale");
    old_pod.close().await;
}
