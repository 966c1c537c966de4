//! The boot sequence, up to the app's keys: read and hash the compose, keep the instance id,
//! record the runtime events in DESIGN.md order, and ask a KMS node the chain allows for the
//! app's keys over RA-TLS.
//!
//! What the host hands the guest ([`Launch`]) is untrusted: every part of it is either measured
//! into the runtime events (app id, compose, instance id, key provider, OS image), so a lie only
//! earns a refusal from the KMS, or checked against the chain (each KMS node's identity and
//! standing, the root that signs the keys) before it is relied on.

use std::{path::PathBuf, sync::Arc, time::Duration};

use alloy::primitives::{Address, B256};
use covenant_attest::{
    AppId, ComposeHash, InstanceId, OsImageHash, Policy, compose::AppCompose,
    eventlog::RuntimeIdentity, ratls::RaTlsVerifier,
};
use covenant_kms_api::{
    ClientError, KeysRequest, KeysResponse, KmsClient, KmsIdentityChecker, KmsStanding,
    client::client_config,
};
use covenant_tee::{Boot, EvidenceProducer, GpuProducer};
use zeroize::Zeroizing;

use crate::{
    getkey::{AppKeyContext, AppSigner},
    instance::{self, Origin},
};

/// Why the boot stopped. The app never starts after any of these.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The compose document is not valid.
    #[error("app-compose.json is not valid: {0}")]
    Compose(String),
    /// The compose names another KMS deployment than the one configured.
    #[error("the compose trusts KMS registry {registry} on chain {chain_id}, not this deployment")]
    OtherDeployment {
        /// Its chain.
        chain_id: u64,
        /// Its registry.
        registry: String,
    },
    /// The instance id could not be had.
    #[error(transparent)]
    InstanceId(#[from] instance::InstanceIdError),
    /// The TEE could not record an event or produce evidence.
    #[error("the TEE failed: {0}")]
    Tee(#[from] covenant_tee::Error),
    /// A KMS node decided against this boot: its reason.
    #[error("the KMS refused this boot: {reason} (node {node}, audit entry {audit_seq:?})")]
    Refused {
        /// The node that decided.
        node: String,
        /// Its reason.
        reason: String,
        /// Its audit entry.
        audit_seq: Option<u64>,
    },
    /// No KMS node could be used; each one's reason.
    #[error("no KMS node could give this app its keys: {}", .0.join("; "))]
    NoKms(Vec<String>),
    /// The keys a node sent do not check out.
    #[error("the keys from {node} do not check out: {reason}")]
    BadKeys {
        /// The node.
        node: String,
        /// What is wrong.
        reason: String,
    },
    /// Something about the setup (a URL, TLS).
    #[error("{0}")]
    Setup(String),
}

/// What the host hands the guest for one boot.
#[derive(Clone, Debug)]
pub struct Launch {
    /// The app-compose document, as bytes.
    pub compose: Vec<u8>,
    /// The app (its `App` proxy address).
    pub app_id: Address,
    /// The OS image booted.
    pub os_image: B256,
    /// The instance's state directory (the instance id lives there).
    pub state_dir: PathBuf,
    /// The chain of the KMS deployment.
    pub chain_id: u64,
    /// Its `KmsRegistry`.
    pub registry: Address,
}

/// The boot, measured: its runtime events are recorded in the TEE.
pub struct Measured {
    /// The compose, parsed and validated.
    pub compose: AppCompose,
    /// Its hash.
    pub compose_hash: ComposeHash,
    /// The instance id, and whether this boot made it.
    pub instance_id: (InstanceId, Origin),
    /// The KMS root signer the boot trusts (its `key-provider` event).
    pub key_provider: Address,
    /// The launch.
    pub launch: Launch,
    /// The TEE, with the boot's events recorded.
    pub tee: Box<dyn EvidenceProducer>,
    /// The boot's RA-TLS key (every request to the KMS uses it) and GPU evidence.
    pub boot: Boot,
}

impl std::fmt::Debug for Measured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Measured")
            .field("compose_hash", &self.compose_hash)
            .field("instance_id", &self.instance_id)
            .field("key_provider", &self.key_provider)
            .field("platform", &self.tee.platform())
            .finish_non_exhaustive()
    }
}

