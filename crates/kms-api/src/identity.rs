//! Is the KMS node on the other end of a connection one the chain allows? Checked without a
//! mirror database: its RA-TLS evidence is verified, then plain RPC at a finalized block *hash*
//! (`requireCanonical`) asks `isKmsAllowed` of its boot, `kmsNode` of the address it states
//! (active, onboarded with the same measurement and device), and `kmsRootKeys` (registered).
//! For guests before they trust a KMS with their boot, and for the CLI.
//!
//! Known limit: until the node's identity address is a runtime event of its boot log (Trust
//! model v2), the address a node states is tied to its evidence only through the onboarding
//! record's measurement and device, which nodes on identical machines share.

use std::time::Duration;

use alloy::{
    eips::{BlockId, BlockNumberOrTag, RpcBlockHash},
    network::TransactionBuilder,
    primitives::{Address, B256},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::types::TransactionRequest,
    sol_types::SolCall,
};
use covenant_attest::{Collateral, Policy};
use covenant_chain::kms_registry::KmsRegistry;

use crate::{BlockRef, Metadata, certs::RootAnchor};

pub use covenant_chain::Finality;

/// Why a KMS node is not trusted.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The RPC URL is unusable.
    #[error("invalid rpc url: {0}")]
    Url(String),
    /// A chain read failed.
    #[error("rpc {call} failed: {reason}")]
    Rpc {
        /// What was read.
        call: &'static str,
        /// What the transport or the node said.
        reason: String,
    },
    /// The RPC node serves another chain.
    #[error("the rpc serves chain {actual}, the deployment is on chain {expected}")]
    WrongChain {
        /// The deployment's chain.
        expected: u64,
        /// The RPC's.
        actual: u64,
    },
    /// The node's evidence does not verify.
    #[error("the kms node's evidence does not verify: {0}")]
    Evidence(#[from] covenant_attest::Error),
    /// The node presented no certificate.
    #[error("the kms node presented no certificate")]
    NoCertificate,
    /// `isKmsAllowed` says no.
    #[error("the chain does not allow this kms node at block {block}: {reason}")]
    NotAllowed {
        /// The block.
        block: u64,
        /// The contract's reason.
        reason: String,
    },
    /// The stated node is not an active KMS node, or was onboarded with another measurement or
    /// device than its evidence shows.
    #[error("{node} is not an active kms node with this evidence at block {block}")]
    NotOnboarded {
        /// The stated node.
        node: Address,
        /// The block.
        block: u64,
    },
    /// The evidence binds another identity address (its `kms-identity` event) than the stated
    /// node, or none.
    #[error("the kms node's evidence names {evidence:?}, not the stated node {node}")]
    IdentityMismatch {
        /// The stated node.
        node: Address,
        /// The address the evidence binds, if any.
        evidence: Option<Address>,
    },
    /// No root keys are registered, or the node states other ones.
    #[error("the kms node's root keys are not the registered ones at block {block}")]
    RootKeys {
        /// The block.
        block: u64,
    },
    /// The node serves another chain or registry.
    #[error("the kms node serves chain {chain_id} registry {kms_registry}, not this deployment")]
    OtherDeployment {
        /// The chain it states.
        chain_id: u64,
        /// The registry it states.
        kms_registry: Address,
    },
    /// The RPC's finalized block is older than the bound: its answer could predate a removal.
    #[error("the finalized block {block} is {age} s old, the bound is {bound} s")]
    Stale {
        /// The block.
        block: u64,
        /// Its age.
        age: u64,
        /// The bound.
        bound: u64,
    },
}

/// A KMS node the chain allows, with the registered root keys at the block checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KmsStanding {
    /// The finalized block checked at.
    pub block: BlockRef,
    /// The node's identity address.
    pub node: Address,
    /// Its aggregated measurement (from its evidence).
    pub mr_aggregated: B256,
    /// Its device id (from its evidence).
    pub device_id: B256,
    /// The registered root signer.
    pub root_signer: Address,
    /// The registered root CA key and generation: the anchor for KMS-issued certificates.
    pub roots: RootAnchor,
}

/// Checks KMS nodes against one deployment.
#[derive(Clone, Debug)]
pub struct KmsIdentityChecker {
    provider: DynProvider,
    chain_id: u64,
    kms_registry: Address,
    finality: Finality,
    max_age: Duration,
    policy: Policy,
    collateral: Collateral,
}

fn rpc(call: &'static str) -> impl FnOnce(alloy::transports::TransportError) -> IdentityError {
    move |e| IdentityError::Rpc {
        call,
        reason: e.to_string(),
    }
}

