//! The kms-oracle's view of the chain: the indexer mirror's finalized block (followed through
//! Postgres `LISTEN/NOTIFY`, re-read every second as a fallback) and `eth_call`s pinned to that
//! block's hash with `requireCanonical`. Decisions never read `latest`.

use std::time::Duration;

use alloy::{
    eips::{BlockId, RpcBlockHash},
    network::TransactionBuilder,
    primitives::{Address, B256, U256, keccak256},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::types::TransactionRequest,
    sol_types::SolCall,
};
use covenant_chain::Deployment;
use sqlx::{PgPool, postgres::PgListener};
use tokio::sync::watch;

use crate::{Error, Result};

/// Block `hash`, which the node must have on its canonical chain.
fn canonical(hash: B256) -> BlockId {
    BlockId::Hash(RpcBlockHash {
        block_hash: hash,
        require_canonical: Some(true),
    })
}

/// A finalized block of the mirror.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finalized {
    /// Its number.
    pub number: u64,
    /// Its hash.
    pub hash: B256,
    /// Its timestamp, unix seconds.
    pub timestamp: u64,
}

/// The chain as the kms-oracle reads it.
#[derive(Clone, Debug)]
pub struct Chain {
    provider: DynProvider,
    mirror: PgPool,
    reads: prometheus::IntCounterVec,
    /// The deployment (chain id, contracts).
    pub deployment: Deployment,
}

