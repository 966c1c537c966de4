// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {CovenantDeployment} from "./CovenantDeployment.sol";
import {Script} from "forge-std/Script.sol";

/// @notice Deploys Covenant on any chain and writes `deployments/<chainId>.json`.
///
/// Run from the repository root:
///   forge script scripts/deploy/Deploy.s.sol --rpc-url $RPC --private-key $KEY --broadcast
/// Environment (all optional except on a real network, where every value should be set). The
/// preset picks the defaults: `production` (the default; the reasoning is in docs/contracts.md) or
/// `devnet` (seconds instead of days, simulated TEEs accepted); any variable overrides its preset.
///                                                                  production     devnet
///   COVENANT_PRESET              production | devnet
///   COVENANT_TOKEN_HOLDERS       comma-separated addresses          the deployer   the deployer
///   COVENANT_TOKEN_AMOUNTS       comma-separated amounts, wei       1,000,000 tokens
///   COVENANT_GUARDIAN            cancel-only guardian               the deployer   the deployer
///   COVENANT_GUARDIAN_TERM       seconds until its power ends       365 days       365 days
///   COVENANT_TIMELOCK_DELAY      seconds                            2 days         10
///   COVENANT_VOTING_DELAY        seconds                            1 day          1
///   COVENANT_VOTING_PERIOD       seconds                            5 days         20
///   COVENANT_PROPOSAL_THRESHOLD  votes, wei                         0.1 % of supply  0
///   COVENANT_QUORUM_PERCENT      percent of supply                  4              4
///   COVENANT_MIN_NOTICE_PERIOD   seconds an app loosening waits     1 day          10
///   COVENANT_ALLOW_SIMULATED_TEE true only on development networks  false          true
///   COVENANT_DEPLOYMENT_FILE     output path                        deployments/<chainId>.json
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
        bool devnet =
            keccak256(bytes(vm.envOr("COVENANT_PRESET", string("production")))) == keccak256("devnet");
        address[] memory defaultHolders = new address[](1);
        defaultHolders[0] = deployer;
        uint256[] memory defaultAmounts = new uint256[](1);
        defaultAmounts[0] = 1_000_000 ether;
        c.holders = vm.envOr("COVENANT_TOKEN_HOLDERS", ",", defaultHolders);
        c.amounts = vm.envOr("COVENANT_TOKEN_AMOUNTS", ",", defaultAmounts);
        uint256 supply = 0;
        for (uint256 i = 0; i < c.amounts.length; ++i) {
            supply += c.amounts[i];
        }
        c.guardian = vm.envOr("COVENANT_GUARDIAN", deployer);
        c.guardianExpiresAt = uint64(block.timestamp + vm.envOr("COVENANT_GUARDIAN_TERM", uint256(365 days)));
        c.timelockDelay = vm.envOr("COVENANT_TIMELOCK_DELAY", devnet ? 10 : uint256(2 days));
        c.votingDelay = uint48(vm.envOr("COVENANT_VOTING_DELAY", devnet ? 1 : uint256(1 days)));
        c.votingPeriod = uint32(vm.envOr("COVENANT_VOTING_PERIOD", devnet ? 20 : uint256(5 days)));
        c.proposalThreshold = vm.envOr("COVENANT_PROPOSAL_THRESHOLD", devnet ? 0 : supply / 1000);
        c.quorumPercent = vm.envOr("COVENANT_QUORUM_PERCENT", uint256(4));
        c.minNoticePeriod = uint64(vm.envOr("COVENANT_MIN_NOTICE_PERIOD", devnet ? 10 : uint256(1 days)));
        c.allowSimulatedTee = vm.envOr("COVENANT_ALLOW_SIMULATED_TEE", devnet);
    }

    function _write(Deployed memory d, uint256 startBlock, DeployConfig memory c) internal {
        string memory contracts = "contracts";
        vm.serializeAddress(contracts, "CovenantToken", address(d.token));
        vm.serializeAddress(contracts, "TimelockController", address(d.timelock));
        vm.serializeAddress(contracts, "CovenantGovernor", address(d.governor));
        vm.serializeAddress(contracts, "CovenantGuardian", address(d.guardian));
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
        vm.serializeUint(settings, "guardianExpiresAt", c.guardianExpiresAt);
        vm.serializeUint(settings, "minNoticePeriod", c.minNoticePeriod);
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
