//! Full attested key grants per second, next to the floor measured in the same run.
//!
//! A *grant* is what a booting app instance does once: a new TLS 1.3 connection presenting its
//! RA-TLS client certificate, the KMS verifying that evidence, deciding at the finalized block
//! (indexer mirror + `eth_call isAppAllowed` at the block hash), deriving the app's keys and
//! committing the grant to its audit log (a durable PostgreSQL: fsync and synchronous commit
//! on) before answering. The *floor* is a server that does only the first two: the same TLS
//! configuration (`server::tls::server_config`) and the same evidence verification
//! (`ratls::verify_certificate`, off the async runtime), then answers.
//!
//! Everything runs on this machine: anvil, PostgreSQL, the indexer (its release binary, following
//! the chain), the KMS node (the release binary), the floor server (this benchmark re-run as
//! `floor-server`) and the load generator (this process). Runs alternate floor / grants; before
//! every grant run the chain moves on so the KMS decides at a new finalized block, and with the
//! default `--instances` every grant of a run is a different instance (its own `BootInfo`), so
//! the KMS's decision memo never answers. What an app's instances share within a block (the
//! mirror's facts, the chain's answer for the deployment's own App code, the app-wide key
//! material; docs/kms.md, "Decisions") is shared as in production; `--apps` spreads the
//! instances over more apps, and the `chain reads` column counts the KMS's RPC reads per run.
//!
//! Client side, the KMS's own RA-TLS certificate is verified once by the full verifier and then
//! pinned (its exact bytes; the handshake signature is still checked every time); session
//! resumption is off, so every request is a full mutual-TLS handshake.
//!
//! Cost is reported two ways: throughput (the load generator shares the 2 cores, which pulls the
//! ratio towards 1) and server-side CPU per request (every process but this one: the KMS with
//! its PostgreSQL and anvil, against the floor server), the cost ratio the target is about.
//!
//! `bench/kms-report` runs it; results go to `docs/benchmarks.md`.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout
)]

#[allow(dead_code)]
#[path = "../tests/it/fixture.rs"]
mod fixture;

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use alloy::primitives::{Address, B256};
use clap::{Parser, Subcommand};
use covenant_attest::Collateral;
use covenant_kms_api::client;
use covenant_kms_oracle::identity;
use covenant_testkit::{Process, Signal, postgres::PgCluster};
use fixture::{Boot, FINALITY, Instance, OS_IMAGE, Stack};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rustls::{
    DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::WebPkiSupportedAlgorithms,
    pki_types::{CertificateDer, ServerName, UnixTime},
};

#[derive(Parser)]
#[command(about = "kms-oracle: full attested grants per second vs handshake + verification")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Requests per run (and client identities made beforehand).
    #[arg(long, default_value_t = 3000)]
    requests: usize,
    /// Distinct app instances per run (cycled); 0 = one per request, so no decision repeats.
    #[arg(long, default_value_t = 0)]
    instances: usize,
    /// Apps the instances belong to (round-robin), each created by the factory beforehand.
    #[arg(long, default_value_t = 1)]
    apps: usize,
    /// Requests in flight at once; several values are run one after the other.
    #[arg(long, value_delimiter = ',', default_value = "32")]
    concurrency: Vec<usize>,
    /// Floor + grant run pairs per concurrency.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// After the runs, print PostgreSQL's `top` statements by planning + execution time over
    /// the grant runs, per cluster (the mirror's and the audit log's), with `pg_stat_statements`
    /// (run with `COVENANT_TEST_PG_STATEMENT_STATS=1`, which loads it).
    #[arg(long, value_name = "TOP")]
    statements: Option<usize>,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

#[derive(Subcommand)]
enum Command {
    /// The floor: TLS handshake and evidence verification only (run by the benchmark itself).
    FloorServer,
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let stats_env = covenant_testkit::postgres::STATEMENT_STATS_ENV;
    if cli.statements.is_some() && std::env::var_os(stats_env).is_none_or(|v| v.is_empty()) {
        eprintln!(
            "--statements needs {stats_env}=1 in the environment (it loads pg_stat_statements)"
        );
        std::process::exit(2);
    }
    match &cli.command {
        Some(Command::FloorServer) => floor::serve(),
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(bench(cli)),
    }
}

