//! The sync loop: backfill finalized history with concurrent adaptive `eth_getLogs` ranges, then
//! follow new blocks one by one with parent-hash checks, rewinding on reorgs. Historic and live
//! phases share one cursor that advances in the same transaction as the data, so the handoff has
//! no gap and no duplicate, and a crash at any point resumes from the last commit.
//!
//! Each range goes through two stages: fetching completes it into a [`Batch`] (headers,
//! timestamps, logs, registered apps: every RPC), then the store writes the batch in one
//! transaction with no RPC inside the write.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use alloy::{primitives::Address, rpc::types::Log};
use covenant_chain::Deployment;
use futures::{StreamExt, stream};
use indicatif::{ProgressBar, ProgressStyle};
use sqlx::PgPool;
use tokio::sync::{Notify, watch};

use crate::{
    Error, Result,
    abi::{Abis, Source},
    config::{Config, Finality},
    contracts::{AppKind, Contracts},
    health::Health,
    metrics::Metrics,
    project::{Lookup, SourcedLog, project},
    source::{BlockRef, LogFilter, RangeSizer, Rpc, fetch_logs},
    store::{self, At, BlockRow, MirrorState, Writer},
};

/// Logs of `from..=to` fetched with the first `addresses_used` addresses as filter.
struct RangeLogs {
    from: u64,
    to: u64,
    /// The parent hash of block `from`: ranges must link up with the cursor.
    first_parent: alloy::primitives::B256,
    end: BlockRef,
    logs: Vec<Log>,
    addresses_used: usize,
}

/// A range of blocks completed by the fetching side: every log of a mirrored contract with its
/// source and timestamp, the blocks the logs came from, and the apps the range registers. The
/// store writes it in one transaction with no RPC inside the write.
struct Batch {
    from: u64,
    to: u64,
    /// The range's last block (its hash becomes the cursor).
    end: BlockRow,
    /// The other blocks the logs came from.
    blocks: Vec<BlockRow>,
    logs: Vec<SourcedLog>,
    /// Apps registered in the range: followed from the transaction that registers them.
    registered: Vec<(Address, AppKind)>,
    /// A backfilled range is final: the finalized view moves to its end too.
    final_range: bool,
}

/// The indexer's sync loop and what it needs.
pub struct Syncer {
    config: Config,
    deployment: Deployment,
    chain_id: u64,
    rpc: Rpc,
    pool: PgPool,
    abis: Arc<Abis>,
    contracts: Arc<Contracts>,
    metrics: Metrics,
    health: Arc<Health>,
    sizer: Arc<Mutex<RangeSizer>>,
    state: MirrorState,
    /// Set after any failed step: the database may have lost or rolled back what this process
    /// believes (a crash with asynchronous commit, a restore), so the next step starts by
    /// re-reading the committed cursor.
    reload: bool,
    show_progress: bool,
}

impl Syncer {
    /// Prepares the loop: the database must be migrated and hold the mirror row.
    #[allow(clippy::too_many_arguments)]
    pub async fn new(
        config: Config,
        deployment: &Deployment,
        rpc: Rpc,
        pool: PgPool,
        abis: Arc<Abis>,
        metrics: Metrics,
        health: Arc<Health>,
        show_progress: bool,
    ) -> Result<Self> {
        let mut conn = pool.acquire().await?;
        let state = store::init_mirror(
            &mut conn,
            deployment.chain_id,
            deployment.contracts.kms_registry,
            deployment.start_block,
        )
        .await?;
        let apps = covenant_mirror::read::followed_apps(&mut conn).await?;
        drop(conn);
        let sizer = RangeSizer::new(
            config.initial_range_blocks,
            config.max_range_blocks,
            config.target_logs_per_range,
        );
        metrics.indexed_block.set(state.indexed_number as i64);
        metrics.finalized_block.set(state.finalized_number as i64);
        Ok(Self {
            deployment: deployment.clone(),
            chain_id: deployment.chain_id,
            contracts: Arc::new(Contracts::new(deployment, apps)),
            sizer: Arc::new(Mutex::new(sizer)),
            config,
            rpc,
            pool,
            abis,
            metrics,
            health,
            state,
            reload: false,
            show_progress,
        })
    }

