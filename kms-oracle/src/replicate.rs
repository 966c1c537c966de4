//! Obtaining the root secret from a running node (the new node's side of replication): mutually
//! attested TLS, where this node checks the source's evidence against the chain (an allowed KMS
//! node at the finalized block) and the source checks ours and records the onboarding on chain
//! before answering. The secret is accepted only if it derives the root keys registered on chain.

use std::{net::SocketAddr, sync::Arc};

use covenant_attest::{Collateral, Policy, ratls::RaTlsIdentity};
use covenant_chain::kms_registry::KmsRegistry;
use covenant_mirror::{Clock, PolicyView};
use zeroize::Zeroizing;

use crate::{
    Error, Result, client,
    identity::OwnIdentity,
    keys::{Domain, RootKeys, RootSecret},
};

/// Asks `source` for the root secret.
pub async fn obtain_root(
    view: &PolicyView,
    clock: &dyn Clock,
    own: &OwnIdentity,
    identity: &RaTlsIdentity,
    policy: &Policy,
    source: SocketAddr,
) -> Result<RootSecret> {
    let block = view
        .current_block()
        .map_err(|d| Error::Replication(d.reason))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = covenant_attest::ratls::RaTlsVerifier::new(
        policy.clone(),
        Collateral::default(),
        &provider,
    );
    let config = client::client_config(
        Some((&identity.certificate_der, &identity.private_key_der)),
        Arc::new(verifier),
        provider,
    )?;
    let chain_id = view.deployment().chain_id;
    let body = serde_json::json!({ "node": own.node, "chainId": chain_id });
    let reply = client::request(
        Arc::new(config),
        source,
        "POST",
        "/v1/replicate",
        Some(body.to_string().into_bytes()),
    )
    .await?;
    // The handshake checked the source's evidence and binding; now the chain must allow it.
    let certificate = reply
        .server_certificate
        .as_deref()
        .ok_or_else(|| Error::Replication("the source presented no certificate".into()))?;
    let evidence = covenant_attest::ratls::verify_certificate(
        certificate,
        &Collateral::default(),
        policy,
        clock.now_secs(),
    )?;
    let boot = covenant_chain::boot_info(&evidence, 0);
    if let Err(deny) = view.kms(&block, &boot).await? {
        return Err(Error::Replication(format!(
            "the source is not an allowed KMS node at block {}: {}",
            block.number, deny.reason
        )));
    }
    if reply.status != 200 {
        return Err(Error::Replication(format!(
            "the source refused ({}): {}",
            reply.status,
            reply.json()["error"].as_str().unwrap_or("no reason given")
        )));
    }
    let secret = Zeroizing::new(
        reply.json()["rootSecret"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    );
    let bytes = Zeroizing::new(
        hex::decode(secret.as_str())
            .map_err(|_| Error::Replication("malformed root secret".into()))?,
    );
    let array: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| Error::Replication("the root secret is not 32 bytes".into()))?;
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
        return Err(Error::Replication(
            "the received root secret does not derive the registered root keys".into(),
        ));
    }
    Ok(root)
}
