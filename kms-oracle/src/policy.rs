//! The kms-oracle's decisions, made through the shared finalized policy view
//! ([`covenant_mirror::PolicyView`]: the mirror and `eth_call` at the same block hash must
//! agree, a stale view denies, answers are memoised per block).
//!
//! This module is the only place that constructs the values keys are released against:
//! - [`Serving`]: at a block, the chain allows *this node* (`isKmsAllowed` of its own evidence,
//!   an active onboarding record) and the registered root keys are the ones it derives;
//! - [`Grant`]: an app instance's evidence is allowed at a block where this node serves;
//! - [`ReplicaGrant`]: a KMS node's evidence is allowed at such a block.
//!
//! Their fields are private and they have no public constructor, so the
//! [`Keyring`](crate::keys::Keyring), which takes them by reference, releases nothing that was
//! not decided here.

use std::sync::Arc;

use alloy::primitives::Address;
use covenant_attest::{VerifiedEvidence, eventlog::names};
use covenant_chain::BootInfo;
use covenant_chain::kms_registry::KmsRegistry;
use covenant_mirror::PolicyView;
pub use covenant_mirror::{Deny, DenyStage, Finalized};

use crate::{
    identity::OwnIdentity,
    keys::{Keyring, RootKeys},
    metrics::Metrics,
};

/// The chain lets this node serve at a block, with these root keys.
#[derive(Clone, Debug)]
pub struct Serving {
    block: Finalized,
    roots: Arc<RootKeys>,
}

impl Serving {
    /// The block.
    pub fn block(&self) -> &Finalized {
        &self.block
    }
    /// The registered root keys (derived by this node and equal to the chain's).
    pub fn roots(&self) -> &RootKeys {
        &self.roots
    }
}

/// An app instance may have its keys: the block it was decided at, the boot as judged (with
/// the app's key generation), and the root keys to sign with.
#[derive(Clone)]
pub struct Grant {
    block: Finalized,
    boot: BootInfo,
    roots: Arc<RootKeys>,
}

impl Grant {
    /// The finalized block decided at.
    pub fn block(&self) -> &Finalized {
        &self.block
    }
    /// The boot as judged, with the app's key generation at the block.
    pub fn boot(&self) -> &BootInfo {
        &self.boot
    }
    pub(crate) fn roots(&self) -> &RootKeys {
        &self.roots
    }
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

/// A KMS node may receive the root secret.
#[derive(Clone)]
pub struct ReplicaGrant {
    block: Finalized,
    node: Address,
    boot: BootInfo,
}

impl std::fmt::Debug for ReplicaGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaGrant")
            .field("block", &self.block)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl ReplicaGrant {
    /// The block decided at.
    pub fn block(&self) -> &Finalized {
        &self.block
    }
    /// The new node's identity address.
    pub fn node(&self) -> Address {
        self.node
    }
    /// Its boot (measurement and device are recorded in its onboarding).
    pub fn boot(&self) -> &BootInfo {
        &self.boot
    }
}

/// "Could not decide": the detail is logged, the client reads a fixed reason (chain and mirror
/// errors can carry endpoints and internals).
fn unavailable(block: &Finalized, e: &covenant_mirror::Error) -> Deny {
    tracing::warn!(target: "kms::policy", block = block.number, error = %e, "cannot decide");
    Deny {
        stage: DenyStage::Unavailable,
        reason: "cannot decide now: the chain or the mirror is unavailable".into(),
        block: Some(*block),
    }
}

/// Decides, for this node.
pub struct Decider {
    view: Arc<PolicyView>,
    own: Arc<OwnIdentity>,
    keyring: Arc<Keyring>,
    metrics: Metrics,
}

impl std::fmt::Debug for Decider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decider")
            .field("node", &self.own.node)
            .finish_non_exhaustive()
    }
}

impl Decider {
    /// A decider for the node `own` holding `keyring`.
    pub fn new(
        view: Arc<PolicyView>,
        own: Arc<OwnIdentity>,
        keyring: Arc<Keyring>,
        metrics: Metrics,
    ) -> Self {
        Self {
            view,
            own,
            keyring,
            metrics,
        }
    }

    /// The policy view.
    pub fn view(&self) -> &PolicyView {
        &self.view
    }

    /// This node.
    pub fn own(&self) -> &OwnIdentity {
        &self.own
    }

    /// The finalized block to decide at, if it is fresh enough.
    pub fn current_block(&self) -> Result<Finalized, Deny> {
        self.view.current_block()
    }

    /// Whether this node may serve at `block`.
    pub async fn serving_at(&self, block: Finalized) -> Result<Serving, Deny> {
        let result = self.check_serving(block).await;
        self.metrics.serving.set(i64::from(result.is_ok()));
        result
    }

