//! The decision: verified evidence → `BootInfo` → allowed or not at the mirror's finalized block,
//! by the indexer's mirror *and* `eth_call isAppAllowed` pinned to that block's hash; when they
//! disagree the answer is deny (with a metric and a log line). A finalized block older than the
//! configured bound denies everything. Before any app decision the node checks that the chain,
//! at the same block, still allows *this node* (`isKmsAllowed` of its own evidence, its active
//! onboarding record) and that the registered root keys are the ones it derives.
//!
//! Decisions, and the mirror's facts they read, are memoised only for the block they were made
//! at: the memo is keyed by the block hash and dropped as soon as the finalized block moves, so
//! it cannot outlive a revocation. Facts are shared by the instances of one app (they do not
//! depend on the instance id), and so is the `eth_call` answer when the chain shows that the
//! deciding code is the deployment's own registry and App implementation, which read the
//! instance id only to require it non-zero and never read `mrAggregated` for apps; custom policy
//! contracts get an `eth_call` for every distinct `BootInfo`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use alloy::primitives::{Address, B256, FixedBytes};
use covenant_attest::VerifiedEvidence;
use covenant_chain::{BootInfo, app::App, kms_registry::KmsRegistry};
use covenant_indexer::{
    facts,
    policy::{
        self as mirror_policy, AppRegistration, BootInfoJson, Decision, EnumValue, RegistryFacts,
    },
};
use tokio::sync::watch;

use crate::{
    Error, Result,
    chain::{Chain, Finalized},
    identity::OwnIdentity,
    keys::{Domain, RootKeys, RootSecret},
    metrics::Metrics,
};

/// Why a request was refused, and at which stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deny {
    /// `chain_view`, `node`, `policy`, `disagreement` or `unavailable` (a metric label).
    pub stage: &'static str,
    /// A clear reason (the contract's own reason for policy denials).
    pub reason: String,
    /// The block decided at, if one was used.
    pub block: Option<Finalized>,
}

/// A grant: the block it was decided at, the boot as judged, and the root keys to sign with.
#[derive(Clone)]
pub struct Grant {
    /// The finalized block.
    pub block: Finalized,
    /// The boot with the app's key generation.
    pub boot: BootInfo,
    /// The registered root keys.
    pub roots: Arc<RootKeys>,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("block", &self.block)
            .field("app", &self.boot.appId)
            .field("key_generation", &self.boot.keyGeneration)
            .finish_non_exhaustive()
    }
}

/// The node may serve at a block: the root keys registered there.
#[derive(Clone, Debug)]
pub struct Serving {
    /// The finalized block.
    pub block: Finalized,
    /// The registered root keys (derived by this node and equal to the chain's).
    pub roots: Arc<RootKeys>,
}

/// What the mirror's facts about a boot depend on: app, compose hash, device and OS image (not
/// the instance: instances of one app on one kind of machine share them).
type FactsKey = (Address, B256, B256, B256);

#[derive(Default)]
struct Memo {
    block: B256,
    serving: Option<Result<Arc<RootKeys>, String>>,
    apps: HashMap<Vec<u8>, (u64, Result<(), String>)>,
    facts: HashMap<FactsKey, (RegistryFacts, AppRegistration)>,
    chain: HashMap<Vec<u8>, Decision>,
    known_registry: Option<bool>,
    known_code: HashMap<Address, bool>,
}

const MEMO_LIMIT: usize = 65_536;

/// Inserts into one of the memo's maps, which start again empty when full.
fn insert_bounded<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, key: K, value: V) {
    if map.len() >= MEMO_LIMIT {
        map.clear();
    }
    map.insert(key, value);
}

/// `IKmsRegistry.AppKind.Factory`.
const APP_KIND_FACTORY: u8 = 1;

/// Decides.
pub struct Decider {
    chain: Chain,
    finalized: watch::Receiver<Option<Finalized>>,
    max_age: Duration,
    own: Arc<OwnIdentity>,
    root: Arc<RootSecret>,
    domain: Domain,
    metrics: Metrics,
    memo: Mutex<Memo>,
    roots: Mutex<HashMap<u64, Arc<RootKeys>>>,
}

impl std::fmt::Debug for Decider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decider")
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

