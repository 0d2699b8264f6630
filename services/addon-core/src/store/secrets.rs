//! Custom webhook secrets: one HMAC-SHA256 key per workspace, encrypted at rest, created at
//! install and rotatable. After a rotation the previous secret stays valid for a grace period
//! so senders can switch without losing deliveries.

use sqlx::Row;

use super::Db;
use crate::time::now_millis;

/// The stored (encrypted) secrets of one workspace.
#[derive(Debug, Clone)]
pub struct StoredSecrets {
    pub secret_enc: String,
    /// The previous secret while it is still accepted.
    pub previous_enc: Option<String>,
    pub previous_valid_until: Option<i64>,
    pub created_at: i64,
    pub rotated_at: Option<i64>,
    /// Until when the old, body-only signatures are still accepted (a migration window).
    pub legacy_signatures_until: Option<i64>,
}

impl StoredSecrets {
    /// Whether body-only (legacy) signatures are accepted now.
    pub fn legacy_open(&self, now: i64) -> bool {
        self.legacy_signatures_until.is_some_and(|t| t > now)
    }
}

pub async fn get(db: &Db, workspace_id: &str) -> Result<Option<StoredSecrets>, sqlx::Error> {
    let Some(r) = sqlx::query(GET)
        .bind(workspace_id)
        .fetch_optional(db.pool())
        .await?
    else {
        return Ok(None);
    };
    let previous_valid_until: Option<i64> = r.try_get("previous_valid_until")?;
    let live = previous_valid_until.is_some_and(|t| t > now_millis());
    Ok(Some(StoredSecrets {
        secret_enc: r.try_get("secret_enc")?,
        previous_enc: if live {
            r.try_get("previous_secret_enc")?
        } else {
            None
        },
        previous_valid_until: if live { previous_valid_until } else { None },
        created_at: r.try_get("created_at")?,
        rotated_at: r.try_get("rotated_at")?,
        legacy_signatures_until: r.try_get("legacy_signatures_until")?,
    }))
}

/// Stores the first secret unless the workspace has one (a repeated INSTALLED keeps it);
/// `true` when created.
pub async fn create_if_missing(
    db: &Db,
    workspace_id: &str,
    secret_enc: &str,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(CREATE)
        .bind(workspace_id)
        .bind(secret_enc)
        .bind(now_millis())
        .execute(db.pool())
        .await?;
    Ok(r.rows_affected() > 0)
}

/// Replaces the secret; the current one stays valid until `previous_valid_until`.
pub async fn rotate(
    db: &Db,
    workspace_id: &str,
    secret_enc: &str,
    previous_valid_until: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(ROTATE)
        .bind(secret_enc)
        .bind(previous_valid_until)
        .bind(now_millis())
        .bind(workspace_id)
        .execute(db.pool())
        .await?;
    Ok(r.rows_affected() > 0)
}

/// Opens (until `until`, epoch millis) or closes (`None`) the window in which body-only
/// signatures are accepted.
pub async fn set_legacy_window(
    db: &Db,
    workspace_id: &str,
    until: Option<i64>,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(SET_LEGACY)
        .bind(until)
        .bind(workspace_id)
        .execute(db.pool())
        .await?;
    Ok(r.rows_affected() > 0)
}

/// Forgets the secrets (the add-on was deleted in the workspace).
pub async fn delete(db: &Db, workspace_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query(DELETE)
        .bind(workspace_id)
        .execute(db.pool())
        .await?;
    Ok(())
}

// Every statement this module issues, named for the SQL contract (see `store::contract`).
const GET: &str = "SELECT secret_enc, previous_secret_enc, previous_valid_until, created_at, rotated_at, legacy_signatures_until FROM custom_webhook_secrets WHERE workspace_id = $1";
const SET_LEGACY: &str =
    "UPDATE custom_webhook_secrets SET legacy_signatures_until = $1 WHERE workspace_id = $2";
const CREATE: &str =
    "INSERT INTO custom_webhook_secrets (workspace_id, secret_enc, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (workspace_id) DO NOTHING";
const ROTATE: &str = "UPDATE custom_webhook_secrets SET previous_secret_enc = secret_enc, previous_valid_until = $2, secret_enc = $1, rotated_at = $3
         WHERE workspace_id = $4";
const DELETE: &str = "DELETE FROM custom_webhook_secrets WHERE workspace_id = $1";

/// The statements of this module, for the SQL contract.
pub(crate) const STATEMENTS: &[(&str, &str)] = &[
    ("secrets::get", GET),
    ("secrets::create", CREATE),
    ("secrets::rotate", ROTATE),
    ("secrets::delete", DELETE),
    ("secrets::set_legacy", SET_LEGACY),
];
