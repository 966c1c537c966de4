// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {BootInfo, OsMeasurement, Provenance, TeeKind} from "./BootPolicy.sol";
import {IApp} from "./IApp.sol";

/// @title IKmsRegistry
/// @notice The root of Covenant's on-chain policy: which OS images and KMS nodes are allowed, the
/// KMS root keys and their generation, whether simulated TEEs are accepted, the registered apps
/// (created by its factory from a governed implementation, or custom policies admitted by
/// governance), and the KMS nodes' grant-log commitments. Owned by the Timelock: every change
/// except app creation, KMS onboarding by a registered node and grant-log commits is a governance
/// proposal.
interface IKmsRegistry {
    /// @notice How an app came to be registered.
    enum AppKind {
        None,
        Factory,
        Custom
    }

    /// @notice A registered KMS node.
    struct KmsNode {
        /// Whether the node is registered and not removed.
        bool active;
        /// Who onboarded it: a registered node, or the owner (governance).
        address onboardedBy;
        /// When it was onboarded (block timestamp).
        uint64 onboardedAt;
        /// The last grant-log sequence number committed (0 = none).
        uint64 committedThrough;
        /// Its aggregated measurement at onboarding.
        bytes32 mrAggregated;
        /// Its device id at onboarding.
        bytes32 deviceId;
        /// Whether governance removed it (then only governance may onboard it again).
        bool removedByGovernance;
    }

    /// @notice An OS image may be booted from `effectiveAt` (block timestamp) on, on the platforms
    /// and with the registers of `measurements`. `provenance` says how to rebuild it.
    event OsImageAdded(
        bytes32 indexed osImageHash,
        bytes32 provenanceDigest,
        Provenance provenance,
        OsMeasurement[] measurements,
        uint64 effectiveAt
    );
    /// @notice An OS image may no longer be booted.
    event OsImageRemoved(bytes32 indexed osImageHash);
    /// @notice KMS nodes with this aggregated measurement may now be onboarded and serve.
    event KmsMeasurementAdded(bytes32 indexed mrAggregated);
    /// @notice KMS nodes with this aggregated measurement may no longer serve.
    event KmsMeasurementRemoved(bytes32 indexed mrAggregated);
    /// @notice KMS nodes on this device may now be onboarded and serve.
    event KmsDeviceAdded(bytes32 indexed deviceId);
    /// @notice KMS nodes on this device may no longer serve.
    event KmsDeviceRemoved(bytes32 indexed deviceId);
    /// @notice A KMS node was onboarded (it received the root secret from `onboardedBy`).
    event KmsNodeOnboarded(
        address indexed node,
        address indexed onboardedBy,
        bytes32 mrAggregated,
        bytes32 deviceId,
        uint64 onboardedAt
    );
    /// @notice A KMS node was removed; it must stop serving.
    event KmsNodeRemoved(address indexed node);
    /// @notice The KMS root keys were set; keys of `generation` are derived from the new root.
    event KmsRootKeysSet(uint64 indexed generation, address rootSigner, bytes caPublicKey);
    /// @notice The gateway's app id changed.
    event GatewayAppIdSet(address indexed oldAppId, address indexed newAppId);
    /// @notice Whether simulated TEE evidence is accepted changed.
    event AllowSimulatedTeeSet(bool allowed);
    /// @notice New apps are created from, and existing apps may upgrade to, `implementation`.
    event AppImplementationSet(address indexed oldImplementation, address indexed newImplementation);
    /// @notice An app was created by the factory.
    event AppCreated(address indexed app, address indexed owner, address indexed implementation);
    /// @notice A custom policy contract was registered as an app by governance.
    event CustomAppRegistered(address indexed app);
    /// @notice An app was deregistered by governance; it can no longer receive keys.
    event AppDeregistered(address indexed app);
    /// @notice The shortest notice period an app may have changed.
    event MinNoticePeriodSet(uint64 minNoticePeriod);
    /// @notice A KMS node committed the Merkle root of its audit log entries `fromSeq..=toSeq`.
    event GrantLogCommitted(address indexed node, uint64 indexed fromSeq, uint64 toSeq, bytes32 merkleRoot);

