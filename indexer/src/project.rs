//! Projections: what each event of each contract changes in the mirror. One function per
//! contract kind; every event is also kept verbatim (decoded) in `events`.

use alloy::{
    primitives::{Address, B256, Bytes, U256, keccak256},
    sol_types::{SolEvent, SolEventInterface, SolValue},
};
use covenant_chain::{app, domain_registry, governor, guardian, kms_registry, timelock, token};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{
    Result,
    abi::{Abis, Source},
    store::{At, Writer},
};

/// The name under which an app's log that the App ABI does not describe is stored.
pub const UNKNOWN_EVENT: &str = "UnknownAppEvent";

/// What the projections need to know beyond the log itself.
pub trait Lookup: Send + Sync {
    /// The kind of contract at `address`, if it is one of Covenant's.
    fn source_of(&self, address: Address) -> Option<Source>;
    /// The Governor's address (the timelock salt mixes it in).
    fn governor(&self) -> Address;
}

/// A log of a mirrored contract, with its position.
#[derive(Clone, Debug)]
pub struct SourcedLog {
    /// Which contract kind emitted it.
    pub source: Source,
    /// The emitting contract.
    pub address: Address,
    /// The topics.
    pub topics: Vec<B256>,
    /// The data.
    pub data: Bytes,
    /// Block number and log index.
    pub at: At,
    /// Block hash.
    pub block_hash: B256,
    /// Transaction hash.
    pub tx_hash: B256,
    /// Block timestamp.
    pub timestamp: Option<u64>,
}

/// Why a log could not be projected (the sync loop reports it with the log's position).
#[derive(Debug)]
pub struct ProjectError(pub String);

fn bad(e: impl std::fmt::Display) -> ProjectError {
    ProjectError(e.to_string())
}

fn provenance_json(url: &str, commit: &str, digests: &[B256], digest: B256) -> Value {
    json!({
        "provenanceDigest": digest.to_string(),
        "provenance": { "sourceUrl": url, "sourceCommit": commit,
                        "artifactDigests": digests.iter().map(|d| d.to_string()).collect::<Vec<_>>() },
    })
}

fn addr(a: Address) -> Value {
    json!(a.to_checksum(None))
}