    /// Runs until `shutdown` turns true, a fatal error, or the configured stop block is final.
    pub async fn run(
        mut self,
        mut shutdown: watch::Receiver<bool>,
        wake: Arc<Notify>,
    ) -> Result<()> {
        let mut backoff = Duration::from_millis(100);
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            let step = tokio::select! {
                _ = shutdown.wait_for(|s| *s) => return Ok(()),
                step = self.step() => step,
            };
            match step {
                Ok(progressed) => {
                    self.health.ok();
                    self.metrics.healthy.set(1);
                    backoff = Duration::from_millis(100);
                    if let Some(stop) = self.config.stop_at_block
                        && self.state.finalized_number >= stop
                    {
                        tracing::info!(target: "indexer::sync", block = self.state.finalized_number, "stop block is final, exiting");
                        return Ok(());
                    }
                    if !progressed {
                        tokio::select! {
                            _ = shutdown.wait_for(|s| *s) => return Ok(()),
                            _ = wake.notified() => {}
                            _ = tokio::time::sleep(self.config.poll_interval()) => {}
                        }
                    }
                }
                Err(e) => {
                    self.health.failed(&e.to_string());
                    self.metrics.healthy.set(0);
                    match &e {
                        Error::Db(_) | Error::Mirror(covenant_mirror::Error::Db(_)) => {
                            self.metrics.db_errors.inc()
                        }
                        Error::Rpc { .. }
                        | Error::RpcInconsistent { .. }
                        | Error::RangeRefused { .. } => self.metrics.rpc_errors.inc(),
                        _ => {}
                    }
                    if e.is_fatal() {
                        tracing::error!(target: "indexer::sync", error = %e, "stopping");
                        return Err(e);
                    }
                    tracing::warn!(target: "indexer::sync", error = %e, retry_in = ?backoff, "sync step failed");
                    tokio::select! {
                        _ = shutdown.wait_for(|s| *s) => return Ok(()),
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    self.reload = true;
                }
            }
        }
    }

    /// One pass: check the cursor is still canonical, backfill to the chain's finalized block,
    /// follow to the head, advance the finalized view. Returns whether any block was applied.
    async fn step(&mut self) -> Result<bool> {
        let t_step = tokio::time::Instant::now();
        if self.reload {
            let mut conn = self.pool.acquire().await?;
            self.state = store::load_mirror(&mut conn).await?;
            self.reload_contracts(&mut conn).await?;
            self.reload = false;
            self.metrics
                .indexed_block
                .set(self.state.indexed_number as i64);
        }
        let head = self.rpc.head_number().await?;
        let chain_final = match self.config.finality {
            Finality::Tag => self.rpc.finalized_number().await?,
            Finality::Confirmations(n) => head.saturating_sub(n),
        }
        .min(head);
        self.metrics.head_block.set(head as i64);
        tracing::trace!(target: "indexer::sync", ms = t_step.elapsed().as_secs_f64() * 1e3, head, "head and finality read");
        let cap = self.config.stop_at_block.map_or(head, |s| s.min(head));

        let before = self.state.indexed_number;
        self.check_cursor().await?;
        tracing::trace!(target: "indexer::sync", ms = t_step.elapsed().as_secs_f64() * 1e3, "cursor checked");
        let mut progressed = self.state.indexed_number != before;

        if self.state.indexed_number < chain_final.min(cap) {
            self.backfill(chain_final.min(cap)).await?;
            progressed = true;
        }
        while self.state.indexed_number < cap {
            if !self.follow(self.state.indexed_number + 1).await? {
                break;
            }
            progressed = true;
        }
        self.advance_finalized(chain_final, head).await?;
        Ok(progressed)
    }

    /// Rebuilds the followed-contracts set from what the database has committed.
    async fn reload_contracts(&mut self, conn: &mut sqlx::PgConnection) -> Result<()> {
        let apps = covenant_mirror::read::followed_apps(conn).await?;
        self.contracts = Arc::new(Contracts::new(&self.deployment, apps));
        Ok(())
    }

