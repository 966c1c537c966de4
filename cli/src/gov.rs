//! Governance: proposals of registry changes through the Governor and the Timelock.
//!
//! Queue and execute take the proposal's calls from the indexer and check them against the
//! proposal id before sending (the id is the hash of the calls and the description), so a wrong
//! indexer can make them fail but never make them send something else.

use std::path::PathBuf;

use alloy::{
    primitives::{Address, B256, Bytes, U256, keccak256},
    sol_types::{SolCall, SolValue},
};
use clap::{Subcommand, ValueEnum};
use covenant_chain::{app::App, domain_registry::DomainRegistry, governor, kms_registry};
use serde_json::{Value, json};

use crate::{
    Global,
    context::{Call, Chain, Indexer, Sender, send},
    error::{Context as _, Failure},
    report::{Report, fields, time},
};

/// `covenant gov …`.
#[derive(Debug, Subcommand)]
pub enum GovCommand {
    /// Propose registry changes (the Timelock makes them if the vote passes): one change named
    /// here, or several from `--calls <file>`.
    Propose {
        /// What the proposal says, shown to voters (its hash is part of the proposal id).
        #[arg(long)]
        description: String,
        /// A JSON array of calls, `[{"target": "0x…", "calldata": "0x…", "value": "0"}]`, made in
        /// order (`covenant gov calldata <change>` prints one).
        #[arg(long)]
        calls: Option<PathBuf>,
        /// The change.
        #[command(subcommand)]
        action: Option<Action>,
    },
    /// Print the call a change makes, as one element of a `--calls` file (sends nothing).
    Calldata {
        /// The change.
        #[command(subcommand)]
        action: Action,
    },
    /// Vote on a proposal with the sender's delegated votes.
    Vote {
        /// The proposal id (decimal).
        id: U256,
        /// For, against or abstain.
        support: Support,
        /// A reason, recorded on chain.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Queue a proposal that passed in the Timelock.
    Queue {
        /// The proposal id (decimal).
        id: U256,
    },
    /// Execute a queued proposal whose Timelock delay has passed.
    Execute {
        /// The proposal id (decimal).
        id: U256,
    },
    /// Every proposal with its state (or one, with its votes), at the finalized block.
    Status {
        /// The proposal id (decimal); all proposals when absent.
        id: Option<U256>,
    },
    /// One proposal decoded into plain calls, with its tally, quorum and times.
    Show {
        /// The proposal id (decimal).
        id: U256,
    },
}

/// A vote.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Support {
    /// Against (0).
    Against,
    /// For (1).
    For,
    /// Abstain (2).
    Abstain,
}

/// Registry changes governance can make.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Allow a compose hash for an app the Timelock owns (effective after its notice period).
    AddComposeHash {
        /// The app (its address).
        #[arg(long)]
        app: Address,
        /// The compose hash (`covenant app compose-hash <file>` computes it).
        #[arg(long)]
        hash: B256,
        /// Where the version comes from.
        #[command(flatten)]
        provenance: ProvenanceArgs,
    },
    /// Stop allowing a compose hash (at once: its instances lose keys and routes).
    RemoveComposeHash {
        /// The app (its address).
        #[arg(long)]
        app: Address,
        /// The compose hash.
        #[arg(long)]
        hash: B256,
    },
    /// Register an OS image with its measurements.
    AddOsImage {
        /// The OS image hash.
        #[arg(long)]
        image: B256,
        /// Where the version comes from.
        #[command(flatten)]
        provenance: ProvenanceArgs,
        /// A measurement as `<tee kind>:<hex registers>`, tee kind 1 = TDX, 2 = SEV-SNP,
        /// 3 = simulated (repeatable).
        #[arg(long = "measurement", value_parser = parse_measurement, required = true)]
        measurements: Vec<(u8, Bytes)>,
    },
    /// Deregister an OS image.
    RemoveOsImage {
        /// The OS image hash.
        #[arg(long)]
        image: B256,
    },
    /// Allow or forbid the simulated TEE (development only).
    SetAllowSimulatedTee {
        /// true or false.
        #[arg(long, action = clap::ArgAction::Set)]
        allowed: bool,
    },
    /// Allow a KMS node measurement (`mrAggregated` of its boot).
    AddKmsMeasurement {
        /// The measurement.
        #[arg(long)]
        measurement: B256,
    },
    /// Allow a device for KMS nodes.
    AddKmsDevice {
        /// The device id.
        #[arg(long)]
        device: B256,
    },
    /// Set the KMS root keys (a new root generation).
    SetKmsRootKeys {
        /// The root signer (secp256k1 address).
        #[arg(long)]
        signer: Address,
        /// The root CA public key (uncompressed SEC1 P-256, hex).
        #[arg(long)]
        ca_public_key: Bytes,
    },
    /// Onboard a KMS node: its identity address with its measurement and device.
    OnboardKmsNode {
        /// The node's identity address.
        #[arg(long)]
        node: Address,
        /// Its measurement.
        #[arg(long)]
        measurement: B256,
        /// Its device.
        #[arg(long)]
        device: B256,
    },
    /// Name the app whose instances are the gateway.
    SetGatewayApp {
        /// The gateway app (its address).
        #[arg(long)]
        app: Address,
    },
    /// Record the gateway's ACME account URI (what CAA `accounturi` records name).
    SetGatewayAcmeAccount {
        /// The account URI the gateway printed.
        #[arg(long)]
        uri: String,
    },
    /// Any call the Timelock may make: `--target` and hex `--calldata`.
    Raw {
        /// The contract to call.
        #[arg(long)]
        target: Address,
        /// The calldata (hex, with selector).
        #[arg(long)]
        calldata: Bytes,
    },
}

