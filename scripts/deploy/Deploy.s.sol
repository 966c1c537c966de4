// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {CovenantDeployment} from "./CovenantDeployment.sol";
import {Script} from "forge-std/Script.sol";

/// @notice Deploys Covenant on any chain and writes `deployments/<chainId>.json`.
///
/// Run from the repository root:
///   forge script scripts/deploy/Deploy.s.sol --rpc-url $RPC --private-key $KEY --broadcast
/// Environment (all optional except on a real network, where every value should be set):
///   COVENANT_TOKEN_HOLDERS      comma-separated addresses          (default: the deployer)
///   COVENANT_TOKEN_AMOUNTS      comma-separated amounts, wei       (default: 1,000,000 tokens)
///   COVENANT_GUARDIAN           canceller-only guardian            (default: the deployer)
///   COVENANT_TIMELOCK_DELAY     seconds                            (default: 172800, two days)
///   COVENANT_VOTING_DELAY       seconds                            (default: 86400)
///   COVENANT_VOTING_PERIOD      seconds                            (default: 432000)
///   COVENANT_PROPOSAL_THRESHOLD votes, wei                         (default: 0)
///   COVENANT_QUORUM_PERCENT     percent of supply                  (default: 4)
///   COVENANT_ALLOW_SIMULATED_TEE true only on development networks (default: false)
///   COVENANT_DEPLOYMENT_FILE    output path                        (default: deployments/<chainId>.json)
contract Deploy is Script, CovenantDeployment {
    function run() external returns (Deployed memory d) {
        uint256 startBlock = block.number;
        vm.startBroadcast();
        (, address deployer,) = vm.readCallers();
        DeployConfig memory c = _config(deployer);
        d = _deployCovenant(c, deployer);
        vm.stopBroadcast();
        _write(d, startBlock, c);
    }

    function _config(address deployer) internal view returns (DeployConfig memory c) {
        address[] memory defaultHolders = new address[](1);
        defaultHolders[0] = deployer;
        uint256[] memory defaultAmounts = new uint256[](1);
        defaultAmounts[0] = 1_000_000 ether;
        c.holders = vm.envOr("COVENANT_TOKEN_HOLDERS", ",", defaultHolders);
        c.amounts = vm.envOr("COVENANT_TOKEN_AMOUNTS", ",", defaultAmounts);
        c.guardian = vm.envOr("COVENANT_GUARDIAN", deployer);
        c.timelockDelay = vm.envOr("COVENANT_TIMELOCK_DELAY", uint256(2 days));
        c.votingDelay = uint48(vm.envOr("COVENANT_VOTING_DELAY", uint256(1 days)));
        c.votingPeriod = uint32(vm.envOr("COVENANT_VOTING_PERIOD", uint256(5 days)));
        c.proposalThreshold = vm.envOr("COVENANT_PROPOSAL_THRESHOLD", uint256(0));
        c.quorumPercent = vm.envOr("COVENANT_QUORUM_PERCENT", uint256(4));
        c.allowSimulatedTee = vm.envOr("COVENANT_ALLOW_SIMULATED_TEE", false);
    }

    function _write(Deployed memory d, uint256 startBlock, DeployConfig memory c) internal {
        string memory contracts = "contracts";
        vm.serializeAddress(contracts, "CovenantToken", address(d.token));
        vm.serializeAddress(contracts, "TimelockController", address(d.timelock));
        vm.serializeAddress(contracts, "CovenantGovernor", address(d.governor));
        vm.serializeAddress(contracts, "KmsRegistry", address(d.kmsRegistry));
        vm.serializeAddress(contracts, "KmsRegistryImplementation", address(d.kmsRegistryImplementation));
        vm.serializeAddress(contracts, "AppImplementation", address(d.appImplementation));
        vm.serializeAddress(
            contracts, "DomainRegistryImplementation", address(d.domainRegistryImplementation)
        );
        string memory contractsJson =
            vm.serializeAddress(contracts, "DomainRegistry", address(d.domainRegistry));

        string memory settings = "settings";
        vm.serializeAddress(settings, "guardian", c.guardian);
        vm.serializeUint(settings, "timelockDelay", c.timelockDelay);
        vm.serializeUint(settings, "votingDelay", c.votingDelay);
        vm.serializeUint(settings, "votingPeriod", c.votingPeriod);
        vm.serializeUint(settings, "proposalThreshold", c.proposalThreshold);
        vm.serializeUint(settings, "quorumPercent", c.quorumPercent);
        string memory settingsJson = vm.serializeBool(settings, "allowSimulatedTee", c.allowSimulatedTee);

        string memory root = "deployment";
        vm.serializeUint(root, "chainId", block.chainid);
        vm.serializeUint(root, "startBlock", startBlock);
        vm.serializeString(root, "settings", settingsJson);
        string memory json = vm.serializeString(root, "contracts", contractsJson);
        string memory path = vm.envOr(
            "COVENANT_DEPLOYMENT_FILE", string.concat("deployments/", vm.toString(block.chainid), ".json")
        );
        vm.writeJson(json, path);
    }
}
