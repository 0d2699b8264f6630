//! `POST /api-call`: one Clockify API v1 call on behalf of the caller's workspace, with the
//! installation's token. The caller proves who they are with a Clockify user token (the
//! `auth_token` Clockify gives the add-on's iframes, as `Authorization: Bearer`), and the call
//! can only touch the workspace in that token. Writes are for workspace admins (and can be
//! switched off in the settings). Every call lands in the call log (`GET /api-call/log`):
//! who, what, and how it went, never tokens, query strings or bodies.
//!
//! Request: `{"method": "GET", "endpoint": "/v1/workspaces/{workspaceId}/projects/{id}",
//! "params": {"id": "..."}, "query": {"page": 1}, "body": {...}}`; `{workspaceId}` is always
//! the caller's. Answer: `{success, status_code, response_body, error_message, duration_ms,
//! attempts, timestamp}` as the original service answered.

use std::collections::BTreeMap;

use addon_core::app::{AppState, admit};
use addon_core::clockify::{ApiError, ApiRequest};
use addon_core::flows::template::encode_segment;
use addon_core::http::{ApiJson, AppError, AppResult};
use addon_core::openapi::{ApiRouter, ErrorBody};
use addon_core::routes::ui::UiUser;
use addon_core::store::api_calls::{self, NewCall};
use addon_core::store::installations::InstallStatus;
use addon_core::time::{now_millis, rfc3339};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::routes;

use crate::settings::ALLOW_WRITES_SETTING;

pub fn routes() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(api_call))
        .routes(routes!(call_log))
}

/// The answer of `/api-call`, in the original service's field names.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // describes the `json!` answers below
struct CallAnswer {
    /// Whether Clockify answered 2xx.
    success: bool,
    /// Clockify's status; null when it could not be reached.
    status_code: Option<u16>,
    /// Clockify's answer.
    response_body: serde_json::Value,
    error_message: Option<String>,
    duration_ms: u64,
    /// Attempts made (absent when Clockify could not be reached).
    #[schema(nullable = false)]
    attempts: Option<u32>,
    timestamp: String,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
struct CallLog {
    items: Vec<addon_core::store::api_calls::CallEntry>,
    next: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallRequest {
    pub method: String,
    pub endpoint: String,
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    #[serde(default)]
    pub query: BTreeMap<String, Value>,
    #[serde(default)]
    pub body: Option<Value>,
}

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];

/// Fills the endpoint for the caller's workspace and checks it stays there.
pub fn resolve_endpoint(
    endpoint: &str,
    workspace_id: &str,
    params: &BTreeMap<String, String>,
) -> Result<String, AppError> {
    let endpoint = endpoint.trim();
    if endpoint.contains('?') || endpoint.contains('#') {
        return Err(AppError::BadRequest(
            "endpoint: put query parameters in `query`, not in the endpoint".into(),
        ));
    }
    let mut path = String::with_capacity(endpoint.len());
    let mut rest = endpoint;
    while let Some(open) = rest.find('{') {
        path.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| AppError::BadRequest("endpoint: unclosed `{`".into()))?;
        let name = &after[..close];
        let value = if name == "workspaceId" {
            workspace_id
        } else {
            params
                .get(name)
                .map(String::as_str)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    AppError::BadRequest(format!(
                        "endpoint: no value for {{{name}}}: add it to `params`"
                    ))
                })?
        };
        path.push_str(&encode_segment(value));
        rest = &after[close + 1..];
    }
    path.push_str(rest);
    if path
        .split('/')
        .skip(1)
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(AppError::BadRequest(format!(
            "endpoint {endpoint:?}: empty, `.` and `..` path segments are not allowed"
        )));
    }
    let Some(scoped) = path.strip_prefix("/v1/workspaces/") else {
        return Err(AppError::BadRequest(format!(
            "endpoint {endpoint:?}: expected a Clockify API v1 path under /v1/workspaces/{{workspaceId}}/"
        )));
    };
    let named = scoped.split('/').next().unwrap_or_default();
    if named != encode_segment(workspace_id) {
        return Err(AppError::Forbidden(format!(
            "endpoint names workspace {named:?}: calls run only on your own workspace ({workspace_id})"
        )));
    }
    Ok(path)
}

