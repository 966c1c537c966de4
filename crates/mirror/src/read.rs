//! Every read of the indexer's schema, always "as of" a block (normally the finalized view): a
//! row is visible at block `f` if it was added at or before `f` and not removed at or before `f`.
//! The indexer's API and change feed, and the [`crate::PolicyView`], read through these; the
//! schema itself (migrations, writes) belongs to the indexer.

use std::collections::BTreeMap;

use alloy::primitives::{Address, B256};
use serde_json::Value;
use sqlx::{PgConnection, Row};

use crate::Result;

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn b256(bytes: &[u8]) -> B256 {
    if bytes.len() == 32 {
        B256::from_slice(bytes)
    } else {
        B256::ZERO
    }
}

/// Every app address ever registered (deregistered apps stay followed), and whether it was ever
/// registered as a custom app (its every log is kept, not only the App ABI's events).
pub async fn followed_apps(conn: &mut PgConnection) -> Result<Vec<(Address, bool)>> {
    let rows: Vec<(Vec<u8>, bool)> = sqlx::query_as(
        "SELECT member, COALESCE(bool_or(data->>'kind' = 'custom'), false) FROM members
         WHERE set_name = 'app' GROUP BY member",
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter(|r| r.0.len() == 20)
        .map(|r| (Address::from_slice(&r.0), r.1))
        .collect())
}

/// The mirror's position as readers see it.
#[derive(Clone, Debug)]
pub struct View {
    /// Chain id.
    pub chain_id: u64,
    /// The chain head as last seen.
    pub head: u64,
    /// The last indexed block.
    pub indexed: u64,
    /// Its hash.
    pub indexed_hash: Option<B256>,
    /// The finalized view's block.
    pub finalized: u64,
    /// Its hash.
    pub finalized_hash: Option<B256>,
    /// Its timestamp.
    pub finalized_timestamp: Option<u64>,
}

/// The mirror's position (`None` before the indexer has initialised the database).
pub async fn view(conn: &mut PgConnection) -> Result<Option<View>> {
    let row = sqlx::query(
        "SELECT m.chain_id, m.head_number, m.indexed_number, m.indexed_hash, m.finalized_number,
                m.finalized_hash, b.timestamp
         FROM mirror m LEFT JOIN blocks b ON b.number = m.finalized_number",
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| View {
        chain_id: r.get::<i64, _>(0) as u64,
        head: r.get::<i64, _>(1) as u64,
        indexed: r.get::<i64, _>(2) as u64,
        indexed_hash: r.get::<Option<Vec<u8>>, _>(3).map(|h| b256(&h)),
        finalized: r.get::<i64, _>(4) as u64,
        finalized_hash: r.get::<Option<Vec<u8>>, _>(5).map(|h| b256(&h)),
        finalized_timestamp: r.get::<Option<i64>, _>(6).map(|t| t as u64),
    }))
}

/// A row of a set.
#[derive(Clone, Debug)]
pub struct MemberRow {
    /// The contract the set belongs to.
    pub scope: Vec<u8>,
    /// The member's key.
    pub member: Vec<u8>,
    /// What the adding event said about it.
    pub data: Value,
    /// Added at.
    pub from_block: u64,
    /// Removed at (only if at or before the view's block).
    pub to_block: Option<u64>,
}

fn member_row(r: sqlx::postgres::PgRow) -> MemberRow {
    MemberRow {
        scope: r.get(0),
        member: r.get(1),
        data: r.get(2),
        from_block: r.get::<i64, _>(3) as u64,
        to_block: r.get::<Option<i64>, _>(4).map(|b| b as u64),
    }
}

/// Members of `set` at block `at`, optionally within one `scope`, in the order they were added.
pub async fn members_at(
    conn: &mut PgConnection,
    set: &str,
    scope: Option<&[u8]>,
    at: u64,
) -> Result<Vec<MemberRow>> {
    let rows = sqlx::query(
        "SELECT scope, member, data, from_block, NULL::int8 FROM members
         WHERE set_name = $1 AND ($2::bytea IS NULL OR scope = $2)
           AND from_block <= $3 AND (to_block IS NULL OR to_block > $3)
         ORDER BY from_block, from_log",
    )
    .bind(set)
    .bind(scope)
    .bind(i64_of(at))
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(member_row).collect())
}

/// Whether `member` is in `set` within `scope` at block `at`.
pub async fn is_member_at(
    conn: &mut PgConnection,
    set: &str,
    scope: &[u8],
    member: &[u8],
    at: u64,
) -> Result<bool> {
    Ok(scoped_member_at(conn, set, scope, member, at)
        .await?
        .is_some())
}

