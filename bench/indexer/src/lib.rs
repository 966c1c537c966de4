//! Benchmarks of `covenant-indexer` (not tests: nothing here asserts a time).
//!
//! - `indexer-bench`: makes a chain of real registry events (`App.ComposeHashAdded`, added in bulk
//!   by the `ComposeHashFlood` harness contract), then measures a cold backfill into Postgres
//!   (events/s and blocks/s, process start to all rows final) and live lag (block mined → event
//!   on the change feed, which is sent after the finalized view includes it), p50/p99.
//! - `peer-candidate`: the `--candidate-cmd` of the Ponder peer harness
//!   (`../shared/peers/ponder/run.sh`). That harness indexes its own emitter contract, whose event
//!   is not one of Covenant's, so the candidate runs the indexer's fetch path
//!   ([`covenant_indexer::source`]: concurrent adaptive `eth_getLogs` ranges, ordered commits with
//!   a cursor in the same transaction, `UNNEST` batch inserts) over that event.
//!
//! This crate owns no product code; it must not be a dependency of anything but benchmarks.
