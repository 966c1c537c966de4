//! The `mirror` row (what is mirrored, the cursor, the finalized view), the `blocks` table, and
//! rewinding every projection to a common ancestor.

use alloy::primitives::{Address, B256};
use sqlx::{PgConnection, Row};

use crate::{Error, Result};

/// The mirror's position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MirrorState {
    /// Chain id.
    pub chain_id: u64,
    /// The last block whose logs are applied.
    pub indexed_number: u64,
    /// Its hash (`None` before the first block).
    pub indexed_hash: Option<B256>,
    /// The finalized view's block.
    pub finalized_number: u64,
    /// Its hash.
    pub finalized_hash: Option<B256>,
    /// The chain head as last seen.
    pub head_number: u64,
}

fn b256(bytes: Option<Vec<u8>>) -> Option<B256> {
    bytes
        .filter(|b| b.len() == 32)
        .map(|b| B256::from_slice(&b))
}

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Creates the mirror row for a fresh database, or checks that an existing one mirrors the same
/// chain and registry. Indexing starts after `start_block - 1`.
pub async fn init_mirror(
    conn: &mut PgConnection,
    chain_id: u64,
    kms_registry: Address,
    start_block: u64,
) -> Result<MirrorState> {
    let before_start = start_block.saturating_sub(1);
    sqlx::query(
        "INSERT INTO mirror (chain_id, kms_registry, start_block, indexed_number, finalized_number)
         VALUES ($1, $2, $3, $4, $4) ON CONFLICT (id) DO NOTHING",
    )
    .bind(i64_of(chain_id))
    .bind(kms_registry.as_slice())
    .bind(i64_of(start_block))
    .bind(i64_of(before_start))
    .execute(&mut *conn)
    .await?;
    let row = sqlx::query("SELECT chain_id, kms_registry FROM mirror")
        .fetch_one(&mut *conn)
        .await?;
    let db_chain: i64 = row.get(0);
    let db_registry: Vec<u8> = row.get(1);
    if db_chain != i64_of(chain_id) || db_registry != kms_registry.as_slice() {
        return Err(Error::WrongMirror {
            db_chain: db_chain as u64,
            db_registry: format!("0x{}", hex::encode(db_registry)),
            chain: chain_id,
            registry: kms_registry.to_string(),
        });
    }
    load_mirror(conn).await
}

/// Reads the mirror row.
pub async fn load_mirror(conn: &mut PgConnection) -> Result<MirrorState> {
    let row = sqlx::query(
        "SELECT chain_id, indexed_number, indexed_hash, finalized_number, finalized_hash, head_number FROM mirror",
    )
    .fetch_one(conn)
    .await?;
    Ok(MirrorState {
        chain_id: row.get::<i64, _>(0) as u64,
        indexed_number: row.get::<i64, _>(1) as u64,
        indexed_hash: b256(row.get(2)),
        finalized_number: row.get::<i64, _>(3) as u64,
        finalized_hash: b256(row.get(4)),
        head_number: row.get::<i64, _>(5) as u64,
    })
}

/// Moves the cursor from block `from` to block `number` with `hash` (in the transaction that
/// wrote its data). Fails with [`Error::CursorMoved`] if the stored cursor is not at `from`, so
/// two writers, or a database that lost commits, can never leave a gap or apply a block twice.
pub async fn advance(
    conn: &mut PgConnection,
    from: u64,
    number: u64,
    hash: Option<B256>,
) -> Result<()> {
    let updated = sqlx::query(
        "UPDATE mirror SET indexed_number = $1, indexed_hash = $2 WHERE indexed_number = $3",
    )
    .bind(i64_of(number))
    .bind(hash.map(|h| h.to_vec()))
    .bind(i64_of(from))
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() != 1 {
        let actual: i64 = sqlx::query_scalar("SELECT indexed_number FROM mirror")
            .fetch_one(conn)
            .await?;
        return Err(Error::CursorMoved {
            expected: from,
            actual: actual as u64,
        });
    }
    Ok(())
}

/// Records the chain head as last seen.
pub async fn set_head(conn: &mut PgConnection, number: u64) -> Result<()> {
    sqlx::query("UPDATE mirror SET head_number = $1")
        .bind(i64_of(number))
        .execute(conn)
        .await?;
    Ok(())
}

