// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {CovenantToken} from "../../contracts/governance/CovenantToken.sol";
import {BootInfo, Provenance} from "../../contracts/interfaces/BootPolicy.sol";
import {IApp} from "../../contracts/interfaces/IApp.sol";
import {IKmsRegistry} from "../../contracts/interfaces/IKmsRegistry.sol";
import {App} from "../../contracts/registry/App.sol";
import {KmsRegistry} from "../../contracts/registry/KmsRegistry.sol";
import {KmsRegistryV2} from "../mocks/KmsRegistryV2.sol";
import {CovenantFixture} from "../utils/CovenantFixture.sol";
import {OwnableUpgradeable} from "@openzeppelin/contracts-upgradeable/access/OwnableUpgradeable.sol";
import {Initializable} from "@openzeppelin/contracts-upgradeable/proxy/utils/Initializable.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {IGovernor} from "@openzeppelin/contracts/governance/IGovernor.sol";
import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";
import {ERC1967Utils} from "@openzeppelin/contracts/proxy/ERC1967/ERC1967Utils.sol";

contract GovernanceRolesTest is CovenantFixture {
    function test_DeployerHoldsNoRole() public view {
        bytes32[4] memory roles = [
            timelock.DEFAULT_ADMIN_ROLE(),
            timelock.PROPOSER_ROLE(),
            timelock.CANCELLER_ROLE(),
            timelock.EXECUTOR_ROLE()
        ];
        for (uint256 i = 0; i < roles.length; ++i) {
            assertFalse(timelock.hasRole(roles[i], address(this)));
        }
        assertEq(registry.owner(), address(timelock));
        assertEq(domains.owner(), address(timelock));
    }

    function test_OnlyTheGovernorProposesAndTheGuardianOnlyCancels() public view {
        assertTrue(timelock.hasRole(timelock.PROPOSER_ROLE(), address(governor)));
        assertTrue(timelock.hasRole(timelock.CANCELLER_ROLE(), address(governor)));
        // The guardian acts only through its contract, which alone holds the role.
        assertTrue(timelock.hasRole(timelock.CANCELLER_ROLE(), address(guardianContract)));
        assertFalse(timelock.hasRole(timelock.CANCELLER_ROLE(), guardian));
        assertFalse(timelock.hasRole(timelock.PROPOSER_ROLE(), address(guardianContract)));
        assertFalse(timelock.hasRole(timelock.DEFAULT_ADMIN_ROLE(), address(guardianContract)));
        assertEq(guardianContract.guardian(), guardian);
        assertEq(address(guardianContract.TIMELOCK()), address(timelock));
        assertFalse(timelock.hasRole(timelock.DEFAULT_ADMIN_ROLE(), address(governor)));
        // The Timelock administers itself; anyone may execute a ready operation.
        assertTrue(timelock.hasRole(timelock.DEFAULT_ADMIN_ROLE(), address(timelock)));
        assertTrue(timelock.hasRole(timelock.EXECUTOR_ROLE(), address(0)));
        assertEq(timelock.getMinDelay(), TIMELOCK_DELAY);
        assertEq(address(governor.timelock()), address(timelock));
    }

    function test_RevertWhen_GuardianSchedulesDirectly() public {
        bytes32 proposerRole = timelock.PROPOSER_ROLE();
        vm.prank(guardian);
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, guardian, proposerRole
            )
        );
        timelock.schedule(address(registry), 0, "", bytes32(0), bytes32(0), TIMELOCK_DELAY);
    }

    function test_TokenUsesATimestampClockAndAFixedSupply() public {
        assertEq(token.CLOCK_MODE(), "mode=timestamp");
        assertEq(token.clock(), block.timestamp);
        assertEq(governor.CLOCK_MODE(), "mode=timestamp");
        assertEq(token.totalSupply(), SUPPLY);
        assertEq(governor.quorum(block.timestamp - 1), QUORUM);
        address[] memory holders = new address[](1);
        uint256[] memory amounts = new uint256[](2);
        vm.expectRevert(abi.encodeWithSelector(CovenantToken.CovenantTokenAllocationMismatch.selector, 1, 2));
        new CovenantToken("X", "X", holders, amounts);
    }
}

