//! `clockify-addons rotate-key`: every stored credential re-encrypted under the new key in
//! batches, readable afterwards with the new key alone, safe to repeat; values no key opens
//! are named (never printed) and the exit code says so.
#![cfg(test)]

use std::process::{Command, Output};

use addon_core::auth::TokenKind;
use addon_core::crypto::{TokenCipher, key_id};
use addon_testkit::{Backend, TestApp, TestDb};
use base64::Engine as _;
use reqwest::Method;
use secrecy::SecretBox;
use serde_json::json;
use sqlx::Row;

const BIN: &str = env!("CARGO_BIN_EXE_clockify-addons");

fn b64(k: [u8; 32]) -> String {
    base64::engine::general_purpose::STANDARD.encode(k)
}

fn rotate(db: &TestDb, key: [u8; 32], previous: &[[u8; 32]]) -> (bool, String) {
    let previous: Vec<String> = previous.iter().map(|k| b64(*k)).collect();
    let out: Output = Command::new(BIN)
        .args(["rotate-key", "universal-webhook", "--batch", "1"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &db.url)
        .env("ADDON_BASE_URL", "https://uw.test.example")
        .env("TOKEN_ENCRYPTION_KEY", b64(key))
        .env("TOKEN_ENCRYPTION_PREVIOUS_KEYS", previous.join(","))
        .output()
        .expect("run clockify-addons");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

async fn stored_values(db: &TestDb) -> Vec<String> {
    let pool = addon_core::db::Db::connect(&db.url, 1).await.unwrap();
    let mut out = Vec::new();
    for sql in [
        "SELECT auth_token_enc FROM installations WHERE auth_token_enc IS NOT NULL",
        "SELECT secret_enc FROM custom_webhook_secrets",
        "SELECT previous_secret_enc FROM custom_webhook_secrets WHERE previous_secret_enc IS NOT NULL",
    ] {
        for r in sqlx::query(sql).fetch_all(pool.pool()).await.unwrap() {
            out.push(r.get::<String, _>(0));
        }
    }
    for r in sqlx::query("SELECT actions FROM flows")
        .fetch_all(pool.pool())
        .await
        .unwrap()
    {
        let actions: serde_json::Value = serde_json::from_str(&r.get::<String, _>(0)).unwrap();
        for a in actions.as_array().unwrap() {
            for v in a["headers"].as_object().into_iter().flatten() {
                out.push(
                    v.1.as_str()
                        .unwrap()
                        .trim_start_matches("sealed:")
                        .to_owned(),
                );
            }
        }
    }
    pool.close().await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_key_re_encrypts_everything_in_batches() {
    let (old, new, stranger) = ([1u8; 32], [2u8; 32], [3u8; 32]);
    let app = TestApp::builder(&universal_webhook::DEFINITION, Backend::Postgres)
        .env("TOKEN_ENCRYPTION_KEY", b64(old))
        .start()
        .await;
    for ws in ["ws1", "ws2", "ws3"] {
        app.install_settled(ws).await;
        let (s, _) = app
            .ui(ws, Method::POST, "/ui/custom-webhooks/rotate", None)
            .await;
        assert_eq!(s, 200);
        let (s, b) = app
            .ui(
                ws,
                Method::POST,
                "/ui/flows",
                Some(json!({"name": "h", "triggerEvents": ["NEW_TAG"], "actions": [{
                    "type": "GENERIC_HTTP", "method": "POST", "url": "https://hooks.example.com/x",
                    "headers": {"Authorization": "Bearer s3cret", "X-Ws": ws}
                }]})),
            )
            .await;
        assert_eq!(s, 201, "{b}");
    }
    let fake = app.fake.clone();
    let db = app.stop().await;
    let before = stored_values(&db).await;
    // 3 installation tokens, 3 + 3 secrets, 6 header values.
    assert_eq!(before.len(), 15, "{before:?}");
    let old_id = key_id(&old);
    assert!(
        before
            .iter()
            .all(|v| v.starts_with(&format!("v2.{old_id}.")))
    );

    let (ok, out) = rotate(&db, new, &[old]);
    assert!(ok, "{out}");
    assert!(out.contains("re-encrypted 15"), "{out}");
    assert!(!out.contains("s3cret"), "{out}");
    let after = stored_values(&db).await;
    let new_id = key_id(&new);
    assert!(
        after
            .iter()
            .all(|v| v.starts_with(&format!("v2.{new_id}."))),
        "{after:?}"
    );
    // Again: nothing left to do.
    let (ok, out) = rotate(&db, new, &[old]);
    assert!(ok, "{out}");
    assert!(out.contains("re-encrypted 0"), "{out}");

    // The new key alone reads everything: the add-on serves on it.
    let app = TestApp::builder(&universal_webhook::DEFINITION, Backend::Postgres)
        .database(db)
        .fake(fake)
        .no_migrate()
        .env("TOKEN_ENCRYPTION_KEY", b64(new))
        .start()
        .await;
    for ws in ["ws1", "ws2", "ws3"] {
        let (s, b) = app.ui(ws, Method::GET, "/ui/custom-webhooks", None).await;
        assert_eq!(s, 200, "{b}");
        let i = addon_core::store::installations::get(&app.state.db, ws)
            .await
            .unwrap()
            .unwrap();
        let target = app.state.target(&i).expect("the installation token opens");
        let verifier = addon_core::auth::TokenVerifier::new(
            &addon_testkit::keys().public_pem,
            &app.state.config.addon_key,
        )
        .unwrap();
        let claims = verifier
            .verify(
                secrecy::ExposeSecret::expose_secret(&target.token),
                TokenKind::Installation,
            )
            .unwrap();
        assert_eq!(claims.workspace_id, ws);
        let flows = addon_core::store::flows::list(&app.state.db, ws)
            .await
            .unwrap();
        let mut def = flows[0].definition.clone();
        let ring = TokenCipher::new(&SecretBox::new(Box::new(new)));
        addon_core::flows::sealed::unseal(&ring, ws, &mut def).unwrap();
        assert_eq!(def.actions[0].headers["Authorization"], "Bearer s3cret");
    }
    let db = app.stop().await;

    // A key that opens nothing: every value is named by table and row, the exit code is 1.
    let (ok, out) = rotate(&db, stranger, &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("cannot re-encrypt installations ws1"), "{out}");
    assert!(out.contains("cannot re-encrypt flows "), "{out}");
    assert!(out.contains(&new_id), "names the missing key: {out}");
    assert!(!out.contains("s3cret"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_earlier_keys_re_encrypts_in_the_background_while_serving() {
    let (old, new) = ([4u8; 32], [5u8; 32]);
    let app = TestApp::builder(&universal_webhook::DEFINITION, Backend::Postgres)
        .env("TOKEN_ENCRYPTION_KEY", b64(old))
        .start()
        .await;
    for ws in ["ws1", "ws2"] {
        app.install_settled(ws).await;
        let (s, _) = app
            .ui(ws, Method::POST, "/ui/custom-webhooks/rotate", None)
            .await;
        assert_eq!(s, 200);
    }
    let fake = app.fake.clone();
    let db = app.stop().await;
    let old_id = key_id(&old);
    assert!(
        stored_values(&db)
            .await
            .iter()
            .all(|v| v.starts_with(&format!("v2.{old_id}.")))
    );

    // The rolled pods: the new key first, the old one still there. No command is run.
    let app = TestApp::builder(&universal_webhook::DEFINITION, Backend::Postgres)
        .database(db)
        .fake(fake)
        .no_migrate()
        .env("TOKEN_ENCRYPTION_KEY", b64(new))
        .env("TOKEN_ENCRYPTION_PREVIOUS_KEYS", b64(old))
        .start()
        .await;
    let new_id = key_id(&new);
    let mut moved = false;
    for _ in 0..100 {
        // It serves meanwhile, on either key.
        let (s, b) = app
            .ui("ws1", Method::GET, "/ui/custom-webhooks", None)
            .await;
        assert_eq!(s, 200, "{b}");
        let pool = addon_core::db::Db::connect(&app.db.url, 1).await.unwrap();
        let left: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM installations WHERE auth_token_enc NOT LIKE $1",
        )
        .bind(format!("v2.{new_id}.%"))
        .fetch_one(pool.pool())
        .await
        .unwrap();
        pool.close().await;
        if left == 0 {
            moved = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(moved, "the installation tokens moved to the new key");
    let fake = app.fake.clone();
    let db = app.stop().await;
    let after = stored_values(&db).await;
    assert_eq!(after.len(), 6, "{after:?}");
    assert!(
        after
            .iter()
            .all(|v| v.starts_with(&format!("v2.{new_id}."))),
        "{after:?}"
    );

    // The old key can go: the new one alone opens everything.
    let app = TestApp::builder(&universal_webhook::DEFINITION, Backend::Postgres)
        .database(db)
        .fake(fake)
        .no_migrate()
        .env("TOKEN_ENCRYPTION_KEY", b64(new))
        .start()
        .await;
    for ws in ["ws1", "ws2"] {
        let i = addon_core::store::installations::get(&app.state.db, ws)
            .await
            .unwrap()
            .unwrap();
        assert!(app.state.target(&i).is_ok(), "{ws}: the token opens");
    }
    app.stop().await;
}
