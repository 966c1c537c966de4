//! The kms-oracle's Prometheus metrics (catalogue in docs/metrics.md). The binary registers them
//! with the `covenant_` prefix. Labels are bounded: action, outcome and stage, never an app,
//! instance or address.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Handles to every metric the kms-oracle updates.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Decisions by action (`keys`, `certificate`, `replicate`) and outcome
    /// (`granted`, `denied`).
    pub decisions: IntCounterVec,
    /// Refusals by the stage that refused: `tls`, `request`, `evidence`, `chain_view`, `node`,
    /// `policy`, `disagreement`, `unavailable`.
    pub refusals: IntCounterVec,
    /// Decisions where the mirror and `eth_call` at the same block disagreed (always denied).
    pub disagreements: IntCounter,
    /// Chain reads (`eth_call`, storage) made for decisions, by the function read.
    pub chain_reads: IntCounterVec,
    /// Time from a verified request to its logged decision, in seconds.
    pub decision_seconds: Histogram,
    /// Audit entries written.
    pub audit_entries: IntCounter,
    /// Failed audit-log writes (the requests were refused).
    pub audit_write_errors: IntCounter,
    /// The last sequence number written to the audit log.
    pub audit_last_seq: IntGauge,
    /// The last sequence number committed on chain.
    pub audit_committed_seq: IntGauge,
    /// Failed on-chain grant-log commits.
    pub audit_commit_errors: IntCounter,
    /// 1 while the audit rows in Postgres are not the log this node wrote (an alert).
    pub audit_chain_broken: IntGauge,
    /// Age of the oldest audit entry not yet committed on chain, in seconds (0 when none).
    pub audit_pending_age_seconds: IntGauge,
    /// Connections and requests refused before the client was authenticated, by reason.
    pub unauthenticated: IntCounterVec,
    /// The finalized block decisions are made at.
    pub finalized_block: IntGauge,
    /// The finalized block's timestamp, unix seconds.
    pub finalized_timestamp_seconds: IntGauge,
    /// 1 while the chain allows this node and its root keys (it serves), else 0.
    pub serving: IntGauge,
    /// Boots per batched app check (new boots asked about together).
    pub app_check_batch_size: Histogram,
    /// Audit entries per database commit (the writer's group commits).
    pub audit_group_size: Histogram,
}

impl Metrics {
    /// The handles the shared policy view updates.
    pub fn view(&self) -> covenant_mirror::ViewMetrics {
        covenant_mirror::ViewMetrics {
            disagreements: self.disagreements.clone(),
            finalized_block: self.finalized_block.clone(),
            finalized_timestamp_seconds: self.finalized_timestamp_seconds.clone(),
            app_check_batch_size: self.app_check_batch_size.clone(),
        }
    }

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
        let vec = |name: &str, help: &str, labels: &[&str]| -> prometheus::Result<IntCounterVec> {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let histogram =
            |name: &str, help: &str, buckets: Vec<f64>| -> prometheus::Result<Histogram> {
                let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))?;
                registry.register(Box::new(h.clone()))?;
                Ok(h)
            };
        let decision_seconds = histogram(
            "kms_decision_seconds",
            "Time from a verified request to its logged decision, in seconds.",
            vec![
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0,
            ],
        )?;
        let app_check_batch_size = histogram(
            "kms_app_check_batch_size",
            "Boots per batched app check (one mirror statement and one JSON-RPC batch).",
            covenant_mirror::APP_CHECK_BATCH_BUCKETS.to_vec(),
        )?;
        let audit_group_size = histogram(
            "kms_audit_group_size",
            "Audit entries per database commit (the writer's group commits).",
            vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0],
        )?;
        Ok(Self {
            app_check_batch_size,
            audit_group_size,
            decisions: vec(
                "kms_decisions_total",
                "Decisions by action and outcome.",
                &["action", "outcome"],
            )?,
            refusals: vec(
                "kms_refusals_total",
                "Refusals by the stage that refused.",
                &["stage"],
            )?,
            disagreements: counter(
                "kms_policy_disagreements_total",
                "Decisions where the mirror and eth_call at the same block disagreed (denied).",
            )?,
            chain_reads: vec(
                "kms_chain_reads_total",
                "Chain reads (eth_call, storage) made for decisions, by the function read.",
                &["function"],
            )?,
            decision_seconds,
            audit_entries: counter("kms_audit_entries_total", "Audit entries written.")?,
            audit_write_errors: counter(
                "kms_audit_write_errors_total",
                "Failed audit-log writes (the requests were refused).",
            )?,
            audit_last_seq: gauge(
                "kms_audit_last_seq",
                "The last sequence number written to the audit log.",
            )?,
            audit_committed_seq: gauge(
                "kms_audit_committed_seq",
                "The last sequence number committed on chain.",
            )?,
            audit_commit_errors: counter(
                "kms_audit_commit_errors_total",
                "Failed on-chain grant-log commits.",
            )?,
            audit_chain_broken: gauge(
                "kms_audit_chain_broken",
                "1 while the audit rows in Postgres are not the log this node wrote (alert).",
            )?,
            audit_pending_age_seconds: gauge(
                "kms_audit_pending_age_seconds",
                "Age of the oldest audit entry not yet committed on chain, in seconds.",
            )?,
            unauthenticated: vec(
                "kms_unauthenticated_total",
                "Connections and requests refused before the client was authenticated.",
                &["reason"],
            )?,
            finalized_block: gauge(
                "kms_finalized_block",
                "The finalized block decisions are made at.",
            )?,
            finalized_timestamp_seconds: gauge(
                "kms_finalized_timestamp_seconds",
                "The finalized block's timestamp, unix seconds.",
            )?,
            serving: gauge(
                "kms_serving",
                "1 while the chain allows this node and its root keys (it serves), else 0.",
            )?,
        })
    }
}