/// The path every change to an app's allowed code takes when the app is governed by the DAO.
contract GovernanceComposeHashTest is CovenantFixture {
    App internal app;
    bytes32 internal constant NEXT_HASH = keccak256("app-compose v2");
    string internal constant DESCRIPTION = "Allow app-compose v2 (commit v2)";
    bytes internal call;

    function setUp() public override {
        super.setUp();
        _allowOsImage();
        app = App(registry.createApp(address(timelock), _appInit()));
        call = abi.encodeCall(IApp.addComposeHash, (NEXT_HASH, _provenance("v2")));
    }

    function _nextBoot() internal view returns (BootInfo memory b) {
        b = _boot(address(app));
        b.composeHash = NEXT_HASH;
    }

    function test_ProposeVoteQueueWaitExecuteFlipsIsAppAllowed() public {
        _assertDenied(_nextBoot(), "compose hash not allowed");
        vm.prank(alice);
        uint256 id = governor.propose(_targets(), _values(), _calldatas(), DESCRIPTION);
        assertEq(uint8(governor.state(id)), uint8(IGovernor.ProposalState.Pending));

        vm.warp(block.timestamp + VOTING_DELAY + 1);
        assertEq(uint8(governor.state(id)), uint8(IGovernor.ProposalState.Active));
        vm.prank(alice);
        governor.castVote(id, 1);
        vm.prank(bob);
        governor.castVote(id, 0);
        _closeVoting(id);
        assertEq(uint8(governor.state(id)), uint8(IGovernor.ProposalState.Succeeded));

        governor.queue(_targets(), _values(), _calldatas(), keccak256(bytes(DESCRIPTION)));
        assertEq(uint8(governor.state(id)), uint8(IGovernor.ProposalState.Queued));
        _assertDenied(_nextBoot(), "compose hash not allowed");

        // Not before the Timelock delay has passed, for anyone.
        vm.warp(block.timestamp + TIMELOCK_DELAY - 1);
        bytes32 operation = timelock.hashOperationBatch(
            _targets(), _values(), _calldatas(), bytes32(0), _timelockSalt(keccak256(bytes(DESCRIPTION)))
        );
        vm.expectRevert(
            abi.encodeWithSelector(
                TimelockController.TimelockUnexpectedOperationState.selector, operation, _bit(TIMELOCK_READY)
            )
        );
        governor.execute(_targets(), _values(), _calldatas(), keccak256(bytes(DESCRIPTION)));
        _assertDenied(_nextBoot(), "compose hash not allowed");

        vm.warp(block.timestamp + 1);
        vm.expectEmit(address(app));
        emit IApp.ComposeHashAdded(
            NEXT_HASH,
            keccak256(abi.encode(_provenance("v2"))),
            _provenance("v2"),
            uint64(block.timestamp) + MIN_NOTICE
        );
        vm.prank(stranger);
        governor.execute(_targets(), _values(), _calldatas(), keccak256(bytes(DESCRIPTION)));
        assertEq(uint8(governor.state(id)), uint8(IGovernor.ProposalState.Executed));
        // Even a governed change waits out the app's notice period after the Timelock.
        _assertDenied(_nextBoot(), "compose hash not yet effective");
        vm.warp(block.timestamp + MIN_NOTICE);
        _assertAllowed(_nextBoot());
    }

    function test_ProposalCalldataDecodesToTheChange() public pure {
        // What a voter sees: the selector names the function and the arguments decode in full.
        bytes memory data = abi.encodeCall(IApp.addComposeHash, (NEXT_HASH, _provenance("v2")));
        assertEq(bytes4(data), IApp.addComposeHash.selector);
        bytes memory args = new bytes(data.length - 4);
        for (uint256 i = 0; i < args.length; ++i) {
            args[i] = data[i + 4];
        }
        (bytes32 hash, Provenance memory p) = abi.decode(args, (bytes32, Provenance));
        assertEq(hash, NEXT_HASH);
        assertEq(p.sourceCommit, "v2");
        assertEq(p.sourceUrl, "https://git.example/covenant/app");
    }

    function test_GuardianCancelsAQueuedProposal() public {
        uint256 id = _proposeAndOpen(address(app), call, DESCRIPTION);
        vm.prank(alice);
        governor.castVote(id, 1);
        _closeVoting(id);
        _queue(address(app), call, DESCRIPTION);
        bytes32 operation = timelock.hashOperationBatch(
            _targets(), _values(), _calldatas(), bytes32(0), _timelockSalt(keccak256(bytes(DESCRIPTION)))
        );
        assertTrue(timelock.isOperationPending(operation));

        vm.prank(guardian);
        guardianContract.cancel(
            _targets(), _values(), _calldatas(), bytes32(0), _timelockSalt(keccak256(bytes(DESCRIPTION)))
        );
        assertFalse(timelock.isOperation(operation));
        assertEq(uint8(governor.state(id)), uint8(IGovernor.ProposalState.Canceled));
        vm.warp(block.timestamp + TIMELOCK_DELAY);
        vm.expectRevert(
            abi.encodeWithSelector(
                IGovernor.GovernorUnexpectedProposalState.selector,
                id,
                IGovernor.ProposalState.Canceled,
                _bit(uint8(IGovernor.ProposalState.Queued))
            )
        );
        _execute(address(app), call, DESCRIPTION);
        _assertDenied(_nextBoot(), "compose hash not allowed");
    }

    function test_RevertWhen_StrangerCancels() public {
        uint256 id = _proposeAndOpen(address(app), call, DESCRIPTION);
        vm.prank(alice);
        governor.castVote(id, 1);
        _closeVoting(id);
        _queue(address(app), call, DESCRIPTION);
        bytes32 operation = timelock.hashOperationBatch(
            _targets(), _values(), _calldatas(), bytes32(0), _timelockSalt(keccak256(bytes(DESCRIPTION)))
        );
        bytes32 cancellerRole = timelock.CANCELLER_ROLE();
        vm.prank(stranger);
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, stranger, cancellerRole
            )
        );
        timelock.cancel(operation);
    }

    function test_ADefeatedProposalCannotBeQueued() public {
        uint256 id = _proposeAndOpen(address(app), call, DESCRIPTION);
        vm.prank(bob);
        governor.castVote(id, 1);
        vm.prank(alice);
        governor.castVote(id, 0);
        _closeVoting(id);
        assertEq(uint8(governor.state(id)), uint8(IGovernor.ProposalState.Defeated));
        vm.expectRevert(
            abi.encodeWithSelector(
                IGovernor.GovernorUnexpectedProposalState.selector,
                id,
                IGovernor.ProposalState.Defeated,
                _bit(uint8(IGovernor.ProposalState.Succeeded))
            )
        );
        _queue(address(app), call, DESCRIPTION);
        _assertDenied(_nextBoot(), "compose hash not allowed");
    }

    function test_QuorumReachedExactly() public {
        uint256 id = _proposeAndOpen(address(app), call, DESCRIPTION);
        vm.prank(dave); // holds exactly the quorum
        governor.castVote(id, 1);
        _closeVoting(id);
        assertTrue(governor.quorum(governor.proposalSnapshot(id)) == QUORUM);
        assertEq(uint8(governor.state(id)), uint8(IGovernor.ProposalState.Succeeded));
    }

    function test_QuorumMissedByOneWei() public {
        vm.prank(dave);
        token.transfer(erin, 1);
        vm.warp(block.timestamp + 1);
        uint256 id = _proposeAndOpen(address(app), call, DESCRIPTION);
        vm.prank(dave);
        governor.castVote(id, 1);
        _closeVoting(id);
        assertEq(uint8(governor.state(id)), uint8(IGovernor.ProposalState.Defeated));
    }

    function test_AbstentionsCountTowardsQuorum() public {
        uint256 id = _proposeAndOpen(address(app), call, DESCRIPTION);
        vm.prank(dave);
        governor.castVote(id, 2); // abstain: quorum reached, no votes for yet
        _closeVoting(id);
        assertEq(uint8(governor.state(id)), uint8(IGovernor.ProposalState.Defeated));

        uint256 id2 = _proposeAndOpen(address(app), call, string.concat(DESCRIPTION, " (again)"));
        vm.prank(dave);
        governor.castVote(id2, 2);
        vm.prank(erin);
        governor.castVote(id2, 1); // 0.1 % for, 4 % abstain: quorum and majority
        _closeVoting(id2);
        assertEq(uint8(governor.state(id2)), uint8(IGovernor.ProposalState.Succeeded));
    }

    function test_VotesCastAfterTheSnapshotDoNotCount() public {
        uint256 id = _proposeAndOpen(address(app), call, DESCRIPTION);
        // erin buys dave's votes after the snapshot: they stay dave's for this proposal.
        vm.prank(dave);
        token.transfer(erin, QUORUM);
        vm.prank(erin);
        governor.castVote(id, 1);
        _closeVoting(id);
        assertEq(uint8(governor.state(id)), uint8(IGovernor.ProposalState.Defeated));
    }

    function _targets() internal view returns (address[] memory t) {
        t = new address[](1);
        t[0] = address(app);
    }

    function _values() internal pure returns (uint256[] memory v) {
        v = new uint256[](1);
    }

    function _calldatas() internal view returns (bytes[] memory c) {
        c = new bytes[](1);
        c[0] = call;
    }

    /// TimelockController.OperationState.Ready
    uint8 internal constant TIMELOCK_READY = 2;

    /// The state bitmaps OpenZeppelin puts in its errors.
    function _bit(uint8 state) internal pure returns (bytes32) {
        return bytes32(uint256(1) << state);
    }

    /// GovernorTimelockControl's salt: the governor's address xor the description hash.
    function _timelockSalt(bytes32 descriptionHash) internal view returns (bytes32) {
        return bytes20(address(governor)) ^ descriptionHash;
    }
}

