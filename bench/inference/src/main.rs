//! `covenant-bench-inference`: the mock model server, and (to come) the A/B runs.

use std::{net::SocketAddr, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use covenant_bench_inference::mock;

#[derive(Parser)]
#[command(about = "Confidential inference benchmark")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serves the mock model (OpenAI-compatible, streaming) until interrupted.
    MockServer {
        /// Address to listen on (port 0: any; the bound address is printed).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Time to first token, fixed part, in milliseconds.
        #[arg(long, default_value_t = 20.0)]
        prefill_ms: f64,
        /// Time to first token per input token, in milliseconds.
        #[arg(long, default_value_t = 0.05)]
        prefill_per_token_ms: f64,
        /// Time between output tokens, in milliseconds.
        #[arg(long, default_value_t = 15.0)]
        per_token_ms: f64,
    },
}

fn ms(v: f64) -> Duration {
    Duration::from_secs_f64(v.max(0.0) / 1000.0)
}

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::MockServer {
            listen,
            prefill_ms,
            prefill_per_token_ms,
            per_token_ms,
        } => {
            let timing = mock::Timing {
                prefill_base: ms(prefill_ms),
                prefill_per_token: ms(prefill_per_token_ms),
                per_token: ms(per_token_ms),
            };
            let (addr, serving) = match mock::bind(listen, timing).await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("covenant-bench-inference: cannot listen on {listen}: {e}");
                    return ExitCode::FAILURE;
                }
            };
            eprintln!("mock model listening addr={addr}");
            tokio::select! {
                r = serving => if let Err(e) = r {
                    eprintln!("covenant-bench-inference: {e}");
                    return ExitCode::FAILURE;
                },
                _ = tokio::signal::ctrl_c() => {}
            }
            ExitCode::SUCCESS
        }
    }
}
