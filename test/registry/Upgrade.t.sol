// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {BootInfo, Provenance} from "../../contracts/interfaces/BootPolicy.sol";
import {IApp} from "../../contracts/interfaces/IApp.sol";
import {IKmsRegistry} from "../../contracts/interfaces/IKmsRegistry.sol";
import {App} from "../../contracts/registry/App.sol";
import {DomainRegistry} from "../../contracts/registry/DomainRegistry.sol";
import {KmsRegistry} from "../../contracts/registry/KmsRegistry.sol";
import {CovenantFixture} from "../utils/CovenantFixture.sol";
import {OwnableUpgradeable} from "@openzeppelin/contracts-upgradeable/access/OwnableUpgradeable.sol";
import {Initializable} from "@openzeppelin/contracts-upgradeable/proxy/utils/Initializable.sol";
import {ERC1967Proxy} from "@openzeppelin/contracts/proxy/ERC1967/ERC1967Proxy.sol";
import {UUPSUpgradeable} from "@openzeppelin/contracts/proxy/utils/UUPSUpgradeable.sol";

/// The wave-1 `AppInit` (before `noticePeriod`), to call the wave-1 factory.
struct Wave1AppInit {
    bytes32[] composeHashes;
    Provenance[] provenances;
    bytes32[] devices;
    bool anyDevice;
    uint8 allowedTeeKinds;
    bool requireUpToDateTcb;
    bool requireGpu;
}

