//! A running add-on for tests: its own fresh database, a fake Clockify it may call, and
//! helpers that speak to it the way Clockify and a browser do.

use std::time::Duration;

use addon_core::addon::AddonDefinition;
use addon_core::auth::{TokenKind, TokenSigner};
use addon_core::config::{CoreConfig, Env};
use addon_core::{App, AppState};
use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Digest as _;
use tokio_util::sync::CancellationToken;

use crate::{Backend, FakeClockify, TestDb, keys, signer};

pub struct TestAppBuilder {
    def: &'static AddonDefinition,
    backend: Backend,
    env: Vec<(String, String)>,
    migrate: bool,
    fake: Option<FakeClockify>,
    db: Option<TestDb>,
}

impl TestAppBuilder {
    pub fn new(def: &'static AddonDefinition, backend: Backend) -> Self {
        Self {
            def,
            backend,
            env: Vec::new(),
            migrate: true,
            fake: None,
            db: None,
        }
    }

    pub fn env(mut self, name: &str, value: impl Into<String>) -> Self {
        self.env.push((name.to_owned(), value.into()));
        self
    }

    /// Leaves the database unmigrated.
    pub fn no_migrate(mut self) -> Self {
        self.migrate = false;
        self
    }

    /// Reuses a database (e.g. to restart an app on the same data).
    pub fn database(mut self, db: TestDb) -> Self {
        self.db = Some(db);
        self
    }

    pub fn fake(mut self, fake: FakeClockify) -> Self {
        self.fake = Some(fake);
        self
    }

    pub async fn start(self) -> TestApp {
        let db = match self.db {
            Some(db) => db,
            None => TestDb::new(self.backend).await,
        };
        let fake = match self.fake {
            Some(f) => f,
            None => FakeClockify::start().await,
        };
        // One key per database, so an app restarted on the same data can read its tokens.
        let key: [u8; 32] = sha2::Sha256::digest(db.url.as_bytes()).into();
        // Production refuses SQLite: the embedded backend runs in development mode, migrated
        // by the test kit like production is by `clockify-addons migrate`.
        let mode = if db.url.starts_with("sqlite:") {
            "development"
        } else {
            "production"
        };
        let mut env = Env::from_pairs([
            ("ADDON_MODE", mode.to_owned()),
            ("DATABASE_AUTO_MIGRATE", "false".to_owned()),
            // Tests stop at once unless they test the drain.
            ("SHUTDOWN_DRAIN_SECONDS", "0".to_owned()),
            ("ADDON_BASE_URL", "https://addon.test.example".to_owned()),
            ("ADDON_LISTEN_ADDR", "127.0.0.1:0".to_owned()),
            ("DATABASE_URL", db.url.clone()),
            ("DATABASE_MAX_CONNECTIONS", "5".to_owned()),
            (
                "TOKEN_ENCRYPTION_KEY",
                base64::engine::general_purpose::STANDARD.encode(key),
            ),
            ("CLOCKIFY_PUBLIC_KEY", keys().public_pem.clone()),
            (
                "CLOCKIFY_API_ALLOWED_HOSTS",
                format!("api.clockify.me,*.clockify.me,{}", fake.allow_entry()),
            ),
        ]);
        for (k, v) in self.env {
            env.set(&k, v);
        }
        let config =
            CoreConfig::from_env(&env, &self.def.defaults).expect("test configuration is valid");
        let addon_key = config.addon_key.clone();
        if self.migrate {
            let pool = addon_core::db::Db::connect(&db.url, 2)
                .await
                .expect("connect for migration");
            self.def
                .migrations
                .migrate(&pool, &db.url)
                .await
                .expect("migrations apply");
            pool.close().await;
        }
        let app = App::build(self.def, config).await.expect("app builds");
        let base = format!("http://127.0.0.1:{}", app.port());
        let state = app.state();
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let handle = tokio::spawn(app.run(async move { stop.cancelled().await }));
        TestApp {
            db,
            fake,
            state,
            base,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            signer: signer(&addon_key),
            shutdown,
            handle: Some(handle),
        }
    }
}

pub struct TestApp {
    pub db: TestDb,
    pub fake: FakeClockify,
    pub state: AppState,
    pub base: String,
    pub http: reqwest::Client,
    pub signer: TokenSigner,
    shutdown: CancellationToken,
    handle: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl std::fmt::Debug for TestApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestApp").field("base", &self.base).finish()
    }
}

/// Status and JSON body of a response.
pub async fn json_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

impl TestApp {
    pub fn builder(def: &'static AddonDefinition, backend: Backend) -> TestAppBuilder {
        TestAppBuilder::new(def, backend)
    }

