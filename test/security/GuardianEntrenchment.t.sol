// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {CovenantGuardian} from "../../contracts/governance/CovenantGuardian.sol";
import {KmsRegistry} from "../../contracts/registry/KmsRegistry.sol";
import {CovenantFixture} from "../utils/CovenantFixture.sol";

/// Attack: the cancel-only guardian cancels every proposal that would remove it — a permanent veto
/// no vote can overcome. Now it cannot cancel its own removal or replacement, its power expires, and
/// only governance can renew it.
contract GuardianEntrenchmentTest is CovenantFixture {
    function test_GuardianCannotCancelItsOwnRemoval() public {
        // Proposal 1: revoke the guardian contract's canceller role.
        address[] memory targets = new address[](1);
        bytes[] memory calldatas = new bytes[](1);
        targets[0] = address(timelock);
        calldatas[0] =
            abi.encodeCall(timelock.revokeRole, (timelock.CANCELLER_ROLE(), address(guardianContract)));
        (uint256[] memory values, bytes32 salt) = _queueBatch(targets, calldatas, "Remove the guardian");
        bytes32 id = timelock.hashOperationBatch(targets, values, calldatas, bytes32(0), salt);
        vm.prank(guardian);
        vm.expectRevert(
            abi.encodeWithSelector(CovenantGuardian.GuardianCannotCancelItsOwnRemoval.selector, id)
        );
        guardianContract.cancel(targets, values, calldatas, bytes32(0), salt);

        // Proposal 2: replace the account acting as guardian, and cut its term short.
        address[] memory targets2 = new address[](2);
        bytes[] memory calldatas2 = new bytes[](2);
        (targets2[0], targets2[1]) = (address(guardianContract), address(guardianContract));
        calldatas2[0] = abi.encodeCall(CovenantGuardian.setGuardian, (makeAddr("new guardian")));
        calldatas2[1] = abi.encodeCall(CovenantGuardian.setTerm, (uint64(block.timestamp + 30 days)));
        (uint256[] memory values2, bytes32 salt2) = _queueBatch(targets2, calldatas2, "Replace the guardian");
        bytes32 id2 = timelock.hashOperationBatch(targets2, values2, calldatas2, bytes32(0), salt2);
        vm.prank(guardian);
        vm.expectRevert(
            abi.encodeWithSelector(CovenantGuardian.GuardianCannotCancelItsOwnRemoval.selector, id2)
        );
        guardianContract.cancel(targets2, values2, calldatas2, bytes32(0), salt2);

        // Both go through.
        vm.warp(block.timestamp + TIMELOCK_DELAY);
        timelock.executeBatch(targets, values, calldatas, bytes32(0), salt);
        timelock.executeBatch(targets2, values2, calldatas2, bytes32(0), salt2);
        assertFalse(timelock.hasRole(timelock.CANCELLER_ROLE(), address(guardianContract)));
        assertEq(guardianContract.guardian(), makeAddr("new guardian"));
    }

    function test_GuardianCannotShieldItsRemovalFromGovernanceAndGovernanceCannotShieldOtherCalls() public {
        // A batch that bundles a real change with the guardian's removal stays cancellable: governance
        // cannot hide a change behind the guardian's own removal.
        address[] memory targets = new address[](2);
        bytes[] memory calldatas = new bytes[](2);
        targets[0] = address(timelock);
        calldatas[0] =
            abi.encodeCall(timelock.revokeRole, (timelock.CANCELLER_ROLE(), address(guardianContract)));
        targets[1] = address(registry);
        calldatas[1] = abi.encodeCall(KmsRegistry.setAllowSimulatedTee, (true));
        (uint256[] memory values, bytes32 salt) = _queueBatch(targets, calldatas, "Bundle");
        bytes32 id = timelock.hashOperationBatch(targets, values, calldatas, bytes32(0), salt);
        vm.prank(guardian);
        guardianContract.cancel(targets, values, calldatas, bytes32(0), salt);
        assertFalse(timelock.isOperation(id));
    }

    function test_GuardianPowerExpiresAndOnlyGovernanceRenewsIt() public {
        address[] memory targets = new address[](1);
        bytes[] memory calldatas = new bytes[](1);
        targets[0] = address(registry);
        calldatas[0] = abi.encodeCall(KmsRegistry.setAllowSimulatedTee, (true));
        vm.warp(guardianContract.expiresAt());
        (uint256[] memory values, bytes32 salt) = _queueBatch(targets, calldatas, "After the term");
        uint64 expiresAt = guardianContract.expiresAt();
        vm.prank(guardian);
        vm.expectRevert(abi.encodeWithSelector(CovenantGuardian.GuardianExpired.selector, expiresAt));
        guardianContract.cancel(targets, values, calldatas, bytes32(0), salt);

        // The guardian cannot renew itself.
        vm.prank(guardian);
        vm.expectRevert(abi.encodeWithSelector(CovenantGuardian.GuardianOnlyGovernance.selector, guardian));
        guardianContract.setTerm(uint64(block.timestamp + 30 days));

        // Governance can, within the maximum term.
        uint64 tooLong = uint64(block.timestamp) + guardianContract.MAX_TERM() + 1;
        vm.prank(address(timelock));
        vm.expectRevert(abi.encodeWithSelector(CovenantGuardian.GuardianInvalidTerm.selector, tooLong));
        guardianContract.setTerm(tooLong);
        _govern(
            address(guardianContract),
            abi.encodeCall(CovenantGuardian.setTerm, (uint64(block.timestamp + 200 days))),
            "Renew the guardian"
        );
        (values, salt) = _queueBatch(targets, calldatas, "After the renewal");
        vm.prank(guardian);
        guardianContract.cancel(targets, values, calldatas, bytes32(0), salt);
    }

    function test_RevertWhen_AStrangerCancelsThroughTheGuardian() public {
        address[] memory targets = new address[](1);
        bytes[] memory calldatas = new bytes[](1);
        targets[0] = address(registry);
        calldatas[0] = abi.encodeCall(KmsRegistry.setAllowSimulatedTee, (true));
        (uint256[] memory values, bytes32 salt) = _queueBatch(targets, calldatas, "Stranger");
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(CovenantGuardian.GuardianUnauthorized.selector, stranger));
        guardianContract.cancel(targets, values, calldatas, bytes32(0), salt);
    }

    /// Attack: the guardian (or anyone) names a new guardian — itself forever, or an accomplice —
    /// without a vote. Only governance replaces it.
    function test_RevertWhen_AnyoneButGovernanceReplacesTheGuardian() public {
        address[2] memory callers = [guardian, stranger];
        for (uint256 i = 0; i < callers.length; ++i) {
            vm.prank(callers[i]);
            vm.expectRevert(
                abi.encodeWithSelector(CovenantGuardian.GuardianOnlyGovernance.selector, callers[i])
            );
            guardianContract.setGuardian(stranger);
        }
        assertEq(guardianContract.guardian(), guardian);
        _govern(
            address(guardianContract),
            abi.encodeCall(CovenantGuardian.setGuardian, (stranger)),
            "Replace the guardian"
        );
        assertEq(guardianContract.guardian(), stranger);
    }

    /// A batch the Timelock could never have scheduled (empty, or arrays of different lengths) is
    /// refused as malformed before anything is hashed or looked up.
    function test_RevertWhen_TheGuardianCancelsAMalformedBatch() public {
        address[] memory targets = new address[](1);
        bytes[] memory calldatas = new bytes[](1);
        targets[0] = address(registry);
        calldatas[0] = abi.encodeCall(KmsRegistry.setAllowSimulatedTee, (true));
        (uint256[] memory values, bytes32 salt) = _queueBatch(targets, calldatas, "Malformed");
        address[] memory noTargets = new address[](0);
        uint256[] memory twoValues = new uint256[](2);
        bytes[] memory twoCalldatas = new bytes[](2);
        vm.startPrank(guardian);
        vm.expectRevert(CovenantGuardian.GuardianMalformedOperation.selector);
        guardianContract.cancel(noTargets, new uint256[](0), new bytes[](0), bytes32(0), salt);
        vm.expectRevert(CovenantGuardian.GuardianMalformedOperation.selector);
        guardianContract.cancel(targets, twoValues, calldatas, bytes32(0), salt);
        vm.expectRevert(CovenantGuardian.GuardianMalformedOperation.selector);
        guardianContract.cancel(targets, values, twoCalldatas, bytes32(0), salt);
        vm.stopPrank();
    }
}
