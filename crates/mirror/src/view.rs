//! The finalized policy view: a whole policy question answered at one block. The mirror's facts
//! give an answer, `eth_call` at the same block hash gives another; they must agree, or the
//! answer is a [`Deny`] at [`DenyStage::Disagreement`] (with a metric and an error log line). A
//! finalized block older than the configured bound denies everything.
//!
//! The block decided at is the mirror's finalized block only once the service's own RPC (and an
//! optional witness RPC) confirms it is canonical and final there; its age is measured against
//! the RPC's head (see `crate::anchor`).
//!
//! Answers, and the mirror's facts they read, are memoised only for the block they were given at:
//! the memo is keyed by the block hash and dropped as soon as the finalized block moves, so it
//! cannot outlive a revocation. Facts are shared by the instances of one app (they do not depend
//! on the instance id), and so is the `eth_call` answer when the chain shows that the deciding
//! code is the deployment's own registry and App implementation, which read the instance id only
//! to require it non-zero and never read `mrAggregated` for apps; custom policy contracts get an
//! `eth_call` for every distinct `BootInfo`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use alloy::{
    primitives::{Address, B256, FixedBytes},
    sol_types::SolCall,
};
use covenant_chain::{
    BootInfo, Deployment, Finality, app::App, domain_registry::DomainRegistry,
    kms_registry::KmsRegistry,
};
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::{
    Result,
    anchor::{self, MAX_STALENESS_BOUND, Refusal},
    chain::{ChainReader, Finalized, follow_finalized, read_finalized},
    clock::SharedClock,
    coalesce::Coalescer,
    facts,
    rules::{self, AppRegistration, Decision, RegistryFacts},
};

/// The stage at which a question was answered "no".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DenyStage {
    /// The view has no finalized block, or it is older than the bound.
    ChainView,
    /// The node asking (a KMS node about itself) may not serve.
    Node,
    /// The chain's policy says no.
    Policy,
    /// The mirror and `eth_call` at the same block disagree.
    Disagreement,
    /// The chain or the mirror could not be read: nothing could be decided.
    Unavailable,
}

impl DenyStage {
    /// The stage as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChainView => "chain_view",
            Self::Node => "node",
            Self::Policy => "policy",
            Self::Disagreement => "disagreement",
            Self::Unavailable => "unavailable",
        }
    }

    /// Whether asking again later may give another answer without any change on chain (the view
    /// is stale or unreachable), as opposed to a decision.
    pub fn is_transient(self) -> bool {
        matches!(self, Self::ChainView | Self::Unavailable)
    }
}

/// A "no", with why and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deny {
    /// The stage that said no.
    pub stage: DenyStage,
    /// A clear reason (the contract's own reason for policy denials).
    pub reason: String,
    /// The block decided at, if one was used.
    pub block: Option<Finalized>,
}

impl std::fmt::Debug for AppAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppAnswer")
            .field("app", &self.boot.appId)
            .field("key_generation", &self.boot.keyGeneration)
            .field("verdict", &self.verdict)
            .finish()
    }
}

impl Deny {
    fn at(stage: DenyStage, block: &Finalized, reason: impl Into<String>) -> Self {
        Self {
            stage,
            reason: reason.into(),
            block: Some(*block),
        }
    }
}

/// The answer about an app boot at one block.
#[derive(Clone)]
pub struct AppAnswer {
    /// The boot as judged: the app's key generation at the block filled in.
    pub boot: BootInfo,
    /// `Ok` when the chain allows it.
    pub verdict: Result<(), Deny>,
}

/// The KMS root keys registered on chain at a block (mirror and `eth_call` agree).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisteredRoots {
    /// The key generation.
    pub generation: u64,
    /// The root signer's address.
    pub signer: Address,
    /// The root CA's public key (uncompressed SEC1).
    pub ca_public_key: Vec<u8>,
}

/// Metric handles the view updates; the service registers them under its own names.
#[derive(Clone, Debug)]
pub struct ViewMetrics {
    /// Questions where the mirror and `eth_call` at the same block disagreed (always denied).
    pub disagreements: prometheus::IntCounter,
    /// The finalized block decisions are made at.
    pub finalized_block: prometheus::IntGauge,
    /// Its timestamp, unix seconds.
    pub finalized_timestamp_seconds: prometheus::IntGauge,
    /// How many boots each batched app check held (one mirror statement and one JSON-RPC batch
    /// each; see [`PolicyView::app`]).
    pub app_check_batch_size: prometheus::Histogram,
}

/// Buckets for [`ViewMetrics::app_check_batch_size`].
pub const APP_CHECK_BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

/// How the view is set up.
#[derive(Clone, Debug)]
pub struct ViewSettings {
    /// A finalized block older than this (by its timestamp, against the RPC's head) denies
    /// everything. At most [`MAX_STALENESS_BOUND`].
    pub max_age: Duration,
    /// How often the mirror's finalized block is re-read when no `NOTIFY` arrives, and how often
    /// the RPC is asked to confirm it again.
    pub poll: Duration,
    /// Which block the RPC counts as final: the mirror's may not be ahead of it.
    pub finality: Finality,
}

