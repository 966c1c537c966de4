//! The indexer's configuration: one typed tree, read from an optional TOML file, then overridden
//! by environment variables, then by flags (file < env < flag), resolved in [`Args::resolve`].

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use serde::Deserialize;

use crate::{Error, Result};

/// When the indexer treats a block as final (a `finalized` tag or a number of confirmations).
pub use covenant_chain::Finality;

/// A URL that may carry credentials (a provider key in the path or query, a database
/// password): `Debug` shows only the scheme and host, so it never reaches a log.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// Wraps `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL itself, for connecting. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// scheme://host[:port], and `/…` when anything followed.
    pub fn redacted(&self) -> String {
        let s = &self.0;
        let Some(scheme_end) = s.find("://") else {
            return "***".into();
        };
        let rest = &s[scheme_end + 3..];
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let host = rest[..authority_end].rsplit('@').next().unwrap_or_default();
        let tail = if authority_end < rest.len() {
            "/…"
        } else {
            ""
        };
        format!("{}://{host}{tail}", &s[..scheme_end])
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// The effective configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The deployment file `deployments/<chainId>.json` (contracts, chain id, start block).
    pub deployment: PathBuf,
    /// JSON-RPC over HTTP: backfill, headers, `eth_call`s. Required.
    pub rpc_url: SecretUrl,
    /// JSON-RPC over WebSocket for new-head notifications. Without it (or while it is down) the
    /// indexer polls `rpc_url` every `poll_interval_ms`.
    #[serde(default)]
    pub ws_url: Option<SecretUrl>,
    /// PostgreSQL URL. Required.
    pub database_url: SecretUrl,
    /// Where the REST API, change feed, `/metrics` and `/healthz` listen. Default 127.0.0.1:8580.
    #[serde(default = "defaults::listen")]
    pub listen: SocketAddr,
    /// `finalized` (the node's tag; default) or a number of confirmations.
    #[serde(default = "defaults::finality")]
    pub finality: Finality,
    /// Blocks in the first `eth_getLogs` range of a backfill; ranges then grow (at most 2× each)
    /// or shrink towards `target_logs_per_range`. Default 100.
    #[serde(default = "defaults::initial_range_blocks")]
    pub initial_range_blocks: u64,
    /// Largest `eth_getLogs` range. Default 100000.
    #[serde(default = "defaults::max_range_blocks")]
    pub max_range_blocks: u64,
    /// Ranges grow while they return fewer logs than this, and shrink above it. Default 10000.
    #[serde(default = "defaults::target_logs_per_range")]
    pub target_logs_per_range: u64,
    /// `eth_getLogs` ranges fetched at once during backfill. Default 4.
    #[serde(default = "defaults::fetch_concurrency")]
    pub fetch_concurrency: usize,
    /// Polling interval when no WebSocket is available, in milliseconds. Default 1000.
    #[serde(default = "defaults::poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Each RPC request gives up after this many milliseconds. Default 10000.
    #[serde(default = "defaults::rpc_timeout_ms")]
    pub rpc_timeout_ms: u64,
    /// How long the mirror may go without a successful sync before `/healthz` reports it
    /// unhealthy, in milliseconds. Default 30000.
    #[serde(default = "defaults::stale_after_ms")]
    pub stale_after_ms: u64,
    /// Stop once the finalized view reaches this block (benchmarks and scripted runs).
    #[serde(default)]
    pub stop_at_block: Option<u64>,
    /// Show a progress bar during backfill: `auto` (when stderr is a terminal), `always`, `never`.
    #[serde(default)]
    pub progress: Progress,
    /// Log format: `text` (default) or `json`.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Where the explorer asks whether DNS proves a claimed domain (`_covenant.<domain>`):
    /// `system` (the system's resolver configuration) or `ip:port` (that server, UDP). Unset:
    /// the explorer does not check DNS.
    #[serde(default)]
    pub dns_server: Option<String>,
    /// A gateway's registration API (`https://host:port`), whose routing table the explorer
    /// shows next to what the chain allows. Unset: not shown.
    #[serde(default)]
    pub gateway_api_url: Option<String>,
}

