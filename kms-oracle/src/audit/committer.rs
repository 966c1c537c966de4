//! Commits the audit log on chain: every interval, the entries after the node's last on-chain
//! commit (`kmsNode(node).committedThrough`) up to a batch limit are Merkle-rooted and committed
//! with `commitGrantLog(from, to, root)`, signed by the node's key; the batch is recorded in
//! Postgres so proofs can be served. The chain's counter is the source of truth: a batch whose
//! transaction landed but whose row was lost is re-recorded from the recomputed root.

use std::time::Duration;

use alloy::primitives::{Address, B256};
use covenant_chain::kms_registry::KmsRegistry;
use sqlx::PgPool;
use tokio::sync::watch;

use crate::{
    Error, Result,
    audit::merkle,
    chain::Sender,
    metrics::Metrics,
    store::{self, audit::Commit},
};

/// The committer's settings.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// How often to commit.
    pub interval: Duration,
    /// The most entries in one commit.
    pub max_batch: u64,
}

async fn committed_through(sender: &Sender, registry: Address, node: Address) -> Result<u64> {
    let record = sender
        .read_latest(registry, &KmsRegistry::kmsNodeCall { node })
        .await?;
    if !record.active {
        return Err(Error::NodeInactive { node });
    }
    Ok(record.committedThrough)
}

/// One round: commits what is pending. Returns the batch committed, if any.
pub async fn commit_once(
    registry: Address,
    sender: &Sender,
    pool: &PgPool,
    node: Address,
    max_batch: u64,
    metrics: &Metrics,
) -> Result<Option<Commit>> {
    // Our own bookkeeping, not a policy decision: the latest state of our own counter.
    let through = committed_through(sender, registry, node).await?;
    metrics.audit_committed_seq.set(through as i64);
    let mut c = pool.acquire().await?;
    let last = store::audit::last_seq(&mut c, node).await?;
    if last <= through {
        return Ok(None);
    }
    let from = through + 1;
    let to = last.min(through + max_batch.max(1));
    let entries = store::audit::entries(&mut c, node, from, to).await?;
    if entries.len() as u64 != to - from + 1 {
        return Err(crate::error::AuditError::Gap {
            from,
            to,
            rows: entries.len(),
        }
        .into());
    }
    drop(c);
    let leaves: Vec<merkle::Hash> = entries.iter().map(|e| e.leaf_hash()).collect();
    let root = B256::from(merkle::root(&leaves));
    let call = KmsRegistry::commitGrantLogCall {
        fromSeq: from,
        toSeq: to,
        merkleRoot: root,
    };
    let tx_hash = sender.send(registry, &call).await?;
    let commit = Commit {
        from_seq: from,
        to_seq: to,
        root,
        tx_hash,
    };
    let mut c = pool.acquire().await?;
    store::audit::insert_commit(&mut c, node, &commit).await?;
    metrics.audit_committed_seq.set(to as i64);
    tracing::info!(target: "kms::audit", from, to, %root, %tx_hash, "grant log committed on chain");
    Ok(Some(commit))
}

/// Commits every `settings.interval` until `shutdown`.
pub async fn run(
    registry: Address,
    sender: Sender,
    pool: PgPool,
    node: Address,
    settings: Settings,
    metrics: Metrics,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(settings.interval) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        if let Err(e) =
            commit_once(registry, &sender, &pool, node, settings.max_batch, &metrics).await
        {
            metrics.audit_commit_errors.inc();
            tracing::warn!(target: "kms::audit", error = %e, "grant-log commit failed; will retry");
        }
    }
}
