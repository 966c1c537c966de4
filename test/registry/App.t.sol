// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {BootInfo, Provenance, TcbStatus, TeeKind} from "../../contracts/interfaces/BootPolicy.sol";
import {IApp} from "../../contracts/interfaces/IApp.sol";
import {IKmsRegistry} from "../../contracts/interfaces/IKmsRegistry.sol";
import {ProvenanceLib} from "../../contracts/libraries/ProvenanceLib.sol";
import {App} from "../../contracts/registry/App.sol";
import {KmsRegistry} from "../../contracts/registry/KmsRegistry.sol";
import {CovenantFixture} from "../utils/CovenantFixture.sol";
import {
    Ownable2StepUpgradeable
} from "@openzeppelin/contracts-upgradeable/access/Ownable2StepUpgradeable.sol";
import {OwnableUpgradeable} from "@openzeppelin/contracts-upgradeable/access/OwnableUpgradeable.sol";
import {IERC1967} from "@openzeppelin/contracts/interfaces/IERC1967.sol";
import {ERC1967Proxy} from "@openzeppelin/contracts/proxy/ERC1967/ERC1967Proxy.sol";
import {ERC1967Utils} from "@openzeppelin/contracts/proxy/ERC1967/ERC1967Utils.sol";
import {Initializable} from "@openzeppelin/contracts/proxy/utils/Initializable.sol";
import {UUPSUpgradeable} from "@openzeppelin/contracts/proxy/utils/UUPSUpgradeable.sol";
import {Vm} from "forge-std/Vm.sol";

/// One factory app created through the registry, as in production, plus values and helpers.
abstract contract AppTestBase is CovenantFixture {
    // keccak256, not sha256: a sha256 constant is re-evaluated through the precompile at every use,
    // and that call would consume a pending vm.prank or vm.expectRevert.
    bytes32 internal constant COMPOSE_HASH_2 = keccak256("app-compose v2");
    bytes32 internal constant DEVICE_2 = keccak256("device-2");
    /// The fixture's sha256 constants, evaluated once for the same reason.
    bytes32 internal immutable COMPOSE_HASH_1 = COMPOSE_HASH;
    bytes32 internal immutable DEVICE_1 = DEVICE;
    uint8 internal constant ALL_KINDS = TDX | SNP | SIMULATED;

    App internal app;
    address internal newOwner = makeAddr("newOwner");

    function setUp() public virtual override {
        super.setUp();
        app = _createApp();
    }

    /// The address the registry's next `createApp` deploys to.
    function _nextAppAddress() internal view returns (address) {
        return vm.computeCreateAddress(address(registry), vm.getNonce(address(registry)));
    }

    function _digest(Provenance memory p) internal pure returns (bytes32) {
        return keccak256(abi.encode(p));
    }

    function _unauthorized(address caller) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(OwnableUpgradeable.OwnableUnauthorizedAccount.selector, caller);
    }

    /// Governance (the Timelock) points the registry at a fresh App implementation.
    function _governNewImplementation() internal returns (App next) {
        next = new App(address(registry));
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.setAppImplementation, (address(next))));
    }

    function _implementationOf(address proxy) internal view returns (address) {
        return address(uint160(uint256(vm.load(proxy, ERC1967Utils.IMPLEMENTATION_SLOT))));
    }

    function _emptyInit(uint8 mask) internal pure returns (IApp.AppInit memory init) {
        init.composeHashes = new bytes32[](0);
        init.provenances = new Provenance[](0);
        init.devices = new bytes32[](0);
        init.allowedTeeKinds = mask;
        init.noticePeriod = MIN_NOTICE;
    }

    /// When a loosening made now by an app with the fixture's notice period takes effect.
    function _noticeEnd() internal view returns (uint64) {
        return uint64(block.timestamp) + MIN_NOTICE;
    }

    function _settings(uint8 kinds, bool anyDevice, bool requireTcb, bool requireGpu)
        internal
        pure
        returns (IApp.Settings memory)
    {
        return IApp.Settings({
            allowedTeeKinds: kinds,
            anyDevice: anyDevice,
            requireUpToDateTcb: requireTcb,
            requireGpu: requireGpu
        });
    }

    /// The settings of the fixture's app: every known TEE kind, the device list, no requirement.
    function _initialSettings() internal pure returns (IApp.Settings memory) {
        return _settings(ALL_KINDS, false, false, false);
    }

    function _assertSettings(IApp.Settings memory got, IApp.Settings memory want, string memory label)
        internal
        pure
    {
        assertEq(got.allowedTeeKinds, want.allowedTeeKinds, string.concat(label, ": allowedTeeKinds"));
        assertEq(got.anyDevice, want.anyDevice, string.concat(label, ": anyDevice"));
        assertEq(
            got.requireUpToDateTcb, want.requireUpToDateTcb, string.concat(label, ": requireUpToDateTcb")
        );
        assertEq(got.requireGpu, want.requireGpu, string.concat(label, ": requireGpu"));
    }

    /// `target`'s settings() view: in force now, scheduled, and when the scheduled ones take effect.
    function _assertSettingsView(
        App target,
        IApp.Settings memory current,
        IApp.Settings memory scheduled,
        uint64 effectiveAt
    ) internal view {
        (IApp.Settings memory gotCurrent, IApp.Settings memory gotScheduled, uint64 gotEffectiveAt) =
            target.settings();
        _assertSettings(gotCurrent, current, "current");
        _assertSettings(gotScheduled, scheduled, "scheduled");
        assertEq(gotEffectiveAt, effectiveAt, "effectiveAt");
        _assertSettingsInForce(target, current);
    }

    /// The single-setting views answer with the settings in force now.
    function _assertSettingsInForce(App target, IApp.Settings memory current) internal view {
        assertEq(target.allowedTeeKinds(), current.allowedTeeKinds, "allowedTeeKinds()");
        assertEq(target.anyDevice(), current.anyDevice, "anyDevice()");
        assertEq(target.requireUpToDateTcb(), current.requireUpToDateTcb, "requireUpToDateTcb()");
        assertEq(target.requireGpu(), current.requireGpu, "requireGpu()");
    }

    function _expectSettingsScheduled(
        App target,
        IApp.Settings memory before,
        IApp.Settings memory scheduled,
        uint64 effectiveAt
    ) internal {
        vm.expectEmit(address(target));
        emit IApp.SettingsScheduled(before, scheduled, effectiveAt);
    }

    /// The app's own verdict on `b`: allowed when `expected` is empty, else denied with `expected`.
    function _expectVerdict(App target, BootInfo memory b, string memory expected) internal view {
        (bool allowed, string memory reason) = target.isAppAllowed(b);
        assertEq(reason, expected);
        assertEq(allowed, bytes(expected).length == 0, reason);
    }
}

// =================================================================================================
// initialize (through createApp)

contract AppInitializeTest is AppTestBase {
    function test_InitialState() public view {
        assertEq(app.owner(), appOwner);
        assertEq(app.pendingOwner(), address(0));
        assertEq(app.registry(), address(registry));
        assertEq(app.keyGeneration(), 1);
        assertEq(app.allowedTeeKinds(), ALL_KINDS);
        assertFalse(app.anyDevice());
        assertFalse(app.requireUpToDateTcb());
        assertFalse(app.requireGpu());
        assertFalse(app.frozen());
        assertTrue(app.isComposeHashAllowed(COMPOSE_HASH_1));
        assertEq(app.composeHashProvenance(COMPOSE_HASH_1), _digest(_provenance("v1")));
        assertFalse(app.isComposeHashAllowed(COMPOSE_HASH_2));
        assertTrue(app.isDeviceAllowed(DEVICE_1));
        assertFalse(app.isDeviceAllowed(DEVICE_2));
        assertEq(uint8(registry.appKind(address(app))), uint8(IKmsRegistry.AppKind.Factory));
        assertEq(_implementationOf(address(app)), address(appImplementation));
        // The initial settings took effect at creation (setUp ran in this block).
        assertEq(app.noticePeriod(), MIN_NOTICE);
        assertEq(app.composeHashEffectiveAt(COMPOSE_HASH_1), block.timestamp);
        assertEq(app.composeHashEffectiveAt(COMPOSE_HASH_2), 0);
        assertEq(app.deviceEffectiveAt(DEVICE_1), block.timestamp);
        assertEq(app.deviceEffectiveAt(DEVICE_2), 0);
        _assertSettingsView(app, _initialSettings(), _initialSettings(), uint64(block.timestamp));
    }

    /// Every initial setting is announced by the event its setter emits, in initialisation order.
    function test_InitialEvents() public {
        IApp.AppInit memory init = _appInit();
        init.composeHashes = new bytes32[](2);
        (init.composeHashes[0], init.composeHashes[1]) = (COMPOSE_HASH_1, COMPOSE_HASH_2);
        init.provenances = new Provenance[](2);
        (init.provenances[0], init.provenances[1]) = (_provenance("v1"), _provenance("v2"));
        init.devices = new bytes32[](2);
        (init.devices[0], init.devices[1]) = (DEVICE_1, DEVICE_2);
        init.anyDevice = true;
        init.allowedTeeKinds = TDX | SNP;
        init.requireUpToDateTcb = true;
        init.requireGpu = true;
        init.noticePeriod = 7 days;
        address expected = _nextAppAddress();
        uint64 now_ = uint64(block.timestamp);
        IApp.Settings memory initial = _settings(TDX | SNP, true, true, true);

        vm.expectEmit(expected);
        emit IERC1967.Upgraded(address(appImplementation));
        vm.expectEmit(expected);
        emit OwnableUpgradeable.OwnershipTransferred(address(0), appOwner);
        vm.expectEmit(expected);
        emit IApp.KeyGenerationBumped(1);
        vm.expectEmit(expected);
        emit IApp.NoticePeriodSet(7 days);
        // The initial settings, compose hashes and devices are effective at once.
        vm.expectEmit(expected);
        emit IApp.SettingsScheduled(initial, initial, now_);
        vm.expectEmit(expected);
        emit IApp.ComposeHashAdded(COMPOSE_HASH_1, _digest(_provenance("v1")), _provenance("v1"), now_);
        vm.expectEmit(expected);
        emit IApp.ComposeHashAdded(COMPOSE_HASH_2, _digest(_provenance("v2")), _provenance("v2"), now_);
        vm.expectEmit(expected);
        emit IApp.DeviceAdded(DEVICE_1, now_);
        vm.expectEmit(expected);
        emit IApp.DeviceAdded(DEVICE_2, now_);
        vm.expectEmit(expected);
        emit Initializable.Initialized(1);
        vm.expectEmit(address(registry));
        emit IKmsRegistry.AppCreated(expected, appOwner, address(appImplementation));
        vm.prank(stranger);
        App created = App(registry.createApp(appOwner, init));

        assertEq(address(created), expected);
        assertTrue(created.anyDevice());
        assertTrue(created.requireUpToDateTcb());
        assertTrue(created.requireGpu());
        assertEq(created.allowedTeeKinds(), TDX | SNP);
        assertEq(created.composeHashProvenance(COMPOSE_HASH_2), _digest(_provenance("v2")));
        assertTrue(created.isDeviceAllowed(DEVICE_2));
        assertEq(created.noticePeriod(), 7 days);
        assertEq(created.composeHashEffectiveAt(COMPOSE_HASH_2), now_);
        assertEq(created.deviceEffectiveAt(DEVICE_2), now_);
        _assertSettingsView(created, initial, initial, now_);
    }

    /// Without compose hashes or devices: exactly the proxy, ownership, key generation, notice
    /// period, settings, initialisation and registry events.
    function test_MinimalInitEmitsOnlyRequiredEvents() public {
        vm.recordLogs();
        App created = App(registry.createApp(appOwner, _emptyInit(TDX)));
        Vm.Log[] memory logs = vm.getRecordedLogs();

        assertEq(logs.length, 7);
        assertEq(logs[0].topics[0], IERC1967.Upgraded.selector);
        assertEq(logs[1].topics[0], OwnableUpgradeable.OwnershipTransferred.selector);
        assertEq(logs[2].topics[0], IApp.KeyGenerationBumped.selector);
        assertEq(logs[2].data, abi.encode(uint64(1)));
        assertEq(logs[3].topics[0], IApp.NoticePeriodSet.selector);
        assertEq(logs[3].data, abi.encode(MIN_NOTICE));
        assertEq(logs[4].topics[0], IApp.SettingsScheduled.selector);
        IApp.Settings memory initial = _settings(TDX, false, false, false);
        assertEq(logs[4].data, abi.encode(initial, initial, uint64(block.timestamp)));
        assertEq(logs[5].topics[0], Initializable.Initialized.selector);
        assertEq(logs[6].topics[0], IKmsRegistry.AppCreated.selector);
        assertEq(logs[6].emitter, address(registry));
        assertEq(created.keyGeneration(), 1);
        assertFalse(created.isComposeHashAllowed(COMPOSE_HASH_1));
        assertFalse(created.isDeviceAllowed(DEVICE_1));
    }

    /// A new app has no users to warn: its initial compose hashes, devices and settings answer boots
    /// in the block that created it.
    function test_InitialSettingsAreEffectiveAtOnce() public {
        IApp.AppInit memory init = _appInit();
        init.anyDevice = true;
        init.allowedTeeKinds = SNP;
        App created = App(registry.createApp(appOwner, init));
        BootInfo memory b = _boot(address(created));
        b.teeKind = TeeKind.SevSnp;
        b.deviceId = DEVICE_2;
        _expectVerdict(created, b, "");
        b.teeKind = TeeKind.Tdx;
        _expectVerdict(created, b, "tee kind not allowed");
    }

    /// The notice period may equal the registry's minimum or exceed it.
    function test_NoticePeriodAtOrAboveTheMinimum() public {
        IApp.AppInit memory init = _emptyInit(TDX);
        init.noticePeriod = MIN_NOTICE;
        assertEq(App(registry.createApp(appOwner, init)).noticePeriod(), MIN_NOTICE);
        init.noticePeriod = 30 days;
        assertEq(App(registry.createApp(appOwner, init)).noticePeriod(), 30 days);
    }

    function test_RevertWhen_NoticePeriodBelowTheMinimum() public {
        IApp.AppInit memory init = _emptyInit(TDX);
        init.noticePeriod = MIN_NOTICE - 1;
        vm.expectRevert(
            abi.encodeWithSelector(IApp.AppNoticePeriodTooShort.selector, MIN_NOTICE - 1, MIN_NOTICE)
        );
        registry.createApp(appOwner, init);
        init.noticePeriod = 0;
        vm.expectRevert(abi.encodeWithSelector(IApp.AppNoticePeriodTooShort.selector, 0, MIN_NOTICE));
        registry.createApp(appOwner, init);
    }

    function test_RevertWhen_NoticePeriodAboveTheMaximumAtCreation() public {
        IApp.AppInit memory init = _emptyInit(TDX);
        init.noticePeriod = appImplementation.MAX_NOTICE_PERIOD() + 1;
        vm.expectRevert(abi.encodeWithSelector(IApp.AppNoticePeriodTooLong.selector, init.noticePeriod));
        registry.createApp(appOwner, init);
    }

    /// Creation reads the registry's minimum at that time: once governance raises it, a notice
    /// period that used to suffice is refused.
    function test_RevertWhen_NoticePeriodBelowARaisedMinimum() public {
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.setMinNoticePeriod, (3 days)));
        IApp.AppInit memory init = _appInit();
        vm.expectRevert(abi.encodeWithSelector(IApp.AppNoticePeriodTooShort.selector, MIN_NOTICE, 3 days));
        registry.createApp(appOwner, init);
        init.noticePeriod = 3 days;
        assertEq(App(registry.createApp(appOwner, init)).noticePeriod(), 3 days);
    }

    function test_AnyoneMayCreateAnAppForAnyOwner() public {
        IApp.AppInit memory init = _appInit();
        vm.prank(stranger);
        App created = App(registry.createApp(newOwner, init));
        assertEq(created.owner(), newOwner);
    }

    function test_RevertWhen_InitializeCalledOnTheImplementation() public {
        IApp.AppInit memory init = _appInit();
        vm.expectRevert(Initializable.InvalidInitialization.selector);
        appImplementation.initialize(appOwner, init);

        // Not even the registry can initialise the implementation itself.
        vm.prank(address(registry));
        vm.expectRevert(Initializable.InvalidInitialization.selector);
        appImplementation.initialize(appOwner, init);
    }

    function test_RevertWhen_InitializeCalledAgainOnAProxy() public {
        IApp.AppInit memory init = _appInit();
        vm.prank(address(registry));
        vm.expectRevert(Initializable.InvalidInitialization.selector);
        app.initialize(stranger, init);

        vm.prank(appOwner);
        vm.expectRevert(Initializable.InvalidInitialization.selector);
        app.initialize(stranger, init);

        assertEq(app.owner(), appOwner);
    }

    function test_RevertWhen_ProxyDeployedByAnotherAccount() public {
        bytes memory data = abi.encodeCall(App.initialize, (stranger, _appInit()));
        vm.expectRevert(abi.encodeWithSelector(IApp.AppNotCreatedByRegistry.selector, address(this)));
        new ERC1967Proxy(address(appImplementation), data);

        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(IApp.AppNotCreatedByRegistry.selector, stranger));
        new ERC1967Proxy(address(appImplementation), data);
    }

    /// A proxy deployed without initialisation cannot be initialised later by anyone but the registry.
    function test_RevertWhen_UninitialisedProxyInitialisedByAnotherAccount() public {
        // OpenZeppelin's proxy refuses empty data; a view call leaves the app uninitialised.
        bytes memory noop = abi.encodeCall(App.keyGeneration, ());
        App bare = App(address(new ERC1967Proxy(address(appImplementation), noop)));
        assertEq(bare.keyGeneration(), 0);
        IApp.AppInit memory init = _appInit();
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(IApp.AppNotCreatedByRegistry.selector, stranger));
        bare.initialize(stranger, init);
        assertEq(bare.owner(), address(0));
    }

    function test_RevertWhen_FewerProvenancesThanComposeHashes() public {
        IApp.AppInit memory init = _appInit();
        init.provenances = new Provenance[](0);
        vm.expectRevert(abi.encodeWithSelector(IApp.AppProvenanceCountMismatch.selector, 1, 0));
        registry.createApp(appOwner, init);
    }

    function test_RevertWhen_MoreProvenancesThanComposeHashes() public {
        IApp.AppInit memory init = _appInit();
        init.provenances = new Provenance[](2);
        (init.provenances[0], init.provenances[1]) = (_provenance("v1"), _provenance("v2"));
        vm.expectRevert(abi.encodeWithSelector(IApp.AppProvenanceCountMismatch.selector, 1, 2));
        registry.createApp(appOwner, init);
    }

    function test_RevertWhen_ProvenancesWithoutComposeHashes() public {
        IApp.AppInit memory init = _emptyInit(TDX);
        init.provenances = new Provenance[](1);
        init.provenances[0] = _provenance("v1");
        vm.expectRevert(abi.encodeWithSelector(IApp.AppProvenanceCountMismatch.selector, 0, 1));
        registry.createApp(appOwner, init);
    }

    function test_RevertWhen_InitialTeeKindsZero() public {
        vm.expectRevert(abi.encodeWithSelector(IApp.AppInvalidTeeKinds.selector, uint8(0)));
        registry.createApp(appOwner, _emptyInit(0));
    }

    function test_RevertWhen_InitialTeeKindsIncludeUnknown() public {
        vm.expectRevert(abi.encodeWithSelector(IApp.AppInvalidTeeKinds.selector, uint8(0x0f)));
        registry.createApp(appOwner, _emptyInit(0x0f));
    }

    function test_RevertWhen_InitialTeeKindsIncludeUndefinedBits() public {
        vm.expectRevert(abi.encodeWithSelector(IApp.AppInvalidTeeKinds.selector, uint8(0x12)));
        registry.createApp(appOwner, _emptyInit(0x12));
    }

    function test_RevertWhen_InitialOwnerIsZero() public {
        IApp.AppInit memory init = _appInit();
        vm.expectRevert(abi.encodeWithSelector(OwnableUpgradeable.OwnableInvalidOwner.selector, address(0)));
        registry.createApp(address(0), init);
    }

    function test_RevertWhen_InitialComposeHashIsZero() public {
        IApp.AppInit memory init = _appInit();
        init.composeHashes[0] = bytes32(0);
        vm.expectRevert(IApp.AppZeroValue.selector);
        registry.createApp(appOwner, init);
    }

    function test_RevertWhen_InitialComposeHashRepeated() public {
        IApp.AppInit memory init = _appInit();
        init.composeHashes = new bytes32[](2);
        (init.composeHashes[0], init.composeHashes[1]) = (COMPOSE_HASH_1, COMPOSE_HASH_1);
        init.provenances = new Provenance[](2);
        (init.provenances[0], init.provenances[1]) = (_provenance("v1"), _provenance("v2"));
        vm.expectRevert(abi.encodeWithSelector(IApp.AppComposeHashAlreadyAllowed.selector, COMPOSE_HASH_1));
        registry.createApp(appOwner, init);
    }

    function test_RevertWhen_InitialProvenanceOutOfBounds() public {
        IApp.AppInit memory init = _appInit();
        init.provenances[0].sourceCommit = "";
        vm.expectRevert(abi.encodeWithSelector(ProvenanceLib.ProvenanceSourceCommitLength.selector, 0));
        registry.createApp(appOwner, init);
    }

    function test_RevertWhen_InitialDeviceIsZero() public {
        IApp.AppInit memory init = _appInit();
        init.devices[0] = bytes32(0);
        vm.expectRevert(IApp.AppZeroValue.selector);
        registry.createApp(appOwner, init);
    }

    function test_RevertWhen_InitialDeviceRepeated() public {
        IApp.AppInit memory init = _appInit();
        init.devices = new bytes32[](2);
        (init.devices[0], init.devices[1]) = (DEVICE_1, DEVICE_1);
        vm.expectRevert(abi.encodeWithSelector(IApp.AppDeviceAlreadyAllowed.selector, DEVICE_1));
        registry.createApp(appOwner, init);
    }
}

