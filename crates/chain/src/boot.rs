//! `BootInfo`: what the kms-oracle asks the registries about, built from verified evidence only.

use alloy::primitives::{Address, FixedBytes};
use covenant_attest::{Platform, VerifiedEvidence};

pub use crate::bindings::kms_registry::KmsRegistry::BootInfo;

/// The on-chain enums, generated from `contracts/interfaces/BootPolicy.sol` (the ABI flattens
/// them to `uint8`).
pub use crate::bindings::kms_registry::{TcbStatus, TeeKind};

fn tee_kind(platform: Platform) -> TeeKind {
    match platform {
        Platform::Tdx => TeeKind::Tdx,
        Platform::Snp => TeeKind::SevSnp,
        Platform::Simulated => TeeKind::Simulated,
    }
}

fn tcb_status(status: covenant_attest::TcbStatus) -> TcbStatus {
    use covenant_attest::TcbStatus as S;
    match status {
        S::UpToDate => TcbStatus::UpToDate,
        S::SwHardeningNeeded => TcbStatus::SwHardeningNeeded,
        S::ConfigurationNeeded => TcbStatus::ConfigurationNeeded,
        S::ConfigurationAndSwHardeningNeeded => TcbStatus::ConfigurationAndSwHardeningNeeded,
        S::OutOfDate => TcbStatus::OutOfDate,
        S::OutOfDateConfigurationNeeded => TcbStatus::OutOfDateConfigurationNeeded,
        S::Revoked => TcbStatus::Revoked,
    }
}

/// The `BootInfo` for verified evidence, asking about keys of `key_generation`.
pub fn boot_info(evidence: &VerifiedEvidence, key_generation: u64) -> BootInfo {
    let runtime = evidence.runtime();
    BootInfo {
        appId: Address::from(*runtime.app_id.as_bytes()),
        composeHash: FixedBytes(*runtime.compose_hash.as_bytes()),
        instanceId: FixedBytes(*runtime.instance_id.as_bytes()),
        deviceId: FixedBytes(*evidence.device_id().as_bytes()),
        mrAggregated: FixedBytes(*evidence.mr_aggregated().as_bytes()),
        osImageHash: FixedBytes(*runtime.os_image_hash.as_bytes()),
        osMeasurement: FixedBytes(evidence.os_measurement()),
        teeKind: tee_kind(evidence.platform()) as u8,
        tcbStatus: tcb_status(evidence.tcb_status()) as u8,
        gpuEvidenceHash: runtime
            .gpu_evidence_hash
            .map(|h| FixedBytes(*h.as_bytes()))
            .unwrap_or_default(),
        keyGeneration: key_generation,
    }
}

/// The `BootInfo` of a KMS node for `isKmsAllowed`: its aggregated measurement is the one as of
/// `system-ready`, which every node of the same code on the same image shares (the node's own
/// `kms-identity` event comes after it; see [`VerifiedEvidence::mr_aggregated_at_system_ready`]).
pub fn kms_boot_info(evidence: &VerifiedEvidence) -> BootInfo {
    BootInfo {
        mrAggregated: FixedBytes(*evidence.mr_aggregated_at_system_ready().as_bytes()),
        ..boot_info(evidence, 0)
    }
}
