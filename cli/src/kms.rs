//! KMS nodes: who may serve keys, under which root, and what they committed to on chain.

use alloy::primitives::Address;
use clap::Subcommand;
use covenant_chain::kms_registry::KmsRegistry;
use serde_json::{Value, json};

use crate::{
    Global,
    context::{Chain, Indexer},
    error::{Context as _, Failure},
    report::{Report, fields, plain},
};

/// `covenant kms …`.
#[derive(Debug, Subcommand)]
pub enum KmsCommand {
    /// The KMS root keys on chain, and every onboarded node with its standing, at the indexer's
    /// finalized block.
    Info,
    /// The grant-log commitments (Merkle roots of the nodes' audit logs) on chain.
    Grants {
        /// Only this node's commitments.
        #[arg(long)]
        node: Option<Address>,
    },
}

/// Runs a `kms` command.
pub(crate) async fn run(global: &Global, command: KmsCommand) -> Result<Report, Failure> {
    match command {
        KmsCommand::Info => info(global).await,
        KmsCommand::Grants { node } => grants(global, node).await,
    }
}

fn text(v: &Value) -> String {
    plain(v, "?")
}

async fn info(global: &Global) -> Result<Report, Failure> {
    let chain = Chain::connect(global).await?;
    let registry = KmsRegistry::new(chain.deployment.contracts.kms_registry, &chain.provider);
    let roots = registry
        .kmsRootKeys()
        .call()
        .await
        .doing("reading the KMS root keys")?;
    let body = Indexer::new(global)
        .get("v1/kms-nodes")
        .await?
        .ok_or_else(|| Failure::new("the indexer has no KMS nodes endpoint"))?;
    let nodes = body["nodes"].as_array().cloned().unwrap_or_default();
    let mut lines = vec![fields(&[
        ("root signer", roots._0.to_checksum(None)),
        ("root CA key", roots._1.to_string()),
        ("root generation", roots._2.to_string()),
        ("finalized block", body["block"]["number"].to_string()),
    ])];
    lines.push(format!("{} node(s):", nodes.len()));
    for n in &nodes {
        let standing = if n["serving"].as_bool() == Some(true) {
            "serving"
        } else {
            "not serving (its measurement or device is no longer allowed)"
        };
        lines.push(format!(
            "  {}  {standing}\n    measurement {}  device {}  onboarded at block {}",
            text(&n["node"]),
            text(&n["mrAggregated"]),
            text(&n["deviceId"]),
            text(&n["addedBlock"])
        ));
    }
    Ok(Report::new(
        lines.join("\n"),
        json!({
            "rootSigner": roots._0.to_checksum(None),
            "rootCaKey": roots._1.to_string(),
            "rootGeneration": roots._2,
            "block": body["block"],
            "nodes": nodes,
        }),
    ))
}

async fn grants(global: &Global, node: Option<Address>) -> Result<Report, Failure> {
    let path = match node {
        Some(n) => format!("v1/grant-log?node={n}"),
        None => "v1/grant-log".to_owned(),
    };
    let body = Indexer::new(global)
        .get(&path)
        .await?
        .ok_or_else(|| Failure::new("the indexer has no grant-log endpoint"))?;
    let commitments = body["commitments"].as_array().cloned().unwrap_or_default();
    let mut lines = vec![format!(
        "{} commitment(s) at finalized block {}",
        commitments.len(),
        body["block"]["number"]
    )];
    for c in &commitments {
        lines.push(format!(
            "  node {}  entries {}..={}  root {}  (block {})",
            text(&c["node"]),
            text(&c["fromSeq"]),
            text(&c["toSeq"]),
            text(&c["merkleRoot"]),
            text(&c["addedBlock"])
        ));
    }
    Ok(Report::new(lines.join("\n"), body))
}
