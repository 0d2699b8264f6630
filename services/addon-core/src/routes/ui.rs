//! `/ui/*`: the iframe UI and its JSON API (explorer, dashboard, webhook log, flows, executions,
//! bootstrap, entity cache). Every route needs the Clockify user token (`auth_token` query
//! parameter or `Authorization: Bearer`) and sees only that token's workspace.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::routes;

use super::schema::Page;
use crate::app::AppState;
use crate::auth::{AuthError, ClockifyClaims, TokenKind, user_token};
use crate::clockify::ApiError;
use crate::explorer::{ApiBase, api_catalog};
use crate::flows::{FlowDefinition, TriggerSource, sealed};
use crate::http::{ApiJson, AppError, AppResult};
use crate::openapi::ApiRouter;
use crate::store::executions::{ExecutionEntry, ExecutionFilter};
use crate::store::installations::{InstallStatus, Installation};
use crate::store::{bootstrap, entities, executions, flows, installations, page_limit, webhooks};
use crate::time::{DAY_MILLIS, now_millis, rfc3339};

pub fn routes() -> ApiRouter {
    // Compressed: the console's assets and catalogues, which hold no secret (never responses
    // that could, where compression would leak them by their size).
    let assets = ApiRouter::new()
        .routes(routes!(page))
        .routes(routes!(script))
        .routes(routes!(style))
        .routes(routes!(operations))
        .routes(routes!(flow_events))
        .layer(tower_http::compression::CompressionLayer::new());
    ApiRouter::new()
        .merge(assets)
        .routes(routes!(page_with_slash))
        .routes(routes!(dashboard))
        .routes(routes!(activity))
        .routes(routes!(execute))
        .routes(routes!(webhook_list))
        .routes(routes!(webhook_detail))
        .routes(routes!(flow_list, flow_create))
        .routes(routes!(flow_get, flow_update, flow_delete))
        .routes(routes!(flow_executions))
        .routes(routes!(flow_test))
        .routes(routes!(flow_import))
        .routes(routes!(execution_list))
        .routes(routes!(execution_detail))
        .routes(routes!(execution_rerun))
        .routes(routes!(bootstrap_status, bootstrap_start))
        .routes(routes!(entity_list))
}

/// A workspace user authenticated by a Clockify user token, in a workspace where the add-on is installed.
#[derive(Debug, Clone)]
pub struct UiUser {
    pub claims: ClockifyClaims,
    pub installation: Installation,
}

impl UiUser {
    pub fn workspace_id(&self) -> &str {
        &self.claims.workspace_id
    }
}

impl FromRequestParts<AppState> for UiUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let reject = |e: AuthError| {
            state
                .metrics
                .auth_failures
                .with_label_values(&["ui", e.reason()])
                .inc();
            AppError::Unauthorized(e)
        };
        let query_token = parts.uri.query().and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "auth_token")
                .map(|(_, v)| v.into_owned())
        });
        let token = user_token(&parts.headers, query_token.as_deref())
            .ok_or(AuthError::Missing)
            .map_err(reject)?;
        let claims = state
            .verifier
            .verify(token, TokenKind::User)
            .map_err(reject)?;
        let installation = installations::get(&state.db, &claims.workspace_id).await?;
        match installation {
            // A user token issued before the add-on was last deleted stays dead after a re-install.
            Some(i) if i.revoked_at_issue(claims.iat) => Err(reject(AuthError::Revoked)),
            Some(i) if i.status != InstallStatus::Deleted => Ok(Self {
                claims,
                installation: i,
            }),
            _ => Err(AppError::Forbidden(
                "the add-on is not installed in this workspace".into(),
            )),
        }
    }
}

/// A workspace owner or admin: every write of flows, bootstrap, the allowlist and secrets
/// needs one. Members get 403 with the reason.
#[derive(Debug, Clone)]
pub struct UiAdmin(pub UiUser);

impl FromRequestParts<AppState> for UiAdmin {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let user = UiUser::from_request_parts(parts, state).await?;
        if !user.claims.is_admin() {
            state
                .metrics
                .auth_failures
                .with_label_values(&["ui", "not_admin"])
                .inc();
            return Err(AppError::Forbidden(
                "only workspace owners and admins may change flows, bootstrap, the HTTP allowlist or secrets".into(),
            ));
        }
        Ok(Self(user))
    }
}

/// The console's page: a static shell (no workspace data, so no token is needed to fetch it);
/// its script reads the token from the URL, says clearly when it is missing or expired, and
/// calls the API with it. Every URL in it is relative, so a base URL with a path works.
#[utoipa::path(
    get, path = "/ui", tag = "console", operation_id = "console_page",
    responses((status = 200, description = "The console page; it reads the user token from its own address (`?auth_token=`), so it holds nothing of the user's", content_type = "text/html", body = String))
)]
async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("../../ui/index.html"),
    )
        .into_response()
}

