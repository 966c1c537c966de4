//! The audit writer: one task per node that numbers decisions, links each to the hash of the one
//! before it, and writes them to Postgres in groups (one transaction per group), answering each
//! caller only once its row is committed and recorded in the [`Ledger`]. A key is released only
//! after its grant is logged; when the database fails, callers get an error and the request
//! fails closed. Sequence numbers and the head hash come from the committed log, so a failed
//! group leaves no gap.

use std::sync::Arc;

use alloy::primitives::{Address, B256};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, watch};

use crate::{
    Error, Result,
    audit::{
        Draft, Entry,
        ledger::{Ledger, Link},
    },
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
    ledger: Arc<Ledger>,
}

impl AuditLog {
    /// What this process wrote and has not committed yet.
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

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

/// The last entry in Postgres: its sequence number and hash (0 and zero when none).
async fn head(pool: &PgPool, node: Address) -> Result<(u64, B256)> {
    let mut c = pool.acquire().await?;
    let last = store::audit::last_seq(&mut c, node).await?;
    if last == 0 {
        return Ok((0, B256::ZERO));
    }
    let entry = store::audit::entry_at(&mut c, node, last)
        .await?
        .ok_or(crate::error::AuditError::Unchained { seq: last })?;
    Ok((last, entry.hash()))
}

/// The ledger at start: the entries after the last batch recorded as committed.
async fn restore(pool: &PgPool, node: Address, last: u64) -> Result<Ledger> {
    let mut c = pool.acquire().await?;
    let through = store::audit::recorded_through(&mut c, node).await?;
    let pending = store::audit::entries(&mut c, node, through + 1, last).await?;
    Ok(Ledger::new(
        through,
        pending.iter().map(|e| {
            (
                e.seq,
                Link {
                    hash: e.hash(),
                    at_ms: e.draft.at_ms,
                },
            )
        }),
    ))
}

/// Starts the writer for `node`; it stops when every handle is dropped or on `shutdown`.
pub async fn spawn(
    pool: PgPool,
    node: Address,
    queue: usize,
    metrics: Metrics,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(AuditLog, tokio::task::JoinHandle<()>)> {
    let (mut last, mut prev) = head(&pool, node).await?;
    let ledger = Arc::new(restore(&pool, node, last).await?);
    metrics.audit_last_seq.set(last as i64);
    let writer_ledger = ledger.clone();
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
            let mut link = prev;
            let mut hashes = Vec::with_capacity(group.len());
            let entries: Vec<Entry> = group
                .iter()
                .enumerate()
                .map(|(i, (draft, _))| {
                    let e = Entry {
                        node,
                        seq: last + 1 + i as u64,
                        prev: link,
                        draft: draft.clone(),
                    };
                    link = e.hash();
                    hashes.push(link);
                    e
                })
                .collect();
            match write(&pool, &entries).await {
                Ok(()) => {
                    writer_ledger.written(entries.iter().zip(&hashes).map(|(e, hash)| {
                        (
                            e.seq,
                            Link {
                                hash: *hash,
                                at_ms: e.draft.at_ms,
                            },
                        )
                    }));
                    last += entries.len() as u64;
                    prev = link;
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
                    if let Ok(h) = head(&pool, node).await {
                        (last, prev) = h;
                    }
                    for (_, reply) in group {
                        let _ = reply.send(Err(e.to_string()));
                    }
                }
            }
        }
    });
    Ok((AuditLog { tx, ledger }, task))
}

/// Writes a group: one statement, so one implicit transaction and one round trip.
async fn write(pool: &PgPool, entries: &[Entry]) -> Result<()> {
    let mut c = pool.acquire().await?;
    store::audit::insert(&mut c, entries).await
}
