//! Obtaining the root secret from a running node (the new node's side of replication): mutually
//! attested TLS, where this node checks the source's evidence against the chain (an allowed KMS
//! node at the finalized block) and the source checks ours and records the onboarding on chain
//! before answering. The secret is accepted only if it derives the root keys registered on chain.

use std::{net::SocketAddr, sync::Arc};

use covenant_attest::{Collateral, Policy, ratls::RaTlsIdentity};
use covenant_chain::kms_registry::KmsRegistry;
use zeroize::Zeroizing;

use crate::{
    Error, Result,
    chain::Chain,
    client,
    identity::OwnIdentity,
    keys::{Domain, RootKeys, RootSecret},
    metrics::Metrics,
    policy,
};

/// Asks `source` for the root secret.
pub async fn obtain_root(
    chain: &Chain,
    metrics: &Metrics,
    own: &OwnIdentity,
    identity: &RaTlsIdentity,
    policy: &Policy,
    source: SocketAddr,
) -> Result<RootSecret> {
    let block = chain
        .finalized()
        .await?
        .ok_or_else(|| Error::Replication("the mirror has no finalized block yet".into()))?;
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
    let body = serde_json::json!({ "node": own.node, "chainId": chain.deployment.chain_id });
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
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let evidence = covenant_attest::ratls::verify_certificate(
        certificate,
        &Collateral::default(),
        policy,
        now,
    )?;
    if let Err(reason) = policy::kms_allowed(chain, metrics, &evidence, &block).await? {
        return Err(Error::Replication(format!(
            "the source is not an allowed KMS node at block {}: {reason}",
            block.number
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
    let registered = chain
        .call(
            chain.registry(),
            &KmsRegistry::kmsRootKeysCall {},
            block.hash,
        )
        .await?;
    let domain = Domain {
        chain_id: chain.deployment.chain_id,
        kms_registry: chain.registry(),
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
