//! Expand-only checks shared by every add-on's tests: the committed SQL contract of this
//! release is current, and every committed release's statements still prepare against the
//! newest schema.

use addon_core::addon::AddonDefinition;
use addon_core::db::Db;
use addon_core::store::contract::{check, parse, render};

use crate::{Backend, TestDb};

/// The repository root.
pub const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// `(file name, text)` of every committed contract of `slug`, oldest first.
pub fn contracts(slug: &str) -> Vec<(String, String)> {
    let dir = format!("{ROOT}/migrations/{slug}/contract");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text =
                std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                text,
            )
        })
        .collect()
}

/// Panics when the committed contract of this release differs from what the code issues.
pub fn assert_contract_current(def: &AddonDefinition) {
    let path = format!("{ROOT}/{}", def.contract_path());
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let current = render(def.slug, def.migrations.latest_version(), &def.contract());
    assert!(
        committed == current,
        "{path} is stale: run ./scripts/generate.sh (clockify-addons sql-contract {} --write)",
        def.slug
    );
}

/// A database migrated to `def`'s newest schema.
pub async fn migrated(def: &AddonDefinition, backend: Backend) -> (TestDb, Db) {
    let t = TestDb::new(backend).await;
    let db = Db::connect(&t.url, 2).await.expect("connect");
    def.migrations.migrate(&db, &t.url).await.expect("migrate");
    (t, db)
}

/// Every committed release of `def` prepares all its statements on the newest schema.
pub async fn assert_releases_run_on_newest_schema(def: &AddonDefinition, backend: Backend) {
    let releases = contracts(def.slug);
    assert!(
        !releases.is_empty(),
        "{} has no committed contract",
        def.slug
    );
    let (t, db) = migrated(def, backend).await;
    for (file, text) in releases {
        let statements = parse(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        let failures = check(&t.url, db.backend(), &statements)
            .await
            .expect("check");
        assert!(
            failures.is_empty(),
            "{} release contract {file} breaks on the newest schema:\n{}",
            def.slug,
            failures.join("\n")
        );
    }
    db.close().await;
}