/// `…/ui/` would resolve the page's relative URLs one level too deep: back to `…/ui`, with the
/// query (the token) kept. The Location is relative too.
#[utoipa::path(
    get, path = "/ui/", tag = "console", operation_id = "console_page_redirect",
    responses((status = 301, description = "To `../ui`, query kept: relative, so a base URL with a path prefix works", headers(("Location" = String, description = "`../ui?...`"))))
)]
async fn page_with_slash(uri: axum::http::Uri) -> Response {
    let location = match uri.query() {
        Some(q) => format!("../ui?{q}"),
        None => "../ui".to_owned(),
    };
    (
        StatusCode::MOVED_PERMANENTLY,
        [(header::LOCATION, location)],
    )
        .into_response()
}

/// The console's script and style, built from ui/app by scripts/ui.sh.
#[utoipa::path(
    get, path = "/static/app.js", tag = "console", operation_id = "console_script",
    responses((status = 200, description = "The console's script (built in; no CDN)", content_type = "text/javascript", body = String))
)]
async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../ui/dist/app.js"),
    )
}

#[utoipa::path(
    get, path = "/static/app.css", tag = "console", operation_id = "console_style",
    responses((status = 200, description = "The console's style sheet", content_type = "text/css", body = String))
)]
async fn style() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("../../ui/dist/app.css"),
    )
}

/// The reference add-on's settings page script, built with the console (served by that add-on).
pub const SETTINGS_SCRIPT: &str = include_str!("../../ui/dist/settings.js");

/// A built script or style, cached briefly (the name does not change between releases).
pub fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

#[utoipa::path(
    get, path = "/ui/dashboard", tag = "dashboard", security(("userToken" = []), ("userTokenQuery" = [])),
    responses((status = 200, description = "Counts of the last 24 hours, installation, bootstrap and cached entities", body = super::schema::Dashboard))
)]
async fn dashboard(State(state): State<AppState>, user: UiUser) -> AppResult<Json<Value>> {
    let ws = user.workspace_id();
    let since = now_millis() - DAY_MILLIS;
    let i = &user.installation;
    Ok(Json(json!({
        "workspaceId": ws,
        "addon": {"key": state.config.addon_key, "name": state.config.addon_name, "version": env!("CARGO_PKG_VERSION")},
        "features": {
            "customSources": state.def.features.custom_sources,
            "genericHttp": state.def.features.generic_http,
        },
        "installation": {
            "status": i.status,
            "apiUrl": i.api_url,
            "installedAt": rfc3339(i.installed_at),
            "settings": i.settings,
        },
        "webhooksLast24h": webhooks::count(&state.db, ws, since).await?,
        "executionsLast24h": executions::counts(&state.db, ws, since).await?.into_iter().collect::<BTreeMap<_, _>>(),
        "flows": flows::list(&state.db, ws).await?.len(),
        "bootstrap": bootstrap::get(&state.db, ws).await?,
        "entities": entities::counts(&state.db, ws).await?.into_iter().collect::<BTreeMap<_, _>>(),
    })))
}

/// The explorer's catalogue: every operation of Clockify's API (see [`crate::explorer`]),
/// serialised once.
#[utoipa::path(
    get, path = "/ui/explorer/operations", tag = "explorer", security(("userToken" = []), ("userTokenQuery" = [])),
    responses((status = 200, description = "Every operation of Clockify's API (generated from its OpenAPI document): tag, method, path, parameters, body schema", body = Object))
)]
async fn operations(_user: UiUser) -> Response {
    static BODY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let body = BODY.get_or_init(|| serde_json::to_string(api_catalog()).unwrap_or_default());
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        body.as_str(),
    )
        .into_response()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Execute {
    operation_id: String,
    /// Path parameters (`workspaceId` always comes from the token).
    #[serde(default)]
    params: BTreeMap<String, Value>,
    /// Query parameters: text, numbers, true/false, or lists of them.
    #[serde(default)]
    query: BTreeMap<String, Value>,
    #[serde(default)]
    body: Option<Value>,
}

/// The base URL of the API that serves `api`: the installation's for the main API; for
/// reports and time off, the one the user's token names (signed by Clockify).
fn base_url(user: &UiUser, api: ApiBase) -> Result<String, AppError> {
    let (url, claim) = match api {
        ApiBase::Api => return Ok(user.installation.api_url.clone()),
        ApiBase::Reports => (user.claims.reports_url.clone(), "reportsUrl"),
        ApiBase::Pto => (user.claims.pto_url.clone(), "ptoUrl"),
    };
    url.filter(|u| !u.is_empty()).ok_or_else(|| {
        AppError::Conflict(format!(
            "Clockify did not name this API's address in your session ({claim}); reload the add-on from Clockify"
        ))
    })
}