// =================================================================================================
// addComposeHash / removeComposeHash

contract AppComposeHashTest is AppTestBase {
    function test_AddComposeHash() public {
        Provenance memory p = _provenance("v2");
        vm.expectEmit(address(app));
        emit IApp.ComposeHashAdded(COMPOSE_HASH_2, _digest(p), p, _noticeEnd());
        vm.prank(appOwner);
        app.addComposeHash(COMPOSE_HASH_2, p);

        assertTrue(app.isComposeHashAllowed(COMPOSE_HASH_2));
        assertEq(app.composeHashProvenance(COMPOSE_HASH_2), _digest(p));
        assertEq(app.composeHashEffectiveAt(COMPOSE_HASH_2), _noticeEnd());
        assertTrue(app.isComposeHashAllowed(COMPOSE_HASH_1));
    }

    function test_AddComposeHashWithoutArtifactDigests() public {
        Provenance memory p = _provenance("v2");
        p.artifactDigests = new bytes32[](0);
        vm.expectEmit(address(app));
        emit IApp.ComposeHashAdded(COMPOSE_HASH_2, _digest(p), p, _noticeEnd());
        vm.prank(appOwner);
        app.addComposeHash(COMPOSE_HASH_2, p);
        assertEq(app.composeHashProvenance(COMPOSE_HASH_2), _digest(p));
    }

    function test_AddComposeHashOne() public {
        bytes32 one = bytes32(uint256(1));
        Provenance memory p = _provenance("one");
        vm.expectEmit(address(app));
        emit IApp.ComposeHashAdded(one, _digest(p), p, _noticeEnd());
        vm.prank(appOwner);
        app.addComposeHash(one, p);
        assertTrue(app.isComposeHashAllowed(one));
    }

    function test_AddComposeHashAllOnes() public {
        bytes32 allOnes = bytes32(type(uint256).max);
        Provenance memory p = _provenance("max");
        vm.expectEmit(address(app));
        emit IApp.ComposeHashAdded(allOnes, _digest(p), p, _noticeEnd());
        vm.prank(appOwner);
        app.addComposeHash(allOnes, p);
        assertTrue(app.isComposeHashAllowed(allOnes));
        assertEq(app.composeHashProvenance(allOnes), _digest(p));
    }

    function test_RemoveComposeHash() public {
        vm.expectEmit(address(app));
        emit IApp.ComposeHashRemoved(COMPOSE_HASH_1);
        vm.prank(appOwner);
        app.removeComposeHash(COMPOSE_HASH_1);

        assertFalse(app.isComposeHashAllowed(COMPOSE_HASH_1));
        assertEq(app.composeHashProvenance(COMPOSE_HASH_1), bytes32(0));
        assertEq(app.composeHashEffectiveAt(COMPOSE_HASH_1), 0);
    }

    /// A removed hash may be added again, with a new provenance; it waits out a fresh notice
    /// period even though it was effective before.
    function test_ReAddComposeHashAfterRemoval() public {
        vm.startPrank(appOwner);
        app.removeComposeHash(COMPOSE_HASH_1);
        Provenance memory p = _provenance("rebuilt");
        vm.expectEmit(address(app));
        emit IApp.ComposeHashAdded(COMPOSE_HASH_1, _digest(p), p, _noticeEnd());
        app.addComposeHash(COMPOSE_HASH_1, p);
        vm.stopPrank();
        assertEq(app.composeHashProvenance(COMPOSE_HASH_1), _digest(p));
        assertEq(app.composeHashEffectiveAt(COMPOSE_HASH_1), _noticeEnd());
        _expectVerdict(app, _boot(address(app)), "compose hash not yet effective");
    }

    function test_RevertWhen_AddComposeHashByNonOwner() public {
        Provenance memory p = _provenance("v2");
        vm.prank(stranger);
        vm.expectRevert(_unauthorized(stranger));
        app.addComposeHash(COMPOSE_HASH_2, p);
    }

    /// The owner check comes first, even for an invalid hash.
    function test_RevertWhen_AddZeroComposeHashByNonOwner() public {
        Provenance memory p = _provenance("v2");
        vm.prank(stranger);
        vm.expectRevert(_unauthorized(stranger));
        app.addComposeHash(bytes32(0), p);
    }

    function test_RevertWhen_AddZeroComposeHash() public {
        Provenance memory p = _provenance("zero");
        vm.prank(appOwner);
        vm.expectRevert(IApp.AppZeroValue.selector);
        app.addComposeHash(bytes32(0), p);
    }

    function test_RevertWhen_AddComposeHashAlreadyAllowed() public {
        Provenance memory p = _provenance("again");
        vm.prank(appOwner);
        vm.expectRevert(abi.encodeWithSelector(IApp.AppComposeHashAlreadyAllowed.selector, COMPOSE_HASH_1));
        app.addComposeHash(COMPOSE_HASH_1, p);
    }

    function test_RevertWhen_AddComposeHashWithEmptySourceUrl() public {
        Provenance memory p = _provenance("v2");
        p.sourceUrl = "";
        vm.prank(appOwner);
        vm.expectRevert(abi.encodeWithSelector(ProvenanceLib.ProvenanceSourceUrlLength.selector, 0));
        app.addComposeHash(COMPOSE_HASH_2, p);
    }

    function test_RevertWhen_AddComposeHashWithTooLongSourceUrl() public {
        Provenance memory p = _provenance("v2");
        p.sourceUrl = string(new bytes(513));
        vm.prank(appOwner);
        vm.expectRevert(abi.encodeWithSelector(ProvenanceLib.ProvenanceSourceUrlLength.selector, 513));
        app.addComposeHash(COMPOSE_HASH_2, p);
    }

    function test_RevertWhen_AddComposeHashWithEmptySourceCommit() public {
        Provenance memory p = _provenance("v2");
        p.sourceCommit = "";
        vm.prank(appOwner);
        vm.expectRevert(abi.encodeWithSelector(ProvenanceLib.ProvenanceSourceCommitLength.selector, 0));
        app.addComposeHash(COMPOSE_HASH_2, p);
    }

    function test_RevertWhen_AddComposeHashWithTooLongSourceCommit() public {
        Provenance memory p = _provenance("v2");
        p.sourceCommit = string(new bytes(129));
        vm.prank(appOwner);
        vm.expectRevert(abi.encodeWithSelector(ProvenanceLib.ProvenanceSourceCommitLength.selector, 129));
        app.addComposeHash(COMPOSE_HASH_2, p);
    }

    function test_RevertWhen_AddComposeHashWithTooManyDigests() public {
        Provenance memory p = _provenance("v2");
        p.artifactDigests = new bytes32[](33);
        vm.prank(appOwner);
        vm.expectRevert(abi.encodeWithSelector(ProvenanceLib.ProvenanceTooManyDigests.selector, 33));
        app.addComposeHash(COMPOSE_HASH_2, p);
    }

    function test_RevertWhen_AddComposeHashWithZeroDigest() public {
        Provenance memory p = _provenance("v2");
        p.artifactDigests = new bytes32[](2);
        p.artifactDigests[0] = sha256("image");
        vm.prank(appOwner);
        vm.expectRevert(abi.encodeWithSelector(ProvenanceLib.ProvenanceZeroDigest.selector, 1));
        app.addComposeHash(COMPOSE_HASH_2, p);
    }

    function test_RevertWhen_RemoveComposeHashByNonOwner() public {
        vm.prank(stranger);
        vm.expectRevert(_unauthorized(stranger));
        app.removeComposeHash(COMPOSE_HASH_1);
    }

    function test_RevertWhen_RemoveComposeHashNotAllowed() public {
        vm.prank(appOwner);
        vm.expectRevert(abi.encodeWithSelector(IApp.AppComposeHashNotAllowed.selector, COMPOSE_HASH_2));
        app.removeComposeHash(COMPOSE_HASH_2);
    }

    function test_RevertWhen_RemoveZeroComposeHash() public {
        vm.prank(appOwner);
        vm.expectRevert(abi.encodeWithSelector(IApp.AppComposeHashNotAllowed.selector, bytes32(0)));
        app.removeComposeHash(bytes32(0));
    }

    function test_RevertWhen_RemoveComposeHashTwice() public {
        vm.startPrank(appOwner);
        app.removeComposeHash(COMPOSE_HASH_1);
        vm.expectRevert(abi.encodeWithSelector(IApp.AppComposeHashNotAllowed.selector, COMPOSE_HASH_1));
        app.removeComposeHash(COMPOSE_HASH_1);
        vm.stopPrank();
    }

    /// Every non-zero value, the edges 1 and all-ones included, is accepted; zero alone is refused.
    function testFuzz_AddComposeHashRejectsOnlyZero(uint256 raw) public {
        App empty = App(registry.createApp(appOwner, _emptyInit(TDX)));
        bytes32 composeHash = bytes32(raw);
        Provenance memory p = _provenance("fuzz");
        vm.prank(appOwner);
        if (raw == 0) {
            vm.expectRevert(IApp.AppZeroValue.selector);
        } else {
            vm.expectEmit(address(empty));
            emit IApp.ComposeHashAdded(composeHash, _digest(p), p, _noticeEnd());
        }
        empty.addComposeHash(composeHash, p);
        assertEq(empty.isComposeHashAllowed(composeHash), raw != 0);
        assertEq(empty.composeHashProvenance(composeHash), raw == 0 ? bytes32(0) : _digest(p));
    }

    /// Add then remove returns the app to where it was, whatever the hash and provenance.
    function testFuzz_AddRemoveRoundTrip(uint256 raw, uint256 commitSeed, uint8 digestCount) public {
        App empty = App(registry.createApp(appOwner, _emptyInit(TDX)));
        bytes32 composeHash = bytes32(bound(raw, 1, type(uint256).max));
        Provenance memory p = _provenance(vm.toString(commitSeed));
        p.artifactDigests = new bytes32[](bound(digestCount, 0, 32));
        for (uint256 i = 0; i < p.artifactDigests.length; ++i) {
            p.artifactDigests[i] = keccak256(abi.encode(commitSeed, i)) | bytes32(uint256(1));
        }

        vm.startPrank(appOwner);
        vm.expectEmit(address(empty));
        emit IApp.ComposeHashAdded(composeHash, _digest(p), p, _noticeEnd());
        empty.addComposeHash(composeHash, p);
        assertTrue(empty.isComposeHashAllowed(composeHash));
        assertEq(empty.composeHashProvenance(composeHash), _digest(p));
        vm.expectRevert(abi.encodeWithSelector(IApp.AppComposeHashAlreadyAllowed.selector, composeHash));
        empty.addComposeHash(composeHash, p);

        vm.expectEmit(address(empty));
        emit IApp.ComposeHashRemoved(composeHash);
        empty.removeComposeHash(composeHash);
        assertFalse(empty.isComposeHashAllowed(composeHash));
        assertEq(empty.composeHashProvenance(composeHash), bytes32(0));
        vm.expectRevert(abi.encodeWithSelector(IApp.AppComposeHashNotAllowed.selector, composeHash));
        empty.removeComposeHash(composeHash);
        vm.stopPrank();
    }
}

