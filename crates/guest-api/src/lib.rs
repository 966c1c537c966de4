//! What apps, the `covenant` CLI and the guest agent share, without linking one another.
//!
//! - [`api`] and [`client`]: the guest's local API on a Unix socket (`Info`, `GetKey`,
//!   `GetQuote`, `EmitEvent`, `GetTlsKey`), its types and a typed client for apps.
//! - [`env`]: env secrets — sealed with HPKE to an app's env key after the KMS root's signature
//!   over that key is checked; opened by the guest, which accepts only the variable names the
//!   app's compose lists.
//!
//! It must not hold keys of its own or depend on a service crate; its only I/O is the client's
//! connection to the guest's socket.

pub mod api;
pub mod client;
pub mod env;
pub mod statements;
