//! The gateway's one rule: an instance is routed at a finalized block only if the chain allows
//! its boot there — the same question, through the same finalized policy view
//! ([`covenant_mirror::PolicyView`]: mirror and `eth_call` at one block hash, staleness), as the
//! kms-oracle asks before it releases keys — and only while its app's key generation is the one
//! the instance was registered under.

use covenant_attest::{VerifiedEvidence, eventlog::names};
use covenant_chain::BootInfo;
use covenant_mirror::{Deny, DenyStage, Finalized, PolicyView};

/// "Could not decide": logged with its cause; the caller reads a fixed reason.
fn unavailable(block: &Finalized, e: &covenant_mirror::Error) -> Deny {
    tracing::warn!(target: "gateway::decide", block = block.number, error = %e, "cannot decide");
    Deny {
        stage: DenyStage::Unavailable,
        reason: "cannot decide now: the chain or the mirror is unavailable".into(),
        block: Some(*block),
    }
}

fn policy(block: &Finalized, reason: String) -> Deny {
    Deny {
        stage: DenyStage::Policy,
        reason,
        block: Some(*block),
    }
}

/// Whether the chain allows the boot `evidence` proves at `block`: its event log ends at
/// `system-ready` (a boot, not an app's later statement), its `key-provider` is the KMS root
/// registered at the block, and `isAppAllowed` holds. Returns the boot as judged, with the app's
/// key generation at the block.
pub async fn decide(
    view: &PolicyView,
    block: &Finalized,
    evidence: &VerifiedEvidence,
) -> Result<BootInfo, Deny> {
    if evidence.event_log().last().map(|e| e.name.as_str()) != Some(names::SYSTEM_READY) {
        return Err(policy(
            block,
            "the evidence's event log goes past system-ready: only a boot registers".into(),
        ));
    }
    let roots = view
        .root_keys(block)
        .await
        .map_err(|e| unavailable(block, &e))??;
    let trusted = &evidence.runtime().key_provider;
    if trusted.as_slice() != roots.signer.as_slice() {
        return Err(policy(
            block,
            format!(
                "the boot's key-provider is 0x{}, not the registered KMS root signer {}",
                hex::encode(trusted),
                roots.signer
            ),
        ));
    }
    let answer = view
        .app(block, &covenant_chain::boot_info(evidence, 0))
        .await
        .map_err(|e| unavailable(block, &e))?;
    answer.verdict?;
    Ok(answer.boot)
}

/// [`decide`] for an instance registered under `key_generation`: a later generation (the app's
/// keys rotated) means the instance runs with revoked keys and must boot again.
pub async fn redecide(
    view: &PolicyView,
    block: &Finalized,
    evidence: &VerifiedEvidence,
    key_generation: u64,
) -> Result<BootInfo, Deny> {
    let boot = decide(view, block, evidence).await?;
    if boot.keyGeneration != key_generation {
        return Err(policy(
            block,
            format!(
                "the app's key generation is {}, the instance booted with {key_generation}",
                boot.keyGeneration
            ),
        ));
    }
    Ok(boot)
}
