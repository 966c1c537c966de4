//! The audit writer: one task per node that numbers decisions, links each to the hash of the one
//! before it, and writes them to Postgres in groups (one transaction per group), answering each
//! caller only once its row is committed and recorded in the [`Ledger`]. A key is released only
//! after its grant is logged; when the database fails, callers get an error and the request
//! fails closed. Sequence numbers and the head hash come from the committed log, so a failed
//! group leaves no gap.

use std::sync::Arc;

use alloy::primitives::{Address, B256};
use sqlx::{PgPool, Postgres, pool::PoolConnection};
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
        let mut held = None;
        loop {
            let first = tokio::select! {
                m = rx.recv() => match m { Some(m) => m, None => break },
                _ = shutdown.wait_for(|s| *s) => break,
            };
            let mut group = vec![first];
            drain(&mut rx, &mut group);
            // Group commit without a timer: step aside while other tasks are ready to run, and
            // take what they log meanwhile into this commit; stop at the first turn that brings
            // nothing. An idle runtime commits at once, a busy one in fewer, larger groups.
            while group.len() < MAX_GROUP {
                let before = group.len();
                tokio::task::yield_now().await;
                drain(&mut rx, &mut group);
                if group.len() == before {
                    break;
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
            match write(&pool, &mut held, &entries).await {
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
                    metrics.audit_group_size.observe(entries.len() as f64);
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

/// Moves what is queued into `group`, up to [`MAX_GROUP`].
fn drain(rx: &mut mpsc::Receiver<(Draft, Reply)>, group: &mut Vec<(Draft, Reply)>) {
    while group.len() < MAX_GROUP {
        match rx.try_recv() {
            Ok(m) => group.push(m),
            Err(_) => break,
        }
    }
}

/// Writes a group: one statement, so one implicit transaction and one round trip, on the
/// writer's own connection `held`, kept from group to group (no pool hand-off and no liveness
/// round trip per commit). A connection that fails is dropped. When it had served before (it
/// may have died with a database restart), the group is tried once more on a fresh one: safe,
/// because the rows' sequence numbers are fixed, so a first attempt that did commit turns the
/// second into a key conflict, never into a duplicate.
async fn write(
    pool: &PgPool,
    held: &mut Option<PoolConnection<Postgres>>,
    entries: &[Entry],
) -> Result<()> {
    let reused = held.is_some();
    let c = match held {
        Some(c) => c,
        None => held.insert(pool.acquire().await?),
    };
    let Err(e) = store::audit::insert(c, entries).await else {
        return Ok(());
    };
    *held = None;
    if !reused {
        return Err(e);
    }
    tracing::warn!(target: "kms::audit", error = %e, "audit log connection failed; retrying on a fresh one");
    let c = held.insert(pool.acquire().await?);
    let result = store::audit::insert(c, entries).await;
    if result.is_err() {
        *held = None;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Action;

    /// A writer with a queue of `queue` entries on a fresh audit database, and its metrics.
    async fn writer(
        queue: usize,
    ) -> (
        AuditLog,
        Metrics,
        covenant_testkit::postgres::TestDatabase,
        watch::Sender<bool>,
    ) {
        let db = covenant_testkit::postgres::shared_cluster()
            .unwrap()
            .try_create_database()
            .unwrap();
        let pool = PgPool::connect(db.url()).await.unwrap();
        store::migrate(&pool).await.unwrap();
        let metrics = Metrics::new(&prometheus::Registry::new()).unwrap();
        let (stop, shutdown) = watch::channel(false);
        let node = Address::repeat_byte(7);
        let (log, _task) = spawn(pool, node, queue, metrics.clone(), shutdown)
            .await
            .unwrap();
        (log, metrics, db, stop)
    }

    fn draft(reason: &str) -> Draft {
        Draft::refusal(Action::Keys, 1, reason)
    }

    /// After taking an entry the writer steps aside before committing, and an entry logged by a
    /// task that became ready meanwhile joins the same commit (one transaction, one durable
    /// flush). The schedule is fixed on this single-threaded runtime with a queue of one: `a`
    /// fills the queue, `b` waits for room; the writer takes `a`'s entry, which wakes `b`, and
    /// `b` logs while the writer is aside. A writer that committed at once would write two
    /// groups.
    #[tokio::test]
    async fn an_entry_logged_while_the_writer_steps_aside_joins_its_commit() {
        let (log, metrics, _db, _stop) = writer(1).await;
        let (la, lb) = (log.clone(), log.clone());
        let a = tokio::spawn(async move { la.append(draft("a")).await.unwrap() });
        let b = tokio::spawn(async move { lb.append(draft("b")).await.unwrap() });
        assert_eq!((a.await.unwrap(), b.await.unwrap()), (1, 2));
        let groups = &metrics.audit_group_size;
        assert_eq!(
            (groups.get_sample_count(), groups.get_sample_sum()),
            (1, 2.0)
        );

        // Alone, an entry is committed in a group of its own.
        assert_eq!(log.append(draft("c")).await.unwrap(), 3);
        assert_eq!(
            (groups.get_sample_count(), groups.get_sample_sum()),
            (2, 3.0)
        );
    }
}
