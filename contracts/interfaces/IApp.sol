// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IAppPolicy, Provenance} from "./BootPolicy.sol";

/// @title IApp
/// @notice One Covenant app: which code (compose hashes) may run, on which devices and TEEs, under
/// which TCB and GPU requirements, and the generation of its keys. Created only by
/// {IKmsRegistry-createApp}; changed only by its owner (an EOA, a Safe, or the app's own
/// Governor/Timelock) until {freeze}, after which nothing about it can change.
interface IApp is IAppPolicy {
    /// The initial settings of a new app.
    struct AppInit {
        /// Compose hashes allowed from the start (may be empty).
        bytes32[] composeHashes;
        /// The provenance of each of `composeHashes`, index for index.
        Provenance[] provenances;
        /// Devices allowed from the start.
        bytes32[] devices;
        /// Whether any device is allowed.
        bool anyDevice;
        /// Bit mask of allowed {TeeKind}s (`1 << kind`); must be non-zero, `Unknown` excluded.
        uint8 allowedTeeKinds;
        /// Whether the platform TCB must be `UpToDate`.
        bool requireUpToDateTcb;
        /// Whether GPU evidence must be presented.
        bool requireGpu;
    }

    /// @notice A compose hash may now run. `provenance` says how to rebuild it.
    event ComposeHashAdded(bytes32 indexed composeHash, bytes32 provenanceDigest, Provenance provenance);
    /// @notice A compose hash may no longer run.
    event ComposeHashRemoved(bytes32 indexed composeHash);
    /// @notice A device may now run the app.
    event DeviceAdded(bytes32 indexed deviceId);
    /// @notice A device may no longer run the app.
    event DeviceRemoved(bytes32 indexed deviceId);
    /// @notice Whether any device may run the app changed.
    event AnyDeviceSet(bool anyDevice);
    /// @notice The allowed TEE kinds changed.
    event AllowedTeeKindsSet(uint8 oldMask, uint8 newMask);
    /// @notice Whether an up-to-date TCB is required changed.
    event RequireUpToDateTcbSet(bool required);
    /// @notice Whether GPU evidence is required changed.
    event RequireGpuSet(bool required);
    /// @notice The app's keys were rotated: keys of the new generation differ from all earlier ones.
    event KeyGenerationBumped(uint64 newGeneration);
    /// @notice The app was frozen: from now on nothing about it can change.
    event AppFrozen();

    /// @notice The app is frozen; nothing about it can change.
    error AppIsFrozen();
    /// @notice The call would not change anything.
    error AppNoChange();
    /// @notice A zero compose hash or device id.
    error AppZeroValue();
    /// @notice The compose hash is already allowed.
    error AppComposeHashAlreadyAllowed(bytes32 composeHash);
    /// @notice The compose hash is not allowed.
    error AppComposeHashNotAllowed(bytes32 composeHash);
    /// @notice The device is already allowed.
    error AppDeviceAlreadyAllowed(bytes32 deviceId);
    /// @notice The device is not allowed.
    error AppDeviceNotAllowed(bytes32 deviceId);
    /// @notice The TEE kind mask is zero or has bits outside the known kinds.
    error AppInvalidTeeKinds(uint8 mask);
    /// @notice `composeHashes` and `provenances` differ in length.
    error AppProvenanceCountMismatch(uint256 hashes, uint256 provenances);
    /// @notice Upgrades go only to the implementation governance set in the registry.
    error AppUpgradeNotGoverned(address implementation, address governed);
    /// @notice Only the registry may create apps.
    error AppNotCreatedByRegistry(address caller);

    /// @notice Allows `composeHash` to run, recording where it comes from.
    /// @dev Requirements: caller is the owner; not frozen; `composeHash` non-zero and not yet
    /// allowed; `provenance` within {ProvenanceLib} bounds. Emits {ComposeHashAdded}.
    /// @param composeHash sha256 of the JCS-canonical app-compose document.
    /// @param provenance source URL, commit and container image digests of that document.
    function addComposeHash(bytes32 composeHash, Provenance calldata provenance) external;

