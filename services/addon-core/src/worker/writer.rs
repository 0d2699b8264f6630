//! Group commit for execution records.
//!
//! Every step an execution completes, and its outcome, must be recorded before it moves on.
//! Recording each alone costs a round trip and a commit per execution; instead, executions hand
//! their writes to writer tasks that take whatever is waiting when they become free and apply it
//! in multi-row statements of one transaction ([`executions::write_many`]). A lone write goes at once (no
//! waiting window); under load, batches form by themselves while the previous one commits.
//! Each write still applies only while its worker holds the lease, and each caller learns
//! whether its own did.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use crate::db::Db;
use crate::store::executions::{self, ExecutionWrite, WriteKind};

/// Most writes in one batch (statements of [`crate::store::MANY`] rows each, one commit).
const MAX_BATCH: usize = 256;
const QUEUE: usize = 4096;

/// A write could not be recorded (the database failed); the execution stays RUNNING under its
/// lease, and is resumed at its next step when the lease runs out.
#[derive(Debug, Clone, thiserror::Error)]
#[error("recording the execution failed: {0}")]
pub struct WriteError(pub String);

struct Job {
    write: ExecutionWrite,
    reply: oneshot::Sender<Result<bool, WriteError>>,
}

#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts `writers` tasks; they stop when every `Writer` handle is dropped and the queue is
    /// drained. `retried` is called with the soonest attempt a batch scheduled.
    pub fn start(
        db: Db,
        writers: usize,
        retried: impl Fn(i64) + Send + Sync + 'static,
    ) -> (Self, tokio::task::JoinSet<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let retried = Arc::new(retried);
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..writers.max(1) {
            set.spawn(writer(db.clone(), rx.clone(), retried.clone()));
        }
        (Self { tx }, set)
    }

    /// Records one write; `Ok(false)` when the worker no longer holds the lease.
    pub async fn write(&self, write: ExecutionWrite) -> Result<bool, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job { write, reply })
            .await
            .map_err(|_| WriteError("the execution writers have stopped".into()))?;
        answer
            .await
            .map_err(|_| WriteError("the execution writers have stopped".into()))?
    }
}

async fn writer(
    db: Db,
    rx: Arc<Mutex<mpsc::Receiver<Job>>>,
    retried: Arc<impl Fn(i64) + Send + Sync + 'static>,
) {
    loop {
        let batch = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            batch
        };
        let soonest_retry = batch
            .iter()
            .filter_map(|j| match j.write.kind {
                WriteKind::Retry { at } => Some(at),
                WriteKind::Release => Some(0),
                _ => None,
            })
            .min();
        let (writes, replies): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|j| (j.write, j.reply)).unzip();
        match executions::write_many(&db, &writes).await {
            Ok(written) => {
                for (w, reply) in writes.iter().zip(replies) {
                    let _ = reply.send(Ok(written.contains(&w.id)));
                }
            }
            Err(e) if writes.len() > 1 => {
                // One bad row must not fail the others: write them one by one.
                tracing::warn!(error = %e, size = writes.len(), "batched execution write failed; retrying one by one");
                for (w, reply) in writes.iter().zip(replies) {
                    let one = executions::write_many(&db, std::slice::from_ref(w))
                        .await
                        .map(|written| written.contains(&w.id))
                        .map_err(|e| WriteError(e.to_string()));
                    let _ = reply.send(one);
                }
            }
            Err(e) => {
                let e = WriteError(e.to_string());
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
        if let Some(at) = soonest_retry {
            retried(at);
        }
    }
}