/// Where the view stands with the chain: the mirror's finalized block as the RPC last judged it.
#[derive(Clone, Debug)]
enum Anchor {
    /// Not checked yet.
    Unchecked,
    /// Confirmed canonical and final at `at`, when the RPC's head had `head_timestamp`.
    Confirmed {
        block: Finalized,
        head_timestamp: u64,
        at: Instant,
    },
    /// The last check refused the mirror's block, or could not be made.
    Refused {
        block: Finalized,
        stage: DenyStage,
        reason: String,
    },
}

/// A confirmation older than this no longer counts (the task confirming has stopped or hangs).
fn confirmation_ttl(poll: Duration) -> Duration {
    (poll * 4).max(Duration::from_secs(30))
}

/// What the task that anchors the mirror's blocks needs.
struct Anchoring {
    chain: ChainReader,
    witness: Option<ChainReader>,
    finality: Finality,
    state: Arc<Mutex<Anchor>>,
    finalized: watch::Sender<Option<Finalized>>,
}

impl Anchoring {
    /// Checks `block` and records the outcome; a confirmed block becomes the one decided at.
    async fn check(&self, block: Finalized) {
        let outcome =
            anchor::check(&self.chain, self.witness.as_ref(), self.finality, &block).await;
        let next = match outcome {
            Ok(head_timestamp) => Anchor::Confirmed {
                block,
                head_timestamp,
                at: Instant::now(),
            },
            Err(Refusal::Refused(reason)) => Anchor::Refused {
                block,
                stage: DenyStage::ChainView,
                reason,
            },
            Err(Refusal::Unavailable(detail)) => {
                tracing::warn!(target: "mirror::view", block = block.number, error = %detail, "cannot confirm the mirror's finalized block on the chain");
                Anchor::Refused {
                    block,
                    stage: DenyStage::Unavailable,
                    reason: "cannot decide now: the chain RPC cannot confirm the finalized block"
                        .into(),
                }
            }
        };
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if let Anchor::Refused { reason, stage, .. } = &next {
            let repeated = matches!(&*state, Anchor::Refused { stage: s, .. } if s == stage);
            if !repeated && *stage == DenyStage::ChainView {
                tracing::error!(target: "mirror::view", block = block.number, %reason, "the mirror's finalized block is refused; denying everything");
            }
        }
        if let Anchor::Confirmed { block, .. } = &next {
            let block = *block;
            self.finalized.send_if_modified(|old| {
                let changed = *old != Some(block);
                *old = Some(block);
                changed
            });
        }
        *state = next;
    }

