//! The indexer's errors. A failed RPC or database call is retried by the sync loop; a
//! [`Error::is_fatal`] error stops it (the mirror stays at its last committed block).

/// Why the indexer could not go on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The deployment file could not be used.
    #[error(transparent)]
    Deployment(#[from] covenant_chain::DeploymentError),
    /// An RPC call failed.
    #[error("rpc {call} failed: {message}")]
    Rpc {
        /// What was asked.
        call: String,
        /// What the node or transport said.
        message: String,
    },
    /// The node refused an `eth_getLogs` range (too many results, response too large, timed
    /// out): the range is split, never the whole loop retried with it.
    #[error("rpc {call} refused the range: {message}")]
    RangeRefused {
        /// What was asked.
        call: String,
        /// What the node said.
        message: String,
    },
    /// The node answered something that cannot be right.
    #[error("rpc {call} returned an inconsistent answer: {message}")]
    RpcInconsistent {
        /// What was asked.
        call: String,
        /// What is wrong with the answer.
        message: String,
    },
    /// The node serves another chain than the deployment's.
    #[error("rpc serves chain {actual}, the deployment is on chain {expected}")]
    WrongChain {
        /// The deployment's chain id.
        expected: u64,
        /// The node's chain id.
        actual: u64,
    },
    /// The database mirrors another chain or deployment.
    #[error(
        "database mirrors chain {db_chain} registry {db_registry}, not chain {chain} registry {registry}"
    )]
    WrongMirror {
        /// The chain in the database.
        db_chain: u64,
        /// The registry in the database.
        db_registry: String,
        /// The configured chain.
        chain: u64,
        /// The configured registry.
        registry: String,
    },
    /// A reorg replaced a block the mirror already treated as final.
    #[error("reorg below the finalized block #{finalized}: block #{number} changed")]
    FinalizedReorg {
        /// The mirror's finalized block.
        finalized: u64,
        /// The changed block.
        number: u64,
    },
    /// The database's cursor is not where this process left it: another indexer writes the same
    /// database, or the database lost commits (a crash with asynchronous commit, a restore). The
    /// transaction is rolled back and the loop re-reads the cursor.
    #[error("the mirror's cursor is at block #{actual}, not #{expected} as this process expected")]
    CursorMoved {
        /// Where this process believed the cursor was.
        expected: u64,
        /// Where the database has it.
        actual: u64,
    },
    /// A log of a mirrored contract could not be decoded.
    #[error("cannot decode log {log_index} of block #{block} from {contract}: {message}")]
    Decode {
        /// Block number.
        block: u64,
        /// Log index.
        log_index: u64,
        /// Emitting contract.
        contract: String,
        /// Why.
        message: String,
    },
    /// A database statement failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// A read of the mirror failed.
    #[error(transparent)]
    Mirror(#[from] covenant_mirror::Error),
    /// Migrations could not be applied.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// An I/O error (listening socket, config file).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Errors that retrying cannot fix: the sync loop stops on them instead of backing off.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Self::Config(_)
                | Self::Deployment(_)
                | Self::WrongChain { .. }
                | Self::WrongMirror { .. }
                | Self::FinalizedReorg { .. }
                | Self::Decode { .. }
                | Self::Migrate(_)
        )
    }
}

/// The indexer's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
