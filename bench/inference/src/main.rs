//! `covenant-bench-inference`: the mock model server, and A/B runs of two endpoints.
#![allow(clippy::print_stdout)]

use std::{net::SocketAddr, process::ExitCode, sync::Arc, time::Duration};

use clap::{Parser, Subcommand};
use covenant_bench_inference::{
    ab,
    client::{Api, Client, Target},
    mock, prompts,
    schedule::Rate,
    stats,
};

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
        #[command(flatten)]
        timing: mock::TimingArgs,
    },
    /// A plain TCP relay (no TLS, no HTTP; `TCP_NODELAY` both ways), the control for what any
    /// extra process on the path costs on this machine.
    Relay {
        /// Address to listen on (port 0: any; the bound address is printed).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Where every connection is relayed to.
        #[arg(long)]
        to: SocketAddr,
    },
    /// AES-256-GCM sealing rate on one core, by buffer size (input of the transfer-cost model).
    AesGcm {
        /// Seconds per size.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
    },
    /// Runs the same prompt set on the same schedule against two endpoints (plain HTTP),
    /// interleaved, and prints each metric's medians over the repeats and the paired difference.
    Ab {
        /// Arm A (e.g. the model server directly).
        #[arg(long)]
        a: SocketAddr,
        /// Arm B (e.g. the same server through a proxy).
        #[arg(long)]
        b: SocketAddr,
        #[arg(long, value_enum, default_value = "completions")]
        api: Api,
        #[arg(long, value_enum, default_value = "short")]
        bucket: prompts::Bucket,
        /// Requests per second (Poisson) or `inf` (all at once).
        #[arg(long, default_value = "1")]
        rate: Rate,
        /// Requests per run.
        #[arg(long, default_value_t = 50)]
        requests: usize,
        /// Runs of each arm.
        #[arg(long, default_value_t = 5)]
        repeats: usize,
        /// Seed of the prompt set and the schedule.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Confidence level of the intervals.
        #[arg(long, default_value_t = 0.95)]
        level: f64,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::MockServer { listen, timing } => {
            let (addr, serving) = match mock::bind(listen, timing.timing()).await {
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
        Command::Relay { listen, to } => {
            let listener = match tokio::net::TcpListener::bind(listen).await {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("covenant-bench-inference: cannot listen on {listen}: {e}");
                    return ExitCode::FAILURE;
                }
            };
            if let Ok(addr) = listener.local_addr() {
                eprintln!("relay listening addr={addr}");
            }
            tokio::select! {
                _ = relay(listener, to) => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            ExitCode::SUCCESS
        }
        Command::AesGcm { seconds } => {
            println!("AES-256-GCM seal, one core (ring), {seconds} s per size");
            for size in [4usize << 10, 64 << 10, 1 << 20, 16 << 20] {
                match covenant_bench_inference::aead::seal_rate(
                    size,
                    Duration::from_secs_f64(seconds),
                ) {
                    Ok(rate) => println!("{:>9} KiB buffers: {:>6.2} GB/s", size >> 10, rate / 1e9),
                    Err(_) => {
                        eprintln!("covenant-bench-inference: AES-256-GCM unavailable");
                        return ExitCode::FAILURE;
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Command::Ab {
            a,
            b,
            api,
            bucket,
            rate,
            requests,
            repeats,
            seed,
            level,
        } => {
            let set = prompts::generate(bucket, requests, seed);
            let clients = [a, b].map(|addr| Arc::new(Client::new(Target::plain(addr))));
            let reports = ab::interleave(
                [&clients[0], &clients[1]],
                api,
                &set,
                rate,
                seed,
                repeats,
                |r, i, report| println!("repeat {r} arm {}: {}", ab::NAMES[i], report.line()),
            )
            .await;
            let reports = match reports {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("covenant-bench-inference: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let coverage =
                stats::median_interval(&vec![0.0; repeats], level).map_or(0.0, |i| i.coverage);
            println!(
                "\n{api:?}, {bucket:?} prompts, rate {rate}, {requests} requests x {repeats} repeats; medians over repeats [interval: order statistics covering {:.1} %, asked {:.0} %]",
                coverage * 100.0,
                level * 100.0
            );
            println!("{:<18} {:>26} {:>26} {:>30}", "metric", "A", "B", "B - A");
            for (name, c) in ab::compare_all(&reports, level) {
                let show =
                    |i: stats::Interval| format!("{:.3} [{:.3}, {:.3}]", i.median, i.low, i.high);
                println!(
                    "{name:<18} {:>26} {:>26} {:>22} {:>+6.2}%",
                    show(c.a),
                    show(c.b),
                    show(c.added),
                    c.added_percent
                );
            }
            ExitCode::SUCCESS
        }
    }
}

async fn relay(listener: tokio::net::TcpListener, to: SocketAddr) {
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await else {
                return;
            };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
        });
    }
}