    /// Confirms every new candidate of the mirror, and the current one again every `poll`.
    async fn run(
        self,
        mut candidates: watch::Receiver<Option<Finalized>>,
        poll: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let candidate = *candidates.borrow_and_update();
            if let Some(block) = candidate {
                self.check(block).await;
            }
            tokio::select! {
                changed = candidates.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(poll) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
    }
}

/// What the mirror's facts about a boot depend on: app, compose hash, device and OS image (not
/// the instance: instances of one app on one kind of machine share them).
/// (app, compose hash, device, OS image, OS measurement, TEE kind): what the facts depend on.
type FactsKey = (Address, B256, B256, B256, B256, u8);

/// `(key generation, verdict)` for a boot asked about with generation 0.
type AppMemo = (u64, Result<(), (DenyStage, String)>);

#[derive(Default)]
struct Memo {
    block: B256,
    standing: HashMap<Vec<u8>, Result<RegisteredRoots, (DenyStage, String)>>,
    apps: HashMap<Vec<u8>, AppMemo>,
    facts: HashMap<FactsKey, (RegistryFacts, AppRegistration)>,
    chain: HashMap<Vec<u8>, Decision>,
    known_registry: Option<bool>,
    known_code: HashMap<Address, bool>,
    simulated_allowed: Option<bool>,
    roots: Option<Result<RegisteredRoots, (DenyStage, String)>>,
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

fn encode(boot: &BootInfo) -> Vec<u8> {
    alloy::sol_types::SolValue::abi_encode(boot)
}

fn facts_key(boot: &BootInfo) -> FactsKey {
    (
        boot.appId,
        boot.composeHash,
        boot.deviceId,
        boot.osImageHash,
        boot.osMeasurement,
        boot.teeKind,
    )
}

/// The app's key generation as the mirror has it (0 where it has none).
fn key_generation(registration: &AppRegistration) -> u64 {
    match registration {
        AppRegistration::Mirrored(f) => f.key_generation,
        AppRegistration::None | AppRegistration::Delegated => 0,
    }
}

/// The key under which `isAppAllowed` answers are shared by boots that differ only in their
/// instance id and `mrAggregated`, which the deployment's own `isAppAllowed` reads only to
/// require a non-zero instance id. `None` for a zero instance id (never shared).
fn shared_verdict_key(boot: &BootInfo) -> Option<Vec<u8>> {
    (boot.instanceId != FixedBytes::ZERO).then(|| {
        encode(&BootInfo {
            instanceId: FixedBytes::repeat_byte(0xff),
            mrAggregated: B256::ZERO,
            ..boot.clone()
        })
    })
}

/// The finalized policy view of one deployment.
pub struct PolicyView {
    chain: ChainReader,
    witness: Option<ChainReader>,
    mirror: PgPool,
    /// The same mirror, for the per-app boot read only (generic plans: see
    /// [`crate::chain::generic_plan_pool`]).
    boot_reads: PgPool,
    deployment: Deployment,
    /// The mirror's finalized block, as the mirror says.
    candidates: watch::Sender<Option<Finalized>>,
    /// The last block the RPC confirmed.
    finalized: watch::Sender<Option<Finalized>>,
    anchor: Arc<Mutex<Anchor>>,
    settings: ViewSettings,
    clock: SharedClock,
    metrics: ViewMetrics,
    memo: Mutex<Memo>,
    /// New boots' checks, batched across callers: one mirror statement and one JSON-RPC batch
    /// for the boots asked about while the previous batch ran.
    app_checks: Coalescer<(Finalized, BootInfo), AppCheck>,
}

/// The outcome of one boot's check in a batch (errors are shared with the batch's other
/// callers when the whole batch failed).
type AppCheck = std::result::Result<AppMemo, Arc<crate::Error>>;

/// The most boots one batched check holds.
const MAX_APP_BATCH: usize = 64;

impl std::fmt::Debug for PolicyView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyView")
            .field("chain_id", &self.deployment.chain_id)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl PolicyView {
    /// A view of `deployment` through `chain` (and, if given, a `witness` RPC that must agree)
    /// and the indexer's `mirror`, which must mirror the deployment's chain. It starts at the
    /// mirror's current finalized block, once `chain` confirms it; run [`Self::follow`] to keep
    /// it moving.
    pub async fn new(
        chain: ChainReader,
        witness: Option<ChainReader>,
        mirror: PgPool,
        deployment: Deployment,
        settings: ViewSettings,
        clock: SharedClock,
        metrics: ViewMetrics,
    ) -> Result<Self> {
        if settings.max_age.is_zero() || settings.max_age > MAX_STALENESS_BOUND {
            return Err(crate::Error::Settings(format!(
                "the staleness bound must be between 1 s and {} s, not {} s",
                MAX_STALENESS_BOUND.as_secs(),
                settings.max_age.as_secs()
            )));
        }
        let view = {
            let mut c = mirror.acquire().await?;
            crate::read::view(&mut c).await?
        };
        if let Some(v) = view
            && v.chain_id != deployment.chain_id
        {
            return Err(crate::Error::WrongChain {
                expected: deployment.chain_id,
                source_name: "the indexer's mirror",
                actual: v.chain_id,
            });
        }
        let initial = read_finalized(&mirror).await?;
        let view = Self {
            chain,
            witness,
            boot_reads: crate::chain::generic_plan_pool(&mirror),
            mirror,
            deployment,
            candidates: watch::Sender::new(initial),
            finalized: watch::Sender::new(None),
            anchor: Arc::new(Mutex::new(Anchor::Unchecked)),
            settings,
            clock,
            metrics,
            memo: Mutex::new(Memo::default()),
            app_checks: Coalescer::new(MAX_APP_BATCH),
        };
        if let Some(block) = initial {
            view.anchoring().check(block).await;
        }
        Ok(view)
    }

    fn anchoring(&self) -> Anchoring {
        Anchoring {
            chain: self.chain.clone(),
            witness: self.witness.clone(),
            finality: self.settings.finality,
            state: self.anchor.clone(),
            finalized: self.finalized.clone(),
        }
    }

    /// Keeps the view at the mirror's finalized block until `shutdown` (see
    /// [`crate::follow_finalized`]), each new block and the current one every `poll` confirmed
    /// on the RPC.
    pub fn follow(
        &self,
        shutdown: watch::Receiver<bool>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let mirror = follow_finalized(
            self.mirror.clone(),
            self.candidates.clone(),
            self.settings.poll,
            shutdown.clone(),
        );
        let anchoring =
            self.anchoring()
                .run(self.candidates.subscribe(), self.settings.poll, shutdown);
        async move {
            tokio::join!(mirror, anchoring);
        }
    }

    /// The deployment.
    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }

    /// The chain reader.
    pub fn chain(&self) -> &ChainReader {
        &self.chain
    }

    /// The KMS registry.
    pub fn registry(&self) -> Address {
        self.deployment.contracts.kms_registry
    }

    /// Follows changes of the finalized block.
    pub fn subscribe(&self) -> watch::Receiver<Option<Finalized>> {
        self.finalized.subscribe()
    }