/// `member` of `set` within `scope` at block `at`, with what the adding event said.
pub async fn scoped_member_at(
    conn: &mut PgConnection,
    set: &str,
    scope: &[u8],
    member: &[u8],
    at: u64,
) -> Result<Option<MemberRow>> {
    let row = sqlx::query(
        "SELECT scope, member, data, from_block, NULL::int8 FROM members
         WHERE set_name = $1 AND scope = $2 AND member = $3
           AND from_block <= $4 AND (to_block IS NULL OR to_block > $4)
         LIMIT 1",
    )
    .bind(set)
    .bind(scope)
    .bind(member)
    .bind(i64_of(at))
    .fetch_optional(conn)
    .await?;
    Ok(row.map(member_row))
}

/// One member of `set` at block `at`, in any scope.
pub async fn member_at(
    conn: &mut PgConnection,
    set: &str,
    member: &[u8],
    at: u64,
) -> Result<Option<MemberRow>> {
    let row = sqlx::query(
        "SELECT scope, member, data, from_block, NULL::int8 FROM members
         WHERE set_name = $1 AND member = $2 AND from_block <= $3 AND (to_block IS NULL OR to_block > $3)
         LIMIT 1",
    )
    .bind(set)
    .bind(member)
    .bind(i64_of(at))
    .fetch_optional(conn)
    .await?;
    Ok(row.map(member_row))
}

/// Every row `set` had within `scope` up to block `at` (history with added/removed blocks),
/// optionally of one `member` only.
pub async fn member_history(
    conn: &mut PgConnection,
    set: &str,
    scope: &[u8],
    member: Option<&[u8]>,
    at: u64,
) -> Result<Vec<MemberRow>> {
    let rows = sqlx::query(
        "SELECT scope, member, data, from_block, CASE WHEN to_block <= $3 THEN to_block END FROM members
         WHERE set_name = $1 AND scope = $2 AND from_block <= $3 AND ($4::bytea IS NULL OR member = $4)
         ORDER BY from_block, from_log",
    )
    .bind(set)
    .bind(scope)
    .bind(i64_of(at))
    .bind(member)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(member_row).collect())
}

/// The settings of `scope` at block `at`.
pub async fn settings_at(
    conn: &mut PgConnection,
    scope: &[u8],
    at: u64,
) -> Result<BTreeMap<String, Value>> {
    let rows: Vec<(String, Value)> = sqlx::query_as(
        "SELECT name, value FROM settings
         WHERE scope = $1 AND from_block <= $2 AND (to_block IS NULL OR to_block > $2)",
    )
    .bind(scope)
    .bind(i64_of(at))
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Everything `isAppAllowed` reads for one boot at a block, as [`app_boot_rows`] returns it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AppBootRows {
    /// The registry's settings.
    pub registry_settings: BTreeMap<String, Value>,
    /// What added the boot's OS image to the registry, if it is there.
    pub os_image: Option<Value>,
    /// What registered the app, if it is registered.
    pub app: Option<Value>,
    /// The app's settings (none for an app the mirror does not model).
    pub app_settings: BTreeMap<String, Value>,
    /// What added the boot's compose hash to the app, if it is there.
    pub compose_hash: Option<Value>,
    /// What added the boot's device to the app, if it is there.
    pub device: Option<Value>,
}

/// The values of one boot that [`app_boot_rows`] looks up.
#[derive(Clone, Copy, Debug)]
pub struct BootKey<'a> {
    /// The app.
    pub app: &'a [u8],
    /// The OS image hash.
    pub image: &'a [u8],
    /// The compose hash.
    pub compose: &'a [u8],
    /// The device id.
    pub device: &'a [u8],
}

