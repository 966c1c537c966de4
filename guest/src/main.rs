//! `covenant-guest`: the guest agent's command line.

use std::{path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use alloy::primitives::{Address, B256};
use clap::{Parser, Subcommand, ValueEnum};
use covenant_attest::{DeviceId, simulator::SimulatorRootKey};
use covenant_chain::{Deployment, Finality};
use covenant_guest::boot::{self, KmsAccess, Launch};
use covenant_kms_api::KmsIdentityChecker;
use covenant_tee::{EvidenceProducer, GpuProducer};
use serde_json::json;

#[derive(Parser)]
#[command(name = "covenant-guest", version, about = "Covenant's guest agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measures the boot, gets the app's keys from a KMS node the chain allows, prints what the
    /// instance now is (no secret), and exits.
    Boot(BootArgs),
    /// Boots as `boot` does, then serves the local API on a Unix socket until SIGTERM or SIGINT.
    Run(RunArgs),
    /// Checks an app-compose document and prints its compose hash (`0x` + 64 hex digits), the
    /// value an app allows on chain and the guest measures.
    ComposeHash {
        /// The app-compose document.
        compose: PathBuf,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    boot: BootArgs,
    /// The local API's Unix socket (created with mode 0600; a stale socket is replaced).
    #[arg(long)]
    socket: PathBuf,
    /// How the workload runs: `docker` (docker compose; the default on a real TEE) or
    /// `processes` (each container's command as a local process; simulated TEE only, the
    /// default there).
    #[arg(long, value_enum)]
    runtime: Option<Runtime>,
    /// The block device of the instance's LUKS2 data volume (required on a real TEE; under the
    /// simulated TEE, without it, the volume is an encrypted directory image in the state
    /// directory). Mounted on `<run-dir>/data`.
    #[arg(long)]
    data_device: Option<PathBuf>,
    /// A directory only the guest can write (tmpfs inside the VM, never the host's state
    /// directory): the Compose project, Docker's configuration and the volume's mount point.
    #[arg(long, default_value = "/run/covenant")]
    run_dir: PathBuf,
    /// A gateway to register the instance with (`https://host:port`, its registration API);
    /// repeat for several. Registration is retried until the gateway accepts or refuses.
    #[arg(long = "gateway-url")]
    gateway_urls: Vec<String>,
    /// Where the ingress listens (TLS with the boot's RA-TLS certificate; the gateway connects
    /// here, naming the compose port as `<port>.ingress`); its address is what the instance
    /// registers.
    #[arg(long, default_value = "127.0.0.1:0")]
    ingress_listen: std::net::SocketAddr,
    /// Where the ingress reaches the workload's compose ports. Local processes (`--runtime
    /// processes`) share the machine's network: instances of different versions on one machine
    /// each listen on a loopback address of their own (127.0.0.0/8) and name it here.
    #[arg(long, default_value = "127.0.0.1")]
    workload_address: std::net::IpAddr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Runtime {
    /// `docker compose`.
    Docker,
    /// Local processes (development only).
    Processes,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Tee {
    /// Intel TDX (configfs-tsm, RTMR3).
    Tdx,
    /// AMD SEV-SNP (configfs-tsm).
    SevSnp,
    /// The simulated TEE (development only: its root is public).
    Simulated,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Gpu {
    /// A simulated NVIDIA GPU (development only: its root is public, and verifiers accept it
    /// only where the chain allows simulated TEEs).
    Simulated,
}

#[derive(clap::Args)]
struct BootArgs {
    /// The app-compose document.
    #[arg(long)]
    compose: PathBuf,
    /// The app (its `App` proxy address).
    #[arg(long)]
    app_id: Address,
    /// The OS image booted.
    #[arg(long)]
    os_image: B256,
    /// The instance's state directory.
    #[arg(long)]
    state_dir: PathBuf,
    /// The deployment file (`deployments/<chainId>.json`).
    #[arg(long)]
    deployment: PathBuf,
    /// An RPC node of the chain (KMS identity checks at its finalized block).
    #[arg(long)]
    rpc_url: String,
    /// Which block counts as final: `finalized` or a number of confirmations.
    #[arg(long, default_value = "finalized")]
    finality: Finality,
    /// A KMS node (`https://name:port`); repeat for failover, tried in order.
    #[arg(long = "kms-url", required = true)]
    kms_urls: Vec<String>,
    /// The KMS root signer the app trusts; by default the one registered on chain.
    #[arg(long)]
    key_provider: Option<Address>,
    /// The TEE.
    #[arg(long, value_enum)]
    tee: Tee,
    /// The simulated TEE's device id.
    #[arg(long)]
    device_id: Option<B256>,
    /// The confidential GPU whose evidence the boot binds and announces (`gpu-evidence`);
    /// required when the compose sets `flags.gpu`.
    #[arg(long, value_enum)]
    gpu: Option<Gpu>,
    /// The simulated GPU's device seed (its device key derives from it).
    #[arg(long)]
    gpu_device_id: Option<B256>,
    /// Where configfs-tsm is mounted.
    #[arg(long, default_value = covenant_tee::configfs::DEFAULT_ROOT)]
    tsm_root: PathBuf,
    /// The kernel's RTMR3 extension interface (TDX).
    #[arg(long, default_value = covenant_tee::rtmr::DEFAULT_RTMR3)]
    rtmr3_path: PathBuf,
    /// Env secrets sealed to the app (`covenant_guest_api::env::EncryptedEnv` JSON); opened with
    /// the app's env key, every name must be in the compose's `allowed_envs`.
    #[arg(long)]
    env_secrets: Option<PathBuf>,
    /// The oldest finalized block, in seconds, a KMS node may be judged at.
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
            eprintln!("covenant-guest: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Boot(args) => runtime.block_on(boot_command(args)),
        Command::Run(args) => runtime.block_on(run_command(args)),
        Command::ComposeHash { compose } => compose_hash_command(&compose),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("covenant-guest: {e}");
            ExitCode::FAILURE
        }
    }
}

fn tee(args: &BootArgs) -> Result<Box<dyn EvidenceProducer>, String> {
    let tsm = || covenant_tee::configfs::ConfigfsTsm::new(&args.tsm_root);
    Ok(match args.tee {
        Tee::Simulated => {
            let device = args.device_id.ok_or("--tee simulated needs --device-id")?;
            tracing::warn!(
                "simulated TEE: development only, its signing root is public and proves nothing \
                 where the chain does not allow simulated TEEs"
            );
            let (mrtd, rtmr) = covenant_tee::simulated_os_registers(args.os_image.0);
            Box::new(covenant_tee::Simulated::new(
                covenant_attest::simulator::SimulatedTee::new(
                    SimulatorRootKey::development(),
                    DeviceId::new(device.0),
                    mrtd,
                    rtmr,
                ),
            ))
        }
        Tee::Tdx => Box::new(covenant_tee::Tdx::new(
            tsm(),
            covenant_tee::rtmr::Rtmr3::new(&args.rtmr3_path),
        )),
        Tee::SevSnp => Box::new(covenant_tee::Snp::new(tsm())),
    })
}

fn gpu(args: &BootArgs) -> Result<Option<Box<dyn GpuProducer>>, String> {
    match args.gpu {
        None => Ok(None),
        Some(Gpu::Simulated) if args.tee != Tee::Simulated => {
            Err("--gpu simulated goes with --tee simulated only".into())
        }
        Some(Gpu::Simulated) => {
            let device = args
                .gpu_device_id
                .ok_or("--gpu simulated needs --gpu-device-id")?;
            tracing::warn!(
                "simulated GPU: development only, its device root is public and proves nothing \
                 where the chain does not allow simulated TEEs"
            );
            let gpu = covenant_attest::simulated_gpu::SimulatedGpu::development(&device.0)
                .map_err(|e| format!("simulated GPU: {e}"))?;
            Ok(Some(Box::new(gpu)))
        }
    }
}

/// The boot: measured, the app's keys from a KMS node the chain allows, and the env secrets.
async fn booted(args: &BootArgs) -> Result<Booted, String> {
    let gpu = gpu(args)?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let deployment = Deployment::read(&args.deployment).map_err(|e| e.to_string())?;
    let registry = deployment.contracts.kms_registry;
    let policy = boot::kms_verifier_policy();
    let timeout = Duration::from_secs(20);
    let checker = KmsIdentityChecker::connect(
        &args.rpc_url,
        deployment.chain_id,
        registry,
        args.finality,
        Duration::from_secs(args.max_finalized_age_secs),
        timeout,
        policy.clone(),
        covenant_attest::Collateral::default(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let provider = rustls::crypto::ring::default_provider();
    let access = KmsAccess {
        urls: args.kms_urls.clone(),
        checker,
        verifier: Arc::new(covenant_attest::ratls::RaTlsVerifier::new(
            policy,
            covenant_attest::Collateral::default(),
            &provider,
        )),
        timeout,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let key_provider = match args.key_provider {
        Some(k) => k,
        None => boot::registered_root_signer(&access, now)
            .await
            .map_err(|e| e.to_string())?,
    };
    let compose = std::fs::read(&args.compose)
        .map_err(|e| format!("reading {}: {e}", args.compose.display()))?;
    let launch = Launch {
        compose,
        app_id: args.app_id,
        os_image: args.os_image,
        state_dir: args.state_dir.clone(),
        chain_id: deployment.chain_id,
        registry,
    };
    let measured = boot::measure(launch, key_provider, tee(args)?, gpu.as_deref())
        .map_err(|e| e.to_string())?;
    let keys = boot::request_keys(&measured, &access, now)
        .await
        .map_err(|e| e.to_string())?;
    let env = match &args.env_secrets {
        None => Default::default(),
        Some(path) => {
            let text =
                std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
            let sealed: covenant_guest_api::env::EncryptedEnv = serde_json::from_slice(&text)
                .map_err(|e| format!("env secrets {}: {e}", path.display()))?;
            covenant_guest_api::env::open(
                &sealed,
                &keys.env_secret,
                measured.launch.app_id,
                keys.response.keys.key_generation,
                &measured.compose.allowed_envs,
            )
            .map_err(|e| format!("env secrets: {e}"))?
        }
    };
    // A variable a container lists must be there: a host that strips one (an admin token, a
    // password) must not get the app started without it.
    for container in &measured.compose.containers {
        if let Some(missing) = container.env.iter().find(|name| !env.contains_key(*name)) {
            return Err(format!(
                "env secrets: container {:?} needs {missing}, which the env secrets do not provide",
                container.name
            ));
        }
    }
    Ok(Booted {
        measured,
        keys,
        env,
    })
}

struct Booted {
    measured: boot::Measured,
    keys: boot::AppKeys,
    env: std::collections::BTreeMap<String, zeroize::Zeroizing<String>>,
}

// The hash is the command's output.
#[allow(clippy::print_stdout)]
fn compose_hash_command(path: &std::path::Path) -> Result<(), String> {
    let document = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let (_, hash) = covenant_attest::compose::compose_hash(&document)
        .map_err(|e| format!("{}: not a valid app-compose document: {e}", path.display()))?;
    println!("{hash}");
    Ok(())
}

// The printed identity is the command's output (no secret in it).
#[allow(clippy::print_stdout)]
async fn boot_command(args: BootArgs) -> Result<(), String> {
    let Booted {
        measured,
        keys,
        env,
    } = booted(&args).await?;
    let r = &keys.response;
    let out = json!({
        "appId": r.keys.app_id,
        "instanceId": measured.instance_id.0.to_string(),
        "firstBoot": measured.instance_id.1 == covenant_guest::instance::Origin::Created,
        "composeHash": measured.compose_hash.to_string(),
        "keyGeneration": r.keys.key_generation,
        "appKey": keys.signer.address(),
        "rootSigner": keys.standing.root_signer,
        "kmsNode": keys.standing.node,
        "kmsUrl": keys.node,
        "auditSeq": r.audit_seq,
        "block": r.block.number,
        "platform": measured.tee.platform(),
        "gpuEvidenceHash": measured.boot.gpu.as_ref().map(|g| g.hash().to_string()),
        "envVariables": env.keys().collect::<Vec<_>>(),
    });
    println!("{out}");
    Ok(())
}

async fn run_command(args: RunArgs) -> Result<(), String> {
    let simulated = args.boot.tee == Tee::Simulated;
    let runtime = args.runtime.unwrap_or(if simulated {
        Runtime::Processes
    } else {
        Runtime::Docker
    });
    // Fail closed rather than run an app without isolation or with its data in the clear.
    if !simulated && runtime == Runtime::Processes {
        return Err(
            "--runtime processes is for the simulated TEE only: no container \
                    isolation"
                .into(),
        );
    }
    if !simulated && args.data_device.is_none() {
        return Err("a real TEE keeps the instance's data on a LUKS2 volume: --data-device".into());
    }
    let Booted {
        measured,
        keys,
        env,
    } = booted(&args.boot).await?;
    let state_dir = args.boot.state_dir.clone();
    // Only the real-VM paths keep anything there (the simulated ones are development only).
    let run_dir = if runtime == Runtime::Docker || args.data_device.is_some() {
        private_dir(&args.run_dir)?
    } else {
        args.run_dir.clone()
    };
    let data_dir = match args.data_device {
        Some(_) => private_dir(&run_dir.join("data"))?,
        None => state_dir.join("data"),
    };
    let workload = match runtime {
        Runtime::Processes => Workload::Processes(
            covenant_guest::workload::services(&measured.compose, &env)
                .map_err(|e| e.to_string())?,
        ),
        Runtime::Docker => Workload::Docker(
            covenant_guest::docker::Project::new(
                &measured.compose,
                &env,
                &args.socket,
                &data_dir,
                &run_dir,
            )
            .map_err(|e| format!("writing the compose project: {e}"))?,
        ),
    };
    drop(env);
    let volume_key = covenant_guest::volume::volume_key(
        &keys.disk_key,
        measured.launch.app_id,
        measured.instance_id.0.as_bytes(),
    );
    let volume = match &args.data_device {
        Some(device) => {
            let open = covenant_guest::luks::open(device, &data_dir, &volume_key, &state_dir)
                .map_err(|e| e.to_string())?;
            tracing::info!(
                device = %device.display(),
                formatted = open.formatted,
                dir = %data_dir.display(),
                "data volume open (LUKS2)"
            );
            Volume::Luks(open)
        }
        None => {
            open_image(&state_dir, &data_dir, &volume_key)?;
            Volume::Image
        }
    };
    // The ingress and what registration needs, taken from the boot before the API owns it.
    let ingress = if args.gateway_urls.is_empty() {
        None
    } else {
        let tls = covenant_guest::gateway::ingress_tls(&measured.boot.identity)
            .map_err(|e| format!("ingress TLS: {e}"))?;
        let listener = tokio::net::TcpListener::bind(args.ingress_listen)
            .await
            .map_err(|e| format!("binding the ingress on {}: {e}", args.ingress_listen))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let identity = covenant_attest::ratls::RaTlsIdentity {
            certificate_der: measured.boot.identity.certificate_der.clone(),
            private_key_der: measured.boot.identity.private_key_der.clone(),
        };
        Some((listener, tls, addr, identity))
    };
    let chain_id = measured.launch.chain_id;
    let compose_document = measured.launch.compose.clone();
    let compose = measured.compose.clone();
    let guest = Arc::new(covenant_guest::api::Guest {
        instance_id: measured.instance_id.0.to_string(),
        compose_hash: measured.compose_hash.to_string(),
        kms: covenant_guest_api::api::KmsUsed {
            url: keys.node.clone(),
            node: keys.standing.node,
            root_signer: keys.standing.root_signer,
            checked_at_block: keys.standing.block.number,
            audit_seq: keys.response.audit_seq,
        },
        kms_client: covenant_kms_api::KmsClient::new(
            &[keys.node.as_str()],
            keys.tls.clone(),
            Duration::from_secs(20),
        )
        .map_err(|e| e.to_string())?,
        roots: keys.standing.roots.clone(),
        signer: keys.signer,
        tee: std::sync::Mutex::new(measured.tee),
        gpu: measured.boot.gpu,
    });
    let listener = covenant_guest::api::bind(&args.socket)
        .map_err(|e| format!("binding {}: {e}", args.socket.display()))?;
    let _socket = covenant_guest::api::SocketFile(args.socket.clone());
    // Installed before anything starts, so a stop signal always goes through the clean stop.
    let stop_signal = stop_signal().map_err(|e| format!("installing signal handlers: {e}"))?;
    tracing::info!(socket = %args.socket.display(), "guest api listening");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let workload = tokio::spawn({
        let socket = args.socket.clone();
        let data_dir = data_dir.clone();
        let stopped = stopped.clone();
        async move {
            match workload {
                Workload::Processes(services) => {
                    covenant_guest::workload::supervise(services, &socket, &data_dir, stopped)
                        .await;
                    Ok(())
                }
                Workload::Docker(project) => project.run(stopped).await,
            }
        }
    });
    let mut gateway_tasks = tokio::task::JoinSet::new();
    if let Some((listener, tls, addr, identity)) = ingress {
        tracing::info!(%addr, "ingress listening");
        gateway_tasks.spawn(covenant_guest::gateway::serve_ingress(
            listener,
            tls,
            compose,
            args.workload_address,
            stopped.clone(),
        ));
        let identity = Arc::new(identity);
        let document = Arc::new(compose_document);
        for url in args.gateway_urls.clone() {
            let (identity, document, mut stopped) =
                (identity.clone(), document.clone(), stopped.clone());
            gateway_tasks.spawn(async move {
                loop {
                    match covenant_guest::gateway::register(
                        &url, &identity, chain_id, &document, addr,
                    )
                    .await
                    {
                        Ok(answer) => {
                            tracing::info!(gateway = %url, hosts = %answer["hosts"], block = %answer["block"], "registered with the gateway");
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(gateway = %url, error = %e, "gateway registration failed; retrying");
                        }
                    }
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(2)) => {}
                        _ = stopped.wait_for(|s| *s) => return,
                    }
                }
            });
        }
    }
    let mut api_stopped = stopped.clone();
    let api = axum::serve(listener, covenant_guest::api::router(guest)).with_graceful_shutdown(
        async move {
            let _ = api_stopped.wait_for(|s| *s).await;
        },
    );
    let api = tokio::spawn(async move { api.await });
    stop_signal.await;
    tracing::info!("stopping");
    let _ = stop.send(true);
    let stopped_workload = workload.await.map_err(|e| e.to_string()).and_then(|r| r);
    while gateway_tasks.join_next().await.is_some() {}
    if let Err(e) = &stopped_workload {
        tracing::error!(error = %e, "the workload did not stop cleanly");
    }
    match volume {
        Volume::Luks(open) => {
            open.close().map_err(|e| e.to_string())?;
            tracing::info!("data volume closed (LUKS2)");
        }
        Volume::Image => {
            let files = covenant_guest::volume::seal(&state_dir, &data_dir, &volume_key)
                .map_err(|e| e.to_string())?;
            std::fs::remove_dir_all(&data_dir)
                .map_err(|e| format!("{}: {e}", data_dir.display()))?;
            tracing::info!(files, "data volume sealed");
        }
    }
    match api.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e.to_string()),
        Err(e) => return Err(e.to_string()),
    }
    stopped_workload?;
    tracing::info!("guest stopped");
    Ok(())
}

/// `dir`, made if missing with mode 0700, and refused if it is a symlink or not a directory:
/// what the guest keeps there must not be redirected.
fn private_dir(dir: &std::path::Path) -> Result<PathBuf, String> {
    use std::os::unix::fs::DirBuilderExt;
    let fail = |e: std::io::Error| format!("{}: {e}", dir.display());
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_dir() => {}
        Ok(_) => return Err(format!("{} is not a directory", dir.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(fail)?,
        Err(e) => return Err(fail(e)),
    }
    Ok(dir.to_owned())
}

enum Workload {
    Processes(Vec<covenant_guest::workload::Service>),
    Docker(covenant_guest::docker::Project),
}

enum Volume {
    /// The simulated TEE's encrypted directory image, open in `<state>/data`.
    Image,
    /// A LUKS2 device, mounted on `<state>/data`.
    Luks(covenant_guest::luks::OpenVolume),
}

/// Opens the simulated TEE's directory image into `data_dir`, first sealing a plaintext
/// directory an unclean stop left behind.
fn open_image(
    state_dir: &std::path::Path,
    data_dir: &std::path::Path,
    volume_key: &zeroize::Zeroizing<[u8; 32]>,
) -> Result<(), String> {
    if data_dir.exists() {
        // Left by a stop that did not seal (a crash, or a failed seal): it holds the newest data,
        // so it is sealed now rather than discarded; if it cannot be, the boot stops and the
        // directory stays.
        tracing::warn!(
            dir = %data_dir.display(),
            "a data directory left by an unclean stop: sealing it before the volume is opened"
        );
        covenant_guest::volume::seal(state_dir, data_dir, volume_key)
            .map_err(|e| format!("sealing the data left by an unclean stop: {e}"))?;
        std::fs::remove_dir_all(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    }
    std::fs::create_dir_all(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    match covenant_guest::volume::open(state_dir, data_dir, volume_key) {
        Ok(files) => {
            tracing::info!(files, dir = %data_dir.display(), "data volume open");
            Ok(())
        }
        Err(e) => {
            // Nothing of it stays behind: a leftover directory would be sealed over the image at
            // the next boot.
            let _ = std::fs::remove_dir_all(data_dir);
            Err(e.to_string())
        }
    }
}

/// A future that resolves on SIGTERM or SIGINT, with the handlers installed now.
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
