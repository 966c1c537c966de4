//! TLS for the kms-oracle: the server presents its own RA-TLS certificate; clients *may*
//! present one (public endpoints need none). The handshake proves the client holds the key of
//! the certificate it presents; whether its evidence verifies and binds that key is checked
//! once per connection after the handshake (`verify_certificate`), so that a refused peer still
//! gets a clear HTTP error and an audit row instead of a bare TLS alert.

use std::sync::Arc;

use rustls::{
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
};

use crate::Result;

/// The server configuration: TLS 1.3 only, the node's RA-TLS certificate, optional client
/// certificates, HTTP/1.1.
pub fn server_config(
    certificate_der: Vec<u8>,
    private_key_der: &[u8],
    provider: Arc<CryptoProvider>,
) -> Result<rustls::ServerConfig> {
    let verifier = Arc::new(covenant_attest::ratls::PossessionVerifier::new(&provider));
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(private_key_der.to_vec()));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![CertificateDer::from(certificate_der)], key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // No resumption: a client connects once per boot, so stored sessions (each holding the
    // client's certificate and its evidence) and the tickets sent for them are pure cost.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(config)
}