    /// The finalized block to decide at: the mirror's, confirmed by the RPC, fresh enough.
    pub fn current_block(&self) -> Result<Finalized, Deny> {
        let anchor = self
            .anchor
            .lock()
            .map(|a| a.clone())
            .unwrap_or(Anchor::Unchecked);
        let (block, head_timestamp, at) = match anchor {
            Anchor::Unchecked => {
                return Err(Deny {
                    stage: DenyStage::ChainView,
                    reason: "no finalized block in the mirror yet".into(),
                    block: None,
                });
            }
            Anchor::Refused {
                block,
                stage,
                reason,
            } => return Err(Deny::at(stage, &block, reason)),
            Anchor::Confirmed {
                block,
                head_timestamp,
                at,
            } => (block, head_timestamp, at),
        };
        self.metrics.finalized_block.set(block.number as i64);
        self.metrics
            .finalized_timestamp_seconds
            .set(block.timestamp as i64);
        let ttl = confirmation_ttl(self.settings.poll);
        if at.elapsed() > ttl {
            return Err(Deny::at(
                DenyStage::Unavailable,
                &block,
                format!(
                    "cannot decide now: the RPC has not confirmed the finalized block for {} s",
                    ttl.as_secs()
                ),
            ));
        }
        let age = anchor::age(&block, head_timestamp, self.clock.now_secs());
        let bound = self.settings.max_age.as_secs();
        if age > bound {
            return Err(Deny::at(
                DenyStage::ChainView,
                &block,
                format!(
                    "finalized head is stale: block {} is {age} s old, the bound is {bound} s",
                    block.number
                ),
            ));
        }
        Ok(block)
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

    fn disagreement(&self, what: &str, mirror: &str, chain: &str) {
        self.metrics.disagreements.inc();
        tracing::error!(
            target: "mirror::view",
            check = what,
            mirror = %mirror,
            chain = %chain,
            "the indexer mirror and eth_call disagree at the same block; denying"
        );
    }

    /// Whether KMS node `node`, booted as `boot`, may serve at `block`: `isKmsAllowed` of its
    /// boot, an active onboarding record, and registered root keys — each read from the mirror
    /// and by `eth_call`, which must agree. Memoised for the block. `Err`: could not be read.
    pub async fn kms_standing(
        &self,
        block: &Finalized,
        node: Address,
        boot: &BootInfo,
    ) -> Result<Result<RegisteredRoots, Deny>> {
        let mut key = encode(boot);
        key.extend_from_slice(node.as_slice());
        if let Some(Some(memo)) = self.with_memo(block, |m| m.standing.get(&key).cloned()) {
            return Ok(memo.map_err(|(stage, reason)| Deny::at(stage, block, reason)));
        }
        let standing = self.check_standing(block, node, boot).await?;
        self.with_memo(block, |m| {
            insert_bounded(&mut m.standing, key, standing.clone());
        });
        Ok(standing.map_err(|(stage, reason)| Deny::at(stage, block, reason)))
    }

    async fn check_standing(
        &self,
        block: &Finalized,
        node: Address,
        boot: &BootInfo,
    ) -> Result<Result<RegisteredRoots, (DenyStage, String)>> {
        let registry = self.registry();
        let (mirror_kms, mirror_node, mirror_roots) = {
            let mut c = self.mirror.acquire().await?;
            let d = facts::kms_at(&mut c, registry, boot, block.number, block.timestamp).await?;
            let n = facts::kms_node_at(&mut c, registry, node, block.number).await?;
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
            .call(registry, &KmsRegistry::kmsNodeCall { node }, block.hash)
            .await?;
        let chain_roots = self
            .chain
            .call(registry, &KmsRegistry::kmsRootKeysCall {}, block.hash)
            .await?;
        let disagree = |what: &str| {
            (
                DenyStage::Disagreement,
                format!("the mirror and the chain disagree about {what}"),
            )
        };
        if mirror_kms.allowed != chain_kms._0 || mirror_kms.reason != chain_kms._1 {
            self.disagreement("isKmsAllowed", &mirror_kms.reason, &chain_kms._1);
            return Ok(Err(disagree("this node")));
        }
        if !chain_kms._0 {
            return Ok(Err((
                DenyStage::Node,
                format!("isKmsAllowed: {}", chain_kms._1),
            )));
        }
        if mirror_node.is_some() != chain_node.active {
            self.disagreement(
                "kmsNode",
                &mirror_node.is_some().to_string(),
                &chain_node.active.to_string(),
            );
            return Ok(Err(disagree("this node's record")));
        }
        if !chain_node.active {
            return Ok(Err((
                DenyStage::Node,
                format!("node {node} is not an active KMS node"),
            )));
        }
        let generation = chain_roots._2;
        if generation == 0 {
            return Ok(Err((
                DenyStage::Node,
                "no KMS root keys are registered".into(),
            )));
        }
        let registered = RegisteredRoots {
            generation,
            signer: chain_roots._0,
            ca_public_key: chain_roots._1.to_vec(),
        };
        let mirror_matches = mirror_roots.as_ref().is_some_and(|(g, signer, ca)| {
            *g == registered.generation
                && *signer == registered.signer
                && *ca == registered.ca_public_key
        });
        if !mirror_matches {
            self.disagreement("kmsRootKeys", "mirror root keys", "chain root keys");
            return Ok(Err(disagree("the root keys")));
        }
        Ok(Ok(registered))
    }

    /// The KMS root keys registered at `block` (`kmsRootKeys`): the mirror and `eth_call` must
    /// agree (a disagreement denies, counted and logged); none registered denies. Memoised for
    /// the block. The gateway checks an instance's `key-provider` against it.
    pub async fn root_keys(&self, block: &Finalized) -> Result<Result<RegisteredRoots, Deny>> {
        if let Some(Some(memo)) = self.with_memo(block, |m| m.roots.clone()) {
            return Ok(memo.map_err(|(stage, reason)| Deny::at(stage, block, reason)));
        }
        let registry = self.registry();
        let mirror_roots = {
            let mut c = self.mirror.acquire().await?;
            facts::root_keys_at(&mut c, registry, block.number).await?
        };
        let chain_roots = self
            .chain
            .call(registry, &KmsRegistry::kmsRootKeysCall {}, block.hash)
            .await?;
        let roots = if chain_roots._2 == 0 && mirror_roots.is_none() {
            Err((
                DenyStage::Node,
                "no KMS root keys are registered".to_owned(),
            ))
        } else {
            let registered = RegisteredRoots {
                generation: chain_roots._2,
                signer: chain_roots._0,
                ca_public_key: chain_roots._1.to_vec(),
            };
            let mirror_matches = mirror_roots.as_ref().is_some_and(|(g, signer, ca)| {
                *g == registered.generation
                    && *signer == registered.signer
                    && *ca == registered.ca_public_key
            });
            if mirror_matches {
                Ok(registered)
            } else {
                self.disagreement("kmsRootKeys", "mirror root keys", "chain root keys");
                Err((
                    DenyStage::Disagreement,
                    "the mirror and the chain disagree about the root keys".to_owned(),
                ))
            }
        };
        self.with_memo(block, |m| m.roots = Some(roots.clone()));
        Ok(roots.map_err(|(stage, reason)| Deny::at(stage, block, reason)))
    }

    /// The domains at least one app claims at `block`, as the mirror has them
    /// (`DomainRegistry`'s claims). A filter only: a route needs [`PolicyView::domain_claimed`].
    pub async fn claimed_domains(&self, block: &Finalized) -> Result<Vec<String>> {
        let registry = self.deployment.contracts.domain_registry;
        let mut c = self.mirror.acquire().await?;
        let rows = crate::read::members_at(
            &mut c,
            "domain_claim",
            Some(registry.as_slice()),
            block.number,
        )
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| r.data.get("domain")?.as_str().map(str::to_owned))
            .collect())
    }