/// The rows [`AppBootRows`] holds for each of `boots` under `registry` at block `at`, in order,
/// in one round trip however many boots (the same predicates as [`settings_at`],
/// [`scoped_member_at`] and [`member_at`]; the registry's settings are read once).
pub async fn app_boot_rows(
    conn: &mut PgConnection,
    registry: &[u8],
    boots: &[BootKey<'_>],
    at: u64,
) -> Result<Vec<AppBootRows>> {
    if boots.is_empty() {
        return Ok(Vec::new());
    }
    let apps: Vec<&[u8]> = boots.iter().map(|b| b.app).collect();
    let images: Vec<&[u8]> = boots.iter().map(|b| b.image).collect();
    let composes: Vec<&[u8]> = boots.iter().map(|b| b.compose).collect();
    let devices: Vec<&[u8]> = boots.iter().map(|b| b.device).collect();
    let rows: Vec<(i16, i64, Option<String>, Value)> = sqlx::query_as(
        "WITH q AS (
           SELECT * FROM unnest($2::bytea[], $3::bytea[], $4::bytea[], $5::bytea[])
             WITH ORDINALITY AS q(app, image, compose, device, i))
         SELECT 0::int2, 0::int8, name, value FROM settings
           WHERE scope = $1 AND from_block <= $6 AND (to_block IS NULL OR to_block > $6)
         UNION ALL
         SELECT 1::int2, q.i, s.name, s.value FROM q JOIN settings s ON s.scope = q.app
           AND s.from_block <= $6 AND (s.to_block IS NULL OR s.to_block > $6)
         UNION ALL
         SELECT 2::int2, q.i, NULL, m.data FROM q CROSS JOIN LATERAL
           (SELECT data FROM members
             WHERE set_name = 'os_image' AND scope = $1 AND member = q.image
               AND from_block <= $6 AND (to_block IS NULL OR to_block > $6) LIMIT 1) m
         UNION ALL
         SELECT 3::int2, q.i, NULL, m.data FROM q CROSS JOIN LATERAL
           (SELECT data FROM members
             WHERE set_name = 'app' AND member = q.app
               AND from_block <= $6 AND (to_block IS NULL OR to_block > $6) LIMIT 1) m
         UNION ALL
         SELECT 4::int2, q.i, NULL, m.data FROM q CROSS JOIN LATERAL
           (SELECT data FROM members
             WHERE set_name = 'compose_hash' AND scope = q.app AND member = q.compose
               AND from_block <= $6 AND (to_block IS NULL OR to_block > $6) LIMIT 1) m
         UNION ALL
         SELECT 5::int2, q.i, NULL, m.data FROM q CROSS JOIN LATERAL
           (SELECT data FROM members
             WHERE set_name = 'device' AND scope = q.app AND member = q.device
               AND from_block <= $6 AND (to_block IS NULL OR to_block > $6) LIMIT 1) m",
    )
    .bind(registry)
    .bind(apps)
    .bind(images)
    .bind(composes)
    .bind(devices)
    .bind(i64_of(at))
    .fetch_all(conn)
    .await?;
    let mut out = vec![AppBootRows::default(); boots.len()];
    let mut registry_settings = BTreeMap::new();
    for (part, i, name, value) in rows {
        if part == 0 {
            if let Some(name) = name {
                registry_settings.insert(name, value);
            }
            continue;
        }
        // WITH ORDINALITY counts from 1.
        let Some(row) = usize::try_from(i - 1).ok().and_then(|i| out.get_mut(i)) else {
            continue;
        };
        match (part, name) {
            (1, Some(name)) => {
                row.app_settings.insert(name, value);
            }
            (2, _) => row.os_image = Some(value),
            (3, _) => row.app = Some(value),
            (4, _) => row.compose_hash = Some(value),
            (5, _) => row.device = Some(value),
            _ => {}
        }
    }
    for row in &mut out {
        row.registry_settings = registry_settings.clone();
    }
    Ok(out)
}

/// A proposal as created.
#[derive(Clone, Debug)]
pub struct ProposalRow {
    /// Decimal proposal id.
    pub id: String,
    /// Proposer.
    pub proposer: Address,
    /// Decoded actions.
    pub actions: Value,
    /// Voting starts after this timepoint (the snapshot).
    pub vote_start: u64,
    /// Voting ends at this timepoint.
    pub vote_end: u64,
    /// Description.
    pub description: String,
    /// The timelock operation id.
    pub timelock_id: B256,
    /// Created at.
    pub block: u64,
}

fn proposal_row(r: sqlx::postgres::PgRow) -> ProposalRow {
    let proposer: Vec<u8> = r.get(1);
    let tl: Vec<u8> = r.get(6);
    ProposalRow {
        id: r.get(0),
        proposer: if proposer.len() == 20 {
            Address::from_slice(&proposer)
        } else {
            Address::ZERO
        },
        actions: r.get(2),
        vote_start: r.get::<i64, _>(3) as u64,
        vote_end: r.get::<i64, _>(4) as u64,
        description: r.get(5),
        timelock_id: b256(&tl),
        block: r.get::<i64, _>(7) as u64,
    }
}

/// Proposals created at or before block `at`, newest first.
pub async fn proposals_at(conn: &mut PgConnection, at: u64) -> Result<Vec<ProposalRow>> {
    let rows = sqlx::query(
        "SELECT proposal_id::text, proposer, actions, vote_start, vote_end, description, timelock_id, from_block
         FROM proposals WHERE from_block <= $1 ORDER BY from_block DESC, proposal_id",
    )
    .bind(i64_of(at))
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(proposal_row).collect())
}

