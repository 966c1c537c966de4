//! The indexer's Prometheus metrics (catalogue in docs/metrics.md). The binary registers them
//! with the `covenant_` prefix.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Registry};

/// Handles to every metric the indexer updates.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// The chain's head block number as last seen.
    pub head_block: IntGauge,
    /// The last block whose logs are in the mirror.
    pub indexed_block: IntGauge,
    /// The mirror's finalized block (what readers see).
    pub finalized_block: IntGauge,
    /// Blocks between the chain's head and the mirror's finalized block.
    pub lag_blocks: IntGauge,
    /// Reorgs handled.
    pub reorgs: IntCounter,
    /// Depth of each reorg handled, in blocks.
    pub reorg_depth: Histogram,
    /// Logs of mirrored contracts applied.
    pub events: IntCounter,
    /// Failed RPC calls (each retry counts).
    pub rpc_errors: IntCounter,
    /// Failed database transactions.
    pub db_errors: IntCounter,
    /// 1 while the new-heads WebSocket subscription is up.
    pub ws_connected: IntGauge,
    /// 1 while the sync loop's most recent step succeeded.
    pub healthy: IntGauge,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let gauge = |name: &str, help: &str| -> prometheus::Result<IntGauge> {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let counter = |name: &str, help: &str| -> prometheus::Result<IntCounter> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let reorg_depth = Histogram::with_opts(
            HistogramOpts::new(
                "indexer_reorg_depth_blocks",
                "Depth of each reorg handled, in blocks.",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]),
        )?;
        registry.register(Box::new(reorg_depth.clone()))?;
        Ok(Self {
            head_block: gauge(
                "indexer_head_block",
                "The chain's head block number as last seen.",
            )?,
            indexed_block: gauge(
                "indexer_indexed_block",
                "The last block whose logs are in the mirror.",
            )?,
            finalized_block: gauge(
                "indexer_finalized_block",
                "The mirror's finalized block: what the API and change feed serve.",
            )?,
            lag_blocks: gauge(
                "indexer_lag_blocks",
                "Blocks between the chain's head and the mirror's finalized block.",
            )?,
            reorgs: counter("indexer_reorgs_total", "Reorgs handled.")?,
            reorg_depth,
            events: counter(
                "indexer_events_total",
                "Logs of mirrored contracts applied.",
            )?,
            rpc_errors: counter(
                "indexer_rpc_errors_total",
                "Failed RPC calls, each retry counted.",
            )?,
            db_errors: counter("indexer_db_errors_total", "Failed database transactions.")?,
            ws_connected: gauge(
                "indexer_ws_connected",
                "1 while the new-heads WebSocket subscription is up.",
            )?,
            healthy: gauge(
                "indexer_healthy",
                "1 while the sync loop's most recent step succeeded.",
            )?,
        })
    }

    /// Metrics registered in a private registry (tests and tools that do not export them).
    pub fn unregistered() -> Self {
        // Registration into a fresh registry cannot collide.
        match Self::new(&Registry::new()) {
            Ok(m) => m,
            Err(e) => unreachable!("fresh registry refused a metric: {e}"),
        }
    }
}
