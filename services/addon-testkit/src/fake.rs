//! A fake Clockify API on a local port. It records every request (method, path, query,
//! headers, body, arrival time) and answers with a programmable responder, so tests assert what
//! the client actually sent.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
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
    /// The HTTP version the request came in on.
    pub version: axum::http::Version,
    /// The client's address: one per connection, so requests that share it came over one
    /// connection.
    pub peer: SocketAddr,
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

impl Shared {
    /// No request yet, and a responder that answers `200 {}`.
    fn new() -> Arc<Self> {
        Arc::new(Self {
            requests: Mutex::new(Vec::new()),
            responder: Mutex::new(Arc::new(|_: &Recorded| {
                FakeResponse::json(200, serde_json::json!({}))
            })),
        })
    }
}

#[derive(Clone)]
pub struct FakeClockify {
    shared: Arc<Shared>,
    pub port: u16,
    /// Set when the fake serves HTTPS, as Clockify's API does.
    tls: Option<Arc<TlsFiles>>,
}

/// What the fake offers in TLS's ALPN: HTTP/2 and HTTP/1.1, as HTTPS fronts commonly do, or
/// HTTP/1.1 only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    Http2AndHttp1,
    Http1Only,
}

/// The fake's self-signed certificate, in a PEM file a client trusts (`SSL_CERT_FILE` for a
/// spawned binary).
struct TlsFiles {
    ca_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
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
        let shared = Shared::new();
        let (listener, port, app) = listen(&shared).await;
        tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await;
        });
        Self {
            shared,
            port,
            tls: None,
        }
    }

    /// Starts on 127.0.0.1 serving HTTPS with a self-signed certificate for that address
    /// ([`FakeClockify::ca_file`]), offering `alpn`.
    pub async fn start_tls(alpn: Alpn) -> Self {
        use hyper_util::rt::{TokioExecutor, TokioIo};
        let shared = Shared::new();
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
            .expect("a self-signed certificate");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ca_file = dir.path().join("fake-clockify-ca.pem");
        std::fs::write(&ca_file, cert.cert.pem()).expect("write the certificate");
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .expect("the certificate and its key");
        config.alpn_protocols = match alpn {
            Alpn::Http2AndHttp1 => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            Alpn::Http1Only => vec![b"http/1.1".to_vec()],
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let (listener, port, app) = listen(&shared).await;
        tokio::spawn(async move {
            loop {
                // As `axum::serve` does: an accept that fails (too many open files, say) is
                // retried after a pause rather than ending the fake.
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper_util::service::TowerToHyperService::new(
                        tower::ServiceBuilder::new()
                            .map_request(move |mut req: axum::extract::Request<_>| {
                                req.extensions_mut().insert(ConnectInfo(peer));
                                req
                            })
                            .service(app),
                    );
                    let mut builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    if alpn == Alpn::Http1Only {
                        builder = builder.http1_only();
                    }
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            shared,
            port,
            tls: Some(Arc::new(TlsFiles { ca_file, _dir: dir })),
        }
    }

    /// The PEM file of the certificate an HTTPS fake serves (None over plain HTTP).
    pub fn ca_file(&self) -> Option<&std::path::Path> {
        self.tls.as_ref().map(|t| t.ca_file.as_path())
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// The `apiUrl` an installation uses to reach this fake.
    pub fn api_url(&self) -> String {
        format!("{}://127.0.0.1:{}/api", self.scheme(), self.port)
    }

    /// The allowlist entry that lets the client call this fake.
    pub fn allow_entry(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme(), self.port)
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

/// A listener on a free port of 127.0.0.1, and the fake's routes over `shared`.
async fn listen(shared: &Arc<Shared>) -> (tokio::net::TcpListener, u16, Router) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind fake Clockify");
    let port = listener.local_addr().expect("local addr").port();
    (
        listener,
        port,
        Router::new().fallback(handle).with_state(shared.clone()),
    )
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    version: axum::http::Version,
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
        version,
        peer,
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