/// Validates the compose, keeps the instance id and records the boot's runtime events in `tee`,
/// trusting the KMS root `key_provider`; with a `gpu`, its evidence is bound to the boot key and
/// announced as the `gpu-evidence` event.
pub fn measure(
    launch: Launch,
    key_provider: Address,
    mut tee: Box<dyn EvidenceProducer>,
    gpu: Option<&dyn GpuProducer>,
) -> Result<Measured, BootError> {
    let (compose, compose_hash) = covenant_attest::compose::compose_hash(&launch.compose)
        .map_err(|e| BootError::Compose(e.to_string()))?;
    let names_registry = compose
        .kms
        .registry
        .parse::<Address>()
        .is_ok_and(|r| r == launch.registry);
    if compose.kms.chain_id != launch.chain_id || !names_registry {
        return Err(BootError::OtherDeployment {
            chain_id: compose.kms.chain_id,
            registry: compose.kms.registry.clone(),
        });
    }
    if compose.flags.gpu && gpu.is_none() {
        return Err(BootError::Setup(
            "the compose needs a confidential GPU (flags.gpu) and none is configured".into(),
        ));
    }
    let instance_id = instance::load_or_create(&launch.state_dir)?;
    let boot = tee.boot(
        &RuntimeIdentity {
            app_id: AppId::new(launch.app_id.into_array()),
            compose_hash,
            instance_id: instance_id.0,
            key_provider: key_provider.to_vec(),
            os_image_hash: OsImageHash::new(launch.os_image.0),
            gpu_evidence_hash: None,
        },
        gpu,
    )?;
    Ok(Measured {
        compose,
        compose_hash,
        instance_id,
        key_provider,
        launch,
        tee,
        boot,
    })
}

/// What every KMS node's evidence is judged by: real platforms, and the simulator's public
/// development root, which proves something only where the chain allows simulated TEEs
/// (`isKmsAllowed` refuses a simulated node otherwise, and the identity check asks it).
pub fn kms_verifier_policy() -> Policy {
    Policy::judged_by_chain(true)
}

/// How the guest reaches KMS nodes and judges them.
#[derive(Clone, Debug)]
pub struct KmsAccess {
    /// Node URLs (`https://name:port`), tried in order. The chain does not list addresses, so
    /// they come from the host; every node is judged by its evidence and on-chain standing.
    pub urls: Vec<String>,
    /// Checks a node's evidence, `isKmsAllowed`, onboarding and the registered root at the
    /// finalized block.
    pub checker: KmsIdentityChecker,
    /// The TLS verifier of nodes' RA-TLS certificates.
    pub verifier: Arc<RaTlsVerifier>,
    /// Bound on each connection and request.
    pub timeout: Duration,
}

/// The app's keys, checked.
pub struct AppKeys {
    /// What the node sent.
    pub response: KeysResponse,
    /// The node that sent them, and its standing on chain when it did.
    pub standing: KmsStanding,
    /// The node's URL.
    pub node: String,
    /// The app key, checked against the root's signature.
    pub signer: AppSigner,
    /// The env secret key.
    pub env_secret: Zeroizing<[u8; 32]>,
    /// The instance's disk key.
    pub disk_key: Zeroizing<[u8; 32]>,
    /// The RA-TLS client configuration the keys were asked with (the boot's evidence, pinned to
    /// the node's checked certificate), for later requests to the same node.
    pub tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for AppKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppKeys")
            .field("node", &self.node)
            .field("app_key", &self.signer.address())
            .finish_non_exhaustive()
    }
}

