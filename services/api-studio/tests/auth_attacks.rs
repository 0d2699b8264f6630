//! Attacks on Clockify token verification. Each forged token is refused with 401 on the webhook,
//! lifecycle and UI routes, and the log names the reason but never contains the token.
#![cfg(test)]

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use addon_core::auth::TokenKind;
use addon_testkit::{Backend, TestApp, keys};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs() -> &'static Capture {
    static LOGS: OnceLock<Capture> = OnceLock::new();
    LOGS.get_or_init(|| {
        let capture = Capture::default();
        let writer = capture.clone();
        tracing_subscriber::fmt()
            .json()
            .with_env_filter("info")
            .with_writer(move || writer.clone())
            .init();
        capture
    })
}

fn log_text() -> String {
    String::from_utf8_lossy(&logs().0.lock().unwrap()).into_owned()
}

fn raw_token(header: Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    )
}

struct Attack {
    name: &'static str,
    token: String,
    reason: &'static str,
}

fn attacks(app: &TestApp, kind: TokenKind, ws: &str) -> Vec<Attack> {
    let good = app.signer.claims(kind, ws, &app.fake.api_url());
    let claims = serde_json::to_value(&good).unwrap();
    let sign = |c: &Value| app.signer.sign_claims(c).unwrap();
    let with = |field: &str, v: Value| {
        let mut c = claims.clone();
        c[field] = v;
        c
    };
    let valid = sign(&claims);
    let mut parts: Vec<&str> = valid.split('.').collect();
    let tampered_claims = B64.encode(with("workspaceId", json!("another-ws")).to_string());
    parts[1] = &tampered_claims;
    let tampered = parts.join(".");
    let other_key = addon_core::auth::DevKeyPair::generate().unwrap();
    let other_signer =
        addon_core::auth::TokenSigner::from_rsa_pem(&other_key.private_pem, "api-studio").unwrap();
    vec![
        Attack {
            name: "alg none",
            token: raw_token(json!({"alg": "none", "typ": "JWT"}), &claims, ""),
            reason: "malformed",
        },
        Attack {
            name: "HS256 with the public key as secret",
            token: jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(keys().public_pem.as_bytes()),
            )
            .unwrap(),
            reason: "algorithm",
        },
        Attack {
            name: "wrong iss",
            token: sign(&with("iss", json!("clockify-evil"))),
            reason: "issuer",
        },
        Attack {
            name: "wrong sub",
            token: sign(&with("sub", json!("another-addon"))),
            reason: "subject",
        },
        Attack {
            name: "wrong type",
            token: sign(&with("type", json!("user"))),
            reason: "type",
        },
        Attack {
            name: "expired",
            token: sign(&with("exp", json!(addon_core::time::now_secs() - 3600))),
            reason: "expired",
        },
        Attack {
            name: "tampered claims",
            token: tampered,
            reason: "signature",
        },
        Attack {
            name: "signed by another key",
            token: other_signer.sign_claims(&claims).unwrap(),
            reason: "signature",
        },
        Attack {
            name: "garbage",
            token: "definitely.not.a-jwt".into(),
            reason: "malformed",
        },
    ]
}

async fn status_of(req: reqwest::RequestBuilder) -> u16 {
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_tokens_are_refused_everywhere_and_logged_without_the_token() {
    logs();
    let app = TestApp::start(&api_studio::DEFINITION, Backend::Sqlite).await;
    let webhook_token = app.install_settled("ws1").await;
    let body = json!({"id": "t1", "workspaceId": "ws1"});

    for attack in attacks(&app, TokenKind::Webhook, "ws1") {
        let before = log_text().len();
        let s = status_of(
            app.http
                .post(app.url("/webhooks/clockify"))
                .header("Clockify-Signature", &attack.token)
                .header("Clockify-Webhook-Event-Type", "NEW_TAG")
                .json(&body),
        )
        .await;
        assert_eq!(s, 401, "webhook: {}", attack.name);
        let new_logs = log_text()[before..].to_owned();
        assert!(
            new_logs.contains(&format!("\"reason\":\"{}\"", attack.reason)),
            "webhook {}: reason {} not logged:\n{new_logs}",
            attack.name,
            attack.reason
        );
        assert!(
            !new_logs.contains(&attack.token),
            "webhook {}: the token was logged",
            attack.name
        );
    }
    for attack in attacks(&app, TokenKind::Lifecycle, "ws1") {
        let s = status_of(
            app.http
                .post(app.url("/lifecycle/status-changed"))
                .header("X-Addon-Lifecycle-Token", &attack.token)
                .json(&json!({"workspaceId": "ws1", "status": "INACTIVE"})),
        )
        .await;
        assert_eq!(s, 401, "lifecycle: {}", attack.name);
    }
    for attack in attacks(&app, TokenKind::User, "ws1") {
        let s = status_of(
            app.http
                .get(app.url("/ui/dashboard"))
                .bearer_auth(&attack.token),
        )
        .await;
        assert_eq!(s, 401, "ui: {}", attack.name);
        let s = status_of(
            app.http
                .get(app.url(&format!("/ui/flows?auth_token={}", attack.token))),
        )
        .await;
        assert_eq!(s, 401, "ui query: {}", attack.name);
    }

    // Empty and missing headers.
    let s = status_of(
        app.http
            .post(app.url("/webhooks/clockify"))
            .header("Clockify-Signature", "")
            .header("Clockify-Webhook-Event-Type", "NEW_TAG")
            .json(&body),
    )
    .await;
    assert_eq!(s, 401);
    let s = status_of(
        app.http
            .get(app.url("/ui/dashboard"))
            .header("Authorization", "Bearer "),
    )
    .await;
    assert_eq!(s, 401);

    // Wrong workspace: a valid token for ws1, a body for ws2 (tampered body).
    let before = log_text().len();
    let s = status_of(
        app.http
            .post(app.url("/webhooks/clockify"))
            .header("Clockify-Signature", &webhook_token)
            .header("Clockify-Webhook-Event-Type", "NEW_TAG")
            .json(&json!({"id": "t1", "workspaceId": "ws2"})),
    )
    .await;
    assert_eq!(s, 401);
    assert!(log_text()[before..].contains("\"reason\":\"workspace_mismatch\""));

    // Nothing was stored by any of it, and no token reached the logs.
    let n: i64 = sqlx::Row::get(
        &sqlx::query("SELECT COUNT(*) FROM webhook_log")
            .fetch_one(app.state.db.pool())
            .await
            .unwrap(),
        0,
    );
    assert_eq!(n, 0);
    assert!(!log_text().contains(&webhook_token));
    app.stop().await;
}
