//! The audit writer: one task per node that numbers decisions and writes them to Postgres in
//! groups (one transaction per group), answering each caller only once its row is committed. A
//! key is released only after its grant is logged; when the database fails, callers get an error
//! and the request fails closed. Sequence numbers come from the committed log, so a failed
//! group leaves no gap.

use alloy::primitives::Address;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, watch};

use crate::{
    Error, Result,
    audit::{Draft, Entry},
    metrics::Metrics,
    store,
};

/// The most entries written in one transaction.
const MAX_GROUP: usize = 512;
/// Reasons are truncated to this many bytes (they come partly from app contracts).
const MAX_REASON: usize = 512;

type Reply = oneshot::Sender<Result<u64, String>>;

/// A handle for logging decisions.
#[derive(Clone, Debug)]
pub struct AuditLog {
    tx: mpsc::Sender<(Draft, Reply)>,
}

impl AuditLog {
    /// Logs `draft` and returns its sequence number once committed.
    pub async fn append(&self, mut draft: Draft) -> Result<u64> {
        if draft.reason.len() > MAX_REASON {
            let mut cut = MAX_REASON;
            while !draft.reason.is_char_boundary(cut) {
                cut -= 1;
            }
            draft.reason.truncate(cut);
        }
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((draft, reply))
            .await
            .map_err(|_| Error::Shutdown)?;
        answer.await.map_err(|_| Error::Shutdown)?.map_err(|e| {
            Error::Db(sqlx::Error::Protocol(format!(
                "audit log write failed: {e}"
            )))
        })
    }
}

/// Starts the writer for `node`; it stops when every handle is dropped or on `shutdown`.
pub async fn spawn(
    pool: PgPool,
    node: Address,
    queue: usize,
    metrics: Metrics,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(AuditLog, tokio::task::JoinHandle<()>)> {
    let mut last = {
        let mut c = pool.acquire().await?;
        store::audit::last_seq(&mut c, node).await?
    };
    metrics.audit_last_seq.set(last as i64);
    let (tx, mut rx) = mpsc::channel::<(Draft, Reply)>(queue.max(1));
    let task = tokio::spawn(async move {
        loop {
            let first = tokio::select! {
                m = rx.recv() => match m { Some(m) => m, None => break },
                _ = shutdown.wait_for(|s| *s) => break,
            };
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(m) => group.push(m),
                    Err(_) => break,
                }
            }
            let entries: Vec<Entry> = group
                .iter()
                .enumerate()
                .map(|(i, (draft, _))| Entry {
                    node,
                    seq: last + 1 + i as u64,
                    draft: draft.clone(),
                })
                .collect();
            match write(&pool, &entries).await {
                Ok(()) => {
                    last += entries.len() as u64;
                    metrics.audit_last_seq.set(last as i64);
                    metrics.audit_entries.inc_by(entries.len() as u64);
                    for ((_, reply), e) in group.into_iter().zip(&entries) {
                        let _ = reply.send(Ok(e.seq));
                    }
                }
                Err(e) => {
                    metrics.audit_write_errors.inc();
                    tracing::error!(target: "kms::audit", error = %e, entries = entries.len(), "audit log write failed; the requests are refused");
                    // Re-read the committed position: a commit whose answer was lost may have
                    // landed.
                    if let Ok(mut c) = pool.acquire().await
                        && let Ok(seq) = store::audit::last_seq(&mut c, node).await
                    {
                        last = seq;
                    }
                    for (_, reply) in group {
                        let _ = reply.send(Err(e.to_string()));
                    }
                }
            }
        }
    });
    Ok((AuditLog { tx }, task))
}

/// Writes a group: one statement, so one implicit transaction and one round trip.
async fn write(pool: &PgPool, entries: &[Entry]) -> Result<()> {
    let mut c = pool.acquire().await?;
    store::audit::insert(&mut c, entries).await
}
