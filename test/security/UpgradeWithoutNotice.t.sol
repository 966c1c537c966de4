// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {BootInfo} from "../../contracts/interfaces/BootPolicy.sol";
import {App} from "../../contracts/registry/App.sol";
import {CovenantFixture} from "../utils/CovenantFixture.sol";

/// Attack: an app owned by a plain account ships new code and gets keys for it in the same block,
/// so users never see the upgrade coming. Now every loosening waits out the notice period.
contract UpgradeWithoutNoticeTest is CovenantFixture {
    bytes32 internal constant EVIL_COMPOSE = keccak256("app-compose exfiltrate");
    bytes32 internal constant EVIL_DEVICE = keccak256("operator's own device");

    function test_UpgradeWithoutNoticeFails() public {
        _allowOsImage();
        App app = _createApp();
        uint256 addedAt = block.timestamp;

        // New code, a new device, and every requirement dropped, all at once by the EOA owner.
        vm.startPrank(appOwner);
        app.addComposeHash(EVIL_COMPOSE, _provenance("evil"));
        app.addDevice(EVIL_DEVICE);
        app.setAnyDevice(true);
        vm.stopPrank();

        BootInfo memory evil = _boot(address(app));
        evil.composeHash = EVIL_COMPOSE;
        _assertDenied(evil, "compose hash not yet effective");
        BootInfo memory evilDevice = _boot(address(app));
        evilDevice.deviceId = EVIL_DEVICE;
        _assertDenied(evilDevice, "device not yet effective");
        assertFalse(app.anyDevice(), "any-device took effect at once");

        // One second before the notice ends: still denied.
        vm.warp(addedAt + MIN_NOTICE - 1);
        _assertDenied(evil, "compose hash not yet effective");

        // Users had the whole notice period to see it on chain (and leave); then it applies.
        vm.warp(addedAt + MIN_NOTICE);
        _assertAllowed(evil);
        _assertAllowed(evilDevice);
    }
}