/// The floor server: the KMS's TLS configuration and client-evidence verification, nothing else.
mod floor {
    use super::*;
    use hyper_util::rt::TokioIo;
    use tokio_rustls::TlsAcceptor;

    pub fn serve() {
        // The same runtime as the KMS binary's.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        // Like the KMS binary, the server runs on a worker thread, not the runtime's caller.
        let server = runtime.spawn(async {
            let policy = Arc::new(identity::verifier_policy(true));
            let tee = identity::NodeTee::simulated(
                Address::ZERO,
                B256::repeat_byte(0xf1),
                B256::from(OS_IMAGE),
                Address::repeat_byte(0xf2),
            )
            .unwrap();
            let own = tee.ratls_identity().unwrap();
            let tls = covenant_kms_oracle::server::tls::server_config(
                own.certificate_der.clone(),
                &own.private_key_der,
                Arc::new(rustls::crypto::ring::default_provider()),
            )
            .unwrap();
            let acceptor = TlsAcceptor::from(Arc::new(tls));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            eprintln!("floor listening addr={}", listener.local_addr().unwrap());
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(connection(stream, acceptor.clone(), policy.clone()));
            }
        });
        runtime.block_on(server).unwrap();
    }

    async fn connection(
        stream: tokio::net::TcpStream,
        acceptor: TlsAcceptor,
        policy: Arc<covenant_attest::Policy>,
    ) {
        let _ = stream.set_nodelay(true);
        let Ok(Ok(tls)) =
            tokio::time::timeout(Duration::from_secs(5), acceptor.accept(stream)).await
        else {
            return;
        };
        let certificate = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec());
        let service =
            hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let certificate = certificate.clone();
                let policy = policy.clone();
                async move {
                    let _ = request.into_body().collect().await;
                    let now = covenant_mirror::Clock::now_secs(&covenant_mirror::SystemClock);
                    let verdict = tokio::task::spawn_blocking(move || {
                        let certificate = certificate.ok_or("no client certificate".to_owned())?;
                        covenant_attest::ratls::verify_certificate(
                            &certificate,
                            &Collateral::default(),
                            &policy,
                            now,
                        )
                        .map_err(|e| e.to_string())
                    })
                    .await
                    .unwrap();
                    let (status, body) = match verdict {
                        Ok(evidence) => (
                            200,
                            format!(
                                "{{\"appId\":\"0x{}\"}}",
                                hex::encode(evidence.runtime().app_id.as_bytes())
                            ),
                        ),
                        Err(e) => (401, serde_json::json!({ "error": e }).to_string()),
                    };
                    Ok::<_, Infallible>(
                        hyper::Response::builder()
                            .status(status)
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(body)))
                            .unwrap(),
                    )
                }
            });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(tls), service)
            .await;
    }
}

/// Accepts exactly the pinned server certificates (verified once by the full RA-TLS verifier)
/// and checks each handshake's signature with their key.
#[derive(Debug)]
struct Pinned {
    certificates: Vec<Vec<u8>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let pinned = self
            .certificates
            .iter()
            .any(|c| c.as_slice() == end_entity.as_ref());
        if pinned && intermediates.is_empty() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("not a pinned certificate".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Floor,
    Grants,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Floor => "floor",
            Target::Grants => "grants",
        }
    }
}

struct Run {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// CPU of everything but the load generator (servers, anvil, PostgreSQL; user + system)
    /// per request, microseconds.
    cpu_us: f64,
    /// The same per request by process name (processes that lived through the run), the
    /// busiest first.
    by_process: Vec<(String, f64)>,
}

/// User + system CPU seconds of every process but this one, summed by process name (`comm`).
fn cpu_by_process() -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    let own = std::process::id().to_string();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) || name == own {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let ticks: u64 = stat[close + 2..]
            .split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|t| t.parse::<u64>().ok())
            .sum();
        *out.entry(stat[open + 1..close].to_owned()).or_default() +=
            ticks as f64 / clock_ticks_per_second();
    }
    out
}

