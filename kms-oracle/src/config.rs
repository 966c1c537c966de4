//! The kms-oracle's configuration: flags, each with a `COVENANT_KMS_*` environment variable
//! (flag > env > default), checked at start-up by [`Config::validate`].

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use alloy::primitives::B256;

use covenant_kms_api::Endpoint;

use crate::{Error, Result};

fn millis(s: &str) -> std::result::Result<Duration, String> {
    s.parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|e| format!("milliseconds: {e}"))
}

fn seconds(s: &str) -> std::result::Result<Duration, String> {
    s.parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|e| format!("seconds: {e}"))
}

fn rpc_url(s: &str) -> std::result::Result<url::Url, String> {
    let url = url::Url::parse(s).map_err(|e| e.to_string())?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(format!("the scheme must be http or https, not {other}")),
    }
}

/// An SEV-SNP TCB: `bootloader:tee:snp:microcode` security patch levels, e.g. `3:0:8:115`.
fn snp_tcb(s: &str) -> std::result::Result<covenant_attest::snp::SnpTcb, String> {
    let parts: Vec<u8> = s
        .split(':')
        .map(|p| p.trim().parse::<u8>().map_err(|e| format!("{p:?}: {e}")))
        .collect::<std::result::Result<_, _>>()?;
    match parts[..] {
        [bootloader, tee, snp, microcode] => Ok(covenant_attest::snp::SnpTcb {
            bootloader,
            tee,
            snp,
            microcode,
        }),
        _ => Err("four levels are needed: bootloader:tee:snp:microcode".into()),
    }
}

/// A KMS node: `https://host:port` (a DNS name or an address), or `host:port`.
fn kms_endpoint(s: &str) -> std::result::Result<Endpoint, String> {
    let url = if s.contains("://") {
        s.to_owned()
    } else {
        format!("https://{s}")
    };
    Endpoint::parse(&url).map_err(|e| e.to_string())
}

