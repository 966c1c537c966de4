//! The audit log's rows.

use alloy::primitives::{Address, B256, FixedBytes};
use sqlx::{PgConnection, Row};

use crate::{
    Result,
    audit::{Action, Draft, Entry},
};

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The highest sequence number `node` has logged (0 = none).
pub async fn last_seq(c: &mut PgConnection, node: Address) -> Result<u64> {
    let (max,): (Option<i64>,) = sqlx::query_as("SELECT max(seq) FROM audit_log WHERE node = $1")
        .bind(node.as_slice())
        .fetch_one(c)
        .await?;
    Ok(max.unwrap_or(0) as u64)
}

/// The last batch this node recorded as committed on chain (0 = none).
pub async fn recorded_through(c: &mut PgConnection, node: Address) -> Result<u64> {
    let (max,): (Option<i64>,) =
        sqlx::query_as("SELECT max(to_seq) FROM audit_commits WHERE node = $1")
            .bind(node.as_slice())
            .fetch_one(c)
            .await?;
    Ok(max.unwrap_or(0) as u64)
}

/// Inserts `entries` in one statement (atomic on its own: all rows or none).
pub async fn insert(c: &mut PgConnection, entries: &[Entry]) -> Result<()> {
    let mut node = Vec::with_capacity(entries.len());
    let mut seq = Vec::with_capacity(entries.len());
    let mut at = Vec::with_capacity(entries.len());
    let mut action = Vec::with_capacity(entries.len());
    let mut granted = Vec::with_capacity(entries.len());
    let mut reason = Vec::with_capacity(entries.len());
    let mut app = Vec::with_capacity(entries.len());
    let mut instance = Vec::with_capacity(entries.len());
    let mut compose = Vec::with_capacity(entries.len());
    let mut evidence = Vec::with_capacity(entries.len());
    let mut block_number = Vec::with_capacity(entries.len());
    let mut block_hash = Vec::with_capacity(entries.len());
    let mut leaf = Vec::with_capacity(entries.len());
    let mut prev = Vec::with_capacity(entries.len());
    for e in entries {
        let d = &e.draft;
        node.push(e.node.to_vec());
        seq.push(i64_of(e.seq));
        at.push(i64_of(d.at_ms));
        action.push(d.action.as_str());
        granted.push(d.granted);
        reason.push(d.reason.as_str());
        app.push(d.app_id.map(|a| a.to_vec()));
        instance.push(d.instance_id.map(|i| i.to_vec()));
        compose.push(d.compose_hash.map(|h| h.to_vec()));
        evidence.push(d.evidence_digest.map(|h| h.to_vec()));
        block_number.push(d.block.map(|(n, _)| i64_of(n)));
        block_hash.push(d.block.map(|(_, h)| h.to_vec()));
        leaf.push(e.leaf_bytes());
        prev.push(e.prev.to_vec());
    }
    sqlx::query(
        "INSERT INTO audit_log (node, seq, at_ms, action, granted, reason, app_id, instance_id,
                                compose_hash, evidence_digest, block_number, block_hash, leaf,
                                prev_hash)
         SELECT * FROM UNNEST($1::bytea[], $2::int8[], $3::int8[], $4::text[], $5::bool[],
                              $6::text[], $7::bytea[], $8::bytea[], $9::bytea[], $10::bytea[],
                              $11::int8[], $12::bytea[], $13::bytea[], $14::bytea[])",
    )
    .bind(node)
    .bind(seq)
    .bind(at)
    .bind(action)
    .bind(granted)
    .bind(reason)
    .bind(app)
    .bind(instance)
    .bind(compose)
    .bind(evidence)
    .bind(block_number)
    .bind(block_hash)
    .bind(leaf)
    .bind(prev)
    .execute(c)
    .await?;
    Ok(())
}

fn entry(r: &sqlx::postgres::PgRow) -> Result<Entry> {
    let bytes = |i: usize| -> Option<Vec<u8>> { r.get(i) };
    let action: String = r.get(3);
    let action =
        Action::parse(&action).ok_or(crate::error::AuditError::UnknownAction { action })?;
    let block = match (r.get::<Option<i64>, _>(10), bytes(11)) {
        (Some(n), Some(h)) if h.len() == 32 => Some((n as u64, B256::from_slice(&h))),
        _ => None,
    };
    let seq = r.get::<i64, _>(1) as u64;
    let prev = bytes(12)
        .filter(|b| b.len() == 32)
        .map(|b| B256::from_slice(&b))
        .ok_or(crate::error::AuditError::Unchained { seq })?;
    Ok(Entry {
        node: Address::from_slice(&r.get::<Vec<u8>, _>(0)),
        seq,
        prev,
        draft: Draft {
            at_ms: r.get::<i64, _>(2) as u64,
            action,
            granted: r.get(4),
            reason: r.get(5),
            app_id: bytes(6)
                .filter(|b| b.len() == 20)
                .map(|b| Address::from_slice(&b)),
            instance_id: bytes(7)
                .filter(|b| b.len() == 20)
                .map(|b| FixedBytes::<20>::from_slice(&b)),
            compose_hash: bytes(8)
                .filter(|b| b.len() == 32)
                .map(|b| B256::from_slice(&b)),
            evidence_digest: bytes(9)
                .filter(|b| b.len() == 32)
                .map(|b| B256::from_slice(&b)),
            block,
        },
    })
}

