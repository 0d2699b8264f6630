//! Group commit for webhook ingestion.
//!
//! Every delivery must be committed before Clockify gets its 2xx. Committing each one alone
//! costs a round trip, a commit and the pool's release check per delivery; instead, writer tasks
//! take whatever deliveries are waiting when they become free and store them in one statement
//! ([`store::webhooks::ingest_many`]). A lone delivery is written at once (no waiting window);
//! under load, batches form by themselves while the previous one commits.
//!
//! A batch holds at most [`MAX_BATCH`] rows and [`MAX_BATCH_BYTES`] of bodies, which bounds the
//! memory one statement holds; its rows are one JSON parameter, so every size is one prepared
//! statement. sqlx 0.9.1
//! sets `TCP_NODELAY` again (0.9.0 did not, launchbadge/sqlx#4335: a statement that left the
//! socket in more than one write then waited ~40 ms on Nagle's algorithm and the server's
//! delayed ACK, which capped batches at 12 KiB), so a batch is no longer sized to one packet.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::db::Db;
use crate::store::webhooks::{self, IncomingWebhook, IngestOutcome};

/// Most deliveries in one statement.
pub const MAX_BATCH: usize = 64;
/// Most body bytes in one statement (a lone larger delivery still goes alone).
pub const MAX_BATCH_BYTES: usize = 512 * 1024;
/// Bytes a row adds besides its body (ids, keys, token hash, framing).
const ROW_OVERHEAD: usize = 300;
/// Deliveries waiting for a writer before callers wait for room.
const QUEUE: usize = 4096;

type Reply = oneshot::Sender<Result<IngestOutcome, IngestError>>;

struct Job {
    item: IncomingWebhook,
    token_hash: String,
    reply: Reply,
}

#[derive(Clone)]
pub struct Ingest {
    tx: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("queued", &(QUEUE - self.tx.capacity()))
            .finish()
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum IngestError {
    #[error("the ingest writers have stopped")]
    Stopped,
    /// The database cannot be reached or serve now (worth a retry: 503).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The delivery holds text the database cannot store (a NUL character: 400).
    #[error("the delivery holds a NUL character (\\u0000), which cannot be stored")]
    Unstorable,
    #[error("database: {0}")]
    Database(String),
}

impl From<sqlx::Error> for IngestError {
    fn from(e: sqlx::Error) -> Self {
        if crate::http::error::unstorable_input(&e) {
            Self::Unstorable
        } else if crate::http::error::database_unavailable(&e) {
            Self::Unavailable(e.to_string())
        } else {
            Self::Database(e.to_string())
        }
    }
}

impl Ingest {
    /// Starts `writers` writer tasks on `tracker`; they stop once `stop` is cancelled and the
    /// queue is drained.
    pub fn start(db: Db, writers: usize, stop: CancellationToken, tracker: &TaskTracker) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let queue = Arc::new(Mutex::new(Queue {
            rx,
            held: std::collections::VecDeque::new(),
        }));
        for _ in 0..writers.max(1) {
            tracker.spawn(writer(db.clone(), queue.clone(), stop.clone()));
        }
        Self { tx }
    }

    /// Stores one delivery; resolves once it is committed (or refused).
    pub async fn ingest(
        &self,
        item: IncomingWebhook,
        token_hash: String,
    ) -> Result<IngestOutcome, IngestError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job {
                item,
                token_hash,
                reply,
            })
            .await
            .map_err(|_| IngestError::Stopped)?;
        answer.await.map_err(|_| IngestError::Stopped)?
    }
}

/// The queue and the jobs a writer took from it but left for the next batch.
struct Queue {
    rx: mpsc::Receiver<Job>,
    held: std::collections::VecDeque<Job>,
}

async fn writer(db: Db, queue: Arc<Mutex<Queue>>, stop: CancellationToken) {
    loop {
        let batch = {
            let mut q = queue.lock().await;
            if q.held.is_empty() {
                let first = tokio::select! {
                    job = q.rx.recv() => job,
                    _ = stop.cancelled() => q.rx.try_recv().ok(),
                };
                let Some(first) = first else { return };
                q.held.push_back(first);
            }
            while q.held.len() < MAX_BATCH {
                match q.rx.try_recv() {
                    Ok(job) => q.held.push_back(job),
                    Err(_) => break,
                }
            }
            let take = batch_len(q.held.iter().map(|j| j.item.body.len()));
            q.held.drain(..take).collect::<Vec<_>>()
        };
        write(&db, batch).await;
    }
}

/// How many of the waiting jobs (by body size) go into the next statement: as many as fit in
/// [`MAX_BATCH_BYTES`], at least one.
fn batch_len(bodies: impl Iterator<Item = usize>) -> usize {
    let mut bytes = 0;
    let mut fit: usize = 0;
    for len in bodies.take(MAX_BATCH) {
        bytes += len + ROW_OVERHEAD;
        if fit > 0 && bytes > MAX_BATCH_BYTES {
            break;
        }
        fit += 1;
    }
    fit
}

async fn write(db: &Db, batch: Vec<Job>) {
    let (items, replies): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .map(|j| ((j.item, j.token_hash), j.reply))
        .unzip();
    let started = std::time::Instant::now();
    let result = webhooks::ingest_many(db, &items).await;
    tracing::debug!(
        size = items.len(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "ingest batch"
    );
    match result {
        Ok(outcomes) => {
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(e) if items.len() > 1 => {
            // One bad row must not fail the others: store them one by one.
            tracing::warn!(error = %e, size = items.len(), "batched ingest failed; retrying row by row");
            for ((item, token_hash), reply) in items.iter().zip(replies) {
                let _ = reply.send(
                    webhooks::ingest(db, item, token_hash)
                        .await
                        .map_err(IngestError::from),
                );
            }
        }
        Err(e) => {
            let e = IngestError::from(e);
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_take_what_fits_the_byte_budget() {
        assert_eq!(batch_len([100].into_iter()), 1);
        assert_eq!(batch_len([100; 3].into_iter()), 3);
        assert_eq!(batch_len([1200; 20].into_iter()), 20);
        assert_eq!(
            batch_len([2048; 100].into_iter()),
            64,
            "64 published samples fit in one statement"
        );
        assert_eq!(
            batch_len([16 * 1024; 64].into_iter()),
            31,
            "31 x 16 KiB fit 512 KiB, 32 do not"
        );
        assert_eq!(
            batch_len([5 * 1024 * 1024, 10].into_iter()),
            1,
            "a large delivery goes alone"
        );
    }
}
