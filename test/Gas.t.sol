// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IApp} from "../contracts/interfaces/IApp.sol";
import {App} from "../contracts/registry/App.sol";
import {KmsRegistry} from "../contracts/registry/KmsRegistry.sol";
import {CovenantFixture} from "./utils/CovenantFixture.sol";

/// Gas of the operations the design budgets (committed in snapshots/gas.json and .gas-snapshot,
/// checked by scripts/test). Execution gas of the call only: a transaction adds 21,000 plus
/// calldata.
contract GasTest is CovenantFixture {
    App internal app;
    address internal node = makeAddr("kms-node");

    function setUp() public override {
        super.setUp();
        _allowOsImage();
        _allowKms();
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.onboardKmsNode, (node, KMS_MR, KMS_DEVICE)));
        app = _createApp();
    }

    function test_GasCreateApp() public {
        IApp.AppInit memory init = _appInit();
        registry.createApp(appOwner, init);
        vm.snapshotGasLastCall("gas", "createApp (one compose hash, one device)");
    }

    function test_GasAddComposeHash() public {
        vm.prank(appOwner);
        app.addComposeHash(keccak256("v2"), _provenance("v2"));
        vm.snapshotGasLastCall("gas", "App.addComposeHash (by its owner)");
    }

    function test_GasAddOsImage() public {
        vm.prank(address(timelock));
        registry.addOsImage(keccak256("os 2"), _provenance("os-2"), _osMeasurements());
        vm.snapshotGasLastCall("gas", "KmsRegistry.addOsImage (by the Timelock, three platforms)");
    }

    function test_GasIsAppAllowed() public {
        registry.isAppAllowed(_boot(address(app)));
        vm.snapshotGasLastCall("gas", "KmsRegistry.isAppAllowed (allowed)");
    }

    function test_GasCommitGrantLog() public {
        vm.prank(node);
        registry.commitGrantLog(1, 100, keccak256("root"));
        vm.snapshotGasLastCall("gas", "KmsRegistry.commitGrantLog (first commit)");
        // One test is one transaction: make the next call pay for cold storage as its own would.
        vm.cool(address(registry));
        vm.prank(node);
        registry.commitGrantLog(101, 200, keccak256("root 2"));
        vm.snapshotGasLastCall("gas", "KmsRegistry.commitGrantLog (next commit)");
    }

    function test_GasClaimDomain() public {
        vm.prank(appOwner);
        domains.claimDomain("app.example.com", address(app));
        vm.snapshotGasLastCall("gas", "DomainRegistry.claimDomain");
    }

    function test_GasOnboardKmsNode() public {
        vm.prank(node);
        registry.onboardKmsNode(makeAddr("kms-node-2"), KMS_MR, KMS_DEVICE);
        vm.snapshotGasLastCall("gas", "KmsRegistry.onboardKmsNode (by a serving node)");
    }

    function test_GasGuardianCancel() public {
        (address[] memory targets,, bytes[] memory calldatas) =
            _single(address(registry), abi.encodeCall(KmsRegistry.setAllowSimulatedTee, (true)));
        (uint256[] memory values, bytes32 salt) = _queueBatch(targets, calldatas, "Accept simulated TEEs");
        _coolAll(app);
        vm.cool(address(guardianContract));
        vm.prank(guardian);
        guardianContract.cancel(targets, values, calldatas, bytes32(0), salt);
        vm.snapshotGasLastCall("gas", "CovenantGuardian.cancel (one call)");
    }

    function test_GasSetAllowedTeeKindsLoosening() public {
        vm.prank(appOwner);
        app.setAllowedTeeKinds(TDX | SNP);
        vm.cool(address(app));
        vm.prank(appOwner);
        app.setAllowedTeeKinds(TDX | SNP | SIMULATED);
        vm.snapshotGasLastCall("gas", "App.setAllowedTeeKinds (a loosening, scheduled)");
    }

    /// addComposeHash on a DAO-governed app, step by step through Governor and Timelock.
    function test_GasAddComposeHashThroughGovernance() public {
        App governed = App(registry.createApp(address(timelock), _appInit()));
        (address[] memory targets, uint256[] memory values, bytes[] memory calldatas) = _single(
            address(governed), abi.encodeCall(IApp.addComposeHash, (keccak256("v2"), _provenance("v2")))
        );
        string memory description = "Allow v2";
        vm.prank(alice);
        uint256 id = governor.propose(targets, values, calldatas, description);
        vm.snapshotGasLastCall("gas", "governance: propose");
        vm.warp(block.timestamp + VOTING_DELAY + 1);
        _coolAll(governed);
        vm.prank(alice);
        governor.castVote(id, 1);
        vm.snapshotGasLastCall("gas", "governance: first vote");
        _closeVoting(id);
        _coolAll(governed);
        governor.queue(targets, values, calldatas, keccak256(bytes(description)));
        vm.snapshotGasLastCall("gas", "governance: queue");
        vm.warp(block.timestamp + TIMELOCK_DELAY);
        _coolAll(governed);
        governor.execute(targets, values, calldatas, keccak256(bytes(description)));
        vm.snapshotGasLastCall("gas", "governance: execute addComposeHash");
        assertTrue(governed.isComposeHashAllowed(keccak256("v2")));
    }

    /// One test is one transaction: make each step pay for cold storage as its own transaction would.
    function _coolAll(App governed) internal {
        vm.cool(address(governor));
        vm.cool(address(timelock));
        vm.cool(address(token));
        vm.cool(address(governed));
        vm.cool(address(appImplementation));
    }
}
