//! The read side of the indexer's mirror, and the one place a policy question about the chain is
//! answered for a service.
//!
//! - [`read`]: every query of the indexer's schema, "as of" a block;
//! - [`rules`]: the registry's `isAppAllowed` / `isKmsAllowed` rules as pure functions over
//!   [`covenant_chain::BootInfo`], with the contracts' own reasons;
//! - [`facts`]: what those rules decide over, read from the mirror at one block;
//! - [`PolicyView`]: the **finalized policy view** — a whole question (may this app instance get
//!   keys or traffic? may this KMS node serve?) answered at the mirror's finalized block, by the
//!   mirror *and* by `eth_call` pinned to the same block hash; a disagreement is a deny (and a
//!   metric); the block must be canonical and final on the service's own RPC (and an optional
//!   witness RPC), and one older than the staleness bound (against the RPC's head) denies
//!   everything; answers are memoised per block hash only, and new boots asked about while a
//!   check runs are checked together in the next one (one mirror statement, one JSON-RPC batch;
//!   no timer). The kms-oracle decides every request through it; the gateway re-decides every
//!   registered instance through it;
//! - [`Clock`]: "now", injected, so staleness can be tested with a pinned time.
//!
//! This crate never writes the schema (the indexer owns it and its migrations), never reads a
//! chain at `latest`, and holds no keys. An `Err` from it means "could not decide": callers fail
//! closed.
//!
//! ```no_run
//! # async fn example(view: &covenant_mirror::PolicyView, boot: covenant_chain::BootInfo) -> covenant_mirror::Result<()> {
//! let block = match view.current_block() {
//!     Ok(block) => block,
//!     Err(deny) => return Ok(eprintln!("refused: {}", deny.reason)),
//! };
//! let answer = view.app(&block, &boot).await?;
//! match answer.verdict {
//!     Ok(()) => println!("allowed at block {} with key generation {}", block.number, answer.boot.keyGeneration),
//!     Err(deny) => println!("denied at the {} stage: {}", deny.stage.as_str(), deny.reason),
//! }
//! # Ok(()) }
//! ```

mod anchor;
mod chain;
mod clock;
mod coalesce;
mod error;
pub mod facts;
pub mod read;
pub mod rules;
mod view;

pub use anchor::MAX_STALENESS_BOUND;
pub use chain::{
    ChainReader, FINALIZED_CHANNEL, Finalized, connect_mirror, follow_finalized, read_finalized,
};
pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use error::{Error, Result};
pub use view::{
    APP_CHECK_BATCH_BUCKETS, AppAnswer, Deny, DenyStage, PolicyView, RegisteredRoots, ViewMetrics,
    ViewSettings,
};
