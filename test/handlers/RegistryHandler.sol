// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {
    BootInfo,
    IAppPolicy,
    OsMeasurement,
    Provenance,
    TcbStatus,
    TeeKind
} from "../../contracts/interfaces/BootPolicy.sol";
import {IApp} from "../../contracts/interfaces/IApp.sol";
import {IDomainRegistry} from "../../contracts/interfaces/IDomainRegistry.sol";
import {IKmsRegistry} from "../../contracts/interfaces/IKmsRegistry.sol";
import {App} from "../../contracts/registry/App.sol";
import {DomainRegistry} from "../../contracts/registry/DomainRegistry.sol";
import {KmsRegistry} from "../../contracts/registry/KmsRegistry.sol";
import {
    Ownable2StepUpgradeable
} from "@openzeppelin/contracts-upgradeable/access/Ownable2StepUpgradeable.sol";
import {OwnableUpgradeable} from "@openzeppelin/contracts-upgradeable/access/OwnableUpgradeable.sol";
import {IERC1967} from "@openzeppelin/contracts/interfaces/IERC1967.sol";
import {UUPSUpgradeable} from "@openzeppelin/contracts/proxy/utils/UUPSUpgradeable.sol";
import {CommonBase} from "forge-std/Base.sol";
import {StdCheats} from "forge-std/StdCheats.sol";
import {StdUtils} from "forge-std/StdUtils.sol";
import {Vm} from "forge-std/Vm.sol";

/// The fixed value pools every handler input is drawn from, so that values repeat across calls.
struct Pools {
    bytes32[] osImages;
    /// sha256 of each register set the handler registers OS images with (index 0 is zero): the
    /// `osMeasurement` values boots carry.
    bytes32[] osMeasurements;
    bytes32[] kmsMeasurements;
    bytes32[] kmsDevices;
    address[] nodes;
    bytes32[] composeHashes;
    bytes32[] devices;
    string[] domains;
    /// Factory apps (setup and handler-created), the custom policy, and an unregistered address.
    address[] appCandidates;
}

/// Everything the KMS and domain registries expose, read over the pools (or rebuilt by a model),
/// except the domain claims (see {RegistryViews-readClaims}).
struct RegistryView {
    bytes32[] osImageDigests;
    bool[] osImagesAllowed;
    uint64[] osImageEffectiveAt;
    /// isOsMeasurementRegistered over the non-zero images × {Tdx, SevSnp, Simulated} × the non-zero
    /// measurements, image-major.
    bool[] osMeasurementsRegistered;
    bool[] kmsMeasurements;
    bool[] kmsDevices;
    IKmsRegistry.KmsNode[] nodes;
    IKmsRegistry.AppKind[] appKinds;
    uint64 minNoticePeriod;
    bool allowSimulatedTee;
    address appImplementation;
    address gatewayAppId;
    address rootSigner;
    bytes32 caPublicKeyHash;
    uint64 rootGeneration;
    address registryOwner;
    address registryPendingOwner;
    address registryImplementation;
    address domainsOwner;
    address domainsPendingOwner;
    address domainsImplementation;
    bytes32 acmeAccountHash;
}

/// Everything one app exposes, read over the pools (or rebuilt by a model).
struct AppView {
    bytes32[] composeDigests;
    bool[] composeAllowed;
    uint64[] composeEffectiveAt;
    bool[] devices;
    uint64[] deviceEffectiveAt;
    /// The settings in force at this block, through the single-setting views.
    bool anyDevice;
    uint8 allowedTeeKinds;
    bool requireUpToDateTcb;
    bool requireGpu;
    /// {App-settings}: in force, scheduled, and when the scheduled ones take effect.
    IApp.Settings current;
    IApp.Settings scheduled;
    uint64 settingsEffectiveAt;
    uint64 noticePeriod;
    uint64 keyGeneration;
    bool frozen;
    address owner;
    address pendingOwner;
    address implementation;
    address registry;
}

/// Which ghost model to read: the one updated from the handler's own understanding of each
/// successful call, or the one rebuilt from the events the contracts emitted.
enum ModelSource {
    Expected,
    FromLogs
}

/// Reads the registries' and apps' state through their public views only.
library RegistryViews {
    /// keccak256("eip1967.proxy.implementation") - 1
    bytes32 internal constant IMPLEMENTATION_SLOT =
        0x360894a13ba1a3210667c828492db98dca3e2076cc3735a920a3ca505d382bbc;
    /// The TEE kinds an OS image registers measurements for: Tdx, SevSnp, Simulated.
    uint256 internal constant MEASURED_KINDS = 3;
    Vm private constant VM = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    function implementationOf(address proxy) internal view returns (address) {
        return address(uint160(uint256(VM.load(proxy, IMPLEMENTATION_SLOT))));
    }

    function readRegistry(KmsRegistry registry, DomainRegistry domains, Pools memory p)
        internal
        view
        returns (RegistryView memory v)
    {
        uint256 images = p.osImages.length;
        v.osImageDigests = new bytes32[](images);
        v.osImagesAllowed = new bool[](images);
        v.osImageEffectiveAt = new uint64[](images);
        for (uint256 i = 0; i < images; ++i) {
            v.osImageDigests[i] = registry.osImageProvenance(p.osImages[i]);
            v.osImagesAllowed[i] = registry.isOsImageAllowed(p.osImages[i]);
            v.osImageEffectiveAt[i] = registry.osImageEffectiveAt(p.osImages[i]);
        }
        uint256 measurements = p.osMeasurements.length - 1;
        v.osMeasurementsRegistered = new bool[]((images - 1) * MEASURED_KINDS * measurements);
        for (uint256 i = 0; i < v.osMeasurementsRegistered.length; ++i) {
            (uint256 image, uint256 kind, uint256 measurement) = measurementIndex(i, measurements);
            v.osMeasurementsRegistered[i] = registry.isOsMeasurementRegistered(
                p.osImages[image], TeeKind(kind), p.osMeasurements[measurement]
            );
        }
        v.kmsMeasurements = new bool[](p.kmsMeasurements.length);
        for (uint256 i = 0; i < p.kmsMeasurements.length; ++i) {
            v.kmsMeasurements[i] = registry.isKmsMeasurementAllowed(p.kmsMeasurements[i]);
        }
        v.kmsDevices = new bool[](p.kmsDevices.length);
        for (uint256 i = 0; i < p.kmsDevices.length; ++i) {
            v.kmsDevices[i] = registry.isKmsDeviceAllowed(p.kmsDevices[i]);
        }
        v.nodes = new IKmsRegistry.KmsNode[](p.nodes.length);
        for (uint256 i = 0; i < p.nodes.length; ++i) {
            v.nodes[i] = registry.kmsNode(p.nodes[i]);
        }
        v.appKinds = new IKmsRegistry.AppKind[](p.appCandidates.length);
        for (uint256 i = 0; i < p.appCandidates.length; ++i) {
            v.appKinds[i] = registry.appKind(p.appCandidates[i]);
        }
        v.minNoticePeriod = registry.minNoticePeriod();
        v.allowSimulatedTee = registry.allowSimulatedTee();
        v.appImplementation = registry.appImplementation();
        v.gatewayAppId = registry.gatewayAppId();
        bytes memory caPublicKey;
        (v.rootSigner, caPublicKey, v.rootGeneration) = registry.kmsRootKeys();
        v.caPublicKeyHash = keccak256(caPublicKey);
        v.registryOwner = registry.owner();
        v.registryPendingOwner = registry.pendingOwner();
        v.registryImplementation = implementationOf(address(registry));
        v.domainsOwner = domains.owner();
        v.domainsPendingOwner = domains.pendingOwner();
        v.domainsImplementation = implementationOf(address(domains));
        v.acmeAccountHash = keccak256(bytes(domains.gatewayAcmeAccount()));
    }

    /// For entry `i` of `osMeasurementsRegistered`: the pool indexes of its image and measurement
    /// (both from 1: the zero values are left out) and its TEE kind.
    function measurementIndex(uint256 i, uint256 measurements)
        internal
        pure
        returns (uint256 image, uint256 kind, uint256 measurement)
    {
        measurement = 1 + i % measurements;
        kind = 1 + (i / measurements) % MEASURED_KINDS;
        image = 1 + i / (measurements * MEASURED_KINDS);
    }

    /// {DomainRegistry-isClaimed} over `domainPool` × `candidates`, domain-major.
    function readClaims(DomainRegistry domains, string[] memory domainPool, address[] memory candidates)
        internal
        view
        returns (bool[] memory claims)
    {
        claims = new bool[](domainPool.length * candidates.length);
        for (uint256 i = 0; i < domainPool.length; ++i) {
            for (uint256 j = 0; j < candidates.length; ++j) {
                claims[i * candidates.length + j] = domains.isClaimed(domainPool[i], candidates[j]);
            }
        }
    }

    function readApp(App app, Pools memory p) internal view returns (AppView memory v) {
        v.composeDigests = new bytes32[](p.composeHashes.length);
        v.composeAllowed = new bool[](p.composeHashes.length);
        v.composeEffectiveAt = new uint64[](p.composeHashes.length);
        for (uint256 i = 0; i < p.composeHashes.length; ++i) {
            v.composeDigests[i] = app.composeHashProvenance(p.composeHashes[i]);
            v.composeAllowed[i] = app.isComposeHashAllowed(p.composeHashes[i]);
            v.composeEffectiveAt[i] = app.composeHashEffectiveAt(p.composeHashes[i]);
        }
        v.devices = new bool[](p.devices.length);
        v.deviceEffectiveAt = new uint64[](p.devices.length);
        for (uint256 i = 0; i < p.devices.length; ++i) {
            v.devices[i] = app.isDeviceAllowed(p.devices[i]);
            v.deviceEffectiveAt[i] = app.deviceEffectiveAt(p.devices[i]);
        }
        v.anyDevice = app.anyDevice();
        v.allowedTeeKinds = app.allowedTeeKinds();
        v.requireUpToDateTcb = app.requireUpToDateTcb();
        v.requireGpu = app.requireGpu();
        (v.current, v.scheduled, v.settingsEffectiveAt) = app.settings();
        v.noticePeriod = app.noticePeriod();
        v.keyGeneration = app.keyGeneration();
        v.frozen = app.frozen();
        v.owner = app.owner();
        v.pendingOwner = app.pendingOwner();
        v.implementation = implementationOf(address(app));
        v.registry = app.registry();
    }
}

/// A custom policy contract (governance may register it as an app): it has an owner, so that
/// owner may claim domains for it, and it allows every boot that carries an instance id.
contract OwnedCustomPolicy is IAppPolicy {
    /// @notice The policy's owner.
    address public immutable owner;

    constructor(address owner_) {
        owner = owner_;
    }

    /// @notice Allows every boot with a non-zero instance id.
    function isAppAllowed(BootInfo calldata boot) external pure returns (bool allowed, string memory reason) {
        if (boot.instanceId == bytes20(0)) return (false, "custom: instance id missing");
        return (true, "");
    }
}

