//! A fake Clockify API on a local port. It records every request (method, path, query,
//! headers, body, arrival time) and answers with a programmable responder, so tests assert what
//! the client actually sent.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub headers: HeaderMap,
    /// The body as JSON (`Null` when it is not JSON).
    pub body: Value,
    /// The body as sent (a multipart upload, say).
    pub raw: Bytes,
    pub at: Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The workspace in `/api/v1/workspaces/{id}/...`.
    pub fn workspace(&self) -> Option<&str> {
        let mut parts = self.path.split('/');
        parts.find(|p| *p == "workspaces")?;
        parts.next()
    }
}

#[derive(Debug, Clone)]
pub struct FakeResponse {
    pub status: u16,
    pub body: Value,
    pub headers: Vec<(String, String)>,
    pub delay: Duration,
    /// A body sent as it is (with its content type) instead of `body` as JSON.
    pub raw: Option<(String, String)>,
}

impl FakeResponse {
    pub fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            body,
            headers: Vec::new(),
            delay: Duration::ZERO,
            raw: None,
        }
    }

    /// A non-JSON answer (XML, say), sent as it is.
    pub fn text(status: u16, content_type: &str, body: impl Into<String>) -> Self {
        Self {
            raw: Some((content_type.to_owned(), body.into())),
            ..Self::json(status, Value::Null)
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn delayed(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

type Responder = Arc<dyn Fn(&Recorded) -> FakeResponse + Send + Sync>;

struct Shared {
    requests: Mutex<Vec<Recorded>>,
    responder: Mutex<Responder>,
}

#[derive(Clone)]
pub struct FakeClockify {
    shared: Arc<Shared>,
    pub port: u16,
}

impl std::fmt::Debug for FakeClockify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeClockify")
            .field("port", &self.port)
            .finish()
    }
}

impl FakeClockify {
    /// Starts on 127.0.0.1 with a responder that answers `200 {}`.
    pub async fn start() -> Self {
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            responder: Mutex::new(Arc::new(|_: &Recorded| {
                FakeResponse::json(200, serde_json::json!({}))
            })),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake Clockify");
        let port = listener.local_addr().expect("local addr").port();
        let app = Router::new().fallback(handle).with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { shared, port }
    }

    /// The `apiUrl` an installation uses to reach this fake.
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}/api", self.port)
    }

    /// The allowlist entry that lets the client call this fake.
    pub fn allow_entry(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn respond(&self, f: impl Fn(&Recorded) -> FakeResponse + Send + Sync + 'static) {
        *self.shared.responder.lock() = Arc::new(f);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().clone()
    }

    pub fn clear(&self) {
        self.shared.requests.lock().clear();
    }

    /// Waits until at least `n` requests arrived (or the timeout passes) and returns them.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        let deadline = Instant::now() + timeout;
        loop {
            let reqs = self.requests();
            if reqs.len() >= n || Instant::now() > deadline {
                return reqs;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let rec = Recorded {
        method,
        path: uri.path().to_owned(),
        query,
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        raw: body,
        at: Instant::now(),
    };
    shared.requests.lock().push(rec.clone());
    let responder = shared.responder.lock().clone();
    let resp = responder(&rec);
    if !resp.delay.is_zero() {
        tokio::time::sleep(resp.delay).await;
    }
    let status = StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut out = match resp.raw {
        Some((content_type, text)) => (
            status,
            [(axum::http::header::CONTENT_TYPE, content_type)],
            text,
        )
            .into_response(),
        None => (status, axum::Json(resp.body)).into_response(),
    };
    for (k, v) in resp.headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::try_from(k),
            axum::http::HeaderValue::try_from(v),
        ) {
            out.headers_mut().insert(name, value);
        }
    }
    out
}
