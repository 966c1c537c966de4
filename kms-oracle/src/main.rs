//! `covenant-kms-oracle`: `init` creates a node's sealed state, `run` serves.

use std::{io::IsTerminal, process::ExitCode};

use clap::{Parser, Subcommand};
use covenant_kms_oracle::{Config, config::LogFormat};
use tracing_subscriber::{EnvFilter, fmt};

#[derive(Parser)]
#[command(
    name = "covenant-kms-oracle",
    version,
    about = "Attested key release governed by the chain"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Creates this node's sealed state and prints (JSON, stdout) what governance must register.
    Init {
        #[command(flatten)]
        config: Config,
        /// Generate a new KMS root secret (the first node of a deployment). Without it the node
        /// obtains the root from a running node (`run --replicate-from`).
        #[arg(long)]
        bootstrap: bool,
        /// The root key generation to print keys for (the one `setKmsRootKeys` will start).
        #[arg(long, default_value_t = 1)]
        root_generation: u64,
    },
    /// Serves.
    Run {
        #[command(flatten)]
        config: Config,
        /// TDX only (no sealed state): generate a new root secret in memory. A single node loses
        /// it on restart unless a second node is onboarded.
        #[arg(long)]
        bootstrap: bool,
    },
}

fn logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("COVENANT_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    match format {
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
}

#[allow(clippy::print_stdout)]
fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match Cli::parse().command {
        Command::Init {
            config,
            bootstrap,
            root_generation,
        } => {
            logging(config.log_format);
            match covenant_kms_oracle::init(&config, bootstrap, root_generation) {
                Ok(report) => {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&report).unwrap_or_default()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("covenant-kms-oracle: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Run { config, bootstrap } => {
            logging(config.log_format);
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("covenant-kms-oracle: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            runtime.block_on(async {
                let (tx, rx) = tokio::sync::watch::channel(false);
                tokio::spawn(async move {
                    let Ok(mut term) =
                        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                    tracing::info!(target: "kms", "shutting down");
                    let _ = tx.send(true);
                });
                // On a worker thread, not this one: accepted connections are then queued on the
                // thread that runs them instead of waking a worker for each.
                let service = tokio::spawn(covenant_kms_oracle::run(config, bootstrap, rx, |_| {}));
                match service.await {
                    Ok(Ok(())) => ExitCode::SUCCESS,
                    Ok(Err(e)) => {
                        tracing::error!(target: "kms", error = %e, "exiting");
                        eprintln!("covenant-kms-oracle: {e}");
                        ExitCode::FAILURE
                    }
                    Err(e) => {
                        eprintln!("covenant-kms-oracle: the service task failed: {e}");
                        ExitCode::FAILURE
                    }
                }
            })
        }
    }
}
