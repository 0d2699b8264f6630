//! One error type for every handler: logs the cause, shows the client a safe message as JSON.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth::AuthError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("invalid request")]
    Validation(Vec<String>),
    #[error("unauthorized: {0}")]
    Unauthorized(AuthError),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("request body larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    Upstream(String),
    #[error("too many requests; retry in {retry_after} s")]
    RateLimited { retry_after: u64 },
    #[error("{0}")]
    Unavailable(String),
    #[error("the server is at its limit of concurrent requests; retry shortly")]
    Overloaded,
    /// The cause is logged; the client sees a generic message.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Upstream(_) => StatusCode::BAD_GATEWAY,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) | Self::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Validation(_) => "validation_failed",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::Upstream(_) => "upstream_error",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable(_) => "unavailable",
            Self::Overloaded => "overloaded",
            Self::Internal(_) => "internal_error",
        }
    }
}

/// Whether a database error means the database cannot be reached or serve now (a refused or
/// dropped connection, a terminated backend, a server starting or shutting down, no free
/// connection): worth a retry, so 503, not 500.
pub fn database_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception; 57P01-57P03: admin shutdown, crash shutdown, cannot
            // connect now; 53300: too many connections; 25006: read-only (a failover).
            code.starts_with("08")
                || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300" | "25006")
        }),
        _ => false,
    }
}

/// Whether the client sent text the database cannot store: PostgreSQL refuses NUL characters in
/// text (22021) and `\u0000` in JSON (22P05). The client's mistake, so 400, not 500.
pub fn unstorable_input(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db)
        if db.code().is_some_and(|c| matches!(&*c, "22021" | "22P05")))
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        if unstorable_input(&e) {
            return Self::BadRequest(
                "the request holds a NUL character (\\u0000), which cannot be stored".to_owned(),
            );
        }
        if database_unavailable(&e) {
            tracing::warn!(error = %e, "database unavailable");
            return Self::Unavailable("the database is unavailable; retry shortly".to_owned());
        }
        Self::Internal(format!("database: {e}"))
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let (message, details) = match &self {
            Self::Internal(cause) => {
                tracing::error!(cause = %cause, "request failed");
                (
                    "internal error; see the server log for this request id".to_owned(),
                    Vec::new(),
                )
            }
            Self::Unauthorized(reason) => {
                tracing::warn!(reason = reason.reason(), "request refused");
                (format!("unauthorized: {reason}"), Vec::new())
            }
            Self::Validation(problems) => (
                "the request is invalid; see details".to_owned(),
                problems.clone(),
            ),
            other => (other.to_string(), Vec::new()),
        };
        let mut body = json!({ "error": { "code": self.code(), "message": message } });
        if !details.is_empty() {
            body["error"]["details"] = json!(details);
        }
        let mut response = (status, Json(body)).into_response();
        let retry_after = match self {
            Self::RateLimited { retry_after } => Some(retry_after),
            Self::Unavailable(_) => Some(UNAVAILABLE_RETRY_AFTER_SECONDS),
            Self::Overloaded => Some(1),
            _ => None,
        };
        if let Some(v) =
            retry_after.and_then(|r| axum::http::HeaderValue::from_str(&r.to_string()).ok())
        {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, v);
        }
        response
    }
}

pub type AppResult<T> = Result<T, AppError>;

/// The Retry-After of a 503.
pub const UNAVAILABLE_RETRY_AFTER_SECONDS: u64 = 2;