// =================================================================================================
// addDevice / removeDevice

contract AppDeviceTest is AppTestBase {
    function test_AddDevice() public {
        vm.expectEmit(address(app));
        emit IApp.DeviceAdded(DEVICE_2, _noticeEnd());
        vm.prank(appOwner);
        app.addDevice(DEVICE_2);
        assertTrue(app.isDeviceAllowed(DEVICE_2));
        assertEq(app.deviceEffectiveAt(DEVICE_2), _noticeEnd());
        assertTrue(app.isDeviceAllowed(DEVICE_1));
    }

    function test_AddDeviceEdges() public {
        vm.startPrank(appOwner);
        vm.expectEmit(address(app));
        emit IApp.DeviceAdded(bytes32(uint256(1)), _noticeEnd());
        app.addDevice(bytes32(uint256(1)));
        vm.expectEmit(address(app));
        emit IApp.DeviceAdded(bytes32(type(uint256).max), _noticeEnd());
        app.addDevice(bytes32(type(uint256).max));
        vm.stopPrank();
        assertTrue(app.isDeviceAllowed(bytes32(uint256(1))));
        assertTrue(app.isDeviceAllowed(bytes32(type(uint256).max)));
    }

    function test_RemoveDevice() public {
        vm.expectEmit(address(app));
        emit IApp.DeviceRemoved(DEVICE_1);
        vm.prank(appOwner);
        app.removeDevice(DEVICE_1);
        assertFalse(app.isDeviceAllowed(DEVICE_1));
        assertEq(app.deviceEffectiveAt(DEVICE_1), 0);
    }

    function test_RevertWhen_AddDeviceByNonOwner() public {
        vm.prank(stranger);
        vm.expectRevert(_unauthorized(stranger));
        app.addDevice(DEVICE_2);
    }

    function test_RevertWhen_AddZeroDevice() public {
        vm.prank(appOwner);
        vm.expectRevert(IApp.AppZeroValue.selector);
        app.addDevice(bytes32(0));
    }

    function test_RevertWhen_AddDeviceAlreadyAllowed() public {
        vm.prank(appOwner);
        vm.expectRevert(abi.encodeWithSelector(IApp.AppDeviceAlreadyAllowed.selector, DEVICE_1));
        app.addDevice(DEVICE_1);
    }

    function test_RevertWhen_RemoveDeviceByNonOwner() public {
        vm.prank(stranger);
        vm.expectRevert(_unauthorized(stranger));
        app.removeDevice(DEVICE_1);
    }

    function test_RevertWhen_RemoveDeviceNotAllowed() public {
        vm.prank(appOwner);
        vm.expectRevert(abi.encodeWithSelector(IApp.AppDeviceNotAllowed.selector, DEVICE_2));
        app.removeDevice(DEVICE_2);
    }

    function test_RevertWhen_RemoveZeroDevice() public {
        vm.prank(appOwner);
        vm.expectRevert(abi.encodeWithSelector(IApp.AppDeviceNotAllowed.selector, bytes32(0)));
        app.removeDevice(bytes32(0));
    }

    function testFuzz_AddRemoveDeviceRoundTrip(uint256 raw) public {
        App empty = App(registry.createApp(appOwner, _emptyInit(TDX)));
        bytes32 deviceId = bytes32(bound(raw, 1, type(uint256).max));
        vm.startPrank(appOwner);
        vm.expectEmit(address(empty));
        emit IApp.DeviceAdded(deviceId, _noticeEnd());
        empty.addDevice(deviceId);
        assertTrue(empty.isDeviceAllowed(deviceId));
        vm.expectRevert(abi.encodeWithSelector(IApp.AppDeviceAlreadyAllowed.selector, deviceId));
        empty.addDevice(deviceId);

        vm.expectEmit(address(empty));
        emit IApp.DeviceRemoved(deviceId);
        empty.removeDevice(deviceId);
        assertFalse(empty.isDeviceAllowed(deviceId));
        vm.expectRevert(abi.encodeWithSelector(IApp.AppDeviceNotAllowed.selector, deviceId));
        empty.removeDevice(deviceId);
        vm.stopPrank();
    }
}

// =================================================================================================
// setAnyDevice / setAllowedTeeKinds / setRequireUpToDateTcb / setRequireGpu

contract AppSettingsTest is AppTestBase {
    /// Switching any-device on waits out the notice period; switching it off applies at once.
    function test_SetAnyDevice() public {
        IApp.Settings memory on = _settings(ALL_KINDS, true, false, false);
        uint64 effectiveAt = _noticeEnd();
        _expectSettingsScheduled(app, _initialSettings(), on, effectiveAt);
        vm.prank(appOwner);
        app.setAnyDevice(true);
        assertFalse(app.anyDevice());
        _assertSettingsView(app, _initialSettings(), on, effectiveAt);
        vm.warp(effectiveAt);
        assertTrue(app.anyDevice());
        _assertSettingsView(app, on, on, effectiveAt);

        _expectSettingsScheduled(app, _initialSettings(), _initialSettings(), uint64(block.timestamp));
        vm.prank(appOwner);
        app.setAnyDevice(false);
        assertFalse(app.anyDevice());
    }

    /// The device list is kept while any device is allowed.
    function test_SetAnyDeviceKeepsDeviceList() public {
        vm.startPrank(appOwner);
        app.setAnyDevice(true);
        app.setAnyDevice(false);
        vm.stopPrank();
        assertTrue(app.isDeviceAllowed(DEVICE_1));
    }

    function test_RevertWhen_SetAnyDeviceByNonOwner() public {
        vm.prank(stranger);
        vm.expectRevert(_unauthorized(stranger));
        app.setAnyDevice(true);
    }

    function test_RevertWhen_SetAnyDeviceUnchanged() public {
        vm.startPrank(appOwner);
        vm.expectRevert(IApp.AppNoChange.selector);
        app.setAnyDevice(false);
        app.setAnyDevice(true);
        vm.expectRevert(IApp.AppNoChange.selector);
        app.setAnyDevice(true);
        vm.stopPrank();
    }

    function test_KnownTeeKindsAreTdxSevSnpAndSimulated() public view {
        uint8 expected = (uint8(1) << uint8(TeeKind.Tdx)) | (uint8(1) << uint8(TeeKind.SevSnp))
            | (uint8(1) << uint8(TeeKind.Simulated));
        assertEq(app.KNOWN_TEE_KINDS(), expected);
        assertEq(app.KNOWN_TEE_KINDS(), 0x0e);
        assertEq(app.KNOWN_TEE_KINDS() & (uint8(1) << uint8(TeeKind.Unknown)), 0);
    }

    /// Dropped kinds go at once; newly allowed kinds wait out the notice period, and until then
    /// only the kinds both masks allow are in force (none when they are disjoint).
    function test_SetAllowedTeeKinds() public {
        vm.startPrank(appOwner);
        _expectSettingsScheduled(
            app,
            _settings(TDX, false, false, false),
            _settings(TDX, false, false, false),
            uint64(block.timestamp)
        );
        app.setAllowedTeeKinds(TDX);
        assertEq(app.allowedTeeKinds(), TDX);

        _expectSettingsScheduled(
            app, _settings(0, false, false, false), _settings(SNP, false, false, false), _noticeEnd()
        );
        app.setAllowedTeeKinds(SNP);
        assertEq(app.allowedTeeKinds(), 0);
        vm.warp(_noticeEnd());
        assertEq(app.allowedTeeKinds(), SNP);

        _expectSettingsScheduled(
            app, _settings(0, false, false, false), _settings(SIMULATED, false, false, false), _noticeEnd()
        );
        app.setAllowedTeeKinds(SIMULATED);
        assertEq(app.allowedTeeKinds(), 0);
        vm.warp(_noticeEnd());
        assertEq(app.allowedTeeKinds(), SIMULATED);

        _expectSettingsScheduled(
            app, _settings(0, false, false, false), _settings(TDX | SNP, false, false, false), _noticeEnd()
        );
        app.setAllowedTeeKinds(TDX | SNP);
        assertEq(app.allowedTeeKinds(), 0);
        vm.warp(_noticeEnd());
        assertEq(app.allowedTeeKinds(), TDX | SNP);
        vm.stopPrank();
    }

    function test_RevertWhen_SetAllowedTeeKindsByNonOwner() public {
        vm.prank(stranger);
        vm.expectRevert(_unauthorized(stranger));
        app.setAllowedTeeKinds(TDX);
    }

    function test_RevertWhen_SetAllowedTeeKindsZero() public {
        vm.prank(appOwner);
        vm.expectRevert(abi.encodeWithSelector(IApp.AppInvalidTeeKinds.selector, uint8(0)));
        app.setAllowedTeeKinds(0);
    }

    function test_RevertWhen_SetAllowedTeeKindsUnknownBit() public {
        vm.startPrank(appOwner);
        vm.expectRevert(abi.encodeWithSelector(IApp.AppInvalidTeeKinds.selector, uint8(0x01)));
        app.setAllowedTeeKinds(0x01);
        vm.expectRevert(abi.encodeWithSelector(IApp.AppInvalidTeeKinds.selector, uint8(0x03)));
        app.setAllowedTeeKinds(0x03);
        vm.expectRevert(abi.encodeWithSelector(IApp.AppInvalidTeeKinds.selector, uint8(0x0f)));
        app.setAllowedTeeKinds(0x0f);
        vm.stopPrank();
    }

    function test_RevertWhen_SetAllowedTeeKindsBitsAbove3() public {
        vm.startPrank(appOwner);
        for (uint256 bit = 4; bit < 8; ++bit) {
            uint8 mask = uint8(1) << bit;
            vm.expectRevert(abi.encodeWithSelector(IApp.AppInvalidTeeKinds.selector, mask));
            app.setAllowedTeeKinds(mask);
            vm.expectRevert(abi.encodeWithSelector(IApp.AppInvalidTeeKinds.selector, mask | TDX));
            app.setAllowedTeeKinds(mask | TDX);
        }
        vm.expectRevert(abi.encodeWithSelector(IApp.AppInvalidTeeKinds.selector, uint8(0xff)));
        app.setAllowedTeeKinds(0xff);
        vm.expectRevert(abi.encodeWithSelector(IApp.AppInvalidTeeKinds.selector, uint8(0xfe)));
        app.setAllowedTeeKinds(0xfe);
        vm.stopPrank();
        assertEq(app.allowedTeeKinds(), ALL_KINDS);
    }

    function test_RevertWhen_SetAllowedTeeKindsUnchanged() public {
        vm.prank(appOwner);
        vm.expectRevert(IApp.AppNoChange.selector);
        app.setAllowedTeeKinds(ALL_KINDS);
    }

    /// Any mask, from any starting mask: accepted exactly when it is a non-empty subset of the
    /// known kinds and a change; the kinds both masks allow are in force at once, the new mask
    /// itself after the notice period if it adds a kind, at once otherwise.
    function testFuzz_SetAllowedTeeKinds(uint8 startSeed, uint8 mask) public {
        uint8 old = uint8(bound(startSeed, 1, 7) << 1);
        App subject = App(registry.createApp(appOwner, _emptyInit(old)));
        bool valid = mask != 0 && (mask & ~subject.KNOWN_TEE_KINDS()) == 0;
        bool adds = mask & ~old != 0;
        uint64 effectiveAt = adds ? _noticeEnd() : uint64(block.timestamp);
        vm.prank(appOwner);
        if (mask == old) {
            vm.expectRevert(IApp.AppNoChange.selector);
        } else if (!valid) {
            vm.expectRevert(abi.encodeWithSelector(IApp.AppInvalidTeeKinds.selector, mask));
        } else {
            _expectSettingsScheduled(
                subject,
                _settings(old & mask, false, false, false),
                _settings(mask, false, false, false),
                effectiveAt
            );
        }
        subject.setAllowedTeeKinds(mask);
        bool changed = valid && mask != old;
        assertEq(subject.allowedTeeKinds(), changed ? old & mask : old);
        vm.warp(effectiveAt);
        assertEq(subject.allowedTeeKinds(), changed ? mask : old);
    }

    /// Requiring an up-to-date TCB applies at once; dropping the requirement waits out the notice.
    function test_SetRequireUpToDateTcb() public {
        IApp.Settings memory required = _settings(ALL_KINDS, false, true, false);
        vm.startPrank(appOwner);
        _expectSettingsScheduled(app, required, required, uint64(block.timestamp));
        app.setRequireUpToDateTcb(true);
        assertTrue(app.requireUpToDateTcb());

        uint64 effectiveAt = _noticeEnd();
        _expectSettingsScheduled(app, required, _initialSettings(), effectiveAt);
        app.setRequireUpToDateTcb(false);
        assertTrue(app.requireUpToDateTcb());
        vm.warp(effectiveAt);
        assertFalse(app.requireUpToDateTcb());
        vm.stopPrank();
    }

    function test_RevertWhen_SetRequireUpToDateTcbByNonOwner() public {
        vm.prank(stranger);
        vm.expectRevert(_unauthorized(stranger));
        app.setRequireUpToDateTcb(true);
    }

    function test_RevertWhen_SetRequireUpToDateTcbUnchanged() public {
        vm.startPrank(appOwner);
        vm.expectRevert(IApp.AppNoChange.selector);
        app.setRequireUpToDateTcb(false);
        app.setRequireUpToDateTcb(true);
        vm.expectRevert(IApp.AppNoChange.selector);
        app.setRequireUpToDateTcb(true);
        vm.stopPrank();
    }

    /// Requiring GPU evidence applies at once; dropping the requirement waits out the notice.
    function test_SetRequireGpu() public {
        IApp.Settings memory required = _settings(ALL_KINDS, false, false, true);
        vm.startPrank(appOwner);
        _expectSettingsScheduled(app, required, required, uint64(block.timestamp));
        app.setRequireGpu(true);
        assertTrue(app.requireGpu());

        uint64 effectiveAt = _noticeEnd();
        _expectSettingsScheduled(app, required, _initialSettings(), effectiveAt);
        app.setRequireGpu(false);
        assertTrue(app.requireGpu());
        vm.warp(effectiveAt);
        assertFalse(app.requireGpu());
        vm.stopPrank();
    }

    function test_RevertWhen_SetRequireGpuByNonOwner() public {
        vm.prank(stranger);
        vm.expectRevert(_unauthorized(stranger));
        app.setRequireGpu(true);
    }

    function test_RevertWhen_SetRequireGpuUnchanged() public {
        vm.startPrank(appOwner);
        vm.expectRevert(IApp.AppNoChange.selector);
        app.setRequireGpu(false);
        app.setRequireGpu(true);
        vm.expectRevert(IApp.AppNoChange.selector);
        app.setRequireGpu(true);
        vm.stopPrank();
    }

    /// "No change" compares with the latest (scheduled) settings, not with those in force: repeating
    /// a pending loosening is refused although the old value still applies.
    function test_RevertWhen_RepeatingAPendingLoosening() public {
        vm.startPrank(appOwner);
        app.setAnyDevice(true);
        assertFalse(app.anyDevice());
        vm.expectRevert(IApp.AppNoChange.selector);
        app.setAnyDevice(true);
        app.setRequireGpu(true);
        app.setRequireGpu(false);
        assertTrue(app.requireGpu());
        vm.expectRevert(IApp.AppNoChange.selector);
        app.setRequireGpu(false);
        vm.stopPrank();
    }
}

