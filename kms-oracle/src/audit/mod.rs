//! The audit log: every decision on an authenticated request (grant or deny) becomes an
//! [`Entry`] with a per-node sequence number and a link to the entry before it, written to
//! Postgres before any key leaves the node ([`writer`]); the [`ledger`] remembers what this
//! process wrote until it is committed; batches of entries are checked against it ([`chain`]),
//! Merkle-rooted ([`merkle`], RFC 6962, shared with clients in `covenant-kms-api`) and committed on chain with the node's key
//! (`KmsRegistry.commitGrantLog`, [`committer`]); inclusion proofs are served and verify offline.

pub mod chain;
pub mod committer;
mod entry;
pub mod ledger;
pub mod writer;

pub use covenant_kms_api::{audit::LEAF_PREFIX, merkle};
pub use entry::{Action, Draft, Entry};
