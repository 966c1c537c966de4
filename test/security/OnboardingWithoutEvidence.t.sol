// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IKmsRegistry} from "../../contracts/interfaces/IKmsRegistry.sol";
import {KmsRegistry} from "../../contracts/registry/KmsRegistry.sol";
import {CovenantFixture} from "../utils/CovenantFixture.sol";

/// Attack: a serving KMS node brings back a node that governance removed (say, one whose operator
/// leaked its key), by onboarding the same address again. Now only governance can reactivate it.
/// (That the onboarded address comes from the new node's verified evidence, never from a request
/// body, is enforced by the kms-oracle: see kms-oracle/tests/it/replicate.rs.)
contract OnboardingWithoutEvidenceTest is CovenantFixture {
    function test_ReactivatingARemovedNodeWithoutGovernanceFails() public {
        address serving = makeAddr("serving node");
        address removed = makeAddr("removed node");
        _allowOsImage();
        _allowKms();
        _asTimelock(
            address(registry), abi.encodeCall(KmsRegistry.onboardKmsNode, (serving, KMS_MR, KMS_DEVICE))
        );
        vm.prank(serving);
        registry.onboardKmsNode(removed, KMS_MR, KMS_DEVICE);
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.removeKmsNode, (removed)));

        vm.prank(serving);
        vm.expectRevert(
            abi.encodeWithSelector(IKmsRegistry.KmsRegistryNodeRemovedByGovernance.selector, removed)
        );
        registry.onboardKmsNode(removed, KMS_MR, KMS_DEVICE);
        assertFalse(registry.kmsNode(removed).active);

        // Governance itself may bring it back.
        _asTimelock(
            address(registry), abi.encodeCall(KmsRegistry.onboardKmsNode, (removed, KMS_MR, KMS_DEVICE))
        );
        assertTrue(registry.kmsNode(removed).active);
        assertFalse(registry.kmsNode(removed).removedByGovernance);
    }
}
