//! Backups that restore, on real PostgreSQL with the real binary: data put in through Universal
//! Webhook's HTTP API, backed up to a directory and to S3-compatible storage (moto's server
//! mode), the database dropped, restored, and served again. Retention keeps exactly what the
//! policy says; corrupted, truncated or foreign backups are refused; a restore that fails part
//! way leaves the database as it was.
#![cfg(test)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use addon_testkit::{Backend, FakeResponse, TestApp, TestDb};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::Executor;

const BIN: &str = env!("CARGO_BIN_EXE_clockify-addons");

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("NO_COLOR", "1");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run clockify-addons")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn database_name(url: &str) -> String {
    url.rsplit('/').next().unwrap().to_owned()
}

async fn admin(sql: String) {
    let mut conn = addon_core::db::connect_one(&format!(
        "{}/postgres",
        addon_testkit::db::postgres_server()
    ))
    .await
    .unwrap();
    conn.execute(sqlx::AssertSqlSafe(sql)).await.unwrap();
}

/// Drops the database and creates it again, empty, under the same name (so the add-on's
/// token key, derived from the URL in tests, still reads the restored tokens).
async fn recreate_empty(db: &TestDb) {
    let name = database_name(&db.url);
    admin(format!("DROP DATABASE {name} WITH (FORCE)")).await;
    admin(format!("CREATE DATABASE {name}")).await;
}

async fn count_relations(url: &str) -> i64 {
    let mut conn = addon_core::db::connect_one(url).await.unwrap();
    let row: (i64,) = sqlx::query_as(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'S') AND n.nspname = 'public'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    row.0
}

/// Data put in through the HTTP API: a flow and three deliveries it ran on (settled: every
/// execution finished, so what is served no longer changes).
async fn put_data(app: &TestApp) {
    app.fake
        .respond(|_| FakeResponse::json(200, json!({"id": "tag", "name": "urgent"})));
    let token = app.install_settled("ws1").await;
    let (s, b) = app
        .ui(
            "ws1",
            Method::POST,
            "/ui/flows",
            Some(json!({
                "name": "tag to note",
                "triggerEvents": ["NEW_TAG"],
                "actions": [{"type": "CLOCKIFY_API", "name": "read the tag", "method": "GET",
                             "path": "/v1/workspaces/{{workspaceId}}/tags/{{$.id}}"}]
            })),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    for i in 0..3 {
        let (s, b) = app
            .webhook(
                &token,
                "NEW_TAG",
                &json!({"id": format!("tag{i}"), "name": format!("urgent {i}"), "workspaceId": "ws1"}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
    }
    app.eventually(Duration::from_secs(20), || async {
        let (_, b) = app.ui("ws1", Method::GET, "/ui/executions", None).await;
        let done = b["items"]
            .as_array()?
            .iter()
            .filter(|e| e["status"] == "SUCCEEDED")
            .count();
        (done == 3).then_some(())
    })
    .await
    .expect("the three executions finished");
}

/// What the add-on serves: its flows and webhook log, without volatile fields.
async fn served(app: &TestApp) -> (Value, Vec<Value>) {
    let (s, flows) = app.ui("ws1", Method::GET, "/ui/flows", None).await;
    assert_eq!(s, 200, "{flows}");
    let (s, hooks) = app.ui("ws1", Method::GET, "/ui/webhooks", None).await;
    assert_eq!(s, 200, "{hooks}");
    let mut hooks: Vec<Value> = hooks["items"].as_array().unwrap().clone();
    hooks.sort_by_key(|h| h["id"].as_str().unwrap_or_default().to_owned());
    let (s, runs) = app.ui("ws1", Method::GET, "/ui/executions", None).await;
    assert_eq!(s, 200, "{runs}");
    let mut runs: Vec<Value> = runs["items"].as_array().unwrap().clone();
    runs.sort_by_key(|r| r["id"].as_str().unwrap_or_default().to_owned());
    hooks.extend(runs);
    (flows["items"].clone(), hooks)
}

fn manifests(dir: &Path) -> Vec<Value> {
    let mut out: Vec<Value> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .map(|e| serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap())
        .collect();
    out.sort_by_key(|m| m["id"].as_str().unwrap().to_owned());
    out
}

/// moto's S3 server on a free port, with one bucket; None (and a message) when moto is not
/// installed (`./scripts/test.sh` installs it into .venv).
struct Moto {
    child: Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MOTO_SERVER") {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/moto_server");
    if venv.exists() {
        return Some(venv);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("moto_server"))
            .find(|p| p.exists())
    })
}

