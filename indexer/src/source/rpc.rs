//! The JSON-RPC calls the indexer makes, each mapped to a typed error that names the call.

use alloy::{
    eips::BlockNumberOrTag,
    primitives::{Address, B256, Bytes},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::types::{Filter, Log, TransactionRequest},
};

use crate::{Error, Result, source::LogQuery};

/// A block as the indexer keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockRef {
    /// Height.
    pub number: u64,
    /// Hash.
    pub hash: B256,
    /// Parent's hash.
    pub parent_hash: B256,
    /// Timestamp (seconds).
    pub timestamp: u64,
}

/// A read-only JSON-RPC client over HTTP.
#[derive(Clone, Debug)]
pub struct Rpc {
    provider: DynProvider,
    /// The URL as given and as it may be shown: transport errors quote the URL, and a provider
    /// key in it must not reach logs or `/healthz`.
    url: String,
    shown: String,
}

impl Rpc {
    /// A client for `url` whose every request gives up after `timeout` (no fillers: this
    /// client never sends transactions). A node that stops answering is an outage, not a hang.
    pub fn new(url: &str, timeout: std::time::Duration) -> Result<Self> {
        let shown = crate::config::SecretUrl::new(url).redacted();
        let raw = url.to_owned();
        let url = url
            .parse()
            .map_err(|_| Error::Config(format!("rpc_url {shown} is not a URL")))?;
        let http = alloy::transports::http::reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| Error::Config(format!("http client: {e}")))?;
        let client = alloy::rpc::client::RpcClient::new_http_with_client(http, url);
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect_client(client)
            .erased();
        Ok(Self {
            provider,
            url: raw,
            shown,
        })
    }

    fn fail(&self, call: impl Into<String>, err: impl std::fmt::Display) -> Error {
        Error::Rpc {
            call: call.into(),
            message: err.to_string().replace(&self.url, &self.shown),
        }
    }

    /// The provider, for `eth_call`s made through generated bindings.
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// `eth_chainId`.
    pub async fn chain_id(&self) -> Result<u64> {
        self.provider
            .get_chain_id()
            .await
            .map_err(|e| self.fail("eth_chainId", e))
    }

    /// The head's number.
    pub async fn head_number(&self) -> Result<u64> {
        self.provider
            .get_block_number()
            .await
            .map_err(|e| self.fail("eth_blockNumber", e))
    }

    /// The number of the node's `finalized` block (0 when the node has none yet).
    pub async fn finalized_number(&self) -> Result<u64> {
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Finalized)
            .await
            .map_err(|e| self.fail("eth_getBlockByNumber(finalized)", e))?;
        Ok(block.map(|b| b.header.number).unwrap_or(0))
    }

    /// The header of block `number`, or `None` if the node does not have it (yet).
    pub async fn block(&self, number: u64) -> Result<Option<BlockRef>> {
        let call = || format!("eth_getBlockByNumber({number})");
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Number(number))
            .await
            .map_err(|e| self.fail(call(), e))?;
        let Some(block) = block else { return Ok(None) };
        let h = &block.header;
        if h.number != number {
            return Err(Error::RpcInconsistent {
                call: call(),
                message: format!("returned block #{}", h.number),
            });
        }
        Ok(Some(BlockRef {
            number,
            hash: h.hash,
            parent_hash: h.parent_hash,
            timestamp: h.timestamp,
        }))
    }

    /// The header of block `number`; a missing block is an error.
    pub async fn require_block(&self, number: u64) -> Result<BlockRef> {
        self.block(number)
            .await?
            .ok_or_else(|| Error::RpcInconsistent {
                call: format!("eth_getBlockByNumber({number})"),
                message: "block not found".into(),
            })
    }

    /// `eth_getLogs` over `from..=to`: every log of `addresses`, or every log whose first topic
    /// is one of `topics` (exactly one of the two is used; see [`crate::source::LogQuery`]).
    pub async fn logs_in_range(&self, from: u64, to: u64, query: &LogQuery) -> Result<Vec<Log>> {
        let filter = Filter::new().from_block(from).to_block(to);
        let filter = match query {
            LogQuery::Addresses(a) => filter.address(a.clone()),
            LogQuery::Topics(t) => filter.event_signature(t.clone()),
        };
        let call = || format!("eth_getLogs({from}..={to})");
        let logs = self.provider.get_logs(&filter).await.map_err(|e| {
            let refused = is_refusal(&e);
            match self.fail(call(), e) {
                Error::Rpc { call, message } if refused => Error::RangeRefused { call, message },
                other => other,
            }
        })?;
        for log in &logs {
            let n = log.block_number.unwrap_or(u64::MAX);
            if n < from
                || n > to
                || log.block_hash.is_none()
                || log.log_index.is_none()
                || log.removed
            {
                return Err(Error::RpcInconsistent {
                    call: format!("eth_getLogs({from}..={to})"),
                    message: format!("log outside the range or without position: {log:?}"),
                });
            }
        }
        Ok(logs)
    }

    /// Every log of the block with hash `hash` (the block's logs, consistent with that header).
    pub async fn logs_at(&self, number: u64, hash: B256) -> Result<Vec<Log>> {
        let call = || format!("eth_getLogs(block #{number} {hash})");
        let logs = self
            .provider
            .get_logs(&Filter::new().at_block_hash(hash))
            .await
            .map_err(|e| self.fail(call(), e))?;
        for log in &logs {
            if log.block_hash != Some(hash) || log.log_index.is_none() || log.removed {
                return Err(Error::RpcInconsistent {
                    call: call(),
                    message: format!("log of another block or without position: {log:?}"),
                });
            }
        }
        Ok(logs)
    }

    /// `eth_call` of `data` on `to` at block `hash`.
    pub async fn call_at(&self, to: Address, data: Bytes, hash: B256) -> Result<Bytes> {
        let tx = TransactionRequest::default().to(to).input(data.into());
        self.provider
            .call(tx)
            .block(hash.into())
            .await
            .map_err(|e| self.fail(format!("eth_call({to}) at {hash}"), e))
    }
}

/// Whether the node refused the request itself (an error response, a size limit, a timeout)
/// rather than being unreachable: only then does a smaller range help.
fn is_refusal(e: &alloy::transports::TransportError) -> bool {
    use alloy::transports::{RpcError, TransportErrorKind};
    match e {
        RpcError::ErrorResp(_) => true,
        RpcError::Transport(TransportErrorKind::HttpError(h)) => h.status == 413,
        RpcError::Transport(TransportErrorKind::Custom(inner)) => inner
            .downcast_ref::<alloy::transports::http::reqwest::Error>()
            .is_some_and(|r| r.is_timeout()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::is_refusal;
    use alloy::{
        rpc::json_rpc::ErrorPayload,
        transports::{HttpError, RpcError, TransportErrorKind},
    };

    #[test]
    fn only_refusals_shrink_ranges() {
        let resp = RpcError::ErrorResp(ErrorPayload {
            code: -32005,
            message: "query returned more than 10000 results".into(),
            data: None,
        });
        assert!(is_refusal(&resp));
        let too_large = RpcError::Transport(TransportErrorKind::HttpError(HttpError {
            status: 413,
            body: String::new(),
        }));
        assert!(is_refusal(&too_large));
        let unavailable = RpcError::Transport(TransportErrorKind::HttpError(HttpError {
            status: 503,
            body: String::new(),
        }));
        assert!(
            !is_refusal(&unavailable),
            "a node that is down is waited for, not split against"
        );
        assert!(!is_refusal(&RpcError::Transport(
            TransportErrorKind::BackendGone
        )));
    }
}
