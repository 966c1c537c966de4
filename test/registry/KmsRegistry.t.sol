// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {
    BootInfo,
    OsMeasurement,
    Provenance,
    TcbStatus,
    TeeKind
} from "../../contracts/interfaces/BootPolicy.sol";
import {IApp} from "../../contracts/interfaces/IApp.sol";
import {IKmsRegistry} from "../../contracts/interfaces/IKmsRegistry.sol";
import {ProvenanceLib} from "../../contracts/libraries/ProvenanceLib.sol";
import {App} from "../../contracts/registry/App.sol";
import {KmsRegistry} from "../../contracts/registry/KmsRegistry.sol";
import {FixedPolicy, RevertingPolicy} from "../mocks/PolicyMocks.sol";
import {CovenantFixture} from "../utils/CovenantFixture.sol";
import {OwnableUpgradeable} from "@openzeppelin/contracts-upgradeable/access/OwnableUpgradeable.sol";
import {Initializable} from "@openzeppelin/contracts-upgradeable/proxy/utils/Initializable.sol";
import {ERC1967Utils} from "@openzeppelin/contracts/proxy/ERC1967/ERC1967Utils.sol";
import {Vm} from "forge-std/Vm.sol";

contract KmsRegistryDeploymentTest is CovenantFixture {
    function test_InitialStateIsOwnedByTheTimelock() public view {
        assertEq(registry.owner(), address(timelock));
        assertEq(registry.appImplementation(), address(appImplementation));
        assertEq(appImplementation.registry(), address(registry));
        assertFalse(registry.allowSimulatedTee());
        assertEq(registry.gatewayAppId(), address(0));
        (address signer, bytes memory ca, uint64 generation) = registry.kmsRootKeys();
        assertEq(signer, address(0));
        assertEq(ca.length, 0);
        assertEq(generation, 0);
        assertEq(registry.minNoticePeriod(), MIN_NOTICE);
        assertEq(registry.MAX_NOTICE_PERIOD(), 365 days);
        assertEq(registry.MAX_GRANT_LOG_COMMIT(), 65_536);
        assertEq(registry.MAX_OS_MEASUREMENTS(), 16);
        assertEq(registry.TD_REGISTERS_LENGTH(), 192);
        assertEq(registry.SNP_REGISTERS_LENGTH(), 48);
    }

    function test_StorageSlotMatchesErc7201Formula() public view {
        bytes32 expected = keccak256(abi.encode(uint256(keccak256("covenant.storage.KmsRegistry")) - 1))
            & ~bytes32(uint256(0xff));
        // The first field (osImages mapping) lives at the namespace root: check through a value.
        assertEq(vm.load(address(registry), expected), bytes32(0));
        bytes32 implSlot = vm.load(address(registry), ERC1967Utils.IMPLEMENTATION_SLOT);
        assertEq(address(uint160(uint256(implSlot))), address(deployed.kmsRegistryImplementation));
    }

    function test_OsImageStoredUnderTheErc7201Namespace() public {
        _allowOsImage();
        bytes32 root = keccak256(abi.encode(uint256(keccak256("covenant.storage.KmsRegistry")) - 1))
            & ~bytes32(uint256(0xff));
        bytes32 slot = keccak256(abi.encode(OS_IMAGE, root));
        assertEq(vm.load(address(registry), slot), keccak256(abi.encode(_provenance("os-1.0"))));
    }

    function test_RevertWhen_InitializingTwice() public {
        vm.expectRevert(Initializable.InvalidInitialization.selector);
        registry.initialize(stranger, address(appImplementation), true, 0);
    }

    function test_RevertWhen_InitializingTheImplementation() public {
        KmsRegistry implementation = deployed.kmsRegistryImplementation;
        vm.expectRevert(Initializable.InvalidInitialization.selector);
        implementation.initialize(stranger, address(appImplementation), true, 0);
    }

    /// A fresh deployment is initialised at version 2 already: initializeV2 is for upgraded wave-1
    /// registries only, and refused here even to the owner.
    function test_RevertWhen_InitializeV2OnAFreshDeployment() public {
        vm.prank(address(timelock));
        vm.expectRevert(Initializable.InvalidInitialization.selector);
        registry.initializeV2(3 days);
        assertEq(registry.minNoticePeriod(), MIN_NOTICE);
    }

    /// On a registry still at initializer version 1 (as a wave-1 registry is before its upgrade),
    /// initializeV2 sets the minimum notice period once, for the owner only.
    function test_InitializeV2CompletesAWave1Upgrade() public {
        _rewindToVersion1();
        vm.prank(stranger);
        vm.expectRevert(
            abi.encodeWithSelector(OwnableUpgradeable.OwnableUnauthorizedAccount.selector, stranger)
        );
        registry.initializeV2(3 days);

        vm.prank(address(timelock));
        vm.expectRevert(
            abi.encodeWithSelector(IKmsRegistry.KmsRegistryNoticePeriodTooLong.selector, uint64(365 days + 1))
        );
        registry.initializeV2(365 days + 1);

        vm.expectEmit(address(registry));
        emit IKmsRegistry.MinNoticePeriodSet(3 days);
        vm.expectEmit(address(registry));
        emit Initializable.Initialized(2);
        vm.prank(address(timelock));
        registry.initializeV2(3 days);
        assertEq(registry.minNoticePeriod(), 3 days);

        vm.prank(address(timelock));
        vm.expectRevert(Initializable.InvalidInitialization.selector);
        registry.initializeV2(4 days);
    }

    /// Sets the proxy's initializer version back to 1 (OpenZeppelin's ERC-7201 Initializable slot).
    function _rewindToVersion1() internal {
        bytes32 slot = 0xf0c57e16840df040f15088dc2f81fe391c3923bec73e23a9662efc9c229c6a00;
        assertEq(uint256(vm.load(address(registry), slot)), 2);
        vm.store(address(registry), slot, bytes32(uint256(1)));
    }

    function test_RevertWhen_UpgradeNotByOwner() public {
        KmsRegistry next = new KmsRegistry();
        vm.prank(stranger);
        vm.expectRevert(
            abi.encodeWithSelector(OwnableUpgradeable.OwnableUnauthorizedAccount.selector, stranger)
        );
        registry.upgradeToAndCall(address(next), "");
    }
}

contract KmsRegistryOwnerOnlyTest is CovenantFixture {
    /// Every owner-only function refuses a stranger with OwnableUnauthorizedAccount.
    function test_RevertWhen_StrangerCallsAnyOwnerOnlyFunction() public {
        bytes[] memory calls = new bytes[](15);
        calls[0] = abi.encodeCall(KmsRegistry.addOsImage, (OS_IMAGE, _provenance("x"), _osMeasurements()));
        calls[1] = abi.encodeCall(KmsRegistry.removeOsImage, (OS_IMAGE));
        calls[2] = abi.encodeCall(KmsRegistry.addKmsMeasurement, (KMS_MR));
        calls[3] = abi.encodeCall(KmsRegistry.removeKmsMeasurement, (KMS_MR));
        calls[4] = abi.encodeCall(KmsRegistry.addKmsDevice, (KMS_DEVICE));
        calls[5] = abi.encodeCall(KmsRegistry.removeKmsDevice, (KMS_DEVICE));
        calls[6] = abi.encodeCall(KmsRegistry.removeKmsNode, (stranger));
        calls[7] = abi.encodeCall(KmsRegistry.setKmsRootKeys, (stranger, _caKey()));
        calls[8] = abi.encodeCall(KmsRegistry.setGatewayAppId, (stranger));
        calls[9] = abi.encodeCall(KmsRegistry.setAllowSimulatedTee, (true));
        calls[10] = abi.encodeCall(KmsRegistry.setAppImplementation, (address(this)));
        calls[11] = abi.encodeCall(KmsRegistry.registerCustomApp, (address(this)));
        calls[12] = abi.encodeCall(KmsRegistry.deregisterApp, (address(this)));
        calls[13] = abi.encodeWithSignature("transferOwnership(address)", stranger);
        calls[14] = abi.encodeCall(KmsRegistry.setMinNoticePeriod, (2 days));
        for (uint256 i = 0; i < calls.length; ++i) {
            vm.prank(stranger);
            (bool ok, bytes memory ret) = address(registry).call(calls[i]);
            assertFalse(ok);
            assertEq(
                ret, abi.encodeWithSelector(OwnableUpgradeable.OwnableUnauthorizedAccount.selector, stranger)
            );
        }
    }

    function _caKey() internal pure returns (bytes memory key) {
        key = new bytes(65);
        key[0] = 0x04;
    }
}