// =================================================================================================
// Notice period: loosenings take effect after it, removals and tightenings at once

contract AppNoticePeriodTest is AppTestBase {
    function setUp() public override {
        super.setUp();
        // The OS image, so that boots also reach the app through the registry.
        _allowOsImage();
    }

    /// The same verdict from the app and from the registry, which forwards the app's reason.
    function _expectBoth(App target, BootInfo memory b, string memory expected) internal view {
        _expectVerdict(target, b, expected);
        if (bytes(expected).length == 0) _assertAllowed(b);
        else _assertDenied(b, expected);
    }

    function _createWith(IApp.AppInit memory init) internal returns (App) {
        return App(registry.createApp(appOwner, init));
    }

    function _setMinNotice(uint64 minimum) internal {
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.setMinNoticePeriod, (minimum)));
    }

    // ---------------------------------------------------------------------------------------------
    // Each loosening is refused before its effectiveAt and allowed from exactly then

    function test_AddedComposeHashWaitsForTheNotice() public {
        uint64 effectiveAt = _noticeEnd();
        Provenance memory p = _provenance("v2");
        vm.expectEmit(address(app));
        emit IApp.ComposeHashAdded(COMPOSE_HASH_2, _digest(p), p, effectiveAt);
        vm.prank(appOwner);
        app.addComposeHash(COMPOSE_HASH_2, p);
        assertTrue(app.isComposeHashAllowed(COMPOSE_HASH_2));
        assertEq(app.composeHashEffectiveAt(COMPOSE_HASH_2), effectiveAt);

        BootInfo memory b = _boot(address(app));
        b.composeHash = COMPOSE_HASH_2;
        _expectBoth(app, b, "compose hash not yet effective");
        vm.warp(effectiveAt - 1);
        _expectBoth(app, b, "compose hash not yet effective");
        vm.warp(effectiveAt);
        _expectBoth(app, b, "");
        // The hashes already effective were never interrupted.
        _expectBoth(app, _boot(address(app)), "");
    }

    function test_AddedDeviceWaitsForTheNotice() public {
        uint64 effectiveAt = _noticeEnd();
        vm.expectEmit(address(app));
        emit IApp.DeviceAdded(DEVICE_2, effectiveAt);
        vm.prank(appOwner);
        app.addDevice(DEVICE_2);
        assertTrue(app.isDeviceAllowed(DEVICE_2));
        assertEq(app.deviceEffectiveAt(DEVICE_2), effectiveAt);

        BootInfo memory b = _boot(address(app));
        b.deviceId = DEVICE_2;
        _expectBoth(app, b, "device not yet effective");
        vm.warp(effectiveAt - 1);
        _expectBoth(app, b, "device not yet effective");
        vm.warp(effectiveAt);
        _expectBoth(app, b, "");
    }

    function test_AnyDeviceWaitsForTheNotice() public {
        uint64 effectiveAt = _noticeEnd();
        _expectSettingsScheduled(
            app, _initialSettings(), _settings(ALL_KINDS, true, false, false), effectiveAt
        );
        vm.prank(appOwner);
        app.setAnyDevice(true);

        BootInfo memory b = _boot(address(app));
        b.deviceId = DEVICE_2;
        _expectBoth(app, b, "device not allowed");
        vm.warp(effectiveAt - 1);
        assertFalse(app.anyDevice());
        _expectBoth(app, b, "device not allowed");
        vm.warp(effectiveAt);
        assertTrue(app.anyDevice());
        _expectBoth(app, b, "");
    }

    function test_NewTeeKindWaitsForTheNotice() public {
        App tdxOnly = _createWith(_emptyInitWithBoot(TDX));
        uint64 effectiveAt = _noticeEnd();
        _expectSettingsScheduled(
            tdxOnly,
            _settings(TDX, false, false, false),
            _settings(TDX | SNP, false, false, false),
            effectiveAt
        );
        vm.prank(appOwner);
        tdxOnly.setAllowedTeeKinds(TDX | SNP);

        BootInfo memory snp = _boot(address(tdxOnly));
        snp.teeKind = TeeKind.SevSnp;
        BootInfo memory tdx = _boot(address(tdxOnly));
        _expectVerdict(tdxOnly, snp, "tee kind not allowed");
        _expectVerdict(tdxOnly, tdx, "");
        vm.warp(effectiveAt - 1);
        assertEq(tdxOnly.allowedTeeKinds(), TDX);
        _expectVerdict(tdxOnly, snp, "tee kind not allowed");
        vm.warp(effectiveAt);
        assertEq(tdxOnly.allowedTeeKinds(), TDX | SNP);
        _expectVerdict(tdxOnly, snp, "");
        _expectVerdict(tdxOnly, tdx, "");
    }

    function test_DroppedTcbRequirementWaitsForTheNotice() public {
        IApp.AppInit memory init = _appInit();
        init.requireUpToDateTcb = true;
        App strict = _createWith(init);
        uint64 effectiveAt = _noticeEnd();
        _expectSettingsScheduled(
            strict,
            _settings(ALL_KINDS, false, true, false),
            _settings(ALL_KINDS, false, false, false),
            effectiveAt
        );
        vm.prank(appOwner);
        strict.setRequireUpToDateTcb(false);

        BootInfo memory b = _boot(address(strict));
        b.tcbStatus = TcbStatus.OutOfDate;
        _expectBoth(strict, b, "tcb not up to date");
        vm.warp(effectiveAt - 1);
        assertTrue(strict.requireUpToDateTcb());
        _expectBoth(strict, b, "tcb not up to date");
        vm.warp(effectiveAt);
        assertFalse(strict.requireUpToDateTcb());
        _expectBoth(strict, b, "");
    }

    function test_DroppedGpuRequirementWaitsForTheNotice() public {
        IApp.AppInit memory init = _appInit();
        init.requireGpu = true;
        App strict = _createWith(init);
        uint64 effectiveAt = _noticeEnd();
        _expectSettingsScheduled(
            strict,
            _settings(ALL_KINDS, false, false, true),
            _settings(ALL_KINDS, false, false, false),
            effectiveAt
        );
        vm.prank(appOwner);
        strict.setRequireGpu(false);

        BootInfo memory b = _boot(address(strict));
        _expectBoth(strict, b, "gpu evidence required");
        vm.warp(effectiveAt - 1);
        assertTrue(strict.requireGpu());
        _expectBoth(strict, b, "gpu evidence required");
        vm.warp(effectiveAt);
        assertFalse(strict.requireGpu());
        _expectBoth(strict, b, "");
    }

    // ---------------------------------------------------------------------------------------------
    // Each removal and tightening applies in the block that makes it

    function test_RemovingAComposeHashIsImmediate() public {
        _expectBoth(app, _boot(address(app)), "");
        vm.prank(appOwner);
        app.removeComposeHash(COMPOSE_HASH_1);
        _expectBoth(app, _boot(address(app)), "compose hash not allowed");
    }

    /// Removing a compose hash that is still waiting cancels it: it never takes effect.
    function test_RemovingAPendingComposeHashCancelsIt() public {
        uint64 effectiveAt = _noticeEnd();
        vm.startPrank(appOwner);
        app.addComposeHash(COMPOSE_HASH_2, _provenance("v2"));
        app.removeComposeHash(COMPOSE_HASH_2);
        vm.stopPrank();
        assertEq(app.composeHashEffectiveAt(COMPOSE_HASH_2), 0);
        vm.warp(effectiveAt);
        BootInfo memory b = _boot(address(app));
        b.composeHash = COMPOSE_HASH_2;
        _expectBoth(app, b, "compose hash not allowed");
    }

    function test_RemovingADeviceIsImmediate() public {
        vm.prank(appOwner);
        app.removeDevice(DEVICE_1);
        _expectBoth(app, _boot(address(app)), "device not allowed");
    }

    function test_SwitchingAnyDeviceOffIsImmediate() public {
        IApp.AppInit memory init = _appInit();
        init.anyDevice = true;
        App open = _createWith(init);
        BootInfo memory b = _boot(address(open));
        b.deviceId = DEVICE_2;
        _expectBoth(open, b, "");

        _expectSettingsScheduled(open, _initialSettings(), _initialSettings(), uint64(block.timestamp));
        vm.prank(appOwner);
        open.setAnyDevice(false);
        assertFalse(open.anyDevice());
        _expectBoth(open, b, "device not allowed");
    }

    function test_DroppingATeeKindIsImmediate() public {
        IApp.Settings memory tdxOnly = _settings(TDX, false, false, false);
        _expectSettingsScheduled(app, tdxOnly, tdxOnly, uint64(block.timestamp));
        vm.prank(appOwner);
        app.setAllowedTeeKinds(TDX);
        BootInfo memory b = _boot(address(app));
        b.teeKind = TeeKind.SevSnp;
        _expectVerdict(app, b, "tee kind not allowed");
        b.teeKind = TeeKind.Simulated;
        _expectVerdict(app, b, "tee kind not allowed");
        _expectBoth(app, _boot(address(app)), "");
    }

    function test_RequiringAnUpToDateTcbIsImmediate() public {
        IApp.Settings memory required = _settings(ALL_KINDS, false, true, false);
        _expectSettingsScheduled(app, required, required, uint64(block.timestamp));
        vm.prank(appOwner);
        app.setRequireUpToDateTcb(true);
        BootInfo memory b = _boot(address(app));
        b.tcbStatus = TcbStatus.SwHardeningNeeded;
        _expectBoth(app, b, "tcb not up to date");
    }

    function test_RequiringGpuEvidenceIsImmediate() public {
        IApp.Settings memory required = _settings(ALL_KINDS, false, false, true);
        _expectSettingsScheduled(app, required, required, uint64(block.timestamp));
        vm.prank(appOwner);
        app.setRequireGpu(true);
        _expectBoth(app, _boot(address(app)), "gpu evidence required");
    }

    // ---------------------------------------------------------------------------------------------
    // Combined and repeated changes

    /// A change of TEE kinds that drops one kind and adds another: the dropped kind goes at once,
    /// the added one comes after the notice period, the kept one never stops.
    function test_MixedTeeKindChange() public {
        App subject = _createWith(_emptyInitWithBoot(TDX | SNP));
        uint64 effectiveAt = _noticeEnd();
        _expectSettingsScheduled(
            subject,
            _settings(SNP, false, false, false),
            _settings(SNP | SIMULATED, false, false, false),
            effectiveAt
        );
        vm.prank(appOwner);
        subject.setAllowedTeeKinds(SNP | SIMULATED);

        BootInfo memory tdx = _boot(address(subject));
        BootInfo memory snp = _boot(address(subject));
        snp.teeKind = TeeKind.SevSnp;
        BootInfo memory simulated = _boot(address(subject));
        simulated.teeKind = TeeKind.Simulated;

        assertEq(subject.allowedTeeKinds(), SNP);
        _expectVerdict(subject, tdx, "tee kind not allowed");
        _expectVerdict(subject, snp, "");
        _expectVerdict(subject, simulated, "tee kind not allowed");
        vm.warp(effectiveAt - 1);
        _expectVerdict(subject, tdx, "tee kind not allowed");
        _expectVerdict(subject, simulated, "tee kind not allowed");
        vm.warp(effectiveAt);
        assertEq(subject.allowedTeeKinds(), SNP | SIMULATED);
        _expectVerdict(subject, tdx, "tee kind not allowed");
        _expectVerdict(subject, snp, "");
        _expectVerdict(subject, simulated, "");
    }

    /// A second loosening while the first waits restarts the timer for both.
    function test_ASecondLooseningRestartsTheTimer() public {
        App subject = _createWith(_emptyInitWithBoot(TDX));
        uint64 firstEnd = _noticeEnd();
        vm.prank(appOwner);
        subject.setAnyDevice(true);

        vm.warp(block.timestamp + MIN_NOTICE / 2);
        uint64 secondEnd = _noticeEnd();
        _expectSettingsScheduled(
            subject, _settings(TDX, false, false, false), _settings(TDX | SNP, true, false, false), secondEnd
        );
        vm.prank(appOwner);
        subject.setAllowedTeeKinds(TDX | SNP);

        BootInfo memory b = _boot(address(subject));
        b.deviceId = DEVICE_2;
        vm.warp(firstEnd);
        assertFalse(subject.anyDevice());
        _expectVerdict(subject, b, "device not allowed");
        vm.warp(secondEnd - 1);
        _expectVerdict(subject, b, "device not allowed");
        vm.warp(secondEnd);
        assertTrue(subject.anyDevice());
        assertEq(subject.allowedTeeKinds(), TDX | SNP);
        _expectVerdict(subject, b, "");
    }

    /// A tightening while a loosening waits applies at once, and restarts the loosening's timer.
    function test_ATighteningWhileALooseningWaitsRestartsTheTimer() public {
        uint64 firstEnd = _noticeEnd();
        vm.prank(appOwner);
        app.setAnyDevice(true);

        vm.warp(block.timestamp + MIN_NOTICE / 2);
        uint64 secondEnd = _noticeEnd();
        _expectSettingsScheduled(
            app, _settings(ALL_KINDS, false, false, true), _settings(ALL_KINDS, true, false, true), secondEnd
        );
        vm.prank(appOwner);
        app.setRequireGpu(true);
        _expectBoth(app, _boot(address(app)), "gpu evidence required");

        BootInfo memory b = _boot(address(app));
        b.deviceId = DEVICE_2;
        b.gpuEvidenceHash = keccak256("gpu evidence");
        vm.warp(firstEnd);
        _expectVerdict(app, b, "device not allowed");
        vm.warp(secondEnd);
        _expectVerdict(app, b, "");
    }

    /// Taking back a loosening that still waits cancels it at once.
    function test_UndoingAWaitingLooseningCancelsIt() public {
        uint64 effectiveAt = _noticeEnd();
        vm.startPrank(appOwner);
        app.setAnyDevice(true);
        vm.warp(block.timestamp + 1 hours);
        _expectSettingsScheduled(app, _initialSettings(), _initialSettings(), uint64(block.timestamp));
        app.setAnyDevice(false);
        vm.stopPrank();
        _assertSettingsView(app, _initialSettings(), _initialSettings(), uint64(block.timestamp));
        vm.warp(effectiveAt);
        assertFalse(app.anyDevice());
        BootInfo memory b = _boot(address(app));
        b.deviceId = DEVICE_2;
        _expectVerdict(app, b, "device not allowed");
    }

    /// A loosening that has taken effect stays in force through a later tightening of another
    /// setting (which loosens nothing, so it applies at once).
    function test_ATighteningAfterALooseningTookEffectKeepsIt() public {
        vm.prank(appOwner);
        app.setAnyDevice(true);
        vm.warp(_noticeEnd());
        IApp.Settings memory next = _settings(ALL_KINDS, true, false, true);
        _expectSettingsScheduled(app, next, next, uint64(block.timestamp));
        vm.prank(appOwner);
        app.setRequireGpu(true);
        assertTrue(app.anyDevice());
        BootInfo memory b = _boot(address(app));
        b.deviceId = DEVICE_2;
        b.gpuEvidenceHash = keccak256("gpu evidence");
        _expectVerdict(app, b, "");
    }

    /// Compose hashes and devices each keep their own time: a later addition does not move an
    /// earlier one.
    function test_AdditionsKeepTheirOwnTimes() public {
        uint64 firstEnd = _noticeEnd();
        vm.prank(appOwner);
        app.addComposeHash(COMPOSE_HASH_2, _provenance("v2"));
        vm.warp(block.timestamp + 1 hours);
        vm.prank(appOwner);
        app.addDevice(DEVICE_2);
        assertEq(app.composeHashEffectiveAt(COMPOSE_HASH_2), firstEnd);
        assertEq(app.deviceEffectiveAt(DEVICE_2), firstEnd + 1 hours);

        BootInfo memory b = _boot(address(app));
        b.composeHash = COMPOSE_HASH_2;
        vm.warp(firstEnd);
        _expectVerdict(app, b, "");
        b.deviceId = DEVICE_2;
        _expectVerdict(app, b, "device not yet effective");
        vm.warp(firstEnd + 1 hours);
        _expectVerdict(app, b, "");
    }

    // ---------------------------------------------------------------------------------------------
    // The app's notice period and the registry's minimum

    /// An app may ask for more notice than the registry's minimum; its own period then applies.
    function test_TheAppsLongerNoticePeriodApplies() public {
        IApp.AppInit memory init = _appInit();
        init.noticePeriod = 7 days;
        App patient = _createWith(init);
        uint64 effectiveAt = uint64(block.timestamp) + 7 days;
        vm.startPrank(appOwner);
        patient.addComposeHash(COMPOSE_HASH_2, _provenance("v2"));
        patient.addDevice(DEVICE_2);
        _expectSettingsScheduled(
            patient, _initialSettings(), _settings(ALL_KINDS, true, false, false), effectiveAt
        );
        patient.setAnyDevice(true);
        vm.stopPrank();
        assertEq(patient.composeHashEffectiveAt(COMPOSE_HASH_2), effectiveAt);
        assertEq(patient.deviceEffectiveAt(DEVICE_2), effectiveAt);

        BootInfo memory b = _boot(address(patient));
        b.composeHash = COMPOSE_HASH_2;
        vm.warp(_noticeEnd());
        _expectBoth(patient, b, "compose hash not yet effective");
        vm.warp(effectiveAt);
        _expectBoth(patient, b, "");
    }

    /// Once governance raises the minimum above an app's notice period, the app's loosenings wait
    /// the registry's minimum.
    function test_ARaisedRegistryMinimumApplies() public {
        _setMinNotice(3 days);
        uint64 effectiveAt = uint64(block.timestamp) + 3 days;
        Provenance memory p = _provenance("v2");
        vm.expectEmit(address(app));
        emit IApp.ComposeHashAdded(COMPOSE_HASH_2, _digest(p), p, effectiveAt);
        vm.prank(appOwner);
        app.addComposeHash(COMPOSE_HASH_2, p);
        vm.expectEmit(address(app));
        emit IApp.DeviceAdded(DEVICE_2, effectiveAt);
        vm.prank(appOwner);
        app.addDevice(DEVICE_2);
        _expectSettingsScheduled(
            app, _initialSettings(), _settings(ALL_KINDS, true, false, false), effectiveAt
        );
        vm.prank(appOwner);
        app.setAnyDevice(true);
        assertEq(app.noticePeriod(), MIN_NOTICE);

        BootInfo memory b = _boot(address(app));
        b.composeHash = COMPOSE_HASH_2;
        // The app's own period has passed; the registry's has not.
        vm.warp(_noticeEnd() + 1 hours);
        _expectBoth(app, b, "compose hash not yet effective");
        assertFalse(app.anyDevice());
        vm.warp(effectiveAt);
        _expectBoth(app, b, "");
        assertTrue(app.anyDevice());
    }

    /// A change of the registry's minimum does not move what is already scheduled: it applies to
    /// the loosenings made after it.
    function test_ARaisedRegistryMinimumLeavesScheduledChanges() public {
        uint64 effectiveAt = _noticeEnd();
        vm.prank(appOwner);
        app.addComposeHash(COMPOSE_HASH_2, _provenance("v2"));
        _setMinNotice(3 days);
        assertEq(app.composeHashEffectiveAt(COMPOSE_HASH_2), effectiveAt);
        vm.prank(appOwner);
        app.addDevice(DEVICE_2);
        assertEq(app.deviceEffectiveAt(DEVICE_2), uint64(block.timestamp) + 3 days);
    }

    /// Lowering the registry's minimum below an app's notice period leaves the app's period in force.
    function test_ALoweredRegistryMinimumLeavesTheAppsPeriod() public {
        _setMinNotice(0);
        vm.prank(appOwner);
        app.addDevice(DEVICE_2);
        assertEq(app.deviceEffectiveAt(DEVICE_2), _noticeEnd());
    }

    // ---------------------------------------------------------------------------------------------
    // setNoticePeriod

    function test_SetNoticePeriod() public {
        uint64 scheduledEarlier = _noticeEnd();
        vm.prank(appOwner);
        app.addComposeHash(COMPOSE_HASH_2, _provenance("v2"));

        vm.expectEmit(address(app));
        emit IApp.NoticePeriodSet(5 days);
        vm.prank(appOwner);
        app.setNoticePeriod(5 days);
        assertEq(app.noticePeriod(), 5 days);

        // Later loosenings wait the new period; what was scheduled keeps its time.
        vm.prank(appOwner);
        app.addDevice(DEVICE_2);
        assertEq(app.deviceEffectiveAt(DEVICE_2), uint64(block.timestamp) + 5 days);
        assertEq(app.composeHashEffectiveAt(COMPOSE_HASH_2), scheduledEarlier);

        vm.expectEmit(address(app));
        emit IApp.NoticePeriodSet(5 days + 1);
        vm.prank(appOwner);
        app.setNoticePeriod(5 days + 1);
        assertEq(app.noticePeriod(), 5 days + 1);
    }

    function test_RevertWhen_SetNoticePeriodDecreases() public {
        vm.startPrank(appOwner);
        vm.expectRevert(
            abi.encodeWithSelector(IApp.AppNoticePeriodDecrease.selector, MIN_NOTICE, MIN_NOTICE - 1)
        );
        app.setNoticePeriod(MIN_NOTICE - 1);
        vm.expectRevert(abi.encodeWithSelector(IApp.AppNoticePeriodDecrease.selector, MIN_NOTICE, 0));
        app.setNoticePeriod(0);
        app.setNoticePeriod(3 days);
        vm.expectRevert(abi.encodeWithSelector(IApp.AppNoticePeriodDecrease.selector, 3 days, 2 days));
        app.setNoticePeriod(2 days);
        vm.stopPrank();
        assertEq(app.noticePeriod(), 3 days);
    }

    /// A period beyond a year is refused (at a year, a loosening still schedules: no overflow).
    function test_RevertWhen_SetNoticePeriodAboveTheMaximum() public {
        uint64 max = app.MAX_NOTICE_PERIOD();
        vm.startPrank(appOwner);
        vm.expectRevert(abi.encodeWithSelector(IApp.AppNoticePeriodTooLong.selector, max + 1));
        app.setNoticePeriod(max + 1);
        vm.expectRevert(abi.encodeWithSelector(IApp.AppNoticePeriodTooLong.selector, type(uint64).max));
        app.setNoticePeriod(type(uint64).max);
        app.setNoticePeriod(max);
        app.addComposeHash(COMPOSE_HASH_2, _provenance("v2"));
        vm.stopPrank();
        assertEq(app.composeHashEffectiveAt(COMPOSE_HASH_2), uint64(block.timestamp) + max);
    }

    /// Setting the current period again is not growth.
    function test_RevertWhen_SetNoticePeriodUnchanged() public {
        vm.prank(appOwner);
        vm.expectRevert(abi.encodeWithSelector(IApp.AppNoticePeriodDecrease.selector, MIN_NOTICE, MIN_NOTICE));
        app.setNoticePeriod(MIN_NOTICE);
    }

    function test_RevertWhen_SetNoticePeriodByNonOwner() public {
        vm.prank(stranger);
        vm.expectRevert(_unauthorized(stranger));
        app.setNoticePeriod(3 days);
        // Not governance either: the period is the app owner's promise.
        vm.prank(address(timelock));
        vm.expectRevert(_unauthorized(address(timelock)));
        app.setNoticePeriod(3 days);
        assertEq(app.noticePeriod(), MIN_NOTICE);
    }

    /// Any sequence of requests: each is accepted exactly when it exceeds the current period.
    function testFuzz_SetNoticePeriodOnlyGrows(uint64[4] memory requests) public {
        uint64 current = MIN_NOTICE;
        vm.startPrank(appOwner);
        for (uint256 i = 0; i < requests.length; ++i) {
            uint64 requested = uint64(bound(requests[i], 0, 4 * MIN_NOTICE));
            if (requested <= current) {
                vm.expectRevert(
                    abi.encodeWithSelector(IApp.AppNoticePeriodDecrease.selector, current, requested)
                );
            } else {
                vm.expectEmit(address(app));
                emit IApp.NoticePeriodSet(requested);
            }
            app.setNoticePeriod(requested);
            if (requested > current) current = requested;
            assertEq(app.noticePeriod(), current);
        }
        vm.stopPrank();
    }

    /// An app allowing only `mask`, with the fixture's compose hash and device, so that `_boot`
    /// boots reach its TEE-kind check.
    function _emptyInitWithBoot(uint8 mask) internal pure returns (IApp.AppInit memory init) {
        init = _appInit();
        init.allowedTeeKinds = mask;
    }
}