/// Applies one log: stores it decoded in `events` and updates the projections.
pub async fn project(
    w: &mut Writer<'_>,
    abis: &Abis,
    lookup: &dyn Lookup,
    log: &SourcedLog,
) -> Result<std::result::Result<(), ProjectError>> {
    let (name, data) = match abis.decode_log(log.source, &log.topics, &log.data) {
        Ok(v) => v,
        // A custom app is an arbitrary contract: a log the App ABI does not describe is kept
        // verbatim and changes nothing (the policy of such apps is asked of the chain, never
        // mirrored). (A factory app's logs reach here only with an App ABI event signature, see
        // `contracts.rs`, though one of unexpected layout still lands here.) The registries' own
        // logs must all be known.
        Err(_) if log.source == Source::App => {
            let raw = json!({
                "topics": log.topics.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
                "data": log.data.to_string(),
            });
            w.event(
                log.block_hash,
                log.at,
                log.tx_hash,
                log.address.as_slice(),
                log.source.as_str(),
                UNKNOWN_EVENT,
                &raw,
            );
            return Ok(Ok(()));
        }
        Err(e) => return Ok(Err(bad(e))),
    };
    w.event(
        log.block_hash,
        log.at,
        log.tx_hash,
        log.address.as_slice(),
        log.source.as_str(),
        &name,
        &data,
    );
    let scope = log.address.as_slice();
    if matches!(
        log.source,
        Source::KmsRegistry | Source::App | Source::DomainRegistry
    ) {
        match proxy_event(w, scope, log).await? {
            Some(true) => return Ok(Ok(())),
            Some(false) => {}
            // Same topic, other layout: only an app contract of unknown code can do that.
            None if log.source == Source::App => return Ok(Ok(())),
            None => {
                return Ok(Err(bad(
                    "malformed ownership, upgrade or initialization event",
                )));
            }
        }
    }
    match log.source {
        Source::KmsRegistry => {
            let ev = match kms_registry::KmsRegistry::KmsRegistryEvents::decode_raw_log(
                &log.topics,
                &log.data,
            ) {
                Ok(ev) => ev,
                Err(e) => return Ok(Err(bad(e))),
            };
            kms_registry_event(w, scope, ev, log.at).await?;
        }
        Source::App => {
            let Ok(ev) = app::App::AppEvents::decode_raw_log(&log.topics, &log.data) else {
                // Kept verbatim above; an app of unknown code changes no projection.
                return Ok(Ok(()));
            };
            app_event(w, scope, ev, log.at).await?;
        }
        Source::DomainRegistry => {
            let ev = match domain_registry::DomainRegistry::DomainRegistryEvents::decode_raw_log(
                &log.topics,
                &log.data,
            ) {
                Ok(ev) => ev,
                Err(e) => return Ok(Err(bad(e))),
            };
            domain_event(w, scope, ev, log.at).await?;
        }
        Source::Governor => {
            let ev = match governor::CovenantGovernor::CovenantGovernorEvents::decode_raw_log(
                &log.topics,
                &log.data,
            ) {
                Ok(ev) => ev,
                Err(e) => return Ok(Err(bad(e))),
            };
            if let Err(e) = governor_event(w, abis, lookup, scope, ev, log).await? {
                return Ok(Err(e));
            }
        }
        Source::Timelock => {
            let ev = match timelock::TimelockController::TimelockControllerEvents::decode_raw_log(
                &log.topics,
                &log.data,
            ) {
                Ok(ev) => ev,
                Err(e) => return Ok(Err(bad(e))),
            };
            use timelock::TimelockController::TimelockControllerEvents as E;
            match ev {
                E::CallExecuted(e) => w.timelock_op(e.id, "executed", log.at),
                E::Cancelled(e) => w.timelock_op(e.id, "cancelled", log.at),
                E::MinDelayChange(e) => {
                    w.set(
                        scope,
                        "min_delay",
                        &json!(e.newDuration.to_string()),
                        log.at,
                    )
                    .await?
                }
                _ => {}
            }
        }
        Source::Guardian => {
            let ev = match guardian::CovenantGuardian::CovenantGuardianEvents::decode_raw_log(
                &log.topics,
                &log.data,
            ) {
                Ok(ev) => ev,
                Err(e) => return Ok(Err(bad(e))),
            };
            use guardian::CovenantGuardian::CovenantGuardianEvents as E;
            match ev {
                E::GuardianTermSet(e) => {
                    w.set(scope, "guardian_expires_at", &json!(e.expiresAt), log.at)
                        .await?
                }
                E::GuardianSet(e) => w.set(scope, "guardian", &addr(e.guardian), log.at).await?,
                // The Timelock's own `Cancelled` records the operation.
                E::OperationCancelled(_) => {}
            }
        }
        Source::Token => {
            let ev = match token::CovenantToken::CovenantTokenEvents::decode_raw_log(
                &log.topics,
                &log.data,
            ) {
                Ok(ev) => ev,
                Err(e) => return Ok(Err(bad(e))),
            };
            if let token::CovenantToken::CovenantTokenEvents::Transfer(t) = ev {
                let delta = if t.from == Address::ZERO && t.to != Address::ZERO {
                    Some(t.value.to_string())
                } else if t.to == Address::ZERO && t.from != Address::ZERO {
                    Some(format!("-{}", t.value))
                } else {
                    None
                };
                if let Some(delta) = delta {
                    let Some(ts) = log.timestamp else {
                        return Ok(Err(bad("token supply change without a block timestamp")));
                    };
                    w.checkpoint("supply", ts, &delta, log.at);
                }
            }
        }
    }
    Ok(Ok(()))
}

/// The events every upgradeable registry and app shares (OpenZeppelin `Ownable2Step`, UUPS
/// `Upgraded`, `Initializable`), handled once. Returns whether the log was one of them. Ownership
/// moving clears the pending owner, as `Ownable2Step` does.
async fn proxy_event(w: &mut Writer<'_>, scope: &[u8], log: &SourcedLog) -> Result<Option<bool>> {
    use app::App::{Initialized, OwnershipTransferStarted, OwnershipTransferred, Upgraded};
    let Some(topic) = log.topics.first().copied() else {
        return Ok(Some(false));
    };
    let (topics, data, at) = (&log.topics[..], &log.data[..], log.at);
    if topic == OwnershipTransferred::SIGNATURE_HASH {
        let Ok(e) = OwnershipTransferred::decode_raw_log(topics, data) else {
            return Ok(None);
        };
        w.set(scope, "owner", &addr(e.newOwner), at).await?;
        w.set(scope, "pending_owner", &addr(Address::ZERO), at)
            .await?;
    } else if topic == OwnershipTransferStarted::SIGNATURE_HASH {
        let Ok(e) = OwnershipTransferStarted::decode_raw_log(topics, data) else {
            return Ok(None);
        };
        w.set(scope, "pending_owner", &addr(e.newOwner), at).await?;
    } else if topic == Upgraded::SIGNATURE_HASH {
        let Ok(e) = Upgraded::decode_raw_log(topics, data) else {
            return Ok(None);
        };
        w.set(scope, "implementation", &addr(e.implementation), at)
            .await?;
    } else if topic == Initialized::SIGNATURE_HASH {
        let Ok(e) = Initialized::decode_raw_log(topics, data) else {
            return Ok(None);
        };
        w.set(scope, "initialized_version", &json!(e.version), at)
            .await?;
    } else {
        return Ok(Some(false));
    }
    Ok(Some(true))
}

