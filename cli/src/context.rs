//! Reaching the chain and the indexer, finding the deployment, and signing (or not).

use std::path::PathBuf;

use alloy::{
    network::{EthereumWallet, TransactionBuilder},
    primitives::{Address, Bytes, U256},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::types::{TransactionReceipt, TransactionRequest},
    signers::local::PrivateKeySigner,
};
use covenant_chain::Deployment;
use serde_json::{Value, json};

use crate::{
    Global,
    error::{Context as _, Failure},
};

/// The environment variable a signing key (hex) is read from. Never a flag: a key on a command
/// line ends up in shell histories and process listings.
pub(crate) const KEY_ENV: &str = "COVENANT_PRIVATE_KEY";
/// The environment variable a keystore's password is read from.
pub(crate) const KEYSTORE_PASSWORD_ENV: &str = "COVENANT_KEYSTORE_PASSWORD";

/// A connected chain with its deployment.
pub(crate) struct Chain {
    pub(crate) provider: DynProvider,
    pub(crate) deployment: Deployment,
    pub(crate) chain_id: u64,
}

impl Chain {
    /// Connects to `global.rpc_url` and reads the deployment for its chain.
    pub(crate) async fn connect(global: &Global) -> Result<Self, Failure> {
        let provider = ProviderBuilder::new()
            .connect_http(global.rpc_url.clone())
            .erased();
        let chain_id = provider.get_chain_id().await.map_err(|e| {
            Failure::new(format!("no chain at {}: {e}", global.rpc_url))
                .next("start the devnet (scripts/devnet) or pass --rpc-url / COVENANT_RPC_URL")
        })?;
        let path = global
            .deployment
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("deployments/{chain_id}.json")));
        let deployment = Deployment::read(&path).map_err(|e| {
            Failure::new(format!("reading the deployment {}: {e}", path.display()))
                .next("run from the repository root, or pass --deployment / COVENANT_DEPLOYMENT")
        })?;
        if deployment.chain_id != chain_id {
            return Err(Failure::new(format!(
                "the deployment {} is for chain {}, but {} is chain {chain_id}",
                path.display(),
                deployment.chain_id,
                global.rpc_url
            ))
            .next("pass the deployment file of this chain with --deployment"));
        }
        Ok(Self {
            provider,
            deployment,
            chain_id,
        })
    }
}

impl Chain {
    /// The chain's latest block's header.
    pub(crate) async fn head(&self) -> Result<alloy::rpc::types::Header, Failure> {
        Ok(self
            .provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .doing("reading the chain's latest block")?
            .ok_or_else(|| Failure::new("the chain has no latest block"))?
            .header)
    }

    /// The KMS root keys registered now: signer, root CA public key, generation.
    pub(crate) async fn root_keys(
        &self,
    ) -> Result<covenant_chain::kms_registry::KmsRegistry::kmsRootKeysReturn, Failure> {
        covenant_chain::kms_registry::KmsRegistry::new(
            self.deployment.contracts.kms_registry,
            &self.provider,
        )
        .kmsRootKeys()
        .call()
        .await
        .doing("reading the KMS root keys on chain")
    }
}

/// Who sends transactions.
pub(crate) enum Sender {
    /// Sign with this key.
    Key(PrivateKeySigner),
    /// Print the transactions instead.
    Unsigned,
}

impl Sender {
    /// The sender `global` asks for: `--unsigned`, else `--keystore`, else the key in
    /// [`KEY_ENV`].
    pub(crate) fn from(global: &Global) -> Result<Self, Failure> {
        if global.unsigned {
            return Ok(Self::Unsigned);
        }
        if let Some(signer) = &global.signer {
            return Ok(Self::Key(signer.clone()));
        }
        if let Some(path) = &global.keystore {
            let password = std::env::var(KEYSTORE_PASSWORD_ENV).map_err(|_| {
                Failure::new(format!("{KEYSTORE_PASSWORD_ENV} is not set")).next(format!(
                    "export {KEYSTORE_PASSWORD_ENV} with the keystore's password"
                ))
            })?;
            let signer = PrivateKeySigner::decrypt_keystore(path, password)
                .doing(&format!("opening the keystore {}", path.display()))?;
            return Ok(Self::Key(signer));
        }
        let key = std::env::var(KEY_ENV).map_err(|_| {
            Failure::new("no key to sign with").next(format!(
                "export {KEY_ENV}=<hex key>, pass --keystore <file>, or --unsigned to print the \
                 transaction for another signer"
            ))
        })?;
        let signer: PrivateKeySigner = key
            .trim()
            .parse()
            .map_err(|_| Failure::new(format!("{KEY_ENV} is not a hex private key")))?;
        Ok(Self::Key(signer))
    }
}

