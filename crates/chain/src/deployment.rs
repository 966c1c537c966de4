//! `deployments/<chainId>.json`, as `scripts/deploy/Deploy.s.sol` writes it.

use std::path::Path;

use alloy::primitives::Address;

/// Why a deployment file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    /// The file could not be read.
    #[error("cannot read deployment file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a deployment.
    #[error("deployment file {path} is malformed: {source}")]
    Malformed {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

/// Where Covenant is deployed on one chain.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    /// The chain id.
    pub chain_id: u64,
    /// A block at or before the first deployment transaction: where indexing starts.
    pub start_block: u64,
    /// The contract addresses.
    pub contracts: Contracts,
}

/// The deployed contracts.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Contracts {
    /// The KMS registry (proxy).
    pub kms_registry: Address,
    /// The KMS registry's implementation.
    pub kms_registry_implementation: Address,
    /// The App implementation new apps are created from.
    pub app_implementation: Address,
    /// The domain registry (proxy).
    pub domain_registry: Address,
    /// The domain registry's implementation.
    pub domain_registry_implementation: Address,
    /// The Governor.
    pub covenant_governor: Address,
    /// The votes token.
    pub covenant_token: Address,
    /// The Timelock that owns the registries.
    pub timelock_controller: Address,
    /// The Timelock's cancel-only guardian (its term expires; only governance renews it).
    pub covenant_guardian: Address,
}

impl Deployment {
    /// Reads a deployment file.
    pub fn read(path: &Path) -> Result<Self, DeploymentError> {
        let display = path.display().to_string();
        let text = std::fs::read(path).map_err(|source| DeploymentError::Read {
            path: display.clone(),
            source,
        })?;
        serde_json::from_slice(&text).map_err(|source| DeploymentError::Malformed {
            path: display,
            source,
        })
    }
}
