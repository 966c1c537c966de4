//! The indexer against real anvil, real Postgres and the real contracts.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

pub(crate) use covenant_testkit::send;

mod api;
mod crash;
mod custom_app;
mod equivalence;
mod fixture;
mod gateway_stub;
mod handoff;
mod history;
mod outage;
mod refusing_node;
mod reorg;
