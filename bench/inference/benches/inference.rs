//! Direct against through Covenant, on the local stack ([`covenant_bench_inference::covenant`]):
//! for every prompt bucket and request rate, both arms interleaved for several repeats after a
//! warm-up run each; per cell the medians over the repeats and the added time with its interval,
//! printed as they come and at the end as the markdown tables of docs/benchmarks.md, with each
//! target's verdict. Not a test: nothing here fails on a time.
//!
//! cargo bench --workspace --bench inference -- [--buckets short,medium,long]
//!     [--rates 1,4,16,inf] [--requests 30] [--requests-inf 100] [--repeats 5] [--api completions]
//!     [--prefill-ms 20] [--prefill-per-token-ms 0.05] [--per-token-ms 15] [--seed 1]
#![allow(clippy::print_stdout, missing_docs)]

use std::{process::ExitCode, sync::Arc, time::Duration};

use clap::Parser;
use covenant_bench_inference::{
    ab::{self, Compared},
    client::{Api, Client, Target},
    covenant::{Arms, relays},
    mock::TimingArgs,
    prompts::{self, Bucket},
    schedule::Rate,
    stats,
};

#[derive(Parser)]
struct Args {
    #[arg(long, value_delimiter = ',', default_value = "short,medium,long")]
    buckets: Vec<Bucket>,
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,inf")]
    rates: Vec<Rate>,
    /// Requests per run at a finite rate.
    #[arg(long, default_value_t = 30)]
    requests: usize,
    /// Requests per run at rate ∞ (all sent at once).
    #[arg(long, default_value_t = 100)]
    requests_inf: usize,
    /// Recorded runs of each arm per cell (after one warm-up run each).
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    #[arg(long, value_enum, default_value = "completions")]
    api: Api,
    #[command(flatten)]
    mock: TimingArgs,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Confidence level of the intervals.
    #[arg(long, default_value_t = 0.95)]
    level: f64,
    /// Requests per arm of the idle-path probe at each gap (0: no probe).
    #[arg(long, default_value_t = 20)]
    probe: usize,
    /// `cargo bench` passes `--bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

struct Cell {
    bucket: Bucket,
    rate: Rate,
    requests: usize,
    compared: Vec<(&'static str, Compared)>,
}

impl Cell {
    fn get(&self, metric: &str) -> Option<&Compared> {
        self.compared
            .iter()
            .find_map(|(n, c)| (*n == metric).then_some(c))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    let timing = args.mock.timing();
    println!("starting the stack: anvil, contracts, indexer, KMS, gateway, the model app's guest");
    let arms = match Arms::start(timing).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("inference bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let direct = Arc::new(Client::new(arms.direct.clone()));
    let through = Arc::new(Client::new(arms.through.clone()));
    let coverage =
        stats::median_interval(&vec![0.0; args.repeats], args.level).map_or(0.0, |i| i.coverage);
    println!(
        "arms: A direct {}, B through Covenant {}; {:?} API; mock prefill {} ms + {} ms/input token, {} ms/output token; {} repeats, intervals cover {:.2} %",
        arms.direct.addr(),
        arms.through.addr(),
        args.api,
        args.mock.prefill_ms,
        args.mock.prefill_per_token_ms,
        args.mock.per_token_ms,
        args.repeats,
        coverage * 100.0
    );
    if args.probe > 0
        && let Err(e) = probe(&arms, args.api, args.probe).await
    {
        eprintln!("inference bench: {e}\n{}", arms.logs());
        return ExitCode::FAILURE;
    }
    let mut cells = Vec::new();
    for &bucket in &args.buckets {
        for &rate in &args.rates {
            let requests = match rate {
                Rate::Unbounded => args.requests_inf,
                Rate::PerSecond(_) => args.requests,
            };
            let set = prompts::generate(bucket, requests, args.seed);
            println!("\n{bucket:?} prompts, rate {rate}, {requests} requests");
            let reports = ab::interleave(
                [&direct, &through],
                args.api,
                &set,
                rate,
                args.seed,
                args.repeats,
                |r, i, report| {
                    let arm = ["direct ", "covenant"][i];
                    println!("  repeat {r} {arm}: {}", report.line());
                },
            )
            .await;
            let reports = match reports {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("inference bench: {e}\n{}", arms.logs());
                    return ExitCode::FAILURE;
                }
            };
            let compared = ab::compare_all(&reports, args.level);
            for (name, c) in &compared {
                println!(
                    "  {name:<16} direct {:>10.3}  covenant {:>10.3}  added {:>+8.3} [{:+.3}, {:+.3}] ({:+.2} %)",
                    c.a.median,
                    c.b.median,
                    c.added.median,
                    c.added.low,
                    c.added.high,
                    c.added_percent
                );
            }
            cells.push(Cell {
                bucket,
                rate,
                requests,
                compared,
            });
        }
    }
    print_tables(&cells);
    ExitCode::SUCCESS
}

/// Time to the first token of one-token requests sent one at a time, `gap` apart, directly,
/// through Covenant and through two plain TCP relays (the floor of any two extra processes on
/// the path): what waking the path from idle costs, which is what rate 1 is made of.
async fn probe(arms: &Arms, api: Api, n: usize) -> Result<(), String> {
    let (_relays, relayed) = relays(arms.direct.addr(), 2)?;
    let clients = [
        Client::new(arms.direct.clone()),
        Client::new(arms.through.clone()),
        Client::new(Target::plain(relayed)),
    ];
    let body = api.body(covenant_bench_inference::mock::MODEL, "probe", 1);
    println!(
        "\nidle-path probe: TTFT of one-token requests one at a time, the arms taking turns, medians of {n}"
    );
    println!("| gap between requests | direct ms | through Covenant | two TCP relays |");
    println!("|---|---:|---:|---:|");
    for gap in [0u64, 10, 200, 1000] {
        let mut ttft: [Vec<f64>; 3] = Default::default();
        for _ in 0..n {
            for (i, client) in clients.iter().enumerate() {
                tokio::time::sleep(Duration::from_millis(gap)).await;
                let out = client.stream(api, &body).await?;
                ttft[i].push(out.ttft.as_secs_f64() * 1000.0);
            }
        }
        let p50 = |v: &[f64]| stats::Summary::of(v).map_or(f64::NAN, |s| s.median);
        let direct = p50(&ttft[0]);
        println!(
            "| {gap} ms | {direct:.3} | +{:.3} ms | +{:.3} ms |",
            p50(&ttft[1]) - direct,
            p50(&ttft[2]) - direct
        );
    }
    Ok(())
}

fn print_tables(cells: &[Cell]) {
    let show = |c: Option<&Compared>, digits: usize| {
        c.map_or_else(
            || "–".to_owned(),
            |c| {
                format!(
                    "{:.d$} → {:.d$} ({:+.d$} [{:+.d$}, {:+.d$}])",
                    c.a.median,
                    c.b.median,
                    c.added.median,
                    c.added.low,
                    c.added.high,
                    d = digits
                )
            },
        )
    };
    println!(
        "\nLatency, medians over the repeats, direct → through Covenant (added ms [interval]):\n"
    );
    println!(
        "| bucket | rate | requests | TTFT p50 ms | ITL p50 ms | ITL p99 ms | TPOT p50 ms | E2EL p50 ms |"
    );
    println!("|---|---|---:|---|---|---|---|---|");
    for cell in cells {
        println!(
            "| {:?} | {} | {} | {} | {} | {} | {} | {} |",
            cell.bucket,
            cell.rate,
            cell.requests,
            show(cell.get("TTFT p50 ms"), 2),
            show(cell.get("ITL p50 ms"), 3),
            show(cell.get("ITL p99 ms"), 3),
            show(cell.get("TPOT p50 ms"), 3),
            show(cell.get("E2EL p50 ms"), 1),
        );
    }
    println!("\nThroughput and tail, direct → through Covenant (change in % of direct):\n");
    println!("| bucket | rate | requests/s | output tokens/s | TTFT p99 ms |");
    println!("|---|---|---|---|---|");
    let pct = |c: Option<&Compared>, digits: usize| {
        c.map_or_else(
            || "–".to_owned(),
            |c| {
                format!(
                    "{:.d$} → {:.d$} ({:+.2} %)",
                    c.a.median,
                    c.b.median,
                    c.added_percent,
                    d = digits
                )
            },
        )
    };
    for cell in cells {
        println!(
            "| {:?} | {} | {} | {} | {} |",
            cell.bucket,
            cell.rate,
            pct(cell.get("requests/s"), 3),
            pct(cell.get("output tokens/s"), 1),
            show(cell.get("TTFT p99 ms"), 2),
        );
    }
    println!("\nTargets (per bucket):");
    for cell in cells {
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        match cell.rate {
            Rate::PerSecond(1.0) => {
                if let Some(c) = cell.get("TTFT p50 ms") {
                    println!(
                        "  {:?}, rate 1: TTFT p50 added {:+.3} ms (target <= 1 ms): {}",
                        cell.bucket,
                        c.added.median,
                        verdict(c.added.median <= 1.0)
                    );
                }
                if let Some(c) = cell.get("ITL p50 ms") {
                    println!(
                        "  {:?}, rate 1: ITL p50 added {:+.2} % (target <= 1 %): {}",
                        cell.bucket,
                        c.added_percent,
                        verdict(c.added_percent <= 1.0)
                    );
                }
            }
            Rate::Unbounded => {
                if let Some(c) = cell.get("requests/s") {
                    println!(
                        "  {:?}, rate inf: request throughput {:+.2} % (target >= -2 %): {}",
                        cell.bucket,
                        c.added_percent,
                        verdict(c.added_percent >= -2.0)
                    );
                }
            }
            Rate::PerSecond(_) => {}
        }
    }
}