fn boot_json(b: &BootInfo) -> BootInfoJson {
    BootInfoJson {
        app_id: b.appId,
        compose_hash: b.composeHash,
        instance_id: b.instanceId,
        device_id: b.deviceId,
        mr_aggregated: b.mrAggregated,
        os_image_hash: b.osImageHash,
        tee_kind: EnumValue::Number(b.teeKind),
        tcb_status: EnumValue::Number(b.tcbStatus),
        gpu_evidence_hash: b.gpuEvidenceHash,
        key_generation: b.keyGeneration,
    }
}

impl Decider {
    /// A decider for this node.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        chain: Chain,
        finalized: watch::Receiver<Option<Finalized>>,
        max_age: Duration,
        own: Arc<OwnIdentity>,
        root: Arc<RootSecret>,
        domain: Domain,
        metrics: Metrics,
    ) -> Self {
        Self {
            chain,
            finalized,
            max_age,
            own,
            root,
            domain,
            metrics,
            memo: Mutex::new(Memo::default()),
            roots: Mutex::new(HashMap::new()),
        }
    }

    /// The chain access.
    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// The finalized block to decide at, if it is fresh enough.
    pub fn current_block(&self) -> Result<Finalized, Deny> {
        let Some(block) = *self.finalized.borrow() else {
            return Err(Deny {
                stage: "chain_view",
                reason: "no finalized block in the mirror yet".into(),
                block: None,
            });
        };
        self.metrics.finalized_block.set(block.number as i64);
        self.metrics
            .finalized_timestamp_seconds
            .set(block.timestamp as i64);
        let age = (crate::server::now_ms() / 1000).saturating_sub(block.timestamp);
        if age > self.max_age.as_secs() {
            return Err(Deny {
                stage: "chain_view",
                reason: format!(
                    "finalized head is stale: block {} is {age} s old, the bound is {} s",
                    block.number,
                    self.max_age.as_secs()
                ),
                block: Some(block),
            });
        }
        Ok(block)
    }

    fn root_keys(&self, generation: u64) -> Result<Arc<RootKeys>> {
        if let Ok(map) = self.roots.lock()
            && let Some(k) = map.get(&generation)
        {
            return Ok(k.clone());
        }
        let keys = Arc::new(RootKeys::derive(&self.root, &self.domain, generation)?);
        if let Ok(mut map) = self.roots.lock() {
            map.insert(generation, keys.clone());
        }
        Ok(keys)
    }

    fn with_memo<T>(&self, block: &Finalized, f: impl FnOnce(&mut Memo) -> T) -> Option<T> {
        let mut memo = self.memo.lock().ok()?;
        if memo.block != block.hash {
            *memo = Memo {
                block: block.hash,
                ..Memo::default()
            };
        }
        Some(f(&mut memo))
    }

    /// Whether this node may serve at `block` (memoised for that block).
    pub async fn serving_at(&self, block: Finalized) -> Result<Serving, Deny> {
        let cached = self.with_memo(&block, |m| m.serving.clone()).flatten();
        let result = match cached {
            Some(r) => r,
            None => {
                let r = match self.check_serving(&block).await {
                    Ok(r) => r,
                    Err(e) => {
                        self.metrics.serving.set(0);
                        return Err(Deny {
                            stage: "unavailable",
                            reason: format!("cannot check this node against the chain: {e}"),
                            block: Some(block),
                        });
                    }
                };
                self.with_memo(&block, |m| m.serving = Some(r.clone()));
                r
            }
        };
        self.metrics.serving.set(i64::from(result.is_ok()));
        match result {
            Ok(roots) => Ok(Serving { block, roots }),
            Err(reason) => Err(Deny {
                stage: "node",
                reason: format!(
                    "this KMS node may not serve at block {}: {reason}",
                    block.number
                ),
                block: Some(block),
            }),
        }
    }

    async fn check_serving(&self, block: &Finalized) -> Result<Result<Arc<RootKeys>, String>> {
        let registry = self.chain.registry();
        let boot = self.own.boot();
        let json = boot_json(&boot);
        let (mirror_kms, mirror_node, mirror_roots) = {
            let mut c = self.chain.mirror().acquire().await?;
            let d = facts::kms_at(
                &mut c,
                registry,
                &json,
                boot.teeKind,
                boot.tcbStatus,
                block.number,
            )
            .await?;
            let n = facts::kms_node_at(&mut c, registry, self.own.node, block.number).await?;
            let r = facts::root_keys_at(&mut c, registry, block.number).await?;
            (d, n, r)
        };
        let chain_kms = self
            .chain
            .call(
                registry,
                &KmsRegistry::isKmsAllowedCall { boot: boot.clone() },
                block.hash,
            )
            .await?;
        let chain_node = self
            .chain
            .call(
                registry,
                &KmsRegistry::kmsNodeCall {
                    node: self.own.node,
                },
                block.hash,
            )
            .await?;
        let chain_roots = self
            .chain
            .call(registry, &KmsRegistry::kmsRootKeysCall {}, block.hash)
            .await?;
        if mirror_kms.allowed != chain_kms._0 || mirror_kms.reason != chain_kms._1 {
            self.disagreement("isKmsAllowed", &mirror_kms.reason, &chain_kms._1);
            return Ok(Err(
                "the mirror and the chain disagree about this node".into()
            ));
        }
        if !chain_kms._0 {
            return Ok(Err(format!("isKmsAllowed: {}", chain_kms._1)));
        }
        if mirror_node.is_some() != chain_node.active {
            self.disagreement(
                "kmsNode",
                &format!("{:?}", mirror_node.is_some()),
                &chain_node.active.to_string(),
            );
            return Ok(Err(
                "the mirror and the chain disagree about this node's record".into(),
            ));
        }
        if !chain_node.active {
            return Ok(Err(format!(
                "node {} is not an active KMS node",
                self.own.node
            )));
        }
        let chain_generation = chain_roots._2;
        let mirror_matches = mirror_roots.as_ref().is_some_and(|(g, signer, ca)| {
            *g == chain_generation
                && *signer == chain_roots._0
                && ca.as_slice() == chain_roots._1.as_ref()
        });
        if chain_generation == 0 {
            return Ok(Err("no KMS root keys are registered".into()));
        }
        if !mirror_matches {
            self.disagreement("kmsRootKeys", "mirror root keys", "chain root keys");
            return Ok(Err(
                "the mirror and the chain disagree about the root keys".into()
            ));
        }
        let roots = self.root_keys(chain_generation)?;
        if roots.signer_address != chain_roots._0
            || roots.ca_public_key.as_slice() != chain_roots._1.as_ref()
        {
            return Ok(Err(format!(
                "the registered root keys of generation {chain_generation} are not this node's (signer {} registered, {} derived)",
                chain_roots._0, roots.signer_address
            )));
        }
        Ok(Ok(roots))
    }

    fn disagreement(&self, what: &str, mirror: &str, chain: &str) {
        disagreement(&self.metrics, what, mirror, chain);
    }

    /// Decides whether `evidence` may receive its app's keys now.
    pub async fn decide_app(
        &self,
        evidence: &VerifiedEvidence,
    ) -> Result<Grant, (Deny, Option<BootInfo>)> {
        let block = self.current_block().map_err(|d| (d, None))?;
        let serving = self.serving_at(block).await.map_err(|d| (d, None))?;
        let boot0 = covenant_chain::boot_info(evidence, 0);
        let key = alloy::sol_types::SolValue::abi_encode(&boot0);
        let cached = self
            .with_memo(&block, |m| m.apps.get(&key).cloned())
            .flatten();
        let (generation, verdict) = match cached {
            Some(v) => v,
            None => {
                let v = match self.check_app(&block, &boot0).await {
                    Ok(v) => v,
                    Err(e) => {
                        let boot = boot0.clone();
                        return Err((
                            Deny {
                                stage: "unavailable",
                                reason: format!("cannot decide: {e}"),
                                block: Some(block),
                            },
                            Some(boot),
                        ));
                    }
                };
                self.with_memo(&block, |m| {
                    insert_bounded(&mut m.apps, key, v.clone());
                });
                v
            }
        };
        let boot = BootInfo {
            keyGeneration: generation,
            ..boot0
        };
        match verdict {
            Ok(()) => Ok(Grant {
                block,
                boot,
                roots: serving.roots,
            }),
            Err(reason) => {
                let stage = if reason.starts_with("the mirror and the chain disagree") {
                    "disagreement"
                } else {
                    "policy"
                };
                Err((
                    Deny {
                        stage,
                        reason,
                        block: Some(block),
                    },
                    Some(boot),
                ))
            }
        }
    }

    async fn check_app(
        &self,
        block: &Finalized,
        boot0: &BootInfo,
    ) -> Result<(u64, Result<(), String>)> {
        let registry = self.chain.registry();
        let mut json = boot_json(boot0);
        let facts_key = (
            boot0.appId,
            boot0.composeHash,
            boot0.deviceId,
            boot0.osImageHash,
        );
        let cached = self
            .with_memo(block, |m| m.facts.get(&facts_key).cloned())
            .flatten();
        let (registry_facts, registration) = match cached {
            Some(f) => f,
            None => {
                let mut c = self.chain.mirror().acquire().await?;
                let f = facts::registry_facts(&mut c, registry, &json, block.number).await?;
                let r = facts::app_registration(
                    &mut c,
                    self.chain.deployment.contracts.app_implementation,
                    &json,
                    block.number,
                )
                .await?;
                self.with_memo(block, |m| {
                    insert_bounded(&mut m.facts, facts_key, (f.clone(), r.clone()));
                });
                (f, r)
            }
        };
        let generation = match &registration {
            AppRegistration::Mirrored(f) => f.key_generation,
            AppRegistration::None => 0,
            AppRegistration::Delegated => self.app_generation(boot0.appId, block.hash).await,
        };
        json.key_generation = generation;
        let boot = BootInfo {
            keyGeneration: generation,
            ..boot0.clone()
        };
        let mirror = mirror_policy::app_decision(
            &json,
            boot.teeKind,
            boot.tcbStatus,
            &registry_facts,
            &registration,
        );
        let chain = self.chain_verdict(block, boot).await?;
        if let Some(m) = &mirror
            && *m != chain
        {
            self.disagreement("isAppAllowed", &m.reason, &chain.reason);
            return Ok((
                generation,
                Err(format!(
                    "the mirror and the chain disagree at block {} (mirror: {}, chain: {})",
                    block.number,
                    if m.allowed {
                        "allowed"
                    } else {
                        m.reason.as_str()
                    },
                    if chain.allowed {
                        "allowed"
                    } else {
                        chain.reason.as_str()
                    },
                )),
            ));
        }
        Ok((
            generation,
            if chain.allowed {
                Ok(())
            } else {
                Err(chain.reason)
            },
        ))
    }

    /// Whether, by the chain at `block`, `app`'s decision is made by code this deployment
    /// knows: the registry runs the deployed implementation and `app` was created by the factory
    /// and runs the deployed App implementation (memoised for the block).
    async fn known_policy_code(&self, block: &Finalized, app: Address) -> Result<bool> {
        if let Some(Some(known)) = self.with_memo(block, |m| m.known_code.get(&app).copied()) {
            return Ok(known);
        }
        let contracts = &self.chain.deployment.contracts;
        let registry = self.chain.registry();
        let known_registry = match self.with_memo(block, |m| m.known_registry).flatten() {
            Some(k) => k,
            None => {
                let k = self.chain.implementation(registry, block.hash).await?
                    == contracts.kms_registry_implementation;
                self.with_memo(block, |m| m.known_registry = Some(k));
                k
            }
        };
        let known = known_registry
            && self
                .chain
                .call(registry, &KmsRegistry::appKindCall { app }, block.hash)
                .await?
                == APP_KIND_FACTORY
            && self.chain.implementation(app, block.hash).await? == contracts.app_implementation;
        self.with_memo(block, |m| {
            insert_bounded(&mut m.known_code, app, known);
        });
        Ok(known)
    }

    /// `eth_call isAppAllowed(boot)` at `block`. When the deciding code is the deployment's own
    /// ([`Self::known_policy_code`]) — whose `isAppAllowed` reads neither `mrAggregated` nor the
    /// instance id beyond requiring it to be non-zero — boots that differ only in those share one
    /// call per block; every other boot gets its own. Answers are remembered for every boot, and
    /// the code is checked only when one would be reused, so an app's first instance costs one
    /// read.
    async fn chain_verdict(&self, block: &Finalized, boot: BootInfo) -> Result<Decision> {
        let key = (boot.instanceId != FixedBytes::ZERO).then(|| {
            let class = BootInfo {
                instanceId: FixedBytes::repeat_byte(0xff),
                mrAggregated: B256::ZERO,
                ..boot.clone()
            };
            alloy::sol_types::SolValue::abi_encode(&class)
        });
        let remembered = key.as_ref().and_then(|key| {
            self.with_memo(block, |m| m.chain.get(key).cloned())
                .flatten()
        });
        if let Some(decision) = remembered {
            // A failed read only costs the sharing: the boot then gets its own call.
            let known = self
                .known_policy_code(block, boot.appId)
                .await
                .unwrap_or_else(|e| {
                    tracing::debug!(target: "kms::policy", error = %e, "policy code not confirmed; not sharing");
                    false
                });
            if known {
                return Ok(decision);
            }
        }
        let out = self
            .chain
            .call(
                self.chain.registry(),
                &KmsRegistry::isAppAllowedCall { boot },
                block.hash,
            )
            .await?;
        let decision = Decision {
            allowed: out._0,
            reason: out._1,
        };
        if let Some(key) = key {
            self.with_memo(block, |m| {
                insert_bounded(&mut m.chain, key, decision.clone());
            });
        }
        Ok(decision)
    }

    /// A custom app's key generation (`keyGeneration()` if it has one, else 0).
    async fn app_generation(&self, app: Address, at: B256) -> u64 {
        match self.chain.call(app, &App::keyGenerationCall {}, at).await {
            Ok(g) => g,
            Err(e) => {
                tracing::debug!(target: "kms::policy", %app, error = %e, "no keyGeneration(); using 0");
                0
            }
        }
    }

    /// An app's key generation at `block` for the public env-key statement: the mirror's value,
    /// cross-checked by `eth_call`.
    pub async fn app_key_generation(&self, app: Address, block: &Finalized) -> Result<Option<u64>> {
        let json = BootInfoJson {
            app_id: app,
            compose_hash: B256::ZERO,
            instance_id: alloy::primitives::FixedBytes::ZERO,
            device_id: B256::ZERO,
            mr_aggregated: B256::ZERO,
            os_image_hash: B256::ZERO,
            tee_kind: EnumValue::Number(0),
            tcb_status: EnumValue::Number(0),
            gpu_evidence_hash: B256::ZERO,
            key_generation: 0,
        };
        let registration = {
            let mut c = self.chain.mirror().acquire().await?;
            facts::app_registration(
                &mut c,
                self.chain.deployment.contracts.app_implementation,
                &json,
                block.number,
            )
            .await?
        };
        match registration {
            AppRegistration::None => Ok(None),
            AppRegistration::Mirrored(f) => {
                let chain = self
                    .chain
                    .call(app, &App::keyGenerationCall {}, block.hash)
                    .await?;
                if chain != f.key_generation {
                    self.disagreement(
                        "keyGeneration",
                        &f.key_generation.to_string(),
                        &chain.to_string(),
                    );
                    return Err(Error::Rpc(
                        "the mirror and the chain disagree about the key generation".into(),
                    ));
                }
                Ok(Some(chain))
            }
            AppRegistration::Delegated => Ok(Some(self.app_generation(app, block.hash).await)),
        }
    }

    /// Whether `evidence` is an allowed KMS node at `block` (mirror and `eth_call` agree).
    pub async fn kms_allowed(
        &self,
        evidence: &VerifiedEvidence,
        block: &Finalized,
    ) -> Result<Result<(), String>> {
        kms_allowed(&self.chain, &self.metrics, evidence, block).await
    }

    /// The root secret (for replication only).
    pub fn root_secret(&self) -> &RootSecret {
        &self.root
    }

    /// The deployment domain.
    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    /// This node.
    pub fn own(&self) -> &OwnIdentity {
        &self.own
    }
}

