//! Apps: hashing a compose file, creating an app, reading its status.

use std::path::PathBuf;

use alloy::{
    primitives::{Address, B256, Bytes},
    providers::Provider,
    sol_types::SolCall,
};
use clap::{Subcommand, ValueEnum};
use covenant_chain::kms_registry::{IApp, KmsRegistry, Provenance};
use serde_json::{Value, json};

use crate::{
    Global,
    context::{Call, Chain, Indexer, Sender, send},
    error::{Context as _, Failure},
    report::{Report, duration, fields, plain, time},
};

/// `covenant app …`.
#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// The compose hash of an app-compose file (what the chain allows and the TEE measures).
    ComposeHash {
        /// The app-compose JSON file.
        file: PathBuf,
    },
    /// Create an app through the registry's factory.
    Create(CreateArgs),
    /// An app's allowed and pending versions, settings, devices and domains at the finalized
    /// block.
    Status {
        /// The app (its address).
        app: Address,
    },
    /// Env secrets: seal variables so that only the app's instances can read them.
    #[command(subcommand)]
    Env(crate::env::EnvCommand),
}

/// TEE kinds an app may run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TeeKind {
    /// Intel TDX.
    Tdx,
    /// AMD SEV-SNP.
    SevSnp,
    /// The simulated TEE (development; only while the registry allows it).
    Simulated,
}

impl TeeKind {
    /// The bit of the registry's TEE-kind mask (`1 << kind`).
    fn bit(self) -> u8 {
        match self {
            Self::Tdx => 1 << 1,
            Self::SevSnp => 1 << 2,
            Self::Simulated => 1 << 3,
        }
    }
}

/// `covenant app create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Who owns the app: `timelock` (only governance changes it) or an address.
    #[arg(long, default_value = "timelock")]
    owner: String,
    /// An app-compose file to allow from the start (its hash is computed).
    #[arg(long = "compose")]
    composes: Vec<PathBuf>,
    /// A compose hash to allow from the start (repeatable).
    #[arg(long = "compose-hash")]
    compose_hashes: Vec<B256>,
    /// The source repository of the allowed versions.
    #[arg(long)]
    source_url: String,
    /// The source commit of the allowed versions.
    #[arg(long)]
    commit: String,
    /// A digest of a built artifact, e.g. an image digest (repeatable).
    #[arg(long = "digest")]
    digests: Vec<B256>,
    /// A device id the app may run on (repeatable); see --any-device.
    #[arg(long = "device")]
    devices: Vec<B256>,
    /// Run on any device.
    #[arg(long)]
    any_device: bool,
    /// TEE kinds the app may run on.
    #[arg(long = "tee", value_delimiter = ',', default_value = "tdx,sev-snp")]
    tee_kinds: Vec<TeeKind>,
    /// Require an up-to-date TCB.
    #[arg(long)]
    require_up_to_date_tcb: bool,
    /// Require a confidential GPU.
    #[arg(long)]
    require_gpu: bool,
    /// Seconds before a loosening change takes effect (default: the registry's minimum).
    #[arg(long)]
    notice_period: Option<u64>,
}

/// Runs an `app` command.
pub(crate) async fn run(global: &Global, command: AppCommand) -> Result<Report, Failure> {
    match command {
        AppCommand::ComposeHash { file } => compose_hash(&file),
        AppCommand::Create(args) => create(global, args).await,
        AppCommand::Status { app } => status_report(global, app).await,
        AppCommand::Env(command) => crate::env::run(global, command).await,
    }
}

fn hash_file(file: &PathBuf) -> Result<(covenant_attest::compose::AppCompose, B256), Failure> {
    let document = std::fs::read(file).doing(&format!("reading {}", file.display()))?;
    let (compose, hash) = covenant_attest::compose::compose_hash(&document).map_err(|e| {
        Failure::new(format!(
            "{} is not a valid app-compose: {e}",
            file.display()
        ))
        .next("see docs/guest.md for the app-compose format")
    })?;
    Ok((compose, B256::from(*hash.as_bytes())))
}

fn compose_hash(file: &PathBuf) -> Result<Report, Failure> {
    let (compose, hash) = hash_file(file)?;
    Ok(Report::new(
        hash.to_string(),
        json!({ "file": file.display().to_string(), "name": compose.name, "composeHash": hash.to_string() }),
    ))
}