// =================================================================================================
// bumpKeyGeneration

contract AppKeyGenerationTest is AppTestBase {
    function test_BumpKeyGeneration() public {
        vm.startPrank(appOwner);
        vm.expectEmit(address(app));
        emit IApp.KeyGenerationBumped(2);
        app.bumpKeyGeneration();
        assertEq(app.keyGeneration(), 2);

        vm.expectEmit(address(app));
        emit IApp.KeyGenerationBumped(3);
        app.bumpKeyGeneration();
        assertEq(app.keyGeneration(), 3);
        vm.stopPrank();
    }

    /// Boots asking for an earlier (or a future) generation are refused after a bump.
    function test_BumpKeyGenerationRetiresTheOldGeneration() public {
        BootInfo memory b = _boot(address(app));
        (bool allowed,) = app.isAppAllowed(b);
        assertTrue(allowed);

        vm.prank(appOwner);
        app.bumpKeyGeneration();
        (bool stillAllowed, string memory reason) = app.isAppAllowed(b);
        assertFalse(stillAllowed);
        assertEq(reason, "key generation not current");

        b.keyGeneration = 2;
        (allowed, reason) = app.isAppAllowed(b);
        assertTrue(allowed);
        assertEq(reason, "");
    }

    function test_RevertWhen_BumpKeyGenerationByNonOwner() public {
        vm.prank(stranger);
        vm.expectRevert(_unauthorized(stranger));
        app.bumpKeyGeneration();
        assertEq(app.keyGeneration(), 1);
    }

    function testFuzz_BumpKeyGenerationCounts(uint8 bumps) public {
        uint256 n = bound(bumps, 0, 20);
        vm.startPrank(appOwner);
        for (uint64 generation = 2; generation <= n + 1; ++generation) {
            vm.expectEmit(address(app));
            emit IApp.KeyGenerationBumped(generation);
            app.bumpKeyGeneration();
        }
        vm.stopPrank();
        assertEq(app.keyGeneration(), n + 1);
    }
}