/// Where an artifact comes from: shown to voters next to the hash.
#[derive(Debug, clap::Args)]
pub struct ProvenanceArgs {
    /// The source repository.
    #[arg(long)]
    source_url: String,
    /// The source commit.
    #[arg(long)]
    commit: String,
    /// A digest of a built artifact, e.g. an image digest (repeatable).
    #[arg(long = "digest")]
    digests: Vec<B256>,
}

fn parse_measurement(s: &str) -> Result<(u8, Bytes), String> {
    let (kind, registers) = s
        .split_once(':')
        .ok_or("expected <tee kind>:<hex registers>")?;
    let kind: u8 = kind
        .parse()
        .map_err(|_| format!("tee kind `{kind}` is not 1, 2 or 3"))?;
    if !(1..=3).contains(&kind) {
        return Err(format!(
            "tee kind {kind} is not 1 (TDX), 2 (SEV-SNP) or 3 (simulated)"
        ));
    }
    let registers: Bytes = registers
        .parse()
        .map_err(|_| "the registers are not hex".to_owned())?;
    Ok((kind, registers))
}

impl Action {
    /// The call the Timelock will make.
    fn call(&self, chain: &Chain) -> (Address, Bytes) {
        let registry = chain.deployment.contracts.kms_registry;
        let domains = chain.deployment.contracts.domain_registry;
        match self {
            Self::AddComposeHash {
                app,
                hash,
                provenance,
            } => (
                *app,
                App::addComposeHashCall {
                    composeHash: *hash,
                    provenance: App::Provenance {
                        sourceUrl: provenance.source_url.clone(),
                        sourceCommit: provenance.commit.clone(),
                        artifactDigests: provenance.digests.clone(),
                    },
                }
                .abi_encode()
                .into(),
            ),
            Self::RemoveComposeHash { app, hash } => (
                *app,
                App::removeComposeHashCall { composeHash: *hash }
                    .abi_encode()
                    .into(),
            ),
            Self::AddOsImage {
                image,
                provenance,
                measurements,
            } => (
                registry,
                kms_registry::KmsRegistry::addOsImageCall {
                    osImageHash: *image,
                    provenance: kms_registry::KmsRegistry::Provenance {
                        sourceUrl: provenance.source_url.clone(),
                        sourceCommit: provenance.commit.clone(),
                        artifactDigests: provenance.digests.clone(),
                    },
                    measurements: measurements
                        .iter()
                        .map(
                            |(kind, registers)| kms_registry::KmsRegistry::OsMeasurement {
                                teeKind: *kind,
                                registers: registers.clone(),
                            },
                        )
                        .collect(),
                }
                .abi_encode()
                .into(),
            ),
            Self::RemoveOsImage { image } => (
                registry,
                kms_registry::KmsRegistry::removeOsImageCall {
                    osImageHash: *image,
                }
                .abi_encode()
                .into(),
            ),
            Self::SetAllowSimulatedTee { allowed } => (
                registry,
                kms_registry::KmsRegistry::setAllowSimulatedTeeCall { allowed: *allowed }
                    .abi_encode()
                    .into(),
            ),
            Self::AddKmsMeasurement { measurement } => (
                registry,
                kms_registry::KmsRegistry::addKmsMeasurementCall {
                    mrAggregated: *measurement,
                }
                .abi_encode()
                .into(),
            ),
            Self::AddKmsDevice { device } => (
                registry,
                kms_registry::KmsRegistry::addKmsDeviceCall { deviceId: *device }
                    .abi_encode()
                    .into(),
            ),
            Self::SetKmsRootKeys {
                signer,
                ca_public_key,
            } => (
                registry,
                kms_registry::KmsRegistry::setKmsRootKeysCall {
                    rootSigner: *signer,
                    caPublicKey: ca_public_key.clone(),
                }
                .abi_encode()
                .into(),
            ),
            Self::OnboardKmsNode {
                node,
                measurement,
                device,
            } => (
                registry,
                kms_registry::KmsRegistry::onboardKmsNodeCall {
                    node: *node,
                    mrAggregated: *measurement,
                    deviceId: *device,
                }
                .abi_encode()
                .into(),
            ),
            Self::SetGatewayApp { app } => (
                registry,
                kms_registry::KmsRegistry::setGatewayAppIdCall { appId: *app }
                    .abi_encode()
                    .into(),
            ),
            Self::SetGatewayAcmeAccount { uri } => (
                domains,
                DomainRegistry::setGatewayAcmeAccountCall {
                    accountUri: uri.clone(),
                }
                .abi_encode()
                .into(),
            ),
            Self::Raw { target, calldata } => (*target, calldata.clone()),
        }
    }
}

