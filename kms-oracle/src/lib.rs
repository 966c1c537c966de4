//! Covenant's KMS oracle (being built, issue 6): releases an app's keys to a TEE instance only when
//! its verified evidence is allowed by the chain at a finalized block.
//!
//! So far this crate holds its pure, I/O-free parts:
//! - [`keys`]: HKDF-SHA256 key derivation from the KMS root secret, domain-separated by chain and
//!   registry, with length-prefixed info strings (specification and test vectors in docs/kms.md);
//! - [`audit::merkle`]: the Merkle tree (RFC 6962 hashing) over audit-log entries whose roots are
//!   committed on chain, with inclusion proofs anyone can verify offline.
//!
//! It must not parse or verify evidence itself (`covenant-attest` does), and key material never
//! appears in logs, `Debug` output or errors.

pub mod audit;
pub mod keys;
