//! Obtaining the root secret from a running node (the new node's side of replication): mutually
//! attested TLS, where this node checks the source's evidence against the chain (an allowed KMS
//! node at the finalized block) and the source checks ours and records the onboarding on chain
//! before answering. The secret is accepted only if it derives the root keys registered on chain.

use std::{sync::Arc, time::Duration};

use covenant_attest::{Collateral, ratls::RaTlsIdentity};
use covenant_chain::kms_registry::KmsRegistry;
use covenant_kms_api::{Endpoint, KmsClient, ReplicateRequest, client::client_config};
use covenant_mirror::{Clock, PolicyView};
use rustls::{
    DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    pki_types::{CertificateDer, ServerName, UnixTime},
};
use zeroize::Zeroizing;

use crate::{
    Result,
    error::ReplicationError,
    identity::OwnIdentity,
    keys::{Domain, RootKeys, RootSecret},
    server::{CollateralSources, collateral_for},
};

/// Asks `source` for the root secret. The source's evidence is checked with collateral from
/// `sources` (a TDX source's quote needs its PCCS collateral, an SEV-SNP source without its VCEK
/// the key distribution service's).
pub async fn obtain_root(
    view: &PolicyView,
    clock: &dyn Clock,
    _own: &OwnIdentity,
    identity: &RaTlsIdentity,
    sources: &CollateralSources,
    source: &Endpoint,
) -> Result<RootSecret> {
    let block = view
        .current_block()
        .map_err(|d| ReplicationError::NoFreshBlock(d.reason))?;
    let collateral = &source_collateral(sources, identity, source, clock.now_secs()).await?;
    // The simulator root is trusted only while the chain allows simulated TEEs at the block.
    let policy = &crate::identity::verifier_policy(view.simulated_allowed(&block).await?);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        covenant_attest::ratls::RaTlsVerifier::new(policy.clone(), collateral.clone(), &provider);
    let config = client_config(
        Some((&identity.certificate_der, &identity.private_key_der)),
        Arc::new(verifier),
        provider,
    )?;
    let chain_id = view.deployment().chain_id;
    let client = KmsClient::new(&[source.url()], Arc::new(config), Duration::from_secs(30))
        .map_err(ReplicationError::Client)?;
    let request = ReplicateRequest {
        chain_id: Some(chain_id),
    };
    let answer = client
        .replicate(&request)
        .await
        .map_err(ReplicationError::Client)?;
    // The handshake checked the source's evidence and binding; now the chain must allow it.
    let certificate = answer
        .server_certificate
        .as_deref()
        .ok_or(ReplicationError::NoCertificate)?;
    let evidence = covenant_attest::ratls::verify_certificate(
        certificate,
        collateral,
        policy,
        clock.now_secs(),
    )?;
    let boot = covenant_chain::kms_boot_info(&evidence);
    if let Err(deny) = view.kms(&block, &boot).await? {
        return Err(ReplicationError::SourceNotAllowed {
            block: block.number,
            reason: deny.reason,
        }
        .into());
    }
    let bytes = Zeroizing::new(
        hex::decode(answer.body.root_secret.expose())
            .map_err(|_| ReplicationError::MalformedSecret)?,
    );
    let array: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| ReplicationError::MalformedSecret)?;
    let root = RootSecret::from_bytes(array);
    let registered = view
        .chain()
        .call(
            view.registry(),
            &KmsRegistry::kmsRootKeysCall {},
            block.hash,
        )
        .await?;
    let domain = Domain {
        chain_id,
        kms_registry: view.registry(),
    };
    let derived = RootKeys::derive(&root, &domain, registered._2)?;
    if derived.signer_address != registered._0
        || derived.ca_public_key.as_slice() != registered._1.as_ref()
    {
        return Err(ReplicationError::WrongSecret.into());
    }
    Ok(root)
}

/// The collateral for the evidence `source` presents. The handshake's verifier cannot fetch, so a
/// first handshake only reads the certificate the source presents and is then refused
/// ([`Peek`]); its evidence selects what to fetch. The real handshake then verifies the source's
/// evidence in full with it, so a source that presents another certificate the second time is
/// refused there. Nothing to fetch without sources.
pub async fn source_collateral(
    sources: &CollateralSources,
    identity: &RaTlsIdentity,
    source: &Endpoint,
    now: u64,
) -> Result<Collateral> {
    if sources.pccs.is_none() && sources.kds.is_none() {
        return Ok(Collateral::default());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let peek = Arc::new(Peek {
        seen: std::sync::Mutex::new(None),
        schemes: provider
            .signature_verification_algorithms
            .supported_schemes(),
    });
    let config = client_config(
        Some((&identity.certificate_der, &identity.private_key_der)),
        peek.clone(),
        provider,
    )?;
    let client = KmsClient::new(&[source.url()], Arc::new(config), Duration::from_secs(30))
        .map_err(ReplicationError::Client)?;
    // Refused by `Peek` by construction; only the certificate it saw matters.
    let _ = client.health().await;
    let seen = peek.seen.lock().map(|mut s| s.take()).unwrap_or(None);
    let certificate = seen.ok_or(ReplicationError::NoCertificate)?;
    collateral_for(sources, &certificate, now)
        .await
        .map_err(|reason| ReplicationError::SourceCollateral(reason).into())
}

/// A server-certificate "verifier" that records the end-entity certificate and refuses it: it
/// never lets a connection through.
#[derive(Debug)]
struct Peek {
    seen: std::sync::Mutex<Option<Vec<u8>>>,
    schemes: Vec<SignatureScheme>,
}

impl ServerCertVerifier for Peek {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(end_entity.to_vec());
        }
        Err(rustls::Error::General(
            "certificate read for its collateral, not trusted".into(),
        ))
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("not trusted".into()))
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("not trusted".into()))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone()
    }
}
