//! `covenant-gateway`: the gateway's command line.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use clap::{Parser, Subcommand};
use covenant_chain::{Deployment, Finality};
use covenant_gateway::{Gateway, Settings, metrics::Metrics, server, store::Store};

#[derive(Parser)]
#[command(name = "covenant-gateway", version, about = "Covenant's gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serves the registration API and keeps the routing table decided at the finalized block
    /// until SIGTERM or SIGINT.
    Run(RunArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// The deployment file (`deployments/<chainId>.json`).
    #[arg(long)]
    deployment: PathBuf,
    /// An RPC node of the chain (decisions are cross-checked with `eth_call` at the finalized
    /// block's hash).
    #[arg(long)]
    rpc_url: String,
    /// The indexer's database (read only).
    #[arg(long)]
    mirror_database_url: String,
    /// The gateway's own database, shared by every gateway node of the deployment.
    #[arg(long)]
    database_url: String,
    /// Where the registration API listens (HTTPS).
    #[arg(long)]
    listen: SocketAddr,
    /// Where the public listener accepts clients (TLS; routed by server name).
    #[arg(long)]
    public_listen: Option<SocketAddr>,
    /// The domain app names live under: `<app-id>[-<port>].<base-domain>`.
    #[arg(long)]
    base_domain: String,
    /// Which block counts as final: `finalized` or a number of confirmations.
    #[arg(long, default_value = "finalized")]
    finality: Finality,
    /// Where to write the development CA's certificate (PEM): the CA that issues the
    /// certificates of names the gateway terminates TLS for, made at start-up.
    #[arg(long)]
    dev_ca_out: Option<PathBuf>,
    /// The DNS server custom domains' `_covenant.<domain>` TXT records are asked of (UDP);
    /// the system's resolver configuration when not given.
    #[arg(long)]
    dns_server: Option<SocketAddr>,
    /// A finalized block older than this, in seconds, routes nothing.
    #[arg(long, default_value_t = 1800)]
    max_finalized_age_secs: u64,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("COVENANT_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("covenant-gateway: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Run(args) => runtime.block_on(run(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("covenant-gateway: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: RunArgs) -> Result<(), String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let base_domain = covenant_gateway::names::canonical(&args.base_domain)
        .map_err(|e| format!("--base-domain: {e}"))?;
    let deployment = Deployment::read(&args.deployment).map_err(|e| e.to_string())?;
    let registry = prometheus::Registry::new();
    let metrics = Metrics::new(&registry).map_err(|e| e.to_string())?;
    let chain = covenant_mirror::ChainReader::connect(
        &args.rpc_url,
        Duration::from_secs(10),
        deployment.chain_id,
        metrics.chain_reads.clone(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let mirror = covenant_mirror::connect_mirror(&args.mirror_database_url, 8)
        .await
        .map_err(|e| e.to_string())?;
    let clock: covenant_mirror::SharedClock = Arc::new(covenant_mirror::SystemClock);
    let view = Arc::new(
        covenant_mirror::PolicyView::new(
            chain,
            None,
            mirror,
            deployment,
            covenant_mirror::ViewSettings {
                max_age: Duration::from_secs(args.max_finalized_age_secs),
                poll: Duration::from_secs(1),
                finality: args.finality,
            },
            clock.clone(),
            metrics.view(),
        )
        .await
        .map_err(|e| e.to_string())?,
    );
    let store = Store::connect(&args.database_url)
        .await
        .map_err(|e| format!("the gateway database: {e}"))?;
    let gateway = Arc::new(Gateway::new(
        view.clone(),
        store,
        clock,
        Settings { base_domain },
        metrics,
    ));
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let follow_view = tokio::spawn(view.follow(shutdown.clone()));
    let loaded = gateway.load().await.map_err(|e| e.to_string())?;
    tracing::info!(loaded, "registrations loaded");
    let follow = tokio::spawn(gateway.clone().follow(shutdown.clone()));
    // The registration API's certificate: a fresh self-signed one until the gateway boots as an
    // app (instances hand it nothing secret; their evidence is public).
    let certificate = rcgen::generate_simple_self_signed(vec!["covenant-gateway".to_owned()])
        .map_err(|e| e.to_string())?;
    let tls = server::tls_config(
        certificate.cert.der().to_vec(),
        certificate.signing_key.serialize_der(),
    )
    .map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("binding {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(%addr, "gateway api listening");
    let public = match args.public_listen {
        Some(addr) => {
            let ca = covenant_gateway::certs::DevCa::generate(&gateway.settings().base_domain)
                .map_err(|e| e.to_string())?;
            if let Some(path) = &args.dev_ca_out {
                std::fs::write(path, ca.certificate_pem())
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("binding {addr}: {e}"))?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            tracing::info!(%addr, "gateway public listening");
            let certificates = Arc::new(covenant_gateway::certs::Certificates::new(ca));
            let domains = Arc::new(covenant_gateway::domains::Domains::new(args.dns_server)?);
            let front = covenant_gateway::http::HttpFront::new(
                covenant_gateway::proxy::Instances::new(gateway.clone(), domains),
                covenant_gateway::http::Limits::default(),
                covenant_gateway::http::HttpMetrics::new(&registry).map_err(|e| e.to_string())?,
            );
            let proxy = Arc::new(
                covenant_gateway::proxy::Proxy::new(gateway.clone(), certificates, front)
                    .map_err(|e| e.to_string())?,
            );
            tokio::spawn(covenant_gateway::proxy::check_health(
                proxy.clone(),
                shutdown.clone(),
            ));
            Some(tokio::spawn(covenant_gateway::proxy::serve(
                listener,
                proxy,
                shutdown.clone(),
            )))
        }
        None => None,
    };
    let serving = tokio::spawn(server::serve(
        listener,
        tls,
        gateway,
        registry,
        shutdown.clone(),
    ));
    stop_signal().await.map_err(|e| e.to_string())?;
    tracing::info!("stopping");
    let _ = stop.send(true);
    let _ = serving.await;
    if let Some(public) = public {
        let _ = public.await;
    }
    let _ = follow.await;
    let _ = follow_view.await;
    tracing::info!("gateway stopped");
    Ok(())
}

async fn stop_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
