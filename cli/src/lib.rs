//! `covenant`: what a developer, a DAO member, an operator and a skeptical user do with Covenant,
//! without `cast`. It reads the chain over JSON-RPC and the indexer's REST API, and writes to the
//! chain only with a key it was given (environment or keystore file), or prints unsigned calldata
//! for a multisig to send.
//!
//! It owns argument parsing, building calldata from readable arguments, and rendering answers for
//! people (text) and scripts (`--json`). It must not decide policy (the registries and the
//! indexer's mirror do) and holds no state of its own.

mod app;
mod context;
mod devnet;
mod env;
mod error;
mod gov;
mod https;
mod kms;
mod progress;
mod report;
mod verify;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use app::{AppCommand, CreateArgs, TeeKind};
pub use devnet::{DevnetCommand, DirArg, UpArgs};
pub use env::{EncryptArgs, EnvCommand};
pub use error::Failure;
pub use gov::{Action, GovCommand, ProvenanceArgs, Support};
pub use kms::KmsCommand;
pub use report::Report;
pub use verify::VerifyArgs;

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "covenant",
    version,
    about = "Covenant: confidential apps whose code is decided on chain",
    after_help = "Keys come from COVENANT_PRIVATE_KEY or --keystore (password in \
                  COVENANT_KEYSTORE_PASSWORD); --unsigned prints the transaction instead."
)]
pub struct Cli {
    /// Where to reach the chain, the indexer and the deployment, and how to answer.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// The chain's JSON-RPC endpoint.
    #[arg(
        long,
        env = "COVENANT_RPC_URL",
        default_value = "http://127.0.0.1:8545",
        global = true
    )]
    pub rpc_url: url::Url,
    /// The indexer's API.
    #[arg(
        long,
        env = "COVENANT_INDEXER_URL",
        default_value = "http://127.0.0.1:8580",
        global = true
    )]
    pub indexer_url: url::Url,
    /// The deployment file the deploy script wrote (default: deployments/<chain id>.json).
    #[arg(long, env = "COVENANT_DEPLOYMENT", global = true)]
    pub deployment: Option<PathBuf>,
    /// Answer in JSON (for scripts) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Sign with this encrypted keystore file (password in COVENANT_KEYSTORE_PASSWORD).
    #[arg(long, env = "COVENANT_KEYSTORE", global = true)]
    pub keystore: Option<PathBuf>,
    /// Do not send: print each transaction (to, value, data) for another signer, e.g. a Safe.
    #[arg(long, global = true)]
    pub unsigned: bool,
    /// A key given by the program itself (the devnet's well-known deployer key), never by the
    /// command line.
    #[arg(skip)]
    pub signer: Option<alloy::signers::local::PrivateKeySigner>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apps: create one, read its status, hash a compose file.
    #[command(subcommand)]
    App(app::AppCommand),
    /// Governance: propose registry changes, vote, queue, execute, read proposals.
    #[command(subcommand)]
    Gov(gov::GovCommand),
    /// KMS nodes: root keys, standing, grant-log commitments.
    #[command(subcommand)]
    Kms(kms::KmsCommand),
    /// Check the chain of trust behind an HTTPS URL served by a Covenant gateway, link by link;
    /// fails naming the first broken link.
    Verify(verify::VerifyArgs),
    /// The local devnet: the whole stack and a demo app on this machine.
    #[command(subcommand)]
    Devnet(devnet::DevnetCommand),
}

/// Runs `cli` and returns what to print.
pub async fn run(cli: Cli) -> Result<Report, Failure> {
    let answer = match cli.command {
        Command::App(command) => app::run(&cli.global, command).await,
        Command::Gov(command) => gov::run(&cli.global, command).await,
        Command::Kms(command) => kms::run(&cli.global, command).await,
        Command::Verify(args) => verify::run(&cli.global, args).await,
        Command::Devnet(command) => devnet::run(&cli.global, command).await,
    };
    progress::done();
    answer
}