async fn create(global: &Global, args: CreateArgs) -> Result<Report, Failure> {
    let chain = Chain::connect(global).await?;
    let sender = Sender::from(global)?;
    let owner = match args.owner.as_str() {
        "timelock" => chain.deployment.contracts.timelock_controller,
        other => other.parse::<Address>().map_err(|_| {
            Failure::new(format!(
                "--owner `{other}` is neither `timelock` nor an address"
            ))
        })?,
    };
    let mut hashes = args.compose_hashes.clone();
    for file in &args.composes {
        hashes.push(hash_file(file)?.1);
    }
    if hashes.is_empty() {
        return Err(Failure::new("no version to allow")
            .next("pass --compose <file> or --compose-hash <hash>"));
    }
    if args.devices.is_empty() && !args.any_device {
        return Err(Failure::new("the app could run on no device")
            .next("pass --device <id> (repeatable) or --any-device"));
    }
    let registry = KmsRegistry::new(chain.deployment.contracts.kms_registry, &chain.provider);
    let notice_period = match args.notice_period {
        Some(n) => n,
        None => registry
            .minNoticePeriod()
            .call()
            .await
            .doing("reading the registry's minimum notice period")?,
    };
    let provenance = Provenance {
        sourceUrl: args.source_url.clone(),
        sourceCommit: args.commit.clone(),
        artifactDigests: args.digests.clone(),
    };
    let init = IApp::AppInit {
        composeHashes: hashes.clone(),
        provenances: vec![provenance; hashes.len()],
        devices: args.devices.clone(),
        anyDevice: args.any_device,
        allowedTeeKinds: args.tee_kinds.iter().fold(0, |m, k| m | k.bit()),
        requireUpToDateTcb: args.require_up_to_date_tcb,
        requireGpu: args.require_gpu,
        noticePeriod: notice_period,
    };
    let call = Call {
        to: registry.address().to_owned(),
        data: Bytes::from(
            KmsRegistry::createAppCall {
                owner_: owner,
                init,
            }
            .abi_encode(),
        ),
        what: "creating the app".to_owned(),
    };
    let sent = send(&chain, &sender, call).await?;
    let app = sent.event::<KmsRegistry::AppCreated>().map(|e| e.app);
    let mut rows = vec![("owner", owner.to_checksum(None))];
    if let Some(app) = app {
        rows.insert(0, ("app", app.to_checksum(None)));
    }
    for h in &hashes {
        rows.push(("compose hash", h.to_string()));
    }
    rows.push(("notice period", duration(notice_period)));
    let mut text = vec![fields(&rows), sent.text()];
    if let Some(app) = app {
        text.push(format!("next: covenant app status {app}"));
    }
    // A chain read of the new app's code, so a caller knows it is really there.
    if let Some(app) = app {
        let code = chain
            .provider
            .get_code_at(app)
            .await
            .doing("reading the new app's code")?;
        if code.is_empty() {
            return Err(Failure::new(format!(
                "the registry reported app {app}, but it has no code"
            )));
        }
    }
    Ok(Report::new(
        text.join("\n"),
        json!({
            "app": app.map(|a| a.to_checksum(None)),
            "owner": owner.to_checksum(None),
            "composeHashes": hashes.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
            "noticePeriod": notice_period,
            "sent": sent.json(),
        }),
    ))
}

/// `covenant app status`: the app's versions, settings, devices and domains at the finalized
/// block.
pub(crate) async fn status_report(global: &Global, app: Address) -> Result<Report, Failure> {
    let indexer = Indexer::new(global);
    let body = indexer
        .get(&format!("v1/apps/{app}"))
        .await?
        .ok_or_else(|| {
            Failure::new(format!("no app {app} at the indexer's finalized block"))
                .next("check the address; a new app shows once its block is final")
        })?;
    // The finalized block's time, to tell versions in force from pending ones.
    let now = indexer
        .get("v1/head")
        .await?
        .and_then(|h| h["finalized"]["timestamp"].as_u64());
    let settings = &body["settings"];
    let mut rows = vec![
        ("app", body["address"].as_str().unwrap_or("?").to_owned()),
        (
            "registered",
            body["registered"].as_bool().unwrap_or(false).to_string(),
        ),
        ("owner", plain(&settings["owner"], "-")),
        ("key generation", plain(&settings["keyGeneration"], "-")),
        ("any device", plain(&settings["anyDevice"], "-")),
        ("tee kinds", tee_kinds(&settings["allowedTeeKinds"])),
        (
            "up-to-date TCB",
            plain(&settings["requireUpToDateTcb"], "-"),
        ),
        ("GPU", plain(&settings["requireGpu"], "-")),
        ("finalized block", body["block"]["number"].to_string()),
    ];
    rows.retain(|(_, v)| v != "-");
    let mut text = vec![fields(&rows), "versions:".to_owned()];
    let hashes = body["composeHashes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if hashes.is_empty() {
        text.push("  none allowed".to_owned());
    }
    for h in &hashes {
        let effective = h["effectiveAt"].as_u64();
        let when = match (effective, now) {
            (Some(e), Some(n)) if e > n => {
                format!("pending: takes effect {} (in {})", time(e), duration(e - n))
            }
            (Some(e), _) => format!("allowed since {}", time(e)),
            _ => "allowed".to_owned(),
        };
        text.push(format!(
            "  {}  {when}\n    source {} @ {}",
            h["composeHash"].as_str().unwrap_or("?"),
            h["provenance"]["sourceUrl"].as_str().unwrap_or("?"),
            h["provenance"]["sourceCommit"].as_str().unwrap_or("?"),
        ));
    }
    if let Some(domains) = body["domains"].as_array()
        && !domains.is_empty()
    {
        text.push(format!(
            "domains: {}",
            domains
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(Report::new(text.join("\n"), body))
}

fn tee_kinds(mask: &Value) -> String {
    let Some(mask) = mask.as_u64() else {
        return "-".to_owned();
    };
    let names: Vec<&str> = [(1, "tdx"), (2, "sev-snp"), (3, "simulated")]
        .iter()
        .filter(|(bit, _)| mask & (1 << bit) != 0)
        .map(|(_, name)| *name)
        .collect();
    names.join(",")
}
