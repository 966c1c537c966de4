//! Real processes for Covenant's tests, and the one way to wait on them.
//!
//! Every Rust integration test in the workspace gets its infrastructure here, so that no test
//! starts a process, picks a port or sleeps on its own:
//!
//! - [`Anvil`]: a real anvil from `node_modules/.bin` on a free loopback port, accounts derived
//!   from the fixed [`TEST_MNEMONIC`], configurable block time, killed on drop (also when the test
//!   panics) and by the kernel if the test process dies.
//! - [`postgres::database`]: a fresh database in a throwaway PostgreSQL cluster started once per
//!   test process; the database is dropped with its handle and the cluster at process exit.
//! - [`deploy_contracts`]: the repository's deploy script against a test anvil; [`send!`]: an
//!   alloy contract call sent and required to succeed.
//! - [`spawn_indexer`]: the indexer binary mirroring a test deployment, its API listening.
//! - [`tls::get_with_chain`]: an HTTPS `GET` that returns the server's certificate chain for the
//!   test to verify (app chains are checked against the on-chain root CA key).
//! - [`pebble::PebbleConfig`]: a real ACME CA (Debian's `pebble`) on loopback, validating
//!   TLS-ALPN-01 against the port and DNS server a test names.
//! - [`Process`]: any other child process (the project's binaries and scripts), with the same
//!   guarantees and its output captured for errors.
//! - [`wait_for`]: poll a condition until a deadline; the error names what was awaited, and a
//!   watched process that dies fails the wait at once with its own log.
//!
//! A process that crashes never makes a test hang: start-up waits read the process's output and
//! stop when it exits, and every error about a process carries its last lines of output.
//!
//! This crate owns test infrastructure only. It must not be a dependency of any non-test target.
//!
//! ```no_run
//! use covenant_testkit::{Anvil, postgres, wait_for};
//! use std::time::Duration;
//!
//! let anvil = Anvil::builder().with_block_time(Duration::from_millis(200)).spawn();
//! let db = postgres::database();
//! println!("rpc {} db {}", anvil.endpoint(), db.url());
//! wait_for("two blocks")
//!     .watching(&anvil)
//!     .until(|| anvil.block_number().is_ok_and(|n| n >= 2))
//!     .unwrap();
//! ```

mod anvil;
mod contracts;
pub mod dns;
mod error;
mod indexer;
pub mod pebble;
pub mod postgres;
mod process;
mod rpc;
pub mod tls;
pub mod tools;
mod wait;

pub use anvil::{Anvil, AnvilBuilder, DEFAULT_CHAIN_ID, TEST_MNEMONIC, TestAccount};
pub use contracts::{TestDeployment, artifact_bytecode, deploy_contracts};
pub use error::{Error, Result};
pub use indexer::spawn_indexer;
pub use nix::sys::signal::Signal;
pub use postgres::{PgCluster, PgClusterBuilder, TestDatabase};
pub use process::Process;
pub use rpc::{free_port, json_rpc};
pub use wait::{DEFAULT_TIMEOUT, Wait, Watched, wait_for};