    /// Whether `app` claims `domain` at `block` (`DomainRegistry.isClaimed`): the mirror and
    /// `eth_call` must agree, else it does not (a disagreement, counted and logged).
    /// `Err`: could not be read.
    pub async fn domain_claimed(
        &self,
        block: &Finalized,
        domain: &str,
        app: Address,
    ) -> Result<bool> {
        let registry = self.deployment.contracts.domain_registry;
        let mut key = alloy::primitives::keccak256(domain.as_bytes()).to_vec();
        key.extend_from_slice(app.as_slice());
        let mirror = {
            let mut c = self.mirror.acquire().await?;
            crate::read::is_member_at(
                &mut c,
                "domain_claim",
                registry.as_slice(),
                &key,
                block.number,
            )
            .await?
        };
        let chain = self
            .chain
            .call(
                registry,
                &DomainRegistry::isClaimedCall {
                    domain: domain.to_owned(),
                    app,
                },
                block.hash,
            )
            .await?;
        if mirror != chain {
            self.disagreement(
                "isClaimed",
                &format!("{domain} {app}: {mirror}"),
                &chain.to_string(),
            );
        }
        Ok(mirror && chain)
    }

    /// Whether the chain allows simulated TEEs at `block` (`allowSimulatedTee`): the mirror and
    /// `eth_call` must agree, else it is not allowed (a disagreement, counted and logged).
    /// Memoised for the block. A verifier trusts the simulator root only where this is true.
    /// `Err`: could not be read.
    pub async fn simulated_allowed(&self, block: &Finalized) -> Result<bool> {
        if let Some(Some(allowed)) = self.with_memo(block, |m| m.simulated_allowed) {
            return Ok(allowed);
        }
        let registry = self.registry();
        let mirror = {
            let mut c = self.mirror.acquire().await?;
            crate::read::settings_at(&mut c, registry.as_slice(), block.number)
                .await?
                .get("allow_simulated_tee")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false)
        };
        let chain = self
            .chain
            .call(registry, &KmsRegistry::allowSimulatedTeeCall {}, block.hash)
            .await?;
        if mirror != chain {
            self.disagreement("allowSimulatedTee", &mirror.to_string(), &chain.to_string());
        }
        let allowed = mirror && chain;
        self.with_memo(block, |m| m.simulated_allowed = Some(allowed));
        Ok(allowed)
    }