/// The proposal id the Governor gives these calls and description (OpenZeppelin's
/// `hashProposal`: keccak256 of the ABI-encoded targets, values, calldatas and description hash).
pub(crate) fn proposal_id(
    targets: &[Address],
    values: &[U256],
    calldatas: &[Bytes],
    description_hash: B256,
) -> U256 {
    let encoded = (
        targets.to_vec(),
        values.to_vec(),
        calldatas.to_vec(),
        description_hash,
    )
        .abi_encode_params();
    U256::from_be_bytes(keccak256(encoded).0)
}

/// Runs a `gov` command.
pub(crate) async fn run(global: &Global, command: GovCommand) -> Result<Report, Failure> {
    match command {
        GovCommand::Propose {
            description,
            calls,
            action,
        } => {
            let calls = match (calls, action) {
                (Some(file), None) => calls_file(&file)?,
                (None, Some(action)) => {
                    let chain = Chain::connect(global).await?;
                    let (target, calldata) = action.call(&chain);
                    vec![(target, U256::ZERO, calldata)]
                }
                _ => {
                    return Err(Failure::new("nothing to propose").next(
                        "name one change (`covenant gov propose --help`) or --calls <file>",
                    ));
                }
            };
            propose(global, &description, calls).await
        }
        GovCommand::Calldata { action } => {
            let chain = Chain::connect(global).await?;
            let (target, calldata) = action.call(&chain);
            let call = json!({
                "target": target.to_checksum(None),
                "value": "0",
                "calldata": calldata.to_string(),
            });
            Ok(Report::new(call.to_string(), call))
        }
        GovCommand::Vote {
            id,
            support,
            reason,
        } => vote(global, id, support, reason).await,
        GovCommand::Queue { id } => queue_or_execute(global, id, Step::Queue).await,
        GovCommand::Execute { id } => queue_or_execute(global, id, Step::Execute).await,
        GovCommand::Status { id: None } => list(global).await,
        GovCommand::Status { id: Some(id) } | GovCommand::Show { id } => show(global, id).await,
    }
}