    /// Whether the block the cursor points at is still the chain's block at that height; if not,
    /// rewinds to the common ancestor.
    async fn check_cursor(&mut self) -> Result<()> {
        let Some(hash) = self.state.indexed_hash else {
            return Ok(());
        };
        let n = self.state.indexed_number;
        match self.rpc.block(n).await? {
            Some(b) if b.hash == hash => Ok(()),
            Some(_) => self.reorg(n).await,
            // A node behind the mirror (a restarted or load-balanced replica) is not a reorg:
            // wait until it has the block, then compare hashes.
            None => Err(behind(n)),
        }
    }

    /// Block `n` (stored) is no longer canonical: find the highest stored block that still is,
    /// and rewind everything above it in one transaction.
    async fn reorg(&mut self, n: u64) -> Result<()> {
        let finalized = self.state.finalized_number;
        let mut conn = self.pool.acquire().await?;
        let mut k = n;
        let nothing_final = self.state.finalized_hash.is_none();
        let (ancestor, ancestor_hash) = loop {
            let stored = store::block_hash(&mut conn, k).await?;
            let chain = self.rpc.block(k).await?.ok_or_else(|| behind(k))?;
            match stored {
                Some(s) if s == chain.hash => break (k, Some(s)),
                // Before anything is final the walk may reach the block before the start block:
                // everything indexed so far is rewound.
                _ if nothing_final && k == finalized => break (k, None),
                _ if k <= finalized || k == 0 => {
                    return Err(Error::FinalizedReorg {
                        finalized,
                        number: k,
                    });
                }
                _ => k -= 1,
            }
        };
        drop(conn);
        let depth = self.state.indexed_number - ancestor;
        let mut tx = self.pool.begin().await?;
        store::rewind(&mut tx, self.state.indexed_number, ancestor, ancestor_hash).await?;
        // Apps registered in the orphaned blocks are no longer followed.
        self.reload_contracts(&mut tx).await?;
        tx.commit().await?;
        tracing::warn!(target: "indexer::sync", from = self.state.indexed_number, to = ancestor, depth, "reorg: rewound to common ancestor");
        self.metrics.reorgs.inc();
        self.metrics.reorg_depth.observe(depth as f64);
        self.state.indexed_number = ancestor;
        self.state.indexed_hash = ancestor_hash;
        self.metrics.indexed_block.set(ancestor as i64);
        Ok(())
    }

    /// Backfills `indexed + 1 ..= target` (all final): ranges fetched concurrently, applied in order.
    async fn backfill(&mut self, target: u64) -> Result<()> {
        let start = self.state.indexed_number + 1;
        let progress = self.progress_bar(start, target);
        let started = tokio::time::Instant::now();
        let events_before = self.metrics.events.get();
        let (rpc, contracts, sizer, metrics) = (
            self.rpc.clone(),
            self.contracts.clone(),
            self.sizer.clone(),
            self.metrics.clone(),
        );
        let ranges = Box::pin(stream::unfold(start, {
            let sizer = sizer.clone();
            move |from| {
                let sizer = sizer.clone();
                async move {
                    if from > target {
                        return None;
                    }
                    let (a, b) = sizer
                        .lock()
                        .map(|s| s.next(from, target))
                        .unwrap_or((from, from));
                    Some(((a, b), b + 1))
                }
            }
        }));
        let mut fetched = ranges
            .map(|(a, b)| {
                let (rpc, contracts, sizer, metrics) = (
                    rpc.clone(),
                    contracts.clone(),
                    sizer.clone(),
                    metrics.clone(),
                );
                // Spawned, so fetching continues while earlier ranges are being written.
                let task = tokio::spawn(async move {
                    let filter = contracts.filter();
                    let t = tokio::time::Instant::now();
                    let logs = fetch_logs(&rpc, a, b, &filter, &sizer, &metrics).await?;
                    let t_logs = t.elapsed();
                    let end = rpc.require_block(b).await?;
                    let first_parent =
                        if a == b { end.parent_hash } else { rpc.require_block(a).await?.parent_hash };
                    tracing::trace!(target: "indexer::sync", from = a, to = b, logs_ms = t_logs.as_secs_f64() * 1e3, total_ms = t.elapsed().as_secs_f64() * 1e3, "range fetched");
                    Ok::<_, Error>(RangeLogs {
                        from: a,
                        to: b,
                        first_parent,
                        end,
                        logs,
                        addresses_used: filter.addresses.len(),
                    })
                });
                OwnedTask(task)
            })
            .buffered(self.config.fetch_concurrency);
        while let Some(range) = fetched.next().await {
            let range = range?;
            let to = range.to;
            self.apply_range(range).await?;
            if let Some(p) = &progress {
                p.set_position(to + 1 - start);
                let secs = started.elapsed().as_secs_f64().max(1e-3);
                let events = self.metrics.events.get() - events_before;
                p.set_message(format!(
                    "{events} events, {:.0} events/s",
                    events as f64 / secs
                ));
            }
        }
        if let Some(p) = progress {
            p.finish_and_clear();
        }
        let secs = started.elapsed().as_secs_f64();
        let events = self.metrics.events.get() - events_before;
        tracing::info!(
            target: "indexer::sync",
            from = start, to = target, events, seconds = secs,
            events_per_second = events as f64 / secs.max(1e-3),
            "backfilled"
        );
        Ok(())
    }

