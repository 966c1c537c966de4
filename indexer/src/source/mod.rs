//! Where logs come from: the RPC client, adaptive `eth_getLogs` ranges (split on refusal), and
//! new-head notifications over WebSocket. Nothing here writes to the database.

mod heads;
mod ranges;
mod rpc;

use std::sync::Mutex;

use alloy::{primitives::Address, rpc::types::Log};

pub use heads::watch_heads;
pub use ranges::RangeSizer;
pub use rpc::{BlockRef, Rpc};

use crate::{Result, metrics::Metrics};

/// `eth_getLogs` over `from..=to` for `addresses`. A refused range is split in halves (and the
/// sizer told), down to single blocks; a single block that still fails is an error.
pub async fn fetch_logs(
    rpc: &Rpc,
    from: u64,
    to: u64,
    addresses: &[Address],
    sizer: &Mutex<RangeSizer>,
    metrics: &Metrics,
) -> Result<Vec<Log>> {
    let mut pending = vec![(from, to)];
    let mut out = Vec::new();
    // Depth-first, left half first, so the logs come out in chain order.
    while let Some((a, b)) = pending.pop() {
        match rpc.logs_in_range(a, b, addresses).await {
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
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}