/// The registries deployed from the wave-1 implementations (test/data/wave1, compiled before the v2
/// rules), filled with state, and upgraded through governance to the current code: every piece of
/// state survives, and the v2 rules apply from then on.
contract UpgradeFromWave1Test is CovenantFixture {
    KmsRegistry internal oldRegistry;
    DomainRegistry internal oldDomains;
    App internal oldApp;
    address internal node = makeAddr("wave-1 node");
    string internal constant DOMAIN = "legacy.example.com";

    function setUp() public override {
        super.setUp();
        // Wave 1, owned by this deployment's Timelock.
        address registryImpl = deployCode("test/data/wave1/KmsRegistry.json");
        address predicted = vm.computeCreateAddress(address(this), vm.getNonce(address(this)) + 1);
        address appImpl = deployCode("test/data/wave1/App.json", abi.encode(predicted));
        oldRegistry = KmsRegistry(
            address(
                new ERC1967Proxy(
                    registryImpl,
                    abi.encodeWithSignature(
                        "initialize(address,address,bool)", address(timelock), appImpl, true
                    )
                )
            )
        );
        assertEq(address(oldRegistry), predicted);
        address domainsImpl = deployCode("test/data/wave1/DomainRegistry.json", abi.encode(oldRegistry));
        oldDomains = DomainRegistry(
            address(
                new ERC1967Proxy(
                    domainsImpl, abi.encodeWithSignature("initialize(address)", address(timelock))
                )
            )
        );

        // State, through the wave-1 functions.
        vm.startPrank(address(timelock));
        _ok(
            address(oldRegistry),
            abi.encodeWithSignature(
                "addOsImage(bytes32,(string,string,bytes32[]))", OS_IMAGE, _provenance("os-1.0")
            )
        );
        oldRegistry.addKmsMeasurement(KMS_MR);
        oldRegistry.addKmsDevice(KMS_DEVICE);
        oldRegistry.onboardKmsNode(node, KMS_MR, KMS_DEVICE);
        oldRegistry.setKmsRootKeys(node, _caKey());
        vm.stopPrank();
        vm.prank(node);
        oldRegistry.commitGrantLog(1, 5, keccak256("root"));

        Wave1AppInit memory init;
        init.composeHashes = new bytes32[](1);
        init.composeHashes[0] = COMPOSE_HASH;
        init.provenances = new Provenance[](1);
        init.provenances[0] = _provenance("v1");
        init.devices = new bytes32[](1);
        init.devices[0] = DEVICE;
        init.allowedTeeKinds = TDX | SNP;
        init.requireUpToDateTcb = true;
        bytes memory created = _ok(
            address(oldRegistry),
            abi.encodeWithSignature(
                "createApp(address,(bytes32[],(string,string,bytes32[])[],bytes32[],bool,uint8,bool,bool))",
                appOwner,
                init
            )
        );
        oldApp = App(abi.decode(created, (address)));
        vm.prank(appOwner);
        _ok(
            address(oldDomains),
            abi.encodeWithSignature("bindDomain(string,address)", DOMAIN, address(oldApp))
        );
    }

    function _ok(address target, bytes memory data) internal returns (bytes memory ret) {
        bool ok;
        (ok, ret) = target.call(data);
        assertTrue(ok, "wave-1 call failed");
    }

    function _caKey() internal pure returns (bytes memory key) {
        key = new bytes(65);
        key[0] = 0x04;
        key[1] = 0x01;
    }

    /// Between an upgrade that did not initialise v2 and the owner's `initializeV2`, no one can
    /// take the proxy over with the fresh-proxy initializer.
    function test_RevertWhen_AStrangerInitializesAnUpgradedProxy() public {
        KmsRegistry registryV2 = new KmsRegistry();
        _govern(
            address(oldRegistry),
            abi.encodeCall(UUPSUpgradeable.upgradeToAndCall, (address(registryV2), "")),
            "Upgrade without initializing v2"
        );
        vm.prank(stranger);
        vm.expectRevert(Initializable.InvalidInitialization.selector);
        oldRegistry.initialize(stranger, address(appImplementation), true, 0);
        vm.prank(stranger);
        vm.expectRevert(
            abi.encodeWithSelector(OwnableUpgradeable.OwnableUnauthorizedAccount.selector, stranger)
        );
        oldRegistry.initializeV2(0);
        assertEq(oldRegistry.owner(), address(timelock));
    }

    function test_UpgradeFromWave1PreservesState() public {
        KmsRegistry registryV2 = new KmsRegistry();
        App appV2 = new App(address(oldRegistry));
        DomainRegistry domainsV2 = new DomainRegistry(oldRegistry);

        _govern(
            address(oldRegistry),
            abi.encodeCall(
                UUPSUpgradeable.upgradeToAndCall,
                (address(registryV2), abi.encodeCall(KmsRegistry.initializeV2, (MIN_NOTICE)))
            ),
            "Upgrade the KMS registry to v2"
        );
        _govern(
            address(oldRegistry), abi.encodeCall(KmsRegistry.setAppImplementation, (address(appV2))), "App v2"
        );
        _govern(
            address(oldDomains),
            abi.encodeCall(UUPSUpgradeable.upgradeToAndCall, (address(domainsV2), "")),
            "Upgrade the domain registry to v2"
        );
        vm.prank(appOwner);
        oldApp.upgradeToAndCall(address(appV2), "");

        // The registry kept everything.
        assertEq(oldRegistry.owner(), address(timelock));
        assertEq(oldRegistry.minNoticePeriod(), MIN_NOTICE);
        assertTrue(oldRegistry.isOsImageAllowed(OS_IMAGE));
        assertEq(oldRegistry.osImageProvenance(OS_IMAGE), keccak256(abi.encode(_provenance("os-1.0"))));
        assertTrue(oldRegistry.isKmsMeasurementAllowed(KMS_MR));
        assertTrue(oldRegistry.isKmsDeviceAllowed(KMS_DEVICE));
        IKmsRegistry.KmsNode memory record = oldRegistry.kmsNode(node);
        assertTrue(record.active);
        assertEq(record.onboardedBy, address(timelock));
        assertEq(record.committedThrough, 5);
        assertEq(record.mrAggregated, KMS_MR);
        assertEq(record.deviceId, KMS_DEVICE);
        assertFalse(record.removedByGovernance);
        (address signer, bytes memory ca, uint64 generation) = oldRegistry.kmsRootKeys();
        assertEq(signer, node);
        assertEq(ca, _caKey());
        assertEq(generation, 1);
        assertTrue(oldRegistry.allowSimulatedTee());
        assertEq(uint8(oldRegistry.appKind(address(oldApp))), uint8(IKmsRegistry.AppKind.Factory));
        // The v2 initializer cannot run again.
        vm.prank(address(timelock));
        vm.expectRevert(Initializable.InvalidInitialization.selector);
        oldRegistry.initializeV2(0);

        // The app kept everything; what it allowed before is effective (it was already).
        assertTrue(oldApp.isComposeHashAllowed(COMPOSE_HASH));
        assertEq(oldApp.composeHashProvenance(COMPOSE_HASH), keccak256(abi.encode(_provenance("v1"))));
        assertEq(oldApp.composeHashEffectiveAt(COMPOSE_HASH), 0);
        assertTrue(oldApp.isDeviceAllowed(DEVICE));
        assertEq(oldApp.allowedTeeKinds(), TDX | SNP);
        assertTrue(oldApp.requireUpToDateTcb());
        assertFalse(oldApp.anyDevice());
        assertEq(oldApp.keyGeneration(), 1);
        assertEq(oldApp.owner(), appOwner);
        assertEq(oldApp.noticePeriod(), 0);

        // The wave-1 binding is now a claim, released like any other.
        assertTrue(oldDomains.isClaimed(DOMAIN, address(oldApp)));
        vm.prank(appOwner);
        oldDomains.releaseClaim(DOMAIN, address(oldApp));
        assertFalse(oldDomains.isClaimed(DOMAIN, address(oldApp)));

        // Wave-1 OS images carry no measurements: boots are refused until governance registers them.
        BootInfo memory boot = _boot(address(oldApp));
        (bool allowed, string memory reason) = oldRegistry.isAppAllowed(boot);
        assertFalse(allowed);
        assertEq(reason, "os measurement not allowed");
        _govern(address(oldRegistry), abi.encodeCall(KmsRegistry.removeOsImage, (OS_IMAGE)), "Drop os 1.0");
        _govern(
            address(oldRegistry),
            abi.encodeCall(KmsRegistry.addOsImage, (OS_IMAGE, _provenance("os-1.0"), _osMeasurements())),
            "Register os 1.0 with its measurements"
        );
        vm.warp(block.timestamp + MIN_NOTICE);
        (allowed, reason) = oldRegistry.isAppAllowed(boot);
        assertTrue(allowed, reason);

        // A loosening on the upgraded app waits at least the registry's minimum (its own period is 0).
        vm.prank(appOwner);
        oldApp.addComposeHash(keccak256("v2"), _provenance("v2"));
        assertEq(oldApp.composeHashEffectiveAt(keccak256("v2")), block.timestamp + MIN_NOTICE);
    }
}