    fn progress_bar(&self, start: u64, target: u64) -> Option<ProgressBar> {
        if !self.show_progress || target < start {
            return None;
        }
        let bar = ProgressBar::new(target - start + 1);
        let style = ProgressStyle::with_template(
            "{spinner} backfill [{bar:30}] {pos}/{len} blocks  {msg}  ETA {eta}",
        )
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        Some(bar)
    }

    /// Completes a fetched range (refetching for apps registered after its filter was made)
    /// and commits it, with the finalized view moved to its end.
    async fn apply_range(&mut self, mut range: RangeLogs) -> Result<()> {
        // Backfilled blocks are final; if they do not extend the cursor, a reorg deeper than the
        // finality rule replaced final blocks: stop rather than mix two forks.
        if let Some(cursor) = self.state.indexed_hash
            && range.first_parent != cursor
        {
            return Err(Error::FinalizedReorg {
                finalized: self.state.finalized_number,
                number: range.from - 1,
            });
        }
        // Custom apps are followed by address: one registered in this range, or after its filter
        // was made, needs the range fetched again for its address. (A factory app's logs are
        // already in: the topic filter does not depend on which apps exist.)
        let mut missing: BTreeSet<Address> = self
            .contracts
            .new_apps_in(&range.logs)
            .into_iter()
            .filter(|(_, new)| new.kind() == AppKind::Custom)
            .map(|(app, _)| app)
            .collect();
        missing.extend(self.contracts.addresses_since(range.addresses_used));
        if !missing.is_empty() {
            let filter = LogFilter {
                addresses: missing.into_iter().collect(),
                topics: Vec::new(),
            };
            let extra = fetch_logs(
                &self.rpc,
                range.from,
                range.to,
                &filter,
                &self.sizer,
                &self.metrics,
            )
            .await?;
            // Apps registered by the extra logs' own contracts cannot happen (apps do not create apps).
            range.logs.extend(extra);
            range.logs.sort_by_key(|l| (l.block_number, l.log_index));
            range.logs.dedup_by_key(|l| (l.block_hash, l.log_index));
        }
        let end = BlockRow {
            number: range.end.number,
            hash: range.end.hash,
            parent_hash: Some(range.end.parent_hash),
            timestamp: Some(range.end.timestamp),
        };
        let batch = self
            .complete(range.from, range.to, end, range.logs, true)
            .await?;
        self.write(batch).await
    }