    /// @notice Stops `composeHash` from running (instances running it lose access once final).
    /// @dev Requirements: caller is the owner; not frozen; `composeHash` allowed. Emits {ComposeHashRemoved}.
    /// @param composeHash the hash to remove.
    function removeComposeHash(bytes32 composeHash) external;

    /// @notice Allows the device `deviceId` to run the app.
    /// @dev Requirements: caller is the owner; not frozen; non-zero; not yet allowed. Emits {DeviceAdded}.
    /// @param deviceId sha256(PPID) or sha256(CHIP_ID).
    function addDevice(bytes32 deviceId) external;

    /// @notice Stops the device `deviceId` from running the app.
    /// @dev Requirements: caller is the owner; not frozen; allowed. Emits {DeviceRemoved}.
    /// @param deviceId the device to remove.
    function removeDevice(bytes32 deviceId) external;

    /// @notice Sets whether any device may run the app (device list ignored while true).
    /// @dev Requirements: caller is the owner; not frozen; a change. Emits {AnyDeviceSet}.
    /// @param anyDevice the new setting.
    function setAnyDevice(bool anyDevice) external;

    /// @notice Sets which TEE kinds may run the app, as a bit mask `1 << uint8(TeeKind)`.
    /// @dev Requirements: caller is the owner; not frozen; non-zero, known kinds only, a change.
    /// Emits {AllowedTeeKindsSet}.
    /// @param mask the new mask.
    function setAllowedTeeKinds(uint8 mask) external;

    /// @notice Sets whether the platform TCB must be up to date.
    /// @dev Requirements: caller is the owner; not frozen; a change. Emits {RequireUpToDateTcbSet}.
    /// @param required the new setting.
    function setRequireUpToDateTcb(bool required) external;

    /// @notice Sets whether GPU evidence must be presented.
    /// @dev Requirements: caller is the owner; not frozen; a change. Emits {RequireGpuSet}.
    /// @param required the new setting.
    function setRequireGpu(bool required) external;

    /// @notice Rotates the app's keys: the kms-oracle derives a new generation of every key.
    /// @dev Requirements: caller is the owner; not frozen. Emits {KeyGenerationBumped}.
    function bumpKeyGeneration() external;

    /// @notice Freezes the app for good: no setting, owner or implementation can change afterwards.
    /// @dev Requirements: caller is the owner; not frozen. Emits {AppFrozen}.
    function freeze() external;

    /// @notice Whether `composeHash` may run.
    /// @param composeHash the hash.
    /// @return allowed true if allowed.
    function isComposeHashAllowed(bytes32 composeHash) external view returns (bool allowed);

    /// @notice The digest of the provenance recorded when `composeHash` was added (zero if not allowed).
    /// @param composeHash the hash.
    /// @return digest keccak256(abi.encode(provenance)).
    function composeHashProvenance(bytes32 composeHash) external view returns (bytes32 digest);

    /// @notice Whether `deviceId` is on the device list (see also {anyDevice}).
    /// @param deviceId the device.
    /// @return allowed true if listed.
    function isDeviceAllowed(bytes32 deviceId) external view returns (bool allowed);

    /// @notice Whether any device may run the app.
    /// @return anyDevice the setting.
    function anyDevice() external view returns (bool anyDevice);

    /// @notice The mask of allowed TEE kinds.
    /// @return mask `1 << uint8(TeeKind)` per allowed kind.
    function allowedTeeKinds() external view returns (uint8 mask);

    /// @notice Whether an up-to-date TCB is required.
    /// @return required the setting.
    function requireUpToDateTcb() external view returns (bool required);

    /// @notice Whether GPU evidence is required.
    /// @return required the setting.
    function requireGpu() external view returns (bool required);

    /// @notice The current key generation (starts at 1).
    /// @return generation the generation.
    function keyGeneration() external view returns (uint64 generation);

    /// @notice Whether the app is frozen.
    /// @return frozen true once {freeze} ran.
    function frozen() external view returns (bool frozen);

    /// @notice The KMS registry that created this app.
    /// @return registry its address.
    function registry() external view returns (address registry);

    /// @notice The app's owner.
    /// @return the owner.
    function owner() external view returns (address);
}