    /// Whether `boot` is an allowed KMS node at `block` (mirror and `eth_call isKmsAllowed`
    /// agree). `Err`: could not be read.
    pub async fn kms(&self, block: &Finalized, boot: &BootInfo) -> Result<Result<(), Deny>> {
        let mirror = {
            let mut c = self.mirror.acquire().await?;
            facts::kms_at(&mut c, self.registry(), boot, block.number, block.timestamp).await?
        };
        let chain = self
            .chain
            .call(
                self.registry(),
                &KmsRegistry::isKmsAllowedCall { boot: boot.clone() },
                block.hash,
            )
            .await?;
        if mirror.allowed != chain._0 || mirror.reason != chain._1 {
            self.disagreement("isKmsAllowed", &mirror.reason, &chain._1);
            return Ok(Err(Deny::at(
                DenyStage::Disagreement,
                block,
                "the mirror and the chain disagree",
            )));
        }
        Ok(if chain._0 {
            Ok(())
        } else {
            Err(Deny::at(DenyStage::Policy, block, chain._1))
        })
    }

    /// Whether the app instance booted as `boot` may run (get keys, be routed to) at `block`.
    /// `boot.keyGeneration` is ignored: the answer's boot carries the app's generation at the
    /// block. `Err`: could not be read.
    pub async fn app(&self, block: &Finalized, boot: &BootInfo) -> Result<AppAnswer> {
        let boot0 = BootInfo {
            keyGeneration: 0,
            ..boot.clone()
        };
        let key = encode(&boot0);
        let remembered = self
            .with_memo(block, |m| m.apps.get(&key).cloned())
            .flatten();
        let (generation, verdict) = match remembered {
            Some(v) => v,
            None => match self.app_from_memo(block, &boot0) {
                Some(v) => {
                    self.with_memo(block, |m| insert_bounded(&mut m.apps, key, v.clone()));
                    v
                }
                None => self
                    .app_checks
                    .ask((*block, boot0.clone()), |batch| self.check_apps(batch))
                    .await
                    .map_err(crate::Error::Shared)?,
            },
        };
        Ok(AppAnswer {
            boot: BootInfo {
                keyGeneration: generation,
                ..boot0
            },
            verdict: verdict.map_err(|(stage, reason)| Deny::at(stage, block, reason)),
        })
    }

    /// The check of `boot0` when everything it needs is already known at `block` (another
    /// instance of the same app was checked): no round trip.
    fn app_from_memo(&self, block: &Finalized, boot0: &BootInfo) -> Option<AppMemo> {
        let (registry_facts, registration, chain) = self
            .with_memo(block, |m| {
                let (f, r) = m.facts.get(&facts_key(boot0))?.clone();
                let generation = match &r {
                    AppRegistration::Mirrored(f) => f.key_generation,
                    AppRegistration::None => 0,
                    AppRegistration::Delegated => return None,
                };
                let boot = BootInfo {
                    keyGeneration: generation,
                    ..boot0.clone()
                };
                let shared = shared_verdict_key(&boot)?;
                // Shared only where the deciding code is the deployment's own.
                if m.known_code.get(&boot.appId) != Some(&true) {
                    return None;
                }
                let chain = m.chain.get(&shared)?.clone();
                Some((f, r, chain))
            })
            .flatten()?;
        let boot = BootInfo {
            keyGeneration: key_generation(&registration),
            ..boot0.clone()
        };
        let mirror = rules::app_decision(&boot, &registry_facts, &registration);
        Some(self.judge(block, boot.keyGeneration, mirror.as_ref(), chain))
    }