#[utoipa::path(
    post, path = "/ui/explorer/execute", tag = "explorer", security(("userToken" = []), ("userTokenQuery" = [])), request_body = Execute,
    responses(
        (status = 200, description = "Clockify's answer, whatever its status", body = super::schema::Executed),
        (status = 403, description = "A write by a member (writes need a workspace owner or admin), or a path into another workspace", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such operation", body = crate::openapi::ErrorBody),
        (status = 409, description = "The add-on is inactive, or Clockify named no address for this API in the session", body = crate::openapi::ErrorBody),
        (status = 422, description = "Unknown parameters, missing required ones, values outside their enum", body = crate::openapi::ErrorBody),
        (status = 502, description = "Clockify could not be reached or kept failing", body = crate::openapi::ErrorBody),
    )
)]
async fn execute(
    State(state): State<AppState>,
    user: UiUser,
    ApiJson(req): ApiJson<Execute>,
) -> AppResult<Json<Value>> {
    let op = api_catalog().get(&req.operation_id).ok_or_else(|| {
        AppError::NotFound(format!(
            "no operation {:?} in Clockify's API",
            req.operation_id
        ))
    })?;
    if op.write && !user.claims.is_admin() {
        return Err(AppError::Forbidden(format!(
            "{} changes workspace data: only workspace owners and admins may run it",
            op.id
        )));
    }
    op.runnable().map_err(AppError::BadRequest)?;
    if user.installation.status != InstallStatus::Active {
        return Err(AppError::Conflict(
            "the add-on is inactive in this workspace".into(),
        ));
    }
    let api_request = op
        .request(user.workspace_id(), &req.params, &req.query, req.body)
        .map_err(AppError::Validation)?;
    let mut target = state.target(&user.installation)?;
    target.api_url = base_url(&user, op.api)?;
    let resp = state
        .client
        .send(&target, &api_request)
        .await
        .map_err(|e| match e {
            ApiError::BadPath(_) => AppError::BadRequest(e.to_string()),
            ApiError::OtherWorkspace { .. } => AppError::Forbidden(e.to_string()),
            ApiError::NotAllowed(_) => AppError::Conflict(e.to_string()),
            other => AppError::Upstream(other.to_string()),
        })?;
    Ok(Json(json!({
        "operationId": op.id,
        "method": op.method,
        "path": api_request.path,
        "status": resp.status,
        "attempts": resp.attempts,
        "durationMs": resp.duration.as_millis() as u64,
        "body": resp.body,
    })))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    #[serde(default)]
    event_type: Option<String>,
    #[serde(default)]
    before: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    flow_id: Option<String>,
    #[serde(default)]
    webhook_id: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(rename = "type", default)]
    entity_type: Option<String>,
    /// Webhook log: `clockify` or a custom source; flows: `CLOCKIFY` or `CUSTOM`.
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    after: Option<String>,
    /// Webhook log and executions: only what arrived (started) at or after this RFC 3339 time.
    #[serde(default)]
    since: Option<String>,
}

impl ListQuery {
    /// `since` as epoch milliseconds; a time that does not parse is the caller's mistake.
    fn since(&self) -> AppResult<Option<i64>> {
        self.since
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| {
                time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                    .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
                    .map_err(|_| {
                        AppError::BadRequest(format!(
                            "since: expected an RFC 3339 time such as 2026-12-01T00:00:00Z, got {s:?}"
                        ))
                    })
            })
            .transpose()
    }
}

fn page_of<T: serde::Serialize>(
    items: Vec<T>,
    limit: i64,
    cursor: impl Fn(&T) -> String,
) -> Json<Page<T>> {
    let next = if items.len() as i64 == limit {
        items.last().map(&cursor)
    } else {
        None
    };
    Json(Page { items, next })
}

