//! Lifecycle hooks on PostgreSQL and SQLite.
#![cfg(test)]

use addon_core::auth::TokenKind;
use addon_core::store::installations;
use addon_testkit::{Backend, TestApp, backend_tests};
use reqwest::Method;
use serde_json::json;
use sqlx::Row;

async fn start(backend: Backend) -> TestApp {
    TestApp::start(&api_studio::DEFINITION, backend).await
}

async fn install_stores_encrypted_token_and_webhook_hashes(backend: Backend) {
    let app = start(backend).await;
    let install_token = app.token(TokenKind::Installation, "ws1");
    let webhook_token = app.token(TokenKind::Webhook, "ws1");
    let (status, body) = app
        .lifecycle(
            "installed",
            "ws1",
            json!({
                "addonId": "a1", "authToken": install_token, "workspaceId": "ws1", "asUser": "u1",
                "apiUrl": app.fake.api_url(), "addonUserId": "au1",
                "webhooks": [{"path": "https://addon.test.example/webhooks/clockify", "webhookType": "ADDON", "authToken": webhook_token}]
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "installed");

    let row =
        sqlx::query("SELECT auth_token_enc, status FROM installations WHERE workspace_id = 'ws1'")
            .fetch_one(app.state.db.pool())
            .await
            .unwrap();
    let enc: String = row.get("auth_token_enc");
    assert!(!enc.contains(&install_token), "token stored in clear");
    assert!(enc.starts_with("v2."), "stored as ciphertext: {enc}");
    let status: String = row.get("status");
    assert_eq!(status, "ACTIVE");
    let i = installations::get(&app.state.db, "ws1")
        .await
        .unwrap()
        .unwrap();
    let target = app.state.target(&i).unwrap();
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(&target.token),
        install_token
    );

    let hashes: Vec<String> =
        sqlx::query("SELECT token_hash FROM installation_webhooks WHERE workspace_id = 'ws1'")
            .fetch_all(app.state.db.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
    assert_eq!(hashes.len(), 1);
    assert_eq!(
        hashes[0],
        addon_core::routes::lifecycle::sha256_hex(&webhook_token),
        "only the hash is kept"
    );
    app.stop().await;
}

async fn install_with_add_on_token_field_is_refused_clearly(backend: Backend) {
    // The old service read `addonToken`; Clockify sends `authToken`.
    let app = start(backend).await;
    let (status, body) = app
        .lifecycle(
            "installed",
            "ws1",
            json!({"addonId": "a1", "addonToken": app.token(TokenKind::Installation, "ws1"), "workspaceId": "ws1", "apiUrl": app.fake.api_url()}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("authToken"),
        "{body}"
    );
    assert!(
        installations::get(&app.state.db, "ws1")
            .await
            .unwrap()
            .is_none()
    );
    app.stop().await;
}

async fn install_refuses_disallowed_api_url_and_foreign_tokens(backend: Backend) {
    let app = start(backend).await;
    let (status, body) = app
        .lifecycle(
            "installed",
            "ws1",
            json!({
                "addonId": "a1", "authToken": app.token(TokenKind::Installation, "other-ws"), "workspaceId": "ws1",
                "apiUrl": "https://169.254.169.254/latest",
                "webhooks": [{"path": "/x", "authToken": "not-a-token"}]
            }),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let details = body["error"]["details"].to_string();
    assert!(details.contains("apiUrl"), "{details}");
    assert!(
        details.contains("authToken: issued for another workspace"),
        "{details}"
    );
    assert!(details.contains("webhooks[0].authToken"), "{details}");
    assert!(
        installations::get(&app.state.db, "ws1")
            .await
            .unwrap()
            .is_none(),
        "nothing half-written"
    );
    app.stop().await;
}

async fn lifecycle_token_must_match_body_workspace_and_either_header_works(backend: Backend) {
    let app = start(backend).await;
    app.install("ws1").await;
    // Token for ws2, body for ws1.
    let resp = app
        .http
        .post(app.url("/lifecycle/status-changed"))
        .header(
            "X-Addon-Lifecycle-Token",
            app.token(TokenKind::Lifecycle, "ws2"),
        )
        .json(&json!({"addonId": "a1", "workspaceId": "ws1", "status": "INACTIVE"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // Clockify-Signature works as the lifecycle header too.
    let resp = app
        .http
        .post(app.url("/lifecycle/status-changed"))
        .header("Clockify-Signature", app.token(TokenKind::Lifecycle, "ws1"))
        .json(&json!({"addonId": "a1", "workspaceId": "ws1", "status": "INACTIVE"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // No header at all.
    let resp = app
        .http
        .post(app.url("/lifecycle/deleted"))
        .json(&json!({"workspaceId": "ws1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    app.stop().await;
}

async fn status_changes(backend: Backend) {
    let app = start(backend).await;
    app.install("ws1").await;
    let (s, _) = app
        .lifecycle(
            "status-changed",
            "ws1",
            json!({"addonId": "a1", "workspaceId": "ws1", "status": "INACTIVE"}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        installations::get(&app.state.db, "ws1")
            .await
            .unwrap()
            .unwrap()
            .status,
        installations::InstallStatus::Inactive
    );
    let (s, b) = app
        .lifecycle(
            "status-changed",
            "ws1",
            json!({"addonId": "a1", "workspaceId": "ws1", "status": "PAUSED"}),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ACTIVE or INACTIVE")
    );
    let (s, _) = app
        .lifecycle(
            "status-changed",
            "ws9",
            json!({"addonId": "a1", "workspaceId": "ws9", "status": "ACTIVE"}),
        )
        .await;
    assert_eq!(s, 404);
    app.stop().await;
}

async fn settings_are_a_list_of_id_name_value(backend: Backend) {
    let app = start(backend).await;
    app.install("ws1").await;
    let sample = addon_testkit::shared("lifecycle-samples/SETTINGS_UPDATED.json").map(|p| {
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(p).unwrap()).unwrap()
    });
    let mut body = sample.unwrap_or_else(|| {
        json!({"workspaceId": "x", "addonId": "a", "settings": [{"id": "bootstrap_on_install", "name": "n", "value": true}]})
    });
    body["workspaceId"] = json!("ws1");
    let (s, b) = app.lifecycle("settings-updated", "ws1", body.clone()).await;
    assert_eq!(s, 200, "{b}");
    let i = installations::get(&app.state.db, "ws1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(i.settings, body["settings"].as_array().unwrap().clone());
    assert!(i.flag("bootstrap_on_install", false));

    // A map (what the old service assumed) is refused with a message that says what Clockify sends.
    let (s, b) = app
        .lifecycle(
            "settings-updated",
            "ws1",
            json!({"workspaceId": "ws1", "settings": {"bootstrap_on_install": true}}),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("list"),
        "{b}"
    );
    // Entries without id or value.
    let (s, b) = app
        .lifecycle(
            "settings-updated",
            "ws1",
            json!({"workspaceId": "ws1", "settings": [{"name": "x"}]}),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    // Nothing accepted before was lost.
    assert_eq!(
        installations::get(&app.state.db, "ws1")
            .await
            .unwrap()
            .unwrap()
            .settings,
        i.settings
    );
    app.stop().await;
}

async fn deleted_forgets_every_token(backend: Backend) {
    let app = start(backend).await;
    let webhook_token = app.install("ws1").await;
    let (s, _) = app
        .lifecycle(
            "deleted",
            "ws1",
            json!({"addonId": "a1", "workspaceId": "ws1", "asUser": "u1"}),
        )
        .await;
    assert_eq!(s, 200);
    let i = installations::get(&app.state.db, "ws1")
        .await
        .unwrap()
        .unwrap();
    assert!(i.auth_token_enc.is_none());
    assert_eq!(i.status, installations::InstallStatus::Deleted);
    let n: i64 = sqlx::query("SELECT COUNT(*) FROM installation_webhooks")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    // The webhook token no longer works, nor does the UI.
    let (s, b) = app
        .webhook(
            &webhook_token,
            "NEW_TAG",
            &json!({"id": "t1", "workspaceId": "ws1"}),
        )
        .await;
    assert_eq!(s, 401, "{b}");
    let (s, _) = app.ui("ws1", Method::GET, "/ui/dashboard", None).await;
    assert_eq!(s, 403);
    app.stop().await;
}

async fn reinstall_keeps_settings_and_respects_bootstrap_off(backend: Backend) {
    let app = start(backend).await;
    app.install("ws1").await;
    let (s, _) = app
        .lifecycle(
            "settings-updated",
            "ws1",
            json!({"workspaceId": "ws1", "settings": [{"id": "bootstrap_on_install", "name": "Fetch", "value": false}]}),
        )
        .await;
    assert_eq!(s, 200);
    sqlx::query("DELETE FROM bootstrap_runs")
        .execute(app.state.db.pool())
        .await
        .unwrap();
    app.lifecycle("deleted", "ws1", json!({"workspaceId": "ws1"}))
        .await;
    app.install("ws1").await;
    let run = addon_core::store::bootstrap::get(&app.state.db, "ws1")
        .await
        .unwrap();
    assert!(
        run.is_none(),
        "bootstrap ran although the setting is off: {run:?}"
    );
    app.stop().await;
}

backend_tests!(
    install_stores_encrypted_token_and_webhook_hashes,
    install_with_add_on_token_field_is_refused_clearly,
    install_refuses_disallowed_api_url_and_foreign_tokens,
    lifecycle_token_must_match_body_workspace_and_either_header_works,
    status_changes,
    settings_are_a_list_of_id_name_value,
    deleted_forgets_every_token,
    reinstall_keeps_settings_and_respects_bootstrap_off,
);
