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
use covenant_attest::ratls::KeyVerifier;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use crate::{instance::Registration, upstream::Dial};

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
    /// The hop to `registration`'s compose `port`.
    pub fn of(registration: &Registration, port: u16) -> Self {
        Self {
            ingress: registration.ingress,
            spki_sha256: registration.spki_sha256,
            port,
            label: registration.label.clone(),
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
                .with_custom_certificate_verifier(Arc::new(KeyVerifier::pinned(
                    &provider,
                    spki_sha256.0,
                )))
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

#[cfg(test)]
mod tests {
    use rustls::{
        client::danger::ServerCertVerifier,
        pki_types::{CertificateDer, UnixTime},
    };
    use sha2::{Digest, Sha256};

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
        let verifier = KeyVerifier::pinned(
            &rustls::crypto::ring::default_provider(),
            Sha256::digest(&spki).into(),
        );
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