#[utoipa::path(
    get, path = "/ui/webhooks", tag = "webhooks log", security(("userToken" = []), ("userTokenQuery" = [])),
    params(("event_type" = Option<String>, Query, description = "Only this event type"), ("source" = Option<String>, Query, description = "`clockify` or a custom source"), ("before" = Option<String>, Query, description = "The `next` of the previous page"), ("since" = Option<String>, Query, format = DateTime, description = "Only what arrived (started) at or after this RFC 3339 time"), ("limit" = Option<i64>, Query, minimum = 1, maximum = 200, description = "Items per page (default 50)")),
    responses((status = 200, description = "Deliveries, newest first, without their bodies", body = super::schema::Page<crate::store::webhooks::WebhookEntry>))
)]
async fn webhook_list(
    State(state): State<AppState>,
    user: UiUser,
    Query(q): Query<ListQuery>,
) -> AppResult<Json<Page<crate::store::webhooks::WebhookEntry>>> {
    let limit = page_limit(q.limit);
    let items = webhooks::list(
        &state.db,
        user.workspace_id(),
        q.event_type.as_deref(),
        q.source.as_deref(),
        q.before.as_deref(),
        q.since()?,
        limit,
    )
    .await?;
    Ok(page_of(items, limit, |w| w.id.clone()))
}

#[utoipa::path(
    get, path = "/ui/webhooks/{id}", tag = "webhooks log", security(("userToken" = []), ("userTokenQuery" = [])), params(("id" = String, Path, description = "The delivery's id")),
    responses(
        (status = 200, description = "The delivery with its body and the executions it started", body = super::schema::WebhookDetail),
        (status = 404, description = "No such delivery in the workspace", body = crate::openapi::ErrorBody),
    )
)]
async fn webhook_detail(
    State(state): State<AppState>,
    user: UiUser,
    Path(id): Path<String>,
) -> AppResult<Json<Value>> {
    let entry = webhooks::get(&state.db, user.workspace_id(), &id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no webhook {id}")))?;
    let runs = executions::list(
        &state.db,
        user.workspace_id(),
        &ExecutionFilter {
            webhook_id: Some(&id),
            ..Default::default()
        },
        200,
    )
    .await?;
    Ok(Json(json!({"webhook": entry, "executions": runs})))
}

fn validated(state: &AppState, def: FlowDefinition) -> AppResult<FlowDefinition> {
    let problems = def.validate(state.def.features);
    if !problems.is_empty() {
        return Err(AppError::Validation(problems));
    }
    Ok(def)
}

#[utoipa::path(
    get, path = "/ui/flows", tag = "flows", security(("userToken" = []), ("userTokenQuery" = [])),
    params(("source" = Option<String>, Query, description = "`CLOCKIFY` or `CUSTOM` flows only")),
    responses((status = 200, description = "The workspace's flows (header values write-only)", body = super::schema::FlowList))
)]
async fn flow_list(
    State(state): State<AppState>,
    user: UiUser,
    Query(q): Query<ListQuery>,
) -> AppResult<Json<Value>> {
    let source = match q.source.as_deref() {
        None | Some("") => None,
        Some("CLOCKIFY") => Some(TriggerSource::Clockify),
        Some("CUSTOM") => Some(TriggerSource::Custom),
        Some(other) => {
            return Err(AppError::BadRequest(format!(
                "source: expected CLOCKIFY or CUSTOM, got {other:?}"
            )));
        }
    };
    let items: Vec<_> = flows::list(&state.db, user.workspace_id())
        .await?
        .into_iter()
        .filter(|f| source.is_none_or(|s| f.definition.trigger_source == s))
        .map(|f| shown(&f))
        .collect();
    Ok(Json(json!({"items": items})))
}

/// A flow as the API shows it: header values are write-only (`{"set": true}`).
fn shown(flow: &flows::FlowRecord) -> Value {
    let mut v = json!(flow);
    sealed::redact(&mut v);
    v
}

