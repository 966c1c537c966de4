//! The confidential-inference benchmark (`bench/inference`): what an LLM service pays for
//! running behind Covenant, in the metrics of vLLM's serving benchmark (TTFT, TPOT, ITL, E2EL;
//! mean, median, p99) so results read like theirs.
//!
//! This crate owns the statistics ([`stats`]), the request schedule ([`schedule`]), the streaming
//! client ([`client`], [`sse`]), the mock model server ([`mock`]) and the AES-256-GCM rate
//! ([`aead`]). It talks to model servers
//! and to Covenant only over HTTP and touches no Covenant service's internals.

pub mod ab;
pub mod aead;
pub mod client;
pub mod covenant;
pub mod mock;
pub mod prompts;
pub mod run;
pub mod schedule;
pub mod sse;
pub mod stats;
