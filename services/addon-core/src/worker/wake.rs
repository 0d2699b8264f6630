//! Waking executors on work, on every replica.
//!
//! On PostgreSQL each process LISTENs on its add-on's channel. A process announces work the
//! others may take, executions its fan-out queued but had no free slot for and retries it
//! scheduled, with a NOTIFY; every listening executor then claims at once (claims skip locked
//! rows, so replicas never take the same execution) or re-reads when the next retry is due.
//! Announcements are coalesced: at most one NOTIFY per [`COALESCE`] per process, however much
//! work arrives. The executor's poll stays as a safety net (a lost connection, SQLite).

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::Notify;

use crate::app::AppState;
use crate::db::Backend;

/// The shortest time between two announcements of one process.
const COALESCE: Duration = Duration::from_millis(5);
/// Wait before reconnecting a listener whose connection failed.
const RECONNECT: Duration = Duration::from_secs(2);

/// The NOTIFY channel of an add-on (one per add-on: several add-ons may share a server).
pub fn channel(slug: &str) -> String {
    format!(
        "clockify_addons_{}",
        slug.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    )
}

/// Asks the announcer to tell the other replicas that work is waiting.
#[derive(Clone, Default)]
pub struct Announce(Arc<Notify>);

impl Announce {
    pub fn work(&self) {
        self.0.notify_one();
    }
}

const NOTIFY: &str = "SELECT COUNT(*) FROM (SELECT pg_notify($1, $2)) AS sent";

/// Sends coalesced announcements until shutdown (PostgreSQL only).
pub async fn announcer(state: AppState, announce: Announce) {
    if state.db.backend() != Backend::Postgres {
        return;
    }
    let channel = channel(state.def.slug);
    loop {
        tokio::select! {
            _ = announce.0.notified() => {}
            _ = state.shutdown.cancelled() => return,
        }
        if let Err(e) = sqlx::query(NOTIFY)
            .bind(&channel)
            .bind(&state.instance_id)
            .execute(state.db.pool())
            .await
        {
            tracing::warn!(error = %e, "cannot announce flow work to the other replicas");
        }
        tokio::time::sleep(COALESCE).await;
    }
}

/// Listens for other replicas' announcements and wakes this executor (PostgreSQL only).
pub async fn listener(state: AppState) {
    if state.db.backend() != Backend::Postgres {
        return;
    }
    let channel = channel(state.def.slug);
    loop {
        let mut listener = match connect(&state, &channel).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for flow work; polling until it can");
                tokio::select! {
                    _ = tokio::time::sleep(RECONNECT) => continue,
                    _ = state.shutdown.cancelled() => return,
                }
            }
        };
        // Work announced while not listening was missed: look once.
        state.execution_work.notify_one();
        loop {
            let next = tokio::select! {
                n = listener.try_recv() => n,
                _ = state.shutdown.cancelled() => return,
            };
            match next {
                Ok(Some(n)) if n.payload() == state.instance_id => {}
                Ok(Some(_)) => state.execution_work.notify_one(),
                // The connection was lost; the next call reconnects. Look once for what was missed.
                Ok(None) => state.execution_work.notify_one(),
                Err(e) => {
                    tracing::warn!(error = %e, "flow work listener failed; reconnecting");
                    break;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(RECONNECT) => {}
            _ = state.shutdown.cancelled() => return,
        }
    }
}

async fn connect(state: &AppState, channel: &str) -> Result<PgListener, sqlx::Error> {
    let mut l = PgListener::connect(state.config.database_url()).await?;
    l.listen(channel).await?;
    Ok(l)
}

/// The announcement statement, for the SQL contract (PostgreSQL only).
pub(crate) const STATEMENT: (&str, &str) = ("worker::announce", NOTIFY);
