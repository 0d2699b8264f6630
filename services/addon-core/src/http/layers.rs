//! The middleware every add-on router gets: request ids, tracing without query strings (they
//! carry user tokens), metrics by route template, security headers, CORS, a request timeout,
//! panics turned into JSON 500s, and JSON bodies on every error status.

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Response, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use super::cors::OriginList;
use crate::metrics::Metrics;

/// Content-Security-Policy: pages are framed only by Clockify.
fn csp(origins: &OriginList) -> HeaderValue {
    let policy = format!(
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
         frame-ancestors 'self' {}; base-uri 'none'; form-action 'self'",
        origins.csp_sources()
    );
    HeaderValue::from_str(&policy)
        .unwrap_or_else(|_| HeaderValue::from_static("frame-ancestors 'self'"))
}

/// Load shedding: at most this many requests in flight; the next is answered 503 with
/// Retry-After at once instead of queueing behind them. Health checks and metrics are exempt,
/// so an overloaded pod is not also restarted by its liveness probe.
#[derive(Clone)]
struct Shed {
    slots: std::sync::Arc<tokio::sync::Semaphore>,
    metrics: Metrics,
}

const UNSHED: &[&str] = &["/healthz", "/ready", "/metrics"];

async fn shed(State(shed): State<Shed>, req: Request, next: Next) -> Response<Body> {
    if UNSHED.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let Ok(_permit) = shed.slots.clone().try_acquire_owned() else {
        shed.metrics.http_shed.inc();
        return super::AppError::Overloaded.into_response();
    };
    shed.metrics.http_in_flight.inc();
    let res = next.run(req).await;
    shed.metrics.http_in_flight.dec();
    res
}

pub fn apply(
    router: Router,
    body_limit: usize,
    metrics: Metrics,
    cors: &OriginList,
    request_timeout: Duration,
    max_concurrent_requests: usize,
) -> Router {
    let x_request_id = HeaderName::from_static("x-request-id");
    let shed_state = Shed {
        slots: std::sync::Arc::new(tokio::sync::Semaphore::new(max_concurrent_requests.max(1))),
        metrics: metrics.clone(),
    };
    // One layer, composed by ServiceBuilder (the first is outermost), not one `Router::layer`
    // per middleware: each of those wraps every route in another boxed `Route`, and a request
    // clones the whole boxed chain at every level it passes (about 60 allocations per request
    // with six levels, heaptrack on the flows bench); composed, the stack is one value.
    // Inside the router, so `track` sees the matched route template.
    router.layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(x_request_id.clone(), MakeRequestUuid))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(|req: &Request| {
                        let request_id =
                            req.extensions().get::<RequestId>().and_then(|id| id.header_value().to_str().ok()).unwrap_or("-");
                        // Path only: query strings may carry `auth_token`.
                        tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %request_id)
                    })
                    .on_request(())
                    .on_response(|res: &Response<_>, latency: Duration, _span: &tracing::Span| {
                        tracing::info!(status = res.status().as_u16(), latency_ms = latency.as_millis() as u64, "request finished");
                    }),
            )
            .layer(PropagateRequestIdLayer::new(x_request_id))
            .layer(CatchPanicLayer::custom(|_| {
                tracing::error!("handler panicked");
                super::AppError::Internal("handler panicked".into()).into_response()
            }))
            .layer(cors.layer())
            .layer(SetResponseHeaderLayer::if_not_present(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
            .layer(SetResponseHeaderLayer::if_not_present(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
            .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
            .layer(SetResponseHeaderLayer::if_not_present(
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static("max-age=31536000; includeSubDomains"),
            ))
            .layer(SetResponseHeaderLayer::if_not_present(header::CONTENT_SECURITY_POLICY, csp(cors)))
            .layer(middleware::from_fn_with_state(metrics, track))
            .layer(middleware::map_response(json_error_bodies))
            .layer(middleware::from_fn_with_state(shed_state, shed))
            .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, request_timeout))
            // Bodies up to this size unless a route sets its own limit.
            .layer(DefaultBodyLimit::max(body_limit)),
    )
}

async fn track(State(metrics): State<Metrics>, req: Request, next: Next) -> Response<Body> {
    let started = Instant::now();
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    metrics
        .http_requests
        .with_label_values(&[method, &route, &status])
        .inc();
    metrics
        .http_duration
        .with_label_values(&[method, &route])
        .observe(started.elapsed().as_secs_f64());
    res
}

/// The method as a metric label: the methods HTTP defines, and every other as `other`, so that
/// invented methods cannot grow the series without bound.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// The longest plain-text rejection carried into a JSON error (axum's are one short line).
const MAX_REJECTION_TEXT: usize = 1024;

/// Gives error responses without a JSON body a JSON one: bodiless ones (405, timeouts,
/// oversized bodies) and axum's plain-text rejections of a path, query or body (their text
/// becomes the message), so every error is JSON as documented.
async fn json_error_bodies(res: Response<Body>) -> Response<Body> {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let plain_text = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if res.headers().contains_key(header::CONTENT_TYPE) && !plain_text {
        return res;
    }
    let (parts, body) = res.into_parts();
    let text = if plain_text {
        axum::body::to_bytes(body, MAX_REJECTION_TEXT)
            .await
            .ok()
            .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
            .filter(|t| !t.is_empty())
    } else {
        None
    };
    let res = Response::from_parts(parts, Body::empty());
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNPROCESSABLE_ENTITY => "validation_failed",
        _ => "error",
    };
    let message = match (status, text) {
        (_, Some(text)) => text,
        (StatusCode::SERVICE_UNAVAILABLE, None) => {
            "the request took too long or the service is unavailable".to_owned()
        }
        (other, None) => other
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase(),
    };
    let mut out = (
        status,
        axum::Json(serde_json::json!({"error": {"code": code, "message": message}})),
    )
        .into_response();
    for (name, value) in res.headers() {
        if name != header::CONTENT_LENGTH && name != header::CONTENT_TYPE {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}
