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

backend_tests!(
    a_failing_migration_is_reported,
    reports_applied_then_nothing
);
