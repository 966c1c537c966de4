//! Where logs come from: the RPC client, adaptive `eth_getLogs` ranges (split on refusal), and
//! new-head notifications over WebSocket. Nothing here writes to the database.

mod heads;
mod ranges;
mod rpc;

use std::sync::Mutex;

use alloy::{
    primitives::{Address, B256},
    rpc::types::Log,
};

pub use heads::watch_heads;
pub use ranges::RangeSizer;
pub use rpc::{BlockRef, Rpc};

use crate::{Result, metrics::Metrics};

/// What the mirror fetches a range with: every log of some addresses, and every log whose first
/// topic is one of some event signatures, whoever emitted it.
#[derive(Clone, Debug, Default)]
pub struct LogFilter {
    /// Every log of these.
    pub addresses: Vec<Address>,
    /// Any log whose first topic is one of these.
    pub topics: Vec<B256>,
}

/// One `eth_getLogs` query of a [`LogFilter`] (the two parts cannot be one query: a node ANDs
/// an address list with a topic list).
#[derive(Clone, Debug)]
pub enum LogQuery {
    /// Every log of these addresses.
    Addresses(Vec<Address>),
    /// Every log whose first topic is one of these.
    Topics(Vec<B256>),
}

/// The logs of `from..=to` that `filter` selects, in chain order, each once. Each part is one
/// `eth_getLogs` query; a refused range is split in halves (and the sizer told), down to single
/// blocks; a single block that still fails is an error.
pub async fn fetch_logs(
    rpc: &Rpc,
    from: u64,
    to: u64,
    filter: &LogFilter,
    sizer: &Mutex<RangeSizer>,
    metrics: &Metrics,
) -> Result<Vec<Log>> {
    let mut queries = Vec::with_capacity(2);
    if !filter.addresses.is_empty() {
        queries.push(LogQuery::Addresses(filter.addresses.clone()));
    }
    if !filter.topics.is_empty() {
        queries.push(LogQuery::Topics(filter.topics.clone()));
    }
    let mut out = Vec::new();
    for query in &queries {
        out.extend(fetch_query(rpc, from, to, query, sizer, metrics).await?);
    }
    if queries.len() > 1 {
        out.sort_by_key(|l| (l.block_number, l.log_index));
        out.dedup_by_key(|l| (l.block_number, l.log_index));
    }
    Ok(out)
}

async fn fetch_query(
    rpc: &Rpc,
    from: u64,
    to: u64,
    query: &LogQuery,
    sizer: &Mutex<RangeSizer>,
    metrics: &Metrics,
) -> Result<Vec<Log>> {
    let mut pending = vec![(from, to)];
    let mut out = Vec::new();
    // Depth-first, left half first, so the logs come out in chain order.
    while let Some((a, b)) = pending.pop() {
        match rpc.logs_in_range(a, b, query).await {
            Ok(logs) => {
                if let Ok(mut s) = sizer.lock() {
                    s.record(b - a + 1, logs.len() as u64);
                }
                out.extend(logs);
            }
            Err(e @ crate::Error::RangeRefused { .. }) if b > a => {
                metrics.rpc_errors.inc();
                tracing::debug!(target: "indexer::source", from = a, to = b, error = %e, "range refused, splitting");
                if let Ok(mut s) = sizer.lock() {
                    s.refused(b - a + 1);
                }
                let mid = a + (b - a) / 2;
                pending.push((mid + 1, b));
                pending.push((a, mid));
            }
            // Anyone can emit logs with the App events' signatures (they include OpenZeppelin's
            // generic ones), so a node may refuse even one block's topic query: read that block
            // whole, by hash, as the live path does, and keep the matching logs.
            Err(e @ crate::Error::RangeRefused { .. }) => {
                let LogQuery::Topics(topics) = query else {
                    return Err(e);
                };
                metrics.rpc_errors.inc();
                let block = rpc.require_block(a).await?;
                tracing::debug!(target: "indexer::source", block = a, "topic query refused for one block, reading the block whole");
                let logs = rpc.logs_at(a, block.hash).await?;
                out.extend(
                    logs.into_iter()
                        .filter(|l| l.topics().first().is_some_and(|t| topics.contains(t))),
                );
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}
