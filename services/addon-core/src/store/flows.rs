//! Flow definitions per workspace. `updated_at` doubles as the flow's version: an execution
//! queued under one version is not resumed mid-way under another.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, json_col, new_id};
use crate::flows::{ConditionMode, FlowDefinition, TriggerSource};
use crate::time::{now_millis, rfc3339};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlowRecord {
    pub id: String,
    #[serde(flatten)]
    pub definition: FlowDefinition,
    pub created_at: String,
    pub updated_at: String,
    /// `updated_at` in milliseconds: the version an execution was queued with.
    #[serde(skip)]
    pub version: i64,
}

fn from_row(r: &AnyRow) -> Result<FlowRecord, sqlx::Error> {
    let mode: String = r.try_get("condition_mode")?;
    let enabled: i64 = r.try_get("enabled")?;
    let source: Option<String> = r.try_get("trigger_source")?;
    let sources: Option<String> = r.try_get("trigger_sources")?;
    let updated_at: i64 = r.try_get("updated_at")?;
    Ok(FlowRecord {
        id: r.try_get("id")?,
        definition: FlowDefinition {
            name: r.try_get("name")?,
            enabled: enabled != 0,
            trigger_source: if source.as_deref() == Some("CUSTOM") {
                TriggerSource::Custom
            } else {
                TriggerSource::Clockify
            },
            trigger_sources: match sources {
                Some(text) => json_col(&text, "trigger_sources")?,
                None => Vec::new(),
            },
            trigger_events: json_col(&r.try_get::<String, _>("trigger_events")?, "trigger_events")?,
            condition_mode: if mode == "ANY" {
                ConditionMode::Any
            } else {
                ConditionMode::All
            },
            conditions: json_col(&r.try_get::<String, _>("conditions")?, "conditions")?,
            actions: json_col(&r.try_get::<String, _>("actions")?, "actions")?,
        },
        created_at: rfc3339(r.try_get("created_at")?),
        updated_at: rfc3339(updated_at),
        version: updated_at,
    })
}

fn json<T: Serialize>(v: &T) -> Result<String, sqlx::Error> {
    serde_json::to_string(v).map_err(|e| sqlx::Error::Encode(e.into()))
}

pub async fn create(
    db: &Db,
    workspace_id: &str,
    def: &FlowDefinition,
) -> Result<FlowRecord, sqlx::Error> {
    let id = new_id();
    let now = now_millis();
    sqlx::query(CREATE)
        .bind(&id)
        .bind(workspace_id)
        .bind(&def.name)
        .bind(i64::from(def.enabled))
        .bind(json(&def.trigger_events)?)
        .bind(def.condition_mode.as_str())
        .bind(json(&def.conditions)?)
        .bind(json(&def.actions)?)
        .bind(now)
        .bind(def.trigger_source.as_str())
        .bind(json(&def.trigger_sources)?)
        .execute(db.pool())
        .await?;
    get(db, workspace_id, &id)
        .await?
        .ok_or(sqlx::Error::RowNotFound)
}

/// Replaces a flow; `None` when the workspace has no flow with that id.
pub async fn update(
    db: &Db,
    workspace_id: &str,
    id: &str,
    def: &FlowDefinition,
) -> Result<Option<FlowRecord>, sqlx::Error> {
    let r = sqlx::query(UPDATE)
        .bind(&def.name)
        .bind(i64::from(def.enabled))
        .bind(json(&def.trigger_events)?)
        .bind(def.condition_mode.as_str())
        .bind(json(&def.conditions)?)
        .bind(json(&def.actions)?)
        .bind(now_millis())
        .bind(workspace_id)
        .bind(id)
        .bind(def.trigger_source.as_str())
        .bind(json(&def.trigger_sources)?)
        .execute(db.pool())
        .await?;
    if r.rows_affected() == 0 {
        return Ok(None);
    }
    get(db, workspace_id, id).await
}

