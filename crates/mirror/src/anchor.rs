//! Anchoring the mirror's finalized block to the chain as the service's own RPC sees it. The
//! indexer's Postgres is run by an operator who could freeze it, roll it back to a block from
//! before a revocation, or point it at a fork; `eth_call` at the block hash the mirror names does
//! not notice, since the old block is still a real block. So before a block is decided at:
//!
//! - it must be on the RPC's canonical chain (the RPC's block at that number has that hash);
//! - it must not be ahead of the RPC's finalized block (the `finalized` tag, or head −
//!   confirmations on a development chain);
//! - its age is measured against the RPC's head timestamp (and the local clock, whichever is
//!   later: the host sets a TEE's clock, it cannot hold back the chain's), within a bound that
//!   has a hard maximum ([`MAX_STALENESS_BOUND`]);
//! - optionally a second, independent RPC (a *witness*) must have the same block at that number
//!   and count it as final too.
//!
//! A check that cannot be made (an RPC down) is "unavailable"; a check that fails is a refusal.
//! Both deny everything until a later check passes.

use std::time::Duration;

use alloy::{eips::BlockNumberOrTag, primitives::B256};
use covenant_chain::Finality;

use crate::{ChainReader, Error, Finalized, Result};

/// The largest staleness bound a service may set: a revocation reaches every decision at most
/// this long after its block, however the service is configured.
pub const MAX_STALENESS_BOUND: Duration = Duration::from_secs(3600);

/// What one RPC says about the chain now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Head {
    number: u64,
    timestamp: u64,
    final_number: u64,
}

/// Why an anchor check refused a block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The chain view is wrong: the reason says how.
    Refused(String),
    /// An RPC could not be read.
    Unavailable(String),
}

fn unavailable(e: &Error) -> Refusal {
    Refusal::Unavailable(e.to_string())
}

impl ChainReader {
    async fn head(&self, finality: Finality) -> Result<Head> {
        let head = self
            .header("eth_getBlockByNumber(latest)", BlockNumberOrTag::Latest)
            .await?
            .ok_or_else(|| Error::Rpc {
                call: "eth_getBlockByNumber(latest)",
                block: B256::ZERO,
                reason: "the node has no head block".into(),
            })?;
        let final_number = match finality {
            Finality::Confirmations(n) => head.number.saturating_sub(n),
            Finality::Tag => self
                .header(
                    "eth_getBlockByNumber(finalized)",
                    BlockNumberOrTag::Finalized,
                )
                .await?
                .map_or(0, |b| b.number),
        };
        Ok(Head {
            number: head.number,
            timestamp: head.timestamp,
            final_number,
        })
    }

    async fn hash_at(&self, number: u64) -> Result<Option<B256>> {
        Ok(self
            .header("eth_getBlockByNumber", BlockNumberOrTag::Number(number))
            .await?
            .filter(|b| b.number == number)
            .map(|b| b.hash))
    }

    /// `block` is final and canonical on this RPC: its head timestamp, or why not.
    async fn confirm(
        &self,
        who: &str,
        finality: Finality,
        block: &Finalized,
    ) -> std::result::Result<u64, Refusal> {
        let head = self.head(finality).await.map_err(|e| unavailable(&e))?;
        if block.number > head.final_number {
            return Err(Refusal::Refused(format!(
                "the mirror's finalized block {} is ahead of {who}'s finalized block {} (head {})",
                block.number, head.final_number, head.number
            )));
        }
        match self
            .hash_at(block.number)
            .await
            .map_err(|e| unavailable(&e))?
        {
            Some(hash) if hash == block.hash => Ok(head.timestamp),
            Some(hash) => Err(Refusal::Refused(format!(
                "the mirror's finalized block {} is {}, {who} has {hash} at that height",
                block.number, block.hash
            ))),
            None => Err(Refusal::Refused(format!(
                "{who} has no block {} (the mirror's finalized block)",
                block.number
            ))),
        }
    }
}

/// Checks `block` against the service's RPC and the witness: the RPC's head timestamp, or why
/// the block may not be decided at.
pub(crate) async fn check(
    rpc: &ChainReader,
    witness: Option<&ChainReader>,
    finality: Finality,
    block: &Finalized,
) -> std::result::Result<u64, Refusal> {
    let head_timestamp = rpc.confirm("this node's RPC", finality, block).await?;
    if let Some(witness) = witness {
        witness.confirm("the witness RPC", finality, block).await?;
    }
    Ok(head_timestamp)
}

/// Age of `block` against the later of the RPC's head timestamp and the local clock.
pub(crate) fn age(block: &Finalized, head_timestamp: u64, now_secs: u64) -> u64 {
    head_timestamp.max(now_secs).saturating_sub(block.timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_counts_from_the_later_of_the_chain_head_and_the_local_clock() {
        let block = Finalized {
            number: 10,
            hash: B256::ZERO,
            timestamp: 1_000,
        };
        // A host that sets the clock back does not make an old block young.
        assert_eq!(age(&block, 1_900, 500), 900);
        // An RPC whose head stopped does not either.
        assert_eq!(age(&block, 1_010, 2_000), 1_000);
        assert_eq!(age(&block, 900, 900), 0);
    }
}
