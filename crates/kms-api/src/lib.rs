//! What every client of a Covenant kms-oracle needs, without a database or a server.
//!
//! - [`wire`]: one request and one response type per endpoint (serde both ways); the kms-oracle
//!   answers with these very types, so server and clients cannot drift. Secret material is a
//!   [`wire::Secret`]: wiped on drop, redacted in `Debug`.
//! - [`KmsClient`]: URLs with DNS names, several nodes with failover, a kept-alive connection per
//!   node, typed errors ([`ClientError`]: refused with the node's reason, unavailable,
//!   unreachable, bad evidence, malformed).
//! - [`KmsIdentityChecker`]: is the node on the other end one the chain allows? Its RA-TLS
//!   evidence, `isKmsAllowed`, `kmsNode` and `kmsRootKeys` over plain RPC at a finalized block
//!   hash — no mirror database needed (guests, the CLI).
//! - [`signatures`]: the digests the KMS root signs for an app's keys and an app key signs for
//!   its `GetKey` path keys, and their canonical recovery (the same bytes `ecrecover` checks).
//! - [`audit`] and [`merkle`]: an audit entry's canonical leaf and the offline check of an
//!   inclusion proof served by `GET /v1/audit/{seq}` (RFC 6962 trees, as committed on chain).
//! - [`verify_app_chain`]: a KMS-issued certificate chain (leaf → app CA → root CA) checked
//!   against the on-chain root CA key of its generation (the gateway, the CLI, app-to-app mTLS).
//!
//! It must not depend on sqlx, a server framework or any service crate: guests, the gateway, the
//! CLI and other KMS nodes link it.

pub mod audit;
pub mod certs;
pub mod client;
pub mod identity;
pub mod merkle;
pub mod signatures;
pub mod wire;

pub use certs::{
    CertificateError, RootAnchor, VerifiedAppCertificate, pem_chain_to_der, verify_app_chain,
};
pub use client::{Answer, ClientError, Endpoint, KmsClient};
pub use identity::{Finality, IdentityError, KmsIdentityChecker, KmsStanding};
pub use wire::*;
