//! `covenant devnet up`: brings the whole stack up on this machine and keeps it up until Ctrl-C,
//! SIGTERM or `covenant devnet down`, then stops all of it.
//!
//! The first run (or `--fresh`) makes a new devnet: anvil (chain 31337, the public test
//! mnemonic; account 0 deploys, holds the votes and is the guardian), PostgreSQL, the contracts
//! with devnet governance timings, the indexer, a simulated-TEE kms-oracle (`init --bootstrap`),
//! the gateway app and the demo app (created with the Timelock as owner and no version), then one
//! governance proposal — voted through the Governor and Timelock with anvil's clock moved past
//! each wait — that registers the KMS node, names the gateway app, and allows both apps' compose
//! hashes. Then the kms-oracle serves, the gateway boots as the gateway app under a guest agent,
//! and the demo app boots under its own guest, registers with the gateway, and is served at
//! `https://<app id>.localhost:<gateway port>/`. A later run without `--fresh` brings back the
//! same devnet from its directory: the chain, the databases, the KMS node's sealed state, the
//! apps.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use alloy::{
    network::{EthereumWallet, TransactionBuilder},
    primitives::{Address, B256, Bytes, U256},
    providers::{Provider, ProviderBuilder},
    rpc::types::TransactionRequest,
    signers::local::PrivateKeySigner,
    sol_types::SolCall,
};
use covenant_chain::{
    app::App,
    kms_registry::{IApp, KmsRegistry},
    token::CovenantToken,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::{
    process::Command,
    signal::unix::{Signal as UnixSignal, SignalKind, signal},
};

use super::{
    UpArgs,
    governance::{self, Proposal},
    process::{self, Service, Signal, output, run_step},
    state::{DevApp, Layout, Ports, Saved},
};
use crate::{
    Global,
    context::{Call, Chain, Indexer, Sender, send},
    error::{Context as _, Failure},
    report::Report,
};

/// The chain id of every devnet.
pub(crate) const CHAIN_ID: u64 = 31337;
/// Account 0 of the public test mnemonic: a well-known key, for the devnet only.
pub(crate) const DEPLOYER_KEY: &str =
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const MNEMONIC: &str = "test test test test test test test test test test test junk";
/// How long a service gets to become ready.
const READY: Duration = Duration::from_secs(90);

/// Announces a step for people (standard error, so standard output stays the answer): a
/// spinner on a terminal, a `==>` line elsewhere.
pub(crate) fn say(what: impl std::fmt::Display) {
    crate::progress::step(what);
}

/// A devnet id: 32 bytes named by a phrase (`sha256(phrase)`).
fn named(phrase: &str) -> B256 {
    B256::from(<[u8; 32]>::from(Sha256::digest(phrase.as_bytes())))
}

/// The services, in start order; stopped in reverse.
pub(crate) struct Stack {
    layout: Layout,
    services: Vec<Service>,
}

impl Stack {
    pub(crate) fn new(layout: Layout) -> Self {
        Self {
            layout,
            services: Vec::new(),
        }
    }

    /// Records a started service (its pid in the directory's `pids` file); it is stopped with
    /// the rest whatever happens next.
    pub(crate) fn add(&mut self, service: Service) -> Result<&mut Service, Failure> {
        use std::io::Write as _;
        let line = format!("{} {}\n", service.name, service.pid);
        let index = self.services.len();
        self.services.push(service);
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.layout.path("pids"))
            .and_then(|mut pids| pids.write_all(line.as_bytes()))
            .doing("writing the pids file")?;
        Ok(&mut self.services[index])
    }

    /// Resolves when the first service exits, naming it.
    pub(crate) async fn first_exit(&mut self) -> Failure {
        loop {
            for s in &mut self.services {
                if !s.alive() {
                    return s.exited().await;
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Stops every service, last started first, each on its own.
    pub(crate) async fn stop(&mut self) {
        while let Some(mut s) = self.services.pop() {
            s.stop().await;
        }
    }
}

/// Moves anvil's clock so that the next block is later than the latest one.
async fn keep_time(rpc_url: &url::Url) -> Result<(), Failure> {
    let provider = ProviderBuilder::new().connect_http(rpc_url.clone());
    let latest = provider
        .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
        .await
        .doing("reading anvil's latest block")?
        .ok_or_else(|| Failure::new("anvil has no latest block"))?
        .header
        .timestamp;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if latest >= now {
        provider
            .raw_request::<_, Value>("evm_increaseTime".into(), (latest - now + 1,))
            .await
            .doing("moving anvil's clock past its latest block")?;
    }
    Ok(())
}

/// Where the repository is: the nearest ancestor of this program (or of the working directory)
/// holding `foundry.toml`.
pub(crate) fn repo_root() -> Result<PathBuf, Failure> {
    let exe = std::env::current_exe().doing("finding this program")?;
    let cwd = std::env::current_dir().doing("reading the working directory")?;
    exe.ancestors()
        .chain(cwd.ancestors())
        .find(|d| d.join("foundry.toml").is_file())
        .map(Path::to_owned)
        .ok_or_else(|| {
            Failure::new("the devnet runs from a Covenant checkout: no foundry.toml above here")
                .next("run it from the repository (scripts/devnet)")
        })
}

/// A binary built next to this one (`target/<profile>/<name>`).
pub(crate) fn sibling(name: &str) -> Result<PathBuf, Failure> {
    let exe = std::env::current_exe().doing("finding this program")?;
    let path = exe.with_file_name(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Failure::new(format!("{} is missing", path.display())).next("run scripts/setup"))
    }
}

fn tool(root: &Path, name: &str) -> Result<PathBuf, Failure> {
    let path = root.join("node_modules/.bin").join(name);
    if path.exists() {
        Ok(path)
    } else {
        Err(Failure::new(format!("{} is missing", path.display())).next("run scripts/setup"))
    }
}

/// The newest installed PostgreSQL server binaries (Debian keeps them off PATH), or
/// `COVENANT_PG_BIN`.
fn pg_bin() -> Result<PathBuf, Failure> {
    if let Some(dir) = std::env::var_os("COVENANT_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop()
        .map(|(_, d)| d)
        .ok_or_else(|| Failure::new("PostgreSQL is not installed").next("run scripts/setup"))
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// `program` as a PostgreSQL server program: run as the postgres user when we are root (it
/// refuses root).
fn pg_command(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Whether something accepts connections on 127.0.0.1:`port`.
fn port_in_use(port: u16) -> bool {
    port != 0 && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// A port the system had free a moment ago.
fn free_port() -> Result<u16, Failure> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").doing("finding a free port")?;
    Ok(l.local_addr().doing("finding a free port")?.port())
}

/// The port in `line` after `marker` (`…addr=127.0.0.1:PORT`).
fn port_after(line: &str, marker: &str) -> Option<u16> {
    let rest = &line[line.find(marker)? + marker.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Refuses ports already taken, naming the variable to change.
fn check_ports(ports: &Ports, resumed: bool) -> Result<(), Failure> {
    let named = [
        (ports.rpc, "COVENANT_DEVNET_RPC_PORT"),
        (ports.postgres, "COVENANT_DEVNET_PG_PORT"),
        (ports.indexer, "COVENANT_DEVNET_INDEXER_PORT"),
        (ports.kms, "COVENANT_DEVNET_KMS_PORT"),
        (ports.app, "COVENANT_DEVNET_APP_PORT"),
        (ports.app_http, "COVENANT_DEVNET_APP_HTTP_PORT"),
        (ports.gateway, "COVENANT_DEVNET_GATEWAY_PORT"),
    ];
    for (port, variable) in named {
        if port_in_use(port) {
            let failure = Failure::new(format!("port {port} is in use (another devnet?)"));
            return Err(if resumed {
                failure.next(format!(
                    "this devnet was made with port {port} (its services' composes name it): \
                     free it, or start a new devnet with --fresh (set {variable} to choose \
                     another)"
                ))
            } else {
                failure.next(format!("set {variable} to another port (0: any free one)"))
            });
        }
    }
    if ports.app_http == 0 {
        return Err(Failure::new(
            "COVENANT_DEVNET_APP_HTTP_PORT must name a port: it is written into the demo app's \
             compose",
        ));
    }
    Ok(())
}

/// Runs `covenant devnet up`.
pub(crate) async fn run(args: UpArgs) -> Result<Report, Failure> {
    let root = repo_root()?;
    let layout = Layout::new(&args.dir.path)?;
    super::refuse_if_running(&layout)?;
    let previous = if args.fresh { None } else { layout.load()? };
    if previous.is_none() {
        if let Ok(Some(old)) = layout.load() {
            remove_pg_data(&old.pg_data, &layout);
        }
        layout.delete()?;
    }
    layout.create()?;
    let _ = std::fs::remove_file(layout.path("pids"));
    std::fs::write(layout.pid(), format!("{}\n", std::process::id()))
        .doing("writing the devnet's pid file")?;

    let mut interrupt = signal(SignalKind::interrupt()).doing("handling Ctrl-C")?;
    let mut terminate = signal(SignalKind::terminate()).doing("handling SIGTERM")?;
    let mut stack = Stack::new(layout.clone());
    let resumed = previous.is_some();
    let starting = async {
        start(&mut stack, &root, &layout, &args, previous)
            .await
            .map_err(|f| {
                if resumed {
                    f.or_next(
                        "a resumed devnet boots the versions it was made with: after `covenant \
                         devnet demo` revoked them, start a new one with `covenant devnet up \
                         --fresh`",
                    )
                } else {
                    f
                }
            })
    };
    let started = tokio::select! {
        r = starting => r,
        s = next_signal(&mut interrupt, &mut terminate) => Err(Failure::new(format!("{s} while starting: stopped"))),
    };
    let outcome = match started {
        Ok(ready) => {
            ready.announce(&layout);
            tokio::select! {
                f = stack.first_exit() => Err(Failure::new(format!("a service stopped unexpectedly: {}", f))),
                s = next_signal(&mut interrupt, &mut terminate) => Ok(s),
            }
        }
        Err(e) => Err(e),
    };
    say("stopping the devnet");
    stack.stop().await;
    let _ = std::fs::remove_file(layout.pid());
    say("devnet stopped");
    let stopped_by = outcome?;
    Ok(Report::new(
        format!(
            "devnet stopped ({stopped_by}); its state stays in {}",
            layout.dir.display()
        ),
        json!({ "stopped": true, "dir": layout.dir, "signal": stopped_by }),
    ))
}

async fn next_signal(interrupt: &mut UnixSignal, terminate: &mut UnixSignal) -> &'static str {
    tokio::select! {
        _ = interrupt.recv() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
    }
}

/// What a ready devnet serves, for the banner and the env file.
pub(crate) struct Ready {
    ports: Ports,
    saved: Saved,
    deployment: covenant_chain::Deployment,
    app_addr: String,
}

impl Ready {
    fn app_host(&self) -> String {
        app_host(self.saved.app.app)
    }

    fn gateway_app_url(&self) -> String {
        format!("https://{}:{}", self.app_host(), self.ports.gateway)
    }

    fn announce(&self, layout: &Layout) {
        let p = &self.ports;
        let c = &self.deployment.contracts;
        let dir = layout.dir.display();
        let rpc = format!("http://127.0.0.1:{}", p.rpc);
        let database = format!("postgres://postgres@127.0.0.1:{}/covenant", p.postgres);
        let env = [
            ("COVENANT_RPC_URL", rpc.clone()),
            ("COVENANT_WS_URL", format!("ws://127.0.0.1:{}", p.rpc)),
            ("COVENANT_CHAIN_ID", CHAIN_ID.to_string()),
            ("DATABASE_URL", database.clone()),
            (
                "COVENANT_DEPLOYMENT",
                layout.deployment().display().to_string(),
            ),
            (
                "COVENANT_INDEXER_URL",
                format!("http://127.0.0.1:{}", p.indexer),
            ),
            ("COVENANT_KMS_URL", format!("https://127.0.0.1:{}", p.kms)),
            ("COVENANT_KMS_NODE", self.saved.kms_node.to_checksum(None)),
            ("COVENANT_APP_ID", self.saved.app.app.to_checksum(None)),
            ("COVENANT_APP_URL", format!("https://{}", self.app_addr)),
            (
                "COVENANT_GUEST_SOCKET",
                layout.path("app/guest.sock").display().to_string(),
            ),
            (
                "COVENANT_GATEWAY_APP_ID",
                self.saved.gateway.app.to_checksum(None),
            ),
            ("COVENANT_GATEWAY_PORT", p.gateway.to_string()),
            (
                "COVENANT_GATEWAY_API_URL",
                format!("https://127.0.0.1:{}", p.gateway_api),
            ),
            (
                "COVENANT_GATEWAY_CA",
                layout.path("gateway/dev-ca.pem").display().to_string(),
            ),
            ("COVENANT_APP_GATEWAY_URL", self.gateway_app_url()),
            ("COVENANT_KMS_REGISTRY", c.kms_registry.to_checksum(None)),
            (
                "COVENANT_DOMAIN_REGISTRY",
                c.domain_registry.to_checksum(None),
            ),
            ("COVENANT_GOVERNOR", c.covenant_governor.to_checksum(None)),
            ("COVENANT_TIMELOCK", c.timelock_controller.to_checksum(None)),
            ("COVENANT_DEVNET_DIR", layout.dir.display().to_string()),
        ];
        let mut text: String = env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        text.push_str(
            "# anvil account 0 of the public test mnemonic: a well-known key, for this devnet only.\n",
        );
        text.push_str(&format!("COVENANT_DEPLOYER_KEY={DEPLOYER_KEY}\n"));
        if let Err(e) = std::fs::write(layout.env(), text) {
            say(format!("could not write {}: {e}", layout.env().display()));
        }
        let app = &self.saved.app;
        let gateway_url = self.gateway_app_url();
        let banner = format!(
            "
  Covenant devnet ({dir})
  ---------------
  JSON-RPC    {rpc}   (ws://127.0.0.1:{rpc_port}), chain id {CHAIN_ID}
  PostgreSQL  {database}
  Indexer     http://127.0.0.1:{indexer}  (API: /openapi.json, feed: /v1/feed, /metrics)
  Explorer    http://127.0.0.1:{indexer}/  (proposals decoded, apps' versions, KMS grant log)
  KMS         https://127.0.0.1:{kms}  (RA-TLS; /v1/metadata, /healthz, /metrics), node {node}
  Demo app    {gateway_url}/  (app {app_id}, compose hash {compose})
              booted by the guest agent in a simulated TEE, served through the gateway app
              {gateway_app} with a development CA ({dir}/gateway/dev-ca.pem)
  Contracts   KmsRegistry {registry}, Governor {governor}; all in {dir}/deployment.json
  Deployer    anvil account 0 of the test mnemonic (in {dir}/env); it holds the votes
  Logs        {dir}/*.log

  Try         set -a; source {dir}/env; set +a
              covenant verify {gateway_url}/
              covenant app status {app_id}
              covenant gov status
              covenant kms info
              curl --cacert {dir}/gateway/dev-ca.pem {gateway_url}/
              curl http://127.0.0.1:{indexer}/v1/apps/{app_id}
              covenant devnet demo     (an upgrade, an eviction and a revocation, voted)
  Stop        Ctrl-C, or covenant devnet down
",
            rpc_port = p.rpc,
            indexer = p.indexer,
            kms = p.kms,
            node = self.saved.kms_node,
            app_id = app.app,
            compose = app.compose_hash,
            gateway_app = self.saved.gateway.app,
            registry = c.kms_registry,
            governor = c.covenant_governor,
        );
        crate::progress::done();
        #[allow(clippy::print_stderr, clippy::print_stdout)] // what the devnet tells people
        {
            eprintln!("{banner}");
            println!("devnet ready: env in {}", layout.env().display());
        }
    }
}

/// The options the devnet's own commands run with: its endpoints and deployment, signed by the
/// deployer (a well-known key, for the devnet only).
pub(crate) fn deployer_global(
    layout: &Layout,
    rpc_url: &str,
    indexer_url: &str,
) -> Result<Global, Failure> {
    Ok(Global {
        rpc_url: rpc_url.parse().doing("the RPC URL")?,
        indexer_url: indexer_url.parse().doing("the indexer URL")?,
        deployment: Some(layout.deployment()),
        json: false,
        keystore: None,
        unsigned: false,
        signer: Some(DEPLOYER_KEY.parse().doing("the deployer key")?),
    })
}

/// `<app id, lower-case hex without 0x>.localhost`: the app's name under the devnet's base domain.
pub(crate) fn app_host(app: Address) -> String {
    format!("{}.localhost", hex::encode(app.as_slice()))
}

fn remove_pg_data(dir: &Path, layout: &Layout) {
    // Inside the devnet's directory it goes with it; elsewhere (a directory the postgres user
    // could reach) only the one this devnet made.
    if !dir.starts_with(&layout.dir)
        && dir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("covenant-devnet-pg-"))
    {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Brings the stack up; on return every service runs and the demo app answers through the
/// gateway.
async fn start(
    stack: &mut Stack,
    root: &Path,
    layout: &Layout,
    args: &UpArgs,
    previous: Option<Saved>,
) -> Result<Ready, Failure> {
    let resumed = previous.is_some();
    let mut ports = match &previous {
        Some(saved) => saved.ports,
        None => Ports {
            rpc: args.rpc_port,
            postgres: args.pg_port,
            indexer: args.indexer_port,
            kms: args.kms_port,
            gateway: args.gateway_port,
            gateway_api: 0,
            app: args.app_port,
            app_http: args.app_http_port,
        },
    };
    check_ports(&ports, resumed)?;
    // The gateway's registration API: chosen now, because the indexer (started first) shows
    // what it routes; it is written into the gateway's compose.
    if ports.gateway_api == 0 {
        ports.gateway_api = free_port()?;
    }
    let block_time: f64 = args
        .block_time
        .parse()
        .ok()
        .filter(|t: &f64| *t > 0.0)
        .ok_or_else(|| {
            Failure::new(format!(
                "block time `{}` is not a positive number of seconds",
                args.block_time
            ))
        })?;
    let bins = Binaries::find(root)?;
    if resumed {
        say(format!(
            "resuming the devnet in {} (--fresh starts a new one)",
            layout.dir.display()
        ));
    }

    // --- anvil ---------------------------------------------------------------------------
    say(format!(
        "starting anvil (chain {CHAIN_ID}, {block_time} s blocks)"
    ));
    let mut anvil = Command::new(&bins.anvil);
    anvil
        .args(["--host", "127.0.0.1", "--chain-id", &CHAIN_ID.to_string()])
        .args(["--port", &ports.rpc.to_string()])
        .args(["--block-time", &args.block_time, "--mnemonic", MNEMONIC])
        // The chain is kept across runs: loaded at start, dumped on exit and every 30 s.
        .arg("--state")
        .arg(layout.path("anvil-state.json"))
        .args(["--state-interval", "30"]);
    let anvil = stack.add(Service::spawn(
        "anvil",
        anvil,
        &layout.path("anvil.log"),
        Signal::SIGTERM,
        Duration::from_secs(10),
    )?)?;
    ports.rpc = anvil
        .wait_for_log("its address", READY, |l| {
            port_after(l, "Listening on 127.0.0.1:")
        })
        .await?;
    let rpc_url: url::Url = format!("http://127.0.0.1:{}", ports.rpc)
        .parse()
        .doing("the RPC URL")?;
    {
        let provider = ProviderBuilder::new().connect_http(rpc_url.clone());
        anvil
            .wait_until("anvil answering", READY, || {
                let provider = provider.clone();
                async move {
                    provider
                        .get_chain_id()
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }
            })
            .await?;
    }
    say(format!("anvil on {rpc_url}"));
    if resumed {
        // anvil keeps its blocks across a restart but not how far its clock was moved (votes and
        // notice periods skipped): new blocks would be older than the last one. Move the clock
        // back past it.
        keep_time(&rpc_url).await?;
    }

    // --- PostgreSQL ------------------------------------------------------------------------
    let pg_bin = pg_bin()?;
    let pg_data = match &previous {
        Some(saved) => saved.pg_data.clone(),
        None => init_postgres(&pg_bin, layout).await?,
    };
    ports.postgres = start_postgres(stack, &pg_bin, &pg_data, layout, ports.postgres).await?;
    let database_url = |db: &str| format!("postgres://postgres@127.0.0.1:{}/{db}", ports.postgres);
    if !resumed {
        for db in ["covenant", "covenant_kms", "covenant_gateway"] {
            let mut psql = Command::new(pg_bin.join("psql"));
            psql.args([
                "-X",
                "-q",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .args([
                "-p",
                &ports.postgres.to_string(),
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
            ])
            .arg(format!("CREATE DATABASE {db}"));
            run_step(
                psql,
                &layout.path("postgres-setup.log"),
                &format!("creating the {db} database"),
            )
            .await?;
        }
    }

    // --- contracts -------------------------------------------------------------------------
    if !resumed {
        say("deploying the contracts");
        deploy(root, &bins.forge, layout, &rpc_url).await?;
    }
    let deployment = covenant_chain::Deployment::read(&layout.deployment())
        .doing("reading the devnet's deployment")?;
    if layout.dir == root.join(".devnet") {
        // Where the services and the CLI look by default.
        std::fs::copy(
            layout.deployment(),
            root.join(format!("deployments/{CHAIN_ID}.json")),
        )
        .doing("copying the deployment to deployments/")?;
    }

    // --- indexer ---------------------------------------------------------------------------
    say(format!(
        "starting the indexer ({} confirmations)",
        args.finality
    ));
    let mut indexer = Command::new(&bins.indexer);
    indexer
        .arg("--deployment")
        .arg(layout.deployment())
        .args(["--rpc-url", rpc_url.as_str()])
        .args(["--ws-url", &format!("ws://127.0.0.1:{}", ports.rpc)])
        .args(["--database-url", &database_url("covenant")])
        .args(["--listen", &format!("127.0.0.1:{}", ports.indexer)])
        .args([
            "--gateway-api-url",
            &format!("https://127.0.0.1:{}", ports.gateway_api),
        ])
        .args([
            "--finality",
            &args.finality.to_string(),
            "--progress",
            "never",
        ]);
    let indexer = stack.add(Service::spawn(
        "indexer",
        indexer,
        &layout.path("indexer.log"),
        Signal::SIGTERM,
        Duration::from_secs(5),
    )?)?;
    ports.indexer = indexer
        .wait_for_log("its address", READY, |l| {
            l.contains("api listening")
                .then(|| port_after(l, "addr=127.0.0.1:"))
                .flatten()
        })
        .await?;
    let indexer_url = format!("http://127.0.0.1:{}", ports.indexer);
    let http = reqwest::Client::new();
    indexer
        .wait_until("the indexer healthy", READY, || {
            let request = http.get(format!("{indexer_url}/healthz"));
            async move { ok_status(request.send().await) }
        })
        .await?;
    say(format!("indexer on {indexer_url}"));

    let global = deployer_global(layout, rpc_url.as_str(), &indexer_url)?;
    let chain = Chain::connect(&global).await?;
    let sender = Sender::from(&global)?;

    // --- kms-oracle bootstrap and governance ---------------------------------------------
    let os_image = named("covenant devnet simulated os image");
    let kms_device = named("covenant devnet kms device");
    let kms_args = |command: &mut Command| {
        command
            .arg("--deployment")
            .arg(layout.deployment())
            .args(["--rpc-url", rpc_url.as_str()])
            .args(["--mirror-database-url", &database_url("covenant")])
            .args(["--database-url", &database_url("covenant_kms")])
            .arg("--state-dir")
            .arg(layout.path("kms"))
            .args(["--tee", "simulated"])
            .args(["--device-id", &kms_device.to_string()])
            .args(["--os-image", &os_image.to_string()]);
    };
    let saved = match previous {
        Some(saved) => saved,
        None => {
            say(
                "bootstrapping the kms-oracle (simulated TEE) and registering it through governance",
            );
            let mut init = Command::new(&bins.kms);
            init.args(["init", "--bootstrap"]);
            kms_args(&mut init);
            let report = output(init, &layout.path("kms-init.log"), "kms-oracle init").await?;
            std::fs::write(layout.path("kms-init.json"), &report)
                .doing("saving the kms-oracle's init report")?;
            let report: Value =
                serde_json::from_str(&report).doing("the kms-oracle's init report")?;
            let gateway = gateway_compose(
                layout,
                &bins,
                &rpc_url,
                &database_url,
                &ports,
                args.finality,
                &deployment,
            )?;
            let app = app_compose(
                layout,
                &bins,
                &ports,
                &deployment,
                ("hello", "app", std::net::Ipv4Addr::LOCALHOST),
            )?;
            let saved = register(
                &chain,
                &Indexer::new(&global),
                &sender,
                root,
                &report,
                os_image,
                kms_device,
                gateway,
                app,
                ports,
                pg_data.clone(),
                args.finality,
            )
            .await?;
            layout.store(&saved)?;
            saved
        }
    };

    // --- kms-oracle --------------------------------------------------------------------------
    say("starting the kms-oracle");
    let mut kms = Command::new(&bins.kms);
    kms.arg("run");
    kms_args(&mut kms);
    kms.args(["--listen", &format!("127.0.0.1:{}", ports.kms)])
        .args([
            "--max-finalized-age-secs",
            "60",
            "--finality",
            &args.finality.to_string(),
        ]);
    let kms = stack.add(Service::spawn(
        "kms",
        kms,
        &layout.path("kms.log"),
        Signal::SIGTERM,
        Duration::from_secs(5),
    )?)?;
    ports.kms = kms
        .wait_for_log("its address", READY, |l| {
            l.contains("kms listening")
                .then(|| port_after(l, "addr=127.0.0.1:"))
                .flatten()
        })
        .await?;
    let probe = std::sync::Arc::new(crate::https::any_certificate()?);
    let kms_port = ports.kms;
    kms.wait_until("the kms-oracle serving", READY, || {
        let probe = probe.clone();
        async move {
            let answer = crate::https::get("127.0.0.1", kms_port, probe, "/healthz")
                .await
                .map_err(|e| e.to_string())?;
            (answer.status == 200)
                .then_some(())
                .ok_or_else(|| String::from_utf8_lossy(&answer.body).into_owned())
        }
    })
    .await?;
    say(format!("kms-oracle on https://127.0.0.1:{}", ports.kms));
    let kms_url = format!("https://127.0.0.1:{}", ports.kms);

    // --- the gateway, as the gateway app in a simulated TEE -----------------------------
    say("booting the gateway app under the guest agent (simulated TEE)");
    let gateway = stack.add(boot(
        &bins,
        layout,
        &rpc_url,
        &kms_url,
        args.finality,
        &saved.gateway,
        os_image,
        "gateway",
        None,
    )?)?;
    ports.gateway_api = gateway
        .wait_for_log("its registration API", READY, |l| {
            l.contains("gateway api listening")
                .then(|| port_after(l, "addr=127.0.0.1:"))
                .flatten()
        })
        .await?;
    ports.gateway = gateway
        .wait_for_log("its public address", READY, |l| {
            l.contains("gateway public listening")
                .then(|| port_after(l, "addr=127.0.0.1:"))
                .flatten()
        })
        .await?;
    say(format!("gateway on https://*.localhost:{}", ports.gateway));

    // --- the demo app in a simulated TEE -------------------------------------------------
    say("booting the demo app under the guest agent (simulated TEE)");
    let gateway_api = format!("https://localhost:{}", ports.gateway_api);
    let _ = std::fs::remove_file(layout.path("app/app.addr"));
    let guest = stack.add(boot(
        &bins,
        layout,
        &rpc_url,
        &kms_url,
        args.finality,
        &saved.app,
        os_image,
        "app",
        Some(&gateway_api),
    )?)?;
    let addr_file = layout.path("app/app.addr");
    guest
        .wait_until("the demo app serving", READY, || {
            let addr_file = addr_file.clone();
            async move {
                std::fs::read_to_string(&addr_file)
                    .ok()
                    .filter(|a| !a.trim().is_empty())
                    .map(|_| ())
                    .ok_or_else(|| "no address yet".to_owned())
            }
        })
        .await?;
    let app_addr = std::fs::read_to_string(&addr_file)
        .doing("reading the app's address")?
        .trim()
        .to_owned();
    let ca = layout.path("gateway/dev-ca.pem");
    let host = app_host(saved.app.app);
    let gateway_port = ports.gateway;
    guest
        .wait_until("the demo app served through the gateway", READY, || {
            let (ca, host) = (ca.clone(), host.clone());
            async move { served(&host, gateway_port, &ca).await.map(|_| ()) }
        })
        .await?;
    say(format!(
        "demo app through the gateway on https://{host}:{}",
        ports.gateway
    ));
    let saved = Saved { ports, ..saved };
    layout.store(&saved)?;
    Ok(Ready {
        ports,
        saved,
        deployment,
        app_addr,
    })
}

/// `GET /` of `host` through the gateway on `port`, trusting only the devnet's CA; the body.
pub(crate) async fn served(host: &str, port: u16, ca: &Path) -> Result<String, String> {
    let config = std::sync::Arc::new(crate::https::trusting(ca).map_err(|e| e.to_string())?);
    let answer = crate::https::get(host, port, config, "/")
        .await
        .map_err(|e| e.to_string())?;
    if answer.status != 200 {
        return Err(format!("status {}", answer.status));
    }
    Ok(String::from_utf8_lossy(&answer.body).into_owned())
}

fn ok_status(r: Result<reqwest::Response, reqwest::Error>) -> Result<(), String> {
    match r {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("status {}", r.status())),
        Err(e) => Err(e.to_string()),
    }
}

/// The programs the devnet runs.
pub(crate) struct Binaries {
    anvil: PathBuf,
    forge: PathBuf,
    indexer: PathBuf,
    kms: PathBuf,
    pub(crate) guest: PathBuf,
    gateway: PathBuf,
    pub(crate) app: PathBuf,
}

impl Binaries {
    pub(crate) fn find(root: &Path) -> Result<Self, Failure> {
        Ok(Self {
            anvil: tool(root, "anvil")?,
            forge: tool(root, "forge")?,
            indexer: sibling("covenant-indexer")?,
            kms: sibling("covenant-kms-oracle")?,
            guest: sibling("covenant-guest")?,
            gateway: sibling("covenant-gateway")?,
            app: sibling("covenant-example-app")?,
        })
    }
}

/// A new PostgreSQL data directory: in the devnet's directory when the postgres user can reach
/// it (we are root), else under /var/tmp, named after the devnet's directory.
async fn init_postgres(pg_bin: &Path, layout: &Layout) -> Result<PathBuf, Failure> {
    let mut data = layout.path("postgres");
    if is_root() {
        let postgres = nix::unistd::User::from_name("postgres")
            .ok()
            .flatten()
            .ok_or_else(|| Failure::new("there is no postgres user").next("run scripts/setup"))?;
        let reachable = |dir: &Path| -> bool {
            std::fs::create_dir_all(dir).is_ok()
                && nix::unistd::chown(dir, Some(postgres.uid), Some(postgres.gid)).is_ok()
                && std::process::Command::new("runuser")
                    .args(["-u", "postgres", "--", "test", "-w"])
                    .arg(dir)
                    .status()
                    .is_ok_and(|s| s.success())
        };
        if !reachable(&data) {
            let digest =
                hex::encode(&Sha256::digest(layout.dir.as_os_str().as_encoded_bytes())[..6]);
            data = PathBuf::from(format!("/var/tmp/covenant-devnet-pg-{digest}"));
            let _ = std::fs::remove_dir_all(&data);
            if !reachable(&data) {
                return Err(Failure::new(format!(
                    "the postgres user can reach neither {} nor {}",
                    layout.path("postgres").display(),
                    data.display()
                )));
            }
        }
    }
    let mut initdb = pg_command(&pg_bin.join("initdb"));
    initdb
        .arg("-D")
        .arg(data.join("data"))
        .args([
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "--no-instructions",
        ])
        .args(["--encoding=UTF8", "--no-locale"]);
    run_step(initdb, &layout.path("initdb.log"), "initdb").await?;
    Ok(data)
}

/// Starts PostgreSQL on `port` (0: a free one, retried if taken in the meantime); returns the
/// port.
async fn start_postgres(
    stack: &mut Stack,
    pg_bin: &Path,
    data: &Path,
    layout: &Layout,
    port: u16,
) -> Result<u16, Failure> {
    let log = layout.path("postgres.log");
    for _ in 0..5 {
        let try_port = if port == 0 { free_port()? } else { port };
        say(format!("starting PostgreSQL on 127.0.0.1:{try_port}"));
        let _ = std::fs::remove_file(&log);
        let mut postgres = pg_command(&pg_bin.join("postgres"));
        postgres
            .arg("-D")
            .arg(data.join("data"))
            .args(["-p", &try_port.to_string()])
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "unix_socket_directories=",
            ])
            .args(["-c", "max_connections=300"]);
        // SIGINT is PostgreSQL's fast shutdown.
        let mut service = Service::spawn(
            "postgres",
            postgres,
            &log,
            Signal::SIGINT,
            Duration::from_secs(10),
        )?;
        let isready = pg_bin.join("pg_isready");
        let ready = service
            .wait_until("PostgreSQL ready", READY, || {
                let isready = isready.clone();
                async move {
                    let status = Command::new(&isready)
                        .args(["-q", "-h", "127.0.0.1", "-p", &try_port.to_string()])
                        .status()
                        .await
                        .map_err(|e| e.to_string())?;
                    status
                        .success()
                        .then_some(())
                        .ok_or_else(|| "not ready".to_owned())
                }
            })
            .await;
        match ready {
            Ok(()) => {
                stack.add(service)?;
                return Ok(try_port);
            }
            Err(e) => {
                service.stop().await;
                if port != 0 || !process::tail(&log, 20).contains("already in use") {
                    return Err(e);
                }
            }
        }
    }
    Err(Failure::new("PostgreSQL found no free port in 5 attempts"))
}

/// Deploys the contracts with forge (devnet preset) into the devnet's `deployment.json`.
async fn deploy(
    root: &Path,
    forge: &Path,
    layout: &Layout,
    rpc_url: &url::Url,
) -> Result<(), Failure> {
    // forge may write only under deployments/ (foundry.toml's fs_permissions).
    let out = root.join(format!("deployments/.devnet-{}.json", std::process::id()));
    std::fs::create_dir_all(root.join("cache")).doing("creating cache/")?;
    // The lock serialises forge runs that share out/ and cache/ (tests deploy concurrently).
    let mut command = Command::new("flock");
    command
        .arg(root.join("cache/.covenant-forge.lock"))
        .arg(forge)
        .args([
            "script",
            "scripts/deploy/Deploy.s.sol",
            "--rpc-url",
            rpc_url.as_str(),
        ])
        .args(["--private-key", DEPLOYER_KEY, "--slow", "--broadcast"])
        .current_dir(root)
        .env("COVENANT_DEPLOYMENT_FILE", &out)
        .env("COVENANT_PRESET", "devnet");
    run_step(command, &layout.path("deploy.log"), "the deployment").await?;
    std::fs::rename(&out, layout.deployment()).doing("moving the deployment file")
}

/// An image digest standing for a binary: under the simulated TEE an app runs as a local
/// process, so the digest of its binary is what the compose hash pins.
fn digest_of(path: &Path) -> Result<B256, Failure> {
    let bytes = std::fs::read(path).doing(&format!("reading {}", path.display()))?;
    Ok(B256::from(<[u8; 32]>::from(Sha256::digest(&bytes))))
}

/// A compose file written to `<dir>/app-compose.json`: one container running `command` from
/// `binary`, with `ports`.
fn write_compose(
    layout: &Layout,
    dir: &str,
    name: &str,
    binary: &Path,
    command: Vec<String>,
    ports: Value,
    deployment: &covenant_chain::Deployment,
) -> Result<DevApp, Failure> {
    let dir_path = layout.path(dir);
    std::fs::create_dir_all(dir_path.join("state"))
        .doing(&format!("creating {}", dir_path.display()))?;
    let digest = digest_of(binary)?;
    let compose = json!({
        "manifest_version": 1,
        "name": name,
        "containers": [{
            "name": name,
            "image": format!("covenant.local/{name}@sha256:{}", hex::encode(digest)),
            "command": command,
            "restart": "on-failure",
        }],
        "ports": ports,
        "kms": { "chain_id": CHAIN_ID, "registry": deployment.contracts.kms_registry.to_string().to_lowercase() },
    });
    let text = serde_json::to_string_pretty(&compose).doing("encoding the compose")? + "\n";
    let path = dir_path.join("app-compose.json");
    std::fs::write(&path, &text).doing(&format!("writing {}", path.display()))?;
    let (_, hash) = covenant_attest::compose::compose_hash(text.as_bytes())
        .map_err(|e| Failure::new(format!("the devnet's own compose is invalid: {e}")))?;
    Ok(DevApp {
        app: Address::ZERO,
        compose_hash: B256::from(*hash.as_bytes()),
        compose: path,
        device: named(&format!("covenant devnet {dir} device")),
    })
}

/// The gateway's compose: covenant-gateway with a development CA (no ACME), routing names under
/// `localhost`.
fn gateway_compose(
    layout: &Layout,
    bins: &Binaries,
    rpc_url: &url::Url,
    database_url: &dyn Fn(&str) -> String,
    ports: &Ports,
    finality: u64,
    deployment: &covenant_chain::Deployment,
) -> Result<DevApp, Failure> {
    let dev_ca = layout.path("gateway/dev-ca.pem");
    let mut command: Vec<String> = vec![bins.gateway.display().to_string(), "run".into()];
    for (k, v) in [
        ("--deployment", layout.deployment().display().to_string()),
        ("--rpc-url", rpc_url.to_string()),
        ("--mirror-database-url", database_url("covenant")),
        ("--database-url", database_url("covenant_gateway")),
        ("--listen", format!("127.0.0.1:{}", ports.gateway_api)),
        ("--public-listen", format!("127.0.0.1:{}", ports.gateway)),
        ("--base-domain", "localhost".into()),
        ("--finality", finality.to_string()),
        ("--max-finalized-age-secs", "60".into()),
        ("--dev-ca-out", dev_ca.display().to_string()),
    ] {
        command.push(k.into());
        command.push(v);
    }
    write_compose(
        layout,
        "gateway",
        "gateway",
        &bins.gateway,
        command,
        json!([]),
        deployment,
    )
}

/// The demo app's compose (`name`, in `dir`): the example app on the devnet's app ports at
/// loopback address `ip` (another version's instance on this machine takes another one).
pub(crate) fn app_compose(
    layout: &Layout,
    bins: &Binaries,
    ports: &Ports,
    deployment: &covenant_chain::Deployment,
    (name, dir, ip): (&str, &str, std::net::Ipv4Addr),
) -> Result<DevApp, Failure> {
    let addr_file = layout.path(&format!("{dir}/app.addr"));
    let command = vec![
        bins.app.display().to_string(),
        "--listen".into(),
        format!("{ip}:{}", ports.app),
        "--addr-file".into(),
        addr_file.display().to_string(),
        "--http-listen".into(),
        format!("{ip}:{}", ports.app_http),
    ];
    // The first http port is what https://<app id>.<base domain> reaches through the gateway.
    let routes = json!([
        { "container": name, "port": ports.app_http, "protocol": "http" },
        { "container": name, "port": 8443, "protocol": "tls-passthrough" },
    ]);
    write_compose(layout, dir, name, &bins.app, command, routes, deployment)
}

/// Creates an app owned by the Timelock, allowing nothing yet (its versions come by vote), on any
/// device, TDX, SEV-SNP and simulated TEEs, with the registry's minimum notice period.
pub(crate) async fn create_app(chain: &Chain, sender: &Sender) -> Result<Address, Failure> {
    let registry = KmsRegistry::new(chain.deployment.contracts.kms_registry, &chain.provider);
    let notice = registry
        .minNoticePeriod()
        .call()
        .await
        .doing("reading the registry's minimum notice period")?;
    let init = IApp::AppInit {
        composeHashes: vec![],
        provenances: vec![],
        devices: vec![],
        anyDevice: true,
        allowedTeeKinds: 0b1110,
        requireUpToDateTcb: false,
        requireGpu: false,
        noticePeriod: notice,
    };
    let sent = send(
        chain,
        sender,
        Call {
            to: chain.deployment.contracts.kms_registry,
            data: KmsRegistry::createAppCall {
                owner_: chain.deployment.contracts.timelock_controller,
                init,
            }
            .abi_encode()
            .into(),
            what: "creating an app".into(),
        },
    )
    .await?;
    sent.event::<KmsRegistry::AppCreated>()
        .map(|e| e.app)
        .ok_or_else(|| Failure::new("no AppCreated event in the receipt"))
}

/// `addComposeHash` of `app` for the compose it runs, with provenance naming this checkout.
pub(crate) fn add_compose_call(app: &DevApp, root: &Path, source: &str) -> (Address, Bytes) {
    let commit = std::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let digests = std::fs::read_to_string(&app.compose)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v["containers"][0]["image"].as_str().map(str::to_owned))
        .and_then(|image| image.rsplit_once("@sha256:").map(|(_, d)| d.to_owned()))
        .and_then(|d| d.parse::<B256>().ok())
        .into_iter()
        .collect();
    (
        app.app,
        App::addComposeHashCall {
            composeHash: app.compose_hash,
            provenance: App::Provenance {
                sourceUrl: format!("file://{}", root.join(source).display()),
                sourceCommit: commit,
                artifactDigests: digests,
            },
        }
        .abi_encode()
        .into(),
    )
}

/// Moves the clock past the time `app`'s `compose_hash` takes effect, and waits until the
/// indexer's finalized block is past it too (services decide at finalized blocks).
pub(crate) async fn past_notice(
    chain: &Chain,
    indexer: &Indexer,
    app: Address,
    compose_hash: B256,
) -> Result<(), Failure> {
    let at = App::new(app, &chain.provider)
        .composeHashEffectiveAt(compose_hash)
        .call()
        .await
        .doing("reading when the version takes effect")?;
    governance::advance_past(chain, at).await?;
    final_after(indexer, at).await
}

/// Waits until the indexer's finalized block is later than `t`.
pub(crate) async fn final_after(indexer: &Indexer, t: u64) -> Result<(), Failure> {
    let deadline = tokio::time::Instant::now() + READY;
    loop {
        let head = indexer.get("v1/head").await?;
        let finalized = head
            .as_ref()
            .and_then(|h| h["finalized"]["timestamp"].as_u64())
            .unwrap_or(0);
        if finalized > t {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Failure::new(format!(
                "the indexer's finalized block did not pass {t} within {} s (at {finalized})",
                READY.as_secs()
            )));
        }
        tokio::time::sleep(process::POLL).await;
    }
}

/// Creates the two apps and passes the proposal that registers the KMS node, names the gateway
/// app and allows both apps' versions; funds the KMS node (it commits its grant log).
#[allow(clippy::too_many_arguments)]
async fn register(
    chain: &Chain,
    indexer: &Indexer,
    sender: &Sender,
    root: &Path,
    report: &Value,
    os_image: B256,
    kms_device: B256,
    mut gateway: DevApp,
    mut app: DevApp,
    ports: Ports,
    pg_data: PathBuf,
    finality: u64,
) -> Result<Saved, Failure> {
    let field = |name: &str| -> Result<String, Failure> {
        report[name]
            .as_str()
            .or_else(|| report["root"][name].as_str())
            .map(str::to_owned)
            .ok_or_else(|| Failure::new(format!("the kms-oracle's init report has no {name}")))
    };
    let node: Address = field("node")?.parse().doing("the node address")?;
    let mr: B256 = field("mrAggregated")?
        .parse()
        .doing("the KMS measurement")?;
    let device: B256 = field("deviceId")?.parse().doing("the KMS device")?;
    let registers: Bytes = field("osRegisters")?.parse().doing("the OS registers")?;
    let signer: Address = field("rootSigner")?.parse().doing("the root signer")?;
    let ca: Bytes = field("caPublicKey")?.parse().doing("the root CA key")?;
    let deployer = match sender {
        Sender::Key(k) => k.address(),
        Sender::Unsigned => return Err(Failure::new("the devnet signs its own transactions")),
    };
    let contracts = &chain.deployment.contracts;
    send(
        chain,
        sender,
        Call {
            to: contracts.covenant_token,
            data: CovenantToken::delegateCall {
                delegatee: deployer,
            }
            .abi_encode()
            .into(),
            what: "delegating the deployer's votes to itself".into(),
        },
    )
    .await?;
    say("creating the gateway app and the demo app (owned by the Timelock; versions come by vote)");
    gateway.app = create_app(chain, sender).await?;
    app.app = create_app(chain, sender).await?;
    let registry = contracts.kms_registry;
    let encode = |data: Vec<u8>| -> (Address, Bytes) { (registry, data.into()) };
    let proposal = Proposal {
        description: format!(
            "Register the devnet KMS node {node}, name {} the gateway app, and allow the \
             gateway's and the demo app's first versions",
            gateway.app
        ),
        calls: vec![
            encode(
                KmsRegistry::addOsImageCall {
                    osImageHash: os_image,
                    provenance: KmsRegistry::Provenance {
                        sourceUrl: "devnet".into(),
                        sourceCommit: "simulated".into(),
                        artifactDigests: vec![],
                    },
                    measurements: vec![KmsRegistry::OsMeasurement {
                        teeKind: 3,
                        registers,
                    }],
                }
                .abi_encode(),
            ),
            encode(KmsRegistry::addKmsMeasurementCall { mrAggregated: mr }.abi_encode()),
            encode(KmsRegistry::addKmsDeviceCall { deviceId: device }.abi_encode()),
            encode(
                KmsRegistry::setKmsRootKeysCall {
                    rootSigner: signer,
                    caPublicKey: ca,
                }
                .abi_encode(),
            ),
            encode(
                KmsRegistry::onboardKmsNodeCall {
                    node,
                    mrAggregated: mr,
                    deviceId: device,
                }
                .abi_encode(),
            ),
            encode(KmsRegistry::setGatewayAppIdCall { appId: gateway.app }.abi_encode()),
            add_compose_call(&gateway, root, "gateway"),
            add_compose_call(&app, root, "test/apps/hello"),
        ],
    };
    governance::pass(chain, sender, &proposal, &mut |line| say(line)).await?;
    // The versions (and the OS image) take effect after the notice period.
    past_notice(chain, indexer, gateway.app, gateway.compose_hash).await?;
    past_notice(chain, indexer, app.app, app.compose_hash).await?;
    let effective = KmsRegistry::new(registry, &chain.provider)
        .osImageEffectiveAt(os_image)
        .call()
        .await
        .doing("reading when the OS image takes effect")?;
    governance::advance_past(chain, effective).await?;
    final_after(indexer, effective).await?;
    transfer(chain, DEPLOYER_KEY, node, U256::from(10u128.pow(19))).await?;
    Ok(Saved {
        ports,
        pg_data,
        finality,
        kms_node: node,
        os_image,
        kms_device,
        gateway,
        app,
    })
}

/// Sends `amount` wei from `key` to `to`.
async fn transfer(chain: &Chain, key: &str, to: Address, amount: U256) -> Result<(), Failure> {
    let signer: PrivateKeySigner = key.parse().doing("the deployer key")?;
    let wallet = ProviderBuilder::new()
        .wallet(EthereumWallet::from(signer))
        .connect_provider(chain.provider.clone());
    wallet
        .send_transaction(TransactionRequest::default().with_to(to).with_value(amount))
        .await
        .doing("funding the KMS node")?
        .get_receipt()
        .await
        .doing("funding the KMS node")?;
    Ok(())
}

/// The address the compose's app listens on (its `--http-listen`), for the guest's ingress.
fn workload_address(compose: &Path) -> Option<String> {
    let text = std::fs::read_to_string(compose).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    let command = v["containers"][0]["command"].as_array()?;
    let at = command.iter().position(|a| a == "--http-listen")?;
    let addr: std::net::SocketAddr = command.get(at + 1)?.as_str()?.parse().ok()?;
    Some(addr.ip().to_string())
}

/// Boots `app` under a guest agent (simulated TEE) in `<dir>`; with `gateway_api`, it registers
/// there.
#[allow(clippy::too_many_arguments)]
pub(crate) fn boot(
    bins: &Binaries,
    layout: &Layout,
    rpc_url: &url::Url,
    kms_url: &str,
    finality: u64,
    app: &DevApp,
    os_image: B256,
    dir: &'static str,
    gateway_api: Option<&str>,
) -> Result<Service, Failure> {
    let d = layout.path(dir);
    let mut guest = Command::new(&bins.guest);
    guest
        .arg("run")
        .arg("--compose")
        .arg(&app.compose)
        .args([
            "--app-id",
            &app.app.to_string(),
            "--os-image",
            &os_image.to_string(),
        ])
        .arg("--state-dir")
        .arg(d.join("state"))
        .arg("--deployment")
        .arg(layout.deployment())
        .args([
            "--rpc-url",
            rpc_url.as_str(),
            "--finality",
            &finality.to_string(),
        ])
        .args(["--kms-url", kms_url, "--tee", "simulated"])
        .args(["--device-id", &app.device.to_string()])
        .arg("--socket")
        .arg(d.join("guest.sock"))
        .arg("--run-dir")
        .arg(d.join("run"));
    if let Some(url) = gateway_api {
        guest.args(["--gateway-url", url]);
    }
    if let Some(ip) = workload_address(&app.compose) {
        guest.args(["--workload-address", &ip]);
    }
    // The guest gives its app up to 10 s to stop.
    Service::spawn(
        dir,
        guest,
        &layout.path(&format!("{dir}.log")),
        Signal::SIGTERM,
        Duration::from_secs(15),
    )
}