/// Drives every state-changing function of KmsRegistry, App and DomainRegistry with a fixed actor
/// set (the Timelock, the app owners, the KMS nodes and three strangers) and values from small
/// pools, and moves time forward so that notice periods elapse. Before each call it predicts, from
/// its expected model, whether the caller is authorised and whether the call should succeed (for
/// some calls, which error it must revert with); after it, it records the outcome, applies the
/// call's effect to the expected model (on success) and rebuilds a second model from the emitted
/// events. Ghost records (compose hash add times, node re-activations, claim releases) feed the
/// invariants that must not rely on the contracts' own views.
contract RegistryHandler is CommonBase, StdCheats, StdUtils {
    /// The deployment the handler drives.
    struct System {
        KmsRegistry registry;
        DomainRegistry domains;
        address timelock;
        address kmsRegistryImplementation;
        address appImplementation;
        address domainRegistryImplementation;
        address appOwner;
        address stranger;
        /// The registry's minimum notice period at deployment.
        uint64 minNoticePeriod;
    }

    struct AppState {
        mapping(bytes32 composeHash => bytes32 digest) composeDigests;
        mapping(bytes32 composeHash => uint64 effectiveAt) composeEffectiveAt;
        mapping(bytes32 deviceId => bool allowed) devices;
        mapping(bytes32 deviceId => uint64 effectiveAt) deviceEffectiveAt;
        /// The latest settings, in force from `settingsEffectiveAt` on.
        IApp.Settings scheduled;
        /// The settings in force until `settingsEffectiveAt`.
        IApp.Settings before;
        uint64 settingsEffectiveAt;
        uint64 noticePeriod;
        uint64 keyGeneration;
        bool frozen;
        /// (Log model) AppCreated was seen; the app's earlier events came from its initializer.
        bool created;
    }

    struct Model {
        mapping(bytes32 osImageHash => bytes32 digest) osImages;
        mapping(bytes32 osImageHash => uint64 effectiveAt) osImageEffectiveAt;
        /// How often each image was added: the measurements of an earlier registration lapse.
        mapping(bytes32 osImageHash => uint32 version) osImageVersions;
        mapping(
            bytes32 osImageHash
                => mapping(
                uint32 version => mapping(TeeKind kind => mapping(bytes32 osMeasurement => bool registered))
            )
        ) osMeasurements;
        mapping(bytes32 mrAggregated => bool allowed) kmsMeasurements;
        mapping(bytes32 deviceId => bool allowed) kmsDevices;
        mapping(address node => IKmsRegistry.KmsNode record) nodes;
        mapping(address app => IKmsRegistry.AppKind kind) appKinds;
        mapping(address app => AppState state) apps;
        mapping(bytes32 domainHash => mapping(address app => bool claimed)) claims;
        mapping(address ownable => address owner) owners;
        mapping(address ownable => address pendingOwner) pendingOwners;
        mapping(address proxy => address implementation) implementations;
        uint64 minNoticePeriod;
        bool allowSimulatedTee;
        address appImplementation;
        address gatewayAppId;
        address rootSigner;
        uint64 rootGeneration;
        bytes32 caPublicKeyHash;
        bytes32 acmeAccountHash;
    }

    /// A node governance removed that became active again, and who onboarded it.
    struct Reactivation {
        address node;
        address by;
    }

    /// A claim that was withdrawn, who withdrew it, and who owned the app at that moment (model).
    struct ClaimRelease {
        bytes32 domainHash;
        address app;
        address by;
        address appOwner;
    }

    uint256 internal constant SETUP_APPS = 3;
    uint256 internal constant MAX_APPS = 4;
    /// The only app the owner path freezes; the others stay live so owner-path calls keep landing.
    uint256 internal constant FREEZE_INDEX = 1;
    /// The only app whose owner may renounce (rarely): renouncing ends all owner calls on it.
    uint256 internal constant RENOUNCE_INDEX = 2;
    uint256 internal constant RECENT_BOOTS = 8;
    /// Every known TEE kind: Tdx, SevSnp and Simulated.
    uint8 internal constant TDX_SNP_SIM = 0x0e;
    /// The registry's bounds, restated (so that a change to the contract's own constants shows).
    uint64 internal constant MAX_GRANT_LOG_COMMIT = 65_536;
    uint64 internal constant MAX_NOTICE_PERIOD = 365 days;
    uint256 internal constant MAX_OS_MEASUREMENTS = 16;
    uint256 internal constant TD_REGISTERS_LENGTH = 192;
    uint256 internal constant SNP_REGISTERS_LENGTH = 48;
    /// Apps draw their notice period from the first this many values of the pool; the registry's
    /// minimum from all of them (the last is over its cap).
    uint256 internal constant APP_NOTICE_CHOICES = 5;
    /// Node standings for {_nodeWhere}.
    uint8 internal constant SERVING = 0;
    uint8 internal constant STOPPED = 1;
    uint8 internal constant GOVERNANCE_REMOVED = 2;

    KmsRegistry public immutable registry;
    DomainRegistry public immutable domains;
    address public immutable timelock;
    address public immutable appOwner;
    address public immutable appOwner2;
    OwnedCustomPolicy public immutable customPolicy;
    address internal immutable _kmsImplementation2;
    address internal immutable _domainsImplementation2;

    Pools internal _pools;
    /// Factory apps, in creation order (the first SETUP_APPS are created in the constructor).
    address[] internal _apps;
    bool[] internal _domainNormalised;
    Provenance[] internal _provenances;
    bool[] internal _provenanceValid;
    /// Register sets OS images measure to: TD registers A and B (192 bytes), SEV-SNP (48 bytes).
    bytes[] internal _registers;
    /// Measurement lists for addOsImage, each as (TeeKind, register index) byte pairs; some invalid.
    bytes[] internal _measurementSets;
    /// Notice periods (seconds) apps and the registry's minimum are drawn from.
    uint64[] internal _noticePeriods;
    string[] internal _acmeAccounts;
    address[] internal _rootSigners;
    bytes[] internal _caPublicKeys;
    address[] internal _gatewayIds;
    address[] internal _appImplementations;
    address[] internal _kmsImplementations;
    address[] internal _domainsImplementations;
    address[] internal _actors;
    address[] internal _strangers;

    Model internal _expected;
    Model internal _fromLogs;
    /// The caller of the call being made (for the `by` of DomainClaimReleased).
    address internal _currentActor;

    BootInfo[] internal _recentBoots;
    uint256 internal _nextBootSlot;

    // Ghost totals.
    uint256 public ghost_calls;
    uint256 public ghost_successes;
    uint256 public ghost_ownerPathSuccesses;
    uint256 public ghost_appOwnerSuccesses;
    uint256 public ghost_domainSuccesses;
    uint256 public ghost_nodeSuccesses;
    uint256 public ghost_rejectedCalls;
    /// Successful restricted calls by an actor the model says is not authorised.
    uint256 public ghost_unauthorizedSuccesses;
    /// Successful restricted calls by one of the fixed strangers (never authorised for anything).
    uint256 public ghost_strangerSuccesses;
    /// Calls whose outcome (success, revert, or the predicted error) differed from the model.
    uint256 public ghost_outcomeMismatches;
    bytes4 public ghost_lastMismatchSelector;
    bool public ghost_lastMismatchSucceeded;
    bytes public ghost_lastMismatchReturn;
    /// Successful calls that targeted an app already frozen.
    uint256 public ghost_frozenAppWrites;
    /// Events whose content contradicted the log model (digest, hash, time or sequence mismatch).
    uint256 public ghost_logInconsistencies;
    uint256 public ghost_bootsEvaluated;
    uint256 public ghost_bootsAllowed;
    /// Boots where isAppAllowed or isKmsAllowed disagreed with the expected model's decision.
    uint256 public ghost_bootMismatches;
    /// Onboarding attempts by an active node that no longer serves (measurement or device removed).
    uint256 public ghost_stoppedOnboarderCalls;
    address public ghost_frozenApp;
    bytes32 public ghost_frozenDigest;
    /// The frozen app's answers to a fixed set of boots, recorded at the freeze and after each warp.
    bytes32 public ghost_frozenAnswers;
    address public ghost_frozenOwner;
    mapping(bytes4 selector => uint256 count) public ghost_successesBySelector;

    /// When the handler last added each compose hash to each app, and the notice in force for the
    /// app at that moment (the longer of its own and the registry's minimum; zero for the initial
    /// hashes of a new app, which are effective at creation). Cleared on removal.
    mapping(address app => mapping(bytes32 composeHash => bool listed)) public ghost_composeListed;
    mapping(address app => mapping(bytes32 composeHash => uint64 addedAt)) public ghost_composeAddedAt;
    mapping(address app => mapping(bytes32 composeHash => uint64 notice)) public ghost_composeNoticeAtAdd;

    /// Nodes governance removed that have not been onboarded since.
    mapping(address node => bool removed) public ghost_governanceRemoved;
    /// Nodes whose latest onboarding followed a governance removal.
    mapping(address node => bool back) public ghost_backAfterGovernanceRemoval;
    Reactivation[] internal _reactivations;
    /// Re-activations after a governance removal made by anyone but the Timelock.
    uint256 public ghost_reactivationsNotByTimelock;

    ClaimRelease[] internal _claimReleases;
    /// Claim releases by anyone but the Timelock or the app's owner at the time.
    uint256 public ghost_claimReleasesByOthers;

    constructor(System memory s) {
        registry = s.registry;
        domains = s.domains;
        timelock = s.timelock;
        appOwner = s.appOwner;
        appOwner2 = makeAddr("appOwner2");
        customPolicy = new OwnedCustomPolicy(s.appOwner);
        _kmsImplementation2 = address(new KmsRegistry());
        _domainsImplementation2 = address(new DomainRegistry(s.registry));
        address appImplementation2 = address(new App(address(s.registry)));

        _initPools(s, appImplementation2);
        _initActors(s.stranger);

        // The deployment's own events (recorded by the suite's setUp) seed the log model; the
        // expected model starts from the deployment configuration.
        _applyLogs(_fromLogs, vm.getRecordedLogs());
        _expected.owners[address(registry)] = timelock;
        _expected.owners[address(domains)] = timelock;
        _expected.implementations[address(registry)] = s.kmsRegistryImplementation;
        _expected.implementations[address(domains)] = s.domainRegistryImplementation;
        _expected.appImplementation = s.appImplementation;
        _expected.minNoticePeriod = s.minNoticePeriod;
        _expected.owners[address(customPolicy)] = s.appOwner;
        // Both models start from the views' empty values (the hash of empty bytes).
        _expected.caPublicKeyHash = keccak256("");
        _expected.acmeAccountHash = keccak256("");
        _fromLogs.caPublicKeyHash = keccak256("");
        _fromLogs.acmeAccountHash = keccak256("");

        _setUpState();
        // Progress counters count the fuzzed calls only.
        (ghost_calls, ghost_successes, ghost_rejectedCalls) = (0, 0, 0);
        (ghost_ownerPathSuccesses, ghost_appOwnerSuccesses, ghost_domainSuccesses) = (0, 0, 0);
        ghost_nodeSuccesses = 0;
    }

    /// The starting state, through the same paths the fuzzer uses: three apps (the second, the one
    /// the owner path may freeze, with a longer notice period), one OS image with measurements on
    /// every platform, and KMS nodes of every standing: serving (nodes 1 and 2), active but no
    /// longer serving because governance removed its device (node 3) or its measurement (node 4),
    /// removed by governance (node 5), and never onboarded (node 6). Two apps claim the first
    /// domain, one also the second. Then the OS image's notice period is waited out, and changes
    /// are made that wait out theirs from the start of every run: a second OS image, a compose hash
    /// and a device for the first app, and any-device switched on for the third.
    function _setUpState() internal {
        uint64 minimum = _expected.minNoticePeriod;
        for (uint256 i = 0; i < SETUP_APPS; ++i) {
            _createApp(
                address(this),
                i == RENOUNCE_INDEX ? appOwner2 : appOwner,
                TDX_SNP_SIM,
                0,
                2,
                i == FREEZE_INDEX ? 2 * minimum : minimum
            );
        }
        require(_apps.length == SETUP_APPS, "setup apps");
        _gatewayIds.push(address(0));
        _gatewayIds.push(_apps[0]);
        _gatewayIds.push(_apps[1]);
        _gatewayIds.push(_pools.appCandidates[0]);
        _addOsImage(timelock, _pools.osImages[1], 0, 1);
        bytes32[] storage mr = _pools.kmsMeasurements;
        bytes32[] storage dev = _pools.kmsDevices;
        address[] storage nodes = _pools.nodes;
        _addKmsMeasurement(timelock, mr[1]);
        _addKmsMeasurement(timelock, mr[2]);
        _addKmsDevice(timelock, dev[1]);
        _addKmsDevice(timelock, dev[2]);
        _addKmsDevice(timelock, dev[3]);
        _onboardKmsNode(timelock, nodes[1], mr[1], dev[1]);
        _onboardKmsNode(timelock, nodes[2], mr[1], dev[2]);
        _onboardKmsNode(timelock, nodes[3], mr[1], dev[3]);
        _onboardKmsNode(timelock, nodes[4], mr[2], dev[1]);
        _onboardKmsNode(timelock, nodes[5], mr[1], dev[1]);
        _removeKmsDevice(timelock, dev[3]);
        _removeKmsMeasurement(timelock, mr[2]);
        _removeKmsNode(timelock, nodes[5]);
        _claimDomain(appOwner, 0, _apps[0]);
        _claimDomain(appOwner, 0, _apps[1]);
        _claimDomain(appOwner, 1, _apps[0]);
        require(ghost_outcomeMismatches == 0 && ghost_rejectedCalls == 0, "setup calls");
        require(_nodeWhere(STOPPED, 0) != address(0), "setup: a node that stopped serving");
        vm.warp(block.timestamp + minimum);
        _addOsImage(timelock, _pools.osImages[2], 1, 2);
        _addComposeHash(_apps[0], appOwner, _pools.composeHashes[3], 1);
        _addDevice(_apps[0], appOwner, _pools.devices[2]);
        _setAnyDevice(_apps[RENOUNCE_INDEX], appOwner2, true);
        require(ghost_outcomeMismatches == 0 && ghost_rejectedCalls == 0, "setup: pending changes");
    }

    // ---------------------------------------------------------------------------------------------
    // KmsRegistry: owner-only settings

    function addOsImage(uint256 actorSeed, uint256 hashSeed, uint256 provenanceSeed, uint256 measurementSeed)
        external
    {
        _addOsImage(
            _actor(actorSeed, timelock),
            _pickBytes32(_pools.osImages, hashSeed),
            bound(provenanceSeed, 0, _provenances.length - 1),
            bound(measurementSeed, 0, _measurementSets.length - 1)
        );
    }

    function removeOsImage(uint256 actorSeed, uint256 hashSeed) external {
        address actor = _actor(actorSeed, timelock);
        bytes32 h = _pickBytes32(_pools.osImages, hashSeed);
        bool authorized = actor == _registryOwner();
        bool expectOk = authorized && _expected.osImages[h] != bytes32(0);
        (bool ok,) = _call(
            actor, address(registry), abi.encodeCall(KmsRegistry.removeOsImage, (h)), authorized, expectOk
        );
        if (ok) {
            delete _expected.osImages[h];
            delete _expected.osImageEffectiveAt[h];
        }
    }

    /// The owner sets the minimum notice period (sometimes over the cap, which must be refused).
    function setMinNoticePeriod(uint256 actorSeed, uint256 periodSeed) external {
        address actor = _actor(actorSeed, timelock);
        uint64 period = _noticePeriods[bound(periodSeed, 0, _noticePeriods.length - 1)];
        bool authorized = actor == _registryOwner();
        bool expectOk = authorized && period != _expected.minNoticePeriod && period <= MAX_NOTICE_PERIOD;
        (bool ok,) = _call(
            actor,
            address(registry),
            abi.encodeCall(KmsRegistry.setMinNoticePeriod, (period)),
            authorized,
            expectOk
        );
        if (ok) _expected.minNoticePeriod = period;
    }

    function addKmsMeasurement(uint256 actorSeed, uint256 mrSeed) external {
        _addKmsMeasurement(_actor(actorSeed, timelock), _pickBytes32(_pools.kmsMeasurements, mrSeed));
    }

    function removeKmsMeasurement(uint256 actorSeed, uint256 mrSeed) external {
        _removeKmsMeasurement(_actor(actorSeed, timelock), _pickBytes32(_pools.kmsMeasurements, mrSeed));
    }

    function addKmsDevice(uint256 actorSeed, uint256 deviceSeed) external {
        _addKmsDevice(_actor(actorSeed, timelock), _pickBytes32(_pools.kmsDevices, deviceSeed));
    }

    function removeKmsDevice(uint256 actorSeed, uint256 deviceSeed) external {
        _removeKmsDevice(_actor(actorSeed, timelock), _pickBytes32(_pools.kmsDevices, deviceSeed));
    }

    function setKmsRootKeys(uint256 actorSeed, uint256 signerSeed, uint256 keySeed) external {
        address actor = _actor(actorSeed, timelock);
        address signer = _rootSigners[bound(signerSeed, 0, _rootSigners.length - 1)];
        bytes memory key = _caPublicKeys[bound(keySeed, 0, _caPublicKeys.length - 1)];
        bool authorized = actor == _registryOwner();
        bool expectOk = authorized && signer != address(0) && key.length == 65 && key[0] == 0x04;
        (bool ok,) = _call(
            actor,
            address(registry),
            abi.encodeCall(KmsRegistry.setKmsRootKeys, (signer, key)),
            authorized,
            expectOk
        );
        if (ok) {
            _expected.rootSigner = signer;
            _expected.caPublicKeyHash = keccak256(key);
            ++_expected.rootGeneration;
        }
    }

    function setGatewayAppId(uint256 actorSeed, uint256 idSeed) external {
        address actor = _actor(actorSeed, timelock);
        address id = _gatewayIds[bound(idSeed, 0, _gatewayIds.length - 1)];
        bool authorized = actor == _registryOwner();
        bool expectOk = authorized && id != _expected.gatewayAppId;
        (bool ok,) = _call(
            actor, address(registry), abi.encodeCall(KmsRegistry.setGatewayAppId, (id)), authorized, expectOk
        );
        if (ok) _expected.gatewayAppId = id;
    }

    function setAllowSimulatedTee(uint256 actorSeed, bool allowed) external {
        address actor = _actor(actorSeed, timelock);
        bool authorized = actor == _registryOwner();
        bool expectOk = authorized && allowed != _expected.allowSimulatedTee;
        (bool ok,) = _call(
            actor,
            address(registry),
            abi.encodeCall(KmsRegistry.setAllowSimulatedTee, (allowed)),
            authorized,
            expectOk
        );
        if (ok) _expected.allowSimulatedTee = allowed;
    }

    function setAppImplementation(uint256 actorSeed, uint256 implementationSeed) external {
        address actor = _actor(actorSeed, timelock);
        address implementation =
            _appImplementations[bound(implementationSeed, 0, _appImplementations.length - 1)];
        bool authorized = actor == _registryOwner();
        bool expectOk =
            authorized && implementation.code.length > 0 && implementation != _expected.appImplementation;
        (bool ok,) = _call(
            actor,
            address(registry),
            abi.encodeCall(KmsRegistry.setAppImplementation, (implementation)),
            authorized,
            expectOk
        );
        if (ok) _expected.appImplementation = implementation;
    }

    function registerCustomApp(uint256 actorSeed, uint256 appSeed) external {
        address actor = _actor(actorSeed, timelock);
        address app = _appCandidate(appSeed);
        bool authorized = actor == _registryOwner();
        bool expectOk =
            authorized && app.code.length > 0 && _expected.appKinds[app] == IKmsRegistry.AppKind.None;
        (bool ok,) = _call(
            actor,
            address(registry),
            abi.encodeCall(KmsRegistry.registerCustomApp, (app)),
            authorized,
            expectOk
        );
        if (ok) _expected.appKinds[app] = IKmsRegistry.AppKind.Custom;
    }

    function deregisterApp(uint256 actorSeed, uint256 appSeed) external {
        address actor = _actor(actorSeed, timelock);
        address app = _appCandidate(appSeed);
        bool authorized = actor == _registryOwner();
        bool expectOk = authorized && _expected.appKinds[app] != IKmsRegistry.AppKind.None;
        (bool ok,) = _call(
            actor, address(registry), abi.encodeCall(KmsRegistry.deregisterApp, (app)), authorized, expectOk
        );
        if (ok) delete _expected.appKinds[app];
    }

    // ---------------------------------------------------------------------------------------------
    // KmsRegistry: nodes, grant logs, app creation

    /// The owner, a serving node, or a node that stopped serving (active, but its measurement or
    /// device was removed since) onboards a node; the node is, half the time, one governance
    /// removed; measurement and device are, half the time, ones the model says are allowed. The
    /// error of a refused call is predicted too: a node that stopped serving is refused as
    /// KmsRegistryNotAuthorizedOnboarder whatever it onboards.
    function onboardKmsNode(uint256 actorSeed, uint256 nodeSeed, uint256 mrSeed, uint256 deviceSeed)
        external
    {
        // Roles: 0 the owner, 1 and 2 a serving node, 3 a node that stopped serving.
        uint256 role = (nodeSeed >> 8) % 4;
        address legit = role == 0
            ? timelock
            : role == 3 ? _nodeWhere(STOPPED, nodeSeed >> 16) : _nodeWhere(SERVING, nodeSeed >> 16);
        address actor = _actor(actorSeed, legit == address(0) ? timelock : legit);
        address node = _pools.nodes[bound(nodeSeed, 0, _pools.nodes.length - 1)];
        address removed = _nodeWhere(GOVERNANCE_REMOVED, nodeSeed >> 24);
        if ((nodeSeed >> 32) % 2 == 0 && removed != address(0)) node = removed;
        _onboardKmsNode(
            actor,
            node,
            _pickMostlyAllowed(_pools.kmsMeasurements, _expected.kmsMeasurements, mrSeed),
            _pickMostlyAllowed(_pools.kmsDevices, _expected.kmsDevices, deviceSeed)
        );
    }

    function removeKmsNode(uint256 actorSeed, uint256 nodeSeed) external {
        _removeKmsNode(_actor(actorSeed, timelock), _pools.nodes[bound(nodeSeed, 0, _pools.nodes.length - 1)]);
    }

    /// A node (or anyone else) commits a grant-log range; mostly the next expected range, some of
    /// them as long as allowed and some longer (which must be refused as KmsRegistryGrantLogRange).
    function commitGrantLog(uint256 actorSeed, uint256 nodeSeed, uint256 shapeSeed) external {
        address node = _pools.nodes[bound(nodeSeed, 1, _pools.nodes.length - 1)];
        address activeNode = _firstActiveNode();
        if (nodeSeed % 2 == 0 && activeNode != address(0)) node = activeNode;
        address actor = _actor(actorSeed, node);
        uint256 shape = bound(shapeSeed, 0, 63);
        // casting to 'uint64' is safe because shape / 8 is at most 7
        // forge-lint: disable-next-line(unsafe-typecast)
        uint64 extra = uint64(shape / 8);
        uint64 expectedFrom = _expected.nodes[actor].committedThrough + 1;
        // Low bits: 0 a gap, 1 a reversed range, 2 a zero root, 3 one longer than allowed, 4 the
        // longest allowed (or, for odd `extra`, one reaching the end of the sequence space),
        // otherwise a short valid commit.
        uint256 kind = shape % 8;
        uint64 fromSeq = kind == 0 ? expectedFrom + 1 : expectedFrom;
        uint64 toSeq = fromSeq + extra;
        if (kind == 1) toSeq = fromSeq - 1;
        else if (kind == 3) toSeq = fromSeq + MAX_GRANT_LOG_COMMIT + extra;
        else if (kind == 4) toSeq = extra % 2 == 0 ? fromSeq + MAX_GRANT_LOG_COMMIT - 1 : type(uint64).max;
        bytes32 root = kind == 2 ? bytes32(0) : keccak256(abi.encode(actor, fromSeq, toSeq));
        bool authorized = _expected.nodes[actor].active;
        bytes4 err;
        if (!authorized) {
            err = IKmsRegistry.KmsRegistryNotActiveNode.selector;
        } else if (fromSeq != expectedFrom) {
            err = IKmsRegistry.KmsRegistryGrantLogGap.selector;
        } else if (toSeq < fromSeq || toSeq - fromSeq >= MAX_GRANT_LOG_COMMIT) {
            err = IKmsRegistry.KmsRegistryGrantLogRange.selector;
        } else if (root == bytes32(0)) {
            err = IKmsRegistry.KmsRegistryZeroValue.selector;
        }
        (bool ok,) = _callExpecting(
            actor,
            address(registry),
            abi.encodeCall(KmsRegistry.commitGrantLog, (fromSeq, toSeq, root)),
            authorized,
            err
        );
        if (ok) {
            _expected.nodes[actor].committedThrough = toSeq;
            ++ghost_nodeSuccesses;
        }
    }

    /// Anyone creates an app (until MAX_APPS exist), from an initial setting drawn from the pools,
    /// with a notice period that may be below the registry's minimum (then refused).
    function createApp(
        uint256 actorSeed,
        uint256 ownerSeed,
        uint256 maskSeed,
        uint256 flagsSeed,
        uint256 noticeSeed
    ) external {
        if (_apps.length >= MAX_APPS) return;
        address actor = _actor(actorSeed, appOwner);
        uint256 o = bound(ownerSeed, 0, 2);
        address owner_ = o == 0 ? appOwner : o == 1 ? appOwner2 : address(0);
        _createApp(
            actor,
            owner_,
            uint8(bound(maskSeed, 0, 15)),
            uint8(bound(flagsSeed, 0, 7)),
            bound(flagsSeed, 0, 2),
            _noticePeriods[bound(noticeSeed, 0, APP_NOTICE_CHOICES - 1)]
        );
    }

    // ---------------------------------------------------------------------------------------------
    // App: owner-only settings

    /// Adds a compose hash (half the time one the app does not list yet); it takes effect once the
    /// notice in force for the app has passed.
    function addComposeHash(uint256 appSeed, uint256 actorSeed, uint256 hashSeed, uint256 provenanceSeed)
        external
    {
        address app = _pickApp(appSeed);
        address actor = _actor(actorSeed, _expected.owners[app]);
        AppState storage a = _expected.apps[app];
        bytes32 h = _pickBytes32(_pools.composeHashes, hashSeed);
        for (uint256 i = 1; i < _pools.composeHashes.length && hashSeed % 2 == 0; ++i) {
            if (a.composeDigests[_pools.composeHashes[i]] == bytes32(0)) {
                h = _pools.composeHashes[i];
                break;
            }
        }
        _addComposeHash(app, actor, h, bound(provenanceSeed, 0, _provenances.length - 1));
    }

    function _addComposeHash(address app, address actor, bytes32 h, uint256 p) internal {
        AppState storage a = _expected.apps[app];
        (bool authorized, bool live) = _appAccess(app, actor);
        bool expectOk = live && h != bytes32(0) && a.composeDigests[h] == bytes32(0) && _provenanceValid[p];
        (bool ok,) =
            _call(actor, app, abi.encodeCall(App.addComposeHash, (h, _provenances[p])), authorized, expectOk);
        if (ok) {
            uint64 notice = _noticeOf(a);
            a.composeDigests[h] = keccak256(abi.encode(_provenances[p]));
            a.composeEffectiveAt[h] = uint64(block.timestamp) + notice;
            _recordComposeAdd(app, h, notice);
        }
    }

    function removeComposeHash(uint256 appSeed, uint256 actorSeed, uint256 hashSeed) external {
        address app = _pickApp(appSeed);
        address actor = _actor(actorSeed, _expected.owners[app]);
        bytes32 h = _pickBytes32(_pools.composeHashes, hashSeed);
        AppState storage a = _expected.apps[app];
        (bool authorized, bool live) = _appAccess(app, actor);
        bool expectOk = live && a.composeDigests[h] != bytes32(0);
        (bool ok,) = _call(actor, app, abi.encodeCall(App.removeComposeHash, (h)), authorized, expectOk);
        if (ok) {
            delete a.composeDigests[h];
            delete a.composeEffectiveAt[h];
            delete ghost_composeListed[app][h];
            delete ghost_composeAddedAt[app][h];
            delete ghost_composeNoticeAtAdd[app][h];
        }
    }

    /// Adds a device (half the time one the app does not list yet); it takes effect once the notice
    /// in force for the app has passed.
    function addDevice(uint256 appSeed, uint256 actorSeed, uint256 deviceSeed) external {
        address app = _pickApp(appSeed);
        address actor = _actor(actorSeed, _expected.owners[app]);
        AppState storage a = _expected.apps[app];
        bytes32 d = _pickBytes32(_pools.devices, deviceSeed);
        for (uint256 i = 1; i < _pools.devices.length && deviceSeed % 2 == 0; ++i) {
            if (!a.devices[_pools.devices[i]]) {
                d = _pools.devices[i];
                break;
            }
        }
        _addDevice(app, actor, d);
    }

    function _addDevice(address app, address actor, bytes32 d) internal {
        AppState storage a = _expected.apps[app];
        (bool authorized, bool live) = _appAccess(app, actor);
        bool expectOk = live && d != bytes32(0) && !a.devices[d];
        (bool ok,) = _call(actor, app, abi.encodeCall(App.addDevice, (d)), authorized, expectOk);
        if (ok) {
            a.devices[d] = true;
            a.deviceEffectiveAt[d] = uint64(block.timestamp) + _noticeOf(a);
        }
    }

    function removeDevice(uint256 appSeed, uint256 actorSeed, uint256 deviceSeed) external {
        address app = _pickApp(appSeed);
        address actor = _actor(actorSeed, _expected.owners[app]);
        bytes32 d = _pickBytes32(_pools.devices, deviceSeed);
        AppState storage a = _expected.apps[app];
        (bool authorized, bool live) = _appAccess(app, actor);
        bool expectOk = live && a.devices[d];
        (bool ok,) = _call(actor, app, abi.encodeCall(App.removeDevice, (d)), authorized, expectOk);
        if (ok) {
            delete a.devices[d];
            delete a.deviceEffectiveAt[d];
        }
    }

    function setAnyDevice(uint256 appSeed, uint256 actorSeed, bool value) external {
        address app = _pickApp(appSeed);
        _setAnyDevice(app, _actor(actorSeed, _expected.owners[app]), value);
    }

    function _setAnyDevice(address app, address actor, bool value) internal {
        AppState storage a = _expected.apps[app];
        (bool authorized, bool live) = _appAccess(app, actor);
        bool expectOk = live && a.scheduled.anyDevice != value;
        (bool ok,) = _call(actor, app, abi.encodeCall(App.setAnyDevice, (value)), authorized, expectOk);
        if (ok) {
            IApp.Settings memory next = a.scheduled;
            next.anyDevice = value;
            _schedule(_expected, a, next);
        }
    }

    function setAllowedTeeKinds(uint256 appSeed, uint256 actorSeed, uint256 maskSeed) external {
        address app = _pickApp(appSeed);
        address actor = _actor(actorSeed, _expected.owners[app]);
        uint8 mask = uint8(bound(maskSeed, 0, 15));
        AppState storage a = _expected.apps[app];
        (bool authorized, bool live) = _appAccess(app, actor);
        bool expectOk = live && mask != a.scheduled.allowedTeeKinds && _validMask(mask);
        (bool ok,) = _call(actor, app, abi.encodeCall(App.setAllowedTeeKinds, (mask)), authorized, expectOk);
        if (ok) {
            IApp.Settings memory next = a.scheduled;
            next.allowedTeeKinds = mask;
            _schedule(_expected, a, next);
        }
    }

    function setRequireUpToDateTcb(uint256 appSeed, uint256 actorSeed, bool value) external {
        address app = _pickApp(appSeed);
        address actor = _actor(actorSeed, _expected.owners[app]);
        AppState storage a = _expected.apps[app];
        (bool authorized, bool live) = _appAccess(app, actor);
        bool expectOk = live && a.scheduled.requireUpToDateTcb != value;
        (bool ok,) =
            _call(actor, app, abi.encodeCall(App.setRequireUpToDateTcb, (value)), authorized, expectOk);
        if (ok) {
            IApp.Settings memory next = a.scheduled;
            next.requireUpToDateTcb = value;
            _schedule(_expected, a, next);
        }
    }

    function setRequireGpu(uint256 appSeed, uint256 actorSeed, bool value) external {
        address app = _pickApp(appSeed);
        address actor = _actor(actorSeed, _expected.owners[app]);
        AppState storage a = _expected.apps[app];
        (bool authorized, bool live) = _appAccess(app, actor);
        bool expectOk = live && a.scheduled.requireGpu != value;
        (bool ok,) = _call(actor, app, abi.encodeCall(App.setRequireGpu, (value)), authorized, expectOk);
        if (ok) {
            IApp.Settings memory next = a.scheduled;
            next.requireGpu = value;
            _schedule(_expected, a, next);
        }
    }

    /// Lengthens (or tries to shorten, which must be refused) an app's notice period.
    function setNoticePeriod(uint256 appSeed, uint256 actorSeed, uint256 periodSeed) external {
        address app = _pickApp(appSeed);
        address actor = _actor(actorSeed, _expected.owners[app]);
        uint64 period = _noticePeriods[bound(periodSeed, 0, APP_NOTICE_CHOICES - 1)];
        AppState storage a = _expected.apps[app];
        (bool authorized, bool live) = _appAccess(app, actor);
        bool expectOk = live && period > a.noticePeriod;
        (bool ok,) = _call(actor, app, abi.encodeCall(App.setNoticePeriod, (period)), authorized, expectOk);
        if (ok) a.noticePeriod = period;
    }

    function bumpKeyGeneration(uint256 appSeed, uint256 actorSeed) external {
        address app = _pickApp(appSeed);
        address actor = _actor(actorSeed, _expected.owners[app]);
        (bool authorized, bool live) = _appAccess(app, actor);
        (bool ok,) = _call(actor, app, abi.encodeCall(App.bumpKeyGeneration, ()), authorized, live);
        if (ok) ++_expected.apps[app].keyGeneration;
    }

    /// The owner path freezes only the designated app; anyone else may try any app.
    function freeze(uint256 appSeed, uint256 actorSeed) external {
        address app = _pickApp(appSeed);
        address actor = _actor(actorSeed, _expected.owners[_apps[FREEZE_INDEX]]);
        if (actor == _expected.owners[app] && app != _apps[FREEZE_INDEX]) app = _apps[FREEZE_INDEX];
        (bool authorized, bool live) = _appAccess(app, actor);
        (bool ok,) = _call(actor, app, abi.encodeCall(App.freeze, ()), authorized, live);
        if (ok) {
            _expected.apps[app].frozen = true;
            ghost_frozenApp = app;
            ghost_frozenOwner = App(app).owner();
            ghost_frozenDigest = frozenAppDigest(app);
            ghost_frozenAnswers = frozenAppAnswers(app);
        }
    }

    function transferAppOwnership(uint256 appSeed, uint256 actorSeed, uint256 newOwnerSeed) external {
        address app = _pickApp(appSeed);
        address actor = _actor(actorSeed, _expected.owners[app]);
        uint256 n = bound(newOwnerSeed, 0, 2);
        address newOwner = n == 0 ? appOwner : n == 1 ? appOwner2 : address(0);
        (bool authorized, bool live) = _appAccess(app, actor);
        (bool ok,) = _call(actor, app, abi.encodeCall(App.transferOwnership, (newOwner)), authorized, live);
        if (ok) _expected.pendingOwners[app] = newOwner;
    }

    function acceptAppOwnership(uint256 appSeed, uint256 actorSeed) external {
        address app = _pickApp(appSeed);
        address pending = _expected.pendingOwners[app];
        address actor = _actor(actorSeed, pending == address(0) ? appOwner2 : pending);
        bool authorized = pending != address(0) && actor == pending;
        bool expectOk = authorized && !_expected.apps[app].frozen;
        (bool ok,) = _call(actor, app, abi.encodeCall(App.acceptOwnership, ()), authorized, expectOk);
        if (ok) {
            _expected.owners[app] = actor;
            delete _expected.pendingOwners[app];
        }
    }

    /// Strangers try to renounce any app; the owner path renounces only the designated app, rarely.
    function renounceAppOwnership(uint256 appSeed, uint256 actorSeed, uint256 rareSeed) external {
        address app = _pickApp(appSeed);
        address actor = _actor(actorSeed, _expected.owners[app]);
        if (actor == _expected.owners[app] && (app != _apps[RENOUNCE_INDEX] || bound(rareSeed, 0, 15) != 0)) {
            return;
        }
        (bool authorized, bool live) = _appAccess(app, actor);
        (bool ok,) = _call(actor, app, abi.encodeCall(App.renounceOwnership, ()), authorized, live);
        if (ok) {
            delete _expected.owners[app];
            delete _expected.pendingOwners[app];
        }
    }

    /// Upgrades an app; only the implementation governance set in the registry is accepted.
    function upgradeApp(uint256 appSeed, uint256 actorSeed, uint256 implementationSeed) external {
        address app = _pickApp(appSeed);
        address actor = _actor(actorSeed, _expected.owners[app]);
        address implementation =
            _appImplementations[bound(implementationSeed, 0, _appImplementations.length - 1)];
        (bool authorized, bool live) = _appAccess(app, actor);
        bool expectOk = live && implementation == _expected.appImplementation;
        (bool ok,) = _call(
            actor,
            app,
            abi.encodeCall(UUPSUpgradeable.upgradeToAndCall, (implementation, "")),
            authorized,
            expectOk
        );
        if (ok) _expected.implementations[app] = implementation;
    }

    // ---------------------------------------------------------------------------------------------
    // DomainRegistry

    /// An app's owner (or anyone else) claims a pool domain for a candidate app; frozen apps may
    /// claim too, and any number of apps may claim the same domain.
    function claimDomain(uint256 domainSeed, uint256 appSeed, uint256 actorSeed) external {
        address app = _appCandidate(appSeed);
        _claimDomain(
            _actor(actorSeed, _expected.owners[app]), bound(domainSeed, 0, _pools.domains.length - 1), app
        );
    }

    /// The claimant's owner, governance, or anyone else withdraws a claim; half the time of an app
    /// the model says claims the domain.
    function releaseClaim(uint256 domainSeed, uint256 appSeed, uint256 actorSeed) external {
        string memory domain = _pools.domains[bound(domainSeed, 0, _pools.domains.length - 1)];
        bytes32 domainHash = keccak256(bytes(domain));
        address app = _appCandidate(appSeed);
        if (appSeed % 2 == 0) {
            address claimant = _claimantOf(domainHash, appSeed >> 8);
            if (claimant != address(0)) app = claimant;
        }
        address ownerNow = _expected.owners[app];
        address actor = _actor(actorSeed, actorSeed % 4 == 0 ? _domainsOwner() : ownerNow);
        bool authorized = actor == _domainsOwner() || (ownerNow != address(0) && actor == ownerNow);
        bool expectOk = authorized && _expected.claims[domainHash][app];
        (bool ok,) = _call(
            actor,
            address(domains),
            abi.encodeCall(DomainRegistry.releaseClaim, (domain, app)),
            authorized,
            expectOk
        );
        if (ok) {
            delete _expected.claims[domainHash][app];
            _claimReleases.push(
                ClaimRelease({domainHash: domainHash, app: app, by: actor, appOwner: ownerNow})
            );
            if (actor != timelock && (ownerNow == address(0) || actor != ownerNow)) {
                ++ghost_claimReleasesByOthers;
            }
            ++ghost_domainSuccesses;
        }
    }

    function setGatewayAcmeAccount(uint256 actorSeed, uint256 uriSeed) external {
        address actor = _actor(actorSeed, timelock);
        string memory uri = _acmeAccounts[bound(uriSeed, 0, _acmeAccounts.length - 1)];
        bool authorized = actor == _domainsOwner();
        bool expectOk =
            authorized && bytes(uri).length <= 512 && keccak256(bytes(uri)) != _expected.acmeAccountHash;
        (bool ok,) = _call(
            actor,
            address(domains),
            abi.encodeCall(DomainRegistry.setGatewayAcmeAccount, (uri)),
            authorized,
            expectOk
        );
        if (ok) _expected.acmeAccountHash = keccak256(bytes(uri));
    }

    // ---------------------------------------------------------------------------------------------
    // Registries' ownership and upgrades (the owner path never gives ownership away)

    /// The owner re-nominates itself or clears the nomination; anyone else nominates itself.
    function transferRegistryOwnership(uint256 targetSeed, uint256 actorSeed, bool clear) external {
        address target = _registryTarget(targetSeed);
        address actor = _actor(actorSeed, timelock);
        bool authorized = actor == _expected.owners[target];
        address newOwner = authorized ? (clear ? address(0) : actor) : actor;
        (bool ok,) = _call(
            actor,
            target,
            abi.encodeCall(OwnableUpgradeable.transferOwnership, (newOwner)),
            authorized,
            authorized
        );
        if (ok) _expected.pendingOwners[target] = newOwner;
    }

    function acceptRegistryOwnership(uint256 targetSeed, uint256 actorSeed) external {
        address target = _registryTarget(targetSeed);
        address actor = _actor(actorSeed, timelock);
        bool authorized =
            _expected.pendingOwners[target] != address(0) && actor == _expected.pendingOwners[target];
        (bool ok,) = _call(
            actor, target, abi.encodeCall(Ownable2StepUpgradeable.acceptOwnership, ()), authorized, authorized
        );
        if (ok) {
            _expected.owners[target] = actor;
            delete _expected.pendingOwners[target];
        }
    }

    /// Only non-owners try this: the owner path never renounces the registries.
    function renounceRegistryOwnership(uint256 targetSeed, uint256 actorSeed) external {
        address target = _registryTarget(targetSeed);
        address actor = _actor(actorSeed, _strangers[actorSeed % _strangers.length]);
        if (actor == _expected.owners[target]) return;
        _call(actor, target, abi.encodeCall(OwnableUpgradeable.renounceOwnership, ()), false, false);
    }

    function upgradeRegistry(uint256 targetSeed, uint256 actorSeed, uint256 implementationSeed) external {
        address target = _registryTarget(targetSeed);
        address[] storage pool = target == address(registry) ? _kmsImplementations : _domainsImplementations;
        address implementation = pool[bound(implementationSeed, 0, pool.length - 1)];
        address actor = _actor(actorSeed, timelock);
        bool authorized = actor == _expected.owners[target];
        bool expectOk = authorized && implementation.code.length > 0;
        (bool ok,) = _call(
            actor,
            target,
            abi.encodeCall(UUPSUpgradeable.upgradeToAndCall, (implementation, "")),
            authorized,
            expectOk
        );
        if (ok) _expected.implementations[target] = implementation;
    }

    // ---------------------------------------------------------------------------------------------
    // Time and boots

    /// Moves time forward by up to four days, so that notice periods (one hour to three days)
    /// sometimes pass and sometimes not. The frozen app's answers are recorded again: a change
    /// scheduled before the freeze may take effect as time passes.
    function warp(uint256 secondsSeed) external {
        vm.warp(block.timestamp + bound(secondsSeed, 1, 4 days));
        if (ghost_frozenApp != address(0)) ghost_frozenAnswers = frozenAppAnswers(ghost_frozenApp);
    }

    /// Evaluates four boots of pool apps, each built mostly from values the app and registry allow
    /// (so that allowed boots occur) with some fields redrawn from the pools; asks the registry,
    /// compares with the expected model, and keeps each boot for the invariant to re-check.
    function evaluateBoot(uint256 appSeed, uint256 shapeSeed, uint256 valueSeed) external {
        for (uint256 i = 0; i < 4; ++i) {
            _evaluateBoot(
                bound(appSeed, 0, type(uint128).max) + i,
                uint256(keccak256(abi.encode(shapeSeed, i))),
                uint256(keccak256(abi.encode(valueSeed, i)))
            );
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Views for the invariant suite

    function pools() public view returns (Pools memory p) {
        p = _pools;
        p.appCandidates = new address[](_apps.length + 2);
        for (uint256 i = 0; i < _apps.length; ++i) {
            p.appCandidates[i] = _apps[i];
        }
        p.appCandidates[_apps.length] = address(customPolicy);
        p.appCandidates[_apps.length + 1] = _pools.appCandidates[0];
    }

    function apps() external view returns (address[] memory) {
        return _apps;
    }

    function recentBoots() external view returns (BootInfo[] memory) {
        return _recentBoots;
    }

    function reactivations() external view returns (Reactivation[] memory) {
        return _reactivations;
    }

    function claimReleases() external view returns (ClaimRelease[] memory) {
        return _claimReleases;
    }

    /// A boot of `app` carrying `composeHash` and otherwise built from what the app's and the
    /// registry's views allow now (effective values preferred), so that it is allowed exactly when
    /// the compose hash is.
    function probeBoot(address app, bytes32 composeHash) external view returns (BootInfo memory b) {
        b = _likelyBoot(app, 0);
        b.composeHash = composeHash;
    }

    /// The registries' state as the chosen model has it.
    function registryModel(ModelSource source) external view returns (RegistryView memory v) {
        Model storage m = _model(source);
        Pools memory p = pools();
        uint256 images = p.osImages.length;
        v.osImageDigests = new bytes32[](images);
        v.osImagesAllowed = new bool[](images);
        v.osImageEffectiveAt = new uint64[](images);
        for (uint256 i = 0; i < images; ++i) {
            v.osImageDigests[i] = m.osImages[p.osImages[i]];
            v.osImagesAllowed[i] = v.osImageDigests[i] != bytes32(0);
            v.osImageEffectiveAt[i] = m.osImageEffectiveAt[p.osImages[i]];
        }
        uint256 measurements = p.osMeasurements.length - 1;
        v.osMeasurementsRegistered = new bool[]((images - 1) * RegistryViews.MEASURED_KINDS * measurements);
        for (uint256 i = 0; i < v.osMeasurementsRegistered.length; ++i) {
            (uint256 image, uint256 kind, uint256 measurement) =
                RegistryViews.measurementIndex(i, measurements);
            v.osMeasurementsRegistered[i] =
                _measurementRegistered(m, p.osImages[image], TeeKind(kind), p.osMeasurements[measurement]);
        }
        v.kmsMeasurements = new bool[](p.kmsMeasurements.length);
        for (uint256 i = 0; i < p.kmsMeasurements.length; ++i) {
            v.kmsMeasurements[i] = m.kmsMeasurements[p.kmsMeasurements[i]];
        }
        v.kmsDevices = new bool[](p.kmsDevices.length);
        for (uint256 i = 0; i < p.kmsDevices.length; ++i) {
            v.kmsDevices[i] = m.kmsDevices[p.kmsDevices[i]];
        }
        v.nodes = new IKmsRegistry.KmsNode[](p.nodes.length);
        for (uint256 i = 0; i < p.nodes.length; ++i) {
            v.nodes[i] = m.nodes[p.nodes[i]];
        }
        v.appKinds = new IKmsRegistry.AppKind[](p.appCandidates.length);
        for (uint256 i = 0; i < p.appCandidates.length; ++i) {
            v.appKinds[i] = m.appKinds[p.appCandidates[i]];
        }
        v.minNoticePeriod = m.minNoticePeriod;
        v.allowSimulatedTee = m.allowSimulatedTee;
        v.appImplementation = m.appImplementation;
        v.gatewayAppId = m.gatewayAppId;
        v.rootSigner = m.rootSigner;
        v.caPublicKeyHash = m.caPublicKeyHash;
        v.rootGeneration = m.rootGeneration;
        v.registryOwner = m.owners[address(registry)];
        v.registryPendingOwner = m.pendingOwners[address(registry)];
        v.registryImplementation = m.implementations[address(registry)];
        v.domainsOwner = m.owners[address(domains)];
        v.domainsPendingOwner = m.pendingOwners[address(domains)];
        v.domainsImplementation = m.implementations[address(domains)];
        v.acmeAccountHash = m.acmeAccountHash;
    }

    /// The pool domains and the app candidates (as in {pools}), over which claims are compared.
    function claimTargets() public view returns (string[] memory domainPool, address[] memory candidates) {
        domainPool = _pools.domains;
        candidates = new address[](_apps.length + 2);
        for (uint256 i = 0; i < _apps.length; ++i) {
            candidates[i] = _apps[i];
        }
        candidates[_apps.length] = address(customPolicy);
        candidates[_apps.length + 1] = _pools.appCandidates[0];
    }

    /// The claims over {claimTargets} (domain-major) as the chosen model has them.
    function claimsModel(ModelSource source) external view returns (bool[] memory claims) {
        Model storage m = _model(source);
        (string[] memory domainPool, address[] memory candidates) = claimTargets();
        claims = new bool[](domainPool.length * candidates.length);
        for (uint256 i = 0; i < domainPool.length; ++i) {
            bytes32 domainHash = keccak256(bytes(domainPool[i]));
            for (uint256 j = 0; j < candidates.length; ++j) {
                claims[i * candidates.length + j] = m.claims[domainHash][candidates[j]];
            }
        }
    }

    /// The compose hash pool.
    function composeHashes() external view returns (bytes32[] memory) {
        return _pools.composeHashes;
    }

    /// The KMS node pool.
    function nodes() external view returns (address[] memory) {
        return _pools.nodes;
    }

    /// One app's state as the chosen model has it, with the settings in force at this block.
    function appModel(ModelSource source, address app) external view returns (AppView memory v) {
        Model storage m = _model(source);
        AppState storage a = m.apps[app];
        uint256 hashes = _pools.composeHashes.length;
        v.composeDigests = new bytes32[](hashes);
        v.composeAllowed = new bool[](hashes);
        v.composeEffectiveAt = new uint64[](hashes);
        for (uint256 i = 0; i < hashes; ++i) {
            bytes32 h = _pools.composeHashes[i];
            v.composeDigests[i] = a.composeDigests[h];
            v.composeAllowed[i] = v.composeDigests[i] != bytes32(0);
            v.composeEffectiveAt[i] = a.composeEffectiveAt[h];
        }
        v.devices = new bool[](_pools.devices.length);
        v.deviceEffectiveAt = new uint64[](_pools.devices.length);
        for (uint256 i = 0; i < _pools.devices.length; ++i) {
            v.devices[i] = a.devices[_pools.devices[i]];
            v.deviceEffectiveAt[i] = a.deviceEffectiveAt[_pools.devices[i]];
        }
        v.current = _inForce(a);
        v.anyDevice = v.current.anyDevice;
        v.allowedTeeKinds = v.current.allowedTeeKinds;
        v.requireUpToDateTcb = v.current.requireUpToDateTcb;
        v.requireGpu = v.current.requireGpu;
        v.scheduled = a.scheduled;
        v.settingsEffectiveAt = a.settingsEffectiveAt;
        v.noticePeriod = a.noticePeriod;
        v.keyGeneration = a.keyGeneration;
        v.frozen = a.frozen;
        v.owner = m.owners[app];
        v.pendingOwner = m.pendingOwners[app];
        v.implementation = m.implementations[app];
        v.registry = address(registry);
    }

    /// A digest of every view of `app` that does not depend on the time: the settings in force are
    /// left out (a change scheduled before a freeze still takes effect when its time comes), the
    /// scheduled settings and when they take effect are in.
    function frozenAppDigest(address app) public view returns (bytes32) {
        AppView memory v = RegistryViews.readApp(App(app), _pools);
        (v.anyDevice, v.allowedTeeKinds, v.requireUpToDateTcb, v.requireGpu) = (false, 0, false, false);
        delete v.current;
        return keccak256(abi.encode(v, App(app).composeHashProvenance(bytes32(0))));
    }

    /// A digest of the policy's answers to a fixed set of boots of `app`, at this block.
    function frozenAppAnswers(address app) public view returns (bytes32) {
        App a = App(app);
        bytes memory answers;
        for (uint256 i = 0; i < 8; ++i) {
            BootInfo memory b;
            b.appId = app;
            b.composeHash = _pools.composeHashes[i % _pools.composeHashes.length];
            b.deviceId = _pools.devices[(i / 2) % _pools.devices.length];
            // casting to 'uint8' is safe because 1 + i % 3 is at most 3
            // forge-lint: disable-next-line(unsafe-typecast)
            b.teeKind = TeeKind(uint8(1 + i % 3));
            b.tcbStatus = i % 2 == 0 ? TcbStatus.UpToDate : TcbStatus.OutOfDate;
            b.gpuEvidenceHash = i % 4 < 2 ? bytes32(0) : keccak256("gpu");
            // casting to 'uint64' is safe because i % 3 is at most 2
            // forge-lint: disable-next-line(unsafe-typecast)
            b.keyGeneration = uint64(i % 3);
            b.instanceId = i == 7 ? bytes20(0) : bytes20(keccak256(abi.encode(i)));
            (bool allowed, string memory reason) = a.isAppAllowed(b);
            answers = abi.encodePacked(answers, allowed, reason);
        }
        return keccak256(answers);
    }

    // ---------------------------------------------------------------------------------------------
    // Internals: calls and prediction

    /// Calls `target` as `actor` and records the outcome against the prediction; applies the events
    /// of a successful call to the log model.
    function _call(address actor, address target, bytes memory data, bool authorized, bool expectOk)
        internal
        returns (bool ok, bytes memory ret)
    {
        return _doCall(actor, target, data, authorized, expectOk, bytes4(0));
    }

    /// Like {_call}, with the prediction given as the error the call must revert with (zero: the
    /// call must succeed); a revert with any other error counts as a mismatch.
    function _callExpecting(address actor, address target, bytes memory data, bool authorized, bytes4 err)
        internal
        returns (bool ok, bytes memory ret)
    {
        return _doCall(actor, target, data, authorized, err == bytes4(0), err);
    }

    function _doCall(
        address actor,
        address target,
        bytes memory data,
        bool authorized,
        bool expectOk,
        bytes4 expectedError
    ) internal returns (bool ok, bytes memory ret) {
        bool targetFrozen = _expected.apps[target].frozen;
        ++ghost_calls;
        _currentActor = actor;
        vm.recordLogs();
        vm.prank(actor);
        (ok, ret) = target.call(data);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        // casting to 'bytes4' is safe because it keeps the selector, the intended prefix
        // forge-lint: disable-next-line(unsafe-typecast)
        bytes4 selector = bytes4(data);
        if (ok) {
            ++ghost_successes;
            ++ghost_successesBySelector[selector];
            _applyLogs(_fromLogs, logs);
            if (selector != KmsRegistry.createApp.selector) {
                if (!authorized) ++ghost_unauthorizedSuccesses;
                if (_isStranger(actor)) ++ghost_strangerSuccesses;
                if (actor == timelock) ++ghost_ownerPathSuccesses;
                else if (target != address(registry) && target != address(domains)) ++ghost_appOwnerSuccesses;
            }
            if (targetFrozen) ++ghost_frozenAppWrites;
        } else {
            ++ghost_rejectedCalls;
        }
        // casting to 'bytes4' is safe because it keeps the error selector, the intended prefix
        // forge-lint: disable-next-line(unsafe-typecast)
        bool wrongError = !ok && !expectOk && expectedError != bytes4(0) && bytes4(ret) != expectedError;
        if (ok != expectOk || wrongError) {
            ++ghost_outcomeMismatches;
            ghost_lastMismatchSelector = selector;
            ghost_lastMismatchSucceeded = ok;
            ghost_lastMismatchReturn = ret;
        }
    }

    function _addOsImage(address actor, bytes32 h, uint256 p, uint256 set) internal {
        bool authorized = actor == _registryOwner();
        bool expectOk = authorized && h != bytes32(0) && _expected.osImages[h] == bytes32(0)
            && _provenanceValid[p] && _measurementSetValid(set);
        (bool ok,) = _call(
            actor,
            address(registry),
            abi.encodeCall(KmsRegistry.addOsImage, (h, _provenances[p], _measurements(set))),
            authorized,
            expectOk
        );
        if (!ok) return;
        _expected.osImages[h] = keccak256(abi.encode(_provenances[p]));
        _expected.osImageEffectiveAt[h] = uint64(block.timestamp) + _expected.minNoticePeriod;
        uint32 version = ++_expected.osImageVersions[h];
        bytes storage spec = _measurementSets[set];
        for (uint256 i = 0; i < spec.length; i += 2) {
            // The register pool's entry r measures to the measurement pool's entry r + 1.
            _expected.osMeasurements[
                h
            ][version][TeeKind(uint8(spec[i]))][_pools.osMeasurements[uint8(spec[i + 1]) + 1]] = true;
        }
    }

    function _addKmsMeasurement(address actor, bytes32 mr) internal {
        bool authorized = actor == _registryOwner();
        bool expectOk = authorized && mr != bytes32(0) && !_expected.kmsMeasurements[mr];
        (bool ok,) = _call(
            actor,
            address(registry),
            abi.encodeCall(KmsRegistry.addKmsMeasurement, (mr)),
            authorized,
            expectOk
        );
        if (ok) _expected.kmsMeasurements[mr] = true;
    }

    function _removeKmsMeasurement(address actor, bytes32 mr) internal {
        bool authorized = actor == _registryOwner();
        bool expectOk = authorized && _expected.kmsMeasurements[mr];
        (bool ok,) = _call(
            actor,
            address(registry),
            abi.encodeCall(KmsRegistry.removeKmsMeasurement, (mr)),
            authorized,
            expectOk
        );
        if (ok) delete _expected.kmsMeasurements[mr];
    }

    function _addKmsDevice(address actor, bytes32 d) internal {
        bool authorized = actor == _registryOwner();
        bool expectOk = authorized && d != bytes32(0) && !_expected.kmsDevices[d];
        (bool ok,) = _call(
            actor, address(registry), abi.encodeCall(KmsRegistry.addKmsDevice, (d)), authorized, expectOk
        );
        if (ok) _expected.kmsDevices[d] = true;
    }

    function _removeKmsDevice(address actor, bytes32 d) internal {
        bool authorized = actor == _registryOwner();
        bool expectOk = authorized && _expected.kmsDevices[d];
        (bool ok,) = _call(
            actor, address(registry), abi.encodeCall(KmsRegistry.removeKmsDevice, (d)), authorized, expectOk
        );
        if (ok) delete _expected.kmsDevices[d];
    }

    /// Onboards `node` as `actor`, predicting the exact error of a refusal (the checks' order is
    /// the contract's: onboarder, zero node, already active, removed by governance, measurement,
    /// device). Records re-activations of nodes governance removed, and who made them.
    function _onboardKmsNode(address actor, address node, bytes32 mr, bytes32 d) internal {
        IKmsRegistry.KmsNode storage record = _expected.nodes[node];
        bool byOwner = actor == _registryOwner();
        bool authorized = byOwner || _isServing(actor);
        if (!authorized && _expected.nodes[actor].active) ++ghost_stoppedOnboarderCalls;
        bytes4 err;
        if (!authorized) {
            err = IKmsRegistry.KmsRegistryNotAuthorizedOnboarder.selector;
        } else if (node == address(0)) {
            err = IKmsRegistry.KmsRegistryZeroValue.selector;
        } else if (record.active) {
            err = IKmsRegistry.KmsRegistryNodeAlreadyActive.selector;
        } else if (record.removedByGovernance && !byOwner) {
            err = IKmsRegistry.KmsRegistryNodeRemovedByGovernance.selector;
        } else if (!_expected.kmsMeasurements[mr]) {
            err = IKmsRegistry.KmsRegistryMeasurementNotAllowed.selector;
        } else if (!_expected.kmsDevices[d]) {
            err = IKmsRegistry.KmsRegistryDeviceNotAllowed.selector;
        }
        (bool ok,) = _callExpecting(
            actor,
            address(registry),
            abi.encodeCall(KmsRegistry.onboardKmsNode, (node, mr, d)),
            authorized,
            err
        );
        if (!ok) return;
        record.active = true;
        record.onboardedBy = actor;
        record.onboardedAt = uint64(block.timestamp);
        record.mrAggregated = mr;
        record.deviceId = d;
        record.removedByGovernance = false;
        if (!byOwner) ++ghost_nodeSuccesses;
        ghost_backAfterGovernanceRemoval[node] = ghost_governanceRemoved[node];
        if (ghost_governanceRemoved[node]) {
            ghost_governanceRemoved[node] = false;
            _reactivations.push(Reactivation({node: node, by: actor}));
            if (actor != timelock) ++ghost_reactivationsNotByTimelock;
        }
    }

    function _removeKmsNode(address actor, address node) internal {
        bool authorized = actor == _registryOwner();
        bool expectOk = authorized && _expected.nodes[node].active;
        (bool ok,) = _call(
            actor, address(registry), abi.encodeCall(KmsRegistry.removeKmsNode, (node)), authorized, expectOk
        );
        if (ok) {
            _expected.nodes[node].active = false;
            _expected.nodes[node].removedByGovernance = true;
            ghost_governanceRemoved[node] = true;
            ghost_backAfterGovernanceRemoval[node] = false;
        }
    }

    /// Claims `_pools.domains[i]` for `app` as `actor`: the name must be normalised, the app
    /// registered, the caller its owner (frozen or not), and the claim new.
    function _claimDomain(address actor, uint256 i, address app) internal {
        string memory domain = _pools.domains[i];
        bytes32 domainHash = keccak256(bytes(domain));
        address owner_ = _expected.owners[app];
        bool authorized =
            _expected.appKinds[app] != IKmsRegistry.AppKind.None && owner_ != address(0) && actor == owner_;
        bool expectOk = authorized && _domainNormalised[i] && !_expected.claims[domainHash][app];
        (bool ok,) = _call(
            actor,
            address(domains),
            abi.encodeCall(DomainRegistry.claimDomain, (domain, app)),
            authorized,
            expectOk
        );
        if (ok) {
            _expected.claims[domainHash][app] = true;
            ++ghost_domainSuccesses;
        }
    }

    /// Creates an app with `composeCount` (0-2) compose hashes from the pool; `flags` bit 0 sets
    /// anyDevice, bit 1 requireUpToDateTcb, bit 2 requireGpu. Everything is effective at once.
    function _createApp(
        address actor,
        address owner_,
        uint8 mask,
        uint8 flags,
        uint256 composeCount,
        uint64 notice
    ) internal {
        IApp.AppInit memory init;
        init.composeHashes = new bytes32[](composeCount);
        init.provenances = new Provenance[](composeCount);
        for (uint256 i = 0; i < composeCount; ++i) {
            init.composeHashes[i] = _pools.composeHashes[1 + i];
            init.provenances[i] = _provenances[i];
        }
        init.devices = new bytes32[](1);
        init.devices[0] = _pools.devices[1];
        init.allowedTeeKinds = mask;
        init.anyDevice = flags & 1 != 0;
        init.requireUpToDateTcb = flags & 2 != 0;
        init.requireGpu = flags & 4 != 0;
        init.noticePeriod = notice;
        bool expectOk = owner_ != address(0) && notice >= _expected.minNoticePeriod && _validMask(mask);
        (bool ok, bytes memory ret) = _call(
            actor, address(registry), abi.encodeCall(KmsRegistry.createApp, (owner_, init)), true, expectOk
        );
        if (!ok) return;
        address app = abi.decode(ret, (address));
        _apps.push(app);
        _expected.appKinds[app] = IKmsRegistry.AppKind.Factory;
        _expected.owners[app] = owner_;
        _expected.implementations[app] = _expected.appImplementation;
        AppState storage a = _expected.apps[app];
        uint64 now_ = uint64(block.timestamp);
        for (uint256 i = 0; i < composeCount; ++i) {
            a.composeDigests[init.composeHashes[i]] = keccak256(abi.encode(init.provenances[i]));
            a.composeEffectiveAt[init.composeHashes[i]] = now_;
            _recordComposeAdd(app, init.composeHashes[i], 0);
        }
        a.devices[init.devices[0]] = true;
        a.deviceEffectiveAt[init.devices[0]] = now_;
        a.scheduled = IApp.Settings({
            allowedTeeKinds: mask,
            anyDevice: init.anyDevice,
            requireUpToDateTcb: init.requireUpToDateTcb,
            requireGpu: init.requireGpu
        });
        a.before = a.scheduled;
        a.settingsEffectiveAt = now_;
        a.noticePeriod = notice;
        a.keyGeneration = 1;
    }

    function _recordComposeAdd(address app, bytes32 h, uint64 notice) internal {
        ghost_composeListed[app][h] = true;
        ghost_composeAddedAt[app][h] = uint64(block.timestamp);
        ghost_composeNoticeAtAdd[app][h] = notice;
    }

    /// Whether `actor` owns `app` per the model, and whether an owner call would pass (not frozen).
    function _appAccess(address app, address actor) internal view returns (bool authorized, bool live) {
        authorized = _expected.owners[app] != address(0) && actor == _expected.owners[app];
        live = authorized && !_expected.apps[app].frozen;
    }

    // ---------------------------------------------------------------------------------------------
    // Internals: the notice period and settings (shared by both models)

    /// The notice a loosening of `a` made now waits: the longer of the app's and the registry's
    /// minimum (as the expected model has them).
    function _noticeOf(AppState storage a) internal view returns (uint64) {
        return _longerNotice(a.noticePeriod, _expected.minNoticePeriod);
    }

    function _longerNotice(uint64 appNotice, uint64 minimum) internal pure returns (uint64) {
        return appNotice > minimum ? appNotice : minimum;
    }

    /// The settings in force at this block.
    function _inForce(AppState storage a) internal view returns (IApp.Settings memory) {
        return _reached(a.settingsEffectiveAt) ? a.scheduled : a.before;
    }

    /// The stricter of two settings: kinds both allow, any device only if both, each requirement if
    /// either has it.
    function _stricter(IApp.Settings memory x, IApp.Settings memory y)
        internal
        pure
        returns (IApp.Settings memory)
    {
        return IApp.Settings({
            allowedTeeKinds: x.allowedTeeKinds & y.allowedTeeKinds,
            anyDevice: x.anyDevice && y.anyDevice,
            requireUpToDateTcb: x.requireUpToDateTcb || y.requireUpToDateTcb,
            requireGpu: x.requireGpu || y.requireGpu
        });
    }

    function _sameSettings(IApp.Settings memory x, IApp.Settings memory y) internal pure returns (bool) {
        return x.allowedTeeKinds == y.allowedTeeKinds && x.anyDevice == y.anyDevice
            && x.requireUpToDateTcb == y.requireUpToDateTcb && x.requireGpu == y.requireGpu;
    }

    /// What scheduling `next` leaves in force until when: the stricter of the settings in force and
    /// `next` at once, `next` itself after the notice period if it loosens anything (else at once).
    function _scheduled(Model storage m, AppState storage a, IApp.Settings memory next)
        internal
        view
        returns (IApp.Settings memory before, uint64 effectiveAt)
    {
        before = _stricter(_inForce(a), next);
        effectiveAt = uint64(block.timestamp);
        if (!_sameSettings(before, next)) effectiveAt += _longerNotice(a.noticePeriod, m.minNoticePeriod);
    }

    function _schedule(Model storage m, AppState storage a, IApp.Settings memory next) internal {
        (IApp.Settings memory before, uint64 effectiveAt) = _scheduled(m, a, next);
        a.before = before;
        a.scheduled = next;
        a.settingsEffectiveAt = effectiveAt;
    }

    function _measurementRegistered(Model storage m, bytes32 image, TeeKind kind, bytes32 measurement)
        internal
        view
        returns (bool)
    {
        return m.osImages[image] != bytes32(0)
            && m.osMeasurements[image][m.osImageVersions[image]][kind][measurement];
    }

    // ---------------------------------------------------------------------------------------------
    // Internals: boots

    /// The platform checks the registry applies to apps and KMS nodes alike, as the expected model
    /// computes them: TEE kind, TCB status, OS image allowed and effective, measurement registered.
    function _modelPlatformOk(BootInfo memory b) internal view returns (bool) {
        Model storage m = _expected;
        if (b.teeKind == TeeKind.Unknown) return false;
        if (b.teeKind == TeeKind.Simulated && !m.allowSimulatedTee) return false;
        if (b.tcbStatus == TcbStatus.Unknown || b.tcbStatus == TcbStatus.Revoked) return false;
        if (m.osImages[b.osImageHash] == bytes32(0)) return false;
        if (!_reached(m.osImageEffectiveAt[b.osImageHash])) return false;
        return _measurementRegistered(m, b.osImageHash, b.teeKind, b.osMeasurement);
    }

    /// The registry's decision as the expected model computes it (at this block).
    function _modelAllows(BootInfo memory b) internal view returns (bool) {
        Model storage m = _expected;
        if (m.appKinds[b.appId] == IKmsRegistry.AppKind.None) return false;
        if (!_modelPlatformOk(b)) return false;
        if (b.appId == address(customPolicy)) return b.instanceId != bytes20(0);
        AppState storage a = m.apps[b.appId];
        if (a.composeDigests[b.composeHash] == bytes32(0)) return false;
        if (!_reached(a.composeEffectiveAt[b.composeHash])) return false;
        IApp.Settings memory s = _inForce(a);
        if (!s.anyDevice) {
            if (!a.devices[b.deviceId]) return false;
            if (!_reached(a.deviceEffectiveAt[b.deviceId])) return false;
        }
        if ((uint256(s.allowedTeeKinds) >> uint8(b.teeKind)) & 1 == 0) return false;
        if (s.requireUpToDateTcb && b.tcbStatus != TcbStatus.UpToDate) return false;
        if (s.requireGpu && b.gpuEvidenceHash == bytes32(0)) return false;
        if (b.keyGeneration != a.keyGeneration) return false;
        return b.instanceId != bytes20(0);
    }

    /// {KmsRegistry-isKmsAllowed} as the expected model computes it.
    function _modelKmsAllows(BootInfo memory b) internal view returns (bool) {
        return _modelPlatformOk(b) && b.tcbStatus == TcbStatus.UpToDate
            && _expected.kmsMeasurements[b.mrAggregated] && _expected.kmsDevices[b.deviceId];
    }

    /// Four bits of `shape` per field (a hash, so that edge seeds do not redraw every field or none);
    /// a field is redrawn from its pool when its bits are zero. The same boot, with a KMS
    /// measurement and device drawn from their pools, is also checked as a KMS node boot.
    function _evaluateBoot(uint256 appSeed, uint256 shape, uint256 v) internal {
        // Each of the compose hash, device and OS image is, for a quarter of the boots, one still
        // waiting out its notice period (where there is one).
        uint256 pending = ((shape >> 40) & 3 == 0 ? 1 : 0) | ((shape >> 42) & 3 == 0 ? 2 : 0)
            | ((shape >> 44) & 3 == 0 ? 4 : 0);
        BootInfo memory b = _likelyBoot(_appCandidate(appSeed), pending);
        if (shape & 15 == 0) b.composeHash = _pickBytes32(_pools.composeHashes, v);
        if ((shape >> 4) & 15 == 0) b.deviceId = _pickBytes32(_pools.devices, v >> 2);
        if ((shape >> 8) & 15 == 0) b.osImageHash = _pickBytes32(_pools.osImages, v >> 4);
        if ((shape >> 12) & 15 == 0) b.teeKind = TeeKind(bound(v >> 6, 0, 3));
        if ((shape >> 16) & 15 == 0) b.tcbStatus = TcbStatus(bound(v >> 8, 0, 7));
        if ((shape >> 20) & 15 == 0) b.gpuEvidenceHash = bytes32(0);
        // casting to 'uint64' is safe because the bound is at most 3
        // forge-lint: disable-next-line(unsafe-typecast)
        if ((shape >> 24) & 15 == 0) b.keyGeneration = uint64(bound(v >> 11, 0, 3));
        if ((shape >> 28) & 15 == 0) b.instanceId = bytes20(0);
        if ((shape >> 32) & 15 == 0) b.appId = _appCandidate(v >> 13);
        if ((shape >> 36) & 15 == 0) b.osMeasurement = _pickBytes32(_pools.osMeasurements, v >> 15);

        (bool allowed,) = registry.isAppAllowed(b);
        ++ghost_bootsEvaluated;
        if (allowed) ++ghost_bootsAllowed;
        if (allowed != _modelAllows(b)) ++ghost_bootMismatches;

        (bytes32 appMr, bytes32 appDevice) = (b.mrAggregated, b.deviceId);
        b.mrAggregated = _pickMostlyAllowed(_pools.kmsMeasurements, _expected.kmsMeasurements, v >> 17);
        b.deviceId = _pickMostlyAllowed(_pools.kmsDevices, _expected.kmsDevices, v >> 19);
        (bool kmsAllowed,) = registry.isKmsAllowed(b);
        if (kmsAllowed != _modelKmsAllows(b)) ++ghost_bootMismatches;
        (b.mrAggregated, b.deviceId) = (appMr, appDevice);

        if (_recentBoots.length < RECENT_BOOTS) {
            _recentBoots.push(b);
        } else {
            _recentBoots[_nextBootSlot] = b;
        }
        _nextBootSlot = (_nextBootSlot + 1) % RECENT_BOOTS;
    }

    /// A boot of `app` built from the pool values its current views allow: the registry accepts it
    /// unless something (a registration, an OS image, a compose hash, a device) is missing or not yet
    /// effective. Listed values already in effect are preferred, or, where `pending` says so (bit 0
    /// the compose hash, bit 1 the device, bit 2 the OS image), listed values still waiting out their
    /// notice period.
    function _likelyBoot(address app, uint256 pending) internal view returns (BootInfo memory b) {
        b.appId = app;
        b.instanceId = bytes20(keccak256(abi.encode("instance", app)));
        b.mrAggregated = keccak256("app mr");
        b.tcbStatus = TcbStatus.UpToDate;
        b.gpuEvidenceHash = keccak256("gpu evidence");
        b.teeKind = TeeKind.Tdx;
        b.composeHash = _pools.composeHashes[1];
        b.deviceId = _pools.devices[1];
        if (app != address(customPolicy) && app.code.length > 0) {
            App a = App(app);
            bytes32 listed;
            for (uint256 i = 1; i < _pools.composeHashes.length; ++i) {
                bytes32 h = _pools.composeHashes[i];
                if (!a.isComposeHashAllowed(h)) continue;
                if (listed == bytes32(0)) listed = h;
                if (_reached(a.composeHashEffectiveAt(h)) != (pending & 1 != 0)) {
                    listed = h;
                    break;
                }
            }
            if (listed != bytes32(0)) b.composeHash = listed;
            listed = bytes32(0);
            for (uint256 i = 1; i < _pools.devices.length; ++i) {
                bytes32 d = _pools.devices[i];
                if (!a.isDeviceAllowed(d)) continue;
                if (listed == bytes32(0)) listed = d;
                if (_reached(a.deviceEffectiveAt(d)) != (pending & 2 != 0)) {
                    listed = d;
                    break;
                }
            }
            if (listed != bytes32(0)) b.deviceId = listed;
            uint8 mask = a.allowedTeeKinds();
            if (mask & (uint8(1) << uint8(TeeKind.Tdx)) == 0) {
                b.teeKind =
                    mask & (uint8(1) << uint8(TeeKind.SevSnp)) != 0 ? TeeKind.SevSnp : TeeKind.Simulated;
            }
            b.keyGeneration = a.keyGeneration();
        }
        (b.osImageHash, b.osMeasurement) = _osFor(b.teeKind, pending & 4 != 0);
    }

    /// An allowed OS image and a measurement registered with it for `kind`, through the registry's
    /// views: one with such a measurement that is in effect (or, if `preferPending`, not yet) if
    /// there is one, else the best there is.
    function _osFor(TeeKind kind, bool preferPending)
        internal
        view
        returns (bytes32 image, bytes32 measurement)
    {
        image = _pools.osImages[1];
        measurement = _pools.osMeasurements[1];
        uint256 best;
        for (uint256 i = 1; i < _pools.osImages.length && best < 3; ++i) {
            bytes32 h = _pools.osImages[i];
            if (!registry.isOsImageAllowed(h)) continue;
            bytes32 found;
            for (uint256 j = 1; j < _pools.osMeasurements.length; ++j) {
                if (registry.isOsMeasurementRegistered(h, kind, _pools.osMeasurements[j])) {
                    found = _pools.osMeasurements[j];
                    break;
                }
            }
            uint256 score = 1;
            if (found != bytes32(0)) {
                score = _reached(registry.osImageEffectiveAt(h)) != preferPending ? 3 : 2;
            }
            if (score > best) {
                best = score;
                image = h;
                if (found != bytes32(0)) measurement = found;
            }
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Internals: the log model

    function _applyLogs(Model storage m, Vm.Log[] memory logs) internal {
        for (uint256 i = 0; i < logs.length; ++i) {
            Vm.Log memory log = logs[i];
            if (log.topics.length == 0) continue;
            if (log.emitter == address(registry)) _applyRegistryLog(m, log);
            else if (log.emitter == address(domains)) _applyDomainLog(m, log);
            else _applyAppLog(m, log);
            _applyOwnableLog(m, log);
        }
    }

    function _applyRegistryLog(Model storage m, Vm.Log memory log) internal {
        bytes32 t = log.topics[0];
        if (t == IKmsRegistry.OsImageAdded.selector) {
            _applyOsImageAdded(m, log);
        } else if (t == IKmsRegistry.OsImageRemoved.selector) {
            delete m.osImages[log.topics[1]];
            delete m.osImageEffectiveAt[log.topics[1]];
        } else if (t == IKmsRegistry.MinNoticePeriodSet.selector) {
            m.minNoticePeriod = abi.decode(log.data, (uint64));
        } else if (t == IKmsRegistry.KmsMeasurementAdded.selector) {
            m.kmsMeasurements[log.topics[1]] = true;
        } else if (t == IKmsRegistry.KmsMeasurementRemoved.selector) {
            delete m.kmsMeasurements[log.topics[1]];
        } else if (t == IKmsRegistry.KmsDeviceAdded.selector) {
            m.kmsDevices[log.topics[1]] = true;
        } else if (t == IKmsRegistry.KmsDeviceRemoved.selector) {
            delete m.kmsDevices[log.topics[1]];
        } else if (t == IKmsRegistry.KmsNodeOnboarded.selector) {
            IKmsRegistry.KmsNode storage record = m.nodes[_topicAddress(log.topics[1])];
            record.active = true;
            record.onboardedBy = _topicAddress(log.topics[2]);
            record.removedByGovernance = false;
            (record.mrAggregated, record.deviceId, record.onboardedAt) =
                abi.decode(log.data, (bytes32, bytes32, uint64));
        } else if (t == IKmsRegistry.KmsNodeRemoved.selector) {
            IKmsRegistry.KmsNode storage record = m.nodes[_topicAddress(log.topics[1])];
            record.active = false;
            record.removedByGovernance = true;
        } else if (t == IKmsRegistry.KmsRootKeysSet.selector) {
            (address signer, bytes memory key) = abi.decode(log.data, (address, bytes));
            uint64 generation = uint64(uint256(log.topics[1]));
            if (generation != m.rootGeneration + 1) ++ghost_logInconsistencies;
            m.rootGeneration = generation;
            m.rootSigner = signer;
            m.caPublicKeyHash = keccak256(key);
        } else if (t == IKmsRegistry.GatewayAppIdSet.selector) {
            if (_topicAddress(log.topics[1]) != m.gatewayAppId) ++ghost_logInconsistencies;
            m.gatewayAppId = _topicAddress(log.topics[2]);
        } else if (t == IKmsRegistry.AllowSimulatedTeeSet.selector) {
            m.allowSimulatedTee = abi.decode(log.data, (bool));
        } else if (t == IKmsRegistry.AppImplementationSet.selector) {
            if (_topicAddress(log.topics[1]) != m.appImplementation) ++ghost_logInconsistencies;
            m.appImplementation = _topicAddress(log.topics[2]);
        } else if (t == IKmsRegistry.AppCreated.selector) {
            address app = _topicAddress(log.topics[1]);
            m.appKinds[app] = IKmsRegistry.AppKind.Factory;
            m.apps[app].created = true;
            // The app's initialize emitted KeyGenerationBumped(1) before this event.
            if (m.apps[app].keyGeneration != 1) ++ghost_logInconsistencies;
            if (_topicAddress(log.topics[2]) != m.owners[app]) ++ghost_logInconsistencies;
            if (_topicAddress(log.topics[3]) != m.implementations[app]) ++ghost_logInconsistencies;
        } else if (t == IKmsRegistry.CustomAppRegistered.selector) {
            m.appKinds[_topicAddress(log.topics[1])] = IKmsRegistry.AppKind.Custom;
        } else if (t == IKmsRegistry.AppDeregistered.selector) {
            delete m.appKinds[_topicAddress(log.topics[1])];
        } else if (t == IKmsRegistry.GrantLogCommitted.selector) {
            IKmsRegistry.KmsNode storage record = m.nodes[_topicAddress(log.topics[1])];
            uint64 fromSeq = uint64(uint256(log.topics[2]));
            (uint64 toSeq,) = abi.decode(log.data, (uint64, bytes32));
            if (fromSeq != record.committedThrough + 1 || toSeq < fromSeq) ++ghost_logInconsistencies;
            else if (toSeq - fromSeq >= MAX_GRANT_LOG_COMMIT) ++ghost_logInconsistencies;
            record.committedThrough = toSeq;
        }
    }

    /// An OS image added: its digest matches its provenance, it takes effect after the minimum
    /// notice period the log model has, and its measurements replace those of earlier registrations.
    function _applyOsImageAdded(Model storage m, Vm.Log memory log) internal {
        bytes32 image = log.topics[1];
        (bytes32 digest, Provenance memory p, OsMeasurement[] memory ms, uint64 effectiveAt) =
            abi.decode(log.data, (bytes32, Provenance, OsMeasurement[], uint64));
        if (digest != keccak256(abi.encode(p))) ++ghost_logInconsistencies;
        uint64 expectedAt = uint64(block.timestamp) + m.minNoticePeriod;
        if (effectiveAt != expectedAt) ++ghost_logInconsistencies;
        m.osImages[image] = digest;
        m.osImageEffectiveAt[image] = effectiveAt;
        uint32 version = ++m.osImageVersions[image];
        for (uint256 i = 0; i < ms.length; ++i) {
            m.osMeasurements[image][version][ms[i].teeKind][sha256(ms[i].registers)] = true;
        }
    }

    function _applyDomainLog(Model storage m, Vm.Log memory log) internal {
        bytes32 t = log.topics[0];
        if (t == IDomainRegistry.DomainClaimed.selector) {
            string memory domain = abi.decode(log.data, (string));
            address app = _topicAddress(log.topics[2]);
            if (keccak256(bytes(domain)) != log.topics[1]) ++ghost_logInconsistencies;
            if (m.claims[log.topics[1]][app]) ++ghost_logInconsistencies;
            m.claims[log.topics[1]][app] = true;
        } else if (t == IDomainRegistry.DomainClaimReleased.selector) {
            (string memory domain, address by) = abi.decode(log.data, (string, address));
            address app = _topicAddress(log.topics[2]);
            if (keccak256(bytes(domain)) != log.topics[1]) ++ghost_logInconsistencies;
            if (!m.claims[log.topics[1]][app]) ++ghost_logInconsistencies;
            if (by != _currentActor) ++ghost_logInconsistencies;
            delete m.claims[log.topics[1]][app];
        } else if (t == IDomainRegistry.GatewayAcmeAccountSet.selector) {
            m.acmeAccountHash = keccak256(bytes(abi.decode(log.data, (string))));
        }
    }

    /// An app's events. Until AppCreated is seen they come from its initializer and take effect at
    /// once; afterwards each addition and loosening must wait the notice the log model computes.
    function _applyAppLog(Model storage m, Vm.Log memory log) internal {
        bytes32 t = log.topics[0];
        AppState storage a = m.apps[log.emitter];
        uint64 noticeEnd = uint64(block.timestamp);
        if (a.created) noticeEnd += _longerNotice(a.noticePeriod, m.minNoticePeriod);
        if (t == IApp.ComposeHashAdded.selector) {
            (bytes32 digest, Provenance memory p, uint64 effectiveAt) =
                abi.decode(log.data, (bytes32, Provenance, uint64));
            if (digest != keccak256(abi.encode(p))) ++ghost_logInconsistencies;
            if (effectiveAt != noticeEnd) ++ghost_logInconsistencies;
            a.composeDigests[log.topics[1]] = digest;
            a.composeEffectiveAt[log.topics[1]] = effectiveAt;
        } else if (t == IApp.ComposeHashRemoved.selector) {
            delete a.composeDigests[log.topics[1]];
            delete a.composeEffectiveAt[log.topics[1]];
        } else if (t == IApp.DeviceAdded.selector) {
            uint64 effectiveAt = abi.decode(log.data, (uint64));
            if (effectiveAt != noticeEnd) ++ghost_logInconsistencies;
            a.devices[log.topics[1]] = true;
            a.deviceEffectiveAt[log.topics[1]] = effectiveAt;
        } else if (t == IApp.DeviceRemoved.selector) {
            delete a.devices[log.topics[1]];
            delete a.deviceEffectiveAt[log.topics[1]];
        } else if (t == IApp.SettingsScheduled.selector) {
            _applySettingsScheduled(m, a, log);
        } else if (t == IApp.NoticePeriodSet.selector) {
            uint64 notice = abi.decode(log.data, (uint64));
            if (a.created && notice <= a.noticePeriod) ++ghost_logInconsistencies;
            a.noticePeriod = notice;
        } else if (t == IApp.KeyGenerationBumped.selector) {
            uint64 generation = abi.decode(log.data, (uint64));
            if (generation != a.keyGeneration + 1) ++ghost_logInconsistencies;
            a.keyGeneration = generation;
        } else if (t == IApp.AppFrozen.selector) {
            a.frozen = true;
        }
    }

    /// A settings change: `before` must be the stricter of what was in force and `scheduled`, and
    /// `effectiveAt` the block's time unless it loosens something (then after the notice period);
    /// the initial settings are in force at once.
    function _applySettingsScheduled(Model storage m, AppState storage a, Vm.Log memory log) internal {
        (IApp.Settings memory before, IApp.Settings memory next, uint64 effectiveAt) =
            abi.decode(log.data, (IApp.Settings, IApp.Settings, uint64));
        IApp.Settings memory expectedBefore = next;
        uint64 expectedAt = uint64(block.timestamp);
        if (a.created) (expectedBefore, expectedAt) = _scheduled(m, a, next);
        if (!_sameSettings(before, expectedBefore) || effectiveAt != expectedAt) ++ghost_logInconsistencies;
        a.before = before;
        a.scheduled = next;
        a.settingsEffectiveAt = effectiveAt;
    }

    function _applyOwnableLog(Model storage m, Vm.Log memory log) internal {
        bytes32 t = log.topics[0];
        if (t == OwnableUpgradeable.OwnershipTransferred.selector) {
            if (_topicAddress(log.topics[1]) != m.owners[log.emitter]) ++ghost_logInconsistencies;
            m.owners[log.emitter] = _topicAddress(log.topics[2]);
            delete m.pendingOwners[log.emitter];
        } else if (t == Ownable2StepUpgradeable.OwnershipTransferStarted.selector) {
            m.pendingOwners[log.emitter] = _topicAddress(log.topics[2]);
        } else if (t == IERC1967.Upgraded.selector) {
            m.implementations[log.emitter] = _topicAddress(log.topics[1]);
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Internals: pools, actors, helpers

    function _initPools(System memory s, address appImplementation2) internal {
        for (uint256 i = 0; i < 4; ++i) {
            bytes32 salt = bytes32(i);
            _pools.osImages.push(i == 0 ? bytes32(0) : keccak256(abi.encode("os image", salt)));
            _pools.kmsMeasurements.push(i == 0 ? bytes32(0) : sha256(abi.encode("kms mr", salt)));
            _pools.kmsDevices.push(i == 0 ? bytes32(0) : sha256(abi.encode("kms device", salt)));
            _pools.composeHashes.push(i == 0 ? bytes32(0) : sha256(abi.encode("compose", salt)));
            _pools.devices.push(i == 0 ? bytes32(0) : sha256(abi.encode("device", salt)));
        }
        for (uint256 i = 0; i < 7; ++i) {
            _pools.nodes.push(i == 0 ? address(0) : makeAddr(string.concat("node", vm.toString(i))));
        }
        _pools.domains.push("app.example.com");
        _pools.domains.push("api.example.com");
        _pools.domains.push("shop.example.org");
        _pools.domains.push("Bad.example.com");
        _pools.domains.push("localhost");
        _domainNormalised.push(true);
        _domainNormalised.push(true);
        _domainNormalised.push(true);
        _domainNormalised.push(false);
        _domainNormalised.push(false);
        // The unregistered address among the app candidates.
        _pools.appCandidates.push(s.stranger);

        for (uint256 i = 0; i < 2; ++i) {
            Provenance storage p = _provenances.push();
            p.sourceUrl = "https://git.example/covenant/app";
            p.sourceCommit = i == 0 ? "v1" : "v2";
            p.artifactDigests.push(sha256(bytes(p.sourceCommit)));
            _provenanceValid.push(true);
        }
        Provenance storage bad = _provenances.push();
        bad.sourceUrl = "https://git.example/covenant/app";
        _provenanceValid.push(false);

        _initOsMeasurements();

        _noticePeriods.push(0);
        _noticePeriods.push(1 hours);
        _noticePeriods.push(1 days);
        _noticePeriods.push(2 days);
        _noticePeriods.push(3 days);
        _noticePeriods.push(MAX_NOTICE_PERIOD + 1 days);

        _acmeAccounts.push("");
        _acmeAccounts.push("https://acme.example/acct/1");
        _acmeAccounts.push("https://acme.example/acct/2");
        bytes memory tooLong = new bytes(513);
        for (uint256 i = 0; i < tooLong.length; ++i) {
            tooLong[i] = "a";
        }
        _acmeAccounts.push(string(tooLong));

        _rootSigners.push(address(0));
        _rootSigners.push(makeAddr("rootSigner1"));
        _rootSigners.push(makeAddr("rootSigner2"));
        _caPublicKeys.push(abi.encodePacked(bytes1(0x04), keccak256("ca x 1"), keccak256("ca y 1")));
        _caPublicKeys.push(abi.encodePacked(bytes1(0x04), keccak256("ca x 2"), keccak256("ca y 2")));
        _caPublicKeys.push(abi.encodePacked(keccak256("ca x 1"), keccak256("ca y 1")));
        _caPublicKeys.push(abi.encodePacked(bytes1(0x02), keccak256("ca x 1"), keccak256("ca y 1")));

        _appImplementations.push(s.appImplementation);
        _appImplementations.push(appImplementation2);
        _appImplementations.push(s.stranger);
        _kmsImplementations.push(s.kmsRegistryImplementation);
        _kmsImplementations.push(_kmsImplementation2);
        _kmsImplementations.push(s.stranger);
        _domainsImplementations.push(s.domainRegistryImplementation);
        _domainsImplementations.push(_domainsImplementation2);
        _domainsImplementations.push(s.stranger);
    }

    /// Register sets A and B (TDX and simulated, 192 bytes) and S (SEV-SNP, 48 bytes), their
    /// sha256 as the measurement pool, and the measurement lists addOsImage draws from: four valid
    /// ones, then an empty one, one with too many entries, and three with a platform or register
    /// length that does not fit.
    function _initOsMeasurements() internal {
        for (uint256 r = 0; r < 2; ++r) {
            bytes memory registers;
            for (uint256 i = 0; i < TD_REGISTERS_LENGTH / 32; ++i) {
                registers = abi.encodePacked(registers, keccak256(abi.encode("td registers", r, i)));
            }
            _registers.push(registers);
        }
        _registers.push(abi.encodePacked(keccak256("snp measurement"), bytes16(keccak256("snp tail"))));
        _pools.osMeasurements.push(bytes32(0));
        for (uint256 r = 0; r < _registers.length; ++r) {
            _pools.osMeasurements.push(sha256(_registers[r]));
        }
        // (TeeKind, register index) pairs: 1 = Tdx, 2 = SevSnp, 3 = Simulated; 0 = A, 1 = B, 2 = S.
        _measurementSets.push(hex"0100");
        _measurementSets.push(hex"010002020300");
        _measurementSets.push(hex"01010202");
        _measurementSets.push(hex"03010100");
        _measurementSets.push("");
        bytes memory tooMany;
        for (uint256 i = 0; i <= MAX_OS_MEASUREMENTS; ++i) {
            tooMany = abi.encodePacked(tooMany, hex"0100");
        }
        _measurementSets.push(tooMany);
        _measurementSets.push(hex"0200");
        _measurementSets.push(hex"0000");
        _measurementSets.push(hex"0102");
    }

    /// The measurement list `set` as addOsImage takes it.
    function _measurements(uint256 set) internal view returns (OsMeasurement[] memory ms) {
        bytes storage spec = _measurementSets[set];
        ms = new OsMeasurement[](spec.length / 2);
        for (uint256 i = 0; i < ms.length; ++i) {
            ms[i] = OsMeasurement({
                teeKind: TeeKind(uint8(spec[2 * i])), registers: _registers[uint8(spec[2 * i + 1])]
            });
        }
    }

    /// Whether addOsImage accepts the list `set`: 1 to MAX_OS_MEASUREMENTS entries, each of a
    /// known platform with registers of that platform's length.
    function _measurementSetValid(uint256 set) internal view returns (bool) {
        bytes storage spec = _measurementSets[set];
        uint256 count = spec.length / 2;
        if (count == 0 || count > MAX_OS_MEASUREMENTS) return false;
        for (uint256 i = 0; i < count; ++i) {
            TeeKind kind = TeeKind(uint8(spec[2 * i]));
            uint256 length = _registers[uint8(spec[2 * i + 1])].length;
            if (kind == TeeKind.Unknown) return false;
            if (length != (kind == TeeKind.SevSnp ? SNP_REGISTERS_LENGTH : TD_REGISTERS_LENGTH)) {
                return false;
            }
        }
        return true;
    }

    function _initActors(address stranger) internal {
        _strangers.push(stranger);
        _strangers.push(makeAddr("eve"));
        _strangers.push(makeAddr("mallory"));
        _actors.push(timelock);
        _actors.push(appOwner);
        _actors.push(appOwner2);
        for (uint256 i = 0; i < _strangers.length; ++i) {
            _actors.push(_strangers[i]);
        }
        for (uint256 i = 1; i < _pools.nodes.length; ++i) {
            _actors.push(_pools.nodes[i]);
        }
    }

    /// {StdUtils-bound} without its console log: the handler bounds many values on every call.
    function bound(uint256 x, uint256 min, uint256 max) internal pure override returns (uint256) {
        return _bound(x, min, max);
    }

    /// Half of the seeds pick `legit` (the caller the function expects), the other half any actor.
    function _actor(uint256 seed, address legit) internal view returns (address) {
        uint256 i = bound(seed, 0, 2 * _actors.length - 1);
        if (i < _actors.length && legit != address(0)) return legit;
        return _actors[i % _actors.length];
    }

    function _pickBytes32(bytes32[] storage pool, uint256 seed) internal view returns (bytes32) {
        return pool[bound(seed, 0, pool.length - 1)];
    }

    /// Half the seeds pick the first pool value `allowed` holds (if any), the others any pool value.
    function _pickMostlyAllowed(
        bytes32[] storage pool,
        mapping(bytes32 => bool) storage allowed,
        uint256 seed
    ) internal view returns (bytes32) {
        if (seed % 2 == 0) {
            for (uint256 i = 0; i < pool.length; ++i) {
                if (allowed[pool[i]]) return pool[i];
            }
        }
        return _pickBytes32(pool, seed);
    }

    /// The first pool node that is active, or zero.
    function _firstActiveNode() internal view returns (address) {
        for (uint256 i = 1; i < _pools.nodes.length; ++i) {
            if (_expected.nodes[_pools.nodes[i]].active) return _pools.nodes[i];
        }
        return address(0);
    }

    /// A pool node of the given standing (SERVING; STOPPED: active, but its measurement or device
    /// no longer allowed; GOVERNANCE_REMOVED: inactive after removeKmsNode), chosen by `seed` among
    /// those that qualify; zero if none does.
    function _nodeWhere(uint8 standing, uint256 seed) internal view returns (address) {
        uint256 n = _pools.nodes.length - 1;
        uint256 start = seed % n;
        for (uint256 k = 0; k < n; ++k) {
            address node = _pools.nodes[1 + (start + k) % n];
            IKmsRegistry.KmsNode storage record = _expected.nodes[node];
            bool serving = _isServing(node);
            if (standing == SERVING && serving) return node;
            if (standing == STOPPED && record.active && !serving) return node;
            if (standing == GOVERNANCE_REMOVED && !record.active && record.removedByGovernance) return node;
        }
        return address(0);
    }

    /// A candidate app the model says claims `domainHash`, chosen by `seed`; zero if none.
    function _claimantOf(bytes32 domainHash, uint256 seed) internal view returns (address) {
        uint256 n = _apps.length + 2;
        for (uint256 k = 0; k < n; ++k) {
            address app = _appCandidate((seed + k) % n);
            if (_expected.claims[domainHash][app]) return app;
        }
        return address(0);
    }

    function _pickApp(uint256 seed) internal view returns (address) {
        return _apps[bound(seed, 0, _apps.length - 1)];
    }

    /// A factory app, the custom policy, or the unregistered address.
    function _appCandidate(uint256 seed) internal view returns (address) {
        uint256 i = bound(seed, 0, _apps.length + 1);
        if (i < _apps.length) return _apps[i];
        return i == _apps.length ? address(customPolicy) : _pools.appCandidates[0];
    }

    function _registryTarget(uint256 seed) internal view returns (address) {
        return bound(seed, 0, 1) == 0 ? address(registry) : address(domains);
    }

    function _registryOwner() internal view returns (address) {
        return _expected.owners[address(registry)];
    }

    function _domainsOwner() internal view returns (address) {
        return _expected.owners[address(domains)];
    }

    function _isServing(address node) internal view returns (bool) {
        IKmsRegistry.KmsNode storage record = _expected.nodes[node];
        return record.active && _expected.kmsMeasurements[record.mrAggregated]
            && _expected.kmsDevices[record.deviceId];
    }

    function _isStranger(address actor) internal view returns (bool) {
        for (uint256 i = 0; i < _strangers.length; ++i) {
            if (_strangers[i] == actor) return true;
        }
        return false;
    }

    function _validMask(uint8 mask) internal pure returns (bool) {
        return mask != 0 && mask & ~TDX_SNP_SIM == 0;
    }

    function _model(ModelSource source) internal view returns (Model storage) {
        return source == ModelSource.Expected ? _expected : _fromLogs;
    }

    /// Whether the block's time has reached `time` (a test clock only the handler warps).
    function _reached(uint256 time) internal view returns (bool) {
        // forge-lint: disable-next-line(block-timestamp)
        return block.timestamp >= time;
    }

    function _topicAddress(bytes32 topic) internal pure returns (address) {
        return address(uint160(uint256(topic)));
    }
}
