//! The kms-oracle's errors. A policy *deny* is not an error (see [`crate::policy::Deny`]): an
//! `Err` means "could not decide" and every caller fails closed. Every variant carries what
//! explains it; none reaches a client as text (the server answers with a generic reason and
//! logs the detail).

use std::path::PathBuf;

use alloy::primitives::Address;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is invalid.
    #[error("invalid configuration: {field}: {reason}")]
    InvalidConfig {
        /// The setting.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{what} ({path}): {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The deployment file is unusable.
    #[error(transparent)]
    Deployment(#[from] covenant_chain::DeploymentError),
    /// `init` would replace existing sealed state.
    #[error("{dir} already holds sealed state; refusing to replace it")]
    StateExists {
        /// The state directory.
        dir: PathBuf,
    },
    /// `run` found no sealed state.
    #[error("no sealed state in {dir}: run `covenant-kms-oracle init` first")]
    NoState {
        /// The state directory.
        dir: PathBuf,
    },
    /// The node has no root secret and no node to replicate it from.
    #[error("this node has no root secret: give --replicate-from a running node")]
    NoRootSecret,
    /// The sealed state could not be made or opened.
    #[error("sealed state: {0}")]
    Sealed(#[from] SealError),
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// The database schema could not be migrated.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The audit log is inconsistent (a gap, an unknown row).
    #[error("audit log: {0}")]
    Audit(#[from] AuditError),
    /// The indexer's mirror or a decision's chain read failed.
    #[error(transparent)]
    Mirror(#[from] covenant_mirror::Error),
    /// The node's own transaction or bookkeeping read failed.
    #[error("rpc {call}: {reason}")]
    Chain {
        /// The call.
        call: &'static str,
        /// What the node or transport said.
        reason: String,
    },
    /// This node's own TDX quote has no usable collateral.
    #[error("own evidence: {reason}")]
    Collateral {
        /// Why.
        reason: String,
    },
    /// No TEE was named and none could be detected.
    #[error(
        "no TEE detected at {root} ({reason}): run in a TDX or SEV-SNP guest, or pass --tee simulated for development"
    )]
    NoTee {
        /// The configfs-tsm directory looked at.
        root: std::path::PathBuf,
        /// Why no provider was found.
        reason: String,
    },
    /// This node is not an active KMS node on chain (its grant log cannot be committed).
    #[error("node {node} is not active on chain")]
    NodeInactive {
        /// The node.
        node: Address,
    },
    /// The node's own evidence does not verify.
    #[error("own attestation: {0}")]
    Attestation(#[from] covenant_attest::Error),
    /// The node's TEE could not produce evidence.
    #[error("own evidence: {0}")]
    Tee(#[from] covenant_tee::Error),
    /// Certificate or key encoding failed.
    #[error("certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// A root signature could not be made.
    #[error("secp256k1 signature: {0}")]
    Signature(#[from] k256::ecdsa::Error),
    /// TLS configuration failed.
    #[error("tls: {0}")]
    Tls(#[from] rustls::Error),
    /// The metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// Replication from another node failed.
    #[error("replication: {0}")]
    Replication(#[from] ReplicationError),
    /// The service is shutting down.
    #[error("shutting down")]
    Shutdown,
}

/// Why sealed state could not be made or opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// The system's random source failed.
    #[error("the system random source failed")]
    Random,
    /// The sealing key file does not hold 32 bytes.
    #[error("the sealing key is not 32 bytes")]
    KeyLength,
    /// Encryption failed.
    #[error("sealing failed")]
    Seal,
    /// The sealed file is shorter than its nonce.
    #[error("the sealed state is truncated")]
    Truncated,
    /// The nonce cannot be used.
    #[error("bad nonce")]
    Nonce,
    /// Authentication failed.
    #[error("cannot open: another sealing key, another deployment, or tampered")]
    Open,
    /// The plaintext has an unknown layout.
    #[error("unexpected sealed layout")]
    Layout,
    /// The sealed node key is not a secp256k1 key.
    #[error("the node key is not a valid secp256k1 key")]
    NodeKey,
    /// The SEV-SNP firmware did not derive a sealing key (MSG_KEY_REQ through /dev/sev-guest).
    #[error("the SEV-SNP firmware did not derive the sealing key: {0}")]
    Firmware(String),
    /// A file sealing key on a real TEE: it would protect nothing.
    #[error(
        "{0} holds a file sealing key, which only a simulated TEE uses; a real-TEE node refuses to start with it (remove it and seal again from a serving peer)"
    )]
    FileKeyOnRealTee(std::path::PathBuf),
    /// TDX has no sealing key.
    #[error(
        "Intel TDX has no sealing key, so nothing can be kept on disk: start `run --tee tdx --bootstrap` (the root secret then lives in that process's memory only, and a single node loses it on restart unless a second node is onboarded) or `run --tee tdx --replicate-from <node>`"
    )]
    NoSealingOnTdx,
}

/// Why the audit log cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuditError {
    /// The rows are not the log this node wrote: edited, removed or inserted.
    #[error("tampered with: {0}")]
    Tampered(#[from] crate::audit::chain::Break),
    /// A row written before the log was hash-chained (no `prev`).
    #[error("entry {seq} has no link to its predecessor (written before the hash chain)")]
    Unchained {
        /// The entry.
        seq: u64,
    },
    /// A row names an action this version does not know.
    #[error("a row with the unknown action `{action}`")]
    UnknownAction {
        /// The stored action.
        action: String,
    },
}

/// Why the root secret could not be obtained from another node.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    /// This node's chain view cannot be used (no fresh finalized block).
    #[error("no fresh finalized block: {0}")]
    NoFreshBlock(String),
    /// The source could not be asked, or refused (typed by the client).
    #[error(transparent)]
    Client(#[from] covenant_kms_api::ClientError),
    /// The source presented no certificate.
    #[error("the source presented no certificate")]
    NoCertificate,
    /// The source's evidence has no usable collateral (PCCS or key distribution service).
    #[error("the source's evidence: {0}")]
    SourceCollateral(String),
    /// The chain does not allow the source as a KMS node.
    #[error("the source is not an allowed KMS node at block {block}: {reason}")]
    SourceNotAllowed {
        /// The block.
        block: u64,
        /// Why.
        reason: String,
    },
    /// The secret is not 32 hex-encoded bytes.
    #[error("malformed root secret")]
    MalformedSecret,
    /// The secret does not derive the registered root keys.
    #[error("the received root secret does not derive the registered root keys")]
    WrongSecret,
}

/// The crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