contract KmsRegistryOsImageTest is CovenantFixture {
    bytes32 internal osSnpMeasurement;

    function setUp() public override {
        super.setUp();
        osSnpMeasurement = sha256(OS_SNP_REGISTERS);
    }

    function _addOsImage(bytes32 image, Provenance memory p, OsMeasurement[] memory m) internal {
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.addOsImage, (image, p, m)));
    }

    /// One measurement of `kind` with `length` bytes of registers.
    function _one(TeeKind kind, uint256 length) internal pure returns (OsMeasurement[] memory m) {
        m = new OsMeasurement[](1);
        m[0] = OsMeasurement({teeKind: kind, registers: new bytes(length)});
    }

    /// `count` distinct TDX measurements.
    function _tdxMeasurements(uint256 count) internal pure returns (OsMeasurement[] memory m) {
        m = new OsMeasurement[](count);
        for (uint256 i = 0; i < count; ++i) {
            bytes memory registers = new bytes(192);
            registers[0] = bytes1(uint8(i + 1));
            m[i] = OsMeasurement({teeKind: TeeKind.Tdx, registers: registers});
        }
    }

    function test_AddOsImage() public {
        Provenance memory p = _provenance("os-1.0");
        OsMeasurement[] memory m = _osMeasurements();
        uint64 effectiveAt = uint64(block.timestamp) + MIN_NOTICE;
        vm.expectEmit(address(registry));
        emit IKmsRegistry.OsImageAdded(OS_IMAGE, keccak256(abi.encode(p)), p, m, effectiveAt);
        _addOsImage(OS_IMAGE, p, m);
        assertTrue(registry.isOsImageAllowed(OS_IMAGE));
        assertEq(registry.osImageProvenance(OS_IMAGE), keccak256(abi.encode(p)));
        assertEq(registry.osImageEffectiveAt(OS_IMAGE), effectiveAt);
        assertTrue(registry.isOsMeasurementRegistered(OS_IMAGE, TeeKind.Tdx, osTdMeasurement));
        assertTrue(registry.isOsMeasurementRegistered(OS_IMAGE, TeeKind.SevSnp, osSnpMeasurement));
        assertTrue(registry.isOsMeasurementRegistered(OS_IMAGE, TeeKind.Simulated, osTdMeasurement));
        // Each measurement is registered for its own platform only, and for this image only.
        assertFalse(registry.isOsMeasurementRegistered(OS_IMAGE, TeeKind.SevSnp, osTdMeasurement));
        assertFalse(registry.isOsMeasurementRegistered(OS_IMAGE, TeeKind.Tdx, osSnpMeasurement));
        assertFalse(registry.isOsMeasurementRegistered(OS_IMAGE, TeeKind.Unknown, osTdMeasurement));
        assertFalse(registry.isOsMeasurementRegistered(keccak256("other os"), TeeKind.Tdx, osTdMeasurement));
    }

    function test_RemoveOsImage() public {
        _allowOsImage();
        vm.expectEmit(address(registry));
        emit IKmsRegistry.OsImageRemoved(OS_IMAGE);
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.removeOsImage, (OS_IMAGE)));
        assertFalse(registry.isOsImageAllowed(OS_IMAGE));
        assertEq(registry.osImageProvenance(OS_IMAGE), bytes32(0));
        assertEq(registry.osImageEffectiveAt(OS_IMAGE), 0);
        assertFalse(registry.isOsMeasurementRegistered(OS_IMAGE, TeeKind.Tdx, osTdMeasurement));
    }

    function test_RevertWhen_AddingZeroOsImage() public {
        vm.expectRevert(IKmsRegistry.KmsRegistryZeroValue.selector);
        _addOsImage(bytes32(0), _provenance("x"), _osMeasurements());
    }

    function test_RevertWhen_AddingAnAllowedOsImage() public {
        _allowOsImage();
        vm.expectRevert(
            abi.encodeWithSelector(IKmsRegistry.KmsRegistryOsImageAlreadyAllowed.selector, OS_IMAGE)
        );
        _addOsImage(OS_IMAGE, _provenance("x"), _osMeasurements());
    }

    /// An image still waiting out its notice is allowed already: it cannot be added twice either.
    function test_RevertWhen_AddingAnOsImageNotYetEffective() public {
        _addOsImage(OS_IMAGE, _provenance("os-1.0"), _osMeasurements());
        vm.expectRevert(
            abi.encodeWithSelector(IKmsRegistry.KmsRegistryOsImageAlreadyAllowed.selector, OS_IMAGE)
        );
        _addOsImage(OS_IMAGE, _provenance("x"), _osMeasurements());
    }

    function test_RevertWhen_OsImageProvenanceIsOutOfBounds() public {
        Provenance memory p = _provenance("os");
        p.sourceUrl = "";
        vm.expectRevert(abi.encodeWithSelector(ProvenanceLib.ProvenanceSourceUrlLength.selector, 0));
        _addOsImage(OS_IMAGE, p, _osMeasurements());
    }

    function test_RevertWhen_RemovingAnOsImageNotAllowed() public {
        vm.expectRevert(abi.encodeWithSelector(IKmsRegistry.KmsRegistryOsImageNotAllowed.selector, OS_IMAGE));
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.removeOsImage, (OS_IMAGE)));
    }

    function testFuzz_OsImageAddRemoveRoundTrip(bytes32 image) public {
        image = image == bytes32(0) ? bytes32(uint256(1)) : image;
        _addOsImage(image, _provenance("f"), _osMeasurements());
        assertTrue(registry.isOsImageAllowed(image));
        assertEq(registry.osImageEffectiveAt(image), block.timestamp + MIN_NOTICE);
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.removeOsImage, (image)));
        assertFalse(registry.isOsImageAllowed(image));
        assertEq(registry.osImageEffectiveAt(image), 0);
    }

    // ---------------------------------------------------------------------------------------------
    // Measurement validation

    function test_RevertWhen_NoOsMeasurements() public {
        vm.expectRevert(abi.encodeWithSelector(IKmsRegistry.KmsRegistryOsMeasurementCount.selector, 0));
        _addOsImage(OS_IMAGE, _provenance("os"), new OsMeasurement[](0));
    }

    function test_SixteenOsMeasurements() public {
        _addOsImage(OS_IMAGE, _provenance("os"), _tdxMeasurements(16));
        assertTrue(registry.isOsImageAllowed(OS_IMAGE));
    }

    function test_RevertWhen_SeventeenOsMeasurements() public {
        vm.expectRevert(abi.encodeWithSelector(IKmsRegistry.KmsRegistryOsMeasurementCount.selector, 17));
        _addOsImage(OS_IMAGE, _provenance("os"), _tdxMeasurements(17));
    }

    /// The count is checked before the provenance and the measurements themselves.
    function test_RevertWhen_NoOsMeasurementsAndBadProvenance() public {
        Provenance memory p = _provenance("os");
        p.sourceUrl = "";
        vm.expectRevert(abi.encodeWithSelector(IKmsRegistry.KmsRegistryOsMeasurementCount.selector, 0));
        _addOsImage(OS_IMAGE, p, new OsMeasurement[](0));
    }

    function test_RevertWhen_OsMeasurementOfUnknownTeeKind() public {
        OsMeasurement[] memory m = _osMeasurements();
        m[2] = OsMeasurement({teeKind: TeeKind.Unknown, registers: OS_TD_REGISTERS});
        vm.expectRevert(abi.encodeWithSelector(IKmsRegistry.KmsRegistryInvalidOsMeasurement.selector, 2));
        _addOsImage(OS_IMAGE, _provenance("os"), m);
        vm.expectRevert(abi.encodeWithSelector(IKmsRegistry.KmsRegistryInvalidOsMeasurement.selector, 0));
        _addOsImage(OS_IMAGE, _provenance("os"), _one(TeeKind.Unknown, 48));
        assertFalse(registry.isOsImageAllowed(OS_IMAGE));
    }

    /// TDX and the simulator take 192 bytes of registers, SEV-SNP 48; any other length is refused,
    /// at the index of the first faulty measurement.
    function test_RevertWhen_OsMeasurementRegistersHaveTheWrongLength() public {
        uint256[4] memory tdLengths = [uint256(0), 48, 191, 193];
        for (uint256 i = 0; i < tdLengths.length; ++i) {
            vm.expectRevert(abi.encodeWithSelector(IKmsRegistry.KmsRegistryInvalidOsMeasurement.selector, 0));
            _addOsImage(OS_IMAGE, _provenance("os"), _one(TeeKind.Tdx, tdLengths[i]));
            vm.expectRevert(abi.encodeWithSelector(IKmsRegistry.KmsRegistryInvalidOsMeasurement.selector, 0));
            _addOsImage(OS_IMAGE, _provenance("os"), _one(TeeKind.Simulated, tdLengths[i]));
        }
        uint256[4] memory snpLengths = [uint256(0), 47, 49, 192];
        for (uint256 i = 0; i < snpLengths.length; ++i) {
            vm.expectRevert(abi.encodeWithSelector(IKmsRegistry.KmsRegistryInvalidOsMeasurement.selector, 0));
            _addOsImage(OS_IMAGE, _provenance("os"), _one(TeeKind.SevSnp, snpLengths[i]));
        }
        OsMeasurement[] memory m = _osMeasurements();
        m[1] = OsMeasurement({teeKind: TeeKind.SevSnp, registers: OS_TD_REGISTERS});
        vm.expectRevert(abi.encodeWithSelector(IKmsRegistry.KmsRegistryInvalidOsMeasurement.selector, 1));
        _addOsImage(OS_IMAGE, _provenance("os"), m);
        assertFalse(registry.isOsImageAllowed(OS_IMAGE));
    }

    /// Any platform and register length: accepted exactly for a known platform with its length.
    function testFuzz_OsMeasurementValidation(uint8 kindSeed, uint256 length) public {
        TeeKind kind = TeeKind(bound(kindSeed, 0, 3));
        length = bound(length, 0, 256);
        bool valid = (kind == TeeKind.SevSnp && length == 48)
            || ((kind == TeeKind.Tdx || kind == TeeKind.Simulated) && length == 192);
        if (!valid) {
            vm.expectRevert(abi.encodeWithSelector(IKmsRegistry.KmsRegistryInvalidOsMeasurement.selector, 0));
        }
        _addOsImage(OS_IMAGE, _provenance("os"), _one(kind, length));
        assertEq(registry.isOsImageAllowed(OS_IMAGE), valid);
    }

    // ---------------------------------------------------------------------------------------------
    // The notice period of an OS image and its measurements, as app and KMS boots see them

    /// An added image is refused as "not yet effective" until its effectiveAt, to the second.
    function test_OsImageTakesEffectAfterTheMinimumNotice() public {
        App app = _createApp();
        _allowKms();
        uint64 effectiveAt = uint64(block.timestamp) + MIN_NOTICE;
        _addOsImage(OS_IMAGE, _provenance("os-1.0"), _osMeasurements());
        _assertDenied(_boot(address(app)), "os image not yet effective");
        _assertKms(_kmsBoot(), "os image not yet effective");
        vm.warp(effectiveAt - 1);
        _assertDenied(_boot(address(app)), "os image not yet effective");
        _assertKms(_kmsBoot(), "os image not yet effective");
        vm.warp(effectiveAt);
        _assertAllowed(_boot(address(app)));
        _assertKms(_kmsBoot(), "");
    }

    /// Images wait the minimum in force when they are added: a raised minimum delays later ones,
    /// a zero minimum makes them effective at once.
    function test_OsImageWaitsTheMinimumInForce() public {
        App app = _createApp();
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.setMinNoticePeriod, (3 days)));
        _addOsImage(OS_IMAGE, _provenance("os-1.0"), _osMeasurements());
        assertEq(registry.osImageEffectiveAt(OS_IMAGE), block.timestamp + 3 days);
        vm.warp(block.timestamp + MIN_NOTICE);
        _assertDenied(_boot(address(app)), "os image not yet effective");

        bytes32 other = keccak256("covenant-os 1.1");
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.setMinNoticePeriod, (0)));
        _addOsImage(other, _provenance("os-1.1"), _osMeasurements());
        assertEq(registry.osImageEffectiveAt(other), block.timestamp);
        BootInfo memory b = _boot(address(app));
        b.osImageHash = other;
        _assertAllowed(b);
    }

    function test_DeniesAnOsMeasurementNotRegistered() public {
        App app = _createApp();
        _allowOsImage();
        _allowKms();
        BootInfo memory b = _boot(address(app));
        b.osMeasurement = keccak256("another os build");
        _assertDenied(b, "os measurement not allowed");
        b.osMeasurement = bytes32(0);
        _assertDenied(b, "os measurement not allowed");
        BootInfo memory k = _kmsBoot();
        k.osMeasurement = keccak256("another os build");
        _assertKms(k, "os measurement not allowed");
    }

    /// A measurement counts only for the platform it was registered for.
    function test_DeniesAMeasurementOfAnotherTeeKind() public {
        App app = _createApp();
        OsMeasurement[] memory tdxOnly = new OsMeasurement[](1);
        tdxOnly[0] = OsMeasurement({teeKind: TeeKind.Tdx, registers: OS_TD_REGISTERS});
        _addOsImage(OS_IMAGE, _provenance("os-1.0"), tdxOnly);
        vm.warp(block.timestamp + MIN_NOTICE);
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.setAllowSimulatedTee, (true)));

        BootInfo memory b = _boot(address(app));
        _assertAllowed(b);
        // The same registers on the simulator: not registered for it.
        b.teeKind = TeeKind.Simulated;
        _assertDenied(b, "os measurement not allowed");
        b.teeKind = TeeKind.SevSnp;
        _assertDenied(b, "os measurement not allowed");
        b.osMeasurement = osSnpMeasurement;
        _assertDenied(b, "os measurement not allowed");

        // With every platform registered, each boots with its own measurement and no other's.
        bytes32 image = keccak256("covenant-os 1.1");
        _addOsImage(image, _provenance("os-1.1"), _osMeasurements());
        vm.warp(block.timestamp + MIN_NOTICE);
        b = _boot(address(app));
        b.osImageHash = image;
        b.teeKind = TeeKind.SevSnp;
        b.osMeasurement = osSnpMeasurement;
        _assertAllowed(b);
        b.teeKind = TeeKind.Tdx;
        _assertDenied(b, "os measurement not allowed");
        b.osMeasurement = osTdMeasurement;
        _assertAllowed(b);
        b.teeKind = TeeKind.Simulated;
        _assertAllowed(b);
    }

    /// Removing an image and adding it again starts a new registration: the measurements of the
    /// old one lapse, only the new ones count, and only after the new notice period.
    function test_ReAddedOsImageDropsTheOldMeasurements() public {
        App app = _createApp();
        _allowOsImage();
        _assertAllowed(_boot(address(app)));

        bytes memory rebuilt = abi.encodePacked(
            keccak256("mrtd v2"),
            bytes16(0),
            keccak256("rtmr0 v2"),
            bytes16(0),
            keccak256("rtmr1 v2"),
            bytes16(0),
            keccak256("rtmr2 v2"),
            bytes16(0)
        );
        bytes32 rebuiltMeasurement = sha256(rebuilt);
        OsMeasurement[] memory m = new OsMeasurement[](1);
        m[0] = OsMeasurement({teeKind: TeeKind.Tdx, registers: rebuilt});

        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.removeOsImage, (OS_IMAGE)));
        _assertDenied(_boot(address(app)), "os image not allowed");
        uint64 effectiveAt = uint64(block.timestamp) + MIN_NOTICE;
        _addOsImage(OS_IMAGE, _provenance("os-1.0 rebuilt"), m);
        _assertDenied(_boot(address(app)), "os image not yet effective");
        vm.warp(effectiveAt);

        _assertDenied(_boot(address(app)), "os measurement not allowed");
        assertFalse(registry.isOsMeasurementRegistered(OS_IMAGE, TeeKind.Tdx, osTdMeasurement));
        assertFalse(registry.isOsMeasurementRegistered(OS_IMAGE, TeeKind.SevSnp, osSnpMeasurement));
        assertTrue(registry.isOsMeasurementRegistered(OS_IMAGE, TeeKind.Tdx, rebuiltMeasurement));
        BootInfo memory b = _boot(address(app));
        b.osMeasurement = rebuiltMeasurement;
        _assertAllowed(b);
        // The old SEV-SNP measurement, not registered again, lapsed too.
        b.teeKind = TeeKind.SevSnp;
        b.osMeasurement = osSnpMeasurement;
        _assertDenied(b, "os measurement not allowed");
    }

    function _assertKms(BootInfo memory b, string memory expected) internal view {
        (bool allowed, string memory reason) = registry.isKmsAllowed(b);
        assertEq(reason, expected);
        assertEq(allowed, bytes(expected).length == 0);
    }
}

