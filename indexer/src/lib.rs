//! Covenant's indexer: a reorg-safe, crash-safe mirror of the registries and governance in
//! Postgres, with a REST API, a change feed of finalized policy changes, and metrics.
//!
//! Data flows one way: chain → [`source`] (RPC, adaptive `eth_getLogs` ranges, new heads) →
//! [`sync`] (the cursor, reorg detection and rewind) → [`project`] (what each event changes) →
//! [`store`] (every SQL statement) → [`api`] (reads at the finalized block only; JSON, and the
//! explorer's HTML pages made from the same reads). For the explorer only, [`gateway`] reads a
//! gateway's public routing table and `covenant_dns` the domains' TXT records: shown next to the
//! mirror and judged against it, never written into it.
//!
//! Invariants:
//! - the logs of a block range, the blocks they came from and the cursor are written in one
//!   transaction; a restart resumes from the last commit, and a log is applied at most once
//!   (keyed by chain id, block hash and log index);
//! - every projection row carries the block that added it and the block that removed it, so a
//!   reorg rewinds every projection by deleting and re-opening rows above the common ancestor;
//! - readers see the state at the mirror's *finalized* block; a reorg below it stops the indexer.
//!
//! This crate owns the `mirror` schema of its database (migrations and every write); every read
//! of it, its own API's included, goes through `covenant-mirror`, which services share. It makes
//! no policy decision for others: the policy-check endpoint answers what the registry would, and
//! the kms-oracle still cross-checks with `eth_call`. It holds no keys and never sends
//! transactions.

pub mod abi;
pub mod api;
pub mod config;
pub mod contracts;
mod error;
pub mod gateway;
pub mod governance;
pub mod health;
pub mod metrics;
pub mod project;
pub mod source;
pub mod store;
pub mod sync;

use std::{io::IsTerminal, sync::Arc};

use covenant_chain::Deployment;
use tokio::{
    sync::{Notify, watch},
    task::JoinSet,
};

pub use config::{Args, Config};
pub use error::{Error, Result};

/// Runs the indexer (sync loop, API, head watcher) until `shutdown` turns true, the configured
/// stop block is final, or a fatal error. `on_listening` receives the API's bound address.
pub async fn run(
    config: Config,
    shutdown: watch::Receiver<bool>,
    on_listening: impl FnOnce(std::net::SocketAddr),
) -> Result<()> {
    tracing::info!(target: "indexer", config = ?config, "starting");
    let deployment = Deployment::read(&config.deployment)?;
    let rpc = source::Rpc::new(config.rpc_url.expose(), config.rpc_timeout())?;
    let chain_id = rpc.chain_id().await?;
    if chain_id != deployment.chain_id {
        return Err(Error::WrongChain {
            expected: deployment.chain_id,
            actual: chain_id,
        });
    }
    // The sync loop writes through its own pool, so API and feed load never starve it.
    let pool = store::connect(config.database_url.expose(), 16).await?;
    store::migrate(&pool).await?;
    let sync_pool = store::connect(config.database_url.expose(), 3).await?;
    tracing::info!(target: "indexer", "database migrated");

    let registry = prometheus::Registry::new_custom(Some("covenant".into()), None)
        .map_err(|e| Error::Config(e.to_string()))?;
    let metrics = metrics::Metrics::new(&registry).map_err(|e| Error::Config(e.to_string()))?;
    let health = Arc::new(health::Health::default());
    let abis = Arc::new(abi::Abis::load().map_err(|e| Error::Config(e.to_string()))?);
    let show_progress = match config.progress {
        config::Progress::Always => true,
        config::Progress::Never => false,
        config::Progress::Auto => std::io::stderr().is_terminal(),
    };
    let syncer = sync::Syncer::new(
        config.clone(),
        &deployment,
        rpc.clone(),
        sync_pool,
        abis,
        metrics.clone(),
        health.clone(),
        show_progress,
    )
    .await?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    // Outside shutdown → our own stop signal.
    {
        let mut outer = shutdown.clone();
        let stop_tx = stop_tx.clone();
        tasks.spawn(async move {
            let _ = outer.wait_for(|s| *s).await;
            let _ = stop_tx.send(true);
        });
    }
    let initial = {
        let mut c = pool.acquire().await?;
        covenant_mirror::read::view(&mut c)
            .await?
            .filter(|v| v.finalized_hash.is_some())
            .map(|v| v.finalized)
            .unwrap_or(0)
    };
    let (finalized_tx, finalized_rx) = watch::channel(initial);
    tasks.spawn(api::watch_finalized(
        pool.clone(),
        finalized_tx,
        config.poll_interval(),
        stop_rx.clone(),
    ));

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Io {
            what: format!("binding {}", config.listen),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| Error::Io {
        what: "reading the bound address".into(),
        source,
    })?;
    tracing::info!(target: "indexer", %addr, "api listening");
    on_listening(addr);
    let dns = match config.dns()? {
        None => None,
        Some(server) => Some(Arc::new(
            covenant_dns::Records::new(match server {
                config::DnsServer::System => None,
                config::DnsServer::At(addr) => Some(addr),
            })
            .map_err(Error::Config)?,
        )),
    };
    let gateway = match &config.gateway_api_url {
        None => None,
        Some(url) => Some(Arc::new(
            gateway::GatewayReader::new(url).map_err(Error::Config)?,
        )),
    };
    let state = api::ApiState {
        pool: pool.clone(),
        rpc: rpc.clone(),
        deployment: Arc::new(deployment),
        health,
        stale_after: config.stale_after(),
        registry,
        finalized: finalized_rx,
        dns,
        gateway,
        openapi: Arc::default(),
    };
    {
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            let server =
                axum::serve(listener, api::router(state)).with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                });
            if let Err(e) = server.await {
                tracing::error!(target: "indexer::api", error = %e, "server failed");
            }
        });
    }
    let wake = Arc::new(Notify::new());
    if let Some(ws) = config.ws_url.clone() {
        tasks.spawn(source::watch_heads(
            ws.expose().to_owned(),
            wake.clone(),
            metrics.clone(),
            stop_rx.clone(),
        ));
    }

    let result = syncer.run(stop_rx, wake).await;
    let _ = stop_tx.send(true);
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    result
}
