//! The real binary serving Universal Webhook on PostgreSQL, for the tests that start it as a
//! process: installs, flows and deliveries go through its HTTP API as Clockify's would.
// Each test file compiles this module on its own and uses part of it.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use addon_core::auth::TokenKind;
use addon_testkit::{FakeClockify, TestDb, keys, signer};
use base64::Engine as _;
use serde_json::json;

pub const BIN: &str = env!("CARGO_BIN_EXE_clockify-addons");

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `clockify-addons migrate universal-webhook`, as a release runs it before the pods.
pub fn migrate(db: &TestDb) {
    let migrate = Command::new(BIN)
        .args(["migrate", "universal-webhook"])
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(
        migrate.status.success(),
        "migrate: {}",
        String::from_utf8_lossy(&migrate.stderr)
    );
}

/// A started process, killed (SIGKILL) when dropped, so a test that fails leaves none behind.
pub struct Server(Child);

impl Server {
    /// SIGKILL, and waits for the process to be gone.
    pub fn kill(&mut self) {
        self.0.kill().expect("kill clockify-addons");
        self.0.wait().expect("wait for clockify-addons");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `serve universal-webhook` in production mode, calling `fake` (trusting its certificate when
/// it serves HTTPS), with `extra` settings.
pub fn spawn(db: &TestDb, fake: &FakeClockify, port: u16, extra: &[(&str, &str)]) -> Server {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "universal-webhook"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ADDON_MODE", "production")
        .env("ADDON_BASE_URL", "https://uw.test.example")
        .env("ADDON_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", &db.url)
        .env(
            "TOKEN_ENCRYPTION_KEY",
            base64::engine::general_purpose::STANDARD.encode([7u8; 32]),
        )
        .env("CLOCKIFY_PUBLIC_KEY", &keys().public_pem)
        .env("CLOCKIFY_API_ALLOWED_HOSTS", fake.allow_entry())
        .env("LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(ca) = fake.ca_file() {
        cmd.env("SSL_CERT_FILE", ca);
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    Server(cmd.spawn().expect("start clockify-addons"))
}

pub async fn ready(http: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if http
            .get(format!("{base}/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{base} did not become ready");
}

/// Installs the add-on in `ws` with bootstrap turned off (the install's own bootstrap run,
/// requested before the setting lands, may still call the fake) and one flow per `(name, collection)`, each POSTing `{"name": <delivery id>}` to
/// `/v1/workspaces/{ws}/<collection>` on NEW_TIME_ENTRY. Returns the webhook token.
pub async fn install(
    http: &reqwest::Client,
    base: &str,
    fake: &FakeClockify,
    ws: &str,
    flows: &[(&str, &str)],
) -> String {
    let sign = signer("universal-webhook");
    let token = |kind| sign.sign(kind, ws, &fake.api_url()).unwrap();
    let webhook = token(TokenKind::Webhook);
    let r = http
        .post(format!("{base}/lifecycle/installed"))
        .header("X-Addon-Lifecycle-Token", token(TokenKind::Lifecycle))
        .json(&json!({
            "addonId": "a", "authToken": token(TokenKind::Installation), "workspaceId": ws,
            "apiUrl": fake.api_url(),
            "webhooks": [{"path": "/webhooks/clockify", "webhookType": "ADDON", "authToken": webhook}]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(format!("{base}/lifecycle/settings-updated"))
        .header("X-Addon-Lifecycle-Token", token(TokenKind::Lifecycle))
        .json(&json!({"workspaceId": ws, "settings": [{"id": "bootstrap_on_install", "name": "b", "value": false}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for (name, path) in flows {
        let r = http
            .post(format!("{base}/ui/flows"))
            .bearer_auth(token(TokenKind::User))
            .json(&json!({
                "name": name, "triggerEvents": ["NEW_TIME_ENTRY"],
                "actions": [{"method": "POST", "path": format!("/v1/workspaces/{{{{workspaceId}}}}/{path}"), "body": {"name": "{{$.id}}"}}]
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    webhook
}

/// Delivers a NEW_TIME_ENTRY webhook with entity id `id` to `ws`; asserts it was accepted.
pub async fn deliver(http: &reqwest::Client, base: &str, webhook_token: &str, ws: &str, id: &str) {
    let r = http
        .post(format!("{base}/webhooks/clockify"))
        .header("Clockify-Signature", webhook_token)
        .header("Clockify-Webhook-Event-Type", "NEW_TIME_ENTRY")
        .json(&json!({"id": id, "workspaceId": ws}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "delivery {id} to {ws} accepted");
}