contract KmsRegistryKmsAllowlistTest is CovenantFixture {
    function test_AddAndRemoveMeasurement() public {
        vm.expectEmit(address(registry));
        emit IKmsRegistry.KmsMeasurementAdded(KMS_MR);
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.addKmsMeasurement, (KMS_MR)));
        assertTrue(registry.isKmsMeasurementAllowed(KMS_MR));
        vm.expectEmit(address(registry));
        emit IKmsRegistry.KmsMeasurementRemoved(KMS_MR);
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.removeKmsMeasurement, (KMS_MR)));
        assertFalse(registry.isKmsMeasurementAllowed(KMS_MR));
    }

    function test_AddAndRemoveDevice() public {
        vm.expectEmit(address(registry));
        emit IKmsRegistry.KmsDeviceAdded(KMS_DEVICE);
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.addKmsDevice, (KMS_DEVICE)));
        assertTrue(registry.isKmsDeviceAllowed(KMS_DEVICE));
        vm.expectEmit(address(registry));
        emit IKmsRegistry.KmsDeviceRemoved(KMS_DEVICE);
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.removeKmsDevice, (KMS_DEVICE)));
        assertFalse(registry.isKmsDeviceAllowed(KMS_DEVICE));
    }

    function test_RevertWhen_MeasurementIsZeroOrAlreadyAllowed() public {
        vm.expectRevert(IKmsRegistry.KmsRegistryZeroValue.selector);
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.addKmsMeasurement, (bytes32(0))));
        _allowKms();
        vm.expectRevert(IKmsRegistry.KmsRegistryNoChange.selector);
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.addKmsMeasurement, (KMS_MR)));
    }

    function test_RevertWhen_DeviceIsZeroOrAlreadyAllowed() public {
        vm.expectRevert(IKmsRegistry.KmsRegistryZeroValue.selector);
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.addKmsDevice, (bytes32(0))));
        _allowKms();
        vm.expectRevert(IKmsRegistry.KmsRegistryNoChange.selector);
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.addKmsDevice, (KMS_DEVICE)));
    }

    function test_RevertWhen_RemovingWhatIsNotAllowed() public {
        vm.expectRevert(
            abi.encodeWithSelector(IKmsRegistry.KmsRegistryMeasurementNotAllowed.selector, KMS_MR)
        );
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.removeKmsMeasurement, (KMS_MR)));
        vm.expectRevert(abi.encodeWithSelector(IKmsRegistry.KmsRegistryDeviceNotAllowed.selector, KMS_DEVICE));
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.removeKmsDevice, (KMS_DEVICE)));
    }
}

