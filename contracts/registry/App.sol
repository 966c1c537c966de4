// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {BootInfo, Provenance, TcbStatus} from "../interfaces/BootPolicy.sol";
import {IApp} from "../interfaces/IApp.sol";
import {IKmsRegistry} from "../interfaces/IKmsRegistry.sol";
import {ProvenanceLib} from "../libraries/ProvenanceLib.sol";
import {
    Ownable2StepUpgradeable
} from "@openzeppelin/contracts-upgradeable/access/Ownable2StepUpgradeable.sol";
import {OwnableUpgradeable} from "@openzeppelin/contracts-upgradeable/access/OwnableUpgradeable.sol";
import {UUPSUpgradeable} from "@openzeppelin/contracts/proxy/utils/UUPSUpgradeable.sol";

/// @title App
/// @notice The policy of one Covenant app, behind its own ERC1967 proxy created by
/// {IKmsRegistry-createApp}. See {IApp}.
/// @dev Upgrades go only to the implementation governance set in the registry, and only while the
/// app is not frozen; the owner decides when. State lives in one ERC-7201 namespace.
contract App is IApp, Ownable2StepUpgradeable, UUPSUpgradeable {
    /// @notice Bits of the TEE kinds an app may allow: Tdx (bit 1), SevSnp (bit 2), Simulated
    /// (bit 3); never Unknown (bit 0). A kind's bit is `1 << uint8(kind)`.
    uint8 public constant KNOWN_TEE_KINDS = 0x0e;
    /// @notice The longest notice period an app may set (a year, as the registry's minimum), so
    /// that `block.timestamp + notice` never overflows and a loosening can always be scheduled.
    uint64 public constant MAX_NOTICE_PERIOD = 365 days;

    /// @custom:storage-location erc7201:covenant.storage.App
    struct AppStorage {
        mapping(bytes32 composeHash => bytes32 provenanceDigest) composeHashes;
        mapping(bytes32 deviceId => bool allowed) devices;
        uint64 keyGeneration;
        uint8 allowedTeeKinds;
        bool anyDevice;
        bool requireUpToDateTcb;
        bool requireGpu;
        bool frozen;
        // v2: the notice period. The four flags above are the latest (scheduled) settings;
        // `settingsBefore` applies until `settingsEffectiveAt`.
        uint64 noticePeriod;
        // v2: when the app was created (0 for an app created before v2). What took effect then
        // stores no effective time of its own (an effective time of 0 reads as `createdAt`).
        uint64 createdAt;
        mapping(bytes32 composeHash => uint64 effectiveAt) composeHashEffectiveAt;
        mapping(bytes32 deviceId => uint64 effectiveAt) deviceEffectiveAt;
        Settings settingsBefore;
        uint64 settingsEffectiveAt;
    }

    // keccak256(abi.encode(uint256(keccak256("covenant.storage.App")) - 1)) & ~bytes32(uint256(0xff))
    bytes32 private constant APP_STORAGE_LOCATION =
        0xfb9641096339c723e20eedb6bd940d8af9de2429fe53a2160ce4d3420fdd8400;

    /// @dev The registry every proxy of this implementation belongs to.
    address private immutable _REGISTRY;

    modifier notFrozen() {
        if (_s().frozen) revert AppIsFrozen();
        _;
    }

    /// @param registry_ the KMS registry (proxy) that creates apps from this implementation.
    constructor(address registry_) {
        _REGISTRY = registry_;
        _disableInitializers();
    }

    /// @notice Sets up a new app. Called once, by the registry, through the proxy's constructor.
    /// @dev Emits the events of every initial setting ({KeyGenerationBumped} with 1,
    /// {NoticePeriodSet}, {SettingsScheduled}, {ComposeHashAdded}, …), all effective at once.
    /// @param initialOwner the app's owner.
    /// @param init the initial settings.
    function initialize(address initialOwner, AppInit calldata init) external initializer {
        if (msg.sender != _REGISTRY) revert AppNotCreatedByRegistry(msg.sender);
        __Ownable_init(initialOwner);
        AppStorage storage $ = _s();
        uint64 createdAt = uint64(block.timestamp);
        $.keyGeneration = 1;
        $.createdAt = createdAt;
        emit KeyGenerationBumped(1);
        uint64 minimum = IKmsRegistry(_REGISTRY).minNoticePeriod();
        if (init.noticePeriod < minimum) revert AppNoticePeriodTooShort(init.noticePeriod, minimum);
        if (init.noticePeriod > MAX_NOTICE_PERIOD) revert AppNoticePeriodTooLong(init.noticePeriod);
        $.noticePeriod = init.noticePeriod;
        emit NoticePeriodSet(init.noticePeriod);
        Settings memory initial = Settings({
            allowedTeeKinds: init.allowedTeeKinds,
            anyDevice: init.anyDevice,
            requireUpToDateTcb: init.requireUpToDateTcb,
            requireGpu: init.requireGpu
        });
        _checkTeeKinds(initial.allowedTeeKinds);
        // In force at once: no schedule to store (see {settings}).
        $.allowedTeeKinds = initial.allowedTeeKinds;
        $.anyDevice = initial.anyDevice;
        $.requireUpToDateTcb = initial.requireUpToDateTcb;
        $.requireGpu = initial.requireGpu;
        emit SettingsScheduled(initial, initial, createdAt);
        uint256 hashes = init.composeHashes.length;
        if (hashes != init.provenances.length) {
            revert AppProvenanceCountMismatch(hashes, init.provenances.length);
        }
        for (uint256 i = 0; i < hashes; ++i) {
            _addComposeHash($, init.composeHashes[i], init.provenances[i], 0);
        }
        for (uint256 i = 0; i < init.devices.length; ++i) {
            _addDevice($, init.devices[i], 0);
        }
    }

    /// @inheritdoc IApp
    function addComposeHash(bytes32 composeHash, Provenance calldata provenance)
        external
        onlyOwner
        notFrozen
    {
        _addComposeHash(_s(), composeHash, provenance, _noticeEnd());
    }

    /// @inheritdoc IApp
    function removeComposeHash(bytes32 composeHash) external onlyOwner notFrozen {
        AppStorage storage $ = _s();
        if ($.composeHashes[composeHash] == bytes32(0)) revert AppComposeHashNotAllowed(composeHash);
        delete $.composeHashes[composeHash];
        delete $.composeHashEffectiveAt[composeHash];
        emit ComposeHashRemoved(composeHash);
    }

    /// @inheritdoc IApp
    function addDevice(bytes32 deviceId) external onlyOwner notFrozen {
        _addDevice(_s(), deviceId, _noticeEnd());
    }

    /// @inheritdoc IApp
    function removeDevice(bytes32 deviceId) external onlyOwner notFrozen {
        AppStorage storage $ = _s();
        if (!$.devices[deviceId]) revert AppDeviceNotAllowed(deviceId);
        delete $.devices[deviceId];
        delete $.deviceEffectiveAt[deviceId];
        emit DeviceRemoved(deviceId);
    }

    /// @inheritdoc IApp
    function setAnyDevice(bool anyDevice_) external onlyOwner notFrozen {
        AppStorage storage $ = _s();
        if ($.anyDevice == anyDevice_) revert AppNoChange();
        Settings memory next = _scheduled($);
        next.anyDevice = anyDevice_;
        _schedule($, next);
    }

    /// @inheritdoc IApp
    function setAllowedTeeKinds(uint8 mask) external onlyOwner notFrozen {
        AppStorage storage $ = _s();
        if ($.allowedTeeKinds == mask) revert AppNoChange();
        _checkTeeKinds(mask);
        Settings memory next = _scheduled($);
        next.allowedTeeKinds = mask;
        _schedule($, next);
    }

    /// @inheritdoc IApp
    function setRequireUpToDateTcb(bool required) external onlyOwner notFrozen {
        AppStorage storage $ = _s();
        if ($.requireUpToDateTcb == required) revert AppNoChange();
        Settings memory next = _scheduled($);
        next.requireUpToDateTcb = required;
        _schedule($, next);
    }

    /// @inheritdoc IApp
    function setRequireGpu(bool required) external onlyOwner notFrozen {
        AppStorage storage $ = _s();
        if ($.requireGpu == required) revert AppNoChange();
        Settings memory next = _scheduled($);
        next.requireGpu = required;
        _schedule($, next);
    }

    /// @inheritdoc IApp
    function setNoticePeriod(uint64 noticePeriod_) external onlyOwner notFrozen {
        AppStorage storage $ = _s();
        if (noticePeriod_ <= $.noticePeriod) revert AppNoticePeriodDecrease($.noticePeriod, noticePeriod_);
        if (noticePeriod_ > MAX_NOTICE_PERIOD) revert AppNoticePeriodTooLong(noticePeriod_);
        $.noticePeriod = noticePeriod_;
        emit NoticePeriodSet(noticePeriod_);
    }

    /// @inheritdoc IApp
    function bumpKeyGeneration() external onlyOwner notFrozen {
        AppStorage storage $ = _s();
        uint64 next = $.keyGeneration + 1;
        $.keyGeneration = next;
        emit KeyGenerationBumped(next);
    }

    /// @inheritdoc IApp
    function freeze() external onlyOwner notFrozen {
        _s().frozen = true;
        emit AppFrozen();
    }

    /// @notice Starts a two-step ownership transfer; refused once frozen.
    /// @dev Requirements: owner; not frozen. Emits {OwnershipTransferStarted}.
    /// @param newOwner the proposed owner, who must call {acceptOwnership}.
    function transferOwnership(address newOwner)
        public
        override(Ownable2StepUpgradeable)
        onlyOwner
        notFrozen
    {
        super.transferOwnership(newOwner);
    }

    /// @notice Completes a two-step ownership transfer; refused once frozen.
    /// @dev Requirements: the pending owner; not frozen. Emits {OwnershipTransferred}.
    function acceptOwnership() public override(Ownable2StepUpgradeable) notFrozen {
        super.acceptOwnership();
    }

    /// @notice Leaves the app without an owner; refused once frozen (freezing is the way to do that).
    /// @dev Requirements: owner; not frozen. Emits {OwnershipTransferred}.
    function renounceOwnership() public override(OwnableUpgradeable) onlyOwner notFrozen {
        super.renounceOwnership();
    }

    /// @inheritdoc IApp
    function owner() public view override(IApp, OwnableUpgradeable) returns (address) {
        return super.owner();
    }

    /// @notice Whether `boot` may receive this app's keys, and if not, why.
    /// @dev Checks, in order: app id is this app; compose hash allowed and effective; device
    /// allowed and effective (or any device); TEE kind allowed; TCB up to date if required; GPU
    /// evidence present if required; key generation current; instance id present. Settings,
    /// compose hashes and devices are judged at this block's timestamp.
    /// @param boot the verified boot.
    /// @return allowed true if every check passes.
    /// @return reason empty when allowed; otherwise a short, stable reason string.
    function isAppAllowed(BootInfo calldata boot) external view returns (bool allowed, string memory reason) {
        AppStorage storage $ = _s();
        if (boot.appId != address(this)) return (false, "app id mismatch");
        if ($.composeHashes[boot.composeHash] == bytes32(0)) return (false, "compose hash not allowed");
        if (block.timestamp < $.composeHashEffectiveAt[boot.composeHash]) {
            return (false, "compose hash not yet effective");
        }
        Settings memory current = _current($);
        if (!current.anyDevice) {
            if (!$.devices[boot.deviceId]) return (false, "device not allowed");
            if (block.timestamp < $.deviceEffectiveAt[boot.deviceId]) {
                return (false, "device not yet effective");
            }
        }
        if ((uint256(current.allowedTeeKinds) >> uint8(boot.teeKind)) & 1 == 0) {
            return (false, "tee kind not allowed");
        }
        if (current.requireUpToDateTcb && boot.tcbStatus != TcbStatus.UpToDate) {
            return (false, "tcb not up to date");
        }
        if (current.requireGpu && boot.gpuEvidenceHash == bytes32(0)) {
            return (false, "gpu evidence required");
        }
        if (boot.keyGeneration != $.keyGeneration) return (false, "key generation not current");
        if (boot.instanceId == bytes20(0)) return (false, "instance id missing");
        return (true, "");
    }

    /// @inheritdoc IApp
    function isComposeHashAllowed(bytes32 composeHash) external view returns (bool) {
        return _s().composeHashes[composeHash] != bytes32(0);
    }

    /// @inheritdoc IApp
    function composeHashProvenance(bytes32 composeHash) external view returns (bytes32) {
        return _s().composeHashes[composeHash];
    }

    /// @inheritdoc IApp
    function composeHashEffectiveAt(bytes32 composeHash) external view returns (uint64) {
        AppStorage storage $ = _s();
        if ($.composeHashes[composeHash] == bytes32(0)) return 0;
        uint64 effectiveAt = $.composeHashEffectiveAt[composeHash];
        return effectiveAt == 0 ? $.createdAt : effectiveAt;
    }

    /// @inheritdoc IApp
    function deviceEffectiveAt(bytes32 deviceId) external view returns (uint64) {
        AppStorage storage $ = _s();
        if (!$.devices[deviceId]) return 0;
        uint64 effectiveAt = $.deviceEffectiveAt[deviceId];
        return effectiveAt == 0 ? $.createdAt : effectiveAt;
    }

    /// @inheritdoc IApp
    function settings() external view returns (Settings memory, Settings memory, uint64) {
        AppStorage storage $ = _s();
        uint64 effectiveAt = $.settingsEffectiveAt;
        return (_current($), _scheduled($), effectiveAt == 0 ? $.createdAt : effectiveAt);
    }

    /// @inheritdoc IApp
    function noticePeriod() external view returns (uint64) {
        return _s().noticePeriod;
    }

    /// @inheritdoc IApp
    function isDeviceAllowed(bytes32 deviceId) external view returns (bool) {
        return _s().devices[deviceId];
    }

    /// @inheritdoc IApp
    function anyDevice() external view returns (bool) {
        return _current(_s()).anyDevice;
    }

    /// @inheritdoc IApp
    function allowedTeeKinds() external view returns (uint8) {
        return _current(_s()).allowedTeeKinds;
    }

    /// @inheritdoc IApp
    function requireUpToDateTcb() external view returns (bool) {
        return _current(_s()).requireUpToDateTcb;
    }

    /// @inheritdoc IApp
    function requireGpu() external view returns (bool) {
        return _current(_s()).requireGpu;
    }

    /// @inheritdoc IApp
    function keyGeneration() external view returns (uint64) {
        return _s().keyGeneration;
    }

    /// @inheritdoc IApp
    function frozen() external view returns (bool) {
        return _s().frozen;
    }

    /// @inheritdoc IApp
    function registry() external view returns (address) {
        return _REGISTRY;
    }

    /// @dev Upgrades only to the registry's current app implementation, by the owner, while not frozen.
    function _authorizeUpgrade(address newImplementation) internal view override onlyOwner notFrozen {
        address governed = IKmsRegistry(_REGISTRY).appImplementation();
        if (newImplementation != governed) revert AppUpgradeNotGoverned(newImplementation, governed);
    }

    /// When a loosening made now takes effect: after the app's notice period or the registry's
    /// minimum, whichever is longer.
    function _noticeEnd() private view returns (uint64) {
        uint64 notice = _s().noticePeriod;
        uint64 minimum = IKmsRegistry(_REGISTRY).minNoticePeriod();
        return uint64(block.timestamp) + (notice > minimum ? notice : minimum);
    }

    /// Lists `composeHash` from `effectiveAt` on; 0: from the app's creation (stores no time of
    /// its own: the views read `createdAt`).
    function _addComposeHash(
        AppStorage storage $,
        bytes32 composeHash,
        Provenance calldata provenance,
        uint64 effectiveAt
    ) private {
        if (composeHash == bytes32(0)) revert AppZeroValue();
        if ($.composeHashes[composeHash] != bytes32(0)) revert AppComposeHashAlreadyAllowed(composeHash);
        bytes32 digest = ProvenanceLib.checkedDigest(provenance);
        $.composeHashes[composeHash] = digest;
        if (effectiveAt == 0) {
            effectiveAt = $.createdAt;
        } else {
            $.composeHashEffectiveAt[composeHash] = effectiveAt;
        }
        emit ComposeHashAdded(composeHash, digest, provenance, effectiveAt);
    }

    /// Lists `deviceId` from `effectiveAt` on; 0: from the app's creation.
    function _addDevice(AppStorage storage $, bytes32 deviceId, uint64 effectiveAt) private {
        if (deviceId == bytes32(0)) revert AppZeroValue();
        if ($.devices[deviceId]) revert AppDeviceAlreadyAllowed(deviceId);
        $.devices[deviceId] = true;
        if (effectiveAt == 0) {
            effectiveAt = $.createdAt;
        } else {
            $.deviceEffectiveAt[deviceId] = effectiveAt;
        }
        emit DeviceAdded(deviceId, effectiveAt);
    }

    function _checkTeeKinds(uint8 mask) private pure {
        if (mask == 0 || mask & ~KNOWN_TEE_KINDS != 0) revert AppInvalidTeeKinds(mask);
    }

    /// The latest settings (in force from `settingsEffectiveAt` on).
    function _scheduled(AppStorage storage $) private view returns (Settings memory) {
        return Settings({
            allowedTeeKinds: $.allowedTeeKinds,
            anyDevice: $.anyDevice,
            requireUpToDateTcb: $.requireUpToDateTcb,
            requireGpu: $.requireGpu
        });
    }

    /// The settings in force at this block.
    function _current(AppStorage storage $) private view returns (Settings memory) {
        if (block.timestamp >= $.settingsEffectiveAt) return _scheduled($);
        return $.settingsBefore;
    }

    /// Schedules `next`: the stricter of the settings in force and `next` applies at once, `next`
    /// itself after the notice period (at once when it loosens nothing).
    function _schedule(AppStorage storage $, Settings memory next) private {
        Settings memory current = _current($);
        Settings memory before = Settings({
            allowedTeeKinds: current.allowedTeeKinds & next.allowedTeeKinds,
            anyDevice: current.anyDevice && next.anyDevice,
            requireUpToDateTcb: current.requireUpToDateTcb || next.requireUpToDateTcb,
            requireGpu: current.requireGpu || next.requireGpu
        });
        bool loosens = before.allowedTeeKinds != next.allowedTeeKinds || before.anyDevice != next.anyDevice
            || before.requireUpToDateTcb != next.requireUpToDateTcb || before.requireGpu != next.requireGpu;
        _store($, before, next, loosens ? _noticeEnd() : uint64(block.timestamp));
    }

    function _store(AppStorage storage $, Settings memory before, Settings memory next, uint64 effectiveAt)
        private
    {
        $.allowedTeeKinds = next.allowedTeeKinds;
        $.anyDevice = next.anyDevice;
        $.requireUpToDateTcb = next.requireUpToDateTcb;
        $.requireGpu = next.requireGpu;
        $.settingsBefore = before;
        $.settingsEffectiveAt = effectiveAt;
        emit SettingsScheduled(before, next, effectiveAt);
    }

    function _s() private pure returns (AppStorage storage $) {
        assembly {
            $.slot := APP_STORAGE_LOCATION
        }
    }
}
