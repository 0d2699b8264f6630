//! Migration runs on both engines: a failing migration reports which and why, leaves what it
//! applied before, and readiness sees the gap.
#![cfg(test)]

use addon_core::db::{Db, MigrationFile, MigrationSet};
use addon_testkit::{Backend, TestDb, backend_tests};

static GOOD_THEN_BAD: &[MigrationFile] = &[
    MigrationFile {
        version: 1,
        description: "create a",
        sql: "CREATE TABLE a (id TEXT PRIMARY KEY);",
    },
    MigrationFile {
        version: 2,
        description: "broken",
        sql: "CREATE TABLE b (id TEXT PRIMARY KEY, oops NOT_A_TYPE_EITHER ,);",
    },
];

static GOOD: &[MigrationFile] = &[MigrationFile {
    version: 1,
    description: "create a",
    sql: "CREATE TABLE a (id TEXT PRIMARY KEY);",
}];

async fn a_failing_migration_is_reported(backend: Backend) {
    let t = TestDb::new(backend).await;
    let db = Db::connect(&t.url, 2).await.unwrap();
    let set = MigrationSet {
        addon: "test",
        files: GOOD_THEN_BAD,
    };
    let err = set.migrate(&db, &t.url).await.unwrap_err().to_string();
    assert!(err.contains("2"), "names the version: {err}");
    let status = set.status(&db).await.unwrap();
    assert_eq!(status.current, Some(1), "the good migration stays applied");
    assert_eq!(status.missing, vec![2]);
    assert!(!status.is_current());
    db.close().await;
}

async fn reports_applied_then_nothing(backend: Backend) {
    let t = TestDb::new(backend).await;
    let db = Db::connect(&t.url, 2).await.unwrap();
    let set = MigrationSet {
        addon: "test",
        files: GOOD,
    };
    let status = set.status(&db).await.unwrap();
    assert_eq!(status.missing, vec![1]);
    let first = set.migrate(&db, &t.url).await.unwrap();
    assert_eq!(first.applied, vec![(1, "create a".to_owned())]);
    let second = set.migrate(&db, &t.url).await.unwrap();
    assert!(second.applied.is_empty());
    assert_eq!(second.current, Some(1));
    assert!(set.status(&db).await.unwrap().is_current());
    db.close().await;
}

static NEWER: &[MigrationFile] = &[
    MigrationFile {
        version: 1,
        description: "create a",
        sql: "CREATE TABLE a (id TEXT PRIMARY KEY);",
    },
    MigrationFile {
        version: 2,
        description: "add b",
        sql: "ALTER TABLE a ADD COLUMN b TEXT;",
    },
];

/// A rollback: the older release's `migrate` finds a newer schema and reports it up to date.
async fn an_older_release_accepts_a_newer_schema(backend: Backend) {
    let t = TestDb::new(backend).await;
    let db = Db::connect(&t.url, 2).await.unwrap();
    MigrationSet {
        addon: "test",
        files: NEWER,
    }
    .migrate(&db, &t.url)
    .await
    .unwrap();
    let older = MigrationSet {
        addon: "test",
        files: GOOD,
    };
    let report = older.migrate(&db, &t.url).await.unwrap();
    assert!(report.applied.is_empty());
    assert_eq!(report.current, Some(2));
    assert!(
        older.status(&db).await.unwrap().is_current(),
        "the older release is ready on the newer schema"
    );
    db.close().await;
}

backend_tests!(
    a_failing_migration_is_reported,
    reports_applied_then_nothing,
    an_older_release_accepts_a_newer_schema
);