contract KmsRegistryNodeTest is CovenantFixture {
    address internal node1 = makeAddr("kms-node-1");
    address internal node2 = makeAddr("kms-node-2");

    function setUp() public override {
        super.setUp();
        _allowKms();
    }

    function _onboardFirst() internal {
        _asTimelock(
            address(registry), abi.encodeCall(KmsRegistry.onboardKmsNode, (node1, KMS_MR, KMS_DEVICE))
        );
    }

    function test_GovernanceOnboardsTheFirstNode() public {
        vm.expectEmit(address(registry));
        emit IKmsRegistry.KmsNodeOnboarded(
            node1, address(timelock), KMS_MR, KMS_DEVICE, uint64(block.timestamp)
        );
        _onboardFirst();
        IKmsRegistry.KmsNode memory record = registry.kmsNode(node1);
        assertTrue(record.active);
        assertEq(record.onboardedBy, address(timelock));
        assertEq(record.onboardedAt, block.timestamp);
        assertEq(record.mrAggregated, KMS_MR);
        assertEq(record.deviceId, KMS_DEVICE);
        assertEq(record.committedThrough, 0);
        assertFalse(record.removedByGovernance);
    }

    function test_ARegisteredNodeOnboardsTheNext() public {
        _onboardFirst();
        vm.expectEmit(address(registry));
        emit IKmsRegistry.KmsNodeOnboarded(node2, node1, KMS_MR, KMS_DEVICE, uint64(block.timestamp));
        vm.prank(node1);
        registry.onboardKmsNode(node2, KMS_MR, KMS_DEVICE);
        assertEq(registry.kmsNode(node2).onboardedBy, node1);
    }

    function test_RevertWhen_AStrangerOnboards() public {
        vm.prank(stranger);
        vm.expectRevert(
            abi.encodeWithSelector(IKmsRegistry.KmsRegistryNotAuthorizedOnboarder.selector, stranger)
        );
        registry.onboardKmsNode(node2, KMS_MR, KMS_DEVICE);
    }

    function test_RevertWhen_ARemovedNodeOnboards() public {
        _onboardFirst();
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.removeKmsNode, (node1)));
        vm.prank(node1);
        vm.expectRevert(
            abi.encodeWithSelector(IKmsRegistry.KmsRegistryNotAuthorizedOnboarder.selector, node1)
        );
        registry.onboardKmsNode(node2, KMS_MR, KMS_DEVICE);
    }

    function test_RevertWhen_ANodeWhoseMeasurementWasRevokedOnboards() public {
        _onboardFirst();
        bytes32 otherMr = keccak256("other kms mr");
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.addKmsMeasurement, (otherMr)));
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.removeKmsMeasurement, (KMS_MR)));
        vm.prank(node1);
        vm.expectRevert(
            abi.encodeWithSelector(IKmsRegistry.KmsRegistryNotAuthorizedOnboarder.selector, node1)
        );
        registry.onboardKmsNode(node2, otherMr, KMS_DEVICE);
    }

    /// A node whose KMS device governance no longer allows is not serving: it cannot onboard another
    /// node, even onto a device that is allowed.
    function test_RevertWhen_ANodeWhoseDeviceWasRevokedOnboards() public {
        _onboardFirst();
        bytes32 otherDevice = keccak256("other kms device");
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.addKmsDevice, (otherDevice)));
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.removeKmsDevice, (KMS_DEVICE)));
        assertTrue(registry.kmsNode(node1).active);
        vm.prank(node1);
        vm.expectRevert(
            abi.encodeWithSelector(IKmsRegistry.KmsRegistryNotAuthorizedOnboarder.selector, node1)
        );
        registry.onboardKmsNode(node2, KMS_MR, otherDevice);
        assertFalse(registry.kmsNode(node2).active);

        // Allowed again, the device makes the node serving again.
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.addKmsDevice, (KMS_DEVICE)));
        vm.prank(node1);
        registry.onboardKmsNode(node2, KMS_MR, otherDevice);
        assertTrue(registry.kmsNode(node2).active);
    }

    /// A node governance removed comes back only through governance: a serving node that would hand
    /// it the root secret again is refused.
    function test_RevertWhen_ANodeReOnboardsANodeGovernanceRemoved() public {
        _onboardFirst();
        vm.prank(node1);
        registry.onboardKmsNode(node2, KMS_MR, KMS_DEVICE);
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.removeKmsNode, (node2)));
        IKmsRegistry.KmsNode memory record = registry.kmsNode(node2);
        assertFalse(record.active);
        assertTrue(record.removedByGovernance);

        vm.prank(node1);
        vm.expectRevert(
            abi.encodeWithSelector(IKmsRegistry.KmsRegistryNodeRemovedByGovernance.selector, node2)
        );
        registry.onboardKmsNode(node2, KMS_MR, KMS_DEVICE);
        assertFalse(registry.kmsNode(node2).active);
    }

    /// Governance may onboard a node it removed: the mark is cleared and the node serves again.
    function test_GovernanceReOnboardsANodeItRemoved() public {
        _onboardFirst();
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.removeKmsNode, (node1)));
        assertTrue(registry.kmsNode(node1).removedByGovernance);

        vm.expectEmit(address(registry));
        emit IKmsRegistry.KmsNodeOnboarded(
            node1, address(timelock), KMS_MR, KMS_DEVICE, uint64(block.timestamp)
        );
        _onboardFirst();
        IKmsRegistry.KmsNode memory record = registry.kmsNode(node1);
        assertTrue(record.active);
        assertFalse(record.removedByGovernance);
        assertEq(record.onboardedBy, address(timelock));

        // Back in service, it onboards others as before.
        vm.prank(node1);
        registry.onboardKmsNode(node2, KMS_MR, KMS_DEVICE);
        assertTrue(registry.kmsNode(node2).active);
    }

    /// The caller is checked before the governance mark: a stranger still gets "not authorised".
    function test_RevertWhen_AStrangerReOnboardsARemovedNode() public {
        _onboardFirst();
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.removeKmsNode, (node1)));
        vm.prank(stranger);
        vm.expectRevert(
            abi.encodeWithSelector(IKmsRegistry.KmsRegistryNotAuthorizedOnboarder.selector, stranger)
        );
        registry.onboardKmsNode(node1, KMS_MR, KMS_DEVICE);
    }

    function test_RevertWhen_OnboardingZeroOrActiveNode() public {
        vm.expectRevert(IKmsRegistry.KmsRegistryZeroValue.selector);
        _asTimelock(
            address(registry), abi.encodeCall(KmsRegistry.onboardKmsNode, (address(0), KMS_MR, KMS_DEVICE))
        );
        _onboardFirst();
        vm.expectRevert(abi.encodeWithSelector(IKmsRegistry.KmsRegistryNodeAlreadyActive.selector, node1));
        _onboardFirst();
    }

    function test_RevertWhen_OnboardingWithAMeasurementOrDeviceNotAllowed() public {
        bytes32 bad = keccak256("bad");
        vm.expectRevert(abi.encodeWithSelector(IKmsRegistry.KmsRegistryMeasurementNotAllowed.selector, bad));
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.onboardKmsNode, (node1, bad, KMS_DEVICE)));
        vm.expectRevert(abi.encodeWithSelector(IKmsRegistry.KmsRegistryDeviceNotAllowed.selector, bad));
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.onboardKmsNode, (node1, KMS_MR, bad)));
    }

    function test_RemoveNode() public {
        _onboardFirst();
        vm.expectEmit(address(registry));
        emit IKmsRegistry.KmsNodeRemoved(node1);
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.removeKmsNode, (node1)));
        assertFalse(registry.kmsNode(node1).active);
        vm.expectRevert(abi.encodeWithSelector(IKmsRegistry.KmsRegistryNotActiveNode.selector, node1));
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.removeKmsNode, (node1)));
    }

    function test_GrantLogCommitsAreContiguous() public {
        _onboardFirst();
        bytes32 root1 = keccak256("root-1");
        vm.expectEmit(address(registry));
        emit IKmsRegistry.GrantLogCommitted(node1, 1, 10, root1);
        vm.prank(node1);
        registry.commitGrantLog(1, 10, root1);
        vm.prank(node1);
        registry.commitGrantLog(11, 11, keccak256("root-2"));
        assertEq(registry.kmsNode(node1).committedThrough, 11);

        vm.prank(node1);
        vm.expectRevert(abi.encodeWithSelector(IKmsRegistry.KmsRegistryGrantLogGap.selector, 12, 13));
        registry.commitGrantLog(13, 20, root1);
        vm.prank(node1);
        vm.expectRevert(abi.encodeWithSelector(IKmsRegistry.KmsRegistryGrantLogGap.selector, 12, 11));
        registry.commitGrantLog(11, 20, root1);
        vm.prank(node1);
        vm.expectRevert(abi.encodeWithSelector(IKmsRegistry.KmsRegistryGrantLogRange.selector, 12, 11));
        registry.commitGrantLog(12, 11, root1);
        vm.prank(node1);
        vm.expectRevert(IKmsRegistry.KmsRegistryZeroValue.selector);
        registry.commitGrantLog(12, 12, bytes32(0));
    }

    function test_ARemovedNodeKeepsItsSequenceWhenOnboardedAgain() public {
        _onboardFirst();
        vm.prank(node1);
        registry.commitGrantLog(1, 5, keccak256("r"));
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.removeKmsNode, (node1)));
        vm.prank(node1);
        vm.expectRevert(abi.encodeWithSelector(IKmsRegistry.KmsRegistryNotActiveNode.selector, node1));
        registry.commitGrantLog(6, 6, keccak256("r"));
        _onboardFirst();
        vm.prank(node1);
        vm.expectRevert(abi.encodeWithSelector(IKmsRegistry.KmsRegistryGrantLogGap.selector, 6, 1));
        registry.commitGrantLog(1, 1, keccak256("r"));
    }

    function test_RevertWhen_AStrangerCommitsAGrantLog() public {
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(IKmsRegistry.KmsRegistryNotActiveNode.selector, stranger));
        registry.commitGrantLog(1, 1, keccak256("r"));
    }

    /// One commit may cover exactly MAX_GRANT_LOG_COMMIT entries, not one more.
    function test_GrantLogCommitOfTheMaximumLength() public {
        _onboardFirst();
        uint64 max = registry.MAX_GRANT_LOG_COMMIT();
        vm.prank(node1);
        vm.expectRevert(abi.encodeWithSelector(IKmsRegistry.KmsRegistryGrantLogRange.selector, 1, max + 1));
        registry.commitGrantLog(1, max + 1, keccak256("r"));

        vm.expectEmit(address(registry));
        emit IKmsRegistry.GrantLogCommitted(node1, 1, max, keccak256("r"));
        vm.prank(node1);
        registry.commitGrantLog(1, max, keccak256("r"));
        assertEq(registry.kmsNode(node1).committedThrough, max);

        // The bound holds for every commit, not only the first.
        vm.prank(node1);
        vm.expectRevert(
            abi.encodeWithSelector(IKmsRegistry.KmsRegistryGrantLogRange.selector, max + 1, 2 * max + 1)
        );
        registry.commitGrantLog(max + 1, 2 * max + 1, keccak256("r"));
        vm.prank(node1);
        registry.commitGrantLog(max + 1, 2 * max, keccak256("r"));
        assertEq(registry.kmsNode(node1).committedThrough, 2 * max);
    }

    /// Any range longer than the maximum is refused, up to the end of the sequence space.
    function testFuzz_RevertWhen_GrantLogRangeTooLong(uint64 toSeq) public {
        _onboardFirst();
        toSeq = uint64(bound(toSeq, registry.MAX_GRANT_LOG_COMMIT() + 1, type(uint64).max));
        vm.prank(node1);
        vm.expectRevert(abi.encodeWithSelector(IKmsRegistry.KmsRegistryGrantLogRange.selector, 1, toSeq));
        registry.commitGrantLog(1, toSeq, keccak256("r"));
    }

    function testFuzz_GrantLogAcceptsAnyContiguousRanges(uint64[4] memory lengths) public {
        _onboardFirst();
        uint64 next = 1;
        for (uint256 i = 0; i < lengths.length; ++i) {
            uint64 length = uint64(bound(lengths[i], 1, registry.MAX_GRANT_LOG_COMMIT()));
            vm.prank(node1);
            registry.commitGrantLog(next, next + length - 1, keccak256(abi.encode(i)));
            next += length;
        }
        assertEq(registry.kmsNode(node1).committedThrough, next - 1);
    }
}

