//! The kms-oracle's errors. A policy *deny* is not an error (see [`crate::policy::Deny`]): an
//! `Err` means "could not decide" and every caller fails closed.

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Configuration is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// A file could not be read or written.
    #[error("{what} ({path}): {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The sealed state could not be opened (wrong key, tampered, other deployment).
    #[error("sealed state: {0}")]
    Sealed(String),
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// The database schema could not be migrated.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The indexer's mirror or a chain read through it failed.
    #[error(transparent)]
    Mirror(#[from] covenant_mirror::Error),
    /// The RPC node failed or answered something undecodable.
    #[error("rpc: {0}")]
    Rpc(String),
    /// The RPC node or mirror serves another chain than the deployment's.
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
    /// The node's own evidence could not be produced or does not verify.
    #[error("own attestation: {0}")]
    Attestation(#[from] covenant_attest::Error),
    /// The node's TEE could not produce evidence.
    #[error("own evidence: {0}")]
    Tee(#[from] covenant_tee::Error),
    /// Certificate or key encoding failed.
    #[error("certificate: {0}")]
    Certificate(String),
    /// TLS configuration failed.
    #[error("tls: {0}")]
    Tls(#[from] rustls::Error),
    /// Replication from another node failed.
    #[error("replication: {0}")]
    Replication(String),
    /// The service is shutting down.
    #[error("shutting down")]
    Shutdown,
}

/// The crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
