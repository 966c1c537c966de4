//! Every SQL statement of the indexer. Functions take a connection so the caller owns the
//! transaction: the sync loop writes a range's rows, the blocks they came from and the cursor in
//! one transaction, so a crash at any point leaves either all of it or none.

mod mirror;
mod write;

use sqlx::PgPool;

pub use mirror::{
    MirrorState, advance, block_hash, highest_block_at_or_below, init_mirror, load_mirror, rewind,
    set_finalized, set_head, upsert_blocks,
};
pub use write::{At, BlockRow, Writer, existing_event_keys};

use crate::Result;

/// The channel a committed advance of the finalized view is announced on (payload: the block
/// number); readers listen through `covenant-mirror`, which owns the name.
pub use covenant_mirror::FINALIZED_CHANNEL;

/// Opens a pool on `url` (connections are re-established after a database restart), planned
/// as the mirror's readers plan: the reads "as of block N" and the change feed's "after position
/// P" are only cheap when the planner sees N and P.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool> {
    Ok(covenant_mirror::connect_mirror(url, max_connections).await?)
}

/// Applies the embedded migrations.
pub async fn migrate(pool: &PgPool) -> Result<()> {
    sqlx::migrate!("./migrations").run(pool).await?;
    Ok(())
}