contract KmsRegistrySettingsTest is CovenantFixture {
    function test_SetKmsRootKeysStartsANewGeneration() public {
        bytes memory ca = abi.encodePacked(bytes1(0x04), keccak256("x"), keccak256("y"));
        address signer = makeAddr("kms-root");
        vm.expectEmit(address(registry));
        emit IKmsRegistry.KmsRootKeysSet(1, signer, ca);
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.setKmsRootKeys, (signer, ca)));
        (address gotSigner, bytes memory gotCa, uint64 generation) = registry.kmsRootKeys();
        assertEq(gotSigner, signer);
        assertEq(gotCa, ca);
        assertEq(generation, 1);
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.setKmsRootKeys, (signer, ca)));
        (,, generation) = registry.kmsRootKeys();
        assertEq(generation, 2);
    }

    function test_RevertWhen_KmsRootKeysAreMalformed() public {
        bytes memory ca = abi.encodePacked(bytes1(0x04), keccak256("x"), keccak256("y"));
        vm.expectRevert(IKmsRegistry.KmsRegistryZeroValue.selector);
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.setKmsRootKeys, (address(0), ca)));
        bytes memory compressed = abi.encodePacked(bytes1(0x02), keccak256("x"));
        vm.expectRevert(abi.encodeWithSelector(IKmsRegistry.KmsRegistryInvalidCaKey.selector, 33));
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.setKmsRootKeys, (stranger, compressed)));
        ca[0] = 0x03;
        vm.expectRevert(abi.encodeWithSelector(IKmsRegistry.KmsRegistryInvalidCaKey.selector, 65));
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.setKmsRootKeys, (stranger, ca)));
        vm.expectRevert(abi.encodeWithSelector(IKmsRegistry.KmsRegistryInvalidCaKey.selector, 0));
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.setKmsRootKeys, (stranger, bytes(""))));
    }

    function test_SetGatewayAppId() public {
        address gateway = makeAddr("gateway-app");
        vm.expectEmit(address(registry));
        emit IKmsRegistry.GatewayAppIdSet(address(0), gateway);
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.setGatewayAppId, (gateway)));
        assertEq(registry.gatewayAppId(), gateway);
        vm.expectRevert(IKmsRegistry.KmsRegistryNoChange.selector);
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.setGatewayAppId, (gateway)));
    }

    function test_SetAllowSimulatedTee() public {
        vm.expectEmit(address(registry));
        emit IKmsRegistry.AllowSimulatedTeeSet(true);
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.setAllowSimulatedTee, (true)));
        assertTrue(registry.allowSimulatedTee());
        vm.expectRevert(IKmsRegistry.KmsRegistryNoChange.selector);
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.setAllowSimulatedTee, (true)));
        vm.expectEmit(address(registry));
        emit IKmsRegistry.AllowSimulatedTeeSet(false);
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.setAllowSimulatedTee, (false)));
        assertFalse(registry.allowSimulatedTee());
    }

    function test_SetMinNoticePeriod() public {
        vm.expectEmit(address(registry));
        emit IKmsRegistry.MinNoticePeriodSet(3 days);
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.setMinNoticePeriod, (3 days)));
        assertEq(registry.minNoticePeriod(), 3 days);

        // Lowering is allowed too, down to zero (loosenings then wait only the apps' own periods).
        vm.expectEmit(address(registry));
        emit IKmsRegistry.MinNoticePeriodSet(0);
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.setMinNoticePeriod, (0)));
        assertEq(registry.minNoticePeriod(), 0);
    }

    function test_SetMinNoticePeriodToTheMaximum() public {
        uint64 max = registry.MAX_NOTICE_PERIOD();
        vm.expectEmit(address(registry));
        emit IKmsRegistry.MinNoticePeriodSet(max);
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.setMinNoticePeriod, (max)));
        assertEq(registry.minNoticePeriod(), max);
    }

    function test_RevertWhen_MinNoticePeriodAboveTheMaximum() public {
        uint64 tooLong = registry.MAX_NOTICE_PERIOD() + 1;
        vm.expectRevert(abi.encodeWithSelector(IKmsRegistry.KmsRegistryNoticePeriodTooLong.selector, tooLong));
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.setMinNoticePeriod, (tooLong)));
        vm.expectRevert(
            abi.encodeWithSelector(IKmsRegistry.KmsRegistryNoticePeriodTooLong.selector, type(uint64).max)
        );
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.setMinNoticePeriod, (type(uint64).max)));
        assertEq(registry.minNoticePeriod(), MIN_NOTICE);
    }

    function test_RevertWhen_MinNoticePeriodUnchanged() public {
        vm.expectRevert(IKmsRegistry.KmsRegistryNoChange.selector);
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.setMinNoticePeriod, (MIN_NOTICE)));
    }

    function test_RevertWhen_SetMinNoticePeriodByNonOwner() public {
        vm.prank(stranger);
        vm.expectRevert(
            abi.encodeWithSelector(OwnableUpgradeable.OwnableUnauthorizedAccount.selector, stranger)
        );
        registry.setMinNoticePeriod(2 days);
        // An app owner has no say over the registry's minimum.
        vm.prank(appOwner);
        vm.expectRevert(
            abi.encodeWithSelector(OwnableUpgradeable.OwnableUnauthorizedAccount.selector, appOwner)
        );
        registry.setMinNoticePeriod(0);
        assertEq(registry.minNoticePeriod(), MIN_NOTICE);
    }

    /// Any value: accepted up to the maximum when it is a change, refused otherwise.
    function testFuzz_SetMinNoticePeriod(uint64 minimum) public {
        uint64 max = registry.MAX_NOTICE_PERIOD();
        if (minimum == MIN_NOTICE) {
            vm.expectRevert(IKmsRegistry.KmsRegistryNoChange.selector);
        } else if (minimum > max) {
            vm.expectRevert(
                abi.encodeWithSelector(IKmsRegistry.KmsRegistryNoticePeriodTooLong.selector, minimum)
            );
        } else {
            vm.expectEmit(address(registry));
            emit IKmsRegistry.MinNoticePeriodSet(minimum);
        }
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.setMinNoticePeriod, (minimum)));
        assertEq(registry.minNoticePeriod(), minimum <= max ? minimum : MIN_NOTICE);
    }

    function test_SetAppImplementation() public {
        App next = new App(address(registry));
        vm.expectEmit(address(registry));
        emit IKmsRegistry.AppImplementationSet(address(appImplementation), address(next));
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.setAppImplementation, (address(next))));
        assertEq(registry.appImplementation(), address(next));
        // New apps are created from it.
        address app = registry.createApp(appOwner, _appInit());
        assertEq(address(uint160(uint256(vm.load(app, ERC1967Utils.IMPLEMENTATION_SLOT)))), address(next));
    }

    function test_RevertWhen_AppImplementationIsNotAContractOrUnchanged() public {
        vm.expectRevert(abi.encodeWithSelector(IKmsRegistry.KmsRegistryNotAContract.selector, stranger));
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.setAppImplementation, (stranger)));
        vm.expectRevert(IKmsRegistry.KmsRegistryNoChange.selector);
        _asTimelock(
            address(registry), abi.encodeCall(KmsRegistry.setAppImplementation, (address(appImplementation)))
        );
    }
}

