//! Key rotation: re-encrypts every stored credential under the keyring's first key, in
//! batches, each batch one transaction (`clockify-addons rotate-key`).
//!
//! What it covers: installation tokens, custom webhook secrets (current and previous), and
//! flow header values (sealed ones re-encrypted, any still in clear from an earlier release
//! sealed). Each row is updated only if it still holds what was read (a concurrent write
//! wins and is left alone); a value no key of the ring opens is reported by table and row,
//! never printed, and the run goes on. Running it twice is harmless: current values are
//! skipped. Flow versions are not touched, so queued executions are not disturbed.

use sqlx::Row;

use super::Db;
use crate::crypto::TokenCipher;
use crate::flows::Action;
use crate::flows::sealed::SEALED;

/// What a rotation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RekeyReport {
    /// Stored values looked at.
    pub examined: u64,
    /// Values re-encrypted under the first key (or sealed for the first time).
    pub reencrypted: u64,
    /// Values no key of the ring opens: `table row: reason`.
    pub failed: Vec<String>,
}

/// Re-encrypts everything not yet under the ring's first key, `batch` rows per transaction.
pub async fn rotate(db: &Db, ring: &TokenCipher, batch: u32) -> Result<RekeyReport, sqlx::Error> {
    let batch = i64::from(batch.max(1));
    let mut report = RekeyReport::default();
    installations(db, ring, batch, &mut report).await?;
    secrets(db, ring, batch, &mut report).await?;
    flows(db, ring, batch, &mut report).await?;
    Ok(report)
}

/// Re-encrypts one value; `None` when it is current or cannot be opened (then reported).
fn renew(
    ring: &TokenCipher,
    ws: &str,
    stored: &str,
    row: &str,
    report: &mut RekeyReport,
) -> Option<String> {
    report.examined += 1;
    match ring.reencrypt(ws, stored) {
        Ok(Some(v)) => Some(v),
        Ok(None) => None,
        Err(e) => {
            report.failed.push(format!("{row}: {e}"));
            None
        }
    }
}

async fn installations(
    db: &Db,
    ring: &TokenCipher,
    batch: i64,
    report: &mut RekeyReport,
) -> Result<(), sqlx::Error> {
    let mut after = String::new();
    loop {
        let mut tx = db.pool().begin().await?;
        let rows = sqlx::query(INSTALLATIONS_PAGE)
            .bind(&after)
            .bind(batch)
            .fetch_all(&mut *tx)
            .await?;
        for r in &rows {
            let ws: String = r.try_get(0)?;
            let enc: String = r.try_get(1)?;
            if let Some(new) = renew(ring, &ws, &enc, &format!("installations {ws}"), report) {
                let done = sqlx::query(INSTALLATIONS_UPDATE)
                    .bind(&new)
                    .bind(&ws)
                    .bind(&enc)
                    .execute(&mut *tx)
                    .await?;
                report.reencrypted += done.rows_affected();
            }
            after = ws;
        }
        tx.commit().await?;
        if (rows.len() as i64) < batch {
            return Ok(());
        }
    }
}

async fn secrets(
    db: &Db,
    ring: &TokenCipher,
    batch: i64,
    report: &mut RekeyReport,
) -> Result<(), sqlx::Error> {
    let mut after = String::new();
    loop {
        let mut tx = db.pool().begin().await?;
        let rows = sqlx::query(SECRETS_PAGE)
            .bind(&after)
            .bind(batch)
            .fetch_all(&mut *tx)
            .await?;
        for r in &rows {
            let ws: String = r.try_get(0)?;
            let current: String = r.try_get(1)?;
            let previous: String = r.try_get(2)?;
            let row = format!("custom_webhook_secrets {ws}");
            let new_current = renew(ring, &ws, &current, &row, report);
            let new_previous = if previous.is_empty() {
                None
            } else {
                renew(ring, &ws, &previous, &row, report)
            };
            if new_current.is_some() || new_previous.is_some() {
                let done = sqlx::query(SECRETS_UPDATE)
                    .bind(new_current.as_deref().unwrap_or(&current))
                    .bind(
                        new_previous
                            .as_deref()
                            .or((!previous.is_empty()).then_some(previous.as_str())),
                    )
                    .bind(&ws)
                    .bind(&current)
                    .bind(&previous)
                    .execute(&mut *tx)
                    .await?;
                let n = u64::from(new_current.is_some()) + u64::from(new_previous.is_some());
                report.reencrypted += n * done.rows_affected();
            }
            after = ws;
        }
        tx.commit().await?;
        if (rows.len() as i64) < batch {
            return Ok(());
        }
    }
}

