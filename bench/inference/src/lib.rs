//! The confidential-inference benchmark (`bench/inference`): what an LLM service pays for
//! running behind Covenant, in the metrics of vLLM's serving benchmark (TTFT, TPOT, ITL, E2EL;
//! mean, median, p99) so results read like theirs.
//!
//! This crate owns the statistics ([`stats`]), the request schedule ([`schedule`]), the prompt
//! sets ([`prompts`]), the streaming client ([`client`], [`sse`]), one run and its report
//! ([`run`]), the interleaved A/B protocol ([`ab`]), the mock model server ([`mock`]), the two
//! arms on the local stack ([`covenant`]) and the AES-256-GCM rate ([`aead`]). It reaches model
//! servers and Covenant's services only over the network, runs the services as their binaries
//! (through the test stack), and touches no service's internals; nothing but benchmarks and its
//! own tests may depend on it.

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
