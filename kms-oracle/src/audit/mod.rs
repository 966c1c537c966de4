//! The audit log: every decision (grant or deny) becomes an [`Entry`] with a per-node sequence
//! number, written to Postgres before any key leaves the node ([`writer`]); batches of entries
//! are Merkle-rooted ([`merkle`], RFC 6962) and committed on chain with the node's key
//! (`KmsRegistry.commitGrantLog`, [`committer`]); inclusion proofs are served and verify offline.

pub mod committer;
mod entry;
pub mod merkle;
pub mod writer;

pub use entry::{Action, Draft, Entry, LEAF_PREFIX};
