//! Bootstrap: paginated walk into the entity cache, page cap, error states, and never stuck
//! IN_PROGRESS across restarts.
#![cfg(test)]

use std::time::Duration;

use addon_testkit::{Backend, FakeResponse, Recorded, TestApp, TestDb, backend_tests};
use reqwest::Method;
use serde_json::{Value, json};

/// 120 projects, 3 clients, no tags, one of everything else.
fn workspace_data(r: &Recorded) -> FakeResponse {
    let page: usize = r
        .query
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1);
    let size: usize = r
        .query
        .get("page-size")
        .and_then(|p| p.parse().ok())
        .unwrap_or(50);
    let total = if r.path.ends_with("/projects") {
        120
    } else if r.path.ends_with("/clients") {
        3
    } else if r.path.ends_with("/tags") {
        0
    } else {
        1
    };
    let start = (page - 1) * size;
    let items: Vec<Value> = (start..total.min(start + size))
        .map(|i| json!({"id": format!("e{i}"), "n": i}))
        .collect();
    FakeResponse::json(200, Value::Array(items))
}

fn pages_of(app: &TestApp, suffix: &str) -> Vec<String> {
    app.fake
        .requests()
        .iter()
        .filter(|r| r.path.ends_with(suffix))
        .map(|r| r.query.get("page").cloned().unwrap_or_default())
        .collect()
}

async fn walks_pages_into_the_entity_cache(backend: Backend) {
    let app = TestApp::start(&api_studio::DEFINITION, backend).await;
    app.fake.respond(workspace_data);
    app.install("ws1").await;
    let run = app.bootstrap_finished("ws1").await;
    assert_eq!(run.state, "COMPLETE", "{run:?}");
    assert_eq!(pages_of(&app, "/projects"), vec!["1", "2", "3"]);
    assert!(
        app.fake
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/projects"))
            .all(|r| r.query["page-size"] == "50")
    );
    let (_, dash) = app.ui("ws1", Method::GET, "/ui/dashboard", None).await;
    assert_eq!(dash["entities"]["projects"], 120);
    assert_eq!(dash["entities"]["clients"], 3);
    assert!(dash["entities"].get("tags").is_none());
    assert_eq!(dash["bootstrap"]["state"], "COMPLETE");
    assert_eq!(run.pages_fetched as usize, app.fake.requests().len());
    let (_, page) = app
        .ui(
            "ws1",
            Method::GET,
            "/ui/entities?type=projects&limit=200",
            None,
        )
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 120);
    // Every request is a GET inside the workspace.
    assert!(
        app.fake
            .requests()
            .iter()
            .all(|r| r.method == Method::GET && r.workspace() == Some("ws1"))
    );
    app.stop().await;
}

async fn page_cap_is_respected(backend: Backend) {
    let app = TestApp::builder(&api_studio::DEFINITION, backend)
        .env("BOOTSTRAP_MAX_PAGES", "2")
        .start()
        .await;
    // Endless full pages.
    app.fake.respond(|r| {
        let size: usize = r.query.get("page-size").and_then(|p| p.parse().ok()).unwrap_or(50);
        FakeResponse::json(200, Value::Array((0..size).map(|i| json!({"id": format!("{}-{i}", r.query.get("page").cloned().unwrap_or_default())})).collect()))
    });
    app.install("ws1").await;
    let run = app.bootstrap_finished("ws1").await;
    assert_eq!(run.state, "COMPLETE");
    assert_eq!(pages_of(&app, "/users"), vec!["1", "2"]);
    app.stop().await;
}

async fn errors_are_kept_and_set_the_state(backend: Backend) {
    let app = TestApp::start(&api_studio::DEFINITION, backend).await;
    app.fake.respond(|r| {
        if r.path.ends_with("/users") {
            FakeResponse::json(403, json!({"message": "no"}))
        } else {
            workspace_data(r)
        }
    });
    app.install("ws1").await;
    let run = app.bootstrap_finished("ws1").await;
    assert_eq!(run.state, "COMPLETE_WITH_ERRORS");
    assert_eq!(run.errors.len(), 1);
    assert!(
        run.errors[0].contains("listUsers") && run.errors[0].contains("403"),
        "{:?}",
        run.errors
    );

    app.fake
        .respond(|_| FakeResponse::json(401, json!({"message": "bad token"})));
    let (s, b) = app.ui("ws1", Method::POST, "/ui/bootstrap", None).await;
    assert_eq!(s, 202, "{b}");
    let run = app
        .eventually(Duration::from_secs(20), || async {
            let run = addon_core::store::bootstrap::get(&app.state.db, "ws1")
                .await
                .ok()
                .flatten()?;
            (run.state == "FAILED").then_some(run)
        })
        .await
        .expect("the on-demand run fails");
    assert!(!run.errors.is_empty() && run.errors.len() <= 10);
    app.stop().await;
}

async fn a_run_left_in_progress_by_a_dead_process_is_resumed(backend: Backend) {
    let app = TestApp::start(&api_studio::DEFINITION, backend).await;
    app.fake.respond(workspace_data);
    app.install("ws1").await;
    app.bootstrap_finished("ws1").await;
    // A process died mid-run: IN_PROGRESS with a heartbeat two minutes old.
    let old = addon_core::time::now_millis() - 120_000;
    sqlx::query("UPDATE bootstrap_runs SET state = 'IN_PROGRESS', owner = 'dead-pod', heartbeat_at = $1, attempts = 1 WHERE workspace_id = 'ws1'")
        .bind(old)
        .execute(app.state.db.pool())
        .await
        .unwrap();
    let fake = app.fake.clone();
    let db = app.stop().await;
    let app = TestApp::builder(&api_studio::DEFINITION, backend)
        .database(db)
        .fake(fake)
        .no_migrate()
        .start()
        .await;
    app.fake.respond(workspace_data);
    let run = app.bootstrap_finished("ws1").await;
    assert_eq!(run.state, "COMPLETE");
    assert_eq!(run.attempts, 2);
    app.stop().await;
}

async fn shutdown_mid_run_hands_the_run_back(backend: Backend) {
    let app = TestApp::start(&api_studio::DEFINITION, backend).await;
    app.fake
        .respond(|r| workspace_data(r).delayed(Duration::from_millis(400)));
    app.install("ws1").await;
    app.fake.wait_for(1, Duration::from_secs(5)).await;
    let fake = app.fake.clone();
    let db: TestDb = app.stop().await;
    let pool = addon_core::db::Db::connect(&db.url, 1).await.unwrap();
    let run = addon_core::store::bootstrap::get(&pool, "ws1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        run.state, "PENDING",
        "a graceful stop never leaves IN_PROGRESS behind"
    );
    pool.close().await;
    let app = TestApp::builder(&api_studio::DEFINITION, backend)
        .database(db)
        .fake(fake)
        .no_migrate()
        .start()
        .await;
    app.fake.respond(workspace_data);
    assert_eq!(app.bootstrap_finished("ws1").await.state, "COMPLETE");
    app.stop().await;
}

backend_tests!(
    walks_pages_into_the_entity_cache,
    page_cap_is_respected,
    errors_are_kept_and_set_the_state,
    a_run_left_in_progress_by_a_dead_process_is_resumed,
    shutdown_mid_run_hands_the_run_back,
);
