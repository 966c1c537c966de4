//! What every client of a Covenant kms-oracle needs, without a database or a server.
//!
//! - [`wire`]: one request and one response type per endpoint (serde both ways); the kms-oracle
//!   answers with these very types, so server and clients cannot drift. Secret material is a
//!   [`wire::Secret`]: wiped on drop, redacted in `Debug`.
//!
//! It must not depend on sqlx, a server framework or any service crate: guests, the gateway, the
//! CLI and other KMS nodes link it.

pub mod wire;

pub use wire::*;
