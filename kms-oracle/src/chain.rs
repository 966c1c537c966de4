//! The kms-oracle's own transactions: grant-log commits and onboarding records, signed with the
//! node key. Decisions never come from here: they read the chain through
//! [`covenant_mirror::PolicyView`] at a finalized block.

use std::time::Duration;

use alloy::{
    network::TransactionBuilder,
    primitives::{Address, B256},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::types::TransactionRequest,
    sol_types::SolCall,
};

use crate::{Error, Result};

fn chain(call: &'static str, reason: impl std::fmt::Display) -> Error {
    Error::Chain {
        call,
        reason: reason.to_string(),
    }
}

/// Sends transactions as the node (grant-log commits, onboarding records).
#[derive(Clone, Debug)]
pub struct Sender {
    provider: DynProvider,
    from: Address,
}

impl Sender {
    /// A sender signing with `key` through `rpc_url`.
    pub fn new(rpc_url: url::Url, key: &k256::ecdsa::SigningKey) -> Result<Self> {
        let signer = alloy::signers::local::PrivateKeySigner::from_signing_key(key.clone());
        let from = signer.address();
        let url = rpc_url;
        let provider = ProviderBuilder::new()
            .wallet(signer)
            .connect_http(url)
            .erased();
        Ok(Self { provider, from })
    }

    /// `call` on `to` at the latest block: for the node's own bookkeeping (its grant-log
    /// counter), never for a decision.
    pub async fn read_latest<C: SolCall>(&self, to: Address, call: &C) -> Result<C::Return> {
        let tx = TransactionRequest::default()
            .with_to(to)
            .with_input(call.abi_encode());
        let out = self
            .provider
            .call(tx)
            .await
            .map_err(|e| chain(C::SIGNATURE, e))?;
        C::abi_decode_returns(&out).map_err(|e| chain(C::SIGNATURE, e))
    }

    /// Sends `call` to `to` with a quarter more gas than estimated and waits for its receipt; a
    /// revert is an error. The margin covers a call whose gas depends on the block it lands in
    /// (a timestamp written to storage costs more when it changes a slot the estimate left alone).
    pub async fn send<C: SolCall>(&self, to: Address, call: &C) -> Result<B256> {
        let tx = TransactionRequest::default()
            .with_from(self.from)
            .with_to(to)
            .with_input(call.abi_encode());
        let gas = self
            .provider
            .estimate_gas(tx.clone())
            .await
            .map_err(|e| chain(C::SIGNATURE, format!("gas estimate: {e}")))?;
        let tx = tx.with_gas_limit(gas + gas / 4);
        let pending = self
            .provider
            .send_transaction(tx)
            .await
            .map_err(|e| chain(C::SIGNATURE, e))?;
        let receipt = pending
            .with_timeout(Some(Duration::from_secs(60)))
            .get_receipt()
            .await
            .map_err(|e| chain(C::SIGNATURE, format!("receipt: {e}")))?;
        if !receipt.status() {
            return Err(chain(
                C::SIGNATURE,
                format!("reverted in {}", receipt.transaction_hash),
            ));
        }
        Ok(receipt.transaction_hash)
    }
}
