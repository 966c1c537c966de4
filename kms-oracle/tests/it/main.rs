//! The kms-oracle against real anvil, real Postgres, the real contracts and the indexer.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

mod audit_log;
mod batched_checks;
mod chain_view;
mod fixture;
mod grants;
mod kds;
mod kms_api;
mod onboarding;
mod pccs;
mod refusals;
mod replication;
mod standing;
mod tee_modes;
