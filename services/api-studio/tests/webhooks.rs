//! `POST /webhooks/clockify` on PostgreSQL and SQLite.
#![cfg(test)]

use addon_core::auth::TokenKind;
use addon_testkit::{Backend, TestApp, backend_tests, shared};
use serde_json::{Value, json};
use sqlx::Row;

async fn start(backend: Backend) -> TestApp {
    TestApp::start(&api_studio::DEFINITION, backend).await
}

async fn log_count(app: &TestApp) -> i64 {
    sqlx::query("SELECT COUNT(*) FROM webhook_log")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .get(0)
}

async fn every_clockify_sample_is_accepted(backend: Backend) {
    let Some(dir) = shared("webhook-samples") else {
        return;
    };
    let app = start(backend).await;
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 49);
    for path in &files {
        let event = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let raw = std::fs::read(path).unwrap();
        let body: Value = serde_json::from_slice(&raw).unwrap();
        // Sign for the sample's own workspace (the token must match it), or any when it has none.
        let ws = body
            .get("workspaceId")
            .and_then(Value::as_str)
            .unwrap_or("sample-ws")
            .to_owned();
        let token = app.install(&ws).await;
        let (status, resp) = app.webhook_raw(&token, &event, raw.clone()).await;
        assert_eq!(status, 200, "{event}: {resp}");
        assert_eq!(resp["status"], "accepted", "{event}: {resp}");
        let id = resp["id"].as_str().unwrap();
        let (s, detail) = app
            .ui(
                &ws,
                reqwest::Method::GET,
                &format!("/ui/webhooks/{id}"),
                None,
            )
            .await;
        assert_eq!(s, 200);
        assert_eq!(detail["webhook"]["eventType"], event.as_str());
        assert_eq!(
            detail["webhook"]["body"], body,
            "{event} stored as received"
        );
    }
    assert_eq!(log_count(&app).await, 49);
    app.stop().await;
}

async fn deduplicated_by_delivery_never_by_entity(backend: Backend) {
    let app = start(backend).await;
    let token = app.install("ws1").await;
    let created = json!({"id": "te1", "workspaceId": "ws1", "description": "a"});
    let updated = json!({"id": "te1", "workspaceId": "ws1", "description": "b"});
    let (s1, r1) = app.webhook(&token, "NEW_TIME_ENTRY", &created).await;
    let (s2, r2) = app.webhook(&token, "NEW_TIME_ENTRY", &created).await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(r1["status"], "accepted");
    assert_eq!(r2["status"], "duplicate", "a Clockify retry is recognised");
    assert_eq!(r1["id"], r2["id"]);
    // Same entity, later event: a new delivery.
    let (_, r3) = app.webhook(&token, "TIME_ENTRY_UPDATED", &updated).await;
    assert_eq!(r3["status"], "accepted");
    // Same entity, same event type, new content: a new delivery too.
    let (_, r4) = app.webhook(&token, "NEW_TIME_ENTRY", &updated).await;
    assert_eq!(r4["status"], "accepted");
    assert_eq!(log_count(&app).await, 3);
    app.stop().await;
}

async fn refuses_bad_deliveries_without_storing(backend: Backend) {
    let app = start(backend).await;
    let token = app.install("ws1").await;
    let body = json!({"id": "t1", "workspaceId": "ws1"});
    // Body for another workspace than the token.
    let (s, _) = app
        .webhook(
            &token,
            "NEW_TAG",
            &json!({"id": "t1", "workspaceId": "ws2"}),
        )
        .await;
    assert_eq!(s, 401);
    // Correctly signed but never registered at install.
    let forged = app.signer.sign_claims(&{
        let mut c = app.signer.claims(TokenKind::Webhook, "ws1", "x");
        c.user = Some("someone-else".into());
        c
    });
    let (s, b) = app.webhook(&forged.unwrap(), "NEW_TAG", &body).await;
    assert_eq!(s, 401, "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not issued to this installation"),
        "{b}"
    );
    // No event type header.
    let resp = app
        .http
        .post(app.url("/webhooks/clockify"))
        .header("Clockify-Signature", &token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // Not JSON, and JSON that is not an object.
    let (s, b) = app
        .webhook_raw(&token, "NEW_TAG", b"{not json".to_vec())
        .await;
    assert_eq!(s, 400, "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid JSON")
    );
    let (s, _) = app.webhook_raw(&token, "NEW_TAG", b"[1,2]".to_vec()).await;
    assert_eq!(s, 400);
    // Empty signature.
    let (s, _) = app.webhook("", "NEW_TAG", &body).await;
    assert_eq!(s, 401);
    assert_eq!(log_count(&app).await, 0);
    app.stop().await;
}