contract KmsRegistryAppsTest is CovenantFixture {
    function test_CreateAppDeploysAProxyOwnedByTheCaller() public {
        vm.recordLogs();
        vm.prank(stranger);
        address app = registry.createApp(appOwner, _appInit());
        assertEq(uint8(registry.appKind(app)), uint8(IKmsRegistry.AppKind.Factory));
        assertEq(App(app).owner(), appOwner);
        assertEq(App(app).registry(), address(registry));
        assertTrue(App(app).isComposeHashAllowed(COMPOSE_HASH));
        assertTrue(App(app).isDeviceAllowed(DEVICE));
        assertEq(App(app).keyGeneration(), 1);
        assertEq(
            address(uint160(uint256(vm.load(app, ERC1967Utils.IMPLEMENTATION_SLOT)))),
            address(appImplementation)
        );
        // The app's initial-settings events come first; AppCreated is the last event of the call.
        Vm.Log[] memory logs = vm.getRecordedLogs();
        Vm.Log memory last = logs[logs.length - 1];
        assertEq(last.emitter, address(registry));
        assertEq(last.topics[0], IKmsRegistry.AppCreated.selector);
        assertEq(last.topics[1], bytes32(uint256(uint160(app))));
        bool sawComposeHash;
        for (uint256 i = 0; i + 1 < logs.length; ++i) {
            if (logs[i].emitter == app && logs[i].topics[0] == IApp.ComposeHashAdded.selector) {
                sawComposeHash = true;
            }
        }
        assertTrue(sawComposeHash);
    }

    function test_CreateAppEmitsAppCreated() public {
        vm.expectEmit(false, true, true, false, address(registry));
        emit IKmsRegistry.AppCreated(address(0), appOwner, address(appImplementation));
        registry.createApp(appOwner, _appInit());
    }

    function test_RevertWhen_CreatingAnAppWithoutOwner() public {
        vm.expectRevert(abi.encodeWithSelector(OwnableUpgradeable.OwnableInvalidOwner.selector, address(0)));
        registry.createApp(address(0), _appInit());
    }

    function test_RevertWhen_CreatingAnAppWithInvalidSettings() public {
        IApp.AppInit memory init = _appInit();
        init.allowedTeeKinds = 0;
        vm.expectRevert(abi.encodeWithSelector(IApp.AppInvalidTeeKinds.selector, 0));
        registry.createApp(appOwner, init);
    }

    function test_RegisterAndDeregisterACustomApp() public {
        FixedPolicy policy = new FixedPolicy(true, "");
        vm.expectEmit(address(registry));
        emit IKmsRegistry.CustomAppRegistered(address(policy));
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.registerCustomApp, (address(policy))));
        assertEq(uint8(registry.appKind(address(policy))), uint8(IKmsRegistry.AppKind.Custom));
        vm.expectEmit(address(registry));
        emit IKmsRegistry.AppDeregistered(address(policy));
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.deregisterApp, (address(policy))));
        assertEq(uint8(registry.appKind(address(policy))), uint8(IKmsRegistry.AppKind.None));
    }

    function test_RevertWhen_RegisteringANonContractOrARegisteredApp() public {
        vm.expectRevert(abi.encodeWithSelector(IKmsRegistry.KmsRegistryNotAContract.selector, stranger));
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.registerCustomApp, (stranger)));
        App app = _createApp();
        vm.expectRevert(
            abi.encodeWithSelector(IKmsRegistry.KmsRegistryAppAlreadyRegistered.selector, address(app))
        );
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.registerCustomApp, (address(app))));
    }

    function test_RevertWhen_DeregisteringAnUnknownApp() public {
        vm.expectRevert(abi.encodeWithSelector(IKmsRegistry.KmsRegistryAppNotRegistered.selector, stranger));
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.deregisterApp, (stranger)));
    }
}