    /// @notice A zero hash, id or address where a value is required.
    error KmsRegistryZeroValue();
    /// @notice The call would not change anything.
    error KmsRegistryNoChange();
    /// @notice The OS image is already allowed.
    error KmsRegistryOsImageAlreadyAllowed(bytes32 osImageHash);
    /// @notice The OS image is not allowed.
    error KmsRegistryOsImageNotAllowed(bytes32 osImageHash);
    /// @notice The KMS measurement is not allowed.
    error KmsRegistryMeasurementNotAllowed(bytes32 mrAggregated);
    /// @notice The KMS device is not allowed.
    error KmsRegistryDeviceNotAllowed(bytes32 deviceId);
    /// @notice The caller is neither the owner nor an active KMS node.
    error KmsRegistryNotAuthorizedOnboarder(address caller);
    /// @notice The node is already active.
    error KmsRegistryNodeAlreadyActive(address node);
    /// @notice The node is not an active KMS node.
    error KmsRegistryNotActiveNode(address node);
    /// @notice The P-256 CA key is not a 65-byte uncompressed point.
    error KmsRegistryInvalidCaKey(uint256 length);
    /// @notice The address is not a contract.
    error KmsRegistryNotAContract(address account);
    /// @notice The app is already registered.
    error KmsRegistryAppAlreadyRegistered(address app);
    /// @notice The app is not registered.
    error KmsRegistryAppNotRegistered(address app);
    /// @notice A grant-log commit must start right after the last one.
    error KmsRegistryGrantLogGap(uint64 expectedFromSeq, uint64 fromSeq);
    /// @notice A grant-log commit's range is reversed or longer than {MAX_GRANT_LOG_COMMIT}.
    error KmsRegistryGrantLogRange(uint64 fromSeq, uint64 toSeq);
    /// @notice Governance removed the node; only governance may onboard it again.
    error KmsRegistryNodeRemovedByGovernance(address node);
    /// @notice An OS image needs between 1 and {MAX_OS_MEASUREMENTS} measurements.
    error KmsRegistryOsMeasurementCount(uint256 count);
    /// @notice The measurement at `index` has an unknown platform or registers of the wrong length.
    error KmsRegistryInvalidOsMeasurement(uint256 index);
    /// @notice The minimum notice period is longer than {MAX_NOTICE_PERIOD}.
    error KmsRegistryNoticePeriodTooLong(uint64 noticePeriod);

    /// @notice Allows an OS image after the minimum notice period, with what it measures to on each
    /// platform, recording where it comes from. Verifiers read the measurements from the chain.
    /// @dev Requirements: owner; non-zero, not yet allowed; provenance within bounds; 1 to
    /// {MAX_OS_MEASUREMENTS} measurements, each of a known platform with registers of its length.
    /// Emits {OsImageAdded}.
    /// @param osImageHash the image's hash.
    /// @param provenance source URL, commit and image digest.
    /// @param measurements the registers the image measures to, per platform.
    function addOsImage(
        bytes32 osImageHash,
        Provenance calldata provenance,
        OsMeasurement[] calldata measurements
    ) external;

    /// @notice Disallows an OS image (at once); its measurements lapse with it.
    /// @dev Requirements: owner; allowed. Emits {OsImageRemoved}.
    /// @param osImageHash the image's hash.
    function removeOsImage(bytes32 osImageHash) external;

    /// @notice Sets the shortest notice period an app may have; loosenings of every app wait at
    /// least this long, and OS images added from now on take effect after it.
    /// @dev Requirements: owner; at most {MAX_NOTICE_PERIOD}; a change. Emits {MinNoticePeriodSet}.
    /// @param minNoticePeriod seconds.
    function setMinNoticePeriod(uint64 minNoticePeriod) external;

    /// @notice Allows KMS nodes with aggregated measurement `mrAggregated`.
    /// @dev Requirements: owner; non-zero; a change. Emits {KmsMeasurementAdded}.
    /// @param mrAggregated sha256(MRTD || RTMR0..3) of the KMS image.
    function addKmsMeasurement(bytes32 mrAggregated) external;