impl KmsIdentityChecker {
    /// A checker reading `rpc_url` (each request bounded by `timeout`), which must serve
    /// `chain_id`, for the registry at `kms_registry`; a finalized block older than `max_age`
    /// answers nothing; evidence is verified under `policy` with `collateral`.
    #[allow(clippy::too_many_arguments)]
    pub async fn connect(
        rpc_url: &str,
        chain_id: u64,
        kms_registry: Address,
        finality: Finality,
        max_age: Duration,
        timeout: Duration,
        policy: Policy,
        collateral: Collateral,
    ) -> Result<Self, IdentityError> {
        let url = url::Url::parse(rpc_url).map_err(|e| IdentityError::Url(e.to_string()))?;
        let client = alloy::transports::http::reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| IdentityError::Url(e.to_string()))?;
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect_reqwest(client, url)
            .erased();
        let actual = provider.get_chain_id().await.map_err(rpc("eth_chainId"))?;
        if actual != chain_id {
            return Err(IdentityError::WrongChain {
                expected: chain_id,
                actual,
            });
        }
        Ok(Self {
            provider,
            chain_id,
            kms_registry,
            finality,
            max_age,
            policy,
            collateral,
        })
    }

    async fn finalized(&self) -> Result<BlockRef, IdentityError> {
        let tag = match self.finality {
            Finality::Tag => BlockNumberOrTag::Finalized,
            Finality::Confirmations(n) => {
                let head = self
                    .provider
                    .get_block_number()
                    .await
                    .map_err(rpc("eth_blockNumber"))?;
                BlockNumberOrTag::Number(head.saturating_sub(n))
            }
        };
        let block = self
            .provider
            .get_block_by_number(tag)
            .await
            .map_err(rpc("eth_getBlockByNumber"))?
            .ok_or(IdentityError::Rpc {
                call: "eth_getBlockByNumber",
                reason: "no finalized block".into(),
            })?;
        Ok(BlockRef {
            number: block.header.number,
            hash: block.header.hash,
            timestamp: block.header.timestamp,
        })
    }

    async fn call<C: SolCall>(&self, call: &C, at: B256) -> Result<C::Return, IdentityError> {
        let tx = TransactionRequest::default()
            .with_to(self.kms_registry)
            .with_input(call.abi_encode());
        let block = BlockId::Hash(RpcBlockHash {
            block_hash: at,
            require_canonical: Some(true),
        });
        let out = self
            .provider
            .call(tx)
            .block(block)
            .await
            .map_err(|e| IdentityError::Rpc {
                call: C::SIGNATURE,
                reason: e.to_string(),
            })?;
        C::abi_decode_returns(&out).map_err(|e| IdentityError::Rpc {
            call: C::SIGNATURE,
            reason: format!("undecodable answer: {e}"),
        })
    }

    /// Checks the node that presented `certificate` (DER) and states it is `node`, at the
    /// finalized block; `now` (unix seconds) is the time evidence is verified at.
    pub async fn check(
        &self,
        certificate: &[u8],
        node: Address,
        now: u64,
    ) -> Result<KmsStanding, IdentityError> {
        let evidence = covenant_attest::ratls::verify_certificate(
            certificate,
            &self.collateral,
            &self.policy,
            now,
        )?;
        let bound = evidence.kms_identity().map(Address::from);
        if bound != Some(node) {
            return Err(IdentityError::IdentityMismatch {
                node,
                evidence: bound,
            });
        }
        let boot = covenant_chain::kms_boot_info(&evidence);
        let block = self.finalized().await?;
        let age = now.saturating_sub(block.timestamp);
        if age > self.max_age.as_secs() {
            return Err(IdentityError::Stale {
                block: block.number,
                age,
                bound: self.max_age.as_secs(),
            });
        }
        let allowed = self
            .call(
                &KmsRegistry::isKmsAllowedCall { boot: boot.clone() },
                block.hash,
            )
            .await?;
        if !allowed._0 {
            return Err(IdentityError::NotAllowed {
                block: block.number,
                reason: allowed._1,
            });
        }
        let record = self
            .call(&KmsRegistry::kmsNodeCall { node }, block.hash)
            .await?;
        if !record.active
            || record.mrAggregated != boot.mrAggregated
            || record.deviceId != boot.deviceId
        {
            return Err(IdentityError::NotOnboarded {
                node,
                block: block.number,
            });
        }
        let roots = self
            .call(&KmsRegistry::kmsRootKeysCall {}, block.hash)
            .await?;
        if roots._2 == 0 {
            return Err(IdentityError::RootKeys {
                block: block.number,
            });
        }
        Ok(KmsStanding {
            block,
            node,
            mr_aggregated: boot.mrAggregated,
            device_id: boot.deviceId,
            root_signer: roots._0,
            roots: RootAnchor {
                chain_id: self.chain_id,
                kms_registry: self.kms_registry,
                generation: roots._2,
                ca_public_key: roots._1.to_vec(),
            },
        })
    }

    /// [`Self::check`] of the node that answered `/v1/metadata` on a connection that presented
    /// `certificate`; the root keys the node states must be the registered ones.
    pub async fn check_metadata(
        &self,
        certificate: Option<&[u8]>,
        metadata: &Metadata,
        now: u64,
    ) -> Result<KmsStanding, IdentityError> {
        let certificate = certificate.ok_or(IdentityError::NoCertificate)?;
        let standing = self.check(certificate, metadata.node, now).await?;
        let states_registered = metadata.root.as_ref().is_some_and(|r| {
            r.root_generation == standing.roots.generation
                && r.root_signer == standing.root_signer
                && r.root_ca_public_key.as_ref() == standing.roots.ca_public_key.as_slice()
        });
        if metadata.chain_id != self.chain_id || metadata.kms_registry != self.kms_registry {
            return Err(IdentityError::OtherDeployment {
                chain_id: metadata.chain_id,
                kms_registry: metadata.kms_registry,
            });
        }
        if !states_registered {
            return Err(IdentityError::RootKeys {
                block: standing.block.number,
            });
        }
        Ok(standing)
    }
}
