//! One HTTPS GET over a TLS configuration the caller chose: what `verify` reads from a gateway
//! and what the devnet probes its services with.

use std::{sync::Arc, time::Duration};

use alloy::primitives::Bytes;
use http_body_util::{BodyExt as _, Empty};
use rustls::{
    ClientConfig,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject},
};

use crate::error::{Context as _, Failure};

/// An answer: the server's leaf certificate (DER), the status and the body.
pub(crate) struct Answer {
    pub(crate) leaf: Vec<u8>,
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

/// A client configuration trusting the PEM certificates in `path`.
pub(crate) fn trusting(path: &std::path::Path) -> Result<ClientConfig, Failure> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path)
        .doing(&format!("reading CA certificates from {}", path.display()))?
    {
        let cert = cert.doing(&format!("reading {}", path.display()))?;
        roots
            .add(cert)
            .doing(&format!("a CA certificate in {}", path.display()))?;
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .doing("TLS configuration")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A client configuration that accepts any certificate: only where nothing secret is sent and
/// nothing read is trusted on the connection's word — asking a process this program just started
/// whether it is up, or fetching a statement whose signature is checked against the chain.
pub(crate) fn any_certificate() -> Result<ClientConfig, Failure> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .doing("TLS configuration")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TCP address for `host:port`: names under `localhost` are the loopback interface
/// (RFC 6761), whatever the resolver says.
pub(crate) fn target(host: &str, port: u16) -> String {
    if host == "localhost" || host.ends_with(".localhost") {
        format!("127.0.0.1:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `GET path` from `host:port` over TLS with `config`. A TLS failure is an `Err` carrying the
/// rustls error, so callers can say whether the certificate or the server was at fault.
pub(crate) async fn get(
    host: &str,
    port: u16,
    config: Arc<ClientConfig>,
    path: &str,
) -> Result<Answer, GetError> {
    get_at(None, host, port, config, path).await
}

/// [`get`], connecting to `address` (already resolved) instead of resolving `host`.
pub(crate) async fn get_at(
    address: Option<std::net::IpAddr>,
    host: &str,
    port: u16,
    config: Arc<ClientConfig>,
    path: &str,
) -> Result<Answer, GetError> {
    let target = match address {
        Some(ip) => std::net::SocketAddr::new(ip, port).to_string(),
        None => target(host, port),
    };
    let tcp = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect(&target),
    )
    .await
    .map_err(|_| GetError::Other(Failure::new(format!("connecting to {target} timed out"))))?
    .doing(&format!("connecting to {target}"))
    .map_err(GetError::Other)?;
    let name = ServerName::try_from(host.to_owned())
        .doing("the server name")
        .map_err(GetError::Other)?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(GetError::Tls)?;
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or_else(|| GetError::Other(Failure::new("the server sent no certificate")))?
        .to_vec();
    let other = GetError::Other;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .doing(&format!("HTTP to {host}"))
            .map_err(other)?;
    tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, host)
        .body(Empty::<Bytes>::new())
        .doing("building the request")
        .map_err(other)?;
    let response = sender
        .send_request(request)
        .await
        .doing(&format!("GET {path}"))
        .map_err(other)?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .doing(&format!("reading {path}"))
        .map_err(other)?
        .to_bytes()
        .to_vec();
    Ok(Answer { leaf, status, body })
}

/// `GET path` from the KMS node at `kms_url`, as JSON `T`, over TLS without trusting the
/// connection: callers prove what they use from the answer (against the chain), or say that it
/// is the node's word.
pub(crate) async fn kms_json<T: serde::de::DeserializeOwned>(
    kms_url: &url::Url,
    path: &str,
) -> Result<T, Failure> {
    let host = kms_url
        .host_str()
        .ok_or_else(|| Failure::new(format!("{kms_url} names no host")))?
        .to_owned();
    let port = kms_url.port_or_known_default().unwrap_or(443);
    let answer = get(&host, port, Arc::new(any_certificate()?), path)
        .await
        .map_err(|e| Failure::new(format!("GET {path} from {kms_url}: {e}")))?;
    if answer.status != 200 {
        return Err(Failure::new(format!(
            "the KMS answered {} to {path}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        )));
    }
    serde_json::from_slice(&answer.body).doing(&format!("the KMS's answer to {path}"))
}

/// Why a GET failed.
pub(crate) enum GetError {
    /// The TLS handshake failed.
    Tls(std::io::Error),
    /// Anything else.
    Other(Failure),
}

impl GetError {
    /// Whether the handshake failed on the server's certificate.
    pub(crate) fn bad_certificate(&self) -> bool {
        match self {
            Self::Tls(e) => e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .is_some_and(|r| matches!(r, rustls::Error::InvalidCertificate(_))),
            Self::Other(_) => false,
        }
    }
}

impl std::fmt::Display for GetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tls(e) => write!(f, "{e}"),
            Self::Other(e) => write!(f, "{e}"),
        }
    }
}

/// Accepts any server certificate (see [`any_certificate`]); signatures are still checked, so the
/// handshake is a real one with whatever key the server holds.
#[derive(Debug)]
struct AnyCertificate;

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
