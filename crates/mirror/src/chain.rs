//! How the view reaches the chain and the mirror: `eth_call`s and storage reads pinned to a
//! block hash with `requireCanonical` (never `latest`), the mirror's pool, and the mirror's
//! finalized block, followed through Postgres `LISTEN/NOTIFY`.

use std::{str::FromStr, time::Duration};

use alloy::{
    eips::{BlockId, RpcBlockHash},
    network::TransactionBuilder,
    primitives::{Address, B256, Bytes, U256, keccak256},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::types::TransactionRequest,
    sol_types::SolCall,
};
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgListener, PgPoolOptions},
};
use tokio::sync::watch;

use crate::{Error, Result, read};

/// The channel the indexer announces each committed advance of its finalized view on (payload:
/// the block number). Part of the schema's contract: the indexer sends it in the committing
/// transaction, readers listen.
pub const FINALIZED_CHANNEL: &str = "covenant_indexer_finalized";

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

/// Read-only chain access for decisions: every read is pinned to a canonical block hash and
/// counted by the function read.
#[derive(Clone)]
pub struct ChainReader {
    provider: DynProvider,
    reads: prometheus::IntCounterVec,
    /// The RPC URL, redacted from errors (it may carry credentials).
    url: String,
}

impl std::fmt::Debug for ChainReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainReader").finish_non_exhaustive()
    }
}

/// `e` as an error of `call` at `block`, with `url` redacted from its text.
fn rpc_error(
    call: &'static str,
    block: B256,
    e: &alloy::transports::TransportError,
    url: &str,
) -> Error {
    let mut reason = e.to_string();
    for form in [url, url.trim_end_matches('/')] {
        if !form.is_empty() {
            reason = reason.replace(form, "<rpc url>");
        }
    }
    if e.as_error_resp().is_some() {
        Error::Reverted {
            call,
            block,
            reason,
        }
    } else {
        Error::Rpc {
            call,
            block,
            reason,
        }
    }
}

impl ChainReader {
    /// Connects to `rpc_url` (each request bounded by `timeout`) and checks that it serves
    /// `chain_id`. Reads are counted in `reads` (label: the function).
    pub async fn connect(
        rpc_url: &str,
        timeout: Duration,
        chain_id: u64,
        reads: prometheus::IntCounterVec,
    ) -> Result<Self> {
        let url = url::Url::parse(rpc_url).map_err(|e| Error::Url {
            what: "rpc",
            reason: e.to_string(),
        })?;
        let client = alloy::transports::http::reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| Error::Url {
                what: "rpc",
                reason: e.to_string(),
            })?;
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect_reqwest(client, url.clone())
            .erased();
        let actual = provider
            .get_chain_id()
            .await
            .map_err(|e| rpc_error("eth_chainId", B256::ZERO, &e, url.as_str()))?;
        if actual != chain_id {
            return Err(Error::WrongChain {
                expected: chain_id,
                source_name: "the RPC node",
                actual,
            });
        }
        Ok(Self {
            provider,
            reads,
            url: url.to_string(),
        })
    }

    /// The provider (read-only; no fillers).
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
            .map_err(|e| rpc_error(C::SIGNATURE, hash, &e, &self.url))?;
        C::abi_decode_returns(&out).map_err(|source| Error::Decode {
            call: C::SIGNATURE,
            source,
        })
    }

    /// `calls` on `to` at block `hash` (which must be canonical) in one JSON-RPC batch: one
    /// answer per call, in order. `Err`: the batch itself failed on the way.
    pub async fn call_many<C: SolCall>(
        &self,
        to: Address,
        calls: &[C],
        hash: B256,
    ) -> Result<Vec<Result<C::Return>>> {
        match calls {
            [] => return Ok(Vec::new()),
            [call] => return Ok(vec![self.call(to, call, hash).await]),
            _ => {}
        }
        let function = C::SIGNATURE.split('(').next().unwrap_or(C::SIGNATURE);
        self.reads
            .with_label_values(&[function])
            .inc_by(calls.len() as u64);
        let mut batch = alloy::rpc::client::BatchRequest::new(self.provider.client());
        let mut waiters = Vec::with_capacity(calls.len());
        for call in calls {
            let tx = TransactionRequest::default()
                .with_to(to)
                .with_input(call.abi_encode());
            let waiter = batch
                .add_call::<_, Bytes>("eth_call", &(tx, canonical(hash)))
                .map_err(|e| rpc_error(C::SIGNATURE, hash, &e, &self.url))?;
            waiters.push(waiter);
        }
        batch
            .send()
            .await
            .map_err(|e| rpc_error(C::SIGNATURE, hash, &e, &self.url))?;
        let mut out = Vec::with_capacity(waiters.len());
        for waiter in waiters {
            out.push(match waiter.await {
                Ok(bytes) => C::abi_decode_returns(&bytes).map_err(|source| Error::Decode {
                    call: C::SIGNATURE,
                    source,
                }),
                Err(e) => Err(rpc_error(C::SIGNATURE, hash, &e, &self.url)),
            });
        }
        Ok(out)
    }

    /// The block at `tag` (number, hash, timestamp), `None` if the node has none: for anchoring
    /// the mirror's finalized block (`crate::anchor`), never for a decision.
    pub(crate) async fn header(
        &self,
        call: &'static str,
        tag: alloy::eips::BlockNumberOrTag,
    ) -> Result<Option<Finalized>> {
        self.reads
            .with_label_values(&["eth_getBlockByNumber"])
            .inc();
        let block = self
            .provider
            .get_block_by_number(tag)
            .await
            .map_err(|e| rpc_error(call, B256::ZERO, &e, &self.url))?;
        Ok(block.map(|b| Finalized {
            number: b.header.number,
            hash: b.header.hash,
            timestamp: b.header.timestamp,
        }))
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
                rpc_error(
                    "eth_getStorageAt(erc1967 implementation)",
                    hash,
                    &e,
                    &self.url,
                )
            })?;
        Ok(Address::from_word(value.into()))
    }
}

