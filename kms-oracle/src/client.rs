//! A client for the kms-oracle (guest agents, other KMS nodes, tests and benchmarks): one
//! request per TLS connection, optionally presenting an RA-TLS client certificate, verifying the
//! KMS's own RA-TLS certificate with the given verifier.

use std::{net::SocketAddr, sync::Arc};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::{
    client::danger::ServerCertVerifier,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName},
};
use tokio_rustls::TlsConnector;

use crate::{Error, Result};

/// A client TLS configuration: TLS 1.3, `identity` as client certificate if given.
pub fn client_config(
    identity: Option<(&[u8], &[u8])>,
    server: Arc<dyn ServerCertVerifier>,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<rustls::ClientConfig> {
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(server);
    let mut config = match identity {
        Some((cert, key)) => builder.with_client_auth_cert(
            vec![CertificateDer::from(cert.to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.to_vec())),
        )?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A response.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: Vec<u8>,
    /// The server's certificate (its RA-TLS evidence).
    pub server_certificate: Option<Vec<u8>>,
}

impl Reply {
    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Opens a connection to `addr`, sends one request and reads the reply.
pub async fn request(
    config: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
) -> Result<Reply> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| Error::Replication(format!("connecting to {addr}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from("covenant-kms").map_err(|e| Error::Config(e.to_string()))?;
    let tls = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| Error::Replication(format!("tls with {addr}: {e}")))?;
    let server_certificate = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec());
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| Error::Replication(format!("http with {addr}: {e}")))?;
    let driver = tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "covenant-kms")
        .header("connection", "close");
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| Error::Config(e.to_string()))?;
    let response = send
        .send_request(req)
        .await
        .map_err(|e| Error::Replication(format!("request to {addr}: {e}")))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| Error::Replication(format!("reading the reply from {addr}: {e}")))?
        .to_bytes()
        .to_vec();
    driver.abort();
    Ok(Reply {
        status,
        body,
        server_certificate,
    })
}
