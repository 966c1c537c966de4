// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {
    BootInfo,
    IAppPolicy,
    OsMeasurement,
    Provenance,
    TcbStatus,
    TeeKind
} from "../interfaces/BootPolicy.sol";
import {IApp} from "../interfaces/IApp.sol";
import {IKmsRegistry} from "../interfaces/IKmsRegistry.sol";
import {ProvenanceLib} from "../libraries/ProvenanceLib.sol";
import {App} from "./App.sol";
import {
    Ownable2StepUpgradeable
} from "@openzeppelin/contracts-upgradeable/access/Ownable2StepUpgradeable.sol";
import {ERC1967Proxy} from "@openzeppelin/contracts/proxy/ERC1967/ERC1967Proxy.sol";
import {UUPSUpgradeable} from "@openzeppelin/contracts/proxy/utils/UUPSUpgradeable.sol";

/// @title KmsRegistry
/// @notice Covenant's root registry, behind a UUPS proxy owned by the Timelock. See {IKmsRegistry}.
/// @dev State lives in one ERC-7201 namespace; upgrades are authorised by the owner only.
contract KmsRegistry is IKmsRegistry, Ownable2StepUpgradeable, UUPSUpgradeable {
    /// An OS image's registration, in one slot: when it takes effect, and its version (bumped at
    /// each addition, so that a re-added image has only the measurements it was re-added with).
    struct OsImageState {
        uint64 effectiveAt;
        uint32 version;
    }

    /// @custom:storage-location erc7201:covenant.storage.KmsRegistry
    struct KmsRegistryStorage {
        mapping(bytes32 osImageHash => bytes32 provenanceDigest) osImages;
        mapping(bytes32 mrAggregated => bool allowed) kmsMeasurements;
        mapping(bytes32 deviceId => bool allowed) kmsDevices;
        mapping(address node => KmsNode record) kmsNodes;
        mapping(address app => AppKind kind) apps;
        address appImplementation;
        bool allowSimulatedTee;
        address gatewayAppId;
        address kmsRootSigner;
        uint64 kmsRootGeneration;
        bytes kmsCaPublicKey;
        // v2
        uint64 minNoticePeriod;
        mapping(bytes32 osImageHash => OsImageState state) osImageStates;
        mapping(bytes32 key => bool registered) osMeasurements;
    }

    // keccak256(abi.encode(uint256(keccak256("covenant.storage.KmsRegistry")) - 1)) & ~bytes32(uint256(0xff))
    bytes32 private constant KMS_REGISTRY_STORAGE_LOCATION =
        0x8838e627253899912be5918802c3213740dd0872169df05c3d701f15732c9e00;

    /// @notice The length of an uncompressed SEC1 P-256 public key.
    uint256 public constant CA_PUBLIC_KEY_LENGTH = 65;
    /// @notice The most audit entries one grant-log commit may cover.
    uint64 public constant MAX_GRANT_LOG_COMMIT = 65_536;
    /// @notice The longest minimum notice period governance may set (a year).
    uint64 public constant MAX_NOTICE_PERIOD = 365 days;
    /// @notice The most measurements one OS image may register.
    uint256 public constant MAX_OS_MEASUREMENTS = 16;
    /// @notice Register lengths: MRTD || RTMR0..2 (TDX, simulated) and MEASUREMENT (SEV-SNP).
    uint256 public constant TD_REGISTERS_LENGTH = 192;
    uint256 public constant SNP_REGISTERS_LENGTH = 48;

    /// Runs before `reinitializer(2)` sets the version: a proxy that was ever initialised (a
    /// wave-1 registry being upgraded) refuses the fresh-proxy initializer.
    modifier onlyFreshProxy() {
        if (_getInitializedVersion() != 0) revert InvalidInitialization();
        _;
    }

    constructor() {
        _disableInitializers();
    }

    /// @notice Sets up a fresh registry behind its proxy (initializer version 2). A proxy that was
    /// already initialised (a wave-1 registry being upgraded) refuses it: its owner completes the
    /// upgrade with {initializeV2} instead, so no one else can take the proxy over in between.
    /// @dev Emits {AppImplementationSet}, {MinNoticePeriodSet} and, if `allowSimulatedTee_`,
    /// {AllowSimulatedTeeSet}.
    /// @param owner_ the owner: the Timelock.
    /// @param appImplementation_ the App implementation (constructed with this proxy's address).
    /// @param allowSimulatedTee_ whether simulated TEE evidence is accepted (development networks).
    /// @param minNoticePeriod_ the shortest notice period an app may have, seconds.
    function initialize(
        address owner_,
        address appImplementation_,
        bool allowSimulatedTee_,
        uint64 minNoticePeriod_
    ) external onlyFreshProxy reinitializer(2) {
        __Ownable_init(owner_);
        KmsRegistryStorage storage $ = _s();
        _setAppImplementation($, appImplementation_);
        if (allowSimulatedTee_) {
            $.allowSimulatedTee = true;
            emit AllowSimulatedTeeSet(true);
        }
        _setMinNoticePeriod($, minNoticePeriod_);
    }

    /// @notice Completes the upgrade of a wave-1 registry: sets the minimum notice period. Called
    /// by the owner in the same transaction as the upgrade (`upgradeToAndCall`).
    /// @dev Requirements: owner; initializer version 1. Emits {MinNoticePeriodSet}.
    /// @param minNoticePeriod_ the shortest notice period an app may have, seconds.
    function initializeV2(uint64 minNoticePeriod_) external reinitializer(2) onlyOwner {
        _setMinNoticePeriod(_s(), minNoticePeriod_);
    }

    /// @inheritdoc IKmsRegistry
    function addOsImage(
        bytes32 osImageHash,
        Provenance calldata provenance,
        OsMeasurement[] calldata measurements
    ) external onlyOwner {
        KmsRegistryStorage storage $ = _s();
        if (osImageHash == bytes32(0)) revert KmsRegistryZeroValue();
        if ($.osImages[osImageHash] != bytes32(0)) revert KmsRegistryOsImageAlreadyAllowed(osImageHash);
        uint256 count = measurements.length;
        if (count == 0 || count > MAX_OS_MEASUREMENTS) revert KmsRegistryOsMeasurementCount(count);
        bytes32 digest = ProvenanceLib.checkedDigest(provenance);
        uint32 version = $.osImageStates[osImageHash].version + 1;
        for (uint256 i = 0; i < count; ++i) {
            OsMeasurement calldata m = measurements[i];
            uint256 expected = m.teeKind == TeeKind.SevSnp
                ? SNP_REGISTERS_LENGTH
                : (m.teeKind == TeeKind.Tdx || m.teeKind == TeeKind.Simulated ? TD_REGISTERS_LENGTH : 0);
            if (expected == 0 || m.registers.length != expected) {
                revert KmsRegistryInvalidOsMeasurement(i);
            }
            $.osMeasurements[_measurementKey(osImageHash, version, m.teeKind, sha256(m.registers))] = true;
        }
        uint64 effectiveAt = uint64(block.timestamp) + $.minNoticePeriod;
        $.osImages[osImageHash] = digest;
        $.osImageStates[osImageHash] = OsImageState({effectiveAt: effectiveAt, version: version});
        emit OsImageAdded(osImageHash, digest, provenance, measurements, effectiveAt);
    }

    /// @inheritdoc IKmsRegistry
    function removeOsImage(bytes32 osImageHash) external onlyOwner {
        KmsRegistryStorage storage $ = _s();
        if ($.osImages[osImageHash] == bytes32(0)) revert KmsRegistryOsImageNotAllowed(osImageHash);
        delete $.osImages[osImageHash];
        $.osImageStates[osImageHash].effectiveAt = 0;
        emit OsImageRemoved(osImageHash);
    }

    /// @inheritdoc IKmsRegistry
    function setMinNoticePeriod(uint64 minNoticePeriod_) external onlyOwner {
        KmsRegistryStorage storage $ = _s();
        if ($.minNoticePeriod == minNoticePeriod_) revert KmsRegistryNoChange();
        _setMinNoticePeriod($, minNoticePeriod_);
    }

    /// @inheritdoc IKmsRegistry
    function addKmsMeasurement(bytes32 mrAggregated) external onlyOwner {
        KmsRegistryStorage storage $ = _s();
        if (mrAggregated == bytes32(0)) revert KmsRegistryZeroValue();
        if ($.kmsMeasurements[mrAggregated]) revert KmsRegistryNoChange();
        $.kmsMeasurements[mrAggregated] = true;
        emit KmsMeasurementAdded(mrAggregated);
    }

    /// @inheritdoc IKmsRegistry
    function removeKmsMeasurement(bytes32 mrAggregated) external onlyOwner {
        KmsRegistryStorage storage $ = _s();
        if (!$.kmsMeasurements[mrAggregated]) revert KmsRegistryMeasurementNotAllowed(mrAggregated);
        delete $.kmsMeasurements[mrAggregated];
        emit KmsMeasurementRemoved(mrAggregated);
    }

    /// @inheritdoc IKmsRegistry
    function addKmsDevice(bytes32 deviceId) external onlyOwner {
        KmsRegistryStorage storage $ = _s();
        if (deviceId == bytes32(0)) revert KmsRegistryZeroValue();
        if ($.kmsDevices[deviceId]) revert KmsRegistryNoChange();
        $.kmsDevices[deviceId] = true;
        emit KmsDeviceAdded(deviceId);
    }

    /// @inheritdoc IKmsRegistry
    function removeKmsDevice(bytes32 deviceId) external onlyOwner {
        KmsRegistryStorage storage $ = _s();
        if (!$.kmsDevices[deviceId]) revert KmsRegistryDeviceNotAllowed(deviceId);
        delete $.kmsDevices[deviceId];
        emit KmsDeviceRemoved(deviceId);
    }

    /// @inheritdoc IKmsRegistry
    function onboardKmsNode(address node, bytes32 mrAggregated, bytes32 deviceId) external {
        KmsRegistryStorage storage $ = _s();
        if (msg.sender != owner() && !_isServing($, msg.sender)) {
            revert KmsRegistryNotAuthorizedOnboarder(msg.sender);
        }
        if (node == address(0)) revert KmsRegistryZeroValue();
        KmsNode storage record = $.kmsNodes[node];
        if (record.active) revert KmsRegistryNodeAlreadyActive(node);
        bool byGovernance = msg.sender == owner();
        // A node governance removed comes back only by governance.
        if (record.removedByGovernance && !byGovernance) revert KmsRegistryNodeRemovedByGovernance(node);
        if (!$.kmsMeasurements[mrAggregated]) revert KmsRegistryMeasurementNotAllowed(mrAggregated);
        if (!$.kmsDevices[deviceId]) revert KmsRegistryDeviceNotAllowed(deviceId);
        uint64 onboardedAt = uint64(block.timestamp);
        // A node that was removed and comes back keeps its grant-log sequence.
        record.active = true;
        record.onboardedBy = msg.sender;
        record.onboardedAt = onboardedAt;
        record.mrAggregated = mrAggregated;
        record.deviceId = deviceId;
        record.removedByGovernance = false;
        emit KmsNodeOnboarded(node, msg.sender, mrAggregated, deviceId, onboardedAt);
    }

    /// @inheritdoc IKmsRegistry
    function removeKmsNode(address node) external onlyOwner {
        KmsNode storage record = _s().kmsNodes[node];
        if (!record.active) revert KmsRegistryNotActiveNode(node);
        record.active = false;
        record.removedByGovernance = true;
        emit KmsNodeRemoved(node);
    }

    /// @inheritdoc IKmsRegistry
    function setKmsRootKeys(address rootSigner, bytes calldata caPublicKey) external onlyOwner {
        if (rootSigner == address(0)) revert KmsRegistryZeroValue();
        if (caPublicKey.length != CA_PUBLIC_KEY_LENGTH || caPublicKey[0] != 0x04) {
            revert KmsRegistryInvalidCaKey(caPublicKey.length);
        }
        KmsRegistryStorage storage $ = _s();
        uint64 generation = $.kmsRootGeneration + 1;
        $.kmsRootSigner = rootSigner;
        $.kmsRootGeneration = generation;
        $.kmsCaPublicKey = caPublicKey;
        emit KmsRootKeysSet(generation, rootSigner, caPublicKey);
    }

    /// @inheritdoc IKmsRegistry
    function setGatewayAppId(address appId) external onlyOwner {
        KmsRegistryStorage storage $ = _s();
        address old = $.gatewayAppId;
        if (old == appId) revert KmsRegistryNoChange();
        $.gatewayAppId = appId;
        emit GatewayAppIdSet(old, appId);
    }

    /// @inheritdoc IKmsRegistry
    function setAllowSimulatedTee(bool allowed) external onlyOwner {
        KmsRegistryStorage storage $ = _s();
        if ($.allowSimulatedTee == allowed) revert KmsRegistryNoChange();
        $.allowSimulatedTee = allowed;
        emit AllowSimulatedTeeSet(allowed);
    }

    /// @inheritdoc IKmsRegistry
    function setAppImplementation(address implementation) external onlyOwner {
        KmsRegistryStorage storage $ = _s();
        if ($.appImplementation == implementation) revert KmsRegistryNoChange();
        _setAppImplementation($, implementation);
    }

    /// @inheritdoc IKmsRegistry
    function createApp(address owner_, IApp.AppInit calldata init) external returns (address app) {
        KmsRegistryStorage storage $ = _s();
        address implementation = $.appImplementation;
        app = address(new ERC1967Proxy(implementation, abi.encodeCall(App.initialize, (owner_, init))));
        $.apps[app] = AppKind.Factory;
        emit AppCreated(app, owner_, implementation);
    }

    /// @inheritdoc IKmsRegistry
    function registerCustomApp(address app) external onlyOwner {
        KmsRegistryStorage storage $ = _s();
        if (app.code.length == 0) revert KmsRegistryNotAContract(app);
        if ($.apps[app] != AppKind.None) revert KmsRegistryAppAlreadyRegistered(app);
        $.apps[app] = AppKind.Custom;
        emit CustomAppRegistered(app);
    }

    /// @inheritdoc IKmsRegistry
    function deregisterApp(address app) external onlyOwner {
        KmsRegistryStorage storage $ = _s();
        if ($.apps[app] == AppKind.None) revert KmsRegistryAppNotRegistered(app);
        delete $.apps[app];
        emit AppDeregistered(app);
    }

    /// @inheritdoc IKmsRegistry
    function commitGrantLog(uint64 fromSeq, uint64 toSeq, bytes32 merkleRoot) external {
        KmsNode storage record = _s().kmsNodes[msg.sender];
        if (!record.active) revert KmsRegistryNotActiveNode(msg.sender);
        uint64 expected = record.committedThrough + 1;
        if (fromSeq != expected) revert KmsRegistryGrantLogGap(expected, fromSeq);
        if (toSeq < fromSeq || toSeq - fromSeq >= MAX_GRANT_LOG_COMMIT) {
            revert KmsRegistryGrantLogRange(fromSeq, toSeq);
        }
        if (merkleRoot == bytes32(0)) revert KmsRegistryZeroValue();
        record.committedThrough = toSeq;
        emit GrantLogCommitted(msg.sender, fromSeq, toSeq, merkleRoot);
    }

    /// @inheritdoc IKmsRegistry
    function isAppAllowed(BootInfo calldata boot) external view returns (bool, string memory) {
        KmsRegistryStorage storage $ = _s();
        if ($.apps[boot.appId] == AppKind.None) return (false, "app not registered");
        (bool platformOk, string memory platformReason) = _checkPlatform($, boot);
        if (!platformOk) return (false, platformReason);
        try IAppPolicy(boot.appId).isAppAllowed(boot) returns (bool allowed, string memory reason) {
            if (allowed) return (true, "");
            return (false, bytes(reason).length == 0 ? "denied by app policy" : reason);
        } catch {
            return (false, "app policy failed");
        }
    }

    /// @inheritdoc IKmsRegistry
    function isKmsAllowed(BootInfo calldata boot) external view returns (bool, string memory) {
        KmsRegistryStorage storage $ = _s();
        (bool platformOk, string memory platformReason) = _checkPlatform($, boot);
        if (!platformOk) return (false, platformReason);
        if (boot.tcbStatus != TcbStatus.UpToDate) return (false, "tcb not up to date");
        if (!$.kmsMeasurements[boot.mrAggregated]) return (false, "kms measurement not allowed");
        if (!$.kmsDevices[boot.deviceId]) return (false, "kms device not allowed");
        return (true, "");
    }

    /// @inheritdoc IKmsRegistry
    function osImageProvenance(bytes32 osImageHash) external view returns (bytes32) {
        return _s().osImages[osImageHash];
    }

    /// @inheritdoc IKmsRegistry
    function isOsImageAllowed(bytes32 osImageHash) external view returns (bool) {
        return _s().osImages[osImageHash] != bytes32(0);
    }

    /// @inheritdoc IKmsRegistry
    function osImageEffectiveAt(bytes32 osImageHash) external view returns (uint64) {
        return _s().osImageStates[osImageHash].effectiveAt;
    }

    /// @inheritdoc IKmsRegistry
    function isOsMeasurementRegistered(bytes32 osImageHash, TeeKind teeKind, bytes32 osMeasurement)
        external
        view
        returns (bool)
    {
        KmsRegistryStorage storage $ = _s();
        if ($.osImages[osImageHash] == bytes32(0)) return false;
        return $.osMeasurements[
            _measurementKey(osImageHash, $.osImageStates[osImageHash].version, teeKind, osMeasurement)
        ];
    }

    /// @inheritdoc IKmsRegistry
    function minNoticePeriod() external view returns (uint64) {
        return _s().minNoticePeriod;
    }

    /// @inheritdoc IKmsRegistry
    function isKmsMeasurementAllowed(bytes32 mrAggregated) external view returns (bool) {
        return _s().kmsMeasurements[mrAggregated];
    }

    /// @inheritdoc IKmsRegistry
    function isKmsDeviceAllowed(bytes32 deviceId) external view returns (bool) {
        return _s().kmsDevices[deviceId];
    }

    /// @inheritdoc IKmsRegistry
    function kmsNode(address node) external view returns (KmsNode memory) {
        return _s().kmsNodes[node];
    }

    /// @inheritdoc IKmsRegistry
    function kmsRootKeys() external view returns (address, bytes memory, uint64) {
        KmsRegistryStorage storage $ = _s();
        return ($.kmsRootSigner, $.kmsCaPublicKey, $.kmsRootGeneration);
    }

    /// @inheritdoc IKmsRegistry
    function gatewayAppId() external view returns (address) {
        return _s().gatewayAppId;
    }

    /// @inheritdoc IKmsRegistry
    function allowSimulatedTee() external view returns (bool) {
        return _s().allowSimulatedTee;
    }

    /// @inheritdoc IKmsRegistry
    function appImplementation() external view returns (address) {
        return _s().appImplementation;
    }

    /// @inheritdoc IKmsRegistry
    function appKind(address app) external view returns (AppKind) {
        return _s().apps[app];
    }

    /// @dev Upgrades are authorised by the owner (the Timelock) only.
    function _authorizeUpgrade(address) internal view override onlyOwner {}

    function _setAppImplementation(KmsRegistryStorage storage $, address implementation) private {
        if (implementation.code.length == 0) revert KmsRegistryNotAContract(implementation);
        address old = $.appImplementation;
        $.appImplementation = implementation;
        emit AppImplementationSet(old, implementation);
    }

    function _setMinNoticePeriod(KmsRegistryStorage storage $, uint64 minNoticePeriod_) private {
        if (minNoticePeriod_ > MAX_NOTICE_PERIOD) revert KmsRegistryNoticePeriodTooLong(minNoticePeriod_);
        $.minNoticePeriod = minNoticePeriod_;
        emit MinNoticePeriodSet(minNoticePeriod_);
    }

    /// The key under which a measurement of one registration (`version`) of an image is stored:
    /// removing and adding the image again starts a new version, so old measurements lapse.
    function _measurementKey(bytes32 osImageHash, uint32 version, TeeKind teeKind, bytes32 osMeasurement)
        private
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(osImageHash, version, teeKind, osMeasurement));
    }

    /// Checks shared by apps and KMS nodes: TEE kind, TCB status, OS image (allowed, effective, and
    /// measuring to a value registered with it for this TEE kind).
    function _checkPlatform(KmsRegistryStorage storage $, BootInfo calldata boot)
        private
        view
        returns (bool, string memory)
    {
        if (boot.teeKind == TeeKind.Unknown) return (false, "unknown tee kind");
        if (boot.teeKind == TeeKind.Simulated && !$.allowSimulatedTee) {
            return (false, "simulated tee not allowed");
        }
        if (boot.tcbStatus == TcbStatus.Unknown || boot.tcbStatus == TcbStatus.Revoked) {
            return (false, "tcb status not acceptable");
        }
        bytes32 image = boot.osImageHash;
        if ($.osImages[image] == bytes32(0)) return (false, "os image not allowed");
        OsImageState memory state = $.osImageStates[image];
        if (block.timestamp < state.effectiveAt) return (false, "os image not yet effective");
        bytes32 key = _measurementKey(image, state.version, boot.teeKind, boot.osMeasurement);
        if (!$.osMeasurements[key]) return (false, "os measurement not allowed");
        return (true, "");
    }

    /// Whether `node` is active and its measurement and device are still allowed.
    function _isServing(KmsRegistryStorage storage $, address node) private view returns (bool) {
        KmsNode storage record = $.kmsNodes[node];
        return record.active && $.kmsMeasurements[record.mrAggregated] && $.kmsDevices[record.deviceId];
    }

    function _s() private pure returns (KmsRegistryStorage storage $) {
        assembly {
            $.slot := KMS_REGISTRY_STORAGE_LOCATION
        }
    }
}
