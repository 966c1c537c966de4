//! The hop from the gateway to an instance: always TLS 1.3 to the instance's ingress, with the
//! server name `<port>.ingress` and the certificate's key pinned to the SHA-256 of the key the
//! instance registered (whose evidence the gateway verified and decided). Another key is
//! refused; there is no plaintext path.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use alloy::primitives::B256;
use rustls::{
    DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::CryptoProvider,
    pki_types::{CertificateDer, ServerName, UnixTime},
};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;

use crate::{instance::Routed, upstream::Dial};

const HOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Client configurations kept (one per registered key) before the cache starts over.
const MAX_CONFIGS: usize = 4096;

/// Where a hop goes: an instance's ingress, the key it must present, the compose port.
#[derive(Debug, Clone)]
pub struct HopTarget {
    /// The ingress address.
    pub ingress: SocketAddr,
    /// SHA-256 of the SubjectPublicKeyInfo the instance registered.
    pub spki_sha256: B256,
    /// The compose port asked for.
    pub port: u16,
    /// The instance's `Covenant-Instance` header value.
    pub label: hyper::header::HeaderValue,
}

impl HopTarget {
    /// The hop to `routed`'s compose `port`.
    pub fn of(routed: &Routed, port: u16) -> Self {
        Self {
            ingress: routed.registration.ingress,
            spki_sha256: routed.registration.spki_sha256,
            port,
            label: routed.registration.label.clone(),
        }
    }
}

/// Opens hops; keeps one TLS client configuration per pinned key (so TLS sessions resume).
#[derive(Debug, Default)]
pub struct PinnedHop {
    configs: Mutex<HashMap<B256, Arc<rustls::ClientConfig>>>,
}

impl PinnedHop {
    fn config(&self, spki_sha256: B256) -> Result<Arc<rustls::ClientConfig>, String> {
        let mut configs = self
            .configs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(config) = configs.get(&spki_sha256) {
            return Ok(config.clone());
        }
        if configs.len() >= MAX_CONFIGS {
            configs.clear();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = Arc::new(
            rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .map_err(|e| e.to_string())?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedKey {
                    spki_sha256,
                    provider,
                }))
                .with_no_client_auth(),
        );
        configs.insert(spki_sha256, config.clone());
        Ok(config)
    }

    /// Opens the hop to `target`.
    pub async fn open(
        &self,
        target: &HopTarget,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
        let config = self.config(target.spki_sha256)?;
        let name =
            ServerName::try_from(format!("{}.ingress", target.port)).map_err(|e| e.to_string())?;
        let ingress = target.ingress;
        let connect = async {
            let tcp = TcpStream::connect(ingress)
                .await
                .map_err(|e| format!("{ingress}: {e}"))?;
            let _ = tcp.set_nodelay(true);
            tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("{ingress}: {e}"))
        };
        tokio::time::timeout(HOP_TIMEOUT, connect)
            .await
            .map_err(|_| format!("{ingress}: no TLS within 10 s"))?
    }
}

impl Dial for PinnedHop {
    type Target = HopTarget;
    type Io = tokio_rustls::client::TlsStream<TcpStream>;

    async fn dial(&self, target: &HopTarget) -> Result<Self::Io, String> {
        self.open(target).await
    }
}

/// Accepts only a server certificate whose SubjectPublicKeyInfo hashes to the registered one,
/// and a handshake signed with it.
#[derive(Debug)]
struct PinnedKey {
    spki_sha256: B256,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedKey {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let spki = crate::instance::spki(end_entity).map_err(rustls::Error::General)?;
        if B256::from(<[u8; 32]>::from(Sha256::digest(&spki))) == self.spki_sha256 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the ingress presented another key than the instance registered".into(),
            ))
        }
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("the hop is TLS 1.3 only".into()))
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
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate() -> Vec<u8> {
        rcgen::generate_simple_self_signed(vec!["x.ingress".to_owned()])
            .unwrap()
            .cert
            .der()
            .to_vec()
    }

    #[test]
    fn the_hop_accepts_only_the_registered_key() {
        let registered = certificate();
        let spki = crate::instance::spki(&registered).unwrap();
        let verifier = PinnedKey {
            spki_sha256: B256::from(<[u8; 32]>::from(Sha256::digest(&spki))),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        };
        let name = ServerName::try_from("8443.ingress").unwrap();
        let check = |der: &[u8]| {
            verifier.verify_server_cert(
                &CertificateDer::from(der.to_vec()),
                &[],
                &name,
                &[],
                UnixTime::now(),
            )
        };
        assert!(check(&registered).is_ok());
        let err = check(&certificate()).unwrap_err().to_string();
        assert!(err.contains("another key"), "{err}");
        assert!(check(b"not a certificate").is_err());
    }
}
