// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {BootInfo, TeeKind} from "../../contracts/interfaces/BootPolicy.sol";
import {App} from "../../contracts/registry/App.sol";
import {CovenantFixture} from "../utils/CovenantFixture.sol";

/// Attack: whoever writes the kms-oracle's local measurement manifest decides which measured OS
/// "is" an allowed image: boot a modified OS, claim an allowed image's hash in the event log, and
/// map that hash to the modified OS's registers in the manifest. Now the expected registers are
/// registered on chain with the image, and the chain refuses any other measurement.
contract OffChainOsMeasurementTest is CovenantFixture {
    function test_BootingAnUnregisteredOsMeasurementUnderAnAllowedImageFails() public {
        _allowOsImage();
        App app = _createApp();
        BootInfo memory honest = _boot(address(app));
        _assertAllowed(honest);

        // A modified OS claims the allowed image hash; its registers differ.
        BootInfo memory modified = _boot(address(app));
        modified.osMeasurement = sha256(abi.encodePacked(OS_TD_REGISTERS, "backdoor"));
        _assertDenied(modified, "os measurement not allowed");

        // The SEV-SNP measurement of the image does not pass for TDX, nor the TDX one for SNP.
        BootInfo memory crossPlatform = _boot(address(app));
        crossPlatform.osMeasurement = sha256(OS_SNP_REGISTERS);
        _assertDenied(crossPlatform, "os measurement not allowed");
        crossPlatform.osMeasurement = _tdMeasurement();
        crossPlatform.teeKind = TeeKind.SevSnp;
        _assertDenied(crossPlatform, "os measurement not allowed");

        // KMS nodes are held to the same registered measurements.
        _allowKms();
        BootInfo memory kms = _kmsBoot();
        kms.osMeasurement = modified.osMeasurement;
        (bool allowed, string memory reason) = registry.isKmsAllowed(kms);
        assertFalse(allowed);
        assertEq(reason, "os measurement not allowed");
    }
}