/// Opens a pool on the mirror at `url`. Every statement is planned for its actual parameters
/// (`plan_cache_mode = force_custom_plan`): reads "as of block N" are only cheap when the
/// planner sees N.
pub async fn connect_mirror(url: &str, max_connections: u32) -> Result<PgPool> {
    let options =
        PgConnectOptions::from_str(url)?.options([("plan_cache_mode", "force_custom_plan")]);
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await?)
}

/// A second pool on the same mirror as `mirror` (same server, credentials and size) whose
/// statements run on generic plans (`plan_cache_mode = force_generic_plan`): planned once per
/// connection, not per execution. Only for statements whose best plan does not depend on the
/// block they read "as of" — the per-app boot read, [`read::app_boot_rows`], where planning its
/// six branches cost ~0.4 ms against ~0.1 ms to run them, the largest part of a new app's
/// decision in PostgreSQL. The generic plan is only as good as the indexes every parameter value
/// can use: `members_key` (indexer migration `20261207000001`) keeps each branch one probe.
/// Connections open on first use.
pub(crate) fn generic_plan_pool(mirror: &PgPool) -> PgPool {
    // PostgreSQL applies `-c` options in order, so this one overrides the custom-plan setting.
    let options = (*mirror.connect_options())
        .clone()
        .options([("plan_cache_mode", "force_generic_plan")]);
    PgPoolOptions::new()
        .max_connections(mirror.options().get_max_connections())
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options)
}

/// The mirror's finalized block (`None` before it has one).
pub async fn read_finalized(mirror: &PgPool) -> Result<Option<Finalized>> {
    let mut c = mirror.acquire().await?;
    let view = read::view(&mut c).await?;
    Ok(view.and_then(|v| {
        Some(Finalized {
            number: v.finalized,
            hash: v.finalized_hash?,
            timestamp: v.finalized_timestamp?,
        })
    }))
}

/// Follows the mirror's finalized block into `tx` until `shutdown`: woken by `NOTIFY` on
/// [`FINALIZED_CHANNEL`], re-read every `poll` as a fallback. The value only moves forward (or to
/// another hash at the same height). A failing database leaves the last value in place, so it
/// ages and decisions become "stale" (fail closed).
pub async fn follow_finalized(
    mirror: PgPool,
    tx: watch::Sender<Option<Finalized>>,
    poll: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut listener: Option<PgListener> = None;
    loop {
        if listener.is_none() {
            match PgListener::connect_with(&mirror).await {
                Ok(mut l) => {
                    if l.listen(FINALIZED_CHANNEL).await.is_ok() {
                        listener = Some(l);
                    }
                }
                Err(e) => {
                    tracing::warn!(target: "mirror::view", error = %e, "cannot listen to the mirror");
                }
            }
        }
        match read_finalized(&mirror).await {
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
                tracing::warn!(target: "mirror::view", error = %e, "cannot read the mirror's finalized block")
            }
        }
        let wait = async {
            match listener.as_mut() {
                Some(l) => match tokio::time::timeout(poll, l.recv()).await {
                    Ok(Ok(_)) | Err(_) => true,
                    Ok(Err(_)) => false,
                },
                None => {
                    tokio::time::sleep(poll).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn plan_cache_mode(pool: &PgPool) -> String {
        let (mode,): (String,) = sqlx::query_as("SHOW plan_cache_mode")
            .fetch_one(pool)
            .await
            .unwrap();
        mode
    }

    /// The boot read's pool plans generically, and the mirror pool it derives from still plans
    /// for each execution's parameters (what its "as of block" range reads need).
    #[tokio::test(flavor = "multi_thread")]
    async fn the_boot_read_pool_plans_generically_and_the_mirror_pool_does_not() {
        let db = covenant_testkit::postgres::database();
        let mirror = connect_mirror(db.url(), 2).await.unwrap();
        let boot_reads = generic_plan_pool(&mirror);
        assert_eq!(plan_cache_mode(&boot_reads).await, "force_generic_plan");
        assert_eq!(plan_cache_mode(&mirror).await, "force_custom_plan");
        assert_eq!(boot_reads.options().get_max_connections(), 2);
    }
}
