//! Commits the audit log on chain: every interval, the entries after the node's last on-chain
//! commit (`kmsNode(node).committedThrough`) up to a batch limit are Merkle-rooted and committed
//! with `commitGrantLog(from, to, root)`, signed by the node's key; the batch is recorded in
//! Postgres so proofs can be served. The chain's counter is the source of truth: a batch whose
//! transaction landed but whose row was lost is re-recorded from the recomputed root.
//!
//! Before committing, the batch is checked ([`chain::verify`]): its links, from the last
//! committed entry, and every entry against the hash this process wrote ([`Ledger`]). A batch
//! that fails is not committed: `kms_audit_chain_broken` turns 1 (an alert), and since nothing
//! more is committed, key release stops once the oldest pending entry passes its bound.

use std::{sync::Arc, time::Duration};

use alloy::primitives::{Address, B256};
use covenant_chain::kms_registry::KmsRegistry;
use sqlx::PgPool;
use tokio::sync::watch;

use crate::{
    Error, Result,
    audit::{chain, ledger::Ledger, merkle},
    chain::Sender,
    error::AuditError,
    metrics::Metrics,
    store::{self, audit::Commit},
};

async fn committed_through(sender: &Sender, registry: Address, node: Address) -> Result<u64> {
    let record = sender
        .read_latest(registry, &KmsRegistry::kmsNodeCall { node })
        .await?;
    if !record.active {
        return Err(Error::NodeInactive { node });
    }
    Ok(record.committedThrough)
}

/// Reads the batch after `through` and checks it against what this process wrote; returns its
/// range and leaves, or `None` when nothing is pending.
async fn checked_batch(
    pool: &PgPool,
    ledger: &Ledger,
    node: Address,
    through: u64,
    max_batch: u64,
) -> Result<Option<(u64, u64, Vec<merkle::Hash>)>> {
    let mut c = pool.acquire().await?;
    let last = store::audit::last_seq(&mut c, node).await?;
    let written = ledger.last_written();
    if last < written {
        // The newest rows are gone: nothing after `last` may be committed as if complete.
        return Err(AuditError::from(chain::Break::Missing {
            from: last + 1,
            to: written,
            found: 0,
        })
        .into());
    }
    if last <= through {
        return Ok(None);
    }
    let anchor = match (through, ledger.hash_of(through)) {
        (0, _) => B256::ZERO,
        (_, Some(hash)) => hash,
        // Committed by an earlier process of this node: the row is on chain under its root.
        (_, None) => store::audit::entry_at(&mut c, node, through)
            .await?
            .map(|e| e.hash())
            .ok_or(AuditError::from(chain::Break::Missing {
                from: through,
                to: through,
                found: 0,
            }))?,
    };
    let from = through + 1;
    let to = last.min(through + max_batch.max(1));
    let entries = store::audit::entries(&mut c, node, from, to).await?;
    drop(c);
    let hashes = chain::verify(from, to, anchor, &entries, &ledger.expected(from, to))
        .map_err(AuditError::from)?;
    Ok(Some((from, to, hashes.into_iter().map(|h| h.0).collect())))
}

/// Commits this node's audit log on chain.
#[derive(Debug)]
pub struct Committer {
    /// The KmsRegistry.
    pub registry: Address,
    /// Sends the node's transactions.
    pub sender: Sender,
    /// The audit database.
    pub pool: PgPool,
    /// What this process wrote.
    pub ledger: Arc<Ledger>,
    /// This node.
    pub node: Address,
    /// The most entries in one commit.
    pub max_batch: u64,
    /// Metrics handles.
    pub metrics: Metrics,
}

impl Committer {
    /// One round: commits what is pending. Returns the batch committed, if any.
    pub async fn commit_once(&self) -> Result<Option<Commit>> {
        // Our own bookkeeping, not a policy decision: the latest state of our own counter.
        let through = committed_through(&self.sender, self.registry, self.node).await?;
        self.metrics.audit_committed_seq.set(through as i64);
        self.ledger.committed(through);
        let checked =
            checked_batch(&self.pool, &self.ledger, self.node, through, self.max_batch).await;
        if let Err(crate::Error::Audit(AuditError::Tampered(b))) = &checked {
            self.metrics.audit_chain_broken.set(1);
            tracing::error!(target: "kms::audit", error = %b, "the audit log in Postgres is not the log this node wrote; nothing is committed until it is restored");
        } else if checked.is_ok() {
            self.metrics.audit_chain_broken.set(0);
        }
        let Some((from, to, leaves)) = checked? else {
            return Ok(None);
        };
        let root = B256::from(merkle::root(&leaves));
        let call = KmsRegistry::commitGrantLogCall {
            fromSeq: from,
            toSeq: to,
            merkleRoot: root,
        };
        let tx_hash = self.sender.send(self.registry, &call).await?;
        let commit = Commit {
            from_seq: from,
            to_seq: to,
            root,
            tx_hash,
        };
        let mut c = self.pool.acquire().await?;
        store::audit::insert_commit(&mut c, self.node, &commit).await?;
        self.ledger.committed(to);
        self.metrics.audit_committed_seq.set(to as i64);
        tracing::info!(target: "kms::audit", from, to, %root, %tx_hash, "grant log committed on chain");
        Ok(Some(commit))
    }

    /// Commits every `interval` until `shutdown`.
    pub async fn run(self, interval: Duration, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            if let Err(e) = self.commit_once().await {
                self.metrics.audit_commit_errors.inc();
                tracing::warn!(target: "kms::audit", error = %e, "grant-log commit failed; will retry");
            }
        }
    }
}