    async fn check_serving(&self, block: Finalized) -> Result<Serving, Deny> {
        let standing = self
            .view
            .kms_standing(&block, self.own.node, &self.own.boot())
            .await
            .map_err(|e| {
                tracing::warn!(target: "kms::policy", error = %e, "cannot check this node against the chain");
                Deny {
                    stage: DenyStage::Unavailable,
                    reason: "cannot check this node against the chain now".into(),
                    block: Some(block),
                }
            })?;
        let not_serving = |stage, reason: String| Deny {
            stage,
            reason: format!(
                "this KMS node may not serve at block {}: {reason}",
                block.number
            ),
            block: Some(block),
        };
        let registered = standing.map_err(|d| not_serving(d.stage, d.reason))?;
        let roots = self.keyring.root_keys(registered.generation).map_err(|e| {
            tracing::error!(target: "kms::policy", error = %e, "root key derivation failed");
            Deny {
                stage: DenyStage::Unavailable,
                reason: "root key derivation failed".into(),
                block: Some(block),
            }
        })?;
        if roots.signer_address != registered.signer
            || roots.ca_public_key != registered.ca_public_key
        {
            return Err(not_serving(
                DenyStage::Node,
                format!(
                    "the registered root keys of generation {} are not this node's (signer {} registered, {} derived)",
                    registered.generation, registered.signer, roots.signer_address
                ),
            ));
        }
        Ok(Serving { block, roots })
    }

    /// Decides whether `evidence` may receive its app's keys now.
    pub async fn decide_app(&self, evidence: &VerifiedEvidence) -> Result<Grant, Deny> {
        let block = self.current_block()?;
        let serving = self.serving_at(block).await?;
        // The boot names the KMS root it trusts (its `key-provider` event, measured): keys of
        // another root's deployment are not what the app was built to receive.
        let trusted = &evidence.runtime().key_provider;
        if trusted.as_slice() != serving.roots.signer_address.as_slice() {
            return Err(Deny {
                stage: DenyStage::Policy,
                reason: format!(
                    "the boot's key-provider is 0x{}, not this KMS's root signer {}",
                    hex::encode(trusted),
                    serving.roots.signer_address
                ),
                block: Some(block),
            });
        }
        // Evidence made after the boot (the app's own events extended past `system-ready`) is an
        // app's statement, not the boot asking for its keys.
        let log = evidence.event_log();
        if log.last().map(|e| e.name.as_str()) != Some(names::SYSTEM_READY) {
            return Err(Deny {
                stage: DenyStage::Policy,
                reason: "the evidence's event log goes past system-ready: keys go only to the \
                         boot itself"
                    .into(),
                block: Some(block),
            });
        }
        let boot = covenant_chain::boot_info(evidence, 0);
        let answer = self
            .view
            .app(&block, &boot)
            .await
            .map_err(|e| unavailable(&block, &e))?;
        answer.verdict?;
        Ok(Grant {
            block,
            boot: answer.boot,
            roots: serving.roots,
        })
    }

    /// Decides whether the KMS node proven by `evidence` may receive the root secret now: this
    /// node serves, the chain allows the other node's evidence, its identity address is the one
    /// its evidence binds, and governance did not remove it.
    pub async fn decide_replica(&self, evidence: &VerifiedEvidence) -> Result<ReplicaGrant, Deny> {
        let block = self.current_block()?;
        self.serving_at(block).await?;
        let refuse = |reason: String| Deny {
            stage: DenyStage::Policy,
            reason,
            block: Some(block),
        };
        // The address is the one the new node's evidence binds, never one a request names.
        let node = evidence.kms_identity().map(Address::from).ok_or_else(|| {
            refuse(
                "the evidence names no KMS identity (a kms-identity event after system-ready)"
                    .into(),
            )
        })?;
        let boot = covenant_chain::kms_boot_info(evidence);
        match self.view.kms(&block, &boot).await {
            Ok(Ok(())) => {}
            Ok(Err(deny)) => {
                return Err(Deny {
                    reason: format!("not an allowed KMS node: {}", deny.reason),
                    ..deny
                });
            }
            Err(e) => return Err(unavailable(&block, &e)),
        }
        // A node governance removed comes back only by governance (the registry would revert;
        // refusing here says why, and sends no transaction).
        let record = self
            .view
            .chain()
            .call(
                self.view.registry(),
                &KmsRegistry::kmsNodeCall { node },
                block.hash,
            )
            .await
            .map_err(|e| unavailable(&block, &e))?;
        if record.active {
            return Err(refuse(format!("KMS node {node} is already active")));
        }
        if record.removedByGovernance {
            return Err(refuse(format!(
                "KMS node {node} was removed by governance; only governance may onboard it again"
            )));
        }
        Ok(ReplicaGrant { block, node, boot })
    }

    /// An app's key generation at `block` for the public env-key statement (`None`: not
    /// registered): the mirror's value, cross-checked by `eth_call`.
    pub async fn app_key_generation(
        &self,
        app: Address,
        block: &Finalized,
    ) -> covenant_mirror::Result<Option<u64>> {
        self.view.app_key_generation(app, block).await
    }
}