/// The TEE this node runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TeeChoice {
    /// Intel TDX (quotes through configfs-tsm, events into RTMR3; no sealing key).
    Tdx,
    /// AMD SEV-SNP (reports through configfs-tsm; sealing key from the firmware).
    SevSnp,
    /// The simulated TEE: development only.
    Simulated,
}

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
    /// JSON-RPC endpoint (HTTP) of the chain: the mirror's finalized block must be canonical and
    /// final here, and staleness is measured against its head. Never logged.
    #[arg(long, env = "COVENANT_KMS_RPC_URL", value_parser = rpc_url)]
    pub rpc_url: url::Url,
    /// A second, independent JSON-RPC endpoint that must have the same finalized block (run by
    /// someone else than `--rpc-url`). Never logged.
    #[arg(long, env = "COVENANT_KMS_WITNESS_RPC_URL", value_parser = rpc_url)]
    pub witness_rpc_url: Option<url::Url>,
    /// Which block the RPC counts as final: `finalized` (the node's tag) or a number of
    /// confirmations (development chains). The mirror's finalized block may not be ahead of it.
    #[arg(long, env = "COVENANT_KMS_FINALITY", default_value = "finalized")]
    pub finality: covenant_chain::Finality,
    /// The indexer's database (its mirror is read, never written). Never logged.
    #[arg(long, env = "COVENANT_KMS_MIRROR_DATABASE_URL")]
    pub mirror_database_url: String,
    /// This node's own database (the audit log). Never logged.
    #[arg(long, env = "COVENANT_KMS_DATABASE_URL")]
    pub database_url: String,
    /// Where the sealed state lives.
    #[arg(long, env = "COVENANT_KMS_STATE_DIR")]
    pub state_dir: PathBuf,
    /// The TEE this node runs in; by default the configfs-tsm provider (`--tsm-root`) decides.
    /// `simulated` only when asked for: development only.
    #[arg(long, env = "COVENANT_KMS_TEE", value_enum)]
    pub tee: Option<TeeChoice>,
    /// The configfs-tsm report directory (quotes on TDX and SEV-SNP).
    #[arg(long, env = "COVENANT_KMS_TSM_ROOT", default_value = covenant_tee::configfs::DEFAULT_ROOT)]
    pub tsm_root: PathBuf,
    /// TDX: the RTMR3 extension file of the kernel's TDX guest driver.
    #[arg(long, env = "COVENANT_KMS_RTMR3_PATH", default_value = covenant_tee::rtmr::DEFAULT_RTMR3)]
    pub rtmr3_path: PathBuf,
    /// Simulated TEE only: this node's device id (32 bytes hex; real TEEs report their own).
    #[arg(long, env = "COVENANT_KMS_DEVICE_ID")]
    pub device_id: Option<B256>,
    /// The OS image this node booted (32 bytes hex), recorded in its boot log. Under the
    /// simulated TEE it measures to the registers `identity::simulated_os_registers` derives.
    #[arg(long, env = "COVENANT_KMS_OS_IMAGE")]
    pub os_image: B256,
    /// A PCCS (Intel PCS v4 API, `http://host:port`) for TDX collateral; without it TDX quotes
    /// (clients, and this node's own on TDX) cannot be verified. Never logged.
    #[arg(long, env = "COVENANT_KMS_PCCS_URL", value_parser = rpc_url)]
    pub pccs_url: Option<url::Url>,
    /// A service in the shape of AMD's key distribution service (`/vcek/v1/…`) for the VCEK of
    /// SEV-SNP reports that come without one (clients, and this node's own on SEV-SNP); without
    /// it such reports are refused. Reports carrying their VCEK or VLEK need none.
    #[arg(long, env = "COVENANT_KMS_KDS_URL", value_parser = rpc_url)]
    pub kds_url: Option<url::Url>,
    /// Where fetched collateral is cached (default: `<state-dir>/collateral`).
    #[arg(long, env = "COVENANT_KMS_COLLATERAL_CACHE_DIR")]
    pub collateral_cache_dir: Option<PathBuf>,
    /// The lowest SEV-SNP TCB this deployment counts as up to date, `bootloader:tee:snp:microcode`
    /// (both the reported and the committed TCB must meet it). Without it every SEV-SNP boot is
    /// `OutOfDate` for the chain to judge.
    #[arg(long, env = "COVENANT_KMS_SNP_MINIMUM_TCB", value_parser = snp_tcb)]
    pub snp_minimum_tcb: Option<covenant_attest::snp::SnpTcb>,
    /// The oldest collateral accepted, by its issue date (flag in days).
    #[arg(
        long,
        env = "COVENANT_KMS_MAX_COLLATERAL_AGE_DAYS",
        default_value_t = 30
    )]
    pub max_collateral_age_days: u64,
    /// Address to listen on (HTTPS).
    #[arg(long, env = "COVENANT_KMS_LISTEN", default_value = "127.0.0.1:8600")]
    pub listen: SocketAddr,
    /// Deny everything when the finalized block is older than this, against the RPC's head
    /// (flag in seconds; at most 3600).
    #[arg(
        long = "max-finalized-age-secs",
        env = "COVENANT_KMS_MAX_FINALIZED_AGE_SECS",
        value_parser = seconds,
        default_value = "1800"
    )]
    pub max_finalized_age: Duration,
    /// How often the audit log is committed on chain (flag in milliseconds).
    #[arg(
        long = "commit-interval-ms",
        env = "COVENANT_KMS_COMMIT_INTERVAL_MS",
        value_parser = millis,
        default_value = "10000"
    )]
    pub commit_interval: Duration,
    /// Keys are not released while an audit entry older than this is not committed on chain
    /// (flag in seconds; more than the commit interval).
    #[arg(
        long = "max-uncommitted-age-secs",
        env = "COVENANT_KMS_MAX_UNCOMMITTED_AGE_SECS",
        value_parser = seconds,
        default_value = "300"
    )]
    pub max_uncommitted_age: Duration,
    /// Connections served at once; more are closed on accept.
    #[arg(long, env = "COVENANT_KMS_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// New connections per second from one source address (bursts of twice that).
    #[arg(
        long,
        env = "COVENANT_KMS_CONNECTIONS_PER_SOURCE_PER_SEC",
        default_value = "50"
    )]
    pub connections_per_source_per_sec: std::num::NonZeroU32,
    /// The most audit entries in one on-chain commit.
    #[arg(long, env = "COVENANT_KMS_COMMIT_MAX_ENTRIES", default_value_t = 4096)]
    pub commit_max_entries: u64,
    /// Obtain the root secret from this running node (`https://host:port` or `host:port`) if
    /// this node has none.
    #[arg(long, env = "COVENANT_KMS_REPLICATE_FROM", value_parser = kms_endpoint)]
    pub replicate_from: Option<Endpoint>,
    /// TLS handshake timeout (flag in milliseconds).
    #[arg(
        long = "handshake-timeout-ms",
        env = "COVENANT_KMS_HANDSHAKE_TIMEOUT_MS",
        value_parser = millis,
        default_value = "5000"
    )]
    pub handshake_timeout: Duration,
    /// Request headers, then body, must each arrive within this (flag in milliseconds).
    #[arg(
        long = "request-timeout-ms",
        env = "COVENANT_KMS_REQUEST_TIMEOUT_MS",
        value_parser = millis,
        default_value = "5000"
    )]
    pub request_timeout: Duration,
    /// The largest request body, in bytes.
    #[arg(long, env = "COVENANT_KMS_MAX_BODY_BYTES", default_value_t = 65_536)]
    pub max_body_bytes: usize,
    /// Pending audit entries before requests wait.
    #[arg(long, env = "COVENANT_KMS_AUDIT_QUEUE", default_value_t = 4096)]
    pub audit_queue: usize,
    /// RPC request timeout (flag in milliseconds).
    #[arg(
        long = "rpc-timeout-ms",
        env = "COVENANT_KMS_RPC_TIMEOUT_MS",
        value_parser = millis,
        default_value = "10000"
    )]
    pub rpc_timeout: Duration,
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
            .field("tee", &self.tee)
            .field("tsm_root", &self.tsm_root)
            .field("pccs", &self.pccs_url.is_some())
            .field("kds", &self.kds_url.is_some())
            .field("max_collateral_age_days", &self.max_collateral_age_days)
            .field("snp_minimum_tcb", &self.snp_minimum_tcb)
            .field("device_id", &self.device_id)
            .field("os_image", &self.os_image)
            .field("witness_rpc", &self.witness_rpc_url.is_some())
            .field("finality", &self.finality)
            .field("listen", &self.listen)
            .field("max_finalized_age", &self.max_finalized_age)
            .field("commit_interval", &self.commit_interval)
            .field("commit_max_entries", &self.commit_max_entries)
            .field("max_uncommitted_age", &self.max_uncommitted_age)
            .field("max_connections", &self.max_connections)
            .field(
                "connections_per_source_per_sec",
                &self.connections_per_source_per_sec,
            )
            .field(
                "replicate_from",
                &self.replicate_from.as_ref().map(Endpoint::url),
            )
            .field("handshake_timeout", &self.handshake_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("rpc_timeout", &self.rpc_timeout)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Checks values that flags cannot.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("max-finalized-age-secs", self.max_finalized_age),
            ("commit-interval-ms", self.commit_interval),
            ("handshake-timeout-ms", self.handshake_timeout),
            ("request-timeout-ms", self.request_timeout),
            ("rpc-timeout-ms", self.rpc_timeout),
        ];
        if self.commit_max_entries > 65_536 {
            return Err(Error::InvalidConfig {
                field: "commit-max-entries",
                reason: "must be at most the registry's MAX_GRANT_LOG_COMMIT (65536)".into(),
            });
        }
        if self.commit_max_entries == 0 {
            return Err(Error::InvalidConfig {
                field: "commit-max-entries",
                reason: "must be positive".into(),
            });
        }
        for (field, v) in positive {
            if v.is_zero() {
                return Err(Error::InvalidConfig {
                    field,
                    reason: "must be positive".into(),
                });
            }
        }
        if self.max_finalized_age > covenant_mirror::MAX_STALENESS_BOUND {
            return Err(Error::InvalidConfig {
                field: "max-finalized-age-secs",
                reason: format!(
                    "must be at most {} (a revocation must reach decisions within that)",
                    covenant_mirror::MAX_STALENESS_BOUND.as_secs()
                ),
            });
        }
        if self.max_uncommitted_age <= self.commit_interval {
            return Err(Error::InvalidConfig {
                field: "max-uncommitted-age-secs",
                reason: "must be more than the commit interval (or nothing would be released)"
                    .into(),
            });
        }
        if self.max_connections == 0 {
            return Err(Error::InvalidConfig {
                field: "max-connections",
                reason: "must be positive".into(),
            });
        }
        if self.max_body_bytes < 1024 {
            return Err(Error::InvalidConfig {
                field: "max-body-bytes",
                reason: "must be at least 1024".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: Config,
    }

    const REQUIRED: [&str; 15] = [
        "kms",
        "--deployment",
        "d.json",
        "--rpc-url",
        "http://127.0.0.1:8545",
        "--mirror-database-url",
        "postgres://m",
        "--database-url",
        "postgres://a",
        "--state-dir",
        "s",
        "--device-id",
        "0x0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d",
        "--os-image",
        "0x0505050505050505050505050505050505050505050505050505050505050505",
    ];

    fn parse(extra: &[&str]) -> std::result::Result<Config, clap::Error> {
        Cli::try_parse_from(REQUIRED.iter().chain(extra)).map(|c| c.config)
    }

    #[test]
    fn durations_and_urls_are_typed_with_strict_defaults() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.handshake_timeout, Duration::from_secs(5));
        assert_eq!(c.max_finalized_age, Duration::from_secs(1800));
        assert_eq!(c.rpc_url.as_str(), "http://127.0.0.1:8545/");
        assert!(c.replicate_from.is_none());
        assert_eq!(c.finality, covenant_chain::Finality::Tag);
        assert!(c.witness_rpc_url.is_none());
        c.validate().unwrap();
        let c = parse(&[
            "--request-timeout-ms",
            "300",
            "--replicate-from",
            "127.0.0.1:9",
        ])
        .unwrap();
        assert_eq!(c.request_timeout, Duration::from_millis(300));
        assert_eq!(c.replicate_from.unwrap().url(), "https://127.0.0.1:9");
        let c = parse(&["--replicate-from", "https://kms-1.example.org:8600"]).unwrap();
        assert_eq!(
            c.replicate_from.unwrap().url(),
            "https://kms-1.example.org:8600"
        );
    }

    #[test]
    fn the_snp_minimum_tcb_is_four_levels() {
        let c = parse(&["--snp-minimum-tcb", "3:0:8:115"]).unwrap();
        let tcb = c.snp_minimum_tcb.unwrap();
        assert_eq!(
            (tcb.bootloader, tcb.tee, tcb.snp, tcb.microcode),
            (3, 0, 8, 115)
        );
        assert!(parse(&[]).unwrap().snp_minimum_tcb.is_none());
        for bad in ["3:0:8", "3:0:8:115:1", "3:0:8:256", "a:b:c:d"] {
            assert!(parse(&["--snp-minimum-tcb", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_values_are_refused_with_the_setting_named() {
        assert!(parse(&["--rpc-url", "ftp://x"]).is_err());
        assert!(parse(&["--replicate-from", "http://kms.example.org"]).is_err());
        assert!(parse(&["--handshake-timeout-ms", "soon"]).is_err());
        assert!(parse(&["--finality", "latest"]).is_err());
        let long = parse(&["--max-finalized-age-secs", "3601"]).unwrap();
        match long.validate() {
            Err(Error::InvalidConfig { field, .. }) => assert_eq!(field, "max-finalized-age-secs"),
            other => panic!("{other:?}"),
        }
        parse(&["--max-finalized-age-secs", "3600"])
            .unwrap()
            .validate()
            .unwrap();
        let zero = parse(&["--rpc-timeout-ms", "0"]).unwrap();
        match zero.validate() {
            Err(Error::InvalidConfig { field, .. }) => assert_eq!(field, "rpc-timeout-ms"),
            other => panic!("{other:?}"),
        }
    }
}
