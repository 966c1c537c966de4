//! Covenant's chain types: contract bindings generated from the committed ABIs (`abi/`, exported
//! from forge's build by `scripts/export-abi`), the deployment file the deploy script writes, and
//! [`boot_info`], which turns [`covenant_attest::VerifiedEvidence`] into the `BootInfo` the
//! registries judge.
//!
//! Rust never re-types a selector, event or struct: everything here comes from the ABIs through
//! `alloy::sol!`. This crate performs no I/O beyond reading a deployment file, and decides nothing.

mod boot;
mod deployment;
mod finality;

pub use boot::{BootInfo, TcbStatus, TeeKind, boot_info, kms_boot_info};
pub use deployment::{Contracts as DeploymentContracts, Deployment, DeploymentError};
pub use finality::Finality;

/// Bindings, one module per contract (each ABI names its own copy of shared structs). The
/// file-level types of `contracts/interfaces/BootPolicy.sol` (`BootInfo`, `Provenance`,
/// `TeeKind`, `TcbStatus`) are read from that Solidity file itself.
#[allow(missing_docs, clippy::too_many_arguments, unreachable_pub)]
mod bindings {
    macro_rules! binding {
        ($module:ident, $contract:ident, $abi:literal) => {
            pub mod $module {
                alloy::sol!("../../contracts/interfaces/BootPolicy.sol");
                alloy::sol!(
                    #[sol(rpc)]
                    $contract,
                    $abi
                );
            }
        };
    }
    binding!(kms_registry, KmsRegistry, "abi/KmsRegistry.json");
    binding!(app, App, "abi/App.json");
    binding!(domain_registry, DomainRegistry, "abi/DomainRegistry.json");
    binding!(governor, CovenantGovernor, "abi/CovenantGovernor.json");
    binding!(token, CovenantToken, "abi/CovenantToken.json");
    binding!(timelock, TimelockController, "abi/TimelockController.json");
    binding!(guardian, CovenantGuardian, "abi/CovenantGuardian.json");
}

pub use bindings::{app, domain_registry, governor, guardian, kms_registry, timelock, token};

/// The committed JSON ABIs the bindings are generated from, for code that decodes dynamically
/// (e.g. rendering a proposal's calldata with parameter names).
pub mod abi_json {
    /// `KmsRegistry`.
    pub const KMS_REGISTRY: &str = include_str!("../abi/KmsRegistry.json");
    /// `App`.
    pub const APP: &str = include_str!("../abi/App.json");
    /// `DomainRegistry`.
    pub const DOMAIN_REGISTRY: &str = include_str!("../abi/DomainRegistry.json");
    /// `CovenantGovernor`.
    pub const GOVERNOR: &str = include_str!("../abi/CovenantGovernor.json");
    /// `CovenantToken`.
    pub const TOKEN: &str = include_str!("../abi/CovenantToken.json");
    /// `TimelockController`.
    pub const TIMELOCK: &str = include_str!("../abi/TimelockController.json");
    /// `CovenantGuardian`.
    pub const GUARDIAN: &str = include_str!("../abi/CovenantGuardian.json");
}