    /// Follows block `n` (above the finalized block): parent-hash check, then its logs. Returns
    /// false when the node does not have block `n` (yet).
    async fn follow(&mut self, n: u64) -> Result<bool> {
        let Some(block) = self.rpc.block(n).await? else {
            return Ok(false);
        };
        if let Some(parent) = self.state.indexed_hash
            && n == self.state.indexed_number + 1
            && block.parent_hash != parent
        {
            self.reorg(n - 1).await?;
            return Ok(true);
        }
        let logs = self.rpc.logs_at(n, block.hash).await?;
        let end = BlockRow {
            number: n,
            hash: block.hash,
            parent_hash: Some(block.parent_hash),
            timestamp: Some(block.timestamp),
        };
        let batch = self.complete(n, n, end, logs, false).await?;
        self.write(batch).await?;
        Ok(true)
    }

    /// Completes the logs of `from..=to` (ending at `end`) into a [`Batch`]: which apps they
    /// register, which logs belong to mirrored contracts, the timestamps governance events need
    /// (read from the node here, never inside the write).
    async fn complete(
        &self,
        from: u64,
        to: u64,
        end: BlockRow,
        logs: Vec<Log>,
        final_range: bool,
    ) -> Result<Batch> {
        // An app is followed from the transaction that registers it (a factory app's own
        // initialisation events come just before `AppCreated` in that transaction); whatever a
        // contract emitted before it became an app is not part of the mirror. A factory app's
        // logs are kept only with an App ABI event signature, however they were fetched.
        let registered = self.contracts.new_apps_in(&logs);
        let mut sourced = Vec::with_capacity(logs.len());
        let mut need_time: BTreeSet<u64> = BTreeSet::new();
        for log in logs {
            let address = log.address();
            let position = (
                log.block_number.unwrap_or(0),
                log.transaction_index.unwrap_or(0),
            );
            let (source, kind) = match self.contracts.source_of(address) {
                Some(Source::App) | None => {
                    let kind = registered
                        .get(&address)
                        .and_then(|new| new.kind_at(position))
                        .or_else(|| self.contracts.app_kind(address));
                    match kind {
                        Some(kind) => (Source::App, Some(kind)),
                        None => continue,
                    }
                }
                Some(source) => (source, None),
            };
            if !self.contracts.keeps(&log, source, kind) {
                continue;
            }
            let (Some(block), Some(index), Some(block_hash)) =
                (log.block_number, log.log_index, log.block_hash)
            else {
                return Err(Error::RpcInconsistent {
                    call: "eth_getLogs".into(),
                    message: "log without position".into(),
                });
            };
            if log.block_timestamp.is_none() && matches!(source, Source::Token | Source::Governor) {
                need_time.insert(block);
            }
            sourced.push(SourcedLog {
                source,
                address: log.address(),
                topics: log.topics().to_vec(),
                data: log.data().data.clone(),
                at: At { block, log: index },
                block_hash,
                tx_hash: log.transaction_hash.unwrap_or_default(),
                timestamp: log.block_timestamp,
            });
        }
        let mut times: HashMap<u64, u64> = HashMap::new();
        for n in need_time {
            let b = if n == end.number {
                end.timestamp
            } else {
                Some(self.rpc.require_block(n).await?.timestamp)
            };
            if let Some(t) = b {
                times.insert(n, t);
            }
        }
        let mut blocks: Vec<BlockRow> = Vec::new();
        let mut seen: HashSet<u64> = HashSet::new();
        for s in &mut sourced {
            if s.timestamp.is_none() {
                s.timestamp = times.get(&s.at.block).copied();
            }
            if s.at.block != end.number && seen.insert(s.at.block) {
                blocks.push(BlockRow {
                    number: s.at.block,
                    hash: s.block_hash,
                    parent_hash: None,
                    timestamp: s.timestamp,
                });
            }
        }
        Ok(Batch {
            from,
            to,
            end,
            blocks,
            logs: sourced,
            registered: registered
                .into_iter()
                .map(|(app, new)| (app, new.kind()))
                .collect(),
            final_range,
        })
    }