/// A flow written through the API: `{"set": true}` header values resolved against the stored
/// flow, validated, every header value sealed.
fn written(
    state: &AppState,
    workspace_id: &str,
    mut input: Value,
    stored: Option<&FlowDefinition>,
) -> AppResult<FlowDefinition> {
    let problems = sealed::resolve_input(&mut input, stored);
    if !problems.is_empty() {
        return Err(AppError::Validation(problems));
    }
    let def: FlowDefinition = serde_json::from_value(input)
        .map_err(|e| AppError::BadRequest(format!("invalid JSON body: {e}")))?;
    let mut def = validated(state, def)?;
    sealed::seal(&state.cipher, workspace_id, &mut def)
        .map_err(|e| AppError::Internal(format!("sealing flow headers: {e}")))?;
    Ok(def)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TestRun {
    /// The flow as the builder has it (saved or not; `{"set": true}` header values of a saved
    /// flow are resolved against it).
    flow: Value,
    /// A stored delivery of this workspace to run it against…
    #[serde(default)]
    webhook_id: Option<String>,
    /// …or a sample.
    #[serde(default)]
    sample: Option<Sample>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Sample {
    event_type: String,
    /// `clockify` (the default) or a custom source.
    #[serde(default)]
    source: Option<String>,
    body: Value,
}

/// A test run: what the flow would do with one delivery, without doing it (see
/// [`crate::flows::dryrun`]). Any member may run one: nothing is sent or stored.
#[utoipa::path(
    post, path = "/ui/flows/test", tag = "flows", security(("userToken" = []), ("userTokenQuery" = [])), request_body = TestRun,
    responses(
        (status = 200, description = "Whether it is triggered, each condition with what its path found, each request resolved (credentials redacted) or why it would be refused", body = crate::flows::dryrun::Report),
        (status = 404, description = "No such stored delivery", body = crate::openapi::ErrorBody),
        (status = 422, description = "Every problem of the flow", body = crate::openapi::ErrorBody),
    )
)]
async fn flow_test(
    State(state): State<AppState>,
    user: UiUser,
    ApiJson(req): ApiJson<TestRun>,
) -> AppResult<Json<Value>> {
    let ws = user.workspace_id();
    let mut input = req.flow;
    let stored = match input.get("id").and_then(Value::as_str) {
        Some(id) => flows::get(&state.db, ws, id).await?.map(|f| f.definition),
        None => None,
    };
    if let Some(o) = input.as_object_mut() {
        for k in ["id", "createdAt", "updatedAt"] {
            o.remove(k);
        }
    }
    let mut problems = sealed::resolve_input(&mut input, stored.as_ref());
    let def = match serde_json::from_value::<FlowDefinition>(input) {
        Ok(d) => Some(d),
        Err(e) => {
            problems.push(format!("the flow is not valid: {e}"));
            None
        }
    };
    if let Some(d) = &def {
        problems.extend(d.validate(state.def.features));
    }
    let (Some(def), true) = (def, problems.is_empty()) else {
        return Err(AppError::Validation(problems));
    };
    let (source, event_type, body) = match (req.webhook_id, req.sample) {
        (Some(id), None) => {
            let w = webhooks::get(&state.db, ws, &id)
                .await?
                .ok_or_else(|| AppError::NotFound(format!("no webhook {id}")))?;
            (w.source, w.event_type, w.body.unwrap_or(Value::Null))
        }
        (None, Some(s)) => (
            s.source.unwrap_or_else(|| "clockify".to_owned()),
            s.event_type,
            s.body,
        ),
        _ => {
            return Err(AppError::BadRequest(
                "give either webhookId (a stored delivery) or sample ({eventType, body})".into(),
            ));
        }
    };
    let allowlist = crate::worker::workspace_allowlist(&state, ws).await?;
    let delivery = crate::flows::dryrun::Delivery {
        source: (source != crate::store::webhooks::CLOCKIFY_SOURCE).then_some(source.as_str()),
        event_type: &event_type,
        body: &body,
    };
    let report =
        crate::flows::dryrun::run(&def, &delivery, ws, &user.installation.api_url, &allowlist);
    Ok(Json(json!(report)))
}

/// Clockify's webhook events and the fields of their bodies, for the builder's conditions and
/// templates (custom sources' fields come from their stored deliveries).
#[utoipa::path(
    get, path = "/ui/flows/events", tag = "flows", security(("userToken" = []), ("userTokenQuery" = [])),
    responses((status = 200, description = "Clockify's webhook events with the paths and types of their bodies' fields", body = Object))
)]
async fn flow_events(_user: UiUser) -> Response {
    static BODY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let body = BODY.get_or_init(|| json!({"events": crate::explorer::event_fields()}).to_string());
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        body.as_str(),
    )
        .into_response()
}

/// A flow of the earlier Python system (`operation_id` + `params`) in this engine's format,
/// with what the conversion assumed; not saved.
#[utoipa::path(
    post, path = "/ui/flows/import", tag = "flows", security(("userToken" = []), ("userTokenQuery" = [])),
    request_body(content = Object, description = "A flow of the earlier Python system (`operation_id` + `params` actions)"),
    responses(
        (status = 200, description = "The flow in this engine's format (not saved) and what the conversion assumed", body = super::schema::Imported),
        (status = 422, description = "What could not be converted", body = crate::openapi::ErrorBody),
    )
)]
async fn flow_import(_user: UiUser, ApiJson(input): ApiJson<Value>) -> AppResult<Json<Value>> {
    let out = crate::flows::import::import(&input, api_catalog()).map_err(AppError::Validation)?;
    Ok(Json(json!({"flow": out.flow, "notes": out.notes})))
}