fn query_pairs(query: &BTreeMap<String, Value>) -> Result<Vec<(String, String)>, AppError> {
    let mut pairs = Vec::new();
    let scalar = |k: &str, v: &Value| -> Result<String, AppError> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            _ => Err(AppError::BadRequest(format!(
                "query.{k}: expected a string, number, boolean or a list of those"
            ))),
        }
    };
    for (k, v) in query {
        match v {
            Value::Array(items) => {
                for item in items {
                    pairs.push((k.clone(), scalar(k, item)?));
                }
            }
            other => pairs.push((k.clone(), scalar(k, other)?)),
        }
    }
    Ok(pairs)
}

#[utoipa::path(
    post, path = "/api-call", tag = "api calls", security(("userToken" = []), ("userTokenQuery" = [])), request_body = CallRequest,
    responses(
        (status = 200, description = "Clockify's answer, whatever its status", body = CallAnswer),
        (status = 403, description = "A write without the setting that allows it or by a member, or an endpoint in another workspace", body = ErrorBody),
        (status = 409, description = "The add-on is inactive in this workspace", body = ErrorBody),
        (status = 429, description = "The workspace's rate of API calls through the add-on; retry after `Retry-After` seconds", body = ErrorBody),
        (status = 502, description = "Clockify could not be reached", body = CallAnswer),
        (status = 504, description = "Clockify did not answer in time", body = CallAnswer),
    )
)]
async fn api_call(
    State(state): State<AppState>,
    user: UiUser,
    ApiJson(req): ApiJson<CallRequest>,
) -> AppResult<Response> {
    let ws = user.workspace_id().to_owned();
    let method = req.method.trim().to_ascii_uppercase();
    if !METHODS.contains(&method.as_str()) {
        return Err(AppError::BadRequest(format!(
            "method {:?}: expected one of {}",
            req.method,
            METHODS.join(", ")
        )));
    }
    let path = resolve_endpoint(&req.endpoint, &ws, &req.params)?;
    let query = query_pairs(&req.query)?;
    let write = method != "GET";
    if write {
        if !user.claims.is_admin() {
            return Err(AppError::Forbidden(format!(
                "{method} changes workspace data: only workspace owners and admins may call it"
            )));
        }
        if !user.installation.flag(ALLOW_WRITES_SETTING, true) {
            return Err(AppError::Forbidden(
                "writes through /api-call are switched off in this workspace's settings".into(),
            ));
        }
    } else if req.body.is_some() {
        return Err(AppError::BadRequest("body: GET calls take no body".into()));
    }
    if user.installation.status != InstallStatus::Active {
        return Err(AppError::Conflict(
            "the add-on is inactive in this workspace".into(),
        ));
    }
    admit(state.api_call_limiter.as_ref(), &ws)?;
    let target = state.target(&user.installation)?;
    let api_request = ApiRequest {
        method: reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|_| AppError::BadRequest("method: not an HTTP method".into()))?,
        path: path.clone(),
        query,
        body: req.body,
        form: None,
    };
    let started = std::time::Instant::now();
    let result = state.client.send(&target, &api_request).await;
    let duration_ms = started.elapsed().as_millis() as i64;
    let (status, error) = match &result {
        Ok(r) if r.is_success() => (Some(r.status), None),
        Ok(r) => (
            Some(r.status),
            Some(format!("Clockify answered {}", r.status)),
        ),
        Err(e) => (None, Some(e.to_string())),
    };
    let logged = api_calls::record(
        &state.db,
        &NewCall {
            workspace_id: &ws,
            user_id: user.claims.user.as_deref(),
            method: &method,
            endpoint: &path,
            status,
            error: error.as_deref(),
            duration_ms,
        },
    )
    .await;
    if let Err(e) = logged {
        // The call happened; losing its log line must not hide the answer from the caller.
        tracing::error!(workspace_id = %ws, error = %e, "cannot record an API call");
    }
    tracing::info!(workspace_id = %ws, method = %method, endpoint = %path, status = ?status, duration_ms, "api call");
    let timestamp = rfc3339(now_millis());
    match result {
        Ok(r) => Ok(Json(json!({
            "success": r.is_success(),
            "status_code": r.status,
            "response_body": r.body,
            "error_message": error,
            "duration_ms": duration_ms,
            "attempts": r.attempts,
            "timestamp": timestamp,
        }))
        .into_response()),
        Err(e @ ApiError::BadPath(_)) => Err(AppError::BadRequest(format!("endpoint: {e}"))),
        Err(e @ ApiError::OtherWorkspace { .. }) => Err(AppError::Forbidden(e.to_string())),
        Err(e) => {
            let code = match e {
                ApiError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
                _ => StatusCode::BAD_GATEWAY,
            };
            Ok((
                code,
                Json(json!({
                    "success": false,
                    "status_code": Value::Null,
                    "response_body": Value::Null,
                    "error_message": e.to_string(),
                    "duration_ms": duration_ms,
                    "timestamp": timestamp,
                })),
            )
                .into_response())
        }
    }
}