/// The entries of `node` with `from <= seq <= to`, in order.
pub async fn entries(
    c: &mut PgConnection,
    node: Address,
    from: u64,
    to: u64,
) -> Result<Vec<Entry>> {
    let rows = sqlx::query(
        "SELECT node, seq, at_ms, action, granted, reason, app_id, instance_id, compose_hash,
                evidence_digest, block_number, block_hash, prev_hash
         FROM audit_log WHERE node = $1 AND seq BETWEEN $2 AND $3 ORDER BY seq",
    )
    .bind(node.as_slice())
    .bind(i64_of(from))
    .bind(i64_of(to))
    .fetch_all(c)
    .await?;
    rows.iter().map(entry).collect()
}

/// `node`'s entries for `app`, newest first, below sequence number `before`, at most `limit`.
pub async fn entries_of_app(
    c: &mut PgConnection,
    node: Address,
    app: Address,
    before: u64,
    limit: u32,
) -> Result<Vec<Entry>> {
    let rows = sqlx::query(
        "SELECT node, seq, at_ms, action, granted, reason, app_id, instance_id, compose_hash,
                evidence_digest, block_number, block_hash, prev_hash
         FROM audit_log WHERE node = $1 AND app_id = $2 AND seq < $3
         ORDER BY seq DESC LIMIT $4",
    )
    .bind(node.as_slice())
    .bind(app.as_slice())
    .bind(i64_of(before))
    .bind(i64::from(limit))
    .fetch_all(c)
    .await?;
    rows.iter().map(entry).collect()
}

/// One entry.
pub async fn entry_at(c: &mut PgConnection, node: Address, seq: u64) -> Result<Option<Entry>> {
    let row = sqlx::query(
        "SELECT node, seq, at_ms, action, granted, reason, app_id, instance_id, compose_hash,
                evidence_digest, block_number, block_hash, prev_hash
         FROM audit_log WHERE node = $1 AND seq = $2",
    )
    .bind(node.as_slice())
    .bind(i64_of(seq))
    .fetch_optional(c)
    .await?;
    row.as_ref().map(entry).transpose()
}

/// A batch committed on chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    /// First sequence number covered.
    pub from_seq: u64,
    /// Last sequence number covered.
    pub to_seq: u64,
    /// The Merkle root.
    pub root: B256,
    /// The transaction that committed it.
    pub tx_hash: B256,
}

fn commit(r: &sqlx::postgres::PgRow) -> Commit {
    Commit {
        from_seq: r.get::<i64, _>(0) as u64,
        to_seq: r.get::<i64, _>(1) as u64,
        root: B256::from_slice(&r.get::<Vec<u8>, _>(2)),
        tx_hash: B256::from_slice(&r.get::<Vec<u8>, _>(3)),
    }
}

/// Records a committed batch.
pub async fn insert_commit(c: &mut PgConnection, node: Address, commit: &Commit) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_commits (node, from_seq, to_seq, root, tx_hash) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (node, from_seq) DO NOTHING",
    )
    .bind(node.as_slice())
    .bind(i64_of(commit.from_seq))
    .bind(i64_of(commit.to_seq))
    .bind(commit.root.as_slice())
    .bind(commit.tx_hash.as_slice())
    .execute(c)
    .await?;
    Ok(())
}

/// The committed batch containing `seq`.
pub async fn commit_covering(
    c: &mut PgConnection,
    node: Address,
    seq: u64,
) -> Result<Option<Commit>> {
    let row = sqlx::query(
        "SELECT from_seq, to_seq, root, tx_hash FROM audit_commits
         WHERE node = $1 AND from_seq <= $2 AND to_seq >= $2",
    )
    .bind(node.as_slice())
    .bind(i64_of(seq))
    .fetch_optional(c)
    .await?;
    Ok(row.as_ref().map(commit))
}
