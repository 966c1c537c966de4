//! Buffered writes of one transaction: inserts are collected per table and sent as one
//! `INSERT … SELECT FROM UNNEST(…)` each; an update (closing a member or a setting) first flushes
//! the buffers, so statements reach the database in event order.

use std::collections::HashSet;

use alloy::primitives::B256;
use serde_json::Value;
use sqlx::PgConnection;

use crate::Result;

/// A block to store with the data derived from it.
#[derive(Clone, Copy, Debug)]
pub struct BlockRow {
    /// Height.
    pub number: u64,
    /// Hash.
    pub hash: B256,
    /// Parent hash, when the header was fetched.
    pub parent_hash: Option<B256>,
    /// Timestamp, when known.
    pub timestamp: Option<u64>,
}

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[derive(Default)]
struct Events {
    block_hash: Vec<Vec<u8>>,
    log_index: Vec<i64>,
    block_number: Vec<i64>,
    tx_hash: Vec<Vec<u8>>,
    contract: Vec<Vec<u8>>,
    source: Vec<String>,
    name: Vec<String>,
    data: Vec<String>,
}

#[derive(Default)]
struct Members {
    set_name: Vec<String>,
    scope: Vec<Vec<u8>>,
    member: Vec<Vec<u8>>,
    data: Vec<String>,
    from_block: Vec<i64>,
    from_log: Vec<i64>,
}

#[derive(Default)]
struct Settings {
    scope: Vec<Vec<u8>>,
    name: Vec<String>,
    value: Vec<String>,
    from_block: Vec<i64>,
    from_log: Vec<i64>,
}

#[derive(Default)]
struct Proposals {
    id: Vec<String>,
    proposer: Vec<Vec<u8>>,
    actions: Vec<String>,
    vote_start: Vec<i64>,
    vote_end: Vec<i64>,
    description: Vec<String>,
    timelock_id: Vec<Vec<u8>>,
    from_block: Vec<i64>,
}

#[derive(Default)]
struct Transitions {
    id: Vec<String>,
    kind: Vec<String>,
    eta: Vec<Option<i64>>,
    from_block: Vec<i64>,
    from_log: Vec<i64>,
}

#[derive(Default)]
struct Votes {
    id: Vec<String>,
    voter: Vec<Vec<u8>>,
    support: Vec<i16>,
    weight: Vec<String>,
    reason: Vec<String>,
    from_block: Vec<i64>,
    from_log: Vec<i64>,
}

#[derive(Default)]
struct TimelockOps {
    id: Vec<Vec<u8>>,
    kind: Vec<String>,
    from_block: Vec<i64>,
    from_log: Vec<i64>,
}

#[derive(Default)]
struct Checkpoints {
    kind: Vec<String>,
    timepoint: Vec<i64>,
    value: Vec<String>,
    from_block: Vec<i64>,
    from_log: Vec<i64>,
}

/// Where a row comes from.
#[derive(Clone, Copy, Debug)]
pub struct At {
    /// Block number.
    pub block: u64,
    /// Log index within the block.
    pub log: u64,
}

/// The writes of one transaction.
pub struct Writer<'c> {
    conn: &'c mut PgConnection,
    chain_id: i64,
    events: Events,
    members: Members,
    settings: Settings,
    proposals: Proposals,
    transitions: Transitions,
    votes: Votes,
    timelock_ops: TimelockOps,
    checkpoints: Checkpoints,
}

/// The `(block hash, log index)` keys already stored for blocks `from..=to`: applying a log
/// twice is skipped, so writes are idempotent by (chain id, block hash, log index).
pub async fn existing_event_keys(
    conn: &mut PgConnection,
    chain_id: u64,
    from: u64,
    to: u64,
) -> Result<HashSet<(B256, u64)>> {
    let rows: Vec<(Vec<u8>, i64)> = sqlx::query_as(
        "SELECT block_hash, log_index FROM events WHERE chain_id = $1 AND block_number BETWEEN $2 AND $3",
    )
    .bind(i64_of(chain_id))
    .bind(i64_of(from))
    .bind(i64_of(to))
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter(|(h, _)| h.len() == 32)
        .map(|(h, i)| (B256::from_slice(&h), i as u64))
        .collect())
}

impl<'c> Writer<'c> {
    /// Writes through `conn` (normally a transaction) for chain `chain_id`.
    pub fn new(conn: &'c mut PgConnection, chain_id: u64) -> Self {
        Self {
            conn,
            chain_id: i64_of(chain_id),
            events: Events::default(),
            members: Members::default(),
            settings: Settings::default(),
            proposals: Proposals::default(),
            transitions: Transitions::default(),
            votes: Votes::default(),
            timelock_ops: TimelockOps::default(),
            checkpoints: Checkpoints::default(),
        }
    }