/// A transaction to make: `data` to `to`, described in words.
pub(crate) struct Call {
    pub(crate) to: Address,
    pub(crate) data: Bytes,
    pub(crate) what: String,
}

/// What happened to a [`Call`].
pub(crate) enum Sent {
    /// Mined and successful.
    Mined(Box<TransactionReceipt>),
    /// Printed for another signer.
    Unsigned(Value),
}

impl Sent {
    /// The receipt, if it was sent.
    pub(crate) fn receipt(&self) -> Option<&TransactionReceipt> {
        match self {
            Self::Mined(r) => Some(r),
            Self::Unsigned(_) => None,
        }
    }

    /// The first event `E` the transaction emitted, if it was sent.
    pub(crate) fn event<E: alloy::sol_types::SolEvent>(&self) -> Option<E> {
        self.receipt()?
            .inner
            .logs()
            .iter()
            .find_map(|l| l.log_decode::<E>().ok())
            .map(|l| l.inner.data)
    }

    /// JSON for the report: the transaction hash and block, or the unsigned transaction.
    pub(crate) fn json(&self) -> Value {
        match self {
            Self::Mined(r) => json!({
                "transaction": r.transaction_hash.to_string(),
                "block": r.block_number,
            }),
            Self::Unsigned(tx) => json!({ "unsigned": tx }),
        }
    }

    /// A line for people.
    pub(crate) fn text(&self) -> String {
        match self {
            Self::Mined(r) => format!(
                "sent in transaction {} (block {})",
                r.transaction_hash,
                r.block_number.unwrap_or_default()
            ),
            Self::Unsigned(tx) => format!(
                "not sent (--unsigned); the transaction for your signer:\n{}",
                serde_json::to_string_pretty(tx).unwrap_or_default()
            ),
        }
    }
}

/// Sends `call` from `sender` on `chain` and waits for its receipt (a revert is a failure with
/// the node's reason), or prints it when unsigned.
pub(crate) async fn send(chain: &Chain, sender: &Sender, call: Call) -> Result<Sent, Failure> {
    let signer = match sender {
        Sender::Unsigned => {
            return Ok(Sent::Unsigned(json!({
                "chainId": chain.chain_id,
                "to": call.to.to_checksum(None),
                "value": "0",
                "data": call.data.to_string(),
                "description": call.what,
            })));
        }
        Sender::Key(signer) => signer.clone(),
    };
    let from = signer.address();
    let tx = TransactionRequest::default()
        .with_from(from)
        .with_to(call.to)
        .with_value(U256::ZERO)
        .with_input(call.data.clone());
    // The estimate runs the call: a call the chain would refuse fails here, with its reason,
    // before anything is signed.
    let gas = chain
        .provider
        .estimate_gas(tx.clone())
        .await
        .map_err(|e| Failure::new(format!("{} would fail: {e}", call.what)))?;
    // A quarter more than estimated: a call whose gas depends on the block it lands in (a
    // timestamp written to storage) can need more than in the estimate's block.
    let tx = tx.with_gas_limit(gas + gas / 4);
    let wallet = ProviderBuilder::new()
        .wallet(EthereumWallet::from(signer))
        .connect_provider(chain.provider.clone());
    let pending = wallet
        .send_transaction(tx)
        .await
        .doing(&format!("sending {}", call.what))?;
    let receipt = pending
        .get_receipt()
        .await
        .doing(&format!("waiting for the receipt of {}", call.what))?;
    if !receipt.status() {
        return Err(Failure::new(format!(
            "{} reverted in transaction {}",
            call.what, receipt.transaction_hash
        )));
    }
    Ok(Sent::Mined(Box::new(receipt)))
}

/// The indexer's API.
pub(crate) struct Indexer {
    base: url::Url,
    client: reqwest::Client,
}

impl Indexer {
    pub(crate) fn new(global: &Global) -> Self {
        Self {
            base: global.indexer_url.clone(),
            client: reqwest::Client::new(),
        }
    }

    /// `GET path` as JSON. A 404 is `Ok(None)`; any other error status is a failure naming the
    /// indexer's message.
    pub(crate) async fn get(&self, path: &str) -> Result<Option<Value>, Failure> {
        let url = self
            .base
            .join(path)
            .doing(&format!("building the indexer URL for {path}"))?;
        let response = self.client.get(url.clone()).send().await.map_err(|e| {
            Failure::new(format!("no indexer at {}: {e}", self.base)).next(
                "start the devnet (scripts/devnet) or pass --indexer-url / COVENANT_INDEXER_URL",
            )
        })?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .doing(&format!("reading the indexer's answer to {url}"))?;
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            let message = body["error"].as_str().unwrap_or("no message").to_owned();
            return Err(Failure::new(format!(
                "the indexer answered {status} to {path}: {message}"
            )));
        }
        Ok(Some(body))
    }
}