contract GovernanceOwnershipTest is CovenantFixture {
    /// Handing the registry to a new Timelock is itself a proposal, and takes two steps.
    function test_RegistryOwnershipMovesInTwoStepsThroughGovernance() public {
        address next = makeAddr("next-timelock");
        _govern(address(registry), abi.encodeWithSignature("transferOwnership(address)", next), "Hand over");
        assertEq(registry.owner(), address(timelock));
        assertEq(registry.pendingOwner(), next);
        vm.prank(stranger);
        vm.expectRevert(
            abi.encodeWithSelector(OwnableUpgradeable.OwnableUnauthorizedAccount.selector, stranger)
        );
        registry.acceptOwnership();
        vm.prank(next);
        registry.acceptOwnership();
        assertEq(registry.owner(), next);
    }
}

contract GovernanceUpgradeTest is CovenantFixture {
    function test_UpgradeThroughGovernancePreservesStorage() public {
        // State in every part of the registry.
        _allowOsImage();
        _allowKms();
        address node = makeAddr("kms-node");
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.onboardKmsNode, (node, KMS_MR, KMS_DEVICE)));
        vm.prank(node);
        registry.commitGrantLog(1, 7, keccak256("root"));
        bytes memory ca = abi.encodePacked(bytes1(0x04), keccak256("x"), keccak256("y"));
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.setKmsRootKeys, (node, ca)));
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.setAllowSimulatedTee, (true)));
        address gatewayApp = makeAddr("gateway");
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.setGatewayAppId, (gatewayApp)));
        App app = _createApp();

        KmsRegistryV2 next = new KmsRegistryV2();
        bytes memory upgrade = abi.encodeWithSignature(
            "upgradeToAndCall(address,bytes)", address(next), abi.encodeCall(KmsRegistryV2.initializeV3, (42))
        );
        _govern(address(registry), upgrade, "Upgrade the KMS registry to v2");

        KmsRegistryV2 upgraded = KmsRegistryV2(address(registry));
        assertEq(
            address(uint160(uint256(vm.load(address(registry), ERC1967Utils.IMPLEMENTATION_SLOT)))),
            address(next)
        );
        assertEq(upgraded.version(), 3);
        assertEq(upgraded.answer(), 42);
        // Everything from before is still there.
        assertEq(upgraded.owner(), address(timelock));
        assertTrue(upgraded.isOsImageAllowed(OS_IMAGE));
        assertEq(upgraded.osImageProvenance(OS_IMAGE), keccak256(abi.encode(_provenance("os-1.0"))));
        assertTrue(upgraded.isKmsMeasurementAllowed(KMS_MR));
        assertTrue(upgraded.isKmsDeviceAllowed(KMS_DEVICE));
        IKmsRegistry.KmsNode memory record = upgraded.kmsNode(node);
        assertTrue(record.active);
        assertEq(record.committedThrough, 7);
        (address signer, bytes memory gotCa, uint64 generation) = upgraded.kmsRootKeys();
        assertEq(signer, node);
        assertEq(gotCa, ca);
        assertEq(generation, 1);
        assertTrue(upgraded.allowSimulatedTee());
        assertEq(upgraded.gatewayAppId(), gatewayApp);
        assertEq(upgraded.appImplementation(), address(appImplementation));
        assertEq(uint8(upgraded.appKind(address(app))), uint8(IKmsRegistry.AppKind.Factory));
        _assertAllowed(_boot(address(app)));
        // The initializer of v2 cannot run again.
        vm.expectRevert(Initializable.InvalidInitialization.selector);
        upgraded.initializeV3(7);
    }

    function test_RevertWhen_UpgradeBypassesGovernance() public {
        KmsRegistryV2 next = new KmsRegistryV2();
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(OwnableUpgradeable.OwnableUnauthorizedAccount.selector, alice));
        registry.upgradeToAndCall(address(next), "");
        // Not even the Governor: only the Timelock, after the delay.
        vm.prank(address(governor));
        vm.expectRevert(
            abi.encodeWithSelector(OwnableUpgradeable.OwnableUnauthorizedAccount.selector, address(governor))
        );
        registry.upgradeToAndCall(address(next), "");
    }
}