/// The calls of a `--calls` file.
fn calls_file(file: &std::path::Path) -> Result<Vec<(Address, U256, Bytes)>, Failure> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct FileCall {
        target: Address,
        calldata: Bytes,
        #[serde(default)]
        value: Option<String>,
    }
    let text = std::fs::read(file).doing(&format!("reading {}", file.display()))?;
    let calls: Vec<FileCall> = serde_json::from_slice(&text).map_err(|e| {
        Failure::new(format!("{} is not a list of calls: {e}", file.display())).next(
            "write [{\"target\": \"0x…\", \"calldata\": \"0x…\"}, …]; `covenant gov calldata` \
             prints one",
        )
    })?;
    if calls.is_empty() {
        return Err(Failure::new(format!("{} lists no call", file.display())));
    }
    calls
        .into_iter()
        .map(|c| {
            let value = match c.value.as_deref() {
                None => U256::ZERO,
                Some(v) => U256::from_str_radix(v, 10).map_err(|_| {
                    Failure::new(format!("value `{v}` is not a decimal number of wei"))
                })?,
            };
            Ok((c.target, value, c.calldata))
        })
        .collect()
}

async fn propose(
    global: &Global,
    description: &str,
    calls: Vec<(Address, U256, Bytes)>,
) -> Result<Report, Failure> {
    let chain = Chain::connect(global).await?;
    let sender = Sender::from(global)?;
    let targets: Vec<Address> = calls.iter().map(|c| c.0).collect();
    let values: Vec<U256> = calls.iter().map(|c| c.1).collect();
    let calldatas: Vec<Bytes> = calls.iter().map(|c| c.2.clone()).collect();
    let id = proposal_id(
        &targets,
        &values,
        &calldatas,
        keccak256(description.as_bytes()),
    );
    let call = Call {
        to: chain.deployment.contracts.covenant_governor,
        data: governor::CovenantGovernor::proposeCall {
            targets: targets.clone(),
            values: values.clone(),
            calldatas: calldatas.clone(),
            description: description.to_owned(),
        }
        .abi_encode()
        .into(),
        what: format!("proposal {id}"),
    };
    let sent = send(&chain, &sender, call).await?;
    let created = sent.event::<governor::CovenantGovernor::ProposalCreated>();
    if let Some(created) = &created
        && created.proposalId != id
    {
        return Err(Failure::new(format!(
            "the Governor created proposal {}, not {id} as computed",
            created.proposalId
        )));
    }
    let mut rows = vec![("proposal", id.to_string())];
    for (target, value, calldata) in &calls {
        let value = if value.is_zero() {
            String::new()
        } else {
            format!("  value {value}")
        };
        rows.push(("call", format!("{target}  {calldata}{value}")));
    }
    let mut json = json!({
        "id": id.to_string(),
        "calls": calls.iter().map(|(t, v, c)| json!({
            "target": t.to_checksum(None),
            "value": v.to_string(),
            "calldata": c.to_string(),
        })).collect::<Vec<_>>(),
        "description": description,
        "sent": sent.json(),
    });
    if let Some(c) = &created {
        rows.push(("voting starts", time(c.voteStart.to::<u64>())));
        rows.push(("voting ends", time(c.voteEnd.to::<u64>())));
        json["vote_start"] = json!(c.voteStart.to::<u64>());
        json["vote_end"] = json!(c.voteEnd.to::<u64>());
    }
    let next = format!("next: covenant gov vote {id} for   (once voting starts)");
    Ok(Report::new(
        format!("{}\n{}\n{next}", fields(&rows), sent.text()),
        json,
    ))
}

async fn vote(
    global: &Global,
    id: U256,
    support: Support,
    reason: Option<String>,
) -> Result<Report, Failure> {
    let chain = Chain::connect(global).await?;
    let sender = Sender::from(global)?;
    let support_code = support as u8;
    let data: Bytes = match &reason {
        Some(reason) => governor::CovenantGovernor::castVoteWithReasonCall {
            proposalId: id,
            support: support_code,
            reason: reason.clone(),
        }
        .abi_encode()
        .into(),
        None => governor::CovenantGovernor::castVoteCall {
            proposalId: id,
            support: support_code,
        }
        .abi_encode()
        .into(),
    };
    let word = format!("{support:?}").to_lowercase();
    let call = Call {
        to: chain.deployment.contracts.covenant_governor,
        data,
        what: format!("a vote {word} proposal {id}"),
    };
    let sent = send(&chain, &sender, call).await?;
    let weight = sent
        .event::<governor::CovenantGovernor::VoteCast>()
        .map(|e| e.weight);
    let mut rows = vec![("proposal", id.to_string()), ("vote", word.clone())];
    if let Some(w) = weight {
        rows.push(("weight", w.to_string()));
    }
    Ok(Report::new(
        format!("{}\n{}", fields(&rows), sent.text()),
        json!({
            "id": id.to_string(),
            "support": word,
            "weight": weight.map(|w| w.to_string()),
            "sent": sent.json(),
        }),
    ))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    Queue,
    Execute,
}

