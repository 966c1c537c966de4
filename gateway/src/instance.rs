//! A registered instance: what its RA-TLS certificate proved, what it runs, where its ingress
//! listens, and — once decided at a finalized block — the boot as the chain judged it.

use std::{net::SocketAddr, sync::Arc};

use alloy::primitives::{Address, B256};
use covenant_attest::{VerifiedEvidence, compose::AppCompose};
use covenant_chain::BootInfo;
use covenant_mirror::Finalized;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `POST /v1/instances`: an instance registers itself, over mutual RA-TLS with its boot
/// certificate (the evidence is the certificate's; nothing in the body is trusted that the
/// evidence does not pin).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterRequest {
    /// The chain the instance expects.
    pub chain_id: u64,
    /// Its app-compose document, whose hash must be the evidence's compose hash (the gateway
    /// learns the app's ports and their protocols from it).
    pub compose: String,
    /// Where its ingress listens: TLS with the same RA-TLS certificate, one connection per
    /// client connection, the compose port named by the server name `<port>.ingress`.
    pub ingress: SocketAddr,
}

/// The answer to a registration.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Registered {
    /// The app.
    pub app: Address,
    /// The instance.
    pub instance_id: String,
    /// The finalized block the registration was decided at.
    pub block: u64,
    /// The app's key generation at that block.
    pub key_generation: u64,
    /// The names the instance is now served under.
    pub hosts: Vec<String>,
}

/// A registration as stored (and shared by every gateway node).
#[derive(Clone, Debug)]
pub struct StoredRegistration {
    /// The instance.
    pub instance_id: [u8; 20],
    /// The app.
    pub app: Address,
    /// The RA-TLS certificate (DER).
    pub certificate: Vec<u8>,
    /// The app-compose document.
    pub compose: Vec<u8>,
    /// The ingress address.
    pub ingress: String,
    /// The app's key generation at registration.
    pub key_generation: u64,
}

/// A registration whose evidence verified and whose compose matches it.
#[derive(Debug)]
pub struct Registration {
    /// What is stored.
    pub stored: StoredRegistration,
    /// The certificate's verified evidence.
    pub evidence: Arc<VerifiedEvidence>,
    /// The compose, parsed.
    pub compose: AppCompose,
    /// The ingress address.
    pub ingress: SocketAddr,
    /// SHA-256 of the certificate's SubjectPublicKeyInfo: the key the hop must meet.
    pub spki_sha256: B256,
    /// SHA-256 of the certificate (which carries the evidence).
    pub evidence_digest: B256,
    /// `0x` and the instance id in hex: the `Covenant-Instance` header of its answers.
    pub label: hyper::header::HeaderValue,
}

/// A registration the chain allows at a block.
#[derive(Clone)]
pub struct Routed {
    /// The registration.
    pub registration: Arc<Registration>,
    /// The boot as judged, with the app's key generation.
    pub boot: BootInfo,
    /// The block it was decided at.
    pub block: Finalized,
}

impl std::fmt::Debug for Routed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routed")
            .field("app", &self.registration.app())
            .field("instance", &hex::encode(self.registration.instance_id()))
            .field("block", &self.block.number)
            .finish_non_exhaustive()
    }
}

/// Why a registration is malformed.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    /// The compose does not hash to the evidence's compose hash, or is not valid.
    #[error("{0}")]
    Compose(String),
    /// The ingress address is not one to connect to.
    #[error("{0}")]
    Ingress(String),
    /// The certificate could not be parsed.
    #[error("{0}")]
    Certificate(String),
}

impl Registration {
    /// Checks `stored` against its certificate's `evidence`: the compose is valid and hashes to
    /// the evidence's compose hash, the app is the evidence's, the ingress is a usable address.
    pub fn new(
        stored: StoredRegistration,
        evidence: Arc<VerifiedEvidence>,
    ) -> Result<Self, RegistrationError> {
        let runtime = evidence.runtime();
        let (compose, hash) = covenant_attest::compose::compose_hash(&stored.compose)
            .map_err(|e| RegistrationError::Compose(format!("app-compose.json: {e}")))?;
        if hash != runtime.compose_hash {
            return Err(RegistrationError::Compose(format!(
                "the app-compose document hashes to {hash}, the evidence's compose hash is {}",
                runtime.compose_hash
            )));
        }
        if stored.app.as_slice() != runtime.app_id.as_bytes()
            || &stored.instance_id != runtime.instance_id.as_bytes()
        {
            return Err(RegistrationError::Certificate(
                "the registration is not the evidence's instance".into(),
            ));
        }
        let ingress: SocketAddr = stored
            .ingress
            .parse()
            .map_err(|e| RegistrationError::Ingress(format!("ingress address: {e}")))?;
        if ingress.port() == 0 || ingress.ip().is_unspecified() || ingress.ip().is_multicast() {
            return Err(RegistrationError::Ingress(format!(
                "ingress address {ingress} cannot be connected to"
            )));
        }
        let spki = spki(&stored.certificate).map_err(RegistrationError::Certificate)?;
        let label =
            hyper::header::HeaderValue::from_str(&format!("0x{}", hex::encode(stored.instance_id)))
                .map_err(|e| RegistrationError::Certificate(e.to_string()))?;
        Ok(Self {
            label,
            spki_sha256: B256::from(<[u8; 32]>::from(Sha256::digest(&spki))),
            evidence_digest: B256::from(<[u8; 32]>::from(Sha256::digest(&stored.certificate))),
            stored,
            evidence,
            compose,
            ingress,
        })
    }

    /// The instance id.
    pub fn instance_id(&self) -> &[u8; 20] {
        &self.stored.instance_id
    }

    /// The app.
    pub fn app(&self) -> Address {
        self.stored.app
    }
}

/// The SubjectPublicKeyInfo (DER) of a certificate.
pub fn spki(certificate_der: &[u8]) -> Result<Vec<u8>, String> {
    use x509_parser::prelude::FromDer;
    let (_, certificate) = x509_parser::certificate::X509Certificate::from_der(certificate_der)
        .map_err(|e| format!("not a certificate: {e}"))?;
    Ok(certificate.public_key().raw.to_vec())
}