/// Where DNS questions go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsServer {
    /// The system's resolver configuration.
    System,
    /// One server (UDP).
    At(SocketAddr),
}

/// Whether to draw a progress bar.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Progress {
    /// When stderr is a terminal.
    #[default]
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// How logs are written.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

mod defaults {
    use super::Finality;
    use std::net::SocketAddr;
    pub(super) fn listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 8580))
    }
    pub(super) fn finality() -> Finality {
        Finality::Tag
    }
    pub(super) fn initial_range_blocks() -> u64 {
        100
    }
    pub(super) fn max_range_blocks() -> u64 {
        100_000
    }
    pub(super) fn target_logs_per_range() -> u64 {
        10_000
    }
    pub(super) fn fetch_concurrency() -> usize {
        4
    }
    pub(super) fn poll_interval_ms() -> u64 {
        1000
    }
    pub(super) fn rpc_timeout_ms() -> u64 {
        10_000
    }
    pub(super) fn stale_after_ms() -> u64 {
        30_000
    }
}

impl Config {
    /// Rejects values the indexer cannot work with.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Config(m.to_owned()));
        if self.initial_range_blocks == 0 || self.max_range_blocks == 0 {
            return bad("range sizes must be at least 1 block");
        }
        if self.initial_range_blocks > self.max_range_blocks {
            return bad("initial_range_blocks exceeds max_range_blocks");
        }
        if self.target_logs_per_range == 0 {
            return bad("target_logs_per_range must be at least 1");
        }
        if self.fetch_concurrency == 0 || self.fetch_concurrency > 64 {
            return bad("fetch_concurrency must be between 1 and 64");
        }
        if self.rpc_timeout_ms == 0 {
            return bad("rpc_timeout_ms must be at least 1");
        }
        if self.poll_interval_ms == 0 {
            return bad("poll_interval_ms must be at least 1");
        }
        let rpc = self.rpc_url.expose();
        if !(rpc.starts_with("http://") || rpc.starts_with("https://")) {
            return bad("rpc_url must be an http(s) URL");
        }
        if let Some(ws) = &self.ws_url
            && !(ws.expose().starts_with("ws://") || ws.expose().starts_with("wss://"))
        {
            return bad("ws_url must be a ws(s) URL");
        }
        self.dns()?;
        if let Some(url) = &self.gateway_api_url {
            crate::gateway::parse_url(url).map_err(Error::Config)?;
        }
        Ok(())
    }

    /// Where DNS questions go, when the explorer checks DNS.
    pub fn dns(&self) -> Result<Option<DnsServer>> {
        match self.dns_server.as_deref() {
            None => Ok(None),
            Some("system") => Ok(Some(DnsServer::System)),
            Some(other) => other.parse().map(|a| Some(DnsServer::At(a))).map_err(|_| {
                Error::Config(format!(
                    "dns_server `{other}` must be `system` or an ip:port address"
                ))
            }),
        }
    }

    /// The polling interval.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    /// The per-request RPC timeout.
    pub fn rpc_timeout(&self) -> Duration {
        Duration::from_millis(self.rpc_timeout_ms)
    }

    /// How long without a successful sync makes the mirror unhealthy.
    pub fn stale_after(&self) -> Duration {
        Duration::from_millis(self.stale_after_ms)
    }
}

