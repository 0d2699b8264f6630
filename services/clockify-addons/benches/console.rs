//! The console's load time and size, in headless Chromium against a running add-on.
//!
//!     cargo bench -p clockify-addons --bench console
//!
//! Starts API Studio on SQLite (the `dev` default) with one installed workspace and its data,
//! then loads `/ui?auth_token=...` CONSOLE_LOADS times (default 30): the first load with an
//! empty cache, the others as a returning user would (assets cached for 5 minutes). Prints, per
//! load, the time from navigation start until the dashboard shows its numbers (the console's
//! `console-ready` performance mark: script run, session read, `ui/dashboard` answered and
//! rendered), and until the API explorer's 170 operations are listed after its tab is opened.
//! Then the size of what is shipped: script, style and explorer catalogue, raw and gzipped.
//!
//! Needs chromium and chromedriver (`./scripts/test.sh` installs them).

use std::io::Write as _;
use std::time::Duration;

use addon_core::auth::TokenKind;
use addon_testkit::browser::Driver;
use addon_testkit::{Backend, FakeResponse, TestApp};
use fantoccini::{Client, Locator};
use serde_json::json;

async fn mark(c: &Client, name: &str) -> f64 {
    for _ in 0..200 {
        let v = c
            .execute(
                &format!(
                    "const m = performance.getEntriesByName('{name}'); return m.length ? m[0].startTime : null"
                ),
                vec![],
            )
            .await
            .expect("the page answers");
        if let Some(ms) = v.as_f64() {
            return ms;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the page never set the {name} mark");
}

fn gzipped(bytes: &[u8]) -> usize {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).expect("gzip");
    gz.finish().expect("gzip").len()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let loads: usize = std::env::var("CONSOLE_LOADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
        .max(2);
    let app = TestApp::start(&api_studio::DEFINITION, Backend::Sqlite).await;
    app.fake
        .respond(|_| FakeResponse::json(200, json!([{"id": "t1", "name": "Billable"}])));
    app.install_settled("ws1").await;
    let token = app.token(TokenKind::User, "ws1");
    let url = app.url(&format!("/ui?auth_token={token}"));
    let c = &driver.client;

    let mut ready = Vec::new();
    let mut explorer = Vec::new();
    for i in 0..loads {
        c.goto(&url).await.expect("navigate");
        ready.push(mark(c, "console-ready").await);
        if i < 10 {
            c.find(Locator::Css("#tab-explorer"))
                .await
                .expect("the explorer tab")
                .click()
                .await
                .expect("click");
            let opened = c
                .execute("return performance.now()", vec![])
                .await
                .expect("now")
                .as_f64()
                .unwrap_or(0.0);
            explorer.push(mark(c, "explorer-ready").await - opened);
        }
    }
    let cold = ready[0];
    let mut warm = ready[1..].to_vec();
    warm.sort_by(f64::total_cmp);
    explorer.sort_by(f64::total_cmp);
    println!("console on API Studio (SQLite), headless Chromium, {loads} loads");
    println!("  dashboard shown, first load (empty cache): {cold:.0} ms");
    println!(
        "  dashboard shown, later loads: p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms",
        percentile(&warm, 0.5),
        percentile(&warm, 0.95),
        warm[warm.len() - 1]
    );
    println!(
        "  API explorer listed after its tab opens ({} loads): p50 {:.0} ms, max {:.0} ms",
        explorer.len(),
        percentile(&explorer, 0.5),
        explorer[explorer.len() - 1]
    );
    let http = reqwest::Client::new();
    println!("  shipped (raw / gzip):");
    for (what, path, auth) in [
        ("page", "/ui", false),
        ("script", "/static/app.js", false),
        ("style", "/static/app.css", false),
        ("explorer catalogue", "/ui/explorer/operations", true),
        ("flow builder's event fields", "/ui/flows/events", true),
    ] {
        let mut rb = http.get(app.url(path));
        if auth {
            rb = rb.bearer_auth(&token);
        }
        let body = rb.send().await.expect("get").bytes().await.expect("body");
        println!(
            "    {what:<28} {:>8.1} KiB / {:>6.1} KiB",
            body.len() as f64 / 1024.0,
            gzipped(&body) as f64 / 1024.0
        );
    }
    driver.stop().await;
    app.stop().await;
}
