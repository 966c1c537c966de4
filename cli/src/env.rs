//! `covenant app env encrypt`: env secrets sealed to an app (the HPKE format of docs/guest.md,
//! `covenant_guest_api::env`), so that only its instances, inside a TEE the chain allows, can
//! read them.
//!
//! The app's env public key comes from any KMS node, but what makes it the app's is the KMS
//! root's signature over it, checked against the root signer on chain — not the connection it
//! came over — and its key generation, checked against the app's on chain.

use std::{collections::BTreeMap, io::Read as _, path::PathBuf};

use alloy::primitives::Address;
use covenant_chain::app::App;
use covenant_kms_api::EnvKeyResponse;
use serde_json::json;
use zeroize::{Zeroize as _, Zeroizing};

use crate::{
    Global,
    context::Chain,
    error::{Context as _, Failure},
    https,
    report::Report,
};

/// `covenant app env …`.
#[derive(Debug, clap::Subcommand)]
pub enum EnvCommand {
    /// Seal environment variables to an app: prints the document its instances open at boot.
    Encrypt(EncryptArgs),
}

/// `covenant app env encrypt`.
#[derive(Debug, clap::Args)]
pub struct EncryptArgs {
    /// The app (its address).
    app: Address,
    /// The variables: a file of `NAME=value` lines (blank lines and `#` comments skipped), or `-`
    /// for standard input. Never the command line: values there end up in shell histories.
    #[arg(long)]
    env_file: PathBuf,
    /// A KMS node serving the app's env key (any one: the key is checked against the chain).
    #[arg(long, env = "COVENANT_KMS_URL")]
    kms_url: url::Url,
    /// Write the sealed document here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Runs an `app env` command.
pub(crate) async fn run(global: &Global, command: EnvCommand) -> Result<Report, Failure> {
    match command {
        EnvCommand::Encrypt(args) => encrypt(global, args).await,
    }
}

/// `NAME=value` lines; a value keeps everything after the first `=` (no quoting rules).
fn parse(text: &str) -> Result<BTreeMap<String, String>, Failure> {
    let mut variables = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = line
            .split_once('=')
            .ok_or_else(|| Failure::new(format!("line {} is not NAME=value", i + 1)))?;
        if variables
            .insert(name.trim().to_owned(), value.to_owned())
            .is_some()
        {
            return Err(Failure::new(format!(
                "line {}: {} is set twice",
                i + 1,
                name.trim()
            )));
        }
    }
    if variables.is_empty() {
        return Err(Failure::new("no variables to seal").next("write NAME=value lines"));
    }
    Ok(variables)
}

async fn encrypt(global: &Global, args: EncryptArgs) -> Result<Report, Failure> {
    let mut text = Zeroizing::new(String::new());
    if args.env_file.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .doing("reading the variables from standard input")?;
    } else {
        *text = std::fs::read_to_string(&args.env_file)
            .doing(&format!("reading {}", args.env_file.display()))?;
    }
    let mut variables = parse(&text)?;
    let chain = Chain::connect(global).await?;
    let registry = chain.deployment.contracts.kms_registry;
    let roots = chain.root_keys().await?;
    let generation = App::new(args.app, &chain.provider)
        .keyGeneration()
        .call()
        .await
        .doing(&format!("reading the key generation of app {}", args.app))?;

    // The connection is not what is trusted: the statement's signature is checked below.
    let response: EnvKeyResponse =
        https::kms_json(&args.kms_url, &format!("/v1/apps/{}/env-key", args.app)).await?;
    let statement = response.statement;
    if statement.app_id != args.app {
        return Err(Failure::new(format!(
            "the KMS sent the env key of {}, not of {}",
            statement.app_id, args.app
        )));
    }
    if statement.key_generation != generation {
        return Err(Failure::new(format!(
            "the KMS sent the env key of key generation {}, but the app is at generation \
             {generation} on chain",
            statement.key_generation
        ))
        .next("ask a KMS node that follows the chain (--kms-url)"));
    }
    let sealed =
        covenant_guest_api::env::seal(&statement, chain.chain_id, registry, roots._0, &variables);
    let names: Vec<String> = variables.keys().cloned().collect();
    for value in variables.values_mut() {
        value.zeroize();
    }
    let sealed = sealed.map_err(|e| Failure::new(e.to_string()))?;
    let document = serde_json::to_string_pretty(&sealed).doing("encoding the document")?;
    let json = json!({
        "app": args.app.to_checksum(None),
        "keyGeneration": generation,
        "variables": names,
        "rootSigner": roots._0.to_checksum(None),
        "document": sealed,
    });
    match &args.out {
        Some(out) => {
            std::fs::write(out, document + "\n").doing(&format!("writing {}", out.display()))?;
            Ok(Report::new(
                format!(
                    "sealed {} to app {} (key generation {generation}, env key signed by the \
                     root signer {}): {}",
                    names.join(", "),
                    args.app,
                    roots._0,
                    out.display()
                ),
                json,
            ))
        }
        None => Ok(Report::new(document, json)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_are_name_value_lines() {
        let v = parse("# a comment\n\nA=1\nB = x=y \n").unwrap();
        assert_eq!(v["A"], "1");
        assert_eq!(v["B"], " x=y ");
        assert!(
            parse("A=1\nA=2\n")
                .unwrap_err()
                .to_string()
                .contains("set twice")
        );
        assert!(parse("JUSTANAME\n").is_err());
        assert!(parse("# nothing\n").is_err());
    }
}
