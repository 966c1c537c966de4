// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {CovenantGovernor} from "../../contracts/governance/CovenantGovernor.sol";
import {CovenantGuardian} from "../../contracts/governance/CovenantGuardian.sol";
import {CovenantToken} from "../../contracts/governance/CovenantToken.sol";
import {App} from "../../contracts/registry/App.sol";
import {DomainRegistry} from "../../contracts/registry/DomainRegistry.sol";
import {KmsRegistry} from "../../contracts/registry/KmsRegistry.sol";
import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";
import {ERC1967Proxy} from "@openzeppelin/contracts/proxy/ERC1967/ERC1967Proxy.sol";
import {Vm} from "forge-std/Vm.sol";

/// @notice Deploys and wires Covenant's contracts. Shared by the deploy script and the tests' fixture,
/// so that tests exercise exactly what is deployed.
abstract contract CovenantDeployment {
    /// What to deploy.
    struct DeployConfig {
        /// Initial token holders and their amounts.
        address[] holders;
        uint256[] amounts;
        /// The guardian: it can cancel queued operations, nothing else, until `guardianExpiresAt`.
        address guardian;
        /// When the guardian's power ends (block timestamp); only governance renews it.
        uint64 guardianExpiresAt;
        /// Timelock delay, seconds.
        uint256 timelockDelay;
        /// Governor settings: seconds, seconds, votes, percent.
        uint48 votingDelay;
        uint32 votingPeriod;
        uint256 proposalThreshold;
        uint256 quorumPercent;
        /// Whether the KMS registry starts out accepting simulated TEE evidence.
        bool allowSimulatedTee;
        /// The shortest notice period an app may have, seconds.
        uint64 minNoticePeriod;
    }

    /// What was deployed.
    struct Deployed {
        CovenantToken token;
        TimelockController timelock;
        CovenantGovernor governor;
        CovenantGuardian guardian;
        KmsRegistry kmsRegistry;
        KmsRegistry kmsRegistryImplementation;
        App appImplementation;
        DomainRegistry domainRegistry;
        DomainRegistry domainRegistryImplementation;
    }

    Vm private constant VM = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    /// Deploys everything from `deployer` (the address whose nonce creates the contracts) and leaves
    /// the deployer with no role: the Timelock owns the registries and administers itself, the
    /// Governor is its only proposer, the guardian contract (acting for `c.guardian` until its
    /// term ends) and the Governor its only cancellers, and anyone may execute a ready operation.
    function _deployCovenant(DeployConfig memory c, address deployer) internal returns (Deployed memory d) {
        d.token = new CovenantToken("Covenant", "COV", c.holders, c.amounts);
        address[] memory none = new address[](0);
        address[] memory anyone = new address[](1);
        d.timelock = new TimelockController(c.timelockDelay, none, anyone, deployer);
        d.governor = new CovenantGovernor(
            d.token, d.timelock, c.votingDelay, c.votingPeriod, c.proposalThreshold, c.quorumPercent
        );
        d.timelock.grantRole(d.timelock.PROPOSER_ROLE(), address(d.governor));
        d.timelock.grantRole(d.timelock.CANCELLER_ROLE(), address(d.governor));
        d.guardian = new CovenantGuardian(d.timelock, c.guardian, c.guardianExpiresAt);
        d.timelock.grantRole(d.timelock.CANCELLER_ROLE(), address(d.guardian));

        // The App implementation is bound to the registry proxy, which is created right after it.
        d.kmsRegistryImplementation = new KmsRegistry();
        address registryProxy = VM.computeCreateAddress(deployer, VM.getNonce(deployer) + 1);
        d.appImplementation = new App(registryProxy);
        d.kmsRegistry = KmsRegistry(
            address(
                new ERC1967Proxy(
                    address(d.kmsRegistryImplementation),
                    abi.encodeCall(
                        KmsRegistry.initialize,
                        (
                            address(d.timelock),
                            address(d.appImplementation),
                            c.allowSimulatedTee,
                            c.minNoticePeriod
                        )
                    )
                )
            )
        );
        require(address(d.kmsRegistry) == registryProxy, "registry address prediction failed");

        d.domainRegistryImplementation = new DomainRegistry(d.kmsRegistry);
        d.domainRegistry = DomainRegistry(
            address(
                new ERC1967Proxy(
                    address(d.domainRegistryImplementation),
                    abi.encodeCall(DomainRegistry.initialize, (address(d.timelock)))
                )
            )
        );

        d.timelock.renounceRole(d.timelock.DEFAULT_ADMIN_ROLE(), deployer);
    }
}
