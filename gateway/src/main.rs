//! `covenant-gateway`: the gateway's command line.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use alloy::primitives::Address;
use clap::{Parser, Subcommand};
use covenant_chain::{Deployment, Finality};
use covenant_gateway::{
    Gateway, Settings,
    acme::{Acme, AcmeSettings},
    certs::{AcmeSource, Certificates, Source},
    identity::Identity,
    metrics::Metrics,
    server,
    store::Store,
    wellknown::{Node, Publication},
};

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
    /// The guest agent's local API (its Unix socket): the gateway runs as an app, booted as the
    /// chain's `gatewayAppId`, and takes its keys from the KMS through it. Without it the
    /// gateway is a development gateway: no ACME, no evidence published.
    #[arg(long, env = "COVENANT_GUEST_SOCKET")]
    guest_socket: Option<PathBuf>,
    /// The ACME CA's directory URL: certificates are ordered there under the gateway app's
    /// account (`GetKey("gateway/acme")`), TLS-ALPN-01 answered by the public listener. Needs
    /// `--guest-socket`. Without it, a development CA issues the certificates.
    #[arg(long)]
    acme_directory: Option<String>,
    /// A root certificate (PEM) to trust for the ACME directory's own TLS (a CA on a private
    /// PKI, as in tests).
    #[arg(long)]
    acme_ca_file: Option<PathBuf>,
    /// The CA's CAA identity (its issuer domain), for the CAA record the gateway prints.
    #[arg(long)]
    acme_caa_identity: Option<String>,
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
        Settings {
            base_domain: base_domain.clone(),
        },
        metrics,
    ));
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let follow_view = tokio::spawn(view.follow(shutdown.clone()));
    let loaded = gateway.load().await.map_err(|e| e.to_string())?;
    tracing::info!(loaded, "registrations loaded");
    let follow = tokio::spawn(gateway.clone().follow(shutdown.clone()));
    // The registration API's certificate: fresh at every start (instances hand it nothing
    // secret; their evidence is public). As an app, the node's evidence binds its key.
    let certificate = rcgen::generate_simple_self_signed(vec!["covenant-gateway".to_owned()])
        .map_err(|e| e.to_string())?;
    let api_spki = covenant_gateway::instance::spki(certificate.cert.der())?;
    let tls = server::tls_config(
        certificate.cert.der().to_vec(),
        certificate.signing_key.serialize_der(),
    )
    .map_err(|e| e.to_string())?;
    let identity = match &args.guest_socket {
        Some(socket) => {
            let gateway_app = wait_gateway_app(&view).await?;
            let identity = Identity::boot(socket, gateway_app).await?;
            tracing::info!(
                app = %identity.info().app_id,
                instance = %identity.info().instance_id,
                "running as the gateway app"
            );
            Some(Arc::new(identity))
        }
        None => {
            tracing::warn!("not running as an app (no --guest-socket): a development gateway");
            None
        }
    };
    let acme = match (&args.acme_directory, &identity) {
        (Some(directory), Some(identity)) => {
            let settings = AcmeSettings {
                directory: directory.clone(),
                ca_file: args.acme_ca_file.clone(),
            };
            let acme = Acme::connect(&settings, identity.acme_account_key()).await?;
            announce_account(
                &acme,
                &base_domain,
                args.acme_caa_identity.as_deref(),
                directory,
            );
            Some(acme)
        }
        (Some(_), None) => {
            return Err(
                "--acme-directory needs the gateway to run as an app (--guest-socket)".into(),
            );
        }
        (None, _) => None,
    };
    let node = match &identity {
        Some(identity) => {
            let account = acme.as_ref().map(|a| a.account_uri().to_owned());
            let evidence = identity
                .attest(&covenant_gateway::identity::node_report_data(
                    account.as_deref().unwrap_or(""),
                    &api_spki,
                ))
                .await?;
            Some(Node {
                identity: identity.clone(),
                account_uri: account,
                evidence,
                api_spki,
            })
        }
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("binding {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(%addr, "gateway api listening");
    let public = match args.public_listen {
        Some(addr) => {
            let source = match (acme, &identity) {
                (Some(acme), Some(identity)) => Source::Acme(AcmeSource {
                    acme,
                    identity: identity.clone(),
                    store: gateway.store().clone(),
                    installed: gateway.metrics().certificates.clone(),
                }),
                _ => {
                    let ca = covenant_gateway::certs::DevCa::generate(&base_domain)
                        .map_err(|e| e.to_string())?;
                    if let Some(path) = &args.dev_ca_out {
                        std::fs::write(path, ca.certificate_pem())
                            .map_err(|e| format!("{}: {e}", path.display()))?;
                    }
                    let ca = match &identity {
                        Some(identity) => ca.attested_by(identity.clone(), gateway.store().clone()),
                        None => ca,
                    };
                    Source::Dev(Box::new(ca))
                }
            };
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("binding {addr}: {e}"))?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            tracing::info!(%addr, "gateway public listening");
            let certificates = Arc::new(Certificates::new(source));
            let domains = Arc::new(covenant_gateway::domains::Domains::new(args.dns_server)?);
            let publication = Arc::new(Publication::new(gateway.clone(), node));
            let front = covenant_gateway::http::HttpFront::new(
                covenant_gateway::proxy::Instances::new(gateway.clone(), domains, publication),
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
    // As an app, the gateway serves only while the chain still names its app: a governance
    // change of gatewayAppId stops it (and it refuses to start again).
    let deposed = async {
        match &identity {
            Some(identity) => no_longer_the_gateway(&view, identity.info().app_id).await,
            None => std::future::pending().await,
        }
    };
    let failure = tokio::select! {
        signal = stop_signal() => {
            signal.map_err(|e| e.to_string())?;
            None
        }
        reason = deposed => Some(reason),
    };
    match &failure {
        Some(reason) => tracing::error!(%reason, "stopping"),
        None => tracing::info!("stopping"),
    }
    let _ = stop.send(true);
    let _ = serving.await;
    if let Some(public) = public {
        let _ = public.await;
    }
    let _ = follow.await;
    let _ = follow_view.await;
    tracing::info!("gateway stopped");
    failure.map_or(Ok(()), Err)
}

/// Resolves, with the reason, at the first finalized block whose `gatewayAppId` is not `app`.
async fn no_longer_the_gateway(view: &covenant_mirror::PolicyView, app: Address) -> String {
    let mut blocks = view.subscribe();
    loop {
        if blocks.changed().await.is_err() {
            return "the policy view stopped".into();
        }
        match covenant_gateway::identity::chain_gateway_app(view).await {
            Ok(current) if current != app => {
                return format!("the chain's gatewayAppId is now {current}, not this app ({app})");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "gatewayAppId not read at the new block"),
        }
    }
}

/// The chain's `gatewayAppId`, once the view has a finalized block to read it at.
async fn wait_gateway_app(view: &covenant_mirror::PolicyView) -> Result<Address, String> {
    let mut blocks = view.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        if view.current_block().is_ok() {
            return covenant_gateway::identity::chain_gateway_app(view).await;
        }
        if tokio::time::timeout_at(deadline, blocks.changed())
            .await
            .map_err(|_| "no finalized block to read gatewayAppId at within 120 s".to_owned())?
            .is_err()
        {
            return Err("the policy view stopped".into());
        }
    }
}

/// Logs the ACME account, the CAA record operators must publish, and the governance call that
/// puts the account on chain.
fn announce_account(acme: &Acme, base_domain: &str, caa_identity: Option<&str>, directory: &str) {
    let issuer = caa_identity.map_or_else(
        || {
            directory
                .parse::<hyper::Uri>()
                .ok()
                .and_then(|u| u.host().map(str::to_owned))
                .unwrap_or_default()
        },
        str::to_owned,
    );
    let uri = acme.account_uri();
    tracing::info!(account = %uri, "acme account");
    tracing::info!(
        record = %format!("{base_domain}. CAA 0 issue \"{issuer}; accounturi={uri}\""),
        "publish this CAA record for the base domain and every custom domain"
    );
    tracing::info!(
        call = %format!("DomainRegistry.setGatewayAcmeAccount(\"{uri}\")"),
        "propose this through governance"
    );
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