    /// Checks a batch of boots (each with generation 0) at their blocks: per block, one mirror
    /// statement for the boots whose facts are not known yet and one JSON-RPC batch for the
    /// `isAppAllowed` calls. Answers in order, and remembers them for their blocks.
    async fn check_apps(&self, batch: Vec<(Finalized, BootInfo)>) -> Vec<AppCheck> {
        self.metrics
            .app_check_batch_size
            .observe(batch.len() as f64);
        let mut out: Vec<Option<AppCheck>> = vec![None; batch.len()];
        let mut blocks: Vec<Finalized> = Vec::new();
        for (block, _) in &batch {
            if !blocks.contains(block) {
                blocks.push(*block);
            }
        }
        for block in blocks {
            let (indices, boots): (Vec<usize>, Vec<BootInfo>) = batch
                .iter()
                .enumerate()
                .filter(|(_, (b, _))| *b == block)
                .map(|(i, (_, boot))| (i, boot.clone()))
                .unzip();
            match self.check_apps_at(&block, &boots).await {
                Ok(answers) => {
                    for ((i, boot), answer) in indices.into_iter().zip(&boots).zip(answers) {
                        if let Ok(memo) = &answer {
                            self.with_memo(&block, |m| {
                                insert_bounded(&mut m.apps, encode(boot), memo.clone());
                            });
                        }
                        out[i] = Some(answer.map_err(Arc::new));
                    }
                }
                Err(e) => {
                    let e = Arc::new(e);
                    for i in indices {
                        out[i] = Some(Err(e.clone()));
                    }
                }
            }
        }
        // Every index is in exactly one block's group, and each group answers all of its own;
        // were one missed, it is an error in its place (never a neighbour's answer).
        out.into_iter()
            .map(|a| {
                a.unwrap_or_else(|| {
                    Err(Arc::new(crate::Error::Unanswered(
                        "a boot of the batch was not checked",
                    )))
                })
            })
            .collect()
    }

