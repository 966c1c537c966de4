// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IKmsRegistry} from "../../contracts/interfaces/IKmsRegistry.sol";
import {KmsRegistry} from "../../contracts/registry/KmsRegistry.sol";
import {CovenantFixture} from "../utils/CovenantFixture.sol";

/// Attack: a node commits a grant-log range it never wrote (up to 2^64 - 1) or skips ahead, so the
/// on-chain record covers entries no one can audit. Now commits are contiguous and bounded.
contract UnboundedGrantLogCommitTest is CovenantFixture {
    function test_UnboundedGrantLogCommitFails() public {
        address node = makeAddr("node");
        _allowOsImage();
        _allowKms();
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.onboardKmsNode, (node, KMS_MR, KMS_DEVICE)));
        uint64 max = registry.MAX_GRANT_LOG_COMMIT();

        vm.startPrank(node);
        vm.expectRevert(
            abi.encodeWithSelector(IKmsRegistry.KmsRegistryGrantLogRange.selector, 1, type(uint64).max)
        );
        registry.commitGrantLog(1, type(uint64).max, keccak256("root"));
        vm.expectRevert(abi.encodeWithSelector(IKmsRegistry.KmsRegistryGrantLogRange.selector, 1, max + 1));
        registry.commitGrantLog(1, max + 1, keccak256("root"));
        // Skipping ahead is refused too.
        vm.expectRevert(abi.encodeWithSelector(IKmsRegistry.KmsRegistryGrantLogGap.selector, 1, 1000));
        registry.commitGrantLog(1000, 1001, keccak256("root"));
        // A full batch is fine, and the next one starts right after it.
        registry.commitGrantLog(1, max, keccak256("root"));
        vm.expectRevert(
            abi.encodeWithSelector(IKmsRegistry.KmsRegistryGrantLogGap.selector, max + 1, max + 2)
        );
        registry.commitGrantLog(max + 2, max + 2, keccak256("root 2"));
        vm.stopPrank();
        assertEq(registry.kmsNode(node).committedThrough, max);
    }
}