/// Busy CPU time, in seconds, of the whole machine except this process (the load generator): `/proc/stat` less idle and iowait, less `/proc/self/stat`'s
/// user + system time. Everything else the benchmark starts shares this machine, so a run's
/// server-side cost is the difference.
fn server_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|t| t.parse().unwrap())
        .collect();
    let machine = ticks.iter().sum::<u64>() - ticks[3] - ticks[4];
    let own = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<u64> = own[own.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|t| t.parse().unwrap())
        .collect();
    (machine - fields[0] - fields[1]) as f64 / clock_ticks_per_second()
}

fn clock_ticks_per_second() -> f64 {
    static HZ: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *HZ.get_or_init(|| {
        let out = std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    })
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1000.0
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// `requests` one-request connections, `concurrency` at a time, each with the next identity.
async fn load(
    addr: SocketAddr,
    path: &'static str,
    body: &'static [u8],
    identities: Arc<Vec<Arc<rustls::ClientConfig>>>,
    requests: usize,
    concurrency: usize,
) -> Run {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let busy = server_busy_seconds();
    let by_process_before = cpu_by_process();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (next, identities) = (next.clone(), identities.clone());
        workers.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    return latencies;
                }
                let config = identities[i % identities.len()].clone();
                let t = Instant::now();
                let reply = client::request(config, addr, "POST", path, Some(body.to_vec()))
                    .await
                    .unwrap_or_else(|e| panic!("request {i} to {path}: {e}"));
                assert_eq!(
                    reply.status,
                    200,
                    "request {i} to {path}: {}",
                    String::from_utf8_lossy(&reply.body)
                );
                latencies.push(t.elapsed());
            }
        });
    }
    let mut latencies = Vec::with_capacity(requests);
    while let Some(done) = workers.join_next().await {
        latencies.extend(done.unwrap());
    }
    let elapsed = started.elapsed();
    let cpu_us = (server_busy_seconds() - busy) * 1e6 / requests as f64;
    let mut by_process: Vec<(String, f64)> = cpu_by_process()
        .into_iter()
        .filter_map(|(name, after)| {
            let before = by_process_before.get(&name)?;
            let us = (after - before) * 1e6 / requests as f64;
            (us >= 1.0).then_some((name, us))
        })
        .collect();
    by_process.sort_by(|a, b| b.1.total_cmp(&a.1));
    latencies.sort();
    Run {
        per_second: requests as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        cpu_us,
        by_process,
    }
}

/// Client identities of distinct instances of `app`, each a client configuration that presents
/// its RA-TLS certificate and accepts only the pinned servers; each trusts the KMS root
/// `key_provider`.
async fn identities(
    apps: Arc<Vec<Address>>,
    count: usize,
    pinned: Arc<Pinned>,
    key_provider: Address,
) -> Arc<Vec<Arc<rustls::ClientConfig>>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut parts = tokio::task::JoinSet::new();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    for part in 0..threads {
        let (pinned, provider, apps) = (pinned.clone(), provider.clone(), apps.clone());
        parts.spawn_blocking(move || {
            (part..count)
                .step_by(threads)
                .map(|i| {
                    let mut instance = [0u8; 20];
                    instance[12..].copy_from_slice(&(i as u64 + 1).to_be_bytes());
                    let boot = Boot {
                        instance,
                        ..Boot::new(apps[i % apps.len()], 0)
                    };
                    let id = Instance::boot(&boot, key_provider).identity;
                    let mut config = client::client_config(
                        Some((&id.certificate_der, &id.private_key_der)),
                        pinned.clone(),
                        provider.clone(),
                    )
                    .unwrap();
                    config.resumption = rustls::client::Resumption::disabled();
                    (i, Arc::new(config))
                })
                .collect::<Vec<_>>()
        });
    }
    let mut all = parts.join_all().await.concat();
    all.sort_by_key(|(i, _)| *i);
    Arc::new(all.into_iter().map(|(_, c)| c).collect())
}