/// One proposal, if created at or before block `at`.
pub async fn proposal_at(
    conn: &mut PgConnection,
    id: &str,
    at: u64,
) -> Result<Option<ProposalRow>> {
    let row = sqlx::query(
        "SELECT proposal_id::text, proposer, actions, vote_start, vote_end, description, timelock_id, from_block
         FROM proposals WHERE proposal_id = $1::numeric AND from_block <= $2",
    )
    .bind(id)
    .bind(i64_of(at))
    .fetch_optional(conn)
    .await?;
    Ok(row.map(proposal_row))
}

/// What happened to a proposal up to block `at`.
#[derive(Clone, Debug, Default)]
pub struct ProposalFacts {
    /// ETA of the queued operation, if queued.
    pub queued_eta: Option<u64>,
    /// The governor announced its execution.
    pub executed: bool,
    /// The governor announced its cancellation.
    pub canceled: bool,
    /// The timelock executed its operation.
    pub timelock_executed: bool,
    /// The timelock cancelled its operation.
    pub timelock_cancelled: bool,
    /// Votes against, for, abstain (decimal strings).
    pub tally: [String; 3],
    /// The token supply at the snapshot (decimal).
    pub supply_at_snapshot: String,
    /// The quorum numerator at the snapshot.
    pub quorum_numerator: String,
}

/// Collects [`ProposalFacts`] for `p` at block `at`.
pub async fn proposal_facts(
    conn: &mut PgConnection,
    p: &ProposalRow,
    at: u64,
) -> Result<ProposalFacts> {
    let mut facts = ProposalFacts::default();
    let rows: Vec<(String, Option<i64>)> = sqlx::query_as(
        "SELECT kind, eta FROM proposal_transitions WHERE proposal_id = $1::numeric AND from_block <= $2
         ORDER BY from_block, from_log",
    )
    .bind(&p.id)
    .bind(i64_of(at))
    .fetch_all(&mut *conn)
    .await?;
    for (kind, eta) in rows {
        match kind.as_str() {
            "queued" => facts.queued_eta = eta.map(|e| e as u64),
            "executed" => facts.executed = true,
            "canceled" => facts.canceled = true,
            _ => {}
        }
    }
    let ops: Vec<(String,)> = sqlx::query_as(
        "SELECT kind FROM timelock_operations WHERE operation_id = $1 AND from_block <= $2",
    )
    .bind(p.timelock_id.as_slice())
    .bind(i64_of(at))
    .fetch_all(&mut *conn)
    .await?;
    facts.timelock_executed = ops.iter().any(|o| o.0 == "executed");
    facts.timelock_cancelled = ops.iter().any(|o| o.0 == "cancelled");
    let tally: (String, String, String) = sqlx::query_as(
        "SELECT COALESCE(SUM(weight) FILTER (WHERE support = 0), 0)::text,
                COALESCE(SUM(weight) FILTER (WHERE support = 1), 0)::text,
                COALESCE(SUM(weight) FILTER (WHERE support = 2), 0)::text
         FROM votes WHERE proposal_id = $1::numeric AND from_block <= $2",
    )
    .bind(&p.id)
    .bind(i64_of(at))
    .fetch_one(&mut *conn)
    .await?;
    facts.tally = [tally.0, tally.1, tally.2];
    let supply: (String,) = sqlx::query_as(
        "SELECT COALESCE(SUM(value), 0)::text FROM governance_checkpoints
         WHERE kind = 'supply' AND timepoint <= $1 AND from_block <= $2",
    )
    .bind(i64_of(p.vote_start))
    .bind(i64_of(at))
    .fetch_one(&mut *conn)
    .await?;
    facts.supply_at_snapshot = supply.0;
    let numerator: Option<(String,)> = sqlx::query_as(
        "SELECT value::text FROM governance_checkpoints
         WHERE kind = 'quorum_numerator' AND timepoint <= $1 AND from_block <= $2
         ORDER BY timepoint DESC, from_block DESC, from_log DESC LIMIT 1",
    )
    .bind(i64_of(p.vote_start))
    .bind(i64_of(at))
    .fetch_optional(&mut *conn)
    .await?;
    facts.quorum_numerator = numerator.map(|n| n.0).unwrap_or_else(|| "0".into());
    Ok(facts)
}