async fn kms_registry_event(
    w: &mut Writer<'_>,
    scope: &[u8],
    ev: kms_registry::KmsRegistry::KmsRegistryEvents,
    at: At,
) -> Result<()> {
    use kms_registry::KmsRegistry::KmsRegistryEvents as E;
    match ev {
        E::OsImageAdded(e) => {
            let p = &e.provenance;
            let mut data = provenance_json(
                &p.sourceUrl,
                &p.sourceCommit,
                &p.artifactDigests,
                e.provenanceDigest,
            );
            // The registers as registered, and their sha256 (what `BootInfo.osMeasurement` is).
            let measurements: Vec<Value> = e
                .measurements
                .iter()
                .map(|m| {
                    json!({
                        "teeKind": m.teeKind,
                        "registers": m.registers.to_string(),
                        "osMeasurement": B256::from(<[u8; 32]>::from(Sha256::digest(&m.registers))).to_string(),
                    })
                })
                .collect();
            data["measurements"] = Value::Array(measurements);
            data["effectiveAt"] = json!(e.effectiveAt);
            w.add_member("os_image", scope, e.osImageHash.as_slice(), &data, at);
        }
        E::MinNoticePeriodSet(e) => {
            w.set(scope, "min_notice_period", &json!(e.minNoticePeriod), at)
                .await?
        }
        E::OsImageRemoved(e) => {
            w.remove_member("os_image", scope, e.osImageHash.as_slice(), at)
                .await?
        }
        E::KmsMeasurementAdded(e) => w.add_member(
            "kms_measurement",
            scope,
            e.mrAggregated.as_slice(),
            &json!({}),
            at,
        ),
        E::KmsMeasurementRemoved(e) => {
            w.remove_member("kms_measurement", scope, e.mrAggregated.as_slice(), at)
                .await?
        }
        E::KmsDeviceAdded(e) => {
            w.add_member("kms_device", scope, e.deviceId.as_slice(), &json!({}), at)
        }
        E::KmsDeviceRemoved(e) => {
            w.remove_member("kms_device", scope, e.deviceId.as_slice(), at)
                .await?
        }
        E::KmsNodeOnboarded(e) => {
            let data = json!({
                "onboardedBy": addr(e.onboardedBy),
                "mrAggregated": e.mrAggregated.to_string(),
                "deviceId": e.deviceId.to_string(),
                "onboardedAt": e.onboardedAt,
            });
            w.add_member("kms_node", scope, e.node.as_slice(), &data, at);
        }
        E::KmsNodeRemoved(e) => {
            w.remove_member("kms_node", scope, e.node.as_slice(), at)
                .await?
        }
        E::KmsRootKeysSet(e) => {
            let data = json!({
                "generation": e.generation,
                "rootSigner": addr(e.rootSigner),
                "caPublicKey": e.caPublicKey.to_string(),
            });
            w.add_member("root_keys", scope, &e.generation.to_be_bytes(), &data, at);
            w.set(scope, "key_generation", &json!(e.generation), at)
                .await?;
        }
        E::GatewayAppIdSet(e) => {
            w.set(scope, "gateway_app_id", &addr(e.newAppId), at)
                .await?
        }
        E::AllowSimulatedTeeSet(e) => {
            w.set(scope, "allow_simulated_tee", &json!(e.allowed), at)
                .await?
        }
        E::AppImplementationSet(e) => {
            w.set(scope, "app_implementation", &addr(e.newImplementation), at)
                .await?
        }
        E::AppCreated(e) => {
            let data = json!({ "kind": "factory", "owner": addr(e.owner), "implementation": addr(e.implementation) });
            w.add_member("app", scope, e.app.as_slice(), &data, at);
        }
        E::CustomAppRegistered(e) => w.add_member(
            "app",
            scope,
            e.app.as_slice(),
            &json!({ "kind": "custom" }),
            at,
        ),
        E::AppDeregistered(e) => w.remove_member("app", scope, e.app.as_slice(), at).await?,
        E::GrantLogCommitted(e) => {
            let mut member = e.node.to_vec();
            member.extend_from_slice(&e.fromSeq.to_be_bytes());
            let data = json!({
                "node": addr(e.node),
                "fromSeq": e.fromSeq,
                "toSeq": e.toSeq,
                "merkleRoot": e.merkleRoot.to_string(),
            });
            w.add_member("grant_log", scope, &member, &data, at);
        }
        // Ownable2Step, UUPS and Initializable events: see `proxy_event`.
        E::OwnershipTransferred(_)
        | E::OwnershipTransferStarted(_)
        | E::Upgraded(_)
        | E::Initialized(_) => {}
    }
    Ok(())
}