    pub async fn start(def: &'static AddonDefinition, backend: Backend) -> Self {
        TestAppBuilder::new(def, backend).start().await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn token(&self, kind: TokenKind, workspace: &str) -> String {
        self.signer
            .sign(kind, workspace, &self.fake.api_url())
            .expect("sign")
    }

    /// A user token of a workspace member who is not an admin.
    pub fn member_token(&self, workspace: &str) -> String {
        let mut claims = self
            .signer
            .claims(TokenKind::User, workspace, &self.fake.api_url());
        claims.workspace_role = Some("TEAM_MANAGER".into());
        self.signer.sign_claims(&claims).expect("sign")
    }

    /// Installs the add-on in `workspace` (pointing at the fake Clockify); returns the webhook token.
    pub async fn install(&self, workspace: &str) -> String {
        let webhook_token = self.token(TokenKind::Webhook, workspace);
        let body = json!({
            "addonId": "addon-1",
            "authToken": self.token(TokenKind::Installation, workspace),
            "workspaceId": workspace,
            "asUser": "user-1",
            "apiUrl": self.fake.api_url(),
            "addonUserId": "addon-user-1",
            "webhooks": [{"path": format!("{}/webhooks/clockify", self.base), "webhookType": "ADDON", "authToken": webhook_token}],
        });
        let (status, body) = self.lifecycle("installed", workspace, body).await;
        assert_eq!(status, 200, "install failed: {body}");
        webhook_token
    }

    /// Installs and waits for the install's bootstrap to finish, so later fake-API traffic is
    /// the test's own.
    pub async fn install_settled(&self, workspace: &str) -> String {
        let token = self.install(workspace).await;
        self.bootstrap_finished(workspace).await;
        self.fake.clear();
        token
    }

    /// Waits for the workspace's bootstrap run to reach a final state and returns it.
    pub async fn bootstrap_finished(
        &self,
        workspace: &str,
    ) -> addon_core::store::bootstrap::BootstrapRun {
        self.eventually(Duration::from_secs(20), || async {
            let run = addon_core::store::bootstrap::get(&self.state.db, workspace)
                .await
                .ok()
                .flatten()?;
            matches!(
                run.state.as_str(),
                "COMPLETE" | "COMPLETE_WITH_ERRORS" | "FAILED"
            )
            .then_some(run)
        })
        .await
        .expect("bootstrap finishes")
    }

    pub async fn lifecycle(&self, event: &str, workspace: &str, body: Value) -> (u16, Value) {
        self.lifecycle_with(&self.token(TokenKind::Lifecycle, workspace), event, &body)
            .await
    }

    /// A lifecycle call carrying `token`, whatever kind it is.
    pub async fn lifecycle_with(&self, token: &str, event: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .http
            .post(self.url(&format!("/lifecycle/{event}")))
            .header("X-Addon-Lifecycle-Token", token)
            .json(body)
            .send()
            .await
            .expect("lifecycle request");
        json_of(resp).await
    }

    pub async fn webhook(&self, token: &str, event: &str, body: &Value) -> (u16, Value) {
        self.webhook_raw(token, event, body.to_string().into_bytes())
            .await
    }

    pub async fn webhook_raw(&self, token: &str, event: &str, body: Vec<u8>) -> (u16, Value) {
        self.webhook_at("/webhooks/clockify", token, event, body)
            .await
    }

    /// A Clockify webhook delivered to `path`.
    pub async fn webhook_at(
        &self,
        path: &str,
        token: &str,
        event: &str,
        body: Vec<u8>,
    ) -> (u16, Value) {
        let resp = self
            .http
            .post(self.url(path))
            .header("Clockify-Signature", token)
            .header("Clockify-Webhook-Event-Type", event)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("webhook request");
        json_of(resp).await
    }

    /// A `/ui` call as the workspace's owner (Bearer user token).
    pub async fn ui(
        &self,
        workspace: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, self.url(path))
            .bearer_auth(self.token(TokenKind::User, workspace));
        if let Some(b) = body {
            req = req.json(&b);
        }
        json_of(req.send().await.expect("ui request")).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        json_of(self.http.get(self.url(path)).send().await.expect("request")).await
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body")
    }

    /// The value of one series (its name with labels, as exported), if exported.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let text = self.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    }

    /// Polls `f` until it returns `Some` or the timeout passes.
    pub async fn eventually<T, F, Fut>(&self, timeout: Duration, mut f: F) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(v) = f().await {
                return Some(v);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Graceful shutdown; returns the database for a restart.
    pub async fn stop(mut self) -> TestDb {
        self.shutdown.cancel();
        if let Some(h) = self.handle.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), h).await;
        }
        let TestApp { db, .. } = self;
        db
    }
}
