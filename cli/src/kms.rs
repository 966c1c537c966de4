//! KMS nodes: who may serve keys, under which root, and what they committed to on chain.

use alloy::{
    primitives::{Address, B256, U256},
    providers::Provider,
    rpc::types::Filter,
    sol_types::SolEvent,
};
use clap::Subcommand;
use covenant_chain::kms_registry::KmsRegistry;
use covenant_kms_api::{AppAudit, AuditEntryResponse};
use serde_json::{Value, json};

use crate::{
    Global,
    context::{Chain, Indexer},
    error::{Context as _, Failure},
    https,
    report::{Report, fields, plain, time},
};

/// `covenant kms …`.
#[derive(Debug, Subcommand)]
pub enum KmsCommand {
    /// The KMS root keys on chain, and every onboarded node with its standing, at the indexer's
    /// finalized block.
    Info,
    /// The grant-log commitments (Merkle roots of the nodes' audit logs) on chain; with
    /// `--app`, that app's decisions in a KMS node's log (each provable with `kms proof`).
    Grants {
        /// Only this node's commitments.
        #[arg(long, conflicts_with = "app")]
        node: Option<Address>,
        /// An app: list its decisions (newest first, at most 100) from the node at --kms-url.
        #[arg(long)]
        app: Option<Address>,
        /// The KMS node to ask for an app's decisions.
        #[arg(long, env = "COVENANT_KMS_URL", requires = "app")]
        kms_url: Option<url::Url>,
    },
    /// One decision of a KMS node's audit log, proven offline: its leaf encodes it, the
    /// inclusion proof leads to a Merkle root, and that root is the one the node committed on
    /// chain for the entry's range.
    Proof {
        /// The entry's sequence number in the node's log.
        seq: u64,
        /// The KMS node to ask (any connection: nothing it says is trusted unproven).
        #[arg(long, env = "COVENANT_KMS_URL")]
        kms_url: url::Url,
    },
}

/// Runs a `kms` command.
pub(crate) async fn run(global: &Global, command: KmsCommand) -> Result<Report, Failure> {
    match command {
        KmsCommand::Info => info(global).await,
        KmsCommand::Grants {
            app: Some(app),
            kms_url,
            ..
        } => {
            let kms_url = kms_url.ok_or_else(|| {
                Failure::new("no KMS node to ask").next("pass --kms-url or set COVENANT_KMS_URL")
            })?;
            app_grants(app, &kms_url).await
        }
        KmsCommand::Grants { node, .. } => grants(global, node).await,
        KmsCommand::Proof { seq, kms_url } => proof(global, seq, &kms_url).await,
    }
}

fn text(v: &Value) -> String {
    plain(v, "?")
}