    /// [`Self::check_apps`] for boots at one block. `Err`: the batch's mirror statement or
    /// JSON-RPC batch failed; an error of one boot's own call is that boot's answer.
    async fn check_apps_at(
        &self,
        block: &Finalized,
        boots: &[BootInfo],
    ) -> Result<Vec<Result<AppMemo>>> {
        /// A boot answered without the chain batch, or waiting for its answer in it.
        enum Step {
            Done(Result<AppMemo>),
            Ask(BootInfo, Option<Decision>),
        }
        let facts = self.boot_facts(block, boots).await?;
        let mut steps = Vec::with_capacity(boots.len());
        for (boot0, (registry_facts, registration)) in boots.iter().zip(&facts) {
            let generation = match registration {
                AppRegistration::Delegated => {
                    match self.app_generation(boot0.appId, block.hash).await {
                        Ok(g) => g,
                        Err(e) => {
                            steps.push(Step::Done(Err(e)));
                            continue;
                        }
                    }
                }
                other => key_generation(other),
            };
            let boot = BootInfo {
                keyGeneration: generation,
                ..boot0.clone()
            };
            let mirror = rules::app_decision(&boot, registry_facts, registration);
            steps.push(match self.shared_verdict(block, &boot).await {
                Some(chain) => {
                    Step::Done(Ok(self.judge(block, generation, mirror.as_ref(), chain)))
                }
                None => Step::Ask(boot, mirror),
            });
        }
        let calls: Vec<KmsRegistry::isAppAllowedCall> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Ask(boot, _) => Some(KmsRegistry::isAppAllowedCall { boot: boot.clone() }),
                Step::Done(_) => None,
            })
            .collect();
        let mut answers = self
            .chain
            .call_many(self.registry(), &calls, block.hash)
            .await?
            .into_iter();
        Ok(steps
            .into_iter()
            .map(|step| match step {
                Step::Done(done) => done,
                Step::Ask(boot, mirror) => {
                    let answer = answers.next().ok_or(crate::Error::Rpc {
                        call: KmsRegistry::isAppAllowedCall::SIGNATURE,
                        block: block.hash,
                        reason: "the batch answered fewer calls than it was sent".into(),
                    })??;
                    let chain = Decision {
                        allowed: answer._0,
                        reason: answer._1,
                    };
                    if let Some(key) = shared_verdict_key(&boot) {
                        self.with_memo(block, |m| {
                            insert_bounded(&mut m.chain, key, chain.clone());
                        });
                    }
                    Ok(self.judge(block, boot.keyGeneration, mirror.as_ref(), chain))
                }
            })
            .collect())
    }

    /// The mirror's facts for each of `boots` at `block`: remembered ones from the memo, the
    /// others in one statement (each distinct set of facts read once), then remembered.
    async fn boot_facts(
        &self,
        block: &Finalized,
        boots: &[BootInfo],
    ) -> Result<Vec<(RegistryFacts, AppRegistration)>> {
        let keys: Vec<FactsKey> = boots.iter().map(facts_key).collect();
        let mut known: Vec<Option<(RegistryFacts, AppRegistration)>> = self
            .with_memo(block, |m| {
                keys.iter().map(|k| m.facts.get(k).cloned()).collect()
            })
            .unwrap_or_else(|| vec![None; boots.len()]);
        let mut missing: Vec<usize> = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            if known[i].is_none() && !missing.iter().any(|&j| keys[j] == *key) {
                missing.push(i);
            }
        }
        if !missing.is_empty() {
            let wanted: Vec<BootInfo> = missing.iter().map(|&i| boots[i].clone()).collect();
            let read = {
                let mut c = self.boot_reads.acquire().await?;
                facts::app_facts(
                    &mut c,
                    self.registry(),
                    self.deployment.contracts.app_implementation,
                    &wanted,
                    block.number,
                    block.timestamp,
                )
                .await?
            };
            for (&j, f) in missing.iter().zip(read) {
                self.with_memo(block, |m| insert_bounded(&mut m.facts, keys[j], f.clone()));
                for (i, key) in keys.iter().enumerate() {
                    if known[i].is_none() && *key == keys[j] {
                        known[i] = Some(f.clone());
                    }
                }
            }
        }
        // Every boot's key is either remembered or among those just read; were one missed, the
        // batch fails (facts are matched to boots by position).
        known
            .into_iter()
            .map(|f| f.ok_or(crate::Error::Unanswered("a boot's facts were not read")))
            .collect()
    }

    /// The verdict: the chain's, unless the mirror (where it models the app) says otherwise,
    /// which denies as a disagreement.
    fn judge(
        &self,
        block: &Finalized,
        generation: u64,
        mirror: Option<&Decision>,
        chain: Decision,
    ) -> AppMemo {
        if let Some(m) = mirror
            && *m != chain
        {
            self.disagreement("isAppAllowed", &m.reason, &chain.reason);
            let said = |d: &Decision| {
                if d.allowed {
                    "allowed".to_owned()
                } else {
                    d.reason.clone()
                }
            };
            return (
                generation,
                Err((
                    DenyStage::Disagreement,
                    format!(
                        "the mirror and the chain disagree at block {} (mirror: {}, chain: {})",
                        block.number,
                        said(m),
                        said(&chain)
                    ),
                )),
            );
        }
        (
            generation,
            if chain.allowed {
                Ok(())
            } else {
                Err((DenyStage::Policy, chain.reason))
            },
        )
    }

    /// A remembered `isAppAllowed` answer `boot` may share at `block` (see
    /// [`shared_verdict_key`]): only when the deciding code is the deployment's own
    /// ([`Self::known_policy_code`]); the code is checked only when an answer would be reused, so
    /// an app's first instance costs one read. `None`: the boot needs its own call.
    async fn shared_verdict(&self, block: &Finalized, boot: &BootInfo) -> Option<Decision> {
        let key = shared_verdict_key(boot)?;
        let decision = self
            .with_memo(block, |m| m.chain.get(&key).cloned())
            .flatten()?;
        // A failed read only costs the sharing: the boot then gets its own call.
        match self.known_policy_code(block, boot.appId).await {
            Ok(true) => Some(decision),
            Ok(false) => None,
            Err(e) => {
                tracing::debug!(target: "mirror::view", error = %e, "policy code not confirmed; not sharing");
                None
            }
        }
    }

    /// Whether, by the chain at `block`, `app`'s decision is made by code this deployment
    /// knows: the registry runs the deployed implementation and `app` was created by the factory
    /// and runs the deployed App implementation (memoised for the block).
    async fn known_policy_code(&self, block: &Finalized, app: Address) -> Result<bool> {
        if let Some(Some(known)) = self.with_memo(block, |m| m.known_code.get(&app).copied()) {
            return Ok(known);
        }
        let contracts = &self.deployment.contracts;
        let registry = self.registry();
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

    /// A custom app's key generation: `keyGeneration()` if it has one; 0 when the node answers
    /// that it has none (a revert, or nothing decodable). A read that fails on the way is an
    /// error: guessing 0 then would release generation-0 keys.
    async fn app_generation(&self, app: Address, at: B256) -> Result<u64> {
        match self.chain.call(app, &App::keyGenerationCall {}, at).await {
            Ok(g) => Ok(g),
            Err(e @ (crate::Error::Reverted { .. } | crate::Error::Decode { .. })) => {
                tracing::debug!(target: "mirror::view", %app, error = %e, "no keyGeneration(); using 0");
                Ok(0)
            }
            Err(e) => Err(e),
        }
    }

    /// An app's key generation at `block` (`None`: not registered): the mirror's value,
    /// cross-checked by `eth_call`; a disagreement is an error (nothing can be said).
    pub async fn app_key_generation(&self, app: Address, block: &Finalized) -> Result<Option<u64>> {
        let probe = BootInfo {
            appId: app,
            composeHash: B256::ZERO,
            instanceId: FixedBytes::ZERO,
            deviceId: B256::ZERO,
            mrAggregated: B256::ZERO,
            osImageHash: B256::ZERO,
            osMeasurement: B256::ZERO,
            teeKind: 0,
            tcbStatus: 0,
            gpuEvidenceHash: B256::ZERO,
            keyGeneration: 0,
        };
        let registration = {
            let mut c = self.mirror.acquire().await?;
            facts::app_registration(
                &mut c,
                self.deployment.contracts.app_implementation,
                &probe,
                block.number,
                block.timestamp,
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
                    return Err(crate::Error::Disagreement {
                        what: "the key generation",
                        block: block.number,
                    });
                }
                Ok(Some(chain))
            }
            AppRegistration::Delegated => Ok(Some(self.app_generation(app, block.hash).await?)),
        }
    }
}