/// A vote.
#[derive(Clone, Debug)]
pub struct VoteRow {
    /// Voter.
    pub voter: Address,
    /// 0 against, 1 for, 2 abstain.
    pub support: u8,
    /// Weight (decimal).
    pub weight: String,
    /// Reason.
    pub reason: String,
    /// Block.
    pub block: u64,
}

/// Votes on proposal `id` up to block `at`, in order.
pub async fn votes_at(conn: &mut PgConnection, id: &str, at: u64) -> Result<Vec<VoteRow>> {
    let rows = sqlx::query(
        "SELECT voter, support, weight::text, reason, from_block FROM votes
         WHERE proposal_id = $1::numeric AND from_block <= $2 ORDER BY from_block, from_log",
    )
    .bind(id)
    .bind(i64_of(at))
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let voter: Vec<u8> = r.get(0);
            VoteRow {
                voter: if voter.len() == 20 {
                    Address::from_slice(&voter)
                } else {
                    Address::ZERO
                },
                support: r.get::<i16, _>(1) as u8,
                weight: r.get(2),
                reason: r.get(3),
                block: r.get::<i64, _>(4) as u64,
            }
        })
        .collect())
}

/// An event of the change feed.
#[derive(Clone, Debug)]
pub struct FeedEvent {
    /// Block number.
    pub block: u64,
    /// Log index.
    pub log_index: u64,
    /// Block hash.
    pub block_hash: B256,
    /// Transaction hash.
    pub tx_hash: B256,
    /// Emitting contract.
    pub contract: Address,
    /// Contract kind.
    pub source: String,
    /// Event name.
    pub name: String,
    /// Decoded parameters.
    pub data: Value,
}

/// Policy events (registry, apps, domains) after position `(block, log)` up to block `at`, in
/// chain order, at most `limit`.
pub async fn feed_after(
    conn: &mut PgConnection,
    after: (u64, u64),
    at: u64,
    limit: i64,
) -> Result<Vec<FeedEvent>> {
    let rows = sqlx::query(
        "SELECT block_number, log_index, block_hash, tx_hash, contract, source, name, data FROM events
         WHERE block_number >= $1 AND (block_number, log_index) > ($1, $2) AND block_number <= $3
           AND source IN ('kms_registry', 'app', 'domain_registry')
         ORDER BY block_number, log_index LIMIT $4",
    )
    .bind(i64_of(after.0))
    .bind(i64_of(after.1))
    .bind(i64_of(at))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let contract: Vec<u8> = r.get(4);
            FeedEvent {
                block: r.get::<i64, _>(0) as u64,
                log_index: r.get::<i64, _>(1) as u64,
                block_hash: b256(&r.get::<Vec<u8>, _>(2)),
                tx_hash: b256(&r.get::<Vec<u8>, _>(3)),
                contract: if contract.len() == 20 {
                    Address::from_slice(&contract)
                } else {
                    Address::ZERO
                },
                source: r.get(5),
                name: r.get(6),
                data: r.get(7),
            }
        })
        .collect())
}

/// The timestamp of block `number`, if indexed.
pub async fn block_timestamp(conn: &mut PgConnection, number: u64) -> Result<Option<u64>> {
    let t: Option<(Option<i64>,)> =
        sqlx::query_as("SELECT timestamp FROM blocks WHERE number = $1")
            .bind(i64_of(number))
            .fetch_optional(conn)
            .await?;
    Ok(t.and_then(|(t,)| t).and_then(|t| u64::try_from(t).ok()))
}

/// What made a change to an app's compose hashes: the transaction that emitted `event`
/// (`ComposeHashAdded` or `ComposeHashRemoved`) for `compose_hash` in `block`, and the proposal
/// the Governor executed in that same transaction, if any.
pub async fn compose_hash_change(
    conn: &mut PgConnection,
    app: Address,
    event: &str,
    compose_hash: B256,
    block: u64,
) -> Result<Option<(B256, Option<String>)>> {
    let row = sqlx::query(
        "SELECT e.tx_hash,
                (SELECT x.data->>'proposalId' FROM events x
                  WHERE x.block_number = e.block_number AND x.tx_hash = e.tx_hash
                    AND x.source = 'governor' AND x.name = 'ProposalExecuted' LIMIT 1)
         FROM events e
         WHERE e.block_number = $1 AND e.contract = $2 AND e.name = $3
           AND lower(e.data->>'composeHash') = $4
         LIMIT 1",
    )
    .bind(i64_of(block))
    .bind(app.as_slice())
    .bind(event)
    .bind(compose_hash.to_string())
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (b256(&r.get::<Vec<u8>, _>(0)), r.get(1))))
}
