//! The binary as operators and developers use it: migrate (idempotent, concurrent, clear
//! errors), start-up configuration errors, the README's dev walk-through, the config table.
#![cfg(test)]

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use addon_testkit::{Backend, TestDb};

const BIN: &str = env!("CARGO_BIN_EXE_clockify-addons");

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
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

async fn migrate_is_idempotent_and_safe_concurrently(backend: Backend) {
    let db = TestDb::new(backend).await;
    let url = db.url.clone();
    // Two processes at once on a fresh database: both succeed, the schema is applied once.
    let spawn = |url: String| {
        std::thread::spawn(move || {
            run(
                &["migrate", "api-studio"],
                &[("DATABASE_URL", url.as_str())],
            )
        })
    };
    let (a, b) = (spawn(url.clone()), spawn(url.clone()));
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    assert!(a.status.success(), "{}", text(&a));
    assert!(b.status.success(), "{}", text(&b));
    let applied = [&a, &b]
        .iter()
        .filter(|o| text(o).contains("applied 1 initial"))
        .count();
    assert_eq!(
        applied,
        1,
        "exactly one run applied the migration:\n{}\n---\n{}",
        text(&a),
        text(&b)
    );
    let again = run(
        &["migrate", "api-studio"],
        &[("DATABASE_URL", url.as_str())],
    );
    assert!(again.status.success());
    assert!(
        text(&again).contains(&format!(
            "up to date (version {})",
            addon_core::db::CORE_MIGRATIONS.len()
        )),
        "{}",
        text(&again)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_postgres() {
    migrate_is_idempotent_and_safe_concurrently(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_sqlite() {
    migrate_is_idempotent_and_safe_concurrently(Backend::Sqlite).await;
}

/// A migration that cannot be applied stops the command with a non-zero exit and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_migration_exits_non_zero_with_the_reason() {
    let db = TestDb::new(Backend::Postgres).await;
    let ok = run(
        &["migrate", "api-studio"],
        &[("DATABASE_URL", db.url.as_str())],
    );
    assert!(ok.status.success(), "{}", text(&ok));
    // Someone edited an applied migration (its checksum no longer matches).
    let mut conn = addon_core::db::connect_one(&db.url).await.unwrap();
    sqlx::query("UPDATE _sqlx_migrations SET checksum = '\\x00' WHERE version = 1")
        .execute(&mut conn)
        .await
        .unwrap();
    let failed = run(
        &["migrate", "api-studio"],
        &[("DATABASE_URL", db.url.as_str())],
    );
    assert!(!failed.status.success());
    let t = text(&failed);
    assert!(
        t.contains("api-studio")
            && t.contains("migration 1 was previously applied but has been modified"),
        "{t}"
    );
    // A table in the way: the migration itself fails, nothing is recorded as applied.
    let fresh = TestDb::new(Backend::Postgres).await;
    let mut conn = addon_core::db::connect_one(&fresh.url).await.unwrap();
    sqlx::query("CREATE TABLE flows (id TEXT)")
        .execute(&mut conn)
        .await
        .unwrap();
    let failed = run(
        &["migrate", "api-studio"],
        &[("DATABASE_URL", fresh.url.as_str())],
    );
    assert!(!failed.status.success());
    assert!(
        text(&failed).contains("relation \"flows\" already exists"),
        "{}",
        text(&failed)
    );
}

#[test]
fn migrate_and_serve_explain_bad_configuration() {
    let o = run(&["migrate", "api-studio"], &[]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("DATABASE_URL is required"),
        "{}",
        text(&o)
    );

    let o = run(
        &["migrate", "api-studio"],
        &[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")],
    );
    assert!(!o.status.success());
    assert!(
        text(&o).contains("cannot connect to the postgres database"),
        "{}",
        text(&o)
    );

    let o = run(
        &["serve", "api-studio"],
        &[
            ("DATABASE_URL", "postgres://u:hunter2@db/x"),
            ("CLOCKIFY_API_RATE_LIMIT", "lots"),
        ],
    );
    assert!(!o.status.success());
    let t = text(&o);
    for needle in [
        "ADDON_BASE_URL is required",
        "TOKEN_ENCRYPTION_KEY is required",
        "CLOCKIFY_API_RATE_LIMIT: expected",
    ] {
        assert!(t.contains(needle), "{needle} not in {t}");
    }
    assert!(!t.contains("hunter2"), "a secret was printed: {t}");
}

#[test]
fn readme_config_table_is_current() {
    let o = run(&["config-table"], &[]);
    assert!(o.status.success());
    let table = String::from_utf8(o.stdout).unwrap();
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    assert!(
        readme.contains(&table),
        "README.md's configuration table is stale: replace it with the output of `cargo run -p clockify-addons -- config-table`"
    );
}

/// `n` consecutive free ports on 127.0.0.1 (the first is returned).
fn free_ports(n: u16) -> u16 {
    for _ in 0..50 {
        let first = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if first > u16::MAX - n {
            continue;
        }
        if (1..n).all(|i| std::net::TcpListener::bind(("127.0.0.1", first + i)).is_ok()) {
            return first;
        }
    }
    panic!("no {n} consecutive free ports");
}

/// The README walk-through: `dev`, then `sign`, then curl-equivalents against it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_server_accepts_tokens_from_sign() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dev");
    let data = data.to_str().unwrap();
    let port = free_ports(3);
    addon_core::clockify::client::install_tls_provider();
    let mut server = Command::new(BIN)
        .args(["dev", "--data-dir", data, "--port", &port.to_string()])
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let sign_for = |addon: &str, kind: &str| {
        let o = run(
            &[
                "sign",
                "--workspace",
                "ws-dev",
                "--kind",
                kind,
                "--addon",
                addon,
                "--data-dir",
                data,
            ],
            &[],
        );
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8(o.stdout).unwrap().trim().to_owned()
    };
    let sign = |kind: &str| sign_for("api-studio", kind);
    let (webhook, lifecycle, user) = (sign("webhook"), sign("lifecycle"), sign("user"));
    let installation = sign("installation");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    // All three add-ons, on consecutive ports, each with its own manifest.
    for (offset, key, plan) in [
        (0, "api-studio", "STANDARD"),
        (1, "universal-webhook", "ENTERPRISE"),
        (2, "reference-addon", "FREE"),
    ] {
        let url = format!("http://127.0.0.1:{}", port + offset);
        let mut ready = false;
        for _ in 0..150 {
            if http
                .get(format!("{url}/ready"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "{key} on {url} did not become ready");
        let manifest: serde_json::Value = http
            .get(format!("{url}/manifest"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(manifest["key"], key);
        assert_eq!(manifest["minimalSubscriptionPlan"], plan);
        assert_eq!(
            manifest["baseUrl"],
            format!("http://localhost:{}", port + offset)
        );
    }
    assert!(
        std::path::Path::new(data)
            .join("universal-webhook.db")
            .exists()
            && std::path::Path::new(data).join("reference.db").exists(),
        "each add-on has its own SQLite file"
    );
    // Universal Webhook: install with its own tokens, then a signed custom webhook.
    let uw = format!("http://127.0.0.1:{}", port + 1);
    let uw_lifecycle = sign_for("universal-webhook", "lifecycle");
    let uw_user = sign_for("universal-webhook", "user");
    let r = http
        .post(format!("{uw}/lifecycle/installed"))
        .header("X-Addon-Lifecycle-Token", &uw_lifecycle)
        .json(&serde_json::json!({
            "addonId": "dev", "authToken": uw_lifecycle, "workspaceId": "ws-dev",
            "apiUrl": "https://api.clockify.me/api", "webhooks": []
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let info: serde_json::Value = http
        .get(format!(
            "{uw}/ui/custom-webhooks?source=ci&auth_token={uw_user}"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = info["signingSecret"]
        .as_str()
        .expect("the admin sees the source's signing secret");
    let body = br#"{"type":"deploy","service":"api"}"#;
    let now = addon_core::time::now_secs();
    let r = http
        .post(format!("{uw}/webhooks/custom/ci"))
        .header("X-Workspace-Id", "ws-dev")
        .header("webhook-id", "msg_dev_1")
        .header("webhook-timestamp", now.to_string())
        .header(
            "webhook-signature",
            addon_core::routes::custom::sign_standard(secret, "msg_dev_1", now, body),
        )
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // A token of one add-on is refused by another (its `sub` is the other's key).
    let r = http
        .get(format!("{uw}/ui/dashboard?auth_token={user}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let installed = serde_json::json!({
        "addonId": "dev", "authToken": installation, "workspaceId": "ws-dev", "apiUrl": "https://api.clockify.me/api",
        "webhooks": [{"path": "/webhooks/clockify", "webhookType": "ADDON", "authToken": webhook}]
    });
    let r = http
        .post(format!("{base}/lifecycle/installed"))
        .header("X-Addon-Lifecycle-Token", &lifecycle)
        .json(&installed)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(format!("{base}/webhooks/clockify"))
        .header("Clockify-Signature", &webhook)
        .header("Clockify-Webhook-Event-Type", "NEW_TAG")
        .json(&serde_json::json!({"id": "t1", "name": "Urgent", "workspaceId": "ws-dev"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(format!("{base}/ui/webhooks?auth_token={user}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["items"][0]["eventType"], "NEW_TAG");
    // Signature verification is on: a token from another key is refused.
    let other = addon_core::auth::DevKeyPair::generate().unwrap();
    let forged = addon_core::auth::TokenSigner::from_rsa_pem(&other.private_pem, "api-studio")
        .unwrap()
        .sign(addon_core::auth::TokenKind::User, "ws-dev", "x")
        .unwrap();
    let r = http
        .get(format!("{base}/ui/webhooks?auth_token={forged}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let _ = server.kill();
    let _ = server.wait();
}

/// SIGTERM to the real process: it stops accepting, finishes the request in flight, exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests() {
    addon_core::clockify::client::install_tls_provider();
    let fake = addon_testkit::FakeClockify::start().await;
    // Bootstrap's paged requests are answered at once; the explorer's (no `page`) takes 1.5 s.
    fake.respond(|r| {
        let resp = addon_testkit::FakeResponse::json(200, serde_json::json!([]));
        if r.path.ends_with("/tags") && !r.query.contains_key("page") {
            resp.delayed(Duration::from_millis(1500))
        } else {
            resp
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new(BIN)
        .args([
            "dev",
            "--data-dir",
            &data,
            "--port",
            &port.to_string(),
            "--addon",
            "api-studio",
        ])
        .env("CLOCKIFY_API_ALLOWED_HOSTS", fake.allow_entry())
        .env("RETENTION_INTERVAL_SECONDS", "3600")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let sign = |kind: &str| {
        let o = run(
            &[
                "sign",
                "--workspace",
                "ws-term",
                "--kind",
                kind,
                "--data-dir",
                &data,
            ],
            &[],
        );
        String::from_utf8(o.stdout).unwrap().trim().to_owned()
    };
    let (lifecycle, user) = (sign("lifecycle"), sign("user"));
    let installation = sign("installation");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if http
            .get(format!("{base}/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let installed = serde_json::json!({"addonId": "dev", "authToken": installation, "workspaceId": "ws-term", "apiUrl": fake.api_url(), "webhooks": []});
    let r = http
        .post(format!("{base}/lifecycle/installed"))
        .header("X-Addon-Lifecycle-Token", &lifecycle)
        .json(&installed)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Let the install's bootstrap finish.
    for _ in 0..100 {
        let r = http
            .get(format!("{base}/ui/bootstrap?auth_token={user}"))
            .send()
            .await
            .unwrap();
        let b: serde_json::Value = r.json().await.unwrap();
        if b["bootstrap"]["state"] == "COMPLETE" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    fake.clear();
    let slow = {
        let http = http.clone();
        let url = format!("{base}/ui/explorer/execute");
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(user)
                .json(&serde_json::json!({"operationId": "getTags"}))
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    fake.wait_for(1, Duration::from_secs(5)).await;
    let kill = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    assert_eq!(
        slow.await.unwrap().unwrap(),
        200,
        "the request in flight completed"
    );
    let status = tokio::task::spawn_blocking(move || server.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        http.get(format!("{base}/healthz")).send().await.is_err(),
        "nothing listens after exit"
    );
}
