//! `covenant-bench-gateway`: see the crate documentation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use clap::{Parser, Subcommand};
use covenant_bench_gateway::{Fixed, serve};
use covenant_gateway::http::{HttpFront, HttpMetrics, Limits};
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::net::TcpStream;

#[derive(Parser)]
#[command(name = "covenant-bench-gateway", about = "Gateway benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The gateway's TLS and HTTP front in front of a plain-HTTP backend (the nginx peer
    /// harness's `--candidate-cmd`); runs until SIGTERM.
    Candidate {
        /// Where to listen.
        #[arg(long)]
        listen: SocketAddr,
        /// The backend (plain HTTP/1.1).
        #[arg(long)]
        upstream: SocketAddr,
        /// Certificate chain, PEM.
        #[arg(long)]
        cert: PathBuf,
        /// Its key, PEM (PKCS#8 or SEC1).
        #[arg(long)]
        key: PathBuf,
        /// The server name served (the harness's clients use `localhost`).
        #[arg(long, default_value = "localhost")]
        host: String,
    },
    /// Time to the first server-sent event: through the candidate (HTTPS, keep-alive) against
    /// the echo app directly (HTTP, keep-alive), in alternating rounds.
    Sse {
        /// Requests per round and target.
        #[arg(long, default_value_t = 2000)]
        requests: usize,
        /// Rounds.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    match cli.command {
        Cmd::Candidate {
            listen,
            upstream,
            cert,
            key,
            host,
        } => runtime.block_on(candidate(listen, upstream, cert, key, host)),
        Cmd::Sse { requests, rounds } => runtime.block_on(sse(requests, rounds)),
    }
}

async fn candidate(
    listen: SocketAddr,
    upstream: SocketAddr,
    cert: PathBuf,
    key: PathBuf,
    host: String,
) {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&key).unwrap();
    let mut tls = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let front = HttpFront::new(
        Fixed::new(upstream),
        Limits::default(),
        HttpMetrics::new(&prometheus::Registry::new()).unwrap(),
    );
    let listener = tokio::net::TcpListener::bind(listen).await.unwrap();
    eprintln!("candidate listening on {}", listener.local_addr().unwrap());
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let host = covenant_gateway::names::canonical(&host).unwrap();
    let serving = tokio::spawn(serve(listener, Arc::new(tls), front, host, shutdown));
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    let _ = stop.send(true);
    serving.abort();
}

/// A child process killed (and reaped) when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sibling(name: &str) -> PathBuf {
    let path = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: cargo build --release --workspace",
        path.display()
    );
    path
}

async fn wait_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "{addr} did not start listening");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn keep_alive<Io>(io: Io) -> Sender
where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}

/// Microseconds to the first event of one `GET /events?count=1`, and the stream read to its end.
async fn first_event(sender: &mut Sender) -> f64 {
    sender.ready().await.unwrap();
    let start = Instant::now();
    let response = sender
        .send_request(
            Request::get("/events?count=1")
                .header("host", "localhost")
                .body(Empty::new())
                .unwrap(),
        )
        .await
        .unwrap();
    let mut body = response.into_body();
    let frame = body.frame().await.unwrap().unwrap();
    let elapsed = start.elapsed().as_secs_f64() * 1e6;
    assert!(frame.data_ref().is_some_and(|d| d.starts_with(b"id: 0")));
    while body.frame().await.is_some() {}
    elapsed
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

async fn sse(requests: usize, rounds: usize) {
    let app_port = covenant_testkit::free_port().unwrap();
    let app_addr: SocketAddr = format!("127.0.0.1:{app_port}").parse().unwrap();
    let _app = Killed(
        Command::new(sibling("covenant-echo-app"))
            .args(["--listen", &app_addr.to_string()])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let dir = std::env::temp_dir().join(format!("covenant-bench-sse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    let gateway_port = covenant_testkit::free_port().unwrap();
    let gateway_addr: SocketAddr = format!("127.0.0.1:{gateway_port}").parse().unwrap();
    let _gateway = Killed(
        Command::new(std::env::current_exe().unwrap())
            .arg("candidate")
            .args(["--listen", &gateway_addr.to_string()])
            .args(["--upstream", &app_addr.to_string()])
            .arg("--cert")
            .arg(dir.join("cert.pem"))
            .arg("--key")
            .arg(dir.join("key.pem"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_listening(app_addr).await;
    wait_listening(gateway_addr).await;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let client = Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let tcp = TcpStream::connect(app_addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let mut direct = keep_alive(tcp).await;
    let tcp = TcpStream::connect(gateway_addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let tls = tokio_rustls::TlsConnector::from(client)
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let mut through = keep_alive(tls).await;
    for _ in 0..200 {
        first_event(&mut direct).await;
        first_event(&mut through).await;
    }
    let (mut all_direct, mut all_through) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let (mut d, mut t) = (Vec::with_capacity(requests), Vec::with_capacity(requests));
        for _ in 0..requests {
            d.push(first_event(&mut direct).await);
            t.push(first_event(&mut through).await);
        }
        d.sort_by(f64::total_cmp);
        t.sort_by(f64::total_cmp);
        println!(
            "round {round}: direct p50 {:.0} us p99 {:.0} us | gateway p50 {:.0} us p99 {:.0} us | added p50 {:.0} us",
            percentile(&d, 50.0),
            percentile(&d, 99.0),
            percentile(&t, 50.0),
            percentile(&t, 99.0),
            percentile(&t, 50.0) - percentile(&d, 50.0)
        );
        all_direct.extend(d);
        all_through.extend(t);
    }
    all_direct.sort_by(f64::total_cmp);
    all_through.sort_by(f64::total_cmp);
    println!(
        "sse first event, {} requests each: direct p50 {:.0} us p99 {:.0} us; through the gateway p50 {:.0} us p99 {:.0} us; added p50 {:.3} ms (target <= 1 ms)",
        all_direct.len(),
        percentile(&all_direct, 50.0),
        percentile(&all_direct, 99.0),
        percentile(&all_through, 50.0),
        percentile(&all_through, 99.0),
        (percentile(&all_through, 50.0) - percentile(&all_direct, 50.0)) / 1000.0
    );
    let _ = std::fs::remove_dir_all(&dir);
}