/// Command-line flags; each also reads an environment variable. Unset ones fall back to the
/// config file, then to the defaults above.
#[derive(Debug, Default, clap::Args)]
pub struct Args {
    /// A TOML file with any of the fields below (snake_case).
    #[arg(long, env = "COVENANT_INDEXER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Deployment file, `deployments/<chainId>.json`.
    #[arg(long, env = "COVENANT_INDEXER_DEPLOYMENT")]
    pub deployment: Option<PathBuf>,
    /// JSON-RPC HTTP URL.
    #[arg(long, env = "COVENANT_INDEXER_RPC_URL")]
    pub rpc_url: Option<String>,
    /// JSON-RPC WebSocket URL (new heads); polling is used without it.
    #[arg(long, env = "COVENANT_INDEXER_WS_URL")]
    pub ws_url: Option<String>,
    /// PostgreSQL URL.
    #[arg(long, env = "COVENANT_INDEXER_DATABASE_URL")]
    pub database_url: Option<String>,
    /// API listen address.
    #[arg(long, env = "COVENANT_INDEXER_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// `finalized` or a number of confirmations.
    #[arg(long, env = "COVENANT_INDEXER_FINALITY")]
    pub finality: Option<Finality>,
    /// First eth_getLogs range, in blocks.
    #[arg(long, env = "COVENANT_INDEXER_INITIAL_RANGE_BLOCKS")]
    pub initial_range_blocks: Option<u64>,
    /// Largest eth_getLogs range, in blocks.
    #[arg(long, env = "COVENANT_INDEXER_MAX_RANGE_BLOCKS")]
    pub max_range_blocks: Option<u64>,
    /// Logs per range the sizing aims at.
    #[arg(long, env = "COVENANT_INDEXER_TARGET_LOGS_PER_RANGE")]
    pub target_logs_per_range: Option<u64>,
    /// Ranges fetched concurrently during backfill.
    #[arg(long, env = "COVENANT_INDEXER_FETCH_CONCURRENCY")]
    pub fetch_concurrency: Option<usize>,
    /// Polling interval without WebSocket, ms.
    #[arg(long, env = "COVENANT_INDEXER_POLL_INTERVAL_MS")]
    pub poll_interval_ms: Option<u64>,
    /// Per-request RPC timeout, ms.
    #[arg(long, env = "COVENANT_INDEXER_RPC_TIMEOUT_MS")]
    pub rpc_timeout_ms: Option<u64>,
    /// Unhealthy after this long without a successful sync, ms.
    #[arg(long, env = "COVENANT_INDEXER_STALE_AFTER_MS")]
    pub stale_after_ms: Option<u64>,
    /// Exit once the finalized view reaches this block.
    #[arg(long, env = "COVENANT_INDEXER_STOP_AT_BLOCK")]
    pub stop_at_block: Option<u64>,
    /// Progress bar: auto, always, never.
    #[arg(long, env = "COVENANT_INDEXER_PROGRESS")]
    pub progress: Option<Progress>,
    /// Log format: text or json.
    #[arg(long, env = "COVENANT_INDEXER_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Check claimed domains' DNS with this server (`ip:port`) or `system`.
    #[arg(long, env = "COVENANT_INDEXER_DNS_SERVER")]
    pub dns_server: Option<String>,
    /// Show what the gateway with this registration API (`https://host:port`) routes.
    #[arg(long, env = "COVENANT_INDEXER_GATEWAY_API_URL")]
    pub gateway_api_url: Option<String>,
}

