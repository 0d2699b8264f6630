//! The settings page in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`) driven over WebDriver against the running service. The page loads with a
//! valid user token and shows the installation, the bootstrap and the settings; without a
//! token it is refused; a saved setting is still there after a reload.
//!
//! Skips with a message when chromium or chromedriver is absent (`./scripts/test.sh` installs
//! them).
#![cfg(test)]

use addon_core::auth::TokenKind;
use addon_testkit::browser::{Driver, axe, axe_source, shot, text_when};
use addon_testkit::{Backend, TestApp};
use fantoccini::Locator;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_settings_page_loads_refuses_and_saves_in_chromium() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = TestApp::start(&reference::DEFINITION, Backend::Postgres).await;
    app.fake
        .respond(|_| addon_testkit::FakeResponse::json(200, json!([])));
    app.install_settled("ws-page").await;
    let c = &driver.client;
    let token = app.token(TokenKind::User, "ws-page");
    let page = app.url(&format!("/settings?auth_token={token}"));

    // Without a token: a plain message, and nothing of any workspace on the page (the page is
    // a static shell; its data needs the token).
    c.goto(&app.url("/settings")).await.unwrap();
    let refused = text_when(c, "[role=alert]", |t| !t.is_empty()).await;
    assert!(
        refused.contains("open the add-on from Clockify"),
        "{refused}"
    );
    assert!(!c.source().await.unwrap().contains("ws-page"));
    let status = app
        .http
        .get(app.url("/settings/state"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);
    let forged = format!("{token}x");
    c.goto(&app.url(&format!("/settings?auth_token={forged}")))
        .await
        .unwrap();
    let refused = text_when(c, "[role=alert]", |t| !t.is_empty()).await;
    assert!(
        refused.contains("Clockify did not accept this session"),
        "{refused}"
    );
    assert!(!c.source().await.unwrap().contains("ws-page"));

    // With a valid token: installation, bootstrap progress and settings.
    c.goto(&page).await.unwrap();
    let workspace = text_when(c, "dd[data-field=workspace]", |t| !t.is_empty()).await;
    assert_eq!(workspace, "ws-page");
    assert_eq!(
        text_when(c, "dd[data-field=status]", |t| !t.is_empty()).await,
        "ACTIVE"
    );
    let bs = text_when(c, "#bs-state", |t| t != "—").await;
    assert_eq!(bs, "COMPLETE");
    let days = c
        .find(Locator::Css("#set-bootstrap_time_entry_days"))
        .await
        .unwrap();
    assert_eq!(days.prop("value").await.unwrap().as_deref(), Some("0"));

    // Save a setting; a reload shows it, and so does the store.
    days.clear().await.unwrap();
    days.send_keys("21").await.unwrap();
    c.find(Locator::Css("#save"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    text_when(c, "#status", |t| t == "Saved.").await;
    c.goto(&page).await.unwrap();
    text_when(c, "dd[data-field=workspace]", |t| t == "ws-page").await;
    let days = c
        .find(Locator::Css("#set-bootstrap_time_entry_days"))
        .await
        .unwrap();
    assert_eq!(days.prop("value").await.unwrap().as_deref(), Some("21"));
    let stored = addon_core::store::installations::get(&app.state.db, "ws-page")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.number("bootstrap_time_entry_days", 0, 0, 365), 21);

    // An invalid value is refused with the reason shown, and the stored value stays.
    let days = c
        .find(Locator::Css("#set-bootstrap_time_entry_days"))
        .await
        .unwrap();
    days.clear().await.unwrap();
    days.send_keys("4000").await.unwrap();
    c.find(Locator::Css("#save"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let err = text_when(c, "#status", |t| t.contains("bootstrap_time_entry_days")).await;
    assert!(err.contains("0 to 365"), "{err}");
    let stored = addon_core::store::installations::get(&app.state.db, "ws-page")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.number("bootstrap_time_entry_days", 0, 0, 365), 21);

    // Accessible in both themes, and shown in Clockify's dark theme when the user has it.
    let mut violations = Vec::new();
    if let Some(src) = axe_source() {
        violations.extend(axe(c, &src).await);
    }
    shot(c, "settings").await;
    let mut claims = app
        .signer
        .claims(TokenKind::User, "ws-page", &app.fake.api_url());
    claims.theme = Some("DARK".into());
    let dark = app.signer.sign_claims(&claims).unwrap();
    c.goto(&app.url(&format!("/settings?auth_token={dark}")))
        .await
        .unwrap();
    text_when(c, "dd[data-field=workspace]", |t| t == "ws-page").await;
    let theme = c
        .execute("return document.documentElement.dataset.theme", vec![])
        .await
        .unwrap();
    assert_eq!(theme, "dark");
    if let Some(src) = axe_source() {
        violations.extend(axe(c, &src).await);
    }
    shot(c, "settings-dark").await;
    assert!(violations.is_empty(), "axe-core: {violations:#?}");

    driver.stop().await;
    app.stop().await;
}
