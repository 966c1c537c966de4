//! What apps, the `covenant` CLI and the guest agent share, without linking one another.
//!
//! - [`env`]: env secrets — sealed with HPKE to an app's env key after the KMS root's signature
//!   over that key is checked; opened by the guest, which accepts only the variable names the
//!   app's compose lists.
//!
//! It must not do I/O, hold keys of its own or depend on a service crate.

pub mod env;
