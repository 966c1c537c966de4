//! Integration tests of the kms-oracle against real anvil, Postgres, contracts and indexer.

mod fixture;
mod grants;
mod refusals;