// =================================================================================================
// freeze

contract AppFreezeTest is AppTestBase {
    App internal nextImplementation;

    function setUp() public override {
        super.setUp();
        nextImplementation = _governNewImplementation();
    }

    function test_Freeze() public {
        vm.expectEmit(address(app));
        emit IApp.AppFrozen();
        vm.prank(appOwner);
        app.freeze();
        assertTrue(app.frozen());
        assertEq(app.owner(), appOwner);
    }

    function test_RevertWhen_FreezeByNonOwner() public {
        vm.prank(stranger);
        vm.expectRevert(_unauthorized(stranger));
        app.freeze();
        assertFalse(app.frozen());
    }

    function test_RevertWhen_FreezeTwice() public {
        vm.startPrank(appOwner);
        app.freeze();
        vm.expectRevert(IApp.AppIsFrozen.selector);
        app.freeze();
        vm.stopPrank();
    }

    /// Each call succeeds before the freeze and reverts with AppIsFrozen after it.
    function test_RevertWhen_AnyOwnerCallAfterFreeze() public {
        bytes[] memory calls = _ownerCalls();
        for (uint256 i = 0; i < calls.length; ++i) {
            uint256 snapshot = vm.snapshotState();
            vm.prank(appOwner);
            (bool ok, bytes memory ret) = address(app).call(calls[i]);
            assertTrue(ok, string.concat("before freeze, call ", vm.toString(i), ": ", vm.toString(ret)));
            vm.revertToState(snapshot);
        }

        vm.prank(appOwner);
        app.freeze();

        for (uint256 i = 0; i < calls.length; ++i) {
            vm.prank(appOwner);
            (bool ok, bytes memory ret) = address(app).call(calls[i]);
            assertFalse(ok, string.concat("after freeze, call ", vm.toString(i)));
            assertEq(ret, abi.encodeWithSelector(IApp.AppIsFrozen.selector), vm.toString(i));
        }
    }

    function test_RevertWhen_AddComposeHashAfterFreeze() public {
        _freeze();
        Provenance memory p = _provenance("v2");
        vm.prank(appOwner);
        vm.expectRevert(IApp.AppIsFrozen.selector);
        app.addComposeHash(COMPOSE_HASH_2, p);
    }

    function test_RevertWhen_RemoveComposeHashAfterFreeze() public {
        _freeze();
        vm.prank(appOwner);
        vm.expectRevert(IApp.AppIsFrozen.selector);
        app.removeComposeHash(COMPOSE_HASH_1);
    }

    function test_RevertWhen_AddDeviceAfterFreeze() public {
        _freeze();
        vm.prank(appOwner);
        vm.expectRevert(IApp.AppIsFrozen.selector);
        app.addDevice(DEVICE_2);
    }

    function test_RevertWhen_RemoveDeviceAfterFreeze() public {
        _freeze();
        vm.prank(appOwner);
        vm.expectRevert(IApp.AppIsFrozen.selector);
        app.removeDevice(DEVICE_1);
    }

    function test_RevertWhen_SetAnyDeviceAfterFreeze() public {
        _freeze();
        vm.prank(appOwner);
        vm.expectRevert(IApp.AppIsFrozen.selector);
        app.setAnyDevice(true);
    }

    function test_RevertWhen_SetAllowedTeeKindsAfterFreeze() public {
        _freeze();
        vm.prank(appOwner);
        vm.expectRevert(IApp.AppIsFrozen.selector);
        app.setAllowedTeeKinds(TDX);
    }

    function test_RevertWhen_SetRequireUpToDateTcbAfterFreeze() public {
        _freeze();
        vm.prank(appOwner);
        vm.expectRevert(IApp.AppIsFrozen.selector);
        app.setRequireUpToDateTcb(true);
    }

    function test_RevertWhen_SetRequireGpuAfterFreeze() public {
        _freeze();
        vm.prank(appOwner);
        vm.expectRevert(IApp.AppIsFrozen.selector);
        app.setRequireGpu(true);
    }

    function test_RevertWhen_SetNoticePeriodAfterFreeze() public {
        _freeze();
        vm.prank(appOwner);
        vm.expectRevert(IApp.AppIsFrozen.selector);
        app.setNoticePeriod(MIN_NOTICE + 1);
        assertEq(app.noticePeriod(), MIN_NOTICE);
    }

    function test_RevertWhen_BumpKeyGenerationAfterFreeze() public {
        _freeze();
        vm.prank(appOwner);
        vm.expectRevert(IApp.AppIsFrozen.selector);
        app.bumpKeyGeneration();
    }

    function test_RevertWhen_TransferOwnershipAfterFreeze() public {
        _freeze();
        vm.prank(appOwner);
        vm.expectRevert(IApp.AppIsFrozen.selector);
        app.transferOwnership(newOwner);
        assertEq(app.pendingOwner(), address(0));
    }

    /// A transfer started before the freeze cannot complete after it.
    function test_RevertWhen_AcceptOwnershipStartedBeforeFreeze() public {
        vm.startPrank(appOwner);
        app.transferOwnership(newOwner);
        app.freeze();
        vm.stopPrank();
        assertEq(app.pendingOwner(), newOwner);

        vm.prank(newOwner);
        vm.expectRevert(IApp.AppIsFrozen.selector);
        app.acceptOwnership();
        assertEq(app.owner(), appOwner);
    }

    function test_RevertWhen_RenounceOwnershipAfterFreeze() public {
        _freeze();
        vm.prank(appOwner);
        vm.expectRevert(IApp.AppIsFrozen.selector);
        app.renounceOwnership();
        assertEq(app.owner(), appOwner);
    }

    /// Even an upgrade to the implementation governance now points at is refused.
    function test_RevertWhen_UpgradeAfterFreeze() public {
        _freeze();
        vm.prank(appOwner);
        vm.expectRevert(IApp.AppIsFrozen.selector);
        app.upgradeToAndCall(address(nextImplementation), "");
        assertEq(_implementationOf(address(app)), address(appImplementation));
    }

    /// The owner check still comes first on a frozen app.
    function test_RevertWhen_NonOwnerCallsAfterFreeze() public {
        _freeze();
        vm.startPrank(stranger);
        vm.expectRevert(_unauthorized(stranger));
        app.addDevice(DEVICE_2);
        vm.expectRevert(_unauthorized(stranger));
        app.upgradeToAndCall(address(nextImplementation), "");
        vm.stopPrank();
    }

    /// A frozen app's policy keeps answering as it did when it froze.
    function test_FrozenAppKeepsItsPolicy() public {
        _freeze();
        (bool allowed, string memory reason) = app.isAppAllowed(_boot(address(app)));
        assertTrue(allowed);
        assertEq(reason, "");
        _allowOsImage();
        _assertAllowed(_boot(address(app)));
        assertTrue(app.isComposeHashAllowed(COMPOSE_HASH_1));
        assertTrue(app.isDeviceAllowed(DEVICE_1));
        assertEq(app.keyGeneration(), 1);
    }

    /// Freezing fixes what was decided, including what was announced: a compose hash, a device and
    /// settings scheduled before the freeze still take effect at their time.
    function test_ChangesScheduledBeforeTheFreezeStillTakeEffect() public {
        uint64 effectiveAt = _noticeEnd();
        vm.startPrank(appOwner);
        app.addComposeHash(COMPOSE_HASH_2, _provenance("v2"));
        app.addDevice(DEVICE_2);
        app.setRequireGpu(true);
        app.setRequireGpu(false);
        app.freeze();
        vm.stopPrank();
        BootInfo memory b = _boot(address(app));
        b.composeHash = COMPOSE_HASH_2;
        _expectVerdict(app, b, "compose hash not yet effective");
        b.composeHash = COMPOSE_HASH_1;
        _expectVerdict(app, b, "gpu evidence required");
        vm.warp(effectiveAt);
        b.composeHash = COMPOSE_HASH_2;
        b.deviceId = DEVICE_2;
        _expectVerdict(app, b, "");
    }

    function _freeze() internal {
        vm.prank(appOwner);
        app.freeze();
    }

    /// Every owner call that changes the app, each valid in the unfrozen state.
    function _ownerCalls() internal view returns (bytes[] memory calls) {
        calls = new bytes[](14);
        calls[0] = abi.encodeCall(App.addComposeHash, (COMPOSE_HASH_2, _provenance("v2")));
        calls[1] = abi.encodeCall(App.removeComposeHash, (COMPOSE_HASH_1));
        calls[2] = abi.encodeCall(App.addDevice, (DEVICE_2));
        calls[3] = abi.encodeCall(App.removeDevice, (DEVICE_1));
        calls[4] = abi.encodeCall(App.setAnyDevice, (true));
        calls[5] = abi.encodeCall(App.setAllowedTeeKinds, (TDX));
        calls[6] = abi.encodeCall(App.setRequireUpToDateTcb, (true));
        calls[7] = abi.encodeCall(App.setRequireGpu, (true));
        calls[8] = abi.encodeCall(App.bumpKeyGeneration, ());
        calls[9] = abi.encodeCall(App.freeze, ());
        calls[10] = abi.encodeCall(App.transferOwnership, (newOwner));
        calls[11] = abi.encodeCall(App.renounceOwnership, ());
        calls[12] = abi.encodeCall(UUPSUpgradeable.upgradeToAndCall, (address(nextImplementation), ""));
        calls[13] = abi.encodeCall(App.setNoticePeriod, (MIN_NOTICE + 1));
    }
}

// =================================================================================================
// Two-step ownership

contract AppOwnershipTest is AppTestBase {
    function test_TransferOwnershipStartsATransfer() public {
        vm.expectEmit(address(app));
        emit Ownable2StepUpgradeable.OwnershipTransferStarted(appOwner, newOwner);
        vm.prank(appOwner);
        app.transferOwnership(newOwner);
        assertEq(app.pendingOwner(), newOwner);
        assertEq(app.owner(), appOwner);
    }

    function test_AcceptOwnership() public {
        vm.prank(appOwner);
        app.transferOwnership(newOwner);

        vm.expectEmit(address(app));
        emit OwnableUpgradeable.OwnershipTransferred(appOwner, newOwner);
        vm.prank(newOwner);
        app.acceptOwnership();
        assertEq(app.owner(), newOwner);
        assertEq(app.pendingOwner(), address(0));

        // The new owner governs the app; the old one no longer does.
        vm.prank(newOwner);
        app.addDevice(DEVICE_2);
        assertTrue(app.isDeviceAllowed(DEVICE_2));
        vm.prank(appOwner);
        vm.expectRevert(_unauthorized(appOwner));
        app.removeDevice(DEVICE_2);
    }

    function test_TransferOwnershipReplacesThePendingOwner() public {
        vm.startPrank(appOwner);
        app.transferOwnership(stranger);
        vm.expectEmit(address(app));
        emit Ownable2StepUpgradeable.OwnershipTransferStarted(appOwner, newOwner);
        app.transferOwnership(newOwner);
        vm.stopPrank();
        assertEq(app.pendingOwner(), newOwner);

        vm.prank(stranger);
        vm.expectRevert(_unauthorized(stranger));
        app.acceptOwnership();
    }

    function test_TransferOwnershipToZeroCancels() public {
        vm.startPrank(appOwner);
        app.transferOwnership(newOwner);
        vm.expectEmit(address(app));
        emit Ownable2StepUpgradeable.OwnershipTransferStarted(appOwner, address(0));
        app.transferOwnership(address(0));
        vm.stopPrank();
        assertEq(app.pendingOwner(), address(0));

        vm.prank(newOwner);
        vm.expectRevert(_unauthorized(newOwner));
        app.acceptOwnership();
    }

    function test_RevertWhen_TransferOwnershipByNonOwner() public {
        vm.prank(stranger);
        vm.expectRevert(_unauthorized(stranger));
        app.transferOwnership(stranger);
        assertEq(app.pendingOwner(), address(0));
    }

    function test_RevertWhen_AcceptOwnershipByNonPendingOwner() public {
        vm.prank(appOwner);
        app.transferOwnership(newOwner);

        vm.prank(stranger);
        vm.expectRevert(_unauthorized(stranger));
        app.acceptOwnership();

        // Not even the current owner can accept on the pending owner's behalf.
        vm.prank(appOwner);
        vm.expectRevert(_unauthorized(appOwner));
        app.acceptOwnership();
        assertEq(app.owner(), appOwner);
        assertEq(app.pendingOwner(), newOwner);
    }

    function test_RevertWhen_AcceptOwnershipWithoutTransfer() public {
        vm.prank(newOwner);
        vm.expectRevert(_unauthorized(newOwner));
        app.acceptOwnership();
    }

    function test_RenounceOwnership() public {
        vm.prank(appOwner);
        app.transferOwnership(newOwner);

        vm.expectEmit(address(app));
        emit OwnableUpgradeable.OwnershipTransferred(appOwner, address(0));
        vm.prank(appOwner);
        app.renounceOwnership();
        assertEq(app.owner(), address(0));
        assertEq(app.pendingOwner(), address(0));

        vm.prank(appOwner);
        vm.expectRevert(_unauthorized(appOwner));
        app.freeze();
        vm.prank(newOwner);
        vm.expectRevert(_unauthorized(newOwner));
        app.acceptOwnership();
    }

    function test_RevertWhen_RenounceOwnershipByNonOwner() public {
        vm.prank(stranger);
        vm.expectRevert(_unauthorized(stranger));
        app.renounceOwnership();
        assertEq(app.owner(), appOwner);
    }
}