async fn app_event(
    w: &mut Writer<'_>,
    scope: &[u8],
    ev: app::App::AppEvents,
    at: At,
) -> Result<()> {
    use app::App::AppEvents as E;
    match ev {
        E::ComposeHashAdded(e) => {
            let p = &e.provenance;
            let mut data = provenance_json(
                &p.sourceUrl,
                &p.sourceCommit,
                &p.artifactDigests,
                e.provenanceDigest,
            );
            data["effectiveAt"] = json!(e.effectiveAt);
            w.add_member("compose_hash", scope, e.composeHash.as_slice(), &data, at);
        }
        E::ComposeHashRemoved(e) => {
            w.remove_member("compose_hash", scope, e.composeHash.as_slice(), at)
                .await?
        }
        E::DeviceAdded(e) => w.add_member(
            "device",
            scope,
            e.deviceId.as_slice(),
            &json!({ "effectiveAt": e.effectiveAt }),
            at,
        ),
        E::DeviceRemoved(e) => {
            w.remove_member("device", scope, e.deviceId.as_slice(), at)
                .await?
        }
        E::SettingsScheduled(e) => {
            let settings = |s: &app::IApp::Settings| {
                json!({
                    "allowedTeeKinds": s.allowedTeeKinds,
                    "anyDevice": s.anyDevice,
                    "requireUpToDateTcb": s.requireUpToDateTcb,
                    "requireGpu": s.requireGpu,
                })
            };
            let value = json!({
                "before": settings(&e.before),
                "scheduled": settings(&e.scheduled),
                "effectiveAt": e.effectiveAt,
            });
            w.set(scope, "settings", &value, at).await?
        }
        E::NoticePeriodSet(e) => {
            w.set(scope, "notice_period", &json!(e.noticePeriod), at)
                .await?
        }
        E::KeyGenerationBumped(e) => {
            w.set(scope, "key_generation", &json!(e.newGeneration), at)
                .await?
        }
        E::AppFrozen(_) => w.set(scope, "frozen", &json!(true), at).await?,
        // Ownable2Step, UUPS and Initializable events: see `proxy_event`.
        E::OwnershipTransferred(_)
        | E::OwnershipTransferStarted(_)
        | E::Upgraded(_)
        | E::Initialized(_) => {}
    }
    Ok(())
}

/// A claim's member key: the domain's hash, then the claiming app.
pub fn claim_key(domain_hash: B256, app: Address) -> Vec<u8> {
    let mut key = domain_hash.to_vec();
    key.extend_from_slice(app.as_slice());
    key
}

async fn domain_event(
    w: &mut Writer<'_>,
    scope: &[u8],
    ev: domain_registry::DomainRegistry::DomainRegistryEvents,
    at: At,
) -> Result<()> {
    use domain_registry::DomainRegistry::DomainRegistryEvents as E;
    match ev {
        E::DomainClaimed(e) => {
            let data = json!({ "domain": e.domain, "app": addr(e.app) });
            w.add_member(
                "domain_claim",
                scope,
                &claim_key(e.domainHash, e.app),
                &data,
                at,
            );
        }
        E::DomainClaimReleased(e) => {
            w.remove_member("domain_claim", scope, &claim_key(e.domainHash, e.app), at)
                .await?
        }
        E::GatewayAcmeAccountSet(e) => {
            w.set(scope, "gateway_acme_account", &json!(e.accountUri), at)
                .await?
        }
        // Ownable2Step, UUPS and Initializable events: see `proxy_event`.
        E::OwnershipTransferred(_)
        | E::OwnershipTransferStarted(_)
        | E::Upgraded(_)
        | E::Initialized(_) => {}
    }
    Ok(())
}