contract KmsRegistryIsAppAllowedTest is CovenantFixture {
    App internal app;
    bytes32 internal osSnpMeasurement;

    function setUp() public override {
        super.setUp();
        osSnpMeasurement = sha256(OS_SNP_REGISTERS);
        app = _createApp();
        _allowOsImage();
    }

    function test_AllowsABootThatMeetsEveryCondition() public view {
        _assertAllowed(_boot(address(app)));
    }

    function test_DeniesAnUnregisteredApp() public {
        _assertDenied(_boot(stranger), "app not registered");
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.deregisterApp, (address(app))));
        _assertDenied(_boot(address(app)), "app not registered");
    }

    function test_DeniesAnUnknownTeeKind() public view {
        BootInfo memory b = _boot(address(app));
        b.teeKind = TeeKind.Unknown;
        _assertDenied(b, "unknown tee kind");
    }

    function test_SimulatedTeeOnlyWhenGovernanceAllowsIt() public {
        BootInfo memory b = _boot(address(app));
        b.teeKind = TeeKind.Simulated;
        _assertDenied(b, "simulated tee not allowed");
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.setAllowSimulatedTee, (true)));
        _assertAllowed(b);
    }

    function test_DeniesUnknownAndRevokedTcb() public view {
        BootInfo memory b = _boot(address(app));
        b.tcbStatus = TcbStatus.Unknown;
        _assertDenied(b, "tcb status not acceptable");
        b.tcbStatus = TcbStatus.Revoked;
        _assertDenied(b, "tcb status not acceptable");
        b.tcbStatus = TcbStatus.OutOfDate;
        _assertAllowed(b);
    }

    function test_DeniesAnOsImageNotAllowed() public {
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.removeOsImage, (OS_IMAGE)));
        _assertDenied(_boot(address(app)), "os image not allowed");
    }

    function test_ForwardsTheAppsReason() public {
        BootInfo memory b = _boot(address(app));
        b.composeHash = keccak256("not allowed");
        _assertDenied(b, "compose hash not allowed");
        vm.prank(appOwner);
        app.addComposeHash(b.composeHash, _provenance("v2"));
        _assertDenied(b, "compose hash not yet effective");
        vm.prank(appOwner);
        app.setRequireGpu(true);
        _assertDenied(_boot(address(app)), "gpu evidence required");
    }

    function test_CustomPolicyVerdictsAndFailures() public {
        FixedPolicy allowAll = new FixedPolicy(true, "ignored");
        FixedPolicy denySilently = new FixedPolicy(false, "");
        FixedPolicy denyWithReason = new FixedPolicy(false, "custom says no");
        RevertingPolicy broken = new RevertingPolicy();
        _assertDenied(_boot(address(allowAll)), "app not registered");
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.registerCustomApp, (address(allowAll))));
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.registerCustomApp, (address(denySilently))));
        _asTimelock(
            address(registry), abi.encodeCall(KmsRegistry.registerCustomApp, (address(denyWithReason)))
        );
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.registerCustomApp, (address(broken))));
        _assertAllowed(_boot(address(allowAll)));
        _assertDenied(_boot(address(denySilently)), "denied by app policy");
        _assertDenied(_boot(address(denyWithReason)), "custom says no");
        _assertDenied(_boot(address(broken)), "app policy failed");
        // Platform checks apply to custom apps too.
        BootInfo memory b = _boot(address(allowAll));
        b.osImageHash = bytes32(0);
        _assertDenied(b, "os image not allowed");
    }

    function testFuzz_ComposeHashEdges(uint8 pick) public {
        bytes32[3] memory edges =
            [bytes32(uint256(1)), bytes32(type(uint256).max), bytes32(uint256(1) << 255)];
        bytes32 hash = edges[bound(pick, 0, 2)];
        BootInfo memory b = _boot(address(app));
        b.composeHash = hash;
        _assertDenied(b, "compose hash not allowed");
        vm.prank(appOwner);
        app.addComposeHash(hash, _provenance("edge"));
        _assertDenied(b, "compose hash not yet effective");
        vm.warp(block.timestamp + MIN_NOTICE);
        _assertAllowed(b);
        b.composeHash = bytes32(0);
        _assertDenied(b, "compose hash not allowed");
    }

    /// Any boot: the verdict is allowed exactly when every condition holds, and a denial names the
    /// first failing condition in the documented order.
    function testFuzz_VerdictMatchesTheConditions(
        bytes32 composeHash,
        bytes32 deviceId,
        bytes32 osImage,
        uint8 teeKind,
        uint8 tcb,
        uint64 generation,
        bytes20 instance,
        bool registered,
        bool simulatedAllowed
    ) public {
        BootInfo memory b = _boot(registered ? address(app) : stranger);
        b.composeHash = uint256(composeHash) % 2 == 0 ? COMPOSE_HASH : composeHash;
        b.deviceId = uint256(deviceId) % 2 == 0 ? DEVICE : deviceId;
        b.osImageHash = uint256(osImage) % 2 == 0 ? OS_IMAGE : osImage;
        b.teeKind = TeeKind(bound(teeKind, 0, 3));
        // The measurement registered for the boot's platform, or (one time in two) another value.
        b.osMeasurement = (uint256(osImage) >> 1) % 2 == 0
            ? (b.teeKind == TeeKind.SevSnp ? osSnpMeasurement : osTdMeasurement)
            : keccak256(abi.encode(osImage));
        b.tcbStatus = TcbStatus(bound(tcb, 0, 7));
        b.keyGeneration = uint64(bound(generation, 0, 2));
        b.instanceId = instance;
        if (simulatedAllowed) {
            _asTimelock(address(registry), abi.encodeCall(KmsRegistry.setAllowSimulatedTee, (true)));
        }
        string memory expected = _expectedReason(b, registered, simulatedAllowed);
        (bool allowed, string memory reason) = registry.isAppAllowed(b);
        assertEq(reason, expected);
        assertEq(allowed, bytes(expected).length == 0);
    }

    /// The kms-oracle shares one `isAppAllowed` answer between boots of a factory app that differ
    /// only in `mrAggregated` and a non-zero instance id (docs/kms.md, "Decisions"): the verdict
    /// of the registry and the App implementation must not depend on them.
    function testFuzz_VerdictIgnoresMeasurementAndNonZeroInstance(
        bytes32 composeHash,
        uint8 teeKind,
        uint8 tcb,
        uint160 instanceA,
        uint160 instanceB,
        bytes32 mrA,
        bytes32 mrB,
        bool simulatedAllowed
    ) public {
        if (simulatedAllowed) {
            _asTimelock(address(registry), abi.encodeCall(KmsRegistry.setAllowSimulatedTee, (true)));
        }
        BootInfo memory b = _boot(address(app));
        b.composeHash = uint256(composeHash) % 2 == 0 ? COMPOSE_HASH : composeHash;
        b.teeKind = TeeKind(bound(teeKind, 0, 3));
        b.tcbStatus = TcbStatus(bound(tcb, 0, 7));
        b.instanceId = bytes20(uint160(bound(instanceA, 1, type(uint160).max)));
        b.mrAggregated = mrA;
        (bool allowedA, string memory reasonA) = registry.isAppAllowed(b);
        b.instanceId = bytes20(uint160(bound(instanceB, 1, type(uint160).max)));
        b.mrAggregated = mrB;
        (bool allowedB, string memory reasonB) = registry.isAppAllowed(b);
        assertEq(allowedA, allowedB);
        assertEq(reasonA, reasonB);
    }

    function _expectedReason(BootInfo memory b, bool registered, bool simulatedAllowed)
        internal
        view
        returns (string memory)
    {
        if (!registered) return "app not registered";
        if (b.teeKind == TeeKind.Unknown) return "unknown tee kind";
        if (b.teeKind == TeeKind.Simulated && !simulatedAllowed) return "simulated tee not allowed";
        if (b.tcbStatus == TcbStatus.Unknown || b.tcbStatus == TcbStatus.Revoked) {
            return "tcb status not acceptable";
        }
        if (!registry.isOsImageAllowed(b.osImageHash)) return "os image not allowed";
        if (block.timestamp < registry.osImageEffectiveAt(b.osImageHash)) {
            return "os image not yet effective";
        }
        if (!registry.isOsMeasurementRegistered(b.osImageHash, b.teeKind, b.osMeasurement)) {
            return "os measurement not allowed";
        }
        if (!app.isComposeHashAllowed(b.composeHash)) return "compose hash not allowed";
        if (!app.isDeviceAllowed(b.deviceId)) return "device not allowed";
        if (b.keyGeneration != 1) return "key generation not current";
        if (b.instanceId == bytes20(0)) return "instance id missing";
        return "";
    }
}

