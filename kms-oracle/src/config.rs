//! The kms-oracle's configuration: flags, each with a `COVENANT_KMS_*` environment variable
//! (flag > env > default), checked at start-up by [`Config::validate`].

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use alloy::primitives::B256;

use crate::{Error, Result};

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable.
    Text,
    /// One JSON object per line.
    Json,
}

/// Everything the service needs.
#[derive(Clone, clap::Args)]
pub struct Config {
    /// The deployment file (`deployments/<chainId>.json`).
    #[arg(long, env = "COVENANT_KMS_DEPLOYMENT")]
    pub deployment: PathBuf,
    /// JSON-RPC endpoint (HTTP) of the chain. Never logged.
    #[arg(long, env = "COVENANT_KMS_RPC_URL")]
    pub rpc_url: String,
    /// The indexer's database (its mirror is read, never written). Never logged.
    #[arg(long, env = "COVENANT_KMS_MIRROR_DATABASE_URL")]
    pub mirror_database_url: String,
    /// This node's own database (the audit log). Never logged.
    #[arg(long, env = "COVENANT_KMS_DATABASE_URL")]
    pub database_url: String,
    /// Where the sealed state lives.
    #[arg(long, env = "COVENANT_KMS_STATE_DIR")]
    pub state_dir: PathBuf,
    /// The measurement manifest (JSON list of `{osImageHash, expected}`) evidence is judged by.
    #[arg(long, env = "COVENANT_KMS_MANIFEST")]
    pub manifest: PathBuf,
    /// Simulated TEE: this node's device id (32 bytes hex).
    #[arg(long, env = "COVENANT_KMS_DEVICE_ID")]
    pub device_id: B256,
    /// Simulated TEE: the OS image this node booted (32 bytes hex; its measurements come from
    /// the manifest).
    #[arg(long, env = "COVENANT_KMS_OS_IMAGE")]
    pub os_image: B256,
    /// Address to listen on (HTTPS).
    #[arg(long, env = "COVENANT_KMS_LISTEN", default_value = "127.0.0.1:8600")]
    pub listen: SocketAddr,
    /// Deny everything when the finalized block is older than this many seconds.
    #[arg(
        long,
        env = "COVENANT_KMS_MAX_FINALIZED_AGE_SECS",
        default_value_t = 1800
    )]
    pub max_finalized_age_secs: u64,
    /// How often the audit log is committed on chain, in milliseconds.
    #[arg(
        long,
        env = "COVENANT_KMS_COMMIT_INTERVAL_MS",
        default_value_t = 10_000
    )]
    pub commit_interval_ms: u64,
    /// The most audit entries in one on-chain commit.
    #[arg(long, env = "COVENANT_KMS_COMMIT_MAX_ENTRIES", default_value_t = 4096)]
    pub commit_max_entries: u64,
    /// Obtain the root secret from this running node (host:port) if this node has none.
    #[arg(long, env = "COVENANT_KMS_REPLICATE_FROM")]
    pub replicate_from: Option<SocketAddr>,
    /// TLS handshake timeout, in milliseconds.
    #[arg(
        long,
        env = "COVENANT_KMS_HANDSHAKE_TIMEOUT_MS",
        default_value_t = 5_000
    )]
    pub handshake_timeout_ms: u64,
    /// Request headers, then body, must arrive within this many milliseconds each.
    #[arg(long, env = "COVENANT_KMS_REQUEST_TIMEOUT_MS", default_value_t = 5_000)]
    pub request_timeout_ms: u64,
    /// The largest request body, in bytes.
    #[arg(long, env = "COVENANT_KMS_MAX_BODY_BYTES", default_value_t = 65_536)]
    pub max_body_bytes: usize,
    /// Pending audit entries before requests wait.
    #[arg(long, env = "COVENANT_KMS_AUDIT_QUEUE", default_value_t = 4096)]
    pub audit_queue: usize,
    /// RPC request timeout, in milliseconds.
    #[arg(long, env = "COVENANT_KMS_RPC_TIMEOUT_MS", default_value_t = 10_000)]
    pub rpc_timeout_ms: u64,
    /// Log format.
    #[arg(long, env = "COVENANT_KMS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // URLs may carry credentials: not printed.
        f.debug_struct("Config")
            .field("deployment", &self.deployment)
            .field("state_dir", &self.state_dir)
            .field("manifest", &self.manifest)
            .field("device_id", &self.device_id)
            .field("os_image", &self.os_image)
            .field("listen", &self.listen)
            .field("max_finalized_age_secs", &self.max_finalized_age_secs)
            .field("commit_interval_ms", &self.commit_interval_ms)
            .field("commit_max_entries", &self.commit_max_entries)
            .field("replicate_from", &self.replicate_from)
            .field("handshake_timeout_ms", &self.handshake_timeout_ms)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Checks values that flags cannot.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("max-finalized-age-secs", self.max_finalized_age_secs),
            ("commit-interval-ms", self.commit_interval_ms),
            ("commit-max-entries", self.commit_max_entries),
            ("handshake-timeout-ms", self.handshake_timeout_ms),
            ("request-timeout-ms", self.request_timeout_ms),
            ("rpc-timeout-ms", self.rpc_timeout_ms),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(Error::Config(format!("--{name} must be positive")));
            }
        }
        if self.max_body_bytes < 1024 {
            return Err(Error::Config(
                "--max-body-bytes must be at least 1024".into(),
            ));
        }
        Ok(())
    }

    /// The staleness bound.
    pub fn max_finalized_age(&self) -> Duration {
        Duration::from_secs(self.max_finalized_age_secs)
    }
}
