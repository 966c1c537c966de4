//! The gateway's Prometheus metrics (`/metrics`).

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Metric handles.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Registrations accepted.
    pub registrations: IntCounter,
    /// Registrations refused.
    pub registrations_refused: IntCounter,
    /// Instances evicted because the chain no longer allows them.
    pub evictions: IntCounter,
    /// Instances routed now.
    pub routed_instances: IntGauge,
    /// The finalized block the routing table was decided at.
    pub decided_block: IntGauge,
    /// Mirror / `eth_call` disagreements (always denied).
    pub disagreements: IntCounter,
    /// The policy view's finalized block.
    pub finalized_block: IntGauge,
    /// Its timestamp.
    pub finalized_timestamp_seconds: IntGauge,
    /// Boots per batched app check of the policy view.
    pub app_check_batch_size: Histogram,
    /// Chain reads, by function.
    pub chain_reads: IntCounterVec,
    /// Certificates installed, by where they came from: `ordered` (this node's ACME order),
    /// `loaded` (another node's, from the database), `failed` (neither).
    pub certificates: IntCounterVec,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let counter = |name: &str, help: &str| -> prometheus::Result<IntCounter> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let gauge = |name: &str, help: &str| -> prometheus::Result<IntGauge> {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let chain_reads = IntCounterVec::new(
            Opts::new(
                "covenant_gateway_chain_reads_total",
                "eth_call reads pinned to a finalized block, by function",
            ),
            &["function"],
        )?;
        registry.register(Box::new(chain_reads.clone()))?;
        let certificates = IntCounterVec::new(
            Opts::new(
                "covenant_gateway_certificates_total",
                "ACME certificates installed, by source: ordered, loaded (from the database), failed",
            ),
            &["source"],
        )?;
        registry.register(Box::new(certificates.clone()))?;
        let app_check_batch_size = Histogram::with_opts(
            HistogramOpts::new(
                "covenant_gateway_app_check_batch_size",
                "Boots per batched app check of the policy view",
            )
            .buckets(covenant_mirror::APP_CHECK_BATCH_BUCKETS.to_vec()),
        )?;
        registry.register(Box::new(app_check_batch_size.clone()))?;
        Ok(Self {
            app_check_batch_size,
            chain_reads,
            certificates,
            registrations: counter(
                "covenant_gateway_registrations_total",
                "Instance registrations accepted",
            )?,
            registrations_refused: counter(
                "covenant_gateway_registrations_refused_total",
                "Instance registrations refused",
            )?,
            evictions: counter(
                "covenant_gateway_evictions_total",
                "Instances evicted because the chain no longer allows them",
            )?,
            routed_instances: gauge("covenant_gateway_routed_instances", "Instances routed now")?,
            decided_block: gauge(
                "covenant_gateway_decided_block",
                "The finalized block the routing table was decided at",
            )?,
            disagreements: counter(
                "covenant_gateway_view_disagreements_total",
                "Questions where the mirror and eth_call disagreed (denied)",
            )?,
            finalized_block: gauge(
                "covenant_gateway_finalized_block",
                "The policy view's finalized block",
            )?,
            finalized_timestamp_seconds: gauge(
                "covenant_gateway_finalized_timestamp_seconds",
                "The policy view's finalized block's timestamp",
            )?,
        })
    }

    /// The handles the policy view updates.
    pub fn view(&self) -> covenant_mirror::ViewMetrics {
        covenant_mirror::ViewMetrics {
            disagreements: self.disagreements.clone(),
            finalized_block: self.finalized_block.clone(),
            finalized_timestamp_seconds: self.finalized_timestamp_seconds.clone(),
            app_check_batch_size: self.app_check_batch_size.clone(),
        }
    }
}