#[utoipa::path(
    post, path = "/ui/flows", tag = "flows", security(("userToken" = []), ("userTokenQuery" = [])), request_body = FlowDefinition,
    responses(
        (status = 201, description = "Created", body = crate::store::flows::FlowRecord),
        (status = 422, description = "Every problem of the flow", body = crate::openapi::ErrorBody),
    )
)]
async fn flow_create(
    State(state): State<AppState>,
    UiAdmin(user): UiAdmin,
    ApiJson(input): ApiJson<Value>,
) -> AppResult<Response> {
    let def = written(&state, user.workspace_id(), input, None)?;
    let flow = flows::create(&state.db, user.workspace_id(), &def).await?;
    tracing::info!(workspace_id = %user.workspace_id(), flow_id = %flow.id, "flow created");
    Ok((StatusCode::CREATED, Json(shown(&flow))).into_response())
}

#[utoipa::path(
    get, path = "/ui/flows/{id}", tag = "flows", security(("userToken" = []), ("userTokenQuery" = [])), params(("id" = String, Path, description = "The flow's id")),
    responses(
        (status = 200, description = "The flow (header values write-only)", body = crate::store::flows::FlowRecord),
        (status = 404, description = "No such flow in the workspace", body = crate::openapi::ErrorBody),
    )
)]
async fn flow_get(
    State(state): State<AppState>,
    user: UiUser,
    Path(id): Path<String>,
) -> AppResult<Json<Value>> {
    let flow = flows::get(&state.db, user.workspace_id(), &id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no flow {id}")))?;
    Ok(Json(shown(&flow)))
}

#[utoipa::path(
    put, path = "/ui/flows/{id}", tag = "flows", security(("userToken" = []), ("userTokenQuery" = [])), params(("id" = String, Path, description = "The flow's id")), request_body = FlowDefinition,
    responses(
        (status = 200, description = "Replaced", body = crate::store::flows::FlowRecord),
        (status = 404, description = "No such flow in the workspace", body = crate::openapi::ErrorBody),
        (status = 422, description = "Every problem of the flow", body = crate::openapi::ErrorBody),
    )
)]
async fn flow_update(
    State(state): State<AppState>,
    UiAdmin(user): UiAdmin,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<Value>,
) -> AppResult<Json<Value>> {
    let stored = flows::get(&state.db, user.workspace_id(), &id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no flow {id}")))?;
    let def = written(&state, user.workspace_id(), input, Some(&stored.definition))?;
    let flow = flows::update(&state.db, user.workspace_id(), &id, &def)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no flow {id}")))?;
    Ok(Json(shown(&flow)))
}

#[utoipa::path(
    delete, path = "/ui/flows/{id}", tag = "flows", security(("userToken" = []), ("userTokenQuery" = [])), params(("id" = String, Path, description = "The flow's id")),
    responses(
        (status = 204, description = "Deleted, with its queued executions"),
        (status = 404, description = "No such flow in the workspace", body = crate::openapi::ErrorBody),
    )
)]
async fn flow_delete(
    State(state): State<AppState>,
    UiAdmin(user): UiAdmin,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    if !flows::delete(&state.db, user.workspace_id(), &id).await? {
        return Err(AppError::NotFound(format!("no flow {id}")));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get, path = "/ui/flows/{id}/executions", tag = "executions", security(("userToken" = []), ("userTokenQuery" = [])),
    params(("id" = String, Path, description = "The flow's id"), ("status" = Option<String>, Query, description = "PENDING, RUNNING, RETRY, SUCCEEDED, FAILED or SKIPPED"), ("before" = Option<String>, Query, description = "The `next` of the previous page"), ("since" = Option<String>, Query, format = DateTime, description = "Only what arrived (started) at or after this RFC 3339 time"), ("limit" = Option<i64>, Query, minimum = 1, maximum = 200, description = "Items per page (default 50)")),
    responses(
        (status = 200, description = "The flow's executions, newest first", body = super::schema::Page<ExecutionEntry>),
        (status = 404, description = "No such flow in the workspace", body = crate::openapi::ErrorBody),
    )
)]
async fn flow_executions(
    State(state): State<AppState>,
    user: UiUser,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> AppResult<Json<Page<ExecutionEntry>>> {
    if flows::get(&state.db, user.workspace_id(), &id)
        .await?
        .is_none()
    {
        return Err(AppError::NotFound(format!("no flow {id}")));
    }
    let limit = page_limit(q.limit);
    let filter = ExecutionFilter {
        flow_id: Some(&id),
        status: q.status.as_deref(),
        before: q.before.as_deref(),
        since: q.since()?,
        ..Default::default()
    };
    let items = executions::list(&state.db, user.workspace_id(), &filter, limit).await?;
    Ok(page_of(items, limit, |e| e.id.clone()))
}

#[utoipa::path(
    get, path = "/ui/executions", tag = "executions", security(("userToken" = []), ("userTokenQuery" = [])),
    params(("flow_id" = Option<String>, Query, description = "Only this flow's"), ("webhook_id" = Option<String>, Query, description = "Only this delivery's"), ("status" = Option<String>, Query, description = "PENDING, RUNNING, RETRY, SUCCEEDED, FAILED or SKIPPED"), ("before" = Option<String>, Query, description = "The `next` of the previous page"), ("since" = Option<String>, Query, format = DateTime, description = "Only what arrived (started) at or after this RFC 3339 time"), ("limit" = Option<i64>, Query, minimum = 1, maximum = 200, description = "Items per page (default 50)")),
    responses((status = 200, description = "Executions, newest first", body = super::schema::Page<ExecutionEntry>))
)]
async fn execution_list(
    State(state): State<AppState>,
    user: UiUser,
    Query(q): Query<ListQuery>,
) -> AppResult<Json<Page<ExecutionEntry>>> {
    let limit = page_limit(q.limit);
    let filter = ExecutionFilter {
        flow_id: q.flow_id.as_deref(),
        webhook_id: q.webhook_id.as_deref(),
        status: q.status.as_deref(),
        before: q.before.as_deref(),
        since: q.since()?,
    };
    let items = executions::list(&state.db, user.workspace_id(), &filter, limit).await?;
    Ok(page_of(items, limit, |e| e.id.clone()))
}