impl Args {
    /// Merges file < env < flag into a validated [`Config`].
    pub fn resolve(&self) -> Result<Config> {
        let mut table = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
                    what: format!("reading config file {}", path.display()),
                    source,
                })?;
                toml::from_str::<toml::Table>(&text)
                    .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?
            }
            None => toml::Table::new(),
        };
        let mut set = |key: &str, value: Option<toml::Value>| {
            if let Some(v) = value {
                table.insert(key.to_owned(), v);
            }
        };
        let s = |v: &Option<String>| v.clone().map(toml::Value::String);
        let n = |v: Option<u64>| v.map(|v| toml::Value::Integer(v.min(i64::MAX as u64) as i64));
        set(
            "deployment",
            self.deployment
                .as_ref()
                .map(|p| toml::Value::String(p.display().to_string())),
        );
        set("rpc_url", s(&self.rpc_url));
        set("ws_url", s(&self.ws_url));
        set("database_url", s(&self.database_url));
        set(
            "listen",
            self.listen.map(|a| toml::Value::String(a.to_string())),
        );
        set(
            "finality",
            self.finality.map(|f| match f {
                Finality::Tag => toml::Value::String("finalized".into()),
                Finality::Confirmations(n) => toml::Value::Integer(n.min(i64::MAX as u64) as i64),
            }),
        );
        set("initial_range_blocks", n(self.initial_range_blocks));
        set("max_range_blocks", n(self.max_range_blocks));
        set("target_logs_per_range", n(self.target_logs_per_range));
        set(
            "fetch_concurrency",
            n(self.fetch_concurrency.map(|c| c as u64)),
        );
        set("poll_interval_ms", n(self.poll_interval_ms));
        set("rpc_timeout_ms", n(self.rpc_timeout_ms));
        set("stale_after_ms", n(self.stale_after_ms));
        set("stop_at_block", n(self.stop_at_block));
        set(
            "progress",
            self.progress
                .map(|p| toml::Value::String(format!("{p:?}").to_lowercase())),
        );
        set(
            "log_format",
            self.log_format
                .map(|p| toml::Value::String(format!("{p:?}").to_lowercase())),
        );
        set("dns_server", s(&self.dns_server));
        set("gateway_api_url", s(&self.gateway_api_url));
        let config: Config = table
            .try_into()
            .map_err(|e: toml::de::Error| Error::Config(e.message().to_owned()))?;
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(contents: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, contents.as_bytes()).unwrap();
        f
    }

    const BASE: &str = r#"
        deployment = "deployments/31337.json"
        rpc_url = "http://127.0.0.1:8545"
        database_url = "postgres://covenant:hunter2@127.0.0.1/covenant"
    "#;

    #[test]
    fn file_values_apply_and_defaults_are_strict() {
        let f = file(BASE);
        let c = Args {
            config: Some(f.path().to_owned()),
            ..Args::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(c.finality, Finality::Tag);
        assert_eq!(c.listen, "127.0.0.1:8580".parse().unwrap());
        assert_eq!(c.fetch_concurrency, 4);
        assert!(c.ws_url.is_none());
    }

    #[test]
    fn flags_override_the_file() {
        let f = file(&format!("{BASE}\nfinality = 12\nfetch_concurrency = 2\n"));
        let args = Args {
            config: Some(f.path().to_owned()),
            finality: Some(Finality::Confirmations(3)),
            ..Args::default()
        };
        let c = args.resolve().unwrap();
        assert_eq!(c.finality, Finality::Confirmations(3));
        assert_eq!(c.fetch_concurrency, 2);
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused() {
        let f = file(&format!("{BASE}\nconfirmation = 3\n"));
        let err = Args {
            config: Some(f.path().to_owned()),
            ..Args::default()
        }
        .resolve()
        .unwrap_err();
        assert!(
            err.to_string().contains("unknown field `confirmation`"),
            "{err}"
        );

        let f = file(&format!("{BASE}\nfetch_concurrency = 0\n"));
        let err = Args {
            config: Some(f.path().to_owned()),
            ..Args::default()
        }
        .resolve()
        .unwrap_err();
        assert!(err.to_string().contains("fetch_concurrency"), "{err}");

        let err = Args {
            rpc_url: Some("http://x".into()),
            ..Args::default()
        }
        .resolve()
        .unwrap_err();
        assert!(err.to_string().contains("missing field"), "{err}");
        assert!("latest".parse::<Finality>().is_err());
    }

    #[test]
    fn credentials_in_urls_are_redacted() {
        let cases = [
            (
                "postgres://covenant:hunter2@127.0.0.1:5432/db?password=x",
                "postgres://127.0.0.1:5432/…",
            ),
            (
                "https://rpc.example.invalid/v3/0123456789abcdef",
                "https://rpc.example.invalid/…",
            ),
            (
                "wss://user:key@node.example.invalid",
                "wss://node.example.invalid",
            ),
            ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),
            ("not a url", "***"),
        ];
        for (url, shown) in cases {
            assert_eq!(format!("{:?}", SecretUrl::new(url)), shown);
        }
        let f = file(BASE);
        let c = Args {
            config: Some(f.path().to_owned()),
            ..Args::default()
        }
        .resolve()
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
