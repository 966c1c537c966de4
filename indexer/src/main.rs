//! `covenant-indexer`: mirrors Covenant's contracts into Postgres and serves the mirror.

use std::{io::IsTerminal, process::ExitCode};

use clap::Parser;
use covenant_indexer::{Args, config::LogFormat};
use tracing_subscriber::{EnvFilter, fmt};

#[derive(Parser)]
#[command(
    name = "covenant-indexer",
    version,
    about = "Mirror Covenant's registries and governance into Postgres"
)]
struct Cli {
    #[command(flatten)]
    args: Args,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match cli.args.resolve() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("covenant-indexer: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = EnvFilter::try_from_env("COVENANT_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    match config.log_format {
        LogFormat::Json => fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init(),
        LogFormat::Text => fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("covenant-indexer: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(t) => t,
                    Err(_) => return,
                };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            tracing::info!(target: "indexer", "shutting down");
            let _ = tx.send(true);
        });
        match covenant_indexer::run(config, rx, |_| {}).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(target: "indexer", error = %e, "exiting");
                eprintln!("covenant-indexer: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
