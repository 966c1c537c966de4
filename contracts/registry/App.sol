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
    /// {AllowedTeeKindsSet}, {ComposeHashAdded}, …).
    /// @param initialOwner the app's owner.
    /// @param init the initial settings.
    function initialize(address initialOwner, AppInit calldata init) external initializer {
        if (msg.sender != _REGISTRY) revert AppNotCreatedByRegistry(msg.sender);
        __Ownable_init(initialOwner);
        AppStorage storage $ = _s();
        $.keyGeneration = 1;
        emit KeyGenerationBumped(1);
        _setAllowedTeeKinds($, init.allowedTeeKinds);
        if (init.anyDevice) _setAnyDevice($, true);
        if (init.requireUpToDateTcb) _setRequireUpToDateTcb($, true);
        if (init.requireGpu) _setRequireGpu($, true);
        uint256 hashes = init.composeHashes.length;
        if (hashes != init.provenances.length) {
            revert AppProvenanceCountMismatch(hashes, init.provenances.length);
        }
        for (uint256 i = 0; i < hashes; ++i) {
            _addComposeHash($, init.composeHashes[i], init.provenances[i]);
        }
        for (uint256 i = 0; i < init.devices.length; ++i) {
            _addDevice($, init.devices[i]);
        }
    }

    /// @inheritdoc IApp
    function addComposeHash(bytes32 composeHash, Provenance calldata provenance)
        external
        onlyOwner
        notFrozen
    {
        _addComposeHash(_s(), composeHash, provenance);
    }

    /// @inheritdoc IApp
    function removeComposeHash(bytes32 composeHash) external onlyOwner notFrozen {
        AppStorage storage $ = _s();
        if ($.composeHashes[composeHash] == bytes32(0)) revert AppComposeHashNotAllowed(composeHash);
        delete $.composeHashes[composeHash];
        emit ComposeHashRemoved(composeHash);
    }

    /// @inheritdoc IApp
    function addDevice(bytes32 deviceId) external onlyOwner notFrozen {
        _addDevice(_s(), deviceId);
    }

    /// @inheritdoc IApp
    function removeDevice(bytes32 deviceId) external onlyOwner notFrozen {
        AppStorage storage $ = _s();
        if (!$.devices[deviceId]) revert AppDeviceNotAllowed(deviceId);
        delete $.devices[deviceId];
        emit DeviceRemoved(deviceId);
    }

    /// @inheritdoc IApp
    function setAnyDevice(bool anyDevice_) external onlyOwner notFrozen {
        AppStorage storage $ = _s();
        if ($.anyDevice == anyDevice_) revert AppNoChange();
        _setAnyDevice($, anyDevice_);
    }

    /// @inheritdoc IApp
    function setAllowedTeeKinds(uint8 mask) external onlyOwner notFrozen {
        AppStorage storage $ = _s();
        if ($.allowedTeeKinds == mask) revert AppNoChange();
        _setAllowedTeeKinds($, mask);
    }

    /// @inheritdoc IApp
    function setRequireUpToDateTcb(bool required) external onlyOwner notFrozen {
        AppStorage storage $ = _s();
        if ($.requireUpToDateTcb == required) revert AppNoChange();
        _setRequireUpToDateTcb($, required);
    }

    /// @inheritdoc IApp
    function setRequireGpu(bool required) external onlyOwner notFrozen {
        AppStorage storage $ = _s();
        if ($.requireGpu == required) revert AppNoChange();
        _setRequireGpu($, required);
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
    /// @dev Checks, in order: app id is this app; compose hash allowed; device allowed (or any
    /// device); TEE kind allowed; TCB up to date if required; GPU evidence present if required; key
    /// generation current; instance id present.
    /// @param boot the verified boot.
    /// @return allowed true if every check passes.
    /// @return reason empty when allowed; otherwise a short, stable reason string.
    function isAppAllowed(BootInfo calldata boot) external view returns (bool allowed, string memory reason) {
        AppStorage storage $ = _s();
        if (boot.appId != address(this)) return (false, "app id mismatch");
        if ($.composeHashes[boot.composeHash] == bytes32(0)) return (false, "compose hash not allowed");
        if (!$.anyDevice && !$.devices[boot.deviceId]) return (false, "device not allowed");
        if ((uint256($.allowedTeeKinds) >> uint8(boot.teeKind)) & 1 == 0) {
            return (false, "tee kind not allowed");
        }
        if ($.requireUpToDateTcb && boot.tcbStatus != TcbStatus.UpToDate) {
            return (false, "tcb not up to date");
        }
        if ($.requireGpu && boot.gpuEvidenceHash == bytes32(0)) return (false, "gpu evidence required");
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
    function isDeviceAllowed(bytes32 deviceId) external view returns (bool) {
        return _s().devices[deviceId];
    }

    /// @inheritdoc IApp
    function anyDevice() external view returns (bool) {
        return _s().anyDevice;
    }

    /// @inheritdoc IApp
    function allowedTeeKinds() external view returns (uint8) {
        return _s().allowedTeeKinds;
    }

    /// @inheritdoc IApp
    function requireUpToDateTcb() external view returns (bool) {
        return _s().requireUpToDateTcb;
    }

    /// @inheritdoc IApp
    function requireGpu() external view returns (bool) {
        return _s().requireGpu;
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

    function _addComposeHash(AppStorage storage $, bytes32 composeHash, Provenance calldata provenance)
        private
    {
        if (composeHash == bytes32(0)) revert AppZeroValue();
        if ($.composeHashes[composeHash] != bytes32(0)) revert AppComposeHashAlreadyAllowed(composeHash);
        bytes32 digest = ProvenanceLib.checkedDigest(provenance);
        $.composeHashes[composeHash] = digest;
        emit ComposeHashAdded(composeHash, digest, provenance);
    }

    function _addDevice(AppStorage storage $, bytes32 deviceId) private {
        if (deviceId == bytes32(0)) revert AppZeroValue();
        if ($.devices[deviceId]) revert AppDeviceAlreadyAllowed(deviceId);
        $.devices[deviceId] = true;
        emit DeviceAdded(deviceId);
    }

    function _setAllowedTeeKinds(AppStorage storage $, uint8 mask) private {
        if (mask == 0 || mask & ~KNOWN_TEE_KINDS != 0) revert AppInvalidTeeKinds(mask);
        uint8 old = $.allowedTeeKinds;
        $.allowedTeeKinds = mask;
        emit AllowedTeeKindsSet(old, mask);
    }

    function _setAnyDevice(AppStorage storage $, bool anyDevice_) private {
        $.anyDevice = anyDevice_;
        emit AnyDeviceSet(anyDevice_);
    }

    function _setRequireUpToDateTcb(AppStorage storage $, bool required) private {
        $.requireUpToDateTcb = required;
        emit RequireUpToDateTcbSet(required);
    }

    function _setRequireGpu(AppStorage storage $, bool required) private {
        $.requireGpu = required;
        emit RequireGpuSet(required);
    }

    function _s() private pure returns (AppStorage storage $) {
        assembly {
            $.slot := APP_STORAGE_LOCATION
        }
    }
}
