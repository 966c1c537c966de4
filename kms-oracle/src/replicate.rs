//! Obtaining the root secret from a running node (the new node's side of replication): mutually
//! attested TLS, where this node checks the source's evidence against the chain (an allowed KMS
//! node at the finalized block) and the source checks ours and records the onboarding on chain
//! before answering. The secret is accepted only if it derives the root keys registered on chain.

use std::{sync::Arc, time::Duration};

use covenant_attest::{Collateral, ratls::RaTlsIdentity};
use covenant_chain::kms_registry::KmsRegistry;
use covenant_kms_api::{Endpoint, KmsClient, ReplicateRequest, client::client_config};
use covenant_mirror::{Clock, PolicyView};
use zeroize::Zeroizing;

use crate::{
    Result,
    error::ReplicationError,
    identity::OwnIdentity,
    keys::{Domain, RootKeys, RootSecret},
};

/// Asks `source` for the root secret.
pub async fn obtain_root(
    view: &PolicyView,
    clock: &dyn Clock,
    _own: &OwnIdentity,
    identity: &RaTlsIdentity,
    collateral: &Collateral,
    source: &Endpoint,
) -> Result<RootSecret> {
    let block = view
        .current_block()
        .map_err(|d| ReplicationError::NoFreshBlock(d.reason))?;
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