async fn flows(
    db: &Db,
    ring: &TokenCipher,
    batch: i64,
    report: &mut RekeyReport,
) -> Result<(), sqlx::Error> {
    let mut after = String::new();
    loop {
        let mut tx = db.pool().begin().await?;
        let rows = sqlx::query(FLOWS_PAGE)
            .bind(&after)
            .bind(batch)
            .fetch_all(&mut *tx)
            .await?;
        for r in &rows {
            let id: String = r.try_get(0)?;
            let ws: String = r.try_get(1)?;
            let text: String = r.try_get(2)?;
            after = id.clone();
            let Ok(mut actions) = serde_json::from_str::<Vec<Action>>(&text) else {
                report
                    .failed
                    .push(format!("flows {id}: actions are not readable JSON"));
                continue;
            };
            let row = format!("flows {id}");
            let mut changed = 0u64;
            for action in &mut actions {
                for value in action.headers.values_mut() {
                    let renewed = match value.strip_prefix(SEALED) {
                        Some(enc) => renew(ring, &ws, enc, &row, report),
                        None => {
                            // Written in clear by an earlier release: seal it now.
                            report.examined += 1;
                            match ring.encrypt(&ws, &secrecy::SecretString::from(value.clone())) {
                                Ok(v) => Some(v),
                                Err(e) => {
                                    report.failed.push(format!("{row}: {e}"));
                                    None
                                }
                            }
                        }
                    };
                    if let Some(enc) = renewed {
                        *value = format!("{SEALED}{enc}");
                        changed += 1;
                    }
                }
            }
            if changed > 0 {
                let new_text =
                    serde_json::to_string(&actions).map_err(|e| sqlx::Error::Encode(e.into()))?;
                let done = sqlx::query(FLOWS_UPDATE)
                    .bind(&new_text)
                    .bind(&id)
                    .bind(&text)
                    .execute(&mut *tx)
                    .await?;
                report.reencrypted += changed * done.rows_affected();
            }
        }
        tx.commit().await?;
        if (rows.len() as i64) < batch {
            return Ok(());
        }
    }
}

// Every statement this module issues, named for the SQL contract (see `store::contract`).
const INSTALLATIONS_PAGE: &str = "SELECT workspace_id, auth_token_enc FROM installations
         WHERE workspace_id > $1 AND auth_token_enc IS NOT NULL ORDER BY workspace_id LIMIT $2";
const INSTALLATIONS_UPDATE: &str =
    "UPDATE installations SET auth_token_enc = $1 WHERE workspace_id = $2 AND auth_token_enc = $3";
const SECRETS_PAGE: &str =
    "SELECT workspace_id, secret_enc, COALESCE(previous_secret_enc, '') FROM custom_webhook_secrets
         WHERE workspace_id > $1 ORDER BY workspace_id LIMIT $2";
const SECRETS_UPDATE: &str =
    "UPDATE custom_webhook_secrets SET secret_enc = $1, previous_secret_enc = $2
         WHERE workspace_id = $3 AND secret_enc = $4 AND COALESCE(previous_secret_enc, '') = $5";
const FLOWS_PAGE: &str =
    "SELECT id, workspace_id, actions FROM flows WHERE id > $1 ORDER BY id LIMIT $2";
const FLOWS_UPDATE: &str = "UPDATE flows SET actions = $1 WHERE id = $2 AND actions = $3";

/// The statements of this module, for the SQL contract.
pub(crate) const STATEMENTS: &[(&str, &str)] = &[
    ("rekey::installations_page", INSTALLATIONS_PAGE),
    ("rekey::installations_update", INSTALLATIONS_UPDATE),
    ("rekey::secrets_page", SECRETS_PAGE),
    ("rekey::secrets_update", SECRETS_UPDATE),
    ("rekey::flows_page", FLOWS_PAGE),
    ("rekey::flows_update", FLOWS_UPDATE),
];