#[utoipa::path(
    get, path = "/ui/executions/{id}", tag = "executions", security(("userToken" = []), ("userTokenQuery" = [])), params(("id" = String, Path, description = "The execution's id")),
    responses(
        (status = 200, description = "The execution, step by step with request and response excerpts (secrets redacted)", body = ExecutionEntry),
        (status = 404, description = "No such execution in the workspace", body = crate::openapi::ErrorBody),
    )
)]
async fn execution_detail(
    State(state): State<AppState>,
    user: UiUser,
    Path(id): Path<String>,
) -> AppResult<Json<Value>> {
    let e = executions::get(&state.db, user.workspace_id(), &id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no execution {id}")))?;
    Ok(Json(json!(e)))
}

/// Runs a failed execution again from its failed step (admins: it calls Clockify again).
#[utoipa::path(
    post, path = "/ui/executions/{id}/rerun", tag = "executions", security(("userToken" = []), ("userTokenQuery" = [])), params(("id" = String, Path, description = "The execution's id")),
    responses(
        (status = 200, description = "Queued again; it resumes at the failed step", body = ExecutionEntry),
        (status = 404, description = "No such execution in the workspace", body = crate::openapi::ErrorBody),
        (status = 409, description = "Only a FAILED execution can be run again", body = crate::openapi::ErrorBody),
    )
)]
async fn execution_rerun(
    State(state): State<AppState>,
    UiAdmin(user): UiAdmin,
    Path(id): Path<String>,
) -> AppResult<Json<Value>> {
    let ws = user.workspace_id();
    let e = executions::get(&state.db, ws, &id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no execution {id}")))?;
    if !executions::rerun(&state.db, ws, &id).await? {
        return Err(AppError::Conflict(format!(
            "execution {id} is {}: only a FAILED run can be run again",
            e.status
        )));
    }
    state.execution_work.notify_one();
    tracing::info!(workspace_id = %ws, execution_id = %id, "failed execution queued again");
    let e = executions::get(&state.db, ws, &id).await?;
    Ok(Json(json!(e)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActivityQuery {
    #[serde(default)]
    hours: Option<i64>,
}

/// The dashboard's charts: deliveries and runs per hour over the last `hours` (1-168, default
/// 24), each flow's runs, failures and durations, and the calls that waited for a rate limit
/// (the add-on's own per workspace, or Clockify's 429s) over the same window.
#[utoipa::path(
    get, path = "/ui/dashboard/activity", tag = "dashboard", security(("userToken" = []), ("userTokenQuery" = [])),
    params(("hours" = Option<i64>, Query, minimum = 1, maximum = 168, description = "The window, in hours (default 24)")),
    responses((status = 200, description = "Deliveries and runs per hour, each flow's runs and failures, rate-limit waits", body = super::schema::Activity))
)]
async fn activity(
    State(state): State<AppState>,
    user: UiUser,
    Query(q): Query<ActivityQuery>,
) -> AppResult<Json<Value>> {
    let hours = q.hours.unwrap_or(24);
    if !(1..=168).contains(&hours) {
        return Err(AppError::BadRequest(format!(
            "hours: 1 to 168 (a week), got {hours}"
        )));
    }
    let ws = user.workspace_id();
    let now = now_millis();
    let first_hour = (now / 3_600_000 - (hours - 1)) * 3_600_000;
    let deliveries = webhooks::per_hour(&state.db, ws, first_hour).await?;
    let runs = executions::per_hour(&state.db, ws, first_hour).await?;
    let mut buckets: Vec<Value> = (0..hours)
        .map(|i| {
            let at = first_hour + i * 3_600_000;
            json!({"hour": rfc3339(at), "deliveries": 0, "runs": {}})
        })
        .collect();
    let slot = |at: i64| usize::try_from((at - first_hour) / 3_600_000).ok();
    for (at, n) in deliveries {
        if let Some(b) = slot(at).and_then(|i| buckets.get_mut(i)) {
            b["deliveries"] = json!(n);
        }
    }
    for (at, status, n) in runs {
        if let Some(b) = slot(at).and_then(|i| buckets.get_mut(i)) {
            b["runs"][status] = json!(n);
        }
    }
    let mut waits = json!({"waits": 0, "throttled": 0, "waitMs": 0});
    for h in crate::store::waits::per_hour(&state.db, ws, first_hour).await? {
        for (k, v) in [
            ("waits", h.waits),
            ("throttled", h.throttled),
            ("waitMs", h.wait_ms),
        ] {
            waits[k] = json!(waits[k].as_i64().unwrap_or(0) + v);
        }
        if let Some(b) = slot(h.hour).and_then(|i| buckets.get_mut(i)) {
            b["rateLimitWaits"] = json!(h.waits);
        }
    }
    let names: BTreeMap<String, String> = flows::list(&state.db, ws)
        .await?
        .into_iter()
        .map(|f| (f.id, f.definition.name))
        .collect();
    let stats: Vec<Value> = executions::flow_stats(&state.db, ws, first_hour)
        .await?
        .into_iter()
        .map(|f| {
            let mut v = json!(f);
            v["name"] = json!(
                names
                    .get(&f.flow_id)
                    .cloned()
                    .unwrap_or_else(|| "(deleted flow)".to_owned())
            );
            v
        })
        .collect();
    Ok(Json(
        json!({"hours": buckets, "flows": stats, "rateLimitWaits": waits}),
    ))
}

#[utoipa::path(
    get, path = "/ui/bootstrap", tag = "dashboard", security(("userToken" = []), ("userTokenQuery" = [])),
    responses((status = 200, description = "The workspace's bootstrap (fetching its entities from Clockify)", body = super::schema::BootstrapState))
)]
async fn bootstrap_status(State(state): State<AppState>, user: UiUser) -> AppResult<Json<Value>> {
    let run = bootstrap::get(&state.db, user.workspace_id()).await?;
    Ok(Json(json!({"bootstrap": run})))
}

