//! The HTTP server: hyper connections with a header-read timeout (which also closes idle
//! keep-alive connections), a cap on open connections, and graceful shutdown bounded by one
//! deadline.
//!
//! Shutdown as Kubernetes needs it: on SIGTERM the application turns `/ready` to 503 and keeps
//! serving for the drain delay (endpoints and proxies take a few seconds to stop sending),
//! then stops accepting; connections finish their in-flight requests, all before the overall
//! deadline (`SHUTDOWN_TIMEOUT_SECONDS` after the signal).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received");
}

/// Connection-level limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// A client must send a request's headers within this time; an idle keep-alive
    /// connection is closed after it.
    pub header_read_timeout: Duration,
    /// Open connections at most; beyond, the listener waits (the kernel's backlog holds new
    /// ones) until one closes.
    pub max_connections: usize,
}

/// The moment shutdown must be complete, set when the signal arrives.
#[derive(Debug, Clone, Default)]
pub struct Deadline(Arc<std::sync::OnceLock<Instant>>);

impl Deadline {
    /// Sets the deadline once (later calls keep the first).
    pub fn set(&self, at: Instant) {
        let _ = self.0.set(at);
    }

    /// What is left of the deadline, or `fallback` from now when none was set (shutdown
    /// without a signal).
    pub fn remaining(&self, fallback: Duration) -> Duration {
        match self.0.get() {
            Some(at) => at.saturating_duration_since(Instant::now()),
            None => fallback,
        }
    }
}

/// Serves until `stop` is cancelled, then lets open connections finish their requests until
/// the deadline.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    stop: CancellationToken,
    deadline: Deadline,
    fallback_grace: Duration,
    limits: ConnectionLimits,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(64 * 1024)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.header_read_timeout))
        .keep_alive_timeout(limits.header_read_timeout)
        .max_concurrent_streams(64);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        let permit = tokio::select! {
            _ = stop.cancelled() => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (tcp, _peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Answers leave at once rather than waiting on Nagle's algorithm for the peer's ACK.
        let _ = tcp.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            router.clone().oneshot(req.map(axum::body::Body::new))
        });
        let builder = builder.clone();
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(tcp), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // Errors here are the client's (reset, malformed, timed out): nothing to report.
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    let open = graceful.count();
    let grace = deadline.remaining(fallback_grace);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(grace) => {
            tracing::warn!(open, grace_ms = grace.as_millis() as u64, "in-flight requests did not finish before the deadline; closing");
        }
    }
    Ok(())
}
