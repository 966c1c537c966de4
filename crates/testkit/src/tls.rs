//! An HTTPS `GET` that hands back the certificate chain the server presented, for tests that
//! check that chain themselves (Covenant clients check app chains against the root CA key on
//! chain, `covenant_kms_api::verify_app_chain`, not against a web PKI store).

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    sync::Arc,
    time::Duration,
};

use rustls::{
    DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::CryptoProvider,
    pki_types::{CertificateDer, ServerName, UnixTime},
};

/// What [`get_with_chain`] read.
#[derive(Debug)]
pub struct Fetched {
    /// The server's certificates, leaf first (DER).
    pub chain: Vec<Vec<u8>>,
    /// The HTTP status code.
    pub status: u16,
    /// The body.
    pub body: String,
}

/// `GET path` over TLS to `addr` with SNI `server_name` and `Connection: close`. The chain is
/// accepted as presented (the handshake's signature is still checked against the leaf): the
/// caller must verify `Fetched::chain` before trusting anything in the answer.
pub fn get_with_chain(addr: SocketAddr, server_name: &str, path: &str) -> Result<Fetched, String> {
    request_with_chain(addr, server_name, "GET", path, None)
}

/// As [`get_with_chain`], for any method, with a JSON `body` if given (no client certificate).
pub fn request_with_chain(
    addr: SocketAddr,
    server_name: &str,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> Result<Fetched, String> {
    request(addr, server_name, method, path, body, None)
}

/// As [`request_with_chain`], presenting `certificate_der` as the client certificate, with its
/// PKCS#8 `key_der`.
pub fn request_as(
    addr: SocketAddr,
    server_name: &str,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    certificate_der: &[u8],
    key_der: &[u8],
) -> Result<Fetched, String> {
    request(
        addr,
        server_name,
        method,
        path,
        body,
        Some((certificate_der, key_der)),
    )
}

fn request(
    addr: SocketAddr,
    server_name: &str,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    client: Option<(&[u8], &[u8])>,
) -> Result<Fetched, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(CheckedByCaller(provider)));
    let mut config = match client {
        None => builder.with_no_client_auth(),
        Some((certificate, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from(certificate.to_vec())],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.to_vec().into()),
            )
            .map_err(|e| e.to_string())?,
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = ServerName::try_from(server_name.to_owned()).map_err(|e| e.to_string())?;
    let connection =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .map_err(|e| format!("{addr}: {e}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    let body = body.unwrap_or_default();
    write!(
        tls,
        "{method} {path} HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    tls.write_all(body).map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    // A server that closes without close_notify still gave its whole answer.
    if let Err(e) = tls.read_to_end(&mut response)
        && e.kind() != std::io::ErrorKind::UnexpectedEof
    {
        return Err(e.to_string());
    }
    let chain = tls
        .conn
        .peer_certificates()
        .ok_or("no certificate presented")?
        .iter()
        .map(|c| c.to_vec())
        .collect();
    let text = String::from_utf8(response).map_err(|e| e.to_string())?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP header")?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    Ok(Fetched {
        chain,
        status,
        body: body.to_owned(),
    })
}

/// A TLS client configuration that takes any server chain as presented (the handshake's
/// signature is still checked against the leaf), for a test that verifies the chain itself or
/// only needs the connection.
pub fn client_config_checked_by_caller() -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(CheckedByCaller(provider)))
            .with_no_client_auth(),
    )
}

/// Takes any chain; checks the handshake's signature with the leaf's key.
#[derive(Debug)]
struct CheckedByCaller(Arc<CryptoProvider>);

impl ServerCertVerifier for CheckedByCaller {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
