//! The audit log's pure parts: the Merkle tree whose roots KMS nodes commit on chain
//! (`KmsRegistry.commitGrantLog`) and the inclusion proofs they serve.

pub mod merkle;