    /// @notice Disallows KMS nodes with aggregated measurement `mrAggregated`.
    /// @dev Requirements: owner; allowed. Emits {KmsMeasurementRemoved}.
    /// @param mrAggregated the measurement.
    function removeKmsMeasurement(bytes32 mrAggregated) external;

    /// @notice Allows KMS nodes on device `deviceId`.
    /// @dev Requirements: owner; non-zero; a change. Emits {KmsDeviceAdded}.
    /// @param deviceId the device.
    function addKmsDevice(bytes32 deviceId) external;

    /// @notice Disallows KMS nodes on device `deviceId`.
    /// @dev Requirements: owner; allowed. Emits {KmsDeviceRemoved}.
    /// @param deviceId the device.
    function removeKmsDevice(bytes32 deviceId) external;

    /// @notice Records that `node` was onboarded: by governance (the first node), or by an active
    /// node that handed it the root secret over mutually attested TLS.
    /// @dev Requirements: caller is the owner or a serving node (active, its measurement and device
    /// still allowed); `node` non-zero and not active; a node removed by governance only by the
    /// owner; measurement and device allowed. Emits {KmsNodeOnboarded}. The onboarding node takes
    /// `node`, `mrAggregated` and `deviceId` from the new node's verified evidence.
    /// @param node the new node's secp256k1 identity address (it commits grant logs with it).
    /// @param mrAggregated the new node's aggregated measurement.
    /// @param deviceId the new node's device id.
    function onboardKmsNode(address node, bytes32 mrAggregated, bytes32 deviceId) external;

    /// @notice Removes a KMS node; it must stop serving once this is final.
    /// @dev Requirements: owner; `node` active. Emits {KmsNodeRemoved}.
    /// @param node the node's identity address.
    function removeKmsNode(address node) external;

    /// @notice Sets the KMS root keys and starts a new root key generation.
    /// @dev Requirements: owner; `rootSigner` non-zero; `caPublicKey` 65 bytes starting 0x04.
    /// Emits {KmsRootKeysSet}.
    /// @param rootSigner the Ethereum address of the KMS root secp256k1 key.
    /// @param caPublicKey the KMS root P-256 CA key, uncompressed SEC1.
    function setKmsRootKeys(address rootSigner, bytes calldata caPublicKey) external;

    /// @notice Sets the gateway's app id.
    /// @dev Requirements: owner; a change. Emits {GatewayAppIdSet}.
    /// @param appId the gateway app (zero to unset).
    function setGatewayAppId(address appId) external;

    /// @notice Sets whether simulated TEE evidence is accepted (development networks only).
    /// @dev Requirements: owner; a change. Emits {AllowSimulatedTeeSet}.
    /// @param allowed the new setting.
    function setAllowSimulatedTee(bool allowed) external;

    /// @notice Sets the implementation new apps are created from and existing apps may upgrade to.
    /// @dev Requirements: owner; a contract; a change. Emits {AppImplementationSet}.
    /// @param implementation the App implementation.
    function setAppImplementation(address implementation) external;

    /// @notice Creates an app: an ERC1967 proxy of the governed implementation, owned by `owner`.
    /// @dev Anyone may call. Emits {AppCreated} and the app's initial-settings events.
    /// @param owner the app's owner.
    /// @param init the initial settings.
    /// @return app the new app's address (its app id).
    function createApp(address owner, IApp.AppInit calldata init) external returns (address app);

    /// @notice Registers a custom policy contract as an app (governance only).
    /// @dev Requirements: owner; a contract; not registered. Emits {CustomAppRegistered}.
    /// @param app the policy contract; it must implement {IAppPolicy}.
    function registerCustomApp(address app) external;

    /// @notice Deregisters an app; it can no longer receive keys.
    /// @dev Requirements: owner; registered. Emits {AppDeregistered}.
    /// @param app the app.
    function deregisterApp(address app) external;

    /// @notice Commits the Merkle root of the caller's audit-log entries `fromSeq..=toSeq`.
    /// @dev Requirements: caller is an active node; `fromSeq` is one past its last commit;
    /// `fromSeq <= toSeq < fromSeq + MAX_GRANT_LOG_COMMIT`; root non-zero. Emits {GrantLogCommitted}.
    /// @param fromSeq the first sequence number covered.
    /// @param toSeq the last sequence number covered.
    /// @param merkleRoot the root over the entries' leaf hashes.
    function commitGrantLog(uint64 fromSeq, uint64 toSeq, bytes32 merkleRoot) external;

