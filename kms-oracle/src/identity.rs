//! Who this node is: its TEE (the simulated TEE here; see `seal` for real platforms), the
//! evidence it presents in its own RA-TLS certificate, and the verifier policy it judges every
//! peer by. Its own evidence goes through the same `verify` as any client's.

use alloy::primitives::{Address, B256};
use covenant_attest::{
    AppId, ComposeHash, DeviceId, InstanceId, Measurement, OsImageHash, Platform, Policy,
    VerifiedEvidence,
    eventlog::{RuntimeEvent, RuntimeIdentity, names},
    ratls::RaTlsIdentity,
    simulator::{SimulatedTee, SimulatorRootKey},
};
use covenant_chain::BootInfo;
use covenant_tee::EvidenceProducer;
use sha2::{Digest, Sha256};

use crate::Result;

/// The key-provider event of a KMS node's boot log.
pub const KMS_KEY_PROVIDER: &[u8] = b"covenant-kms";

/// The verifier policy: every platform, every TCB status the chain can judge (`isAppAllowed`
/// and `isKmsAllowed` refuse unknown or revoked TCBs and, per app, out-of-date ones), and the
/// simulator's public development root only when `simulated_allowed` — the chain's
/// `allowSimulatedTee` at the block the decision is made at (`PolicyView::simulated_allowed`):
/// the root is published, so evidence signed with it proves nothing where the chain does not
/// allow simulation. Which OS a set of registers is, is the chain's decision: the measurements
/// registered with each OS image (`BootInfo.osMeasurement`).
pub fn verifier_policy(simulated_allowed: bool) -> Policy {
    Policy::judged_by_chain(simulated_allowed)
}

/// The boot identity of a KMS node: the registry is its "app", the compose hash names the
/// kms-oracle's version, and the instance id is zero so every node of the same code on the same
/// image has the same aggregated measurement (nodes are told apart by device and identity key).
pub fn kms_runtime_identity(registry: Address, os_image: B256) -> RuntimeIdentity {
    let compose = Sha256::digest(format!("covenant-kms-oracle {}", env!("CARGO_PKG_VERSION")));
    RuntimeIdentity {
        app_id: AppId::new(registry.into_array()),
        compose_hash: ComposeHash::new(compose.into()),
        instance_id: InstanceId::new([0; 20]),
        key_provider: KMS_KEY_PROVIDER.to_vec(),
        os_image_hash: OsImageHash::new(os_image.0),
        gpu_evidence_hash: None,
    }
}

/// What a simulated boot of `os_image` measures to (`covenant_tee::simulated_os_registers`).
pub fn simulated_os_registers(os_image: B256) -> (Measurement, [Measurement; 3]) {
    covenant_tee::simulated_os_registers(os_image.0)
}

/// The node's TEE: an evidence producer that has recorded the node's boot.
#[derive(Debug)]
pub struct NodeTee {
    producer: Box<dyn EvidenceProducer>,
}

impl NodeTee {
    /// A simulated TEE on device `device_id` booted from `os_image` (whose registers are
    /// [`simulated_os_registers`]), which then extends the node's identity address `node`.
    pub fn simulated(
        registry: Address,
        device_id: B256,
        os_image: B256,
        node: Address,
    ) -> Result<Self> {
        let (mrtd, rtmr) = simulated_os_registers(os_image);
        let producer = covenant_tee::Simulated::new(SimulatedTee::new(
            SimulatorRootKey::development(),
            DeviceId::new(device_id.0),
            mrtd,
            rtmr,
        ));
        Self::booted(Box::new(producer), registry, os_image, node)
    }

    /// A real TEE's `producer` (`covenant_tee::Tdx`, `covenant_tee::Snp`), which records the
    /// node's boot from `os_image` and then its identity address `node`.
    pub fn booted(
        mut producer: Box<dyn EvidenceProducer>,
        registry: Address,
        os_image: B256,
        node: Address,
    ) -> Result<Self> {
        producer.record_boot(&kms_runtime_identity(registry, os_image))?;
        producer.extend(RuntimeEvent::new(names::KMS_IDENTITY, node.to_vec()))?;
        Ok(Self { producer })
    }

    /// The platform of its evidence.
    pub fn platform(&self) -> Platform {
        self.producer.platform()
    }

    /// A fresh RA-TLS identity whose evidence binds its key.
    pub fn ratls_identity(&self) -> Result<RaTlsIdentity> {
        Ok(self.producer.ratls_identity()?)
    }
}

/// The node's identity as the chain judges it.
#[derive(Clone, Debug)]
pub struct OwnIdentity {
    /// Its certificate (server certificate, and client certificate towards other nodes).
    pub certificate_der: Vec<u8>,
    /// Its evidence, verified by the same code as any peer's.
    pub evidence: VerifiedEvidence,
    /// The node's identity address (its secp256k1 key).
    pub node: Address,
}

impl OwnIdentity {
    /// The `BootInfo` for `isKmsAllowed` (its measurement as of `system-ready`).
    pub fn boot(&self) -> BootInfo {
        covenant_chain::kms_boot_info(&self.evidence)
    }
}