impl Chain {
    /// Connects to the RPC node and the indexer's mirror database; both must serve the
    /// deployment's chain. Every chain read is counted in `reads` (by the function read).
    pub async fn connect(
        rpc_url: &str,
        mirror_url: &str,
        deployment: Deployment,
        timeout: Duration,
        reads: prometheus::IntCounterVec,
    ) -> Result<Self> {
        let url = rpc_url
            .parse()
            .map_err(|e| Error::Config(format!("rpc url: {e}")))?;
        let client = alloy::transports::http::reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| Error::Config(format!("http client: {e}")))?;
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect_reqwest(client, url)
            .erased();
        let chain_id = provider
            .get_chain_id()
            .await
            .map_err(|e| Error::Rpc(format!("eth_chainId: {e}")))?;
        if chain_id != deployment.chain_id {
            return Err(Error::WrongChain {
                expected: deployment.chain_id,
                source_name: "the RPC node",
                actual: chain_id,
            });
        }
        let mirror = crate::store::connect(mirror_url, 8).await?;
        let view = {
            let mut c = mirror.acquire().await?;
            covenant_indexer::store::read::view(&mut c).await?
        };
        if let Some(v) = view
            && v.chain_id != deployment.chain_id
        {
            return Err(Error::WrongChain {
                expected: deployment.chain_id,
                source_name: "the indexer's mirror",
                actual: v.chain_id,
            });
        }
        Ok(Self {
            provider,
            mirror,
            reads,
            deployment,
        })
    }

    /// The KMS registry.
    pub fn registry(&self) -> Address {
        self.deployment.contracts.kms_registry
    }

    /// The mirror's pool (read only).
    pub fn mirror(&self) -> &PgPool {
        &self.mirror
    }

    /// The read provider.
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// `call` on `to` at block `hash`, which must be canonical.
    pub async fn call<C: SolCall>(&self, to: Address, call: &C, hash: B256) -> Result<C::Return> {
        let function = C::SIGNATURE.split('(').next().unwrap_or(C::SIGNATURE);
        self.reads.with_label_values(&[function]).inc();
        let tx = TransactionRequest::default()
            .with_to(to)
            .with_input(call.abi_encode());
        let out = self
            .provider
            .call(tx)
            .block(canonical(hash))
            .await
            .map_err(|e| Error::Rpc(format!("eth_call {} at {hash}: {e}", C::SIGNATURE)))?;
        C::abi_decode_returns(&out)
            .map_err(|e| Error::Rpc(format!("{} returned undecodable data: {e}", C::SIGNATURE)))
    }

    /// The ERC-1967 implementation behind `proxy` at block `hash` (which must be canonical).
    pub async fn implementation(&self, proxy: Address, hash: B256) -> Result<Address> {
        // keccak256("eip1967.proxy.implementation") - 1 (ERC-1967).
        let slot = U256::from_be_bytes(keccak256("eip1967.proxy.implementation").0) - U256::from(1);
        self.reads
            .with_label_values(&["erc1967Implementation"])
            .inc();
        let value = self
            .provider
            .get_storage_at(proxy, slot)
            .block_id(canonical(hash))
            .await
            .map_err(|e| {
                Error::Rpc(format!("ERC-1967 implementation of {proxy} at {hash}: {e}"))
            })?;
        Ok(Address::from_word(value.into()))
    }

    /// Reads the mirror's finalized block (`None` before it has one).
    pub async fn finalized(&self) -> Result<Option<Finalized>> {
        let mut c = self.mirror.acquire().await?;
        let view = covenant_indexer::store::read::view(&mut c).await?;
        Ok(view.and_then(|v| {
            Some(Finalized {
                number: v.finalized,
                hash: v.finalized_hash?,
                timestamp: v.finalized_timestamp?,
            })
        }))
    }

    /// Follows the mirror's finalized block into `tx` until `shutdown`. A failing database leaves
    /// the last value in place, so it ages and decisions become "stale" (fail closed).
    pub async fn follow_finalized(
        self,
        tx: watch::Sender<Option<Finalized>>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut listener: Option<PgListener> = None;
        loop {
            if listener.is_none() {
                match PgListener::connect_with(&self.mirror).await {
                    Ok(mut l) => {
                        if l.listen(covenant_indexer::store::FINALIZED_CHANNEL)
                            .await
                            .is_ok()
                        {
                            listener = Some(l);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(target: "kms::chain", error = %e, "cannot listen to the mirror");
                    }
                }
            }
            match self.finalized().await {
                Ok(Some(f)) => {
                    tx.send_if_modified(|old| {
                        let newer = old.is_none_or(|o| {
                            o.number < f.number || (o.number == f.number && o.hash != f.hash)
                        });
                        if newer {
                            *old = Some(f);
                        }
                        newer
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(target: "kms::chain", error = %e, "cannot read the mirror's finalized block")
                }
            }
            let wait = async {
                match listener.as_mut() {
                    Some(l) => match tokio::time::timeout(Duration::from_secs(1), l.recv()).await {
                        Ok(Ok(_)) | Err(_) => true,
                        Ok(Err(_)) => false,
                    },
                    None => {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        true
                    }
                }
            };
            tokio::select! {
                ok = wait => if !ok { listener = None; },
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
    }
}

/// Sends transactions as the node (grant-log commits, onboarding records).
#[derive(Clone, Debug)]
pub struct Sender {
    provider: DynProvider,
}

impl Sender {
    /// A sender signing with `key` through `rpc_url`.
    pub fn new(rpc_url: &str, key: &k256::ecdsa::SigningKey) -> Result<Self> {
        let signer = alloy::signers::local::PrivateKeySigner::from_signing_key(key.clone());
        let url = rpc_url
            .parse()
            .map_err(|e| Error::Config(format!("rpc url: {e}")))?;
        let provider = ProviderBuilder::new()
            .wallet(signer)
            .connect_http(url)
            .erased();
        Ok(Self { provider })
    }

    /// Sends `call` to `to` and waits for its receipt; a revert is an error.
    pub async fn send<C: SolCall>(&self, to: Address, call: &C) -> Result<B256> {
        let tx = TransactionRequest::default()
            .with_to(to)
            .with_input(call.abi_encode());
        let pending = self
            .provider
            .send_transaction(tx)
            .await
            .map_err(|e| Error::Rpc(format!("{}: {e}", C::SIGNATURE)))?;
        let receipt = pending
            .with_timeout(Some(Duration::from_secs(60)))
            .get_receipt()
            .await
            .map_err(|e| Error::Rpc(format!("{} receipt: {e}", C::SIGNATURE)))?;
        if !receipt.status() {
            return Err(Error::Rpc(format!(
                "{} reverted in {}",
                C::SIGNATURE,
                receipt.transaction_hash
            )));
        }
        Ok(receipt.transaction_hash)
    }
}
