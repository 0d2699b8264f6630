//! Installations: one row per workspace, written by the lifecycle hooks.

use serde::Serialize;
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, json_col};
use crate::time::now_millis;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum InstallStatus {
    Active,
    Inactive,
    Deleted,
}

impl InstallStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Inactive => "INACTIVE",
            Self::Deleted => "DELETED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ACTIVE" => Some(Self::Active),
            "INACTIVE" => Some(Self::Inactive),
            "DELETED" => Some(Self::Deleted),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Installation {
    pub workspace_id: String,
    pub addon_id: String,
    pub api_url: String,
    pub as_user: Option<String>,
    pub addon_user_id: Option<String>,
    /// Ciphertext; see [`crate::crypto`].
    pub auth_token_enc: Option<String>,
    pub status: InstallStatus,
    /// Clockify's list of `{id, name, value}`.
    pub settings: Vec<Value>,
    pub installed_at: i64,
    pub updated_at: i64,
    /// Epoch millis of the last DELETED: tokens issued before it are refused.
    pub tokens_revoked_before: Option<i64>,
}

impl Installation {
    /// Whether a token issued at `iat` (epoch seconds) predates the last DELETED (by a whole
    /// second: `iat` has no finer grain). Tokens without `iat` are judged by the revocation
    /// list alone.
    pub fn revoked_at_issue(&self, iat: Option<i64>) -> bool {
        match (self.tokens_revoked_before, iat) {
            (Some(before), Some(iat)) => iat < before.div_euclid(1000),
            _ => false,
        }
    }

    /// The value of a setting by id.
    pub fn setting(&self, id: &str) -> Option<&Value> {
        self.settings
            .iter()
            .find(|s| s.get("id").and_then(Value::as_str) == Some(id))
            .and_then(|s| s.get("value"))
    }

    /// A whole-number setting within `min..=max` (numbers or numeric strings); `default` when
    /// absent, unreadable or out of range.
    pub fn number(&self, id: &str, default: u32, min: u32, max: u32) -> u32 {
        let n = match self.setting(id) {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        n.and_then(|n| u32::try_from(n).ok())
            .filter(|n| (min..=max).contains(n))
            .unwrap_or(default)
    }

    /// A boolean setting (`true`, `"true"`, `1`); `default` when absent or unreadable.
    pub fn flag(&self, id: &str, default: bool) -> bool {
        match self.setting(id) {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" | "on" => true,
                "false" | "no" | "0" | "off" => false,
                _ => default,
            },
            Some(Value::Number(n)) => n.as_i64().map(|n| n != 0).unwrap_or(default),
            _ => default,
        }
    }
}

fn from_row(r: &AnyRow) -> Result<Installation, sqlx::Error> {
    let status: String = r.try_get("status")?;
    let settings: String = r.try_get("settings")?;
    Ok(Installation {
        workspace_id: r.try_get("workspace_id")?,
        addon_id: r.try_get("addon_id")?,
        api_url: r.try_get("api_url")?,
        as_user: r.try_get("as_user")?,
        addon_user_id: r.try_get("addon_user_id")?,
        auth_token_enc: r.try_get("auth_token_enc")?,
        status: InstallStatus::parse(&status)
            .ok_or_else(|| sqlx::Error::Decode(format!("status {status:?}").into()))?,
        settings: json_col(&settings, "settings")?,
        installed_at: r.try_get("installed_at")?,
        updated_at: r.try_get("updated_at")?,
        tokens_revoked_before: r.try_get("tokens_revoked_before")?,
    })
}