    /// Records a decoded log.
    #[allow(clippy::too_many_arguments)]
    pub fn event(
        &mut self,
        block_hash: B256,
        at: At,
        tx_hash: B256,
        contract: &[u8],
        source: &str,
        name: &str,
        data: &Value,
    ) {
        let e = &mut self.events;
        e.block_hash.push(block_hash.to_vec());
        e.log_index.push(i64_of(at.log));
        e.block_number.push(i64_of(at.block));
        e.tx_hash.push(tx_hash.to_vec());
        e.contract.push(contract.to_vec());
        e.source.push(source.to_owned());
        e.name.push(name.to_owned());
        e.data.push(data.to_string());
    }

    /// `member` joins set `set` (within `scope`).
    pub fn add_member(&mut self, set: &str, scope: &[u8], member: &[u8], data: &Value, at: At) {
        let m = &mut self.members;
        m.set_name.push(set.to_owned());
        m.scope.push(scope.to_vec());
        m.member.push(member.to_vec());
        m.data.push(data.to_string());
        m.from_block.push(i64_of(at.block));
        m.from_log.push(i64_of(at.log));
    }

    /// `member` leaves set `set` (within `scope`) at `at`.
    pub async fn remove_member(
        &mut self,
        set: &str,
        scope: &[u8],
        member: &[u8],
        at: At,
    ) -> Result<()> {
        self.flush().await?;
        sqlx::query(
            "UPDATE members SET to_block = $4
             WHERE set_name = $1 AND scope = $2 AND member = $3 AND to_block IS NULL",
        )
        .bind(set)
        .bind(scope)
        .bind(member)
        .bind(i64_of(at.block))
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    /// Setting `name` (within `scope`) takes `value` at `at`.
    pub async fn set(&mut self, scope: &[u8], name: &str, value: &Value, at: At) -> Result<()> {
        self.flush().await?;
        sqlx::query(
            "UPDATE settings SET to_block = $3 WHERE scope = $1 AND name = $2 AND to_block IS NULL",
        )
        .bind(scope)
        .bind(name)
        .bind(i64_of(at.block))
        .execute(&mut *self.conn)
        .await?;
        let s = &mut self.settings;
        s.scope.push(scope.to_vec());
        s.name.push(name.to_owned());
        s.value.push(value.to_string());
        s.from_block.push(i64_of(at.block));
        s.from_log.push(i64_of(at.log));
        Ok(())
    }

    /// A proposal was created.
    #[allow(clippy::too_many_arguments)]
    pub fn proposal(
        &mut self,
        id: &str,
        proposer: &[u8],
        actions: &Value,
        vote_start: u64,
        vote_end: u64,
        description: &str,
        timelock_id: B256,
        at: At,
    ) {
        let p = &mut self.proposals;
        p.id.push(id.to_owned());
        p.proposer.push(proposer.to_vec());
        p.actions.push(actions.to_string());
        p.vote_start.push(i64_of(vote_start));
        p.vote_end.push(i64_of(vote_end));
        p.description.push(description.to_owned());
        p.timelock_id.push(timelock_id.to_vec());
        p.from_block.push(i64_of(at.block));
    }

    /// A proposal was queued (with `eta`), executed or canceled.
    pub fn transition(&mut self, id: &str, kind: &str, eta: Option<u64>, at: At) {
        let t = &mut self.transitions;
        t.id.push(id.to_owned());
        t.kind.push(kind.to_owned());
        t.eta.push(eta.map(i64_of));
        t.from_block.push(i64_of(at.block));
        t.from_log.push(i64_of(at.log));
    }

    /// A vote was cast.
    pub fn vote(
        &mut self,
        id: &str,
        voter: &[u8],
        support: u8,
        weight: &str,
        reason: &str,
        at: At,
    ) {
        let v = &mut self.votes;
        v.id.push(id.to_owned());
        v.voter.push(voter.to_vec());
        v.support.push(i16::from(support));
        v.weight.push(weight.to_owned());
        v.reason.push(reason.to_owned());
        v.from_block.push(i64_of(at.block));
        v.from_log.push(i64_of(at.log));
    }

    /// A timelock operation was executed (`executed`) or cancelled (`cancelled`).
    pub fn timelock_op(&mut self, id: B256, kind: &str, at: At) {
        let t = &mut self.timelock_ops;
        t.id.push(id.to_vec());
        t.kind.push(kind.to_owned());
        t.from_block.push(i64_of(at.block));
        t.from_log.push(i64_of(at.log));
    }

    /// A governance checkpoint (`supply` delta or `quorum_numerator` value) at `timepoint`.
    pub fn checkpoint(&mut self, kind: &str, timepoint: u64, value: &str, at: At) {
        let c = &mut self.checkpoints;
        c.kind.push(kind.to_owned());
        c.timepoint.push(i64_of(timepoint));
        c.value.push(value.to_owned());
        c.from_block.push(i64_of(at.block));
        c.from_log.push(i64_of(at.log));
    }

    /// Sends every buffered insert.
    pub async fn flush(&mut self) -> Result<()> {
        let conn = &mut *self.conn;
        if !self.events.block_hash.is_empty() {
            let e = std::mem::take(&mut self.events);
            let n = e.block_hash.len();
            sqlx::query(
                "INSERT INTO events (chain_id, block_hash, log_index, block_number, tx_hash, contract, source, name, data)
                 SELECT $1, * FROM UNNEST($2::bytea[], $3::int8[], $4::int8[], $5::bytea[], $6::bytea[], $7::text[], $8::text[], $9::text[]::json[])",
            )
            .bind(self.chain_id)
            .bind(e.block_hash)
            .bind(e.log_index)
            .bind(e.block_number)
            .bind(e.tx_hash)
            .bind(e.contract)
            .bind(e.source)
            .bind(e.name)
            .bind(e.data)
            .execute(&mut *conn)
            .await?;
            tracing::trace!(target: "indexer::store", rows = n, "events inserted");
        }
        if !self.members.set_name.is_empty() {
            let m = std::mem::take(&mut self.members);
            sqlx::query(
                "INSERT INTO members (set_name, scope, member, data, from_block, from_log)
                 SELECT * FROM UNNEST($1::text[], $2::bytea[], $3::bytea[], $4::text[]::jsonb[], $5::int8[], $6::int8[])",
            )
            .bind(m.set_name)
            .bind(m.scope)
            .bind(m.member)
            .bind(m.data)
            .bind(m.from_block)
            .bind(m.from_log)
            .execute(&mut *conn)
            .await?;
        }
        if !self.settings.name.is_empty() {
            let s = std::mem::take(&mut self.settings);
            sqlx::query(
                "INSERT INTO settings (scope, name, value, from_block, from_log)
                 SELECT * FROM UNNEST($1::bytea[], $2::text[], $3::text[]::jsonb[], $4::int8[], $5::int8[])",
            )
            .bind(s.scope)
            .bind(s.name)
            .bind(s.value)
            .bind(s.from_block)
            .bind(s.from_log)
            .execute(&mut *conn)
            .await?;
        }
        if !self.proposals.id.is_empty() {
            let p = std::mem::take(&mut self.proposals);
            sqlx::query(
                "INSERT INTO proposals (proposal_id, proposer, actions, vote_start, vote_end, description, timelock_id, from_block)
                 SELECT * FROM UNNEST($1::text[]::numeric[], $2::bytea[], $3::text[]::jsonb[], $4::int8[], $5::int8[], $6::text[], $7::bytea[], $8::int8[])",
            )
            .bind(p.id)
            .bind(p.proposer)
            .bind(p.actions)
            .bind(p.vote_start)
            .bind(p.vote_end)
            .bind(p.description)
            .bind(p.timelock_id)
            .bind(p.from_block)
            .execute(&mut *conn)
            .await?;
        }
        if !self.transitions.id.is_empty() {
            let t = std::mem::take(&mut self.transitions);
            sqlx::query(
                "INSERT INTO proposal_transitions (proposal_id, kind, eta, from_block, from_log)
                 SELECT * FROM UNNEST($1::text[]::numeric[], $2::text[], $3::int8[], $4::int8[], $5::int8[])",
            )
            .bind(t.id)
            .bind(t.kind)
            .bind(t.eta)
            .bind(t.from_block)
            .bind(t.from_log)
            .execute(&mut *conn)
            .await?;
        }
        if !self.votes.id.is_empty() {
            let v = std::mem::take(&mut self.votes);
            sqlx::query(
                "INSERT INTO votes (proposal_id, voter, support, weight, reason, from_block, from_log)
                 SELECT * FROM UNNEST($1::text[]::numeric[], $2::bytea[], $3::int2[], $4::text[]::numeric[], $5::text[], $6::int8[], $7::int8[])",
            )
            .bind(v.id)
            .bind(v.voter)
            .bind(v.support)
            .bind(v.weight)
            .bind(v.reason)
            .bind(v.from_block)
            .bind(v.from_log)
            .execute(&mut *conn)
            .await?;
        }
        if !self.timelock_ops.id.is_empty() {
            let t = std::mem::take(&mut self.timelock_ops);
            sqlx::query(
                "INSERT INTO timelock_operations (operation_id, kind, from_block, from_log)
                 SELECT * FROM UNNEST($1::bytea[], $2::text[], $3::int8[], $4::int8[])",
            )
            .bind(t.id)
            .bind(t.kind)
            .bind(t.from_block)
            .bind(t.from_log)
            .execute(&mut *conn)
            .await?;
        }
        if !self.checkpoints.kind.is_empty() {
            let c = std::mem::take(&mut self.checkpoints);
            sqlx::query(
                "INSERT INTO governance_checkpoints (kind, timepoint, value, from_block, from_log)
                 SELECT * FROM UNNEST($1::text[], $2::int8[], $3::text[]::numeric[], $4::int8[], $5::int8[])",
            )
            .bind(c.kind)
            .bind(c.timepoint)
            .bind(c.value)
            .bind(c.from_block)
            .bind(c.from_log)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}
