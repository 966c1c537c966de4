//! `covenant devnet up|down|status|demo`: the whole stack on this machine, for development.
//!
//! This module owns starting, watching and stopping the devnet's processes and the devnet's
//! directory. It decides nothing about policy: every registration goes through the same
//! contracts, votes and services as anywhere else (with anvil's clock moved past the waits).

mod demo;
mod governance;
mod process;
mod state;
mod up;

use std::{path::PathBuf, time::Duration};

use clap::Subcommand;
use serde_json::json;

use crate::{Global, error::Failure, report::Report};
use state::Layout;

/// `covenant devnet …`.
#[derive(Debug, Subcommand)]
pub enum DevnetCommand {
    /// Bring the devnet up (a new one, or the one in --dir as it was) and keep it up until
    /// Ctrl-C, SIGTERM or `covenant devnet down`.
    Up(UpArgs),
    /// Stop the devnet running from --dir (its state stays).
    Down(DirArg),
    /// Whether the devnet in --dir runs, and what each service answers.
    Status(DirArg),
    /// Play the governance story on the running devnet: an upgrade voted in and visible during
    /// its notice period, the old version's instance evicted, a revocation that makes
    /// `covenant verify` fail.
    Demo(DirArg),
}

/// The devnet's directory.
#[derive(Debug, clap::Args)]
pub struct DirArg {
    /// The devnet's state directory.
    #[arg(long = "dir", env = "COVENANT_DEVNET_DIR", default_value = ".devnet")]
    pub path: PathBuf,
}

/// `covenant devnet up`. Ports are on 127.0.0.1; 0 lets the system pick (the env file names
/// the port in use). A resumed devnet uses the ports it was made with.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// The devnet's state directory.
    #[command(flatten)]
    pub dir: DirArg,
    /// Start a new devnet, deleting the directory's state.
    #[arg(long)]
    pub fresh: bool,
    /// anvil's port.
    #[arg(long, env = "COVENANT_DEVNET_RPC_PORT", default_value_t = 8545)]
    pub rpc_port: u16,
    /// PostgreSQL's port.
    #[arg(long, env = "COVENANT_DEVNET_PG_PORT", default_value_t = 55432)]
    pub pg_port: u16,
    /// The indexer API's port.
    #[arg(long, env = "COVENANT_DEVNET_INDEXER_PORT", default_value_t = 8580)]
    pub indexer_port: u16,
    /// The kms-oracle's HTTPS port.
    #[arg(long, env = "COVENANT_DEVNET_KMS_PORT", default_value_t = 8600)]
    pub kms_port: u16,
    /// The demo app's own HTTPS port.
    #[arg(long, env = "COVENANT_DEVNET_APP_PORT", default_value_t = 8443)]
    pub app_port: u16,
    /// The demo app's port behind the gateway (written into its compose: not 0).
    #[arg(long, env = "COVENANT_DEVNET_APP_HTTP_PORT", default_value_t = 8080)]
    pub app_http_port: u16,
    /// The gateway's public HTTPS port.
    #[arg(long, env = "COVENANT_DEVNET_GATEWAY_PORT", default_value_t = 8444)]
    pub gateway_port: u16,
    /// Seconds between blocks.
    #[arg(long, env = "COVENANT_DEVNET_BLOCK_TIME", default_value = "1")]
    pub block_time: String,
    /// Confirmations before a block is final (anvil's own `finalized` tag lags 64 blocks).
    #[arg(long, env = "COVENANT_DEVNET_FINALITY", default_value_t = 2)]
    pub finality: u64,
}

/// Runs a `devnet` command.
pub(crate) async fn run(_global: &Global, command: DevnetCommand) -> Result<Report, Failure> {
    match command {
        DevnetCommand::Up(args) => up::run(args).await,
        DevnetCommand::Down(dir) => down(&Layout::new(&dir.path)?).await,
        DevnetCommand::Status(dir) => status(&Layout::new(&dir.path)?).await,
        DevnetCommand::Demo(dir) => demo::run(&Layout::new(&dir.path)?).await,
    }
}

/// The pid of the `covenant devnet up` serving `layout`, if one runs.
fn running(layout: &Layout) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(layout.pid())
        .ok()?
        .trim()
        .parse()
        .ok()?;
    process::running(pid).then_some(pid)
}

/// Refuses to start a second devnet on one directory.
fn refuse_if_running(layout: &Layout) -> Result<(), Failure> {
    match running(layout) {
        Some(pid) => Err(Failure::new(format!(
            "a devnet runs from {} already (pid {pid})",
            layout.dir.display()
        ))
        .next("stop it with `covenant devnet down`, or pass another --dir")),
        None => Ok(()),
    }
}

async fn down(layout: &Layout) -> Result<Report, Failure> {
    let Some(pid) = running(layout) else {
        return Ok(Report::new(
            format!("no devnet runs from {}", layout.dir.display()),
            json!({ "running": false }),
        ));
    };
    process::signal_pid(pid, process::Signal::SIGTERM)?;
    // Its own stop is bounded (each service: its signal, SIGKILL after its grace period).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while process::running(pid) {
        if tokio::time::Instant::now() >= deadline {
            return Err(Failure::new(format!(
                "the devnet (pid {pid}) did not stop within 120 s"
            )));
        }
        tokio::time::sleep(process::POLL).await;
    }
    Ok(Report::new(
        format!(
            "devnet stopped; its state stays in {} (`covenant devnet up` brings it back)",
            layout.dir.display()
        ),
        json!({ "running": false, "stopped": pid }),
    ))
}

async fn status(layout: &Layout) -> Result<Report, Failure> {
    let saved = layout.load()?.ok_or_else(|| {
        Failure::new(format!("no devnet in {}", layout.dir.display()))
            .next("start one with scripts/devnet (or `covenant devnet up`)")
    })?;
    let pid = running(layout);
    let pids = std::fs::read_to_string(layout.path("pids")).unwrap_or_default();
    let mut rows = Vec::new();
    let mut services = serde_json::Map::new();
    for line in pids.lines() {
        let Some((name, pid)) = line.split_once(' ') else {
            continue;
        };
        let alive = pid.parse().is_ok_and(process::running);
        rows.push(format!(
            "  {name:<9} {}",
            if alive { "running" } else { "stopped" }
        ));
        services.insert(name.to_owned(), json!(alive));
    }
    let p = saved.ports;
    let host = up::app_host(saved.app.app);
    let served = match pid {
        Some(_) => up::served(&host, p.gateway, &layout.path("gateway/dev-ca.pem")).await,
        None => Err("the devnet is stopped".to_owned()),
    };
    let url = format!("https://{host}:{}/", p.gateway);
    let mut text = vec![match pid {
        Some(pid) => format!("devnet running from {} (pid {pid})", layout.dir.display()),
        None => format!(
            "devnet stopped ({}; `covenant devnet up` brings it back)",
            layout.dir.display()
        ),
    }];
    text.extend(rows);
    text.push(match &served {
        Ok(_) => format!("  demo app  {url} answers through the gateway"),
        Err(e) => format!("  demo app  {url} does not answer: {e}"),
    });
    Ok(Report::new(
        text.join("\n"),
        json!({
            "running": pid.is_some(),
            "pid": pid,
            "dir": layout.dir,
            "services": services,
            "app": saved.app.app,
            "gateway_app": saved.gateway.app,
            "app_url": url,
            "served": served.is_ok(),
            "rpc_url": format!("http://127.0.0.1:{}", p.rpc),
            "indexer_url": format!("http://127.0.0.1:{}", p.indexer),
        }),
    ))
}