    /// Writes `batch`: its logs' projections, its blocks and the cursor (and, for a final range,
    /// the finalized view) in one transaction. No RPC happens here.
    async fn write(&mut self, batch: Batch) -> Result<()> {
        let Batch {
            from,
            to,
            end,
            mut blocks,
            logs: sourced,
            registered,
            final_range,
        } = batch;
        // Followed from now on (a failed write makes the next step rebuild the set from the
        // database).
        for (app, kind) in &registered {
            self.contracts.add_app(*app, *kind);
        }
        let end_hash = end.hash;
        blocks.push(end);

        let t0 = tokio::time::Instant::now();
        let mut tx = self.pool.begin().await?;
        let existing = store::existing_event_keys(&mut tx, self.chain_id, from, to).await?;
        let mut applied = 0u64;
        {
            let mut w = Writer::new(&mut tx, self.chain_id);
            for log in &sourced {
                if existing.contains(&(log.block_hash, log.at.log)) {
                    continue;
                }
                if let Err(e) = project(&mut w, &self.abis, self.contracts.as_ref(), log).await? {
                    return Err(Error::Decode {
                        block: log.at.block,
                        log_index: log.at.log,
                        contract: log.address.to_string(),
                        message: e.0,
                    });
                }
                applied += 1;
            }
            tracing::trace!(target: "indexer::sync", from, to, ms = t0.elapsed().as_secs_f64() * 1e3, "projected");
            w.flush().await?;
            tracing::trace!(target: "indexer::sync", from, to, ms = t0.elapsed().as_secs_f64() * 1e3, "flushed");
        }
        store::upsert_blocks(&mut tx, &blocks).await?;
        store::advance(&mut tx, from - 1, to, Some(end_hash)).await?;
        if final_range {
            store::set_finalized(&mut tx, to, end_hash).await?;
        }
        tx.commit().await?;

        self.state.indexed_number = to;
        self.state.indexed_hash = Some(end_hash);
        self.metrics.events.inc_by(applied);
        self.metrics.indexed_block.set(to as i64);
        if final_range {
            self.state.finalized_number = to;
            self.state.finalized_hash = Some(end_hash);
            self.metrics.finalized_block.set(to as i64);
        }
        tracing::debug!(target: "indexer::sync", from, to, logs = applied, db_ms = t0.elapsed().as_secs_f64() * 1e3, "committed");
        Ok(())
    }

    /// Moves the finalized view up to the chain's finalized block (as far as the mirror has
    /// indexed), and records the head.
    async fn advance_finalized(&mut self, chain_final: u64, head: u64) -> Result<()> {
        let target = chain_final.min(self.state.indexed_number);
        let mut tx = self.pool.begin().await?;
        let unset = self.state.finalized_hash.is_none();
        if (target > self.state.finalized_number || unset)
            && let Some((number, hash)) = store::highest_block_at_or_below(&mut tx, target).await?
            && (number > self.state.finalized_number || unset)
        {
            store::set_finalized(&mut tx, number, hash).await?;
            self.state.finalized_number = number;
            self.state.finalized_hash = Some(hash);
        }
        if head != self.state.head_number {
            store::set_head(&mut tx, head).await?;
            self.state.head_number = head;
        }
        tx.commit().await?;
        self.metrics
            .finalized_block
            .set(self.state.finalized_number as i64);
        self.metrics
            .lag_blocks
            .set(head.saturating_sub(self.state.finalized_number) as i64);
        Ok(())
    }
}

/// A spawned fetch that is aborted if the backfill stops early (an error, a shutdown): fetches
/// never outlive the range stream that owns them.
struct OwnedTask<T>(tokio::task::JoinHandle<Result<T>>);

impl<T> std::future::Future for OwnedTask<T> {
    type Output = Result<T>;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|joined| match joined {
                Ok(result) => result,
                Err(e) => Err(Error::Rpc {
                    call: "range fetch task".into(),
                    message: e.to_string(),
                }),
            })
    }
}

impl<T> Drop for OwnedTask<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The node has no block `n` although the mirror does: it is behind (or the chain got shorter).
/// Retried; once the node has a block there again, its hash decides whether this was a reorg.
fn behind(n: u64) -> Error {
    Error::RpcInconsistent {
        call: format!("eth_getBlockByNumber({n})"),
        message: "the node has no block the mirror has indexed: it is behind, waiting".into(),
    }
}
