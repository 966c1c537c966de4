//! Reads what a gateway routes: its public routing table (`GET /v1/instances` on the gateway's
//! registration API), for the explorer to show next to what the chain allows.
//!
//! The table is the gateway's word, not proof: the registration API's certificate is made fresh
//! at every start (its key is bound by the gateway node's evidence, which `covenant verify`
//! checks), so this reader checks only that the server signed the TLS handshake with the key it
//! presented. The explorer therefore labels the table as reported by the gateway and judges every
//! instance in it against the chain itself. Nothing secret is sent.
//!
//! What it costs: however many pages are viewed, the gateway is asked at most once per
//! [`KEPT_FOR`]; one request waits at most [`TIMEOUT`] and reads at most [`MAX_BODY`].

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use alloy::primitives::{Address, B256, FixedBytes};
use covenant_attest::ratls::KeyVerifier;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::{Request, body::Bytes, client::conn::http1, header};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio_rustls::TlsConnector;

/// How long a table read (or the failure to read one) is kept.
pub const KEPT_FOR: Duration = Duration::from_secs(5);
/// How long one read may take, connection included.
pub const TIMEOUT: Duration = Duration::from_secs(3);
/// The largest table read.
pub const MAX_BODY: usize = 8 * 1024 * 1024;

/// The routing table as the gateway reports it.
#[derive(Clone, Debug, Deserialize)]
pub struct Table {
    /// The finalized block it was decided at (none before the gateway's first decision).
    pub block: Option<TableBlock>,
    /// Routed apps.
    pub apps: Vec<RoutedApp>,
}

/// A block the gateway names.
#[derive(Clone, Debug, Deserialize)]
pub struct TableBlock {
    /// Its number.
    pub number: u64,
}

/// One app's routed instances.
#[derive(Clone, Debug, Deserialize)]
pub struct RoutedApp {
    /// The app.
    pub app: Address,
    /// Its instances, in the gateway's order.
    pub instances: Vec<Routed>,
}

/// One routed instance, with the `BootInfo` fields the gateway decided on.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Routed {
    /// Instance id.
    pub instance_id: FixedBytes<20>,
    /// Compose hash.
    pub compose_hash: B256,
    /// OS image hash.
    pub os_image_hash: B256,
    /// OS measurement.
    pub os_measurement: B256,
    /// Device id.
    pub device_id: B256,
    /// Aggregated measurement.
    pub mr_aggregated: B256,
    /// TEE kind (the contract enum's number).
    pub tee_kind: u8,
    /// TCB status (the contract enum's number).
    pub tcb_status: u8,
    /// GPU evidence hash (zero without a GPU).
    pub gpu_evidence_hash: B256,
    /// Key generation.
    pub key_generation: u64,
    /// sha256 of the RA-TLS certificate it registered with.
    pub evidence_digest: B256,
    /// The names it is served under.
    pub hosts: Vec<String>,
    /// The block the gateway last decided it at.
    pub decided_at: u64,
}

impl Routed {
    /// The `BootInfo` of `app`'s instance, as the registry judges it.
    pub fn boot_info(&self, app: Address) -> covenant_chain::BootInfo {
        covenant_chain::BootInfo {
            appId: app,
            composeHash: self.compose_hash,
            instanceId: self.instance_id,
            deviceId: self.device_id,
            mrAggregated: self.mr_aggregated,
            osImageHash: self.os_image_hash,
            osMeasurement: self.os_measurement,
            teeKind: self.tee_kind,
            tcbStatus: self.tcb_status,
            gpuEvidenceHash: self.gpu_evidence_hash,
            keyGeneration: self.key_generation,
        }
    }
}

/// A table read, or why it failed, and when.
type Kept = Option<(Instant, Result<Arc<Table>, String>)>;

/// A gateway's registration API, read and kept.
pub struct GatewayReader {
    url: String,
    authority: String,
    host: String,
    tls: TlsConnector,
    kept: tokio::sync::Mutex<Kept>,
}

impl std::fmt::Debug for GatewayReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayReader")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// `https://host:port` → (`host:port`, `host`).
pub fn parse_url(url: &str) -> Result<(String, String), String> {
    let authority = url
        .strip_prefix("https://")
        .ok_or_else(|| format!("`{url}`: the gateway's API URL must be https://host:port"))?
        .trim_end_matches('/');
    let (host, port) = authority
        .rsplit_once(':')
        .ok_or_else(|| format!("`{url}`: the gateway's API URL must name a port"))?;
    if host.is_empty() || authority.contains('/') || port.parse::<u16>().is_err() {
        return Err(format!(
            "`{url}`: the gateway's API URL must be https://host:port"
        ));
    }
    Ok((authority.to_owned(), host.to_owned()))
}

impl GatewayReader {
    /// A reader of the registration API at `url` (`https://host:port`).
    pub fn new(url: &str) -> Result<Self, String> {
        let (authority, host) = parse_url(url)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(KeyVerifier::any_key(&provider)))
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            authority,
            host,
            tls: TlsConnector::from(Arc::new(config)),
            kept: tokio::sync::Mutex::new(None),
        })
    }

    /// The URL it reads.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The routing table, read at most once per [`KEPT_FOR`] (callers arriving while it is
    /// read wait for that read).
    pub async fn table(&self) -> Result<Arc<Table>, String> {
        let mut kept = self.kept.lock().await;
        if let Some((at, table)) = kept.as_ref()
            && at.elapsed() < KEPT_FOR
        {
            return table.clone();
        }
        let table = match tokio::time::timeout(TIMEOUT, self.fetch()).await {
            Ok(read) => read.map(Arc::new),
            Err(_) => Err(format!("no answer within {} s", TIMEOUT.as_secs())),
        };
        if let Err(e) = &table {
            tracing::warn!(target: "indexer::gateway", url = %self.url, error = %e, "reading the gateway's routing table");
        }
        *kept = Some((Instant::now(), table.clone()));
        table
    }

    async fn fetch(&self) -> Result<Table, String> {
        let tcp = tokio::net::TcpStream::connect(&self.authority)
            .await
            .map_err(|e| format!("connecting: {e}"))?;
        let name = rustls::pki_types::ServerName::try_from(self.host.clone())
            .map_err(|e| format!("{}: {e}", self.host))?;
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let (mut send, connection) = http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        let driver = tokio::spawn(connection);
        let request = Request::get("/v1/instances")
            .header(header::HOST, &self.authority)
            .header(header::CONNECTION, "close")
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let answer = async {
            let response = send
                .send_request(request)
                .await
                .map_err(|e| format!("request: {e}"))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| format!("reading the answer: {e}"))?
                .to_bytes();
            if !status.is_success() {
                return Err(format!("answered {status}"));
            }
            serde_json::from_slice::<Table>(&body).map_err(|e| format!("not a routing table: {e}"))
        }
        .await;
        driver.abort();
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_host_port_urls_are_accepted() {
        assert_eq!(
            parse_url("https://127.0.0.1:8443/").unwrap(),
            ("127.0.0.1:8443".into(), "127.0.0.1".into())
        );
        for bad in [
            "http://127.0.0.1:8443",
            "https://127.0.0.1",
            "https://:8443",
            "https://gw:99999",
            "https://gw:8443/v1",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
