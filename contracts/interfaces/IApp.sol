// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IAppPolicy, Provenance} from "./BootPolicy.sol";

/// @title IApp
/// @notice One Covenant app: which code (compose hashes) may run, on which devices and TEEs, under
/// which TCB and GPU requirements, and the generation of its keys. Created only by
/// {IKmsRegistry-createApp}; changed only by its owner (an EOA, a Safe, or the app's own
/// Governor/Timelock) until {freeze}, after which nothing about it can change.
///
/// Every app has a notice period: a loosening (a compose hash or device added, a TEE kind allowed,
/// any-device switched on, the TCB or GPU requirement dropped) takes effect only `notice` seconds
/// after it is made, where `notice` is the larger of the app's {noticePeriod} and the registry's
/// {IKmsRegistry-minNoticePeriod} at that time; removals and tightenings take effect at once. So
/// users see every upgrade on chain before it can receive keys. The initial settings of a new app
/// are effective at creation (a new app id has no users to warn).
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
        /// Seconds a loosening waits before it takes effect; at least the registry's minimum.
        uint64 noticePeriod;
    }

    /// The settings {isAppAllowed} applies besides the compose hash and device lists.
    struct Settings {
        /// Bit mask of allowed {TeeKind}s (`1 << kind`).
        uint8 allowedTeeKinds;
        /// Whether any device is allowed (the device list is ignored).
        bool anyDevice;
        /// Whether the platform TCB must be `UpToDate`.
        bool requireUpToDateTcb;
        /// Whether GPU evidence must be presented.
        bool requireGpu;
    }

    /// @notice `composeHash` was added; it may run from `effectiveAt` (block timestamp) on.
    /// `provenance` says how to rebuild it.
    event ComposeHashAdded(
        bytes32 indexed composeHash, bytes32 provenanceDigest, Provenance provenance, uint64 effectiveAt
    );
    /// @notice A compose hash may no longer run (at once).
    event ComposeHashRemoved(bytes32 indexed composeHash);
    /// @notice `deviceId` was added; it may run the app from `effectiveAt` on.
    event DeviceAdded(bytes32 indexed deviceId, uint64 effectiveAt);
    /// @notice A device may no longer run the app (at once).
    event DeviceRemoved(bytes32 indexed deviceId);
    /// @notice The settings changed: `before` applies until `effectiveAt` (block timestamp), `scheduled`
    /// from then on. `before` is the stricter of what applied when the change was made and `scheduled`,
    /// so a tightening applies at once; `effectiveAt` is the block's time when nothing was loosened.
    event SettingsScheduled(Settings before, Settings scheduled, uint64 effectiveAt);
    /// @notice The app's notice period changed (it can only grow).
    event NoticePeriodSet(uint64 noticePeriod);
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
    /// @notice The notice period is below the registry's minimum.
    error AppNoticePeriodTooShort(uint64 noticePeriod, uint64 minimum);
    /// @notice The notice period is longer than {App-MAX_NOTICE_PERIOD}.
    error AppNoticePeriodTooLong(uint64 noticePeriod);
    /// @notice The notice period can only grow.
    error AppNoticePeriodDecrease(uint64 current, uint64 requested);

    /// @notice Allows `composeHash` to run once the notice period has passed, recording where it
    /// comes from.
    /// @dev Requirements: caller is the owner; not frozen; `composeHash` non-zero and not yet
    /// allowed; `provenance` within {ProvenanceLib} bounds. Emits {ComposeHashAdded}.
    /// @param composeHash sha256 of the JCS-canonical app-compose document.
    /// @param provenance source URL, commit and container image digests of that document.
    function addComposeHash(bytes32 composeHash, Provenance calldata provenance) external;

    /// @notice Stops `composeHash` from running (instances running it lose access once final).
    /// @dev Requirements: caller is the owner; not frozen; `composeHash` allowed. Emits {ComposeHashRemoved}.
    /// @param composeHash the hash to remove.
    function removeComposeHash(bytes32 composeHash) external;

    /// @notice Allows the device `deviceId` to run the app once the notice period has passed.
    /// @dev Requirements: caller is the owner; not frozen; non-zero; not yet allowed. Emits {DeviceAdded}.
    /// @param deviceId sha256(PPID) or sha256(CHIP_ID).
    function addDevice(bytes32 deviceId) external;

    /// @notice Stops the device `deviceId` from running the app.
    /// @dev Requirements: caller is the owner; not frozen; allowed. Emits {DeviceRemoved}.
    /// @param deviceId the device to remove.
    function removeDevice(bytes32 deviceId) external;

    /// @notice Sets whether any device may run the app (device list ignored while true). Switching
    /// it on waits out the notice period.
    /// @dev Requirements: caller is the owner; not frozen; a change. Emits {SettingsScheduled}.
    /// @param anyDevice the new setting.
    function setAnyDevice(bool anyDevice) external;

    /// @notice Sets which TEE kinds may run the app, as a bit mask `1 << uint8(TeeKind)`.
    /// Newly allowed kinds wait out the notice period; dropped kinds are dropped at once.
    /// @dev Requirements: caller is the owner; not frozen; non-zero, known kinds only, a change.
    /// Emits {SettingsScheduled}.
    /// @param mask the new mask.
    function setAllowedTeeKinds(uint8 mask) external;

    /// @notice Sets whether the platform TCB must be up to date; dropping the requirement waits
    /// out the notice period.
    /// @dev Requirements: caller is the owner; not frozen; a change. Emits {SettingsScheduled}.
    /// @param required the new setting.
    function setRequireUpToDateTcb(bool required) external;

    /// @notice Sets whether GPU evidence must be presented; dropping the requirement waits out the
    /// notice period.
    /// @dev Requirements: caller is the owner; not frozen; a change. Emits {SettingsScheduled}.
    /// @param required the new setting.
    function setRequireGpu(bool required) external;

    /// @notice Lengthens the app's notice period (it can never shrink).
    /// @dev Requirements: caller is the owner; not frozen; larger than the current one and at most
    /// a year. Emits {NoticePeriodSet}.
    /// @param noticePeriod the new notice period, seconds.
    function setNoticePeriod(uint64 noticePeriod) external;

    /// @notice Rotates the app's keys: the kms-oracle derives a new generation of every key.
    /// @dev Requirements: caller is the owner; not frozen. Emits {KeyGenerationBumped}.
    function bumpKeyGeneration() external;

    /// @notice Freezes the app for good: no setting, owner or implementation can change afterwards.
    /// @dev Requirements: caller is the owner; not frozen. Emits {AppFrozen}.
    function freeze() external;

    /// @notice Whether `composeHash` is on the list (see {composeHashEffectiveAt} for when it may run).
    /// @param composeHash the hash.
    /// @return allowed true if listed.
    function isComposeHashAllowed(bytes32 composeHash) external view returns (bool allowed);

    /// @notice When a listed compose hash may run (block timestamp; zero if not listed).
    /// @param composeHash the hash.
    /// @return effectiveAt the time.
    function composeHashEffectiveAt(bytes32 composeHash) external view returns (uint64 effectiveAt);

    /// @notice When a listed device may run the app (block timestamp; zero if not listed).
    /// @param deviceId the device.
    /// @return effectiveAt the time.
    function deviceEffectiveAt(bytes32 deviceId) external view returns (uint64 effectiveAt);

    /// @notice The settings in force now, and those scheduled with the time they take effect.
    /// @return current the settings {isAppAllowed} applies at this block.
    /// @return scheduled the latest settings (equal to `current` once `effectiveAt` has passed).
    /// @return effectiveAt when `scheduled` takes effect.
    function settings()
        external
        view
        returns (Settings memory current, Settings memory scheduled, uint64 effectiveAt);

    /// @notice The app's notice period, seconds.
    /// @return noticePeriod the period.
    function noticePeriod() external view returns (uint64 noticePeriod);

    /// @notice The digest of the provenance recorded when `composeHash` was added (zero if not allowed).
    /// @param composeHash the hash.
    /// @return digest keccak256(abi.encode(provenance)).
    function composeHashProvenance(bytes32 composeHash) external view returns (bytes32 digest);

    /// @notice Whether `deviceId` is on the device list (see also {anyDevice}).
    /// @param deviceId the device.
    /// @return allowed true if listed.
    function isDeviceAllowed(bytes32 deviceId) external view returns (bool allowed);

    /// @notice Whether any device may run the app now.
    /// @return anyDevice the setting in force.
    function anyDevice() external view returns (bool anyDevice);

    /// @notice The mask of TEE kinds allowed now.
    /// @return mask `1 << uint8(TeeKind)` per allowed kind.
    function allowedTeeKinds() external view returns (uint8 mask);

    /// @notice Whether an up-to-date TCB is required now.
    /// @return required the setting in force.
    function requireUpToDateTcb() external view returns (bool required);

    /// @notice Whether GPU evidence is required now.
    /// @return required the setting in force.
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