#[utoipa::path(
    post, path = "/ui/bootstrap", tag = "dashboard", security(("userToken" = []), ("userTokenQuery" = [])),
    responses(
        (status = 202, description = "Requested; it runs in the background", body = super::schema::BootstrapState),
        (status = 409, description = "The add-on is inactive in this workspace", body = crate::openapi::ErrorBody),
    )
)]
async fn bootstrap_start(
    State(state): State<AppState>,
    UiAdmin(user): UiAdmin,
) -> AppResult<Response> {
    if user.installation.status != InstallStatus::Active {
        return Err(AppError::Conflict(
            "the add-on is inactive in this workspace".into(),
        ));
    }
    let run = bootstrap::request(&state.db, user.workspace_id()).await?;
    state.bootstrap_work.notify_one();
    Ok((StatusCode::ACCEPTED, Json(json!({"bootstrap": run}))).into_response())
}

#[utoipa::path(
    get, path = "/ui/entities", tag = "dashboard", security(("userToken" = []), ("userTokenQuery" = [])),
    params(("type" = Option<String>, Query, description = "An entity type (`projects`, `clients`, ...); without it, the counts by type"), ("after" = Option<String>, Query, description = "The `next` of the previous page"), ("limit" = Option<i64>, Query, minimum = 1, maximum = 200, description = "Items per page (default 50)")),
    responses((status = 200, description = "Counts by type, or a page of cached entities by id", body = super::schema::EntityAnswer))
)]
async fn entity_list(
    State(state): State<AppState>,
    user: UiUser,
    Query(q): Query<ListQuery>,
) -> AppResult<Json<Value>> {
    let Some(entity_type) = q.entity_type.as_deref() else {
        let counts = entities::counts(&state.db, user.workspace_id()).await?;
        return Ok(Json(
            json!({"types": counts.into_iter().collect::<BTreeMap<_, _>>()}),
        ));
    };
    let limit = page_limit(q.limit);
    let items = entities::list(
        &state.db,
        user.workspace_id(),
        entity_type,
        q.after.as_deref(),
        limit,
    )
    .await?;
    Ok(Json(json!(page_of(items, limit, |e| e.id.clone()).0)))
}
