//! Headless Chromium (Debian's `chromium` and `chromium-driver`) driven over WebDriver, for
//! the page tests. [`Driver::start`] returns `None` with a message when either is absent
//! (`./scripts/test.sh` installs them).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

fn find(binary: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(binary))
            .find(|p| p.is_file())
    })
}

pub struct Driver {
    child: Child,
    _profile: tempfile::TempDir,
    pub client: Client,
}

impl Driver {
    pub async fn start() -> Option<Self> {
        let (Some(chromium), Some(chromedriver)) = (find("chromium"), find("chromedriver")) else {
            eprintln!(
                "skipped: chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"
            );
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port for chromedriver")
            .port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().expect("a profile directory");
        let caps = json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--window-size=1280,900", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--disable-extensions",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        });
        let caps = caps.as_object().cloned().unwrap_or_default();
        let url = format!("http://127.0.0.1:{port}");
        let mut last = None;
        for _ in 0..100 {
            match ClientBuilder::native()
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    return Some(Self {
                        child,
                        _profile: profile,
                        client,
                    });
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("cannot start a Chromium session: {last:?}");
    }

    pub async fn stop(mut self) {
        let _ = self.client.close().await;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text of an element once the page's script has filled it; the failure says what the
/// element (or, without it, the page) showed instead.
pub async fn text_when(c: &Client, css: &str, pred: impl Fn(&str) -> bool) -> String {
    let mut last = None;
    for _ in 0..100 {
        if let Ok(el) = c.find(Locator::Css(css)).await
            && let Ok(t) = el.text().await
        {
            if pred(&t) {
                return t;
            }
            last = Some(t);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let page = match c.find(Locator::Css("body")).await {
        Ok(body) => body.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    panic!("{css} never showed the expected text; it showed {last:?}; the page: {page}");
}

/// axe-core's script (from the console's packages, installed by scripts/ui.sh); `None` with a
/// message when it is not installed.
pub fn axe_source() -> Option<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../addon-core/ui/app/node_modules/axe-core/axe.min.js");
    let src = std::fs::read_to_string(&path).ok();
    if src.is_none() {
        eprintln!(
            "axe-core is not installed ({}): run ./scripts/ui.sh; the accessibility checks are skipped",
            path.display()
        );
    }
    src
}

/// axe-core's serious and critical WCAG 2.1 A/AA violations on the page as it is now.
pub async fn axe(c: &Client, axe_src: &str) -> Vec<Value> {
    c.execute(axe_src, vec![])
        .await
        .expect("axe-core loads in the page");
    let out = c
        .execute_async(
            r#"const done = arguments[arguments.length - 1];
            axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})
              .then(r => done({passes: r.passes.length, violations: r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
                .map(v => ({id: v.id, impact: v.impact, help: v.help, targets: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))}))
              .catch(e => done({passes: 0, violations: [{id: 'axe-error', help: String(e)}]}));"#,
            vec![],
        )
        .await
        .expect("axe-core runs");
    assert!(
        out["passes"].as_u64().unwrap_or(0) > 5,
        "axe-core checked next to nothing: {out}"
    );
    out["violations"].as_array().cloned().unwrap_or_default()
}

/// With `UI_SCREENSHOTS=<dir>`, a screenshot of the page as it is now, as `<dir>/<name>.png`
/// (`./scripts/screenshots.sh` writes docs/ui/).
pub async fn shot(c: &Client, name: &str) {
    if let Some(dir) = std::env::var_os("UI_SCREENSHOTS") {
        let png = c.screenshot().await.expect("a screenshot");
        std::fs::create_dir_all(&dir).expect("the screenshot directory");
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png)
            .expect("the screenshot written");
    }
}