async fn info(global: &Global) -> Result<Report, Failure> {
    let chain = Chain::connect(global).await?;
    let roots = chain.root_keys().await?;
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

/// The `GrantLogCommitted` event of `node` for the range starting at `from`, if the chain has
/// one: its range end, root, transaction and block.
async fn committed(
    chain: &Chain,
    node: Address,
    from: u64,
) -> Result<Option<(u64, B256, B256, u64)>, Failure> {
    let filter = Filter::new()
        .address(chain.deployment.contracts.kms_registry)
        .event_signature(KmsRegistry::GrantLogCommitted::SIGNATURE_HASH)
        .topic1(node.into_word())
        .topic2(B256::from(U256::from(from)))
        .from_block(chain.deployment.start_block);
    let logs = chain
        .provider
        .get_logs(&filter)
        .await
        .doing("reading the grant-log commitments on chain")?;
    Ok(logs.iter().find_map(|log| {
        let event = log.log_decode::<KmsRegistry::GrantLogCommitted>().ok()?;
        let e = event.inner.data;
        Some((
            e.toSeq,
            e.merkleRoot,
            log.transaction_hash?,
            log.block_number?,
        ))
    }))
}

async fn app_grants(app: Address, kms_url: &url::Url) -> Result<Report, Failure> {
    let listed: AppAudit = https::kms_json(kms_url, &format!("/v1/audit?app={app}")).await?;
    let mut lines = vec![format!(
        "{} decision(s) for app {} by {kms_url} (newest first; the node's word until proven with \
         `covenant kms proof <seq>`):",
        listed.entries.len(),
        app.to_checksum(None)
    )];
    for e in &listed.entries {
        let decision = if e.granted {
            "granted".to_owned()
        } else {
            format!("refused ({})", e.reason)
        };
        lines.push(format!(
            "  {:>6}  {}  {decision}  instance {}  compose {}  block {}",
            e.seq,
            time(e.at_ms / 1000),
            e.instance_id.map_or("-".into(), |i| i.to_string()),
            e.compose_hash.map_or("-".into(), |h| h.to_string()),
            e.block.map_or("-".into(), |(n, _)| n.to_string()),
        ));
    }
    if let Some(before) = listed.next_before {
        lines.push(format!(
            "  … older ones: GET /v1/audit?app={app}&before={before}"
        ));
    }
    let json = serde_json::to_value(&listed).doing("encoding the list")?;
    Ok(Report::new(lines.join("\n"), json))
}

async fn proof(global: &Global, seq: u64, kms_url: &url::Url) -> Result<Report, Failure> {
    let chain = Chain::connect(global).await?;
    let path = format!("/v1/audit/{seq}");
    // What the node serves is proven below, up to the chain.
    let response: AuditEntryResponse = https::kms_json(kms_url, &path).await?;
    if response.entry.seq != seq {
        return Err(Failure::new(format!(
            "the KMS sent entry {} for {seq}",
            response.entry.seq
        )));
    }
    let commitment = covenant_kms_api::audit::check(&response)
        .map_err(|e| Failure::new(format!("entry {seq} does not prove itself: {e}")))?
        .ok_or_else(|| {
            Failure::new(format!("entry {seq} is not committed on chain yet"))
                .next("the node commits its log every interval (--commit-interval-ms): retry")
        })?;
    let e = &response.entry;
    let (to, root, tx, block) = committed(&chain, e.node, commitment.from_seq)
        .await?
        .ok_or_else(|| {
            Failure::new(format!(
                "node {} committed no range starting at {} on chain",
                e.node, commitment.from_seq
            ))
        })?;
    if to != commitment.to_seq || root != commitment.root {
        return Err(Failure::new(format!(
            "the chain's commitment of entries {}..={to} has root {root}; the node's proof \
             leads to {} for {}..={}",
            commitment.from_seq, commitment.root, commitment.from_seq, commitment.to_seq
        )));
    }
    let decision = if e.granted {
        "granted".to_owned()
    } else {
        format!("refused: {}", e.reason)
    };
    let optional = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let rows = vec![
        ("node", e.node.to_checksum(None)),
        ("entry", seq.to_string()),
        ("at", time(e.at_ms / 1000)),
        ("action", e.action.clone()),
        ("decision", decision),
        ("app", optional(e.app_id.map(|a| a.to_checksum(None)))),
        ("instance", optional(e.instance_id.map(|i| i.to_string()))),
        (
            "compose hash",
            optional(e.compose_hash.map(|h| h.to_string())),
        ),
        (
            "decided at block",
            optional(e.block.map(|(n, h)| format!("{n} ({h})"))),
        ),
        (
            "committed",
            format!(
                "entries {}..={to}, root {root}, in transaction {tx} (block {block})",
                commitment.from_seq
            ),
        ),
    ];
    Ok(Report::new(
        format!(
            "{}\nproven: the leaf encodes this entry, and its inclusion proof leads to the root \
             the node committed on chain",
            fields(&rows)
        ),
        json!({
            "proven": true,
            // As the node served it: what the explorer's proof check takes, pasted.
            "served": &response,
            "entry": e,
            "commitment": {
                "fromSeq": commitment.from_seq,
                "toSeq": to,
                "root": root,
                "transaction": tx,
                "block": block,
            },
        }),
    ))
}