/// A webhook Clockify registered for the installation; only the token's hash is kept.
#[derive(Debug, Clone)]
pub struct WebhookRegistration {
    pub token_hash: String,
    pub path: String,
    pub webhook_type: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewInstallation {
    pub workspace_id: String,
    pub addon_id: String,
    pub api_url: String,
    pub as_user: Option<String>,
    pub addon_user_id: Option<String>,
    pub auth_token_enc: String,
    /// SHA-256 of the installation token (recognised, and refused, as a lifecycle token).
    pub auth_token_hash: String,
    pub webhooks: Vec<WebhookRegistration>,
}

/// Stores an INSTALLED payload; a re-install replaces tokens and webhooks and keeps settings.
pub async fn save_installed(db: &Db, new: &NewInstallation) -> Result<(), sqlx::Error> {
    let now = now_millis();
    let mut tx = db.pool().begin().await?;
    sqlx::query(SAVE_INSTALLED_1)
        .bind(&new.workspace_id)
        .bind(&new.addon_id)
        .bind(&new.api_url)
        .bind(&new.as_user)
        .bind(&new.addon_user_id)
        .bind(&new.auth_token_enc)
        .bind(now)
        .bind(&new.auth_token_hash)
        .execute(&mut *tx)
        .await?;
    sqlx::query(SAVE_INSTALLED_2)
        .bind(&new.workspace_id)
        .execute(&mut *tx)
        .await?;
    for w in &new.webhooks {
        sqlx::query(SAVE_INSTALLED_3)
            .bind(&new.workspace_id)
            .bind(&w.token_hash)
            .bind(&w.path)
            .bind(&w.webhook_type)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

pub async fn get(db: &Db, workspace_id: &str) -> Result<Option<Installation>, sqlx::Error> {
    sqlx::query(GET)
        .bind(workspace_id)
        .fetch_optional(db.pool())
        .await?
        .map(|r| from_row(&r))
        .transpose()
}

/// The key ids the stored installation tokens are encrypted with (`v1` for values from
/// before key ids).
pub async fn key_ids_in_use(db: &Db) -> Result<Vec<String>, sqlx::Error> {
    let rows = sqlx::query(KEY_IDS).fetch_all(db.pool()).await?;
    let mut ids = Vec::new();
    for r in rows {
        let prefix: String = r.try_get(0)?;
        let id = match prefix.strip_prefix("v2.") {
            Some(id) => id.to_owned(),
            None => "v1".to_owned(),
        };
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// The installations of many workspaces at once.
pub async fn get_many(
    conn: &mut sqlx::AnyConnection,
    workspace_ids: &[&str],
) -> Result<Vec<Installation>, sqlx::Error> {
    let rows = super::fetch_in(conn, GET_MANY, workspace_ids).await?;
    rows.iter().map(from_row).collect()
}

/// Sets ACTIVE or INACTIVE on a live installation; false when there is none.
pub async fn set_status(
    db: &Db,
    workspace_id: &str,
    status: InstallStatus,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(SET_STATUS)
        .bind(status.as_str())
        .bind(now_millis())
        .bind(workspace_id)
        .execute(db.pool())
        .await?;
    Ok(r.rows_affected() > 0)
}

pub async fn set_settings(
    db: &Db,
    workspace_id: &str,
    settings: &[Value],
) -> Result<bool, sqlx::Error> {
    let text = serde_json::to_string(settings).map_err(|e| sqlx::Error::Encode(e.into()))?;
    let r = sqlx::query(SET_SETTINGS)
        .bind(text)
        .bind(now_millis())
        .bind(workspace_id)
        .execute(db.pool())
        .await?;
    Ok(r.rows_affected() > 0)
}

/// DELETED: forgets every token of the installation at once and revokes them for good: the
/// installation token, the webhook tokens and the lifecycle token that carried DELETED go on
/// the revocation list, and tokens issued before now are refused from here on.
pub async fn mark_deleted(
    db: &Db,
    workspace_id: &str,
    lifecycle_token_hash: &str,
) -> Result<bool, sqlx::Error> {
    let now = now_millis();
    let mut tx = db.pool().begin().await?;
    for sql in [REVOKE_INSTALLATION, REVOKE_WEBHOOKS] {
        sqlx::query(sql)
            .bind(workspace_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(REVOKE_ONE)
        .bind(lifecycle_token_hash)
        .bind(workspace_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    sqlx::query(MARK_REVOKED_BEFORE)
        .bind(now)
        .bind(workspace_id)
        .execute(&mut *tx)
        .await?;
    let r = sqlx::query(MARK_DELETED_1)
        .bind(now_millis())
        .bind(workspace_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(MARK_DELETED_2)
        .bind(workspace_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(MARK_DELETED_3)
        .bind(now_millis())
        .bind(r#"["the add-on was deleted from the workspace"]"#)
        .bind(workspace_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(r.rows_affected() > 0)
}

/// How a token presented on a lifecycle route stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleStanding {
    /// Neither revoked nor another kind of credential.
    Fresh,
    /// On the revocation list.
    Revoked,
    /// The workspace's installation token or one of its webhook tokens.
    Credential,
}

/// Whether a token (by hash) may act as a lifecycle token for the workspace.
pub async fn lifecycle_standing(
    db: &Db,
    workspace_id: &str,
    token_hash: &str,
) -> Result<LifecycleStanding, sqlx::Error> {
    let row = sqlx::query(LIFECYCLE_STANDING)
        .bind(token_hash)
        .bind(workspace_id)
        .fetch_one(db.pool())
        .await?;
    let revoked: i64 = row.try_get(0)?;
    let credential: i64 = row.try_get(1)?;
    Ok(if revoked > 0 {
        LifecycleStanding::Revoked
    } else if credential > 0 {
        LifecycleStanding::Credential
    } else {
        LifecycleStanding::Fresh
    })
}

/// Whether a token (by hash) was revoked by a DELETED.
pub async fn is_revoked(db: &Db, token_hash: &str) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query(IS_REVOKED)
        .bind(token_hash)
        .fetch_one(db.pool())
        .await?
        .try_get(0)?;
    Ok(n > 0)
}

/// Whether this webhook token hash was registered by the workspace's live installation.
pub async fn webhook_token_known(
    db: &Db,
    workspace_id: &str,
    token_hash: &str,
) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query(WEBHOOK_TOKEN_KNOWN)
        .bind(workspace_id)
        .bind(token_hash)
        .fetch_one(db.pool())
        .await?
        .try_get(0)?;
    Ok(n > 0)
}

// Every statement this module issues, named for the SQL contract (see `store::contract`).
const SAVE_INSTALLED_1: &str = "INSERT INTO installations (workspace_id, addon_id, api_url, as_user, addon_user_id, auth_token_enc, status, settings, installed_at, updated_at, auth_token_hash)
         VALUES ($1, $2, $3, $4, $5, $6, 'ACTIVE', '[]', $7, $7, $8)
         ON CONFLICT (workspace_id) DO UPDATE SET addon_id = excluded.addon_id, api_url = excluded.api_url,
             as_user = excluded.as_user, addon_user_id = excluded.addon_user_id, auth_token_enc = excluded.auth_token_enc,
             auth_token_hash = excluded.auth_token_hash,
             status = 'ACTIVE', installed_at = excluded.installed_at, updated_at = excluded.updated_at";
const SAVE_INSTALLED_2: &str = "DELETE FROM installation_webhooks WHERE workspace_id = $1";
const SAVE_INSTALLED_3: &str = "INSERT INTO installation_webhooks (workspace_id, token_hash, path, webhook_type) VALUES ($1, $2, $3, $4)
             ON CONFLICT (workspace_id, token_hash) DO NOTHING";
/// `{in}`: a list of workspace ids (see [`super::fetch_in`]).
pub(crate) const GET_MANY: &str = "SELECT workspace_id, addon_id, api_url, as_user, addon_user_id, auth_token_enc, status, settings, installed_at, updated_at, tokens_revoked_before FROM installations WHERE workspace_id IN ({in})";
const GET: &str = "SELECT workspace_id, addon_id, api_url, as_user, addon_user_id, auth_token_enc, status, settings, installed_at, updated_at, tokens_revoked_before FROM installations WHERE workspace_id = $1";
const SET_STATUS: &str = "UPDATE installations SET status = $1, updated_at = $2 WHERE workspace_id = $3 AND status <> 'DELETED'";
const SET_SETTINGS: &str = "UPDATE installations SET settings = $1, updated_at = $2 WHERE workspace_id = $3 AND status <> 'DELETED'";
const MARK_DELETED_1: &str = "UPDATE installations SET status = 'DELETED', auth_token_enc = NULL, auth_token_hash = NULL, updated_at = $1 WHERE workspace_id = $2";
const REVOKE_INSTALLATION: &str = "INSERT INTO revoked_tokens (token_hash, workspace_id, revoked_at)
         SELECT auth_token_hash, workspace_id, $2 FROM installations WHERE workspace_id = $1 AND auth_token_hash IS NOT NULL
         ON CONFLICT (token_hash) DO NOTHING";
const REVOKE_WEBHOOKS: &str = "INSERT INTO revoked_tokens (token_hash, workspace_id, revoked_at)
         SELECT token_hash, workspace_id, $2 FROM installation_webhooks WHERE workspace_id = $1
         ON CONFLICT (token_hash) DO NOTHING";
const REVOKE_ONE: &str =
    "INSERT INTO revoked_tokens (token_hash, workspace_id, revoked_at) VALUES ($1, $2, $3)
         ON CONFLICT (token_hash) DO NOTHING";
const MARK_REVOKED_BEFORE: &str =
    "UPDATE installations SET tokens_revoked_before = $1 WHERE workspace_id = $2";
const LIFECYCLE_STANDING: &str = "SELECT
             (SELECT COUNT(*) FROM revoked_tokens WHERE token_hash = $1),
             (SELECT COUNT(*) FROM installation_webhooks WHERE workspace_id = $2 AND token_hash = $1)
               + (SELECT COUNT(*) FROM installations WHERE workspace_id = $2 AND auth_token_hash = $1)";
const KEY_IDS: &str = "SELECT DISTINCT substr(auth_token_enc, 1, 11) FROM installations WHERE auth_token_enc IS NOT NULL";
const IS_REVOKED: &str = "SELECT COUNT(*) FROM revoked_tokens WHERE token_hash = $1";
const MARK_DELETED_2: &str = "DELETE FROM installation_webhooks WHERE workspace_id = $1";
const MARK_DELETED_3: &str = "UPDATE bootstrap_runs SET state = 'FAILED', finished_at = $1, errors = $2 WHERE workspace_id = $3 AND state IN ('PENDING', 'IN_PROGRESS')";
const WEBHOOK_TOKEN_KNOWN: &str = "SELECT COUNT(*) FROM installation_webhooks w JOIN installations i ON i.workspace_id = w.workspace_id
         WHERE w.workspace_id = $1 AND w.token_hash = $2 AND i.status <> 'DELETED'";

/// The statements of this module, for the SQL contract.
pub(crate) const STATEMENTS: &[(&str, &str)] = &[
    ("installations::save_installed_1", SAVE_INSTALLED_1),
    ("installations::save_installed_2", SAVE_INSTALLED_2),
    ("installations::save_installed_3", SAVE_INSTALLED_3),
    ("installations::get", GET),
    ("installations::set_status", SET_STATUS),
    ("installations::set_settings", SET_SETTINGS),
    ("installations::mark_deleted_1", MARK_DELETED_1),
    ("installations::revoke_installation", REVOKE_INSTALLATION),
    ("installations::revoke_webhooks", REVOKE_WEBHOOKS),
    ("installations::revoke_one", REVOKE_ONE),
    ("installations::mark_revoked_before", MARK_REVOKED_BEFORE),
    ("installations::lifecycle_standing", LIFECYCLE_STANDING),
    ("installations::is_revoked", IS_REVOKED),
    ("installations::key_ids", KEY_IDS),
    ("installations::mark_deleted_2", MARK_DELETED_2),
    ("installations::mark_deleted_3", MARK_DELETED_3),
    ("installations::webhook_token_known", WEBHOOK_TOKEN_KNOWN),
];