async fn five_megabyte_limit_on_webhooks(backend: Backend) {
    let app = start(backend).await;
    let token = app.install("ws1").await;
    let filler = "x".repeat(4 * 1024 * 1024 + 900 * 1024);
    let (s, b) = app
        .webhook(
            &token,
            "NEW_TAG",
            &json!({"id": "big", "workspaceId": "ws1", "note": filler}),
        )
        .await;
    assert_eq!(s, 200, "4.9 MB is accepted: {b}");
    let filler = "x".repeat(5 * 1024 * 1024 + 10);
    let (s, b) = app
        .webhook(
            &token,
            "NEW_TAG",
            &json!({"id": "bigger", "workspaceId": "ws1", "note": filler}),
        )
        .await;
    assert_eq!(s, 413, "{b}");
    assert_eq!(b["error"]["code"], "payload_too_large");
    assert_eq!(log_count(&app).await, 1);
    app.stop().await;
}

async fn concurrent_deliveries_are_group_committed_with_exact_outcomes(backend: Backend) {
    // 260 requests at once: above the default limit of 256 in flight, which sheds the rest with
    // 503 `overloaded` whenever all of them overlap (a slow CI moment did). This test is about
    // exact outcomes under concurrency, so the limit is raised above it.
    let app = TestApp::builder(&api_studio::DEFINITION, backend)
        .env("HTTP_MAX_CONCURRENT_REQUESTS", "1024")
        .start()
        .await;
    let token = app.install_settled("ws1").await;
    let forged = {
        let mut c = app.signer.claims(TokenKind::Webhook, "ws1", "x");
        c.user = Some("not-registered".into());
        app.signer.sign_claims(&c).unwrap()
    };
    // 120 distinct deliveries, each sent twice at once (a Clockify retry racing its original),
    // plus 20 with a token the installation never registered.
    let mut tasks = Vec::new();
    for i in 0..260 {
        let (tok, body) = if i < 240 {
            (
                token.clone(),
                json!({"id": format!("e{}", i % 120), "workspaceId": "ws1", "n": i % 120}),
            )
        } else {
            (
                forged.clone(),
                json!({"id": format!("x{i}"), "workspaceId": "ws1"}),
            )
        };
        let http = app.http.clone();
        let url = app.url("/webhooks/clockify");
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .header("Clockify-Signature", tok)
                .header("Clockify-Webhook-Event-Type", "NEW_TAG")
                .json(&body)
                .send()
                .await
                .unwrap();
            (i, r.status().as_u16(), r.json::<Value>().await.unwrap())
        }));
    }
    let mut by_delivery: std::collections::HashMap<usize, Vec<Value>> =
        std::collections::HashMap::new();
    for t in tasks {
        let (i, status, body) = t.await.unwrap();
        if i >= 240 {
            assert_eq!(status, 401, "{body}");
            continue;
        }
        assert_eq!(status, 200, "{body}");
        by_delivery.entry(i % 120).or_default().push(body);
    }
    for (n, answers) in &by_delivery {
        let accepted = answers.iter().filter(|a| a["status"] == "accepted").count();
        assert_eq!(
            accepted, 1,
            "delivery {n} accepted exactly once: {answers:?}"
        );
        assert_eq!(
            answers[0]["id"], answers[1]["id"],
            "both answers name the stored delivery"
        );
    }
    assert_eq!(log_count(&app).await, 120);
    app.stop().await;
}

async fn a_batch_resolves_every_row(backend: Backend) {
    use addon_core::store::webhooks::{IncomingWebhook, IngestOutcome, ingest_many};
    let app = start(backend).await;
    let token = app.install_settled("ws1").await;
    let hash = addon_core::routes::lifecycle::sha256_hex(&token);
    let row = |id: &str, key: &str| IncomingWebhook {
        id: id.into(),
        workspace_id: "ws1".into(),
        event_type: "NEW_TAG".into(),
        delivery_key: key.into(),
        entity_id: Some("t".into()),
        body: "{}".into(),
        received_at: addon_core::time::now_millis(),
    };
    let batch = vec![
        (row("id-a", "k-a"), hash.clone()),
        (row("id-b", "k-b"), hash.clone()),
        (row("id-a2", "k-a"), hash.clone()), // the same delivery again, in the same statement
        (row("id-c", "k-c"), "0".repeat(64)), // a token never registered
        (row("id-d", "k-d"), hash.clone()),  // five rows: padded to eight with copies of this one
    ];
    let outcomes = ingest_many(&app.state.db, &batch).await.unwrap();
    assert_eq!(
        outcomes,
        vec![
            IngestOutcome::Accepted { pending: false },
            IngestOutcome::Accepted { pending: false },
            IngestOutcome::Duplicate { id: "id-a".into() },
            IngestOutcome::UnknownToken,
            IngestOutcome::Accepted { pending: false },
        ]
    );
    assert_eq!(log_count(&app).await, 3);
    app.stop().await;
}

backend_tests!(
    a_batch_resolves_every_row,
    concurrent_deliveries_are_group_committed_with_exact_outcomes,
    every_clockify_sample_is_accepted,
    deduplicated_by_delivery_never_by_entity,
    refuses_bad_deliveries_without_storing,
    five_megabyte_limit_on_webhooks,
);