/// The id the Governor's timelock extension queues a proposal under:
/// `hashOperationBatch(targets, values, calldatas, 0, bytes20(governor) ^ keccak256(description))`.
pub fn timelock_operation_id(
    governor: Address,
    targets: &[Address],
    values: &[U256],
    calldatas: &[Bytes],
    description: &str,
) -> B256 {
    let mut salt = keccak256(description.as_bytes());
    for (s, g) in salt.0.iter_mut().zip(governor.as_slice()) {
        *s ^= g;
    }
    let encoded = (
        targets.to_vec(),
        values.to_vec(),
        calldatas.to_vec(),
        B256::ZERO,
        salt,
    )
        .abi_encode_params();
    keccak256(encoded)
}

async fn governor_event(
    w: &mut Writer<'_>,
    abis: &Abis,
    lookup: &dyn Lookup,
    scope: &[u8],
    ev: governor::CovenantGovernor::CovenantGovernorEvents,
    log: &SourcedLog,
) -> Result<std::result::Result<(), ProjectError>> {
    use governor::CovenantGovernor::CovenantGovernorEvents as E;
    let at = log.at;
    match ev {
        E::ProposalCreated(e) => {
            if e.targets.len() != e.values.len() || e.targets.len() != e.calldatas.len() {
                return Ok(Err(bad(
                    "proposal with mismatched targets, values and calldatas",
                )));
            }
            let actions: Vec<Value> = e
                .targets
                .iter()
                .zip(&e.values)
                .zip(&e.calldatas)
                .map(|((t, v), c)| {
                    abis.decode_call(
                        lookup.source_of(*t),
                        &t.to_checksum(None),
                        &v.to_string(),
                        c,
                    )
                })
                .collect();
            let timelock_id = timelock_operation_id(
                lookup.governor(),
                &e.targets,
                &e.values,
                &e.calldatas,
                &e.description,
            );
            let (Ok(start), Ok(end)) = (u64::try_from(e.voteStart), u64::try_from(e.voteEnd))
            else {
                return Ok(Err(bad("vote start or end beyond 64 bits")));
            };
            w.proposal(
                &e.proposalId.to_string(),
                e.proposer.as_slice(),
                &Value::Array(actions),
                start,
                end,
                &e.description,
                timelock_id,
                at,
            );
        }
        E::ProposalQueued(e) => {
            let eta = u64::try_from(e.etaSeconds).unwrap_or(u64::MAX);
            w.transition(&e.proposalId.to_string(), "queued", Some(eta), at);
        }
        E::ProposalExecuted(e) => w.transition(&e.proposalId.to_string(), "executed", None, at),
        E::ProposalCanceled(e) => w.transition(&e.proposalId.to_string(), "canceled", None, at),
        E::VoteCast(e) => w.vote(
            &e.proposalId.to_string(),
            e.voter.as_slice(),
            e.support,
            &e.weight.to_string(),
            &e.reason,
            at,
        ),
        E::VoteCastWithParams(e) => w.vote(
            &e.proposalId.to_string(),
            e.voter.as_slice(),
            e.support,
            &e.weight.to_string(),
            &e.reason,
            at,
        ),
        E::QuorumNumeratorUpdated(e) => {
            let Some(ts) = log.timestamp else {
                return Ok(Err(bad("quorum change without a block timestamp")));
            };
            w.checkpoint(
                "quorum_numerator",
                ts,
                &e.newQuorumNumerator.to_string(),
                at,
            );
        }
        E::VotingDelaySet(e) => {
            w.set(
                scope,
                "voting_delay",
                &json!(e.newVotingDelay.to_string()),
                at,
            )
            .await?
        }
        E::VotingPeriodSet(e) => {
            w.set(
                scope,
                "voting_period",
                &json!(e.newVotingPeriod.to_string()),
                at,
            )
            .await?
        }
        E::ProposalThresholdSet(e) => {
            w.set(
                scope,
                "proposal_threshold",
                &json!(e.newProposalThreshold.to_string()),
                at,
            )
            .await?
        }
        E::TimelockChange(e) => w.set(scope, "timelock", &addr(e.newTimelock), at).await?,
        E::EIP712DomainChanged(_) => {}
    }
    Ok(Ok(()))
}