/// Moves the finalized view to block `number` and announces it on
/// [`super::FINALIZED_CHANNEL`] when the transaction commits.
pub async fn set_finalized(conn: &mut PgConnection, number: u64, hash: B256) -> Result<()> {
    // Never backwards, whoever writes.
    sqlx::query(
        "UPDATE mirror SET finalized_number = $1, finalized_hash = $2 WHERE finalized_number <= $1",
    )
    .bind(i64_of(number))
    .bind(hash.as_slice())
    .execute(&mut *conn)
    .await?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(super::FINALIZED_CHANNEL)
        .bind(number.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// The stored hash of block `number`.
pub async fn block_hash(conn: &mut PgConnection, number: u64) -> Result<Option<B256>> {
    let row: Option<(Vec<u8>,)> = sqlx::query_as("SELECT hash FROM blocks WHERE number = $1")
        .bind(i64_of(number))
        .fetch_optional(conn)
        .await?;
    Ok(b256(row.map(|r| r.0)))
}

/// The highest stored block at or below `number`.
pub async fn highest_block_at_or_below(
    conn: &mut PgConnection,
    number: u64,
) -> Result<Option<(u64, B256)>> {
    let row: Option<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT number, hash FROM blocks WHERE number <= $1 ORDER BY number DESC LIMIT 1",
    )
    .bind(i64_of(number))
    .fetch_optional(conn)
    .await?;
    Ok(row.and_then(|(n, h)| b256(Some(h)).map(|h| (n as u64, h))))
}

/// Stores blocks (a block seen again keeps its known parent hash and timestamp).
pub async fn upsert_blocks(conn: &mut PgConnection, blocks: &[super::BlockRow]) -> Result<()> {
    if blocks.is_empty() {
        return Ok(());
    }
    let numbers: Vec<i64> = blocks.iter().map(|b| i64_of(b.number)).collect();
    let hashes: Vec<Vec<u8>> = blocks.iter().map(|b| b.hash.to_vec()).collect();
    let parents: Vec<Option<Vec<u8>>> = blocks
        .iter()
        .map(|b| b.parent_hash.map(|h| h.to_vec()))
        .collect();
    let timestamps: Vec<Option<i64>> = blocks.iter().map(|b| b.timestamp.map(i64_of)).collect();
    sqlx::query(
        "INSERT INTO blocks (number, hash, parent_hash, timestamp)
         SELECT * FROM UNNEST($1::int8[], $2::bytea[], $3::bytea[], $4::int8[])
         ON CONFLICT (number) DO UPDATE SET
           hash = EXCLUDED.hash,
           parent_hash = COALESCE(EXCLUDED.parent_hash, blocks.parent_hash),
           timestamp = COALESCE(EXCLUDED.timestamp, blocks.timestamp)",
    )
    .bind(numbers)
    .bind(hashes)
    .bind(parents)
    .bind(timestamps)
    .execute(conn)
    .await?;
    Ok(())
}

/// Undoes everything derived from blocks above `ancestor` (a reorg's common ancestor) and moves
/// the cursor there from `from`. Call inside a transaction.
pub async fn rewind(
    conn: &mut PgConnection,
    from: u64,
    ancestor: u64,
    ancestor_hash: Option<B256>,
) -> Result<()> {
    let a = i64_of(ancestor);
    for table in [
        "events",
        "members",
        "settings",
        "proposals",
        "proposal_transitions",
        "votes",
        "timelock_operations",
        "governance_checkpoints",
    ] {
        let column = if table == "events" {
            "block_number"
        } else {
            "from_block"
        };
        // Table and column names are constants of this function, never input.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE {column} > $1"
        )))
        .bind(a)
        .execute(&mut *conn)
        .await?;
    }
    for table in ["members", "settings"] {
        // Table names are constants of this function, never input.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET to_block = NULL WHERE to_block > $1"
        )))
        .bind(a)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query("DELETE FROM blocks WHERE number > $1")
        .bind(a)
        .execute(&mut *conn)
        .await?;
    advance(conn, from, ancestor, ancestor_hash).await
}