contract KmsRegistryIsKmsAllowedTest is CovenantFixture {
    function setUp() public override {
        super.setUp();
        _allowOsImage();
        _allowKms();
    }

    function _assertKms(BootInfo memory b, bool expectedAllowed, string memory expectedReason) internal view {
        (bool allowed, string memory reason) = registry.isKmsAllowed(b);
        assertEq(allowed, expectedAllowed);
        assertEq(reason, expectedReason);
    }

    function test_AllowsAnAllowedKmsBoot() public view {
        _assertKms(_kmsBoot(), true, "");
    }

    function test_DeniesEachFailingCondition() public {
        BootInfo memory b = _kmsBoot();
        b.teeKind = TeeKind.Unknown;
        _assertKms(b, false, "unknown tee kind");
        b = _kmsBoot();
        b.teeKind = TeeKind.Simulated;
        _assertKms(b, false, "simulated tee not allowed");
        b = _kmsBoot();
        b.tcbStatus = TcbStatus.Revoked;
        _assertKms(b, false, "tcb status not acceptable");
        b = _kmsBoot();
        b.tcbStatus = TcbStatus.SwHardeningNeeded;
        _assertKms(b, false, "tcb not up to date");
        b = _kmsBoot();
        b.osImageHash = keccak256("other os");
        _assertKms(b, false, "os image not allowed");
        _asTimelock(
            address(registry),
            abi.encodeCall(
                KmsRegistry.addOsImage, (keccak256("other os"), _provenance("other"), _osMeasurements())
            )
        );
        _assertKms(b, false, "os image not yet effective");
        b = _kmsBoot();
        b.osMeasurement = keccak256("other os build");
        _assertKms(b, false, "os measurement not allowed");
        b = _kmsBoot();
        b.mrAggregated = keccak256("other mr");
        _assertKms(b, false, "kms measurement not allowed");
        b = _kmsBoot();
        b.deviceId = keccak256("other device");
        _assertKms(b, false, "kms device not allowed");
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.setAllowSimulatedTee, (true)));
        b = _kmsBoot();
        b.teeKind = TeeKind.Simulated;
        _assertKms(b, true, "");
    }
}