fn disagreement(metrics: &Metrics, what: &str, mirror: &str, chain: &str) {
    metrics.disagreements.inc();
    tracing::error!(
        target: "kms::policy",
        check = what,
        mirror = %mirror,
        chain = %chain,
        "the indexer mirror and eth_call disagree at the same block; denying"
    );
}

/// Whether `evidence` is an allowed KMS node at `block`: the mirror and `eth_call
/// isKmsAllowed` at the block's hash must both allow it.
pub async fn kms_allowed(
    chain: &Chain,
    metrics: &Metrics,
    evidence: &VerifiedEvidence,
    block: &Finalized,
) -> Result<Result<(), String>> {
    let boot = covenant_chain::boot_info(evidence, 0);
    let json = boot_json(&boot);
    let mirror = {
        let mut c = chain.mirror().acquire().await?;
        facts::kms_at(
            &mut c,
            chain.registry(),
            &json,
            boot.teeKind,
            boot.tcbStatus,
            block.number,
        )
        .await?
    };
    let on_chain = chain
        .call(
            chain.registry(),
            &KmsRegistry::isKmsAllowedCall { boot },
            block.hash,
        )
        .await?;
    if mirror.allowed != on_chain._0 || mirror.reason != on_chain._1 {
        disagreement(metrics, "isKmsAllowed", &mirror.reason, &on_chain._1);
        return Ok(Err("the mirror and the chain disagree".into()));
    }
    Ok(if on_chain._0 {
        Ok(())
    } else {
        Err(on_chain._1)
    })
}