/// The KMS's chain reads so far (`covenant_kms_chain_reads_total`, all functions).
async fn chain_reads(kms: &fixture::Kms) -> u64 {
    let metrics = kms.get("/metrics").await;
    String::from_utf8_lossy(&metrics.body)
        .lines()
        .filter(|l| l.starts_with("covenant_kms_chain_reads_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// A KMS histogram's (count, sum) so far: for `covenant_kms_app_check_batch_size`, batches and
/// boots checked; for `covenant_kms_audit_group_size`, commits and entries.
async fn histogram(kms: &fixture::Kms, name: &str) -> (f64, f64) {
    let metrics = kms.get("/metrics").await;
    let text = String::from_utf8_lossy(&metrics.body);
    let sample = |suffix: &str| {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(name)?
                    .strip_prefix(suffix)?
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0)
    };
    (sample("_count"), sample("_sum"))
}

const APP_CHECKS: &str = "covenant_kms_app_check_batch_size";
const AUDIT_GROUPS: &str = "covenant_kms_audit_group_size";

async fn audit_counts(pool: &sqlx::PgPool) -> (i64, i64, i64) {
    sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE granted), coalesce(max(seq), 0) FROM audit_log",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn bench(cli: Cli) {
    eprintln!("starting anvil, PostgreSQL, the indexer and a KMS node …");
    let stack = Stack::start().await;
    // The audit log on a durable cluster: a grant is answered only after its commit is on disk.
    let durable = Arc::new(
        PgCluster::builder()
            .with_setting("fsync", "on")
            .with_setting("synchronous_commit", "on")
            .with_setting("full_page_writes", "on")
            .start(),
    );
    let audit = durable.try_create_database().unwrap();
    // Production defaults for everything else (on-chain commits every 10 s), but the per-source
    // connection rate: every client here comes from loopback.
    let kms = fixture::first_node_with(
        &stack,
        &[
            "--commit-interval-ms",
            "10000",
            "--connections-per-source-per-sec",
            "1000000",
        ],
        Some(audit),
    )
    .await;
    let mut apps = Vec::new();
    for _ in 0..cli.apps.max(1) {
        apps.push(stack.create_app().await);
    }
    stack.finalize();
    kms.wait_serving_at(stack.head().await - FINALITY).await;
    let audit_pool = kms.audit_pool().await;

    let mut floor_command = std::process::Command::new(std::env::current_exe().unwrap());
    floor_command.arg("floor-server");
    let floor_process = Process::spawn("floor", floor_command, Signal::SIGTERM).unwrap();
    let line = floor_process
        .wait_for_line("its listening line", Duration::from_secs(30), |l| {
            l.contains("floor listening")
        })
        .unwrap();
    let floor: SocketAddr = line.rsplit("addr=").next().unwrap().trim().parse().unwrap();

    // Both servers' certificates, verified by the full RA-TLS verifier, then pinned.
    let mut certificates = Vec::new();
    for addr in [kms.addr, floor] {
        let reply = client::request(fixture::anonymous(), addr, "GET", "/healthz", None)
            .await
            .unwrap();
        certificates.push(reply.server_certificate.unwrap());
    }
    let pinned = Arc::new(Pinned {
        certificates,
        algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
    });
    let instances = if cli.instances == 0 {
        cli.requests
    } else {
        cli.instances
    };
    eprintln!("making {instances} client identities …");
    let ids = identities(Arc::new(apps), instances, pinned, kms.root_signer).await;

    let body: &'static [u8] = br#"{"paths":["db"]}"#;
    let run = |target: Target, requests: usize, concurrency: usize| {
        let ids = ids.clone();
        let (addr, path) = match target {
            Target::Floor => (floor, "/"),
            Target::Grants => (kms.addr, "/v1/keys"),
        };
        load(addr, path, body, ids, requests, concurrency)
    };
    // A new finalized block: the KMS's decisions of the previous run cannot be reused.
    let advance = || async {
        stack.finalize();
        kms.wait_serving_at(stack.head().await - FINALITY).await;
    };

    eprintln!("warming up …");
    advance().await;
    let warm = cli.requests.min(instances).min(300);
    run(Target::Floor, warm, 8).await;
    run(Target::Grants, warm, 8).await;

    let clusters = [
        (
            "mirror",
            covenant_testkit::postgres::shared_cluster().unwrap(),
        ),
        ("audit", Arc::clone(&durable)),
    ];
    if cli.statements.is_some() {
        for (_, cluster) in &clusters {
            cluster.statement_stats_reset().unwrap();
        }
    }
    println!(
        "kms-oracle grants vs floor: {} requests per run, {} distinct instances of {} apps, {} rounds",
        cli.requests,
        instances,
        cli.apps.max(1),
        cli.rounds
    );
    println!(
        "{:>11} {:>5} {:>7} {:>10} {:>8} {:>8} {:>9} {:>11}",
        "concurrency", "round", "run", "req/s", "p50 ms", "p99 ms", "server us", "chain reads"
    );
    for &concurrency in &cli.concurrency {
        let mut results: Vec<(Target, Run)> = Vec::new();
        for round in 0..cli.rounds {
            let order = if round % 2 == 0 {
                [Target::Floor, Target::Grants]
            } else {
                [Target::Grants, Target::Floor]
            };
            for target in order {
                let before = audit_counts(&audit_pool).await;
                if target == Target::Grants {
                    advance().await;
                }
                let reads_before = chain_reads(&kms).await;
                let batches_before = histogram(&kms, APP_CHECKS).await;
                let groups_before = histogram(&kms, AUDIT_GROUPS).await;
                let r = run(target, cli.requests, concurrency).await;
                let reads = match target {
                    Target::Grants => (chain_reads(&kms).await - reads_before).to_string(),
                    Target::Floor => "-".to_owned(),
                };
                if target == Target::Grants {
                    // Every grant was logged before it was answered, with contiguous numbers.
                    let after = audit_counts(&audit_pool).await;
                    assert_eq!(
                        after.1 - before.1,
                        cli.requests as i64,
                        "grants in the audit log"
                    );
                    assert_eq!(after.0, after.2, "audit sequence numbers are contiguous");
                }
                println!(
                    "{concurrency:>11} {round:>5} {:>7} {:>10.0} {:>8.2} {:>8.2} {:>9.0} {:>11}",
                    target.name(),
                    r.per_second,
                    r.p50_ms,
                    r.p99_ms,
                    r.cpu_us,
                    reads
                );
                let by_process: Vec<String> = r
                    .by_process
                    .iter()
                    .map(|(name, us)| format!("{name} {us:.0}"))
                    .collect();
                println!("{:>27} server us by process: {}", "", by_process.join(", "));
                if target == Target::Grants {
                    for (name, before, what) in [
                        (
                            APP_CHECKS,
                            batches_before,
                            ("app checks", "boots", "batches", "batch"),
                        ),
                        (
                            AUDIT_GROUPS,
                            groups_before,
                            ("audit log", "entries", "commits", "commit"),
                        ),
                    ] {
                        let after = histogram(&kms, name).await;
                        let (count, sum) = (after.0 - before.0, after.1 - before.1);
                        let (label, items, groups, group) = what;
                        if count > 0.0 {
                            println!(
                                "{:>27} {label}: {sum:.0} {items} in {count:.0} {groups} ({:.1} per {group})",
                                "",
                                sum / count
                            );
                        }
                    }
                }
                results.push((target, r));
            }
        }
        let summary = |t: Target| {
            let of = |f: fn(&Run) -> f64| {
                median(
                    results
                        .iter()
                        .filter(|(x, _)| *x == t)
                        .map(|(_, r)| f(r))
                        .collect(),
                )
            };
            (
                of(|r| r.per_second),
                of(|r| r.p50_ms),
                of(|r| r.p99_ms),
                of(|r| r.cpu_us),
            )
        };
        let (g, g50, g99, gcpu) = summary(Target::Grants);
        let (f, f50, f99, fcpu) = summary(Target::Floor);
        println!(
            "concurrency {concurrency}, medians: grants {g:.0}/s (p50 {g50:.2} ms, p99 {g99:.2} ms, \
             {gcpu:.0} us CPU each); floor {f:.0}/s (p50 {f50:.2} ms, p99 {f99:.2} ms, {fcpu:.0} us \
             CPU each)\n  cost per grant = {:.2} x the floor in server-side CPU, {:.2} x in throughput \
             (target <= 1.5); grants/s >= 500: {}",
            gcpu / fcpu,
            f / g,
            if g >= 500.0 { "met" } else { "NOT met" }
        );
    }
    if let Some(top) = cli.statements {
        let grants = cli.requests * cli.rounds * cli.concurrency.len();
        println!("PostgreSQL statements over the grant runs ({grants} grants; ms in all):");
        for (name, cluster) in &clusters {
            println!("{name} cluster:\n{}", cluster.statement_stats(top).unwrap());
        }
    }
    floor_process.stop();
}