/// Asks the KMS nodes of `access`, in order, for the keys of the boot `measured`: a node is used
/// only once its identity and standing check out on chain at the finalized block and its root
/// signer is the one the boot trusts; a node that cannot be used is skipped, a node that decides
/// against the boot ends it. `now` is unix seconds (evidence validity).
pub async fn request_keys(
    measured: &Measured,
    access: &KmsAccess,
    now: u64,
) -> Result<AppKeys, BootError> {
    let identity = &measured.boot.identity;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // A node is asked who it is without this boot's certificate; the boot's evidence goes only
    // over a connection pinned to the certificate that was checked.
    let anonymous = Arc::new(
        client_config(None, access.verifier.clone(), provider.clone())
            .map_err(|e| BootError::Setup(format!("TLS: {e}")))?,
    );
    let mut failures = Vec::new();
    for url in &access.urls {
        let client = KmsClient::new(&[url.as_str()], anonymous.clone(), access.timeout)
            .map_err(|e| BootError::Setup(e.to_string()))?;
        let metadata = match client.metadata().await {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{url}: {e}"));
                continue;
            }
        };
        let standing = match access
            .checker
            .check_metadata(metadata.server_certificate.as_deref(), &metadata.body, now)
            .await
        {
            Ok(s) => s,
            Err(e) => {
                failures.push(format!("{url}: not a KMS node the chain allows: {e}"));
                continue;
            }
        };
        if standing.root_signer != measured.key_provider {
            failures.push(format!(
                "{url}: serves root signer {}, not the trusted {}",
                standing.root_signer, measured.key_provider
            ));
            continue;
        }
        let Some(certificate) = metadata.server_certificate.clone() else {
            failures.push(format!("{url}: presented no certificate"));
            continue;
        };
        let tls = Arc::new(
            client_config(
                Some((&identity.certificate_der, &identity.private_key_der)),
                Arc::new(Pinned {
                    certificate,
                    inner: access.verifier.clone(),
                }),
                provider.clone(),
            )
            .map_err(|e| BootError::Setup(format!("TLS: {e}")))?,
        );
        let client = KmsClient::new(&[url.as_str()], tls.clone(), access.timeout)
            .map_err(|e| BootError::Setup(e.to_string()))?;
        let request = KeysRequest {
            chain_id: Some(measured.launch.chain_id),
            paths: Vec::new(),
        };
        match client.keys(&request).await {
            Ok(answer) => return checked(measured, answer.body, standing, url, tls.clone()),
            Err(ClientError::Refused {
                reason, audit_seq, ..
            }) => {
                return Err(BootError::Refused {
                    node: url.clone(),
                    reason,
                    audit_seq,
                });
            }
            Err(e) => failures.push(format!("{url}: {e}")),
        }
    }
    Err(BootError::NoKms(failures))
}