    /// @notice Whether `boot` may receive its app's keys, and if not, why.
    /// @dev Checks, in order: app registered; TEE kind known and simulated only when allowed; TCB
    /// status acceptable; OS image allowed, effective at this block, and `osMeasurement`
    /// registered with it for `teeKind`; then the app's own policy.
    /// @param boot the verified boot.
    /// @return allowed true if every check passes.
    /// @return reason empty when allowed; otherwise a short, stable reason string.
    function isAppAllowed(BootInfo calldata boot) external view returns (bool allowed, string memory reason);

    /// @notice Whether `boot` is an allowed KMS node boot, and if not, why.
    /// @dev Checks: TEE kind known and simulated only when allowed; TCB up to date; OS image (as
    /// for apps), aggregated measurement and device allowed.
    /// @param boot the verified boot of a KMS node.
    /// @return allowed true if every check passes.
    /// @return reason empty when allowed; otherwise a short, stable reason string.
    function isKmsAllowed(BootInfo calldata boot) external view returns (bool allowed, string memory reason);

    /// @notice The provenance digest of an allowed OS image (zero if not allowed).
    /// @param osImageHash the image.
    /// @return digest keccak256(abi.encode(provenance)).
    function osImageProvenance(bytes32 osImageHash) external view returns (bytes32 digest);

    /// @notice Whether an OS image is allowed.
    /// @param osImageHash the image.
    /// @return allowed true if allowed.
    function isOsImageAllowed(bytes32 osImageHash) external view returns (bool allowed);

    /// @notice When an allowed OS image takes effect (block timestamp; zero if not allowed).
    /// @param osImageHash the image.
    /// @return effectiveAt the time.
    function osImageEffectiveAt(bytes32 osImageHash) external view returns (uint64 effectiveAt);

    /// @notice Whether `osMeasurement` (sha256 of the registers) is registered with the allowed
    /// image `osImageHash` for `teeKind`.
    /// @param osImageHash the image.
    /// @param teeKind the platform.
    /// @param osMeasurement sha256 of the registers.
    /// @return registered true if registered.
    function isOsMeasurementRegistered(bytes32 osImageHash, TeeKind teeKind, bytes32 osMeasurement)
        external
        view
        returns (bool registered);

    /// @notice The shortest notice period an app may have, seconds.
    /// @return minNoticePeriod the period.
    function minNoticePeriod() external view returns (uint64 minNoticePeriod);

    /// @notice Whether a KMS measurement is allowed.
    /// @param mrAggregated the measurement.
    /// @return allowed true if allowed.
    function isKmsMeasurementAllowed(bytes32 mrAggregated) external view returns (bool allowed);

    /// @notice Whether a KMS device is allowed.
    /// @param deviceId the device.
    /// @return allowed true if allowed.
    function isKmsDeviceAllowed(bytes32 deviceId) external view returns (bool allowed);

    /// @notice A KMS node's record.
    /// @param node the node's identity address.
    /// @return record the record (inactive and zero if never onboarded).
    function kmsNode(address node) external view returns (KmsNode memory record);

    /// @notice The KMS root keys and their generation (0 before the first {setKmsRootKeys}).
    /// @return rootSigner the root secp256k1 key's address.
    /// @return caPublicKey the root P-256 CA key.
    /// @return generation the root key generation.
    function kmsRootKeys()
        external
        view
        returns (address rootSigner, bytes memory caPublicKey, uint64 generation);

    /// @notice The gateway's app id.
    /// @return appId the gateway app.
    function gatewayAppId() external view returns (address appId);

    /// @notice Whether simulated TEE evidence is accepted.
    /// @return allowed the setting.
    function allowSimulatedTee() external view returns (bool allowed);

    /// @notice The governed App implementation.
    /// @return implementation its address.
    function appImplementation() external view returns (address implementation);

    /// @notice How an app is registered.
    /// @param app the app.
    /// @return kind `None` if not registered.
    function appKind(address app) external view returns (AppKind kind);
}