async fn moto(bucket: &str) -> Option<Moto> {
    let Some(bin) = moto_binary() else {
        eprintln!(
            "SKIPPED the S3 part: moto_server is not installed (pip install 'moto[server]', or run ./scripts/test.sh)"
        );
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto_server");
    let moto = Moto {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http
            .put(format!("{}/{bucket}", moto.endpoint))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Some(moto);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("moto_server did not start on {}", moto.endpoint);
}

fn s3_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("BACKUP_S3_ENDPOINT", endpoint.to_owned()),
        ("AWS_ACCESS_KEY_ID", "test-key-id".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test-secret-key".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
    ]
}

fn with<'a>(
    base: &'a [(&'static str, String)],
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    base.iter()
        .map(|(k, v)| (*k, v.as_str()))
        .chain(extra.iter().copied())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restores_to_the_same_data_from_a_directory_and_from_s3() {
    let app = TestApp::start(&universal_webhook::DEFINITION, Backend::Postgres).await;
    put_data(&app).await;
    let before = served(&app).await;
    assert_eq!(before.1.len(), 6, "three deliveries and their executions");
    let db = app.stop().await;
    let url = db.url.clone();

    // To a directory.
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("backups");
    let out = run(
        &[
            "backup",
            "universal-webhook",
            "--to",
            dest.to_str().unwrap(),
        ],
        &[("DATABASE_URL", &url), ("BACKUP_LABEL", "test-run")],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("backup stored"), "{}", text(&out));
    let m = manifests(&dest);
    assert_eq!(m.len(), 1);
    let m = &m[0];
    assert_eq!(m["addon"], "universal-webhook");
    assert_eq!(m["format"], "clockify-addons-backup/v1");
    assert_eq!(m["database"], database_name(&url));
    assert_eq!(
        m["schemaVersion"],
        universal_webhook::DEFINITION.migrations.latest_version()
    );
    assert!(
        m["id"]
            .as_str()
            .unwrap()
            .ends_with("-universal-webhook-test-run")
    );
    let dump = std::fs::read(dest.join(m["dump"].as_str().unwrap())).unwrap();
    assert_eq!(m["size"], dump.len());
    use sha2::Digest;
    assert_eq!(m["sha256"], hex::encode(sha2::Sha256::digest(&dump)));
    assert_eq!(&dump[..5], b"PGDMP", "a pg_dump custom-format archive");
    assert!(
        !text(&out).contains("postgres://"),
        "the database URL is never logged: {}",
        text(&out)
    );

    // To S3-compatible storage.
    let s3 = moto("clockify-backups").await;
    if let Some(moto) = &s3 {
        let env = s3_env(&moto.endpoint);
        let out = run(
            &[
                "backup",
                "universal-webhook",
                "--to",
                "s3://clockify-backups/team-a/uw",
            ],
            &with(&env, &[("DATABASE_URL", &url)]),
        );
        assert!(out.status.success(), "{}", text(&out));
        assert!(!text(&out).contains("test-secret-key"), "{}", text(&out));
        let list = run(
            &[
                "backups",
                "universal-webhook",
                "--destination",
                "s3://clockify-backups/team-a/uw",
            ],
            &with(&env, &[]),
        );
        assert!(list.status.success(), "{}", text(&list));
        assert!(
            text(&list).contains("1 backups of universal-webhook"),
            "{}",
            text(&list)
        );
    }

    // Disaster: the database is gone. Restore from the directory.
    recreate_empty(&db).await;
    let out = run(
        &[
            "restore",
            "universal-webhook",
            "--from",
            "latest",
            "--destination",
            dest.to_str().unwrap(),
        ],
        &[("DATABASE_URL", &url)],
    );
    assert!(out.status.success(), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains(&format!("restored backup {}", m["id"].as_str().unwrap())),
        "{printed}"
    );
    assert!(printed.contains("it was empty"), "{printed}");
    assert!(printed.contains("SHA-256 verified"), "{printed}");
    let app = TestApp::builder(&universal_webhook::DEFINITION, Backend::Postgres)
        .database(db)
        .start()
        .await;
    assert_eq!(
        served(&app).await,
        before,
        "the add-on serves the backed-up data"
    );
    // It keeps working on the restored data: a new flow gets a fresh id.
    let (s, b) = app
        .ui(
            "ws1",
            Method::POST,
            "/ui/flows",
            Some(json!({"name": "after restore", "triggerEvents": ["NEW_TAG"], "actions": [{"type": "CLOCKIFY_API", "name": "read", "method": "GET", "path": "/v1/workspaces/{{workspaceId}}/tags"}]})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let db = app.stop().await;

    // Into a database that is not empty: refused without --force, nothing changed.
    let out = run(
        &[
            "restore",
            "universal-webhook",
            "--from",
            "latest",
            "--destination",
            dest.to_str().unwrap(),
        ],
        &[("DATABASE_URL", &url)],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("is not empty"), "{}", text(&out));
    assert!(text(&out).contains("--force"), "{}", text(&out));

    // From S3, replacing the contents (--force): the flow added after the backup is gone.
    if let Some(moto) = &s3 {
        let env = s3_env(&moto.endpoint);
        let listed = run(
            &[
                "backups",
                "universal-webhook",
                "--destination",
                "s3://clockify-backups/team-a/uw",
                "--json",
            ],
            &with(&env, &[]),
        );
        let id = serde_json::from_str::<Value>(
            String::from_utf8_lossy(&listed.stdout)
                .lines()
                .next()
                .unwrap(),
        )
        .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let from = format!("s3://clockify-backups/team-a/uw/{id}.json");
        let out = run(
            &["restore", "universal-webhook", "--from", &from, "--force"],
            &with(&env, &[("DATABASE_URL", &url)]),
        );
        assert!(out.status.success(), "{}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("its previous contents were replaced")
        );
        let app = TestApp::builder(&universal_webhook::DEFINITION, Backend::Postgres)
            .database(db)
            .start()
            .await;
        assert_eq!(
            served(&app).await,
            before,
            "the S3 backup holds the same data"
        );
        app.stop().await;
    }
}

/// The restore requests a database holds.
async fn restore_log(url: &str) -> Vec<(String, String)> {
    let mut conn = addon_core::db::connect_one(url).await.unwrap();
    sqlx::query_as(
        "SELECT request_id, backup_id FROM public.clockify_restore_log ORDER BY request_id",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_request_is_applied_once_whatever_the_caller_remembers() {
    let app = TestApp::start(&universal_webhook::DEFINITION, Backend::Postgres).await;
    put_data(&app).await;
    let before = served(&app).await;
    let db = app.stop().await;
    let url = db.url.clone();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("backups");
    let out = run(
        &[
            "backup",
            "universal-webhook",
            "--to",
            dest.to_str().unwrap(),
        ],
        &[("DATABASE_URL", &url)],
    );
    assert!(out.status.success(), "{}", text(&out));
    let id = manifests(&dest)[0]["id"].as_str().unwrap().to_owned();
    let restore = |request: &'static str| {
        let dest = dest.clone();
        let url = url.clone();
        move || {
            run(
                &[
                    "restore",
                    "universal-webhook",
                    "--from",
                    "latest",
                    "--destination",
                    dest.to_str().unwrap(),
                    "--request-id",
                    request,
                    "--force",
                ],
                &[("DATABASE_URL", &url)],
            )
        }
    };

    // Restore request incident-1: applied, and recorded in the same transaction.
    let out = restore("incident-1")();
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("restored backup {id}")));
    assert_eq!(
        restore_log(&url).await,
        vec![("incident-1".to_owned(), id.clone())]
    );

    // Work goes on: a flow created after the restore.
    let app = TestApp::builder(&universal_webhook::DEFINITION, Backend::Postgres)
        .database(db)
        .start()
        .await;
    assert_eq!(served(&app).await, before);
    let (s, b) = app
        .ui(
            "ws1",
            Method::POST,
            "/ui/flows",
            Some(json!({"name": "after the restore", "triggerEvents": ["NEW_TAG"], "actions": [{"type": "CLOCKIFY_API", "name": "read", "method": "GET", "path": "/v1/workspaces/{{workspaceId}}/tags"}]})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let after_work = served(&app).await;
    assert_ne!(after_work, before);
    let db = app.stop().await;

    // The same request again (the operator lost its record, the ClockifyAddon came back from
    // Git): nothing is restored, the new flow stays, and it says when the request was applied.
    let out = restore("incident-1")();
    assert!(out.status.success(), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        printed.contains("restore incident-1 was already applied to this database at 20")
            && printed.contains(&format!("(backup {id}); nothing was restored")),
        "{printed}"
    );
    let app = TestApp::builder(&universal_webhook::DEFINITION, Backend::Postgres)
        .database(db)
        .start()
        .await;
    assert_eq!(
        served(&app).await,
        after_work,
        "the database was not touched"
    );
    let db = app.stop().await;

    // A new request restores (the flow goes); both are recorded.
    let out = restore("incident-2")();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        restore_log(&url).await,
        vec![
            ("incident-1".to_owned(), id.clone()),
            ("incident-2".to_owned(), id.clone())
        ]
    );
    let app = TestApp::builder(&universal_webhook::DEFINITION, Backend::Postgres)
        .database(db)
        .start()
        .await;
    assert_eq!(served(&app).await, before);
    app.stop().await;

    // A request id the record cannot hold is refused before anything happens.
    let out = run(
        &[
            "restore",
            "universal-webhook",
            "--from",
            "latest",
            "--destination",
            dest.to_str().unwrap(),
            "--request-id",
            "x'; DROP TABLE flows; --",
            "--force",
        ],
        &[("DATABASE_URL", &url)],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("request id"), "{}", text(&out));
}

/// A backup to `dest` of a small database; returns the manifest.
fn backup_to(dest: &Path, url: &str, extra: &[&str]) -> Output {
    let mut args = vec!["backup", "reference", "--to", dest.to_str().unwrap()];
    args.extend_from_slice(extra);
    run(&args, &[("DATABASE_URL", url)])
}

fn fake_backup(dest: &Path, id: &str, age: Duration) {
    let finished = time::OffsetDateTime::now_utc() - age;
    let m = json!({
        "format": "clockify-addons-backup/v1", "id": id, "addon": "reference",
        "startedAt": finished.format(&time::format_description::well_known::Rfc3339).unwrap(),
        "finishedAt": finished.format(&time::format_description::well_known::Rfc3339).unwrap(),
        "schemaVersion": 4, "database": "old", "serverVersion": "15", "pgDumpVersion": "15",
        "dump": format!("{id}.dump"), "size": 3, "sha256": "0".repeat(64), "dumpFormat": "custom"
    });
    std::fs::write(dest.join(format!("{id}.json")), m.to_string()).unwrap();
    std::fs::write(dest.join(format!("{id}.dump")), b"old").unwrap();
}

fn ids(dest: &Path) -> Vec<String> {
    manifests(dest)
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_exactly_what_the_policy_says_and_only_after_success() {
    let db = TestDb::new(Backend::Postgres).await;
    let out = run(&["migrate", "reference"], &[("DATABASE_URL", &db.url)]);
    assert!(out.status.success(), "{}", text(&out));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path();

    // keep-last 2 over four runs: the two newest remain, dumps and manifests alike.
    let mut made = Vec::new();
    for _ in 0..4 {
        let out = backup_to(dest, &db.url, &["--keep-last", "2"]);
        assert!(out.status.success(), "{}", text(&out));
        made = ids(dest);
    }
    assert_eq!(made.len(), 2, "{made:?}");
    let dumps = std::fs::read_dir(dest)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".dump")
        })
        .count();
    assert_eq!(dumps, 2);

    // max-age 7 days: older ones go, a 6-day-old one stays; another add-on's backup is never
    // touched; an unfinished dump (no manifest) older than a day is removed, a fresh one is not.
    fake_backup(
        dest,
        "20200101T000000.000Z-reference-old",
        Duration::from_secs(30 * 86400),
    );
    fake_backup(
        dest,
        "20200102T000000.000Z-reference-8d",
        Duration::from_secs(8 * 86400),
    );
    fake_backup(
        dest,
        "20200103T000000.000Z-reference-6d",
        Duration::from_secs(6 * 86400),
    );
    let mut other: Value = manifests(dest)[0].clone();
    other["addon"] = json!("api-studio");
    other["id"] = json!("20200101T000000.000Z-api-studio");
    other["finishedAt"] = json!("2020-01-01T00:00:00Z");
    std::fs::write(
        dest.join("20200101T000000.000Z-api-studio.json"),
        other.to_string(),
    )
    .unwrap();
    let stale = dest.join("20200104T000000.000Z-reference.dump");
    std::fs::write(&stale, b"partial").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(2 * 86400))
        .unwrap();
    let fresh = dest.join("29990101T000000.000Z-reference.dump");
    std::fs::write(&fresh, b"in progress").unwrap();

    // A failed backup (its database does not exist) prunes nothing.
    let gone = format!(
        "{}/does_not_exist_{}",
        addon_testkit::db::postgres_server(),
        std::process::id()
    );
    let out = backup_to(dest, &gone, &["--max-age-days", "7"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("backup failed"), "{}", text(&out));
    assert!(text(&out).contains("does_not_exist"), "{}", text(&out));
    assert_eq!(ids(dest).len(), 6, "nothing was pruned after a failure");
    assert!(stale.exists());

    let out = backup_to(dest, &db.url, &["--max-age-days", "7"]);
    assert!(out.status.success(), "{}", text(&out));
    let now = ids(dest);
    assert!(
        !now.iter()
            .any(|i| i.ends_with("-old") || i.ends_with("-8d")),
        "{now:?}"
    );
    assert!(now.iter().any(|i| i.ends_with("-6d")), "{now:?}");
    assert!(
        now.contains(&"20200101T000000.000Z-api-studio".to_owned()),
        "{now:?}"
    );
    for id in &made {
        assert!(now.contains(id), "{id} is younger than 7 days: {now:?}");
    }
    assert_eq!(now.len(), 2 + 1 + 1 + 1, "{now:?}");
    assert!(
        !dest
            .join("20200101T000000.000Z-reference-old.dump")
            .exists()
    );
    assert!(
        !stale.exists(),
        "an unfinished dump older than a day is removed"
    );
    assert!(
        fresh.exists(),
        "a dump that may still be in progress is kept"
    );

    // Both rules: keep-last 3 and max-age 7 days.
    let out = backup_to(dest, &db.url, &["--keep-last", "3", "--max-age-days", "7"]);
    assert!(out.status.success(), "{}", text(&out));
    let reference: Vec<String> = ids(dest)
        .into_iter()
        .filter(|i| i.contains("-reference"))
        .collect();
    assert_eq!(reference.len(), 3, "{reference:?}");
    assert!(
        !reference.iter().any(|i| i.ends_with("-6d")),
        "the oldest goes first: {reference:?}"
    );

    // The embedded SQLite database is not something pg_dump can back up: said plainly.
    let out = backup_to(dest, "sqlite:///tmp/x.db?mode=rwc", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("backups need a PostgreSQL database"),
        "{}",
        text(&out)
    );
    // Without a destination to look in, `latest` cannot be resolved.
    let out = run(
        &["restore", "reference", "--from", "latest"],
        &[("DATABASE_URL", &db.url)],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("needs a destination"), "{}", text(&out));

    // Bad policy values are refused before anything runs.
    let out = backup_to(dest, &db.url, &["--keep-last", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("keep-last"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_truncated_or_foreign_backups_are_refused_with_the_reason() {
    let db = TestDb::new(Backend::Postgres).await;
    let out = run(&["migrate", "reference"], &[("DATABASE_URL", &db.url)]);
    assert!(out.status.success(), "{}", text(&out));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path();
    let out = backup_to(dest, &db.url, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let m = manifests(dest).remove(0);
    let id = m["id"].as_str().unwrap().to_owned();
    let dump = dest.join(format!("{id}.dump"));
    let good = std::fs::read(&dump).unwrap();
    let target = TestDb::new(Backend::Postgres).await;
    let restore = |from: &str| {
        run(
            &[
                "restore",
                "reference",
                "--from",
                from,
                "--destination",
                dest.to_str().unwrap(),
            ],
            &[("DATABASE_URL", &target.url)],
        )
    };

    // One byte flipped.
    let mut bad = good.clone();
    let middle = bad.len() / 2;
    bad[middle] ^= 0xff;
    std::fs::write(&dump, &bad).unwrap();
    let out = restore(&id);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("SHA-256"), "{}", text(&out));
    assert!(text(&out).contains("corrupted"), "{}", text(&out));
    assert!(
        text(&out).contains("nothing was restored"),
        "{}",
        text(&out)
    );
    assert_eq!(count_relations(&target.url).await, 0);

    // Truncated.
    std::fs::write(&dump, &good[..good.len() - 100]).unwrap();
    let out = restore(&id);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("truncated"), "{}", text(&out));
    assert_eq!(count_relations(&target.url).await, 0);

    // The dump is missing.
    std::fs::remove_file(&dump).unwrap();
    let out = restore(&id);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("is not in"), "{}", text(&out));
    std::fs::write(&dump, &good).unwrap();

    // Another add-on's backup, an unknown id, a nonsense --from.
    let out = run(
        &[
            "restore",
            "api-studio",
            "--from",
            &id,
            "--destination",
            dest.to_str().unwrap(),
        ],
        &[("DATABASE_URL", &target.url)],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("of the reference add-on, not api-studio"),
        "{}",
        text(&out)
    );
    let out = restore("20990101T000000.000Z-reference");
    assert!(text(&out).contains("is not in"), "{}", text(&out));
    let out = restore("../../etc/passwd");
    assert!(
        text(&out).contains("neither latest, a backup id"),
        "{}",
        text(&out)
    );
    assert_eq!(count_relations(&target.url).await, 0);

    // Intact again: it restores.
    let out = restore(&id);
    assert!(out.status.success(), "{}", text(&out));
    assert!(count_relations(&target.url).await > 0);
}

/// Client tools that fail part way: a pg_restore that stops after some of its SQL, a pg_dump
/// that dies mid-stream. Every other call goes to the real tools.
fn failing_tools(dir: &Path) -> PathBuf {
    let real = |name: &str| {
        let out = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = |name: &str, body: String| {
        let p = bin.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    let (pg_restore, pg_dump, psql) = (real("pg_restore"), real("pg_dump"), real("psql"));
    script(
        "pg_restore",
        format!(
            "case \"$1\" in --list|--version) exec {pg_restore} \"$@\";; esac\n{pg_restore} \"$@\" | head -c 6000\necho 'pg_restore: error: simulated failure' >&2\nexit 1"
        ),
    );
    script(
        "pg_dump",
        format!(
            "case \"$1\" in --version) exec {pg_dump} \"$@\";; esac\n{pg_dump} \"$@\" | head -c 3000\necho 'pg_dump: error: simulated failure' >&2\nexit 1"
        ),
    );
    script("psql", format!("exec {psql} \"$@\""));
    bin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_or_backup_failing_part_way_changes_nothing() {
    let app = TestApp::start(&universal_webhook::DEFINITION, Backend::Postgres).await;
    put_data(&app).await;
    let before = served(&app).await;
    let db = app.stop().await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("backups");
    let out = run(
        &[
            "backup",
            "universal-webhook",
            "--to",
            dest.to_str().unwrap(),
        ],
        &[("DATABASE_URL", &db.url)],
    );
    assert!(out.status.success(), "{}", text(&out));
    let tools = failing_tools(dir.path());

    // A forced restore whose SQL stops part way: rolled back, the data is as it was.
    let out = run(
        &[
            "restore",
            "universal-webhook",
            "--from",
            "latest",
            "--force",
            "--destination",
            dest.to_str().unwrap(),
        ],
        &[
            ("DATABASE_URL", &db.url),
            ("PG_BIN_DIR", tools.to_str().unwrap()),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("rolled back"), "{}", text(&out));
    assert!(text(&out).contains("simulated failure"), "{}", text(&out));
    let app = TestApp::builder(&universal_webhook::DEFINITION, Backend::Postgres)
        .database(db)
        .start()
        .await;
    assert_eq!(
        served(&app).await,
        before,
        "the failed restore changed nothing"
    );
    let db = app.stop().await;

    // A backup whose pg_dump dies: exit 1, no manifest, no partial dump, the old backup kept.
    let out = run(
        &[
            "backup",
            "universal-webhook",
            "--to",
            dest.to_str().unwrap(),
            "--keep-last",
            "1",
        ],
        &[
            ("DATABASE_URL", &db.url),
            ("PG_BIN_DIR", tools.to_str().unwrap()),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("simulated failure"), "{}", text(&out));
    let names: Vec<String> = std::fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names.len(),
        2,
        "one dump and its manifest, nothing partial: {names:?}"
    );
}

/// An HTTPS stand-in for AWS STS on 127.0.0.1 (object_store sends STS requests over https
/// only): a self-signed certificate for the address, in a PEM file the binary trusts through
/// `SSL_CERT_FILE`, and the query strings of the requests it answered.
struct FakeSts {
    url: String,
    ca_file: PathBuf,
    queries: std::sync::Arc<std::sync::Mutex<Vec<BTreeMap<String, String>>>>,
    _dir: tempfile::TempDir,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeSts {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn fake_sts(answer: String) -> FakeSts {
    use hyper::service::service_fn;
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, cert.cert.pem()).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let tls = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let queries = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = queries.clone();
    let server = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let Ok(stream) = acceptor.accept(tcp).await else {
                continue;
            };
            let (seen, answer) = (seen.clone(), answer.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let query: BTreeMap<String, String> = req
                        .uri()
                        .query()
                        .map(|q| {
                            url::form_urlencoded::parse(q.as_bytes())
                                .into_owned()
                                .collect()
                        })
                        .unwrap_or_default();
                    let post = req.method() == hyper::Method::POST;
                    seen.lock().unwrap().push(query);
                    let answer = answer.clone();
                    async move {
                        let status = if post { 200 } else { 405 };
                        hyper::Response::builder()
                            .status(status)
                            .header("content-type", "text/xml")
                            .body(http_body_util::Full::new(bytes::Bytes::from(answer)))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    FakeSts {
        url,
        ca_file,
        queries,
        _dir: dir,
        server,
    }
}

/// Workload identity (IRSA and the like): no static keys. The binary trades the projected
/// ServiceAccount token for temporary credentials at STS (a local stand-in that records what it
/// is sent and answers as AWS does) and stores and lists the backup in S3 (moto) with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_backups_use_web_identity_credentials_without_static_keys() {
    let app = TestApp::start(&universal_webhook::DEFINITION, Backend::Postgres).await;
    put_data(&app).await;
    let db = app.stop().await;
    let Some(moto) = moto("clockify-irsa").await else {
        return;
    };
    let expires = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let sts = fake_sts(format!(
        r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIAEXAMPLEWEBIDENT</AccessKeyId><SecretAccessKey>temporary-secret</SecretAccessKey><SessionToken>temporary-session-token</SessionToken><Expiration>{expires}</Expiration></Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"#
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "projected-service-account-token").unwrap();
    let role = "arn:aws:iam::123456789012:role/clockify-backups";
    let env = [
        ("BACKUP_S3_ENDPOINT", moto.endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ROLE_ARN", role),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", token_file.to_str().unwrap()),
        ("AWS_ENDPOINT_URL_STS", sts.url.as_str()),
        ("SSL_CERT_FILE", sts.ca_file.to_str().unwrap()),
    ];
    let dest = "s3://clockify-irsa/team-b/uw";
    let mut with_db = env.to_vec();
    with_db.push(("DATABASE_URL", db.url.as_str()));
    let out = run(&["backup", "universal-webhook", "--to", dest], &with_db);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("temporary-secret"), "{}", text(&out));
    let asked = sts.queries.lock().unwrap().clone();
    assert!(!asked.is_empty(), "credentials came from STS");
    for q in &asked {
        assert_eq!(q["Action"], "AssumeRoleWithWebIdentity");
        assert_eq!(q["RoleArn"], role);
        assert_eq!(q["WebIdentityToken"], "projected-service-account-token");
    }
    let list = run(
        &["backups", "universal-webhook", "--destination", dest],
        &env,
    );
    assert!(list.status.success(), "{}", text(&list));
    assert!(
        text(&list).contains("universal-webhook"),
        "the backup is listed: {}",
        text(&list)
    );
}

/// `backups --json`, as `kubectl clockify backups` runs it in a Job: every manifest, the
/// unfinished and unreadable ones, a closing count, and the newest that fit in the pod's
/// termination message (4 KiB) for when its log cannot be read.
#[test]
fn the_catalogue_is_printed_whole_and_summarised_for_the_termination_message() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path();
    for day in 0..30u64 {
        fake_backup(
            dest,
            &format!("2026{:04}T020000.000Z-reference-nightly", 1100 + day),
            Duration::from_secs((30 - day) * 86_400),
        );
    }
    std::fs::write(dest.join("20261201T020000.000Z-reference.dump"), b"half").unwrap();
    std::fs::write(dest.join("broken.json"), b"{\"format\":").unwrap();
    let message = dir.path().join("termination-log");
    let out = run(
        &[
            "backups",
            "reference",
            "--destination",
            dest.to_str().unwrap(),
            "--json",
        ],
        &[("TERMINATION_MESSAGE_PATH", message.to_str().unwrap())],
    );
    assert!(out.status.success(), "{}", text(&out));
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.len(),
        33,
        "30 backups, 1 unfinished, 1 unreadable, the count"
    );
    assert_eq!(
        lines[0]["id"], "20261100T020000.000Z-reference-nightly",
        "oldest first"
    );
    assert_eq!(lines[0]["sha256"], "0".repeat(64));
    assert_eq!(
        lines[30]["unfinished"],
        "20261201T020000.000Z-reference.dump"
    );
    assert!(
        lines[31]["unreadable"]
            .as_str()
            .unwrap()
            .starts_with("broken.json"),
        "{}",
        lines[31]
    );
    assert_eq!(lines[32], json!({"listed": 30, "omitted": 0}));

    let summary = std::fs::read_to_string(&message).unwrap();
    assert!(summary.len() <= 4096, "{} bytes", summary.len());
    let kept: Vec<Value> = summary
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let last = kept.last().unwrap();
    assert_eq!(
        kept[0]["id"], "20261129T020000.000Z-reference-nightly",
        "newest first"
    );
    assert_eq!(last["listed"], 30);
    assert_eq!(
        last["omitted"].as_u64().unwrap() as usize,
        32 - (kept.len() - 1),
        "{summary}"
    );
    assert!(kept.len() > 10, "{summary}");

    // A destination that cannot be listed says why, there too.
    let out = run(
        &["backups", "reference", "--destination", "ftp://nowhere/x"],
        &[("TERMINATION_MESSAGE_PATH", message.to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let why = std::fs::read_to_string(&message).unwrap();
    assert!(why.starts_with("cannot list backups: "), "{why}");
}
