//! The mirror's errors. An `Err` means "could not decide": the caller fails closed. A policy
//! denial is never an error (see [`crate::Deny`]).

use alloy::primitives::B256;

/// Why the mirror or the chain could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A mirror query failed.
    #[error("mirror database: {0}")]
    Db(#[from] sqlx::Error),
    /// A URL could not be used.
    #[error("invalid {what} url: {reason}")]
    Url {
        /// Which URL.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// A chain read failed on the way (transport, timeout): nothing is known.
    #[error("rpc {call} at block {block} failed: {reason}")]
    Rpc {
        /// What was read.
        call: &'static str,
        /// The block hash it was pinned to (zero for unpinned reads).
        block: B256,
        /// What the transport said (the RPC URL, which may carry credentials, redacted).
        reason: String,
    },
    /// The node answered the read with an error (a revert, a block that is not canonical).
    #[error("rpc {call} at block {block} answered an error: {reason}")]
    Reverted {
        /// What was read.
        call: &'static str,
        /// The block hash it was pinned to.
        block: B256,
        /// The node's error.
        reason: String,
    },
    /// A chain read returned bytes its ABI does not describe.
    #[error("rpc {call} returned undecodable data: {source}")]
    Decode {
        /// What was read.
        call: &'static str,
        /// The decoding failure.
        #[source]
        source: alloy::sol_types::Error,
    },
    /// The RPC node or the mirror serves another chain than the deployment's.
    #[error(
        "wrong chain: the deployment is on chain {expected}, {source_name} serves chain {actual}"
    )]
    WrongChain {
        /// The deployment's chain id.
        expected: u64,
        /// Which source disagreed.
        source_name: &'static str,
        /// Its chain id.
        actual: u64,
    },
    /// The batch this question was answered in failed (see the error), shared by every
    /// question in it.
    #[error("{0}")]
    Shared(std::sync::Arc<Error>),
    /// A batched question went unanswered (a bug): nothing is known, so nothing is allowed.
    #[error("internal error: {0}")]
    Unanswered(&'static str),
    /// The view's settings are out of range.
    #[error("invalid policy view settings: {0}")]
    Settings(String),
    /// The mirror and the chain disagree about a value that is not a decision (a key
    /// generation): nothing can be answered at this block.
    #[error("the mirror and the chain disagree about {what} at block {block}")]
    Disagreement {
        /// What was compared.
        what: &'static str,
        /// The block.
        block: u64,
    },
}

/// The crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