/// Accepts only the server certificate that was checked (and that the inner verifier accepts).
#[derive(Debug)]
struct Pinned {
    certificate: Vec<u8>,
    inner: Arc<RaTlsVerifier>,
}

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() != self.certificate.as_slice() {
            return Err(rustls::Error::General(
                "not the KMS node whose identity was checked".into(),
            ));
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The root signer registered on chain at the finalized block, read through the first KMS node
/// of `access` whose identity and standing check out (asked without a client certificate: this
/// is before the boot is measured).
pub async fn registered_root_signer(access: &KmsAccess, now: u64) -> Result<Address, BootError> {
    let tls = Arc::new(
        client_config(
            None,
            access.verifier.clone(),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .map_err(|e| BootError::Setup(format!("TLS: {e}")))?,
    );
    let mut failures = Vec::new();
    for url in &access.urls {
        let client = KmsClient::new(&[url.as_str()], tls.clone(), access.timeout)
            .map_err(|e| BootError::Setup(e.to_string()))?;
        let checked = match client.metadata().await {
            Ok(m) => access
                .checker
                .check_metadata(m.server_certificate.as_deref(), &m.body, now)
                .await
                .map_err(|e| format!("not a KMS node the chain allows: {e}")),
            Err(e) => Err(e.to_string()),
        };
        match checked {
            Ok(standing) => return Ok(standing.root_signer),
            Err(e) => failures.push(format!("{url}: {e}")),
        }
    }
    Err(BootError::NoKms(failures))
}

fn secret32(hex_str: &str, what: &str) -> Result<Zeroizing<[u8; 32]>, String> {
    let bytes = Zeroizing::new(
        hex::decode(hex_str.trim_start_matches("0x")).map_err(|_| format!("{what} is not hex"))?,
    );
    let mut out = Zeroizing::new([0u8; 32]);
    if bytes.len() != 32 {
        return Err(format!("{what} is {} bytes, not 32", bytes.len()));
    }
    out.copy_from_slice(&bytes);
    Ok(out)
}

/// The keys `response` from `node` are this boot's, and chain up to the node's registered root.
fn checked(
    measured: &Measured,
    response: KeysResponse,
    standing: KmsStanding,
    node: &str,
    tls: Arc<rustls::ClientConfig>,
) -> Result<AppKeys, BootError> {
    let bad = |reason: String| BootError::BadKeys {
        node: node.to_owned(),
        reason,
    };
    let keys = &response.keys;
    if keys.app_id != measured.launch.app_id
        || keys.instance_id.0 != *measured.instance_id.0.as_bytes()
    {
        return Err(bad(format!(
            "they are for app {} instance {}, not this boot",
            keys.app_id, keys.instance_id
        )));
    }
    if keys.root_signer != standing.root_signer {
        return Err(bad(format!(
            "signed by {}, not the registered root signer {}",
            keys.root_signer, standing.root_signer
        )));
    }
    let app_secret = secret32(keys.app_secret_key.expose(), "the app key").map_err(bad)?;
    let signature = hex::decode(keys.app_key_signature.trim_start_matches("0x"))
        .map_err(|_| bad("the app key signature is not hex".into()))?;
    let signer = AppSigner::new(
        &app_secret,
        AppKeyContext {
            chain_id: measured.launch.chain_id,
            registry: measured.launch.registry,
            app: keys.app_id,
            key_generation: keys.key_generation,
            root_signer: standing.root_signer,
            app_key_signature: signature,
        },
    )
    .map_err(|e| bad(e.to_string()))?;
    if signer.address() != keys.app_address {
        return Err(bad("the app key is not the app address stated".into()));
    }
    let env_public = covenant_guest_api::env::verified_env_key(
        &keys.env_public_key,
        measured.launch.chain_id,
        measured.launch.registry,
        standing.root_signer,
    )
    .map_err(|e| bad(e.to_string()))?;
    let env_secret = secret32(keys.env_secret_key.expose(), "the env key").map_err(bad)?;
    let derived =
        x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(*env_secret)).to_bytes();
    if derived != env_public
        || keys.env_public_key.app_id != keys.app_id
        || keys.env_public_key.key_generation != keys.key_generation
    {
        return Err(bad(
            "the env secret key is not the root-signed env key's".into()
        ));
    }
    let disk_key = secret32(keys.disk_key.expose(), "the disk key").map_err(bad)?;
    Ok(AppKeys {
        standing,
        node: node.to_owned(),
        signer,
        env_secret,
        disk_key,
        response,
        tls,
    })
}

#[cfg(test)]
mod tests {
    use rustls::{
        client::danger::ServerCertVerifier,
        pki_types::{CertificateDer, ServerName, UnixTime},
    };

    use super::*;

    fn certificate() -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        rcgen::CertificateParams::new(vec!["kms.example".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .der()
            .to_vec()
    }

    #[test]
    fn a_pinned_connection_refuses_any_certificate_but_the_checked_one() {
        let provider = rustls::crypto::ring::default_provider();
        let checked = certificate();
        let pinned = Pinned {
            certificate: checked.clone(),
            inner: Arc::new(RaTlsVerifier::new(
                kms_verifier_policy(),
                covenant_attest::Collateral::default(),
                &provider,
            )),
        };
        let name = ServerName::try_from("kms.example").unwrap();
        let other = certificate();
        let refused = pinned
            .verify_server_cert(
                &CertificateDer::from(other),
                &[],
                &name,
                &[],
                UnixTime::now(),
            )
            .unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("not the KMS node whose identity was checked")
        );
        // The checked certificate goes on to the RA-TLS verifier (which wants evidence in it).
        let judged = pinned
            .verify_server_cert(
                &CertificateDer::from(checked),
                &[],
                &name,
                &[],
                UnixTime::now(),
            )
            .unwrap_err();
        assert!(
            !judged
                .to_string()
                .contains("not the KMS node whose identity was checked")
        );
    }
}