#[derive(Debug, Deserialize)]
struct LogQuery {
    #[serde(default)]
    before: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
}

#[utoipa::path(
    get, path = "/api-call/log", tag = "api calls", security(("userToken" = []), ("userTokenQuery" = [])),
    params(("before" = Option<String>, Query, description = "The `next` of the previous page"), ("limit" = Option<i64>, Query, minimum = 1, maximum = 200, description = "Items per page (default 50)")),
    responses((status = 200, description = "Calls made through the add-on, newest first", body = CallLog))
)]
async fn call_log(
    State(state): State<AppState>,
    user: UiUser,
    Query(q): Query<LogQuery>,
) -> AppResult<Json<Value>> {
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let items = api_calls::list(&state.db, user.workspace_id(), q.before.as_deref(), limit).await?;
    let next = (items.len() as i64 == limit)
        .then(|| items.last().map(|c| c.id.clone()))
        .flatten();
    Ok(Json(json!({"items": items, "next": next})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_stay_in_the_callers_workspace() {
        let params = BTreeMap::from([("id".to_owned(), "p/1".to_owned())]);
        assert_eq!(
            resolve_endpoint("/v1/workspaces/{workspaceId}/projects/{id}", "ws1", &params).unwrap(),
            "/v1/workspaces/ws1/projects/p%2F1"
        );
        assert_eq!(
            resolve_endpoint("/v1/workspaces/ws1/tags", "ws1", &params).unwrap(),
            "/v1/workspaces/ws1/tags"
        );
        let other = resolve_endpoint("/v1/workspaces/ws2/tags", "ws1", &params).unwrap_err();
        assert!(matches!(other, AppError::Forbidden(_)), "{other:?}");
        for bad in [
            "/v1/user",
            "/v2/workspaces/ws1",
            "https://evil.example/v1/workspaces/ws1",
            "/v1/workspaces/ws1/tags?x=1",
            "/v1/workspaces/{workspaceId}/projects/{missing}",
            "/v1/workspaces/{workspaceId",
            "/v1/workspaces/ws1/../ws2/tags",
            "/v1/workspaces/ws1//tags",
            "/v1/workspaces/ws1/tags/",
        ] {
            assert!(
                matches!(
                    resolve_endpoint(bad, "ws1", &params),
                    Err(AppError::BadRequest(_))
                ),
                "{bad} was accepted"
            );
        }
    }

    #[test]
    fn query_values_become_pairs() {
        let q = BTreeMap::from([
            ("page".to_owned(), json!(2)),
            ("archived".to_owned(), json!(false)),
            ("name".to_owned(), json!("a b")),
            ("statuses".to_owned(), json!(["SENT", "PAID"])),
        ]);
        let pairs = query_pairs(&q).unwrap();
        assert_eq!(pairs.len(), 5);
        assert!(pairs.contains(&("page".into(), "2".into())));
        assert!(pairs.contains(&("statuses".into(), "PAID".into())));
        assert!(query_pairs(&BTreeMap::from([("x".to_owned(), json!({"a": 1}))])).is_err());
    }
}