pub async fn delete(db: &Db, workspace_id: &str, id: &str) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(DELETE)
        .bind(workspace_id)
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(r.rows_affected() > 0)
}

pub async fn get(db: &Db, workspace_id: &str, id: &str) -> Result<Option<FlowRecord>, sqlx::Error> {
    sqlx::query(GET)
        .bind(workspace_id)
        .bind(id)
        .fetch_optional(db.pool())
        .await?
        .map(|r| from_row(&r))
        .transpose()
}

pub async fn list(db: &Db, workspace_id: &str) -> Result<Vec<FlowRecord>, sqlx::Error> {
    let rows = sqlx::query(LIST)
        .bind(workspace_id)
        .fetch_all(db.pool())
        .await?;
    rows.iter().map(from_row).collect()
}

/// The enabled flows of many workspaces at once (fan-out), as `(workspace, flow)`.
pub async fn enabled_for(
    conn: &mut sqlx::AnyConnection,
    workspace_ids: &[&str],
) -> Result<Vec<(String, FlowRecord)>, sqlx::Error> {
    let rows = super::fetch_in(conn, ENABLED_MANY, workspace_ids).await?;
    rows.iter()
        .map(|r| Ok((r.try_get("workspace_id")?, from_row(r)?)))
        .collect()
}

/// Flows by id (any workspace), as `(workspace, flow)`: the executor checks each belongs to
/// its execution's workspace.
pub async fn by_ids(
    conn: &mut sqlx::AnyConnection,
    ids: &[&str],
) -> Result<Vec<(String, FlowRecord)>, sqlx::Error> {
    let rows = super::fetch_in(conn, BY_IDS, ids).await?;
    rows.iter()
        .map(|r| Ok((r.try_get("workspace_id")?, from_row(r)?)))
        .collect()
}

// Every statement this module issues, named for the SQL contract (see `store::contract`).
const CREATE: &str = "INSERT INTO flows (id, workspace_id, name, enabled, trigger_events, condition_mode, conditions, actions, created_at, updated_at, trigger_source, trigger_sources)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11)";
// A flow saved twice within one millisecond still gets a new version.
const UPDATE: &str = "UPDATE flows SET name = $1, enabled = $2, trigger_events = $3, condition_mode = $4, conditions = $5, actions = $6,
             updated_at = CASE WHEN $7 > updated_at THEN $7 ELSE updated_at + 1 END, trigger_source = $10, trigger_sources = $11
         WHERE workspace_id = $8 AND id = $9";
const DELETE: &str = "DELETE FROM flows WHERE workspace_id = $1 AND id = $2";
const GET: &str = "SELECT id, workspace_id, name, enabled, trigger_source, trigger_sources, trigger_events, condition_mode, conditions, actions, created_at, updated_at FROM flows WHERE workspace_id = $1 AND id = $2";
const LIST: &str = "SELECT id, workspace_id, name, enabled, trigger_source, trigger_sources, trigger_events, condition_mode, conditions, actions, created_at, updated_at FROM flows WHERE workspace_id = $1 ORDER BY created_at, id";
/// `{in}`: a list of workspace ids (see [`super::fetch_in`]).
pub(crate) const ENABLED_MANY: &str = "SELECT id, workspace_id, name, enabled, trigger_source, trigger_sources, trigger_events, condition_mode, conditions, actions, created_at, updated_at FROM flows WHERE workspace_id IN ({in}) AND enabled = 1 ORDER BY created_at, id";
/// `{in}`: a list of flow ids.
pub(crate) const BY_IDS: &str = "SELECT id, workspace_id, name, enabled, trigger_source, trigger_sources, trigger_events, condition_mode, conditions, actions, created_at, updated_at FROM flows WHERE id IN ({in})";

/// The statements of this module, for the SQL contract.
pub(crate) const STATEMENTS: &[(&str, &str)] = &[
    ("flows::create", CREATE),
    ("flows::update", UPDATE),
    ("flows::delete", DELETE),
    ("flows::get", GET),
    ("flows::list", LIST),
];