// =================================================================================================
// upgradeToAndCall

contract AppUpgradeTest is AppTestBase {
    function test_RevertWhen_UpgradeByNonOwner() public {
        App next = _governNewImplementation();
        vm.prank(stranger);
        vm.expectRevert(_unauthorized(stranger));
        app.upgradeToAndCall(address(next), "");

        // Governance itself cannot upgrade an app: only the app's owner decides when.
        vm.prank(address(timelock));
        vm.expectRevert(_unauthorized(address(timelock)));
        app.upgradeToAndCall(address(next), "");
        assertEq(_implementationOf(address(app)), address(appImplementation));
    }

    function test_RevertWhen_UpgradeToUngovernedImplementation() public {
        App rogue = new App(address(registry));
        vm.prank(appOwner);
        vm.expectRevert(
            abi.encodeWithSelector(
                IApp.AppUpgradeNotGoverned.selector, address(rogue), address(appImplementation)
            )
        );
        app.upgradeToAndCall(address(rogue), "");
    }

    /// Once governance moves on, the previous implementation is no longer a valid target.
    function test_RevertWhen_UpgradeToPreviousImplementation() public {
        App next = _governNewImplementation();
        vm.prank(appOwner);
        vm.expectRevert(
            abi.encodeWithSelector(
                IApp.AppUpgradeNotGoverned.selector, address(appImplementation), address(next)
            )
        );
        app.upgradeToAndCall(address(appImplementation), "");
    }

    function test_RevertWhen_UpgradeCalledOnTheImplementation() public {
        vm.prank(appOwner);
        vm.expectRevert(UUPSUpgradeable.UUPSUnauthorizedCallContext.selector);
        appImplementation.upgradeToAndCall(address(appImplementation), "");
    }

    /// Governance may point at any contract; a non-UUPS one is refused by the proxy upgrade itself.
    function test_RevertWhen_GovernedImplementationIsNotUups() public {
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.setAppImplementation, (address(token))));
        vm.prank(appOwner);
        vm.expectRevert(
            abi.encodeWithSelector(ERC1967Utils.ERC1967InvalidImplementation.selector, address(token))
        );
        app.upgradeToAndCall(address(token), "");
    }

    function test_RevertWhen_UpgradeWithValueAndNoCall() public {
        App next = _governNewImplementation();
        vm.deal(appOwner, 1 ether);
        vm.prank(appOwner);
        vm.expectRevert(ERC1967Utils.ERC1967NonPayable.selector);
        app.upgradeToAndCall{value: 1 ether}(address(next), "");
    }

    /// An upgrade cannot re-run initialisation.
    function test_RevertWhen_UpgradeAndCallReinitialises() public {
        App next = _governNewImplementation();
        bytes memory reinitialise = abi.encodeCall(App.initialize, (stranger, _appInit()));
        vm.prank(appOwner);
        vm.expectRevert(Initializable.InvalidInitialization.selector);
        app.upgradeToAndCall(address(next), reinitialise);
        assertEq(app.owner(), appOwner);
    }

    function test_UpgradeToGovernedImplementationPreservesState() public {
        uint64 effectiveAt = _noticeEnd();
        vm.startPrank(appOwner);
        app.setNoticePeriod(MIN_NOTICE + 1 hours);
        app.addComposeHash(COMPOSE_HASH_2, _provenance("v2"));
        app.removeComposeHash(COMPOSE_HASH_1);
        app.addDevice(DEVICE_2);
        app.setAnyDevice(true);
        app.setAllowedTeeKinds(TDX | SNP);
        app.setRequireUpToDateTcb(true);
        app.setRequireGpu(true);
        app.bumpKeyGeneration();
        app.bumpKeyGeneration();
        app.transferOwnership(newOwner);
        vm.stopPrank();

        App next = new App(address(registry));
        vm.expectEmit(address(registry));
        emit IKmsRegistry.AppImplementationSet(address(appImplementation), address(next));
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.setAppImplementation, (address(next))));
        assertEq(registry.appImplementation(), address(next));

        vm.expectEmit(address(app));
        emit IERC1967.Upgraded(address(next));
        vm.prank(appOwner);
        app.upgradeToAndCall(address(next), "");

        assertEq(_implementationOf(address(app)), address(next));
        assertEq(app.owner(), appOwner);
        assertEq(app.pendingOwner(), newOwner);
        assertEq(app.registry(), address(registry));
        assertFalse(app.isComposeHashAllowed(COMPOSE_HASH_1));
        assertEq(app.composeHashProvenance(COMPOSE_HASH_1), bytes32(0));
        assertTrue(app.isComposeHashAllowed(COMPOSE_HASH_2));
        assertEq(app.composeHashProvenance(COMPOSE_HASH_2), _digest(_provenance("v2")));
        assertTrue(app.isDeviceAllowed(DEVICE_1));
        assertTrue(app.isDeviceAllowed(DEVICE_2));
        assertEq(app.noticePeriod(), MIN_NOTICE + 1 hours);
        assertEq(app.composeHashEffectiveAt(COMPOSE_HASH_2), effectiveAt + 1 hours);
        assertEq(app.deviceEffectiveAt(DEVICE_2), effectiveAt + 1 hours);
        // The pending any-device switch is still pending; the tightenings are in force.
        _assertSettingsView(
            app,
            _settings(TDX | SNP, false, true, true),
            _settings(TDX | SNP, true, true, true),
            effectiveAt + 1 hours
        );
        vm.warp(effectiveAt + 1 hours);
        assertTrue(app.anyDevice());
        assertEq(app.allowedTeeKinds(), TDX | SNP);
        assertTrue(app.requireUpToDateTcb());
        assertTrue(app.requireGpu());
        assertEq(app.keyGeneration(), 3);
        assertFalse(app.frozen());
        assertEq(uint8(registry.appKind(address(app))), uint8(IKmsRegistry.AppKind.Factory));

        // The pending transfer still completes, and the upgraded app still answers boots.
        vm.prank(newOwner);
        app.acceptOwnership();
        assertEq(app.owner(), newOwner);
        BootInfo memory b = _boot(address(app));
        b.composeHash = COMPOSE_HASH_2;
        b.gpuEvidenceHash = sha256("gpu");
        b.keyGeneration = 3;
        (bool allowed, string memory reason) = app.isAppAllowed(b);
        assertTrue(allowed, reason);
    }

    /// The call in upgradeToAndCall runs as the owner, in the app's context.
    function test_UpgradeAndCall() public {
        App next = _governNewImplementation();
        vm.expectEmit(address(app));
        emit IERC1967.Upgraded(address(next));
        vm.expectEmit(address(app));
        emit IApp.KeyGenerationBumped(2);
        vm.prank(appOwner);
        app.upgradeToAndCall(address(next), abi.encodeCall(App.bumpKeyGeneration, ()));
        assertEq(_implementationOf(address(app)), address(next));
        assertEq(app.keyGeneration(), 2);
    }

    /// Apps created after governance moved are proxies of the new implementation.
    function test_NewAppsUseTheGovernedImplementation() public {
        App next = _governNewImplementation();
        App created = _createApp();
        assertEq(_implementationOf(address(created)), address(next));
        assertEq(_implementationOf(address(app)), address(appImplementation));
    }
}

// =================================================================================================
// Views

contract AppViewsTest is AppTestBase {
    function test_Views() public view {
        assertEq(app.registry(), address(registry));
        assertEq(appImplementation.registry(), address(registry));
        assertEq(app.owner(), appOwner);
        assertEq(app.pendingOwner(), address(0));
        assertEq(app.KNOWN_TEE_KINDS(), 0x0e);
        assertEq(app.UPGRADE_INTERFACE_VERSION(), "5.0.0");
        assertFalse(app.isComposeHashAllowed(bytes32(0)));
        assertEq(app.composeHashProvenance(bytes32(0)), bytes32(0));
        assertEq(app.composeHashEffectiveAt(bytes32(0)), 0);
        assertFalse(app.isDeviceAllowed(bytes32(0)));
        assertEq(app.deviceEffectiveAt(bytes32(0)), 0);
        assertEq(app.noticePeriod(), MIN_NOTICE);
    }

    /// settings() returns the settings in force, the latest ones and when these take effect; once
    /// that time has come, the two agree.
    function test_SettingsView() public {
        uint64 created = uint64(block.timestamp);
        _assertSettingsView(app, _initialSettings(), _initialSettings(), created);

        vm.startPrank(appOwner);
        app.setRequireGpu(true);
        uint64 tightenedAt = uint64(block.timestamp);
        IApp.Settings memory gpu = _settings(ALL_KINDS, false, false, true);
        _assertSettingsView(app, gpu, gpu, tightenedAt);

        vm.warp(block.timestamp + 1 hours);
        uint64 effectiveAt = _noticeEnd();
        app.setAllowedTeeKinds(TDX | SIMULATED);
        app.setAnyDevice(true);
        vm.stopPrank();
        IApp.Settings memory current = _settings(TDX | SIMULATED, false, false, true);
        IApp.Settings memory scheduled = _settings(TDX | SIMULATED, true, false, true);
        _assertSettingsView(app, current, scheduled, effectiveAt);
        vm.warp(effectiveAt - 1);
        _assertSettingsView(app, current, scheduled, effectiveAt);
        vm.warp(effectiveAt);
        _assertSettingsView(app, scheduled, scheduled, effectiveAt);
        vm.warp(effectiveAt + 365 days);
        _assertSettingsView(app, scheduled, scheduled, effectiveAt);
    }

    /// The implementation holds no app state of its own.
    function test_ImplementationHasNoState() public view {
        assertEq(appImplementation.owner(), address(0));
        assertEq(appImplementation.keyGeneration(), 0);
        assertEq(appImplementation.allowedTeeKinds(), 0);
        assertEq(appImplementation.noticePeriod(), 0);
        assertFalse(appImplementation.isComposeHashAllowed(COMPOSE_HASH_1));
    }

    function test_ProxiableUuidOnTheImplementation() public view {
        assertEq(appImplementation.proxiableUUID(), ERC1967Utils.IMPLEMENTATION_SLOT);
    }

    function test_RevertWhen_ProxiableUuidThroughTheProxy() public {
        vm.expectRevert(UUPSUpgradeable.UUPSUnauthorizedCallContext.selector);
        app.proxiableUUID();
    }

    /// The ERC-7201 slot matches its formula, and the fields sit where the layout says.
    /// Only what the app was created with reads its effective time from `createdAt`: an addition
    /// in the creation block itself, with no notice, stores its own (so that an addition's gas
    /// does not depend on whether its block shares the creation block's timestamp, which would
    /// make a gas estimate made in another block too low).
    function test_AnAdditionWithoutNoticeInTheCreationBlockStoresItsEffectiveTime() public {
        bytes32 location = 0xfb9641096339c723e20eedb6bd940d8af9de2429fe53a2160ce4d3420fdd8400;
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.setMinNoticePeriod, (0)));
        IApp.AppInit memory init = _emptyInit(ALL_KINDS);
        init.noticePeriod = 0;
        init.composeHashes = new bytes32[](1);
        init.composeHashes[0] = COMPOSE_HASH_1;
        init.provenances = new Provenance[](1);
        init.provenances[0] = _provenance("v1");
        App fresh = App(registry.createApp(appOwner, init));
        vm.startPrank(appOwner);
        fresh.addComposeHash(COMPOSE_HASH_2, _provenance("v2"));
        fresh.addDevice(DEVICE_2);
        vm.stopPrank();
        bytes32 created = keccak256(abi.encode(COMPOSE_HASH_1, uint256(location) + 3));
        bytes32 added = keccak256(abi.encode(COMPOSE_HASH_2, uint256(location) + 3));
        assertEq(uint256(vm.load(address(fresh), created)), 0, "the initial hash stores nothing");
        assertEq(uint256(vm.load(address(fresh), added)), block.timestamp, "the addition stores its time");
        assertEq(
            uint256(vm.load(address(fresh), keccak256(abi.encode(DEVICE_2, uint256(location) + 4)))),
            block.timestamp
        );
        assertEq(fresh.composeHashEffectiveAt(COMPOSE_HASH_1), block.timestamp);
        assertEq(fresh.composeHashEffectiveAt(COMPOSE_HASH_2), block.timestamp);
        assertEq(fresh.deviceEffectiveAt(DEVICE_2), block.timestamp);
        assertEq(fresh.composeHashEffectiveAt(keccak256("never added")), 0);
    }

    function test_StorageLocation() public {
        bytes32 location =
            keccak256(abi.encode(uint256(keccak256("covenant.storage.App")) - 1)) & ~bytes32(uint256(0xff));
        assertEq(location, 0xfb9641096339c723e20eedb6bd940d8af9de2429fe53a2160ce4d3420fdd8400);

        uint64 createdAt = uint64(block.timestamp);
        vm.warp(block.timestamp + 1);
        uint64 effectiveAt = _noticeEnd();
        vm.startPrank(appOwner);
        app.setAllowedTeeKinds(TDX | SIMULATED);
        app.setAnyDevice(true);
        app.setRequireGpu(true);
        app.addDevice(DEVICE_2);
        app.bumpKeyGeneration();
        app.freeze();
        vm.stopPrank();

        assertEq(
            vm.load(address(app), keccak256(abi.encode(COMPOSE_HASH_1, location))), _digest(_provenance("v1"))
        );
        assertEq(
            vm.load(address(app), keccak256(abi.encode(DEVICE_1, uint256(location) + 1))), bytes32(uint256(1))
        );
        // Wave 1's fields, then the notice period packed after them.
        uint256 packed = uint256(vm.load(address(app), bytes32(uint256(location) + 2)));
        assertEq(packed & type(uint64).max, 2, "keyGeneration");
        assertEq((packed >> 64) & 0xff, TDX | SIMULATED, "allowedTeeKinds");
        assertEq((packed >> 72) & 0xff, 1, "anyDevice");
        assertEq((packed >> 80) & 0xff, 0, "requireUpToDateTcb");
        assertEq((packed >> 88) & 0xff, 1, "requireGpu");
        assertEq((packed >> 96) & 0xff, 1, "frozen");
        assertEq((packed >> 104) & type(uint64).max, MIN_NOTICE, "noticePeriod");
        assertEq((packed >> 168) & type(uint64).max, createdAt, "createdAt");
        assertEq(packed >> 232, 0);
        // What took effect at creation stores no effective time (it reads as createdAt).
        assertEq(
            uint256(vm.load(address(app), keccak256(abi.encode(COMPOSE_HASH_1, uint256(location) + 3)))),
            0,
            "composeHashEffectiveAt"
        );
        assertEq(app.composeHashEffectiveAt(COMPOSE_HASH_1), createdAt);
        assertEq(
            uint256(vm.load(address(app), keccak256(abi.encode(DEVICE_2, uint256(location) + 4)))),
            effectiveAt,
            "deviceEffectiveAt"
        );
        // The settings in force until settingsEffectiveAt: TDX | SIMULATED, not any device, GPU.
        uint256 before = uint256(vm.load(address(app), bytes32(uint256(location) + 5)));
        assertEq(before, uint256(TDX | SIMULATED) | (uint256(1) << 24), "settingsBefore");
        assertEq(
            uint256(vm.load(address(app), bytes32(uint256(location) + 6))), effectiveAt, "settingsEffectiveAt"
        );
    }
}

