// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {GovernanceHandler} from "../handlers/GovernanceHandler.sol";
import {CovenantFixture} from "../utils/CovenantFixture.sol";
import {IGovernor} from "@openzeppelin/contracts/governance/IGovernor.sol";

/// Invariants of the Governor + Timelock path under random proposals, votes, time warps, queues,
/// executions, cancellations and attempts to go around governance.
contract GovernanceInvariantTest is CovenantFixture {
    GovernanceHandler internal handler;

    function setUp() public override {
        super.setUp();
        address[] memory holders = new address[](5);
        (holders[0], holders[1], holders[2], holders[3], holders[4]) = (alice, bob, carol, dave, erin);
        handler = new GovernanceHandler(
            GovernanceHandler.System({
                governor: governor,
                timelock: timelock,
                token: token,
                registry: registry,
                guardian: guardian,
                guardianContract: guardianContract,
                deployer: address(this),
                stranger: stranger,
                holders: holders
            })
        );

        bytes4[] memory selectors = new bytes4[](11);
        selectors[0] = GovernanceHandler.propose.selector;
        selectors[1] = GovernanceHandler.castVote.selector;
        selectors[2] = GovernanceHandler.warp.selector;
        selectors[3] = GovernanceHandler.queue.selector;
        selectors[4] = GovernanceHandler.execute.selector;
        selectors[5] = GovernanceHandler.executeThroughTimelock.selector;
        selectors[6] = GovernanceHandler.guardianCancel.selector;
        selectors[7] = GovernanceHandler.proposerCancel.selector;
        selectors[8] = GovernanceHandler.transferTokens.selector;
        selectors[9] = GovernanceHandler.bypassGovernance.selector;
        selectors[10] = GovernanceHandler.advance.selector;
        targetContract(address(handler));
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
    }

    /// Every executed proposal was queued after its vote closed, passed the vote with quorum, and
    /// ran no earlier than the Timelock delay after it was queued. The deployer holds no Timelock
    /// role, the Governor is the only proposer, and only the Governor and the guardian contract
    /// (through which the guardian acts) may cancel.
    /// Everything checked here is fixed once written (an executed proposal's timestamps, votes and
    /// state; roles, which only a proposal could change), so a violation persists until the next
    /// check: checking every eighth call (and at the end of each run) loses nothing and keeps the
    /// ci profile fast.
    /// forge-config: default.invariant.check-interval = 8
    /// forge-config: ci.invariant.check-interval = 8
    function invariant_ExecutedProposalsWaitedTheTimelockDelay() public view {
        uint256 minDelay = timelock.getMinDelay();
        assertEq(minDelay, TIMELOCK_DELAY, "timelock delay changed");
        uint256[] memory executed = handler.executedProposals();
        for (uint256 i = 0; i < executed.length; ++i) {
            uint256 id = executed[i];
            uint256 queuedAt = handler.ghost_queuedAt(id);
            uint256 executedAt = handler.ghost_executedAt(id);
            assertGt(queuedAt, 0, "executed without being queued");
            assertGe(executedAt, queuedAt + minDelay, "executed before the timelock delay passed");
            assertEq(handler.ghost_eta(id), queuedAt + minDelay, "ready time is not queue time plus delay");
            assertEq(uint8(governor.state(id)), uint8(IGovernor.ProposalState.Executed), "state not Executed");
            assertGt(queuedAt, governor.proposalDeadline(id), "queued before voting closed");
            (uint256 against, uint256 forVotes, uint256 abstain) = governor.proposalVotes(id);
            assertGt(forVotes, against, "executed without a majority");
            assertGe(
                forVotes + abstain, governor.quorum(governor.proposalSnapshot(id)), "executed without quorum"
            );
        }

        bytes32 proposer = timelock.PROPOSER_ROLE();
        bytes32 canceller = timelock.CANCELLER_ROLE();
        bytes32 executor = timelock.EXECUTOR_ROLE();
        bytes32 admin = timelock.DEFAULT_ADMIN_ROLE();
        address[] memory others = _actorsOtherThanGovernance();
        for (uint256 i = 0; i < others.length; ++i) {
            address a = others[i];
            assertFalse(timelock.hasRole(proposer, a), "an actor other than the Governor can propose");
            assertFalse(timelock.hasRole(admin, a), "an actor other than the Timelock administers it");
            assertFalse(timelock.hasRole(executor, a), "an actor holds the executor role by name");
            assertFalse(
                timelock.hasRole(canceller, a), "an actor other than the guardian contract can cancel"
            );
        }
        assertTrue(timelock.hasRole(proposer, address(governor)), "the Governor cannot propose");
        assertTrue(timelock.hasRole(canceller, address(governor)), "the Governor cannot cancel");
        assertTrue(
            timelock.hasRole(canceller, address(guardianContract)), "the guardian contract cannot cancel"
        );
        assertEq(guardianContract.guardian(), guardian, "the guardian contract acts for someone else");
        assertFalse(timelock.hasRole(admin, address(governor)), "the Governor administers the Timelock");
        assertTrue(timelock.hasRole(admin, address(timelock)), "the Timelock does not administer itself");
        assertTrue(timelock.hasRole(executor, address(0)), "execution is not open");
        // The deployer, explicitly: no role at all.
        assertFalse(
            timelock.hasRole(proposer, address(this)) || timelock.hasRole(canceller, address(this))
                || timelock.hasRole(executor, address(this)) || timelock.hasRole(admin, address(this)),
            "the deployer holds a Timelock role"
        );
    }

    /// The registry settings proposals touch change only through executed proposals (the model the
    /// handler updates on each execution equals the views), nobody got around governance, and every
    /// call's outcome matched the handler's prediction.
    function invariant_RegistryChangesOnlyThroughExecutedProposals() public view {
        assertEq(handler.ghost_unauthorizedSuccesses(), 0, "a call around governance succeeded");
        if (handler.ghost_outcomeMismatches() != 0) {
            assertEq(
                handler.ghost_outcomeMismatches(),
                0,
                string.concat(
                    "call outcome differs from the prediction; last selector ",
                    vm.toString(abi.encodePacked(handler.ghost_lastMismatchSelector()))
                )
            );
        }
        assertEq(registry.owner(), address(timelock), "registry owner");
        assertEq(registry.allowSimulatedTee(), handler.ghost_allowSimulatedTee(), "allowSimulatedTee");
        bytes32[] memory images = handler.osImagePool();
        for (uint256 i = 0; i < images.length; ++i) {
            assertEq(
                registry.isOsImageAllowed(images[i]),
                handler.ghost_osImageAllowed(images[i]),
                "isOsImageAllowed"
            );
        }
    }

    /// Liveness and progress: every proposal that all holders voted for and whose call could run
    /// (those the handler created and drove in one go) was executed after the delay, and a run that
    /// drove one executed at least one.
    function afterInvariant() public view {
        assertEq(
            handler.ghost_freshDrivesExecuted(),
            handler.ghost_freshDrives(),
            "a unanimously passed, runnable proposal was not executed"
        );
        if (handler.ghost_freshDrives() == 0) return;
        assertGt(handler.executedProposals().length, 0, "no proposal was executed");
        assertGt(handler.ghost_votes(), 0, "no vote");
        assertGt(handler.ghost_queued(), 0, "no queue");
    }

    function _actorsOtherThanGovernance() internal view returns (address[] memory a) {
        a = new address[](13);
        (a[0], a[1], a[2], a[3], a[4]) = (address(this), alice, bob, carol, dave);
        (a[5], a[6], a[7], a[8]) = (erin, guardian, appOwner, stranger);
        (a[9], a[10], a[11], a[12]) = (address(handler), address(registry), address(domains), address(token));
    }
}