/// The calls and description hash of proposal `id` as the indexer has it, checked against `id`.
async fn proposal_calls(
    indexer: &Indexer,
    id: U256,
) -> Result<(Vec<Address>, Vec<U256>, Vec<Bytes>, B256, Value), Failure> {
    let body = indexer
        .get(&format!("v1/proposals/{id}"))
        .await?
        .ok_or_else(|| {
            Failure::new(format!(
                "proposal {id} is not in the indexer's finalized view"
            ))
            .next("a new proposal shows once its block is final; check the id, or wait and retry")
        })?;
    let proposal = body;
    let malformed = |what: &str| Failure::new(format!("the indexer's proposal {id} has {what}"));
    let actions = proposal["actions"]
        .as_array()
        .ok_or_else(|| malformed("no actions"))?;
    let (mut targets, mut values, mut calldatas) = (Vec::new(), Vec::new(), Vec::new());
    for a in actions {
        targets.push(
            a["target"]
                .as_str()
                .and_then(|t| t.parse::<Address>().ok())
                .ok_or_else(|| malformed("an action without a target"))?,
        );
        values.push(
            a["value"]
                .as_str()
                .and_then(|v| U256::from_str_radix(v, 10).ok())
                .ok_or_else(|| malformed("an action without a value"))?,
        );
        calldatas.push(
            a["calldata"]
                .as_str()
                .and_then(|c| c.parse::<Bytes>().ok())
                .ok_or_else(|| malformed("an action without calldata"))?,
        );
    }
    let description = proposal["description"]
        .as_str()
        .ok_or_else(|| malformed("no description"))?;
    let description_hash = keccak256(description.as_bytes());
    let computed = proposal_id(&targets, &values, &calldatas, description_hash);
    if computed != id {
        return Err(Failure::new(format!(
            "the indexer's calls for proposal {id} hash to {computed}: refusing to send them"
        ))
        .next("the indexer is wrong or was tampered with; check it against the chain"));
    }
    Ok((targets, values, calldatas, description_hash, proposal))
}

async fn queue_or_execute(global: &Global, id: U256, step: Step) -> Result<Report, Failure> {
    let chain = Chain::connect(global).await?;
    let sender = Sender::from(global)?;
    let indexer = Indexer::new(global);
    let (targets, values, calldatas, description_hash, proposal) =
        proposal_calls(&indexer, id).await?;
    let (data, word): (Bytes, &str) = match step {
        Step::Queue => (
            governor::CovenantGovernor::queueCall {
                targets,
                values,
                calldatas,
                descriptionHash: description_hash,
            }
            .abi_encode()
            .into(),
            "queued",
        ),
        Step::Execute => (
            governor::CovenantGovernor::executeCall {
                targets,
                values,
                calldatas,
                descriptionHash: description_hash,
            }
            .abi_encode()
            .into(),
            "executed",
        ),
    };
    let verb = if step == Step::Queue {
        "queueing"
    } else {
        "executing"
    };
    let call = Call {
        to: chain.deployment.contracts.covenant_governor,
        data,
        what: format!("{verb} proposal {id}"),
    };
    let sent = send(&chain, &sender, call).await?;
    let mut text = vec![format!("proposal {id} {word}:")];
    text.extend(action_lines(&proposal));
    text.push(sent.text());
    if step == Step::Queue {
        text.push(format!(
            "next: covenant gov execute {id}   (after the Timelock's delay)"
        ));
    }
    Ok(Report::new(
        text.join("\n"),
        json!({ "id": id.to_string(), "step": word, "sent": sent.json() }),
    ))
}