// =================================================================================================
// isAppAllowed, called directly on the app

contract AppIsAppAllowedTest is AppTestBase {
    function setUp() public override {
        super.setUp();
        vm.startPrank(appOwner);
        app.setRequireUpToDateTcb(true);
        app.setRequireGpu(true);
        vm.stopPrank();
    }

    function _good() internal view returns (BootInfo memory b) {
        b = _boot(address(app));
        b.gpuEvidenceHash = sha256("gpu evidence");
    }

    function _expect(BootInfo memory b, bool allowed, string memory reason) internal view {
        (bool gotAllowed, string memory gotReason) = app.isAppAllowed(b);
        assertEq(gotAllowed, allowed, gotReason);
        assertEq(gotReason, reason);
    }

    function test_Allowed() public view {
        _expect(_good(), true, "");
    }

    function test_DeniedWhen_AppIdMismatch() public {
        BootInfo memory b = _good();
        b.appId = stranger;
        _expect(b, false, "app id mismatch");
        // Another app of the same registry, with the same settings, is still another app.
        App other = _createApp();
        b.appId = address(other);
        _expect(b, false, "app id mismatch");
    }

    function test_DeniedWhen_ComposeHashNotAllowed() public {
        BootInfo memory b = _good();
        b.composeHash = COMPOSE_HASH_2;
        _expect(b, false, "compose hash not allowed");
        b.composeHash = bytes32(0);
        _expect(b, false, "compose hash not allowed");
    }

    function test_DeniedWhen_ComposeHashRemoved() public {
        vm.prank(appOwner);
        app.removeComposeHash(COMPOSE_HASH_1);
        _expect(_good(), false, "compose hash not allowed");
    }

    function test_DeniedWhen_DeviceNotAllowed() public {
        BootInfo memory b = _good();
        b.deviceId = DEVICE_2;
        _expect(b, false, "device not allowed");
        b.deviceId = bytes32(0);
        _expect(b, false, "device not allowed");
    }

    /// Once in force (after the notice period), any device may run the app.
    function test_AnyDeviceAllowsUnlistedDevices() public {
        vm.prank(appOwner);
        app.setAnyDevice(true);
        BootInfo memory b = _good();
        b.deviceId = DEVICE_2;
        _expect(b, false, "device not allowed");
        vm.warp(_noticeEnd());
        _expect(b, true, "");
        b.deviceId = bytes32(0);
        _expect(b, true, "");
    }

    function test_DeniedWhen_TeeKindNotAllowed() public {
        vm.prank(appOwner);
        app.setAllowedTeeKinds(SNP);
        BootInfo memory b = _good();
        b.teeKind = TeeKind.Tdx;
        _expect(b, false, "tee kind not allowed");
        b.teeKind = TeeKind.Simulated;
        _expect(b, false, "tee kind not allowed");
        b.teeKind = TeeKind.SevSnp;
        _expect(b, true, "");
    }

    function test_DeniedWhen_TeeKindUnknown() public {
        BootInfo memory b = _good();
        b.teeKind = TeeKind.Unknown;
        _expect(b, false, "tee kind not allowed");
    }

    function test_EachAllowedTeeKindIsAccepted() public {
        BootInfo memory b = _good();
        b.teeKind = TeeKind.Tdx;
        _expect(b, true, "");
        b.teeKind = TeeKind.SevSnp;
        _expect(b, true, "");
        b.teeKind = TeeKind.Simulated;
        _expect(b, true, "");
    }

    function test_DeniedWhen_TcbNotUpToDate() public {
        BootInfo memory b = _good();
        for (uint8 s = 0; s <= uint8(TcbStatus.Revoked); ++s) {
            b.tcbStatus = TcbStatus(s);
            if (b.tcbStatus == TcbStatus.UpToDate) _expect(b, true, "");
            else _expect(b, false, "tcb not up to date");
        }
    }

    /// Without the requirement the app accepts any TCB status (the registry screens Unknown/Revoked).
    function test_AnyTcbStatusWhenNotRequired() public {
        vm.prank(appOwner);
        app.setRequireUpToDateTcb(false);
        vm.warp(_noticeEnd());
        BootInfo memory b = _good();
        for (uint8 s = 0; s <= uint8(TcbStatus.Revoked); ++s) {
            b.tcbStatus = TcbStatus(s);
            _expect(b, true, "");
        }
    }

    function test_DeniedWhen_GpuEvidenceMissing() public {
        BootInfo memory b = _good();
        b.gpuEvidenceHash = bytes32(0);
        _expect(b, false, "gpu evidence required");
    }

    function test_NoGpuEvidenceWhenNotRequired() public {
        vm.prank(appOwner);
        app.setRequireGpu(false);
        vm.warp(_noticeEnd());
        BootInfo memory b = _good();
        b.gpuEvidenceHash = bytes32(0);
        _expect(b, true, "");
    }

    function test_DeniedWhen_KeyGenerationNotCurrent() public {
        BootInfo memory b = _good();
        b.keyGeneration = 0;
        _expect(b, false, "key generation not current");
        b.keyGeneration = 2;
        _expect(b, false, "key generation not current");
        b.keyGeneration = type(uint64).max;
        _expect(b, false, "key generation not current");
    }

    function test_DeniedWhen_InstanceIdMissing() public {
        BootInfo memory b = _good();
        b.instanceId = bytes20(0);
        _expect(b, false, "instance id missing");
    }

    /// Starting from a boot that breaks every condition, fixing them one at a time yields each
    /// reason in the documented order, then the allowed verdict.
    function test_ReasonsInOrder() public {
        vm.startPrank(appOwner);
        app.setAllowedTeeKinds(TDX);
        app.addComposeHash(COMPOSE_HASH_2, _provenance("v2"));
        app.addDevice(DEVICE_2);
        vm.stopPrank();
        BootInfo memory b = BootInfo({
            appId: stranger,
            composeHash: keccak256("app-compose v3"),
            instanceId: bytes20(0),
            deviceId: keccak256("device-3"),
            mrAggregated: bytes32(0),
            osImageHash: bytes32(0),
            osMeasurement: bytes32(0),
            teeKind: TeeKind.SevSnp,
            tcbStatus: TcbStatus.OutOfDate,
            gpuEvidenceHash: bytes32(0),
            keyGeneration: 7
        });
        _expect(b, false, "app id mismatch");
        b.appId = address(app);
        _expect(b, false, "compose hash not allowed");
        b.composeHash = COMPOSE_HASH_2;
        _expect(b, false, "compose hash not yet effective");
        b.composeHash = COMPOSE_HASH_1;
        _expect(b, false, "device not allowed");
        b.deviceId = DEVICE_2;
        _expect(b, false, "device not yet effective");
        b.deviceId = DEVICE_1;
        _expect(b, false, "tee kind not allowed");
        b.teeKind = TeeKind.Tdx;
        _expect(b, false, "tcb not up to date");
        b.tcbStatus = TcbStatus.UpToDate;
        _expect(b, false, "gpu evidence required");
        b.gpuEvidenceHash = sha256("gpu evidence");
        _expect(b, false, "key generation not current");
        b.keyGeneration = 1;
        _expect(b, false, "instance id missing");
        b.instanceId = INSTANCE;
        _expect(b, true, "");
    }

    /// The app's verdict does not depend on the fields only the registry checks.
    function test_IgnoresRegistryOnlyFields() public view {
        BootInfo memory b = _good();
        b.osImageHash = bytes32(0);
        b.osMeasurement = bytes32(0);
        b.mrAggregated = bytes32(0);
        _expect(b, true, "");
    }

    struct FuzzSettings {
        bool anyDevice;
        uint256 maskSeed;
        bool requireTcb;
        bool requireGpu;
        uint256 bumps;
        bool addComposeHash;
        bool addDevice;
        /// Seconds between the changes and the boot: before, at or after the notice period's end.
        uint256 elapsed;
    }

    /// Each of the eight checked fields is broken when its 2-bit slice of `faults` is zero (one time in
    /// four), so that boots reaching the later checks, and allowed boots, are common.
    struct FuzzBoot {
        uint256 faults;
        uint256 teeKind;
        uint256 tcbStatus;
        uint256 keyGeneration;
        bytes32 noise;
    }

    /// Whatever the settings, the time since they changed and the boot, the verdict and reason
    /// equal an independent recomputation of the documented checks, in order, from the app's views.
    function testFuzz_VerdictMatchesViews(FuzzSettings memory s, FuzzBoot memory f) public {
        _apply(s);
        vm.warp(block.timestamp + bound(s.elapsed, 0, 2 * MIN_NOTICE));
        BootInfo memory b = _fuzzBoot(f);

        string memory expected = _recompute(b);
        (bool allowed, string memory reason) = app.isAppAllowed(b);
        assertEq(reason, expected);
        assertEq(allowed, bytes(expected).length == 0);
    }

    function _apply(FuzzSettings memory s) internal {
        vm.startPrank(appOwner);
        if (s.anyDevice) app.setAnyDevice(true);
        // A non-empty subset of {Tdx, SevSnp, Simulated}: 1..7 shifted onto bits 1..3.
        uint8 mask = uint8(bound(s.maskSeed, 1, 7) << 1);
        if (mask != app.allowedTeeKinds()) app.setAllowedTeeKinds(mask);
        if (!s.requireTcb) app.setRequireUpToDateTcb(false);
        if (!s.requireGpu) app.setRequireGpu(false);
        uint256 bumps = bound(s.bumps, 0, 2);
        for (uint256 i = 0; i < bumps; ++i) {
            app.bumpKeyGeneration();
        }
        if (s.addComposeHash) app.addComposeHash(COMPOSE_HASH_2, _provenance("v2"));
        if (s.addDevice) app.addDevice(DEVICE_2);
        vm.stopPrank();
    }

    function _fuzzBoot(FuzzBoot memory f) internal view returns (BootInfo memory b) {
        b.appId = _fault(f, 0) ? address(uint160(uint256(keccak256(abi.encode(f.noise))))) : address(app);
        // A fault picks an unlisted value or the one the fuzzed settings may have added lately.
        b.composeHash = _fault(f, 1)
            ? (uint256(f.noise) % 2 == 0 ? keccak256(abi.encode("compose", f.noise)) : COMPOSE_HASH_2)
            : COMPOSE_HASH_1;
        b.deviceId = _fault(f, 2)
            ? (uint256(f.noise) % 3 == 0 ? keccak256(abi.encode("device", f.noise)) : DEVICE_2)
            : DEVICE_1;
        b.teeKind =
            _fault(f, 3) ? TeeKind(bound(f.teeKind, 0, uint256(type(TeeKind).max))) : _allowedKind(f.teeKind);
        b.tcbStatus = _fault(f, 4)
            ? TcbStatus(bound(f.tcbStatus, 0, uint256(type(TcbStatus).max)))
            : TcbStatus.UpToDate;
        b.gpuEvidenceHash =
            _fault(f, 5) ? bytes32(0) : keccak256(abi.encode("gpu", f.noise)) | bytes32(uint256(1));
        b.keyGeneration = _fault(f, 6) ? uint64(bound(f.keyGeneration, 0, 4)) : app.keyGeneration();
        b.instanceId = _fault(f, 7)
            ? bytes20(0)
            : bytes20(keccak256(abi.encode("instance", f.noise))) | bytes20(uint160(1));
        b.mrAggregated = f.noise;
        b.osImageHash = f.noise;
    }

    function _fault(FuzzBoot memory f, uint256 field) internal pure returns (bool) {
        return (f.faults >> (2 * field)) & 3 == 0;
    }

    /// One of the kinds the app allows, picked from `seed`.
    function _allowedKind(uint256 seed) internal view returns (TeeKind) {
        uint8 mask = app.allowedTeeKinds();
        uint256 kind = bound(seed, 1, 3);
        while ((mask >> kind) & 1 == 0) {
            kind = kind == 3 ? 1 : kind + 1;
        }
        return TeeKind(kind);
    }

    function _recompute(BootInfo memory b) internal view returns (string memory) {
        if (b.appId != address(app)) return "app id mismatch";
        if (!app.isComposeHashAllowed(b.composeHash)) return "compose hash not allowed";
        if (block.timestamp < app.composeHashEffectiveAt(b.composeHash)) {
            return "compose hash not yet effective";
        }
        if (!app.anyDevice()) {
            if (!app.isDeviceAllowed(b.deviceId)) return "device not allowed";
            if (block.timestamp < app.deviceEffectiveAt(b.deviceId)) return "device not yet effective";
        }
        if (app.allowedTeeKinds() & (uint8(1) << uint8(b.teeKind)) == 0) return "tee kind not allowed";
        if (app.requireUpToDateTcb() && b.tcbStatus != TcbStatus.UpToDate) return "tcb not up to date";
        if (app.requireGpu() && b.gpuEvidenceHash == bytes32(0)) return "gpu evidence required";
        if (b.keyGeneration != app.keyGeneration()) return "key generation not current";
        if (b.instanceId == bytes20(0)) return "instance id missing";
        return "";
    }
}