/// One line per decoded call of an indexer proposal.
fn action_lines(proposal: &Value) -> Vec<String> {
    proposal["actions"]
        .as_array()
        .map(|actions| {
            actions
                .iter()
                .enumerate()
                .map(|(i, a)| format!("  {}. {}", i + 1, a["text"].as_str().unwrap_or("?")))
                .collect()
        })
        .unwrap_or_default()
}

async fn list(global: &Global) -> Result<Report, Failure> {
    let indexer = Indexer::new(global);
    let body = indexer
        .get("v1/proposals")
        .await?
        .ok_or_else(|| Failure::new("the indexer has no proposals endpoint"))?;
    let proposals = body["proposals"].as_array().cloned().unwrap_or_default();
    let mut lines = vec![format!(
        "{} proposal(s) at finalized block {}",
        proposals.len(),
        body["block"]["number"]
    )];
    for p in &proposals {
        lines.push(format!(
            "{}  {:<9}  {}",
            p["id"].as_str().unwrap_or("?"),
            p["state"].as_str().unwrap_or("?"),
            first_line(p["description"].as_str().unwrap_or(""))
        ));
    }
    Ok(Report::new(lines.join("\n"), body))
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

async fn show(global: &Global, id: U256) -> Result<Report, Failure> {
    let indexer = Indexer::new(global);
    let body = indexer
        .get(&format!("v1/proposals/{id}"))
        .await?
        .ok_or_else(|| {
            Failure::new(format!("no proposal {id} at the indexer's finalized block"))
                .next("list them with `covenant gov status`; a new one shows once final")
        })?;
    let p = &body;
    let tally = &p["tally"];
    let mut rows = vec![
        ("proposal", id.to_string()),
        ("state", p["state"].as_str().unwrap_or("?").to_owned()),
        (
            "description",
            p["description"].as_str().unwrap_or("").to_owned(),
        ),
        ("proposer", p["proposer"].as_str().unwrap_or("?").to_owned()),
        (
            "voting",
            format!(
                "from {} to {}",
                p["voteStart"].as_u64().map(time).unwrap_or_default(),
                p["voteEnd"].as_u64().map(time).unwrap_or_default()
            ),
        ),
        (
            "tally",
            format!(
                "for {}, against {}, abstain {} (quorum {})",
                tally["for"].as_str().unwrap_or("0"),
                tally["against"].as_str().unwrap_or("0"),
                tally["abstain"].as_str().unwrap_or("0"),
                p["quorum"].as_str().unwrap_or("?")
            ),
        ),
    ];
    if let Some(eta) = p["eta"].as_u64() {
        rows.push(("executable from", time(eta)));
    }
    rows.push(("finalized block", body["block"]["number"].to_string()));
    let mut text = vec![fields(&rows), "calls:".to_owned()];
    text.extend(action_lines(p));
    Ok(Report::new(text.join("\n"), body))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The id computed here is the one OpenZeppelin's Governor computes: a vector made with
    /// `cast keccak $(cast abi-encode "f(address[],uint256[],bytes[],bytes32)" "[0x…01]" "[0]"
    /// "[0x12345678]" $(cast keccak d))`, in decimal.
    #[test]
    fn the_proposal_id_is_the_governors_hash_of_the_calls_and_description() {
        let id = proposal_id(
            &[Address::with_last_byte(1)],
            &[U256::ZERO],
            &[Bytes::from_static(&[0x12, 0x34, 0x56, 0x78])],
            keccak256(b"d"),
        );
        let other = proposal_id(
            &[Address::with_last_byte(1)],
            &[U256::ZERO],
            &[Bytes::from_static(&[0x12, 0x34, 0x56, 0x79])],
            keccak256(b"d"),
        );
        assert_ne!(id, other);
        assert_eq!(id.to_string(), EXPECTED_ID);
    }

    const EXPECTED_ID: &str =
        "38581113969145095906185153386984604682821593903743980938464505407641963294120";

    #[test]
    fn a_measurement_names_its_tee_kind() {
        assert_eq!(
            parse_measurement("2:0x0102").unwrap(),
            (2, Bytes::from_static(&[1, 2]))
        );
        assert!(parse_measurement("4:0x01").is_err());
        assert!(parse_measurement("0x01").is_err());
        assert!(parse_measurement("1:zz").is_err());
    }
}
