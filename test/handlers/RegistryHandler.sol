// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {
    BootInfo,
    IAppPolicy,
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
    bytes32[] kmsMeasurements;
    bytes32[] kmsDevices;
    address[] nodes;
    bytes32[] composeHashes;
    bytes32[] devices;
    string[] domains;
    /// Factory apps (setup and handler-created), the custom policy, and an unregistered address.
    address[] appCandidates;
}

/// Everything the KMS and domain registries expose, read over the pools (or rebuilt by a model).
struct RegistryView {
    bytes32[] osImageDigests;
    bool[] osImagesAllowed;
    bool[] kmsMeasurements;
    bool[] kmsDevices;
    IKmsRegistry.KmsNode[] nodes;
    IKmsRegistry.AppKind[] appKinds;
    address[] domainApps;
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
    bool[] devices;
    bool anyDevice;
    uint8 allowedTeeKinds;
    bool requireUpToDateTcb;
    bool requireGpu;
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
    Vm private constant VM = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    function implementationOf(address proxy) internal view returns (address) {
        return address(uint160(uint256(VM.load(proxy, IMPLEMENTATION_SLOT))));
    }

    function readRegistry(KmsRegistry registry, DomainRegistry domains, Pools memory p)
        internal
        view
        returns (RegistryView memory v)
    {
        v.osImageDigests = new bytes32[](p.osImages.length);
        v.osImagesAllowed = new bool[](p.osImages.length);
        for (uint256 i = 0; i < p.osImages.length; ++i) {
            v.osImageDigests[i] = registry.osImageProvenance(p.osImages[i]);
            v.osImagesAllowed[i] = registry.isOsImageAllowed(p.osImages[i]);
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
        v.domainApps = new address[](p.domains.length);
        for (uint256 i = 0; i < p.domains.length; ++i) {
            v.domainApps[i] = domains.appOf(p.domains[i]);
        }
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

    function readApp(App app, Pools memory p) internal view returns (AppView memory v) {
        v.composeDigests = new bytes32[](p.composeHashes.length);
        v.composeAllowed = new bool[](p.composeHashes.length);
        for (uint256 i = 0; i < p.composeHashes.length; ++i) {
            v.composeDigests[i] = app.composeHashProvenance(p.composeHashes[i]);
            v.composeAllowed[i] = app.isComposeHashAllowed(p.composeHashes[i]);
        }
        v.devices = new bool[](p.devices.length);
        for (uint256 i = 0; i < p.devices.length; ++i) {
            v.devices[i] = app.isDeviceAllowed(p.devices[i]);
        }
        v.anyDevice = app.anyDevice();
        v.allowedTeeKinds = app.allowedTeeKinds();
        v.requireUpToDateTcb = app.requireUpToDateTcb();
        v.requireGpu = app.requireGpu();
        v.keyGeneration = app.keyGeneration();
        v.frozen = app.frozen();
        v.owner = app.owner();
        v.pendingOwner = app.pendingOwner();
        v.implementation = implementationOf(address(app));
        v.registry = app.registry();
    }
}

/// A custom policy contract (governance may register it as an app): it has an owner, so that
/// owner may bind domains to it, and it allows every boot that carries an instance id.
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
/// pools. Before each call it predicts, from its expected model, whether the caller is authorised
/// and whether the call should succeed; after it, it records the outcome, applies the call's
/// effect to the expected model (on success) and rebuilds a second model from the emitted events.
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
    }

    struct AppState {
        mapping(bytes32 composeHash => bytes32 digest) composeDigests;
        mapping(bytes32 deviceId => bool allowed) devices;
        bool anyDevice;
        uint8 allowedTeeKinds;
        bool requireUpToDateTcb;
        bool requireGpu;
        uint64 keyGeneration;
        bool frozen;
    }

    struct Model {
        mapping(bytes32 osImageHash => bytes32 digest) osImages;
        mapping(bytes32 mrAggregated => bool allowed) kmsMeasurements;
        mapping(bytes32 deviceId => bool allowed) kmsDevices;
        mapping(address node => IKmsRegistry.KmsNode record) nodes;
        mapping(address app => IKmsRegistry.AppKind kind) appKinds;
        mapping(address app => AppState state) apps;
        mapping(bytes32 domainHash => address app) domainApps;
        mapping(address ownable => address owner) owners;
        mapping(address ownable => address pendingOwner) pendingOwners;
        mapping(address proxy => address implementation) implementations;
        bool allowSimulatedTee;
        address appImplementation;
        address gatewayAppId;
        address rootSigner;
        uint64 rootGeneration;
        bytes32 caPublicKeyHash;
        bytes32 acmeAccountHash;
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
    /// Calls whose outcome (success or revert) differed from the model's prediction.
    uint256 public ghost_outcomeMismatches;
    bytes4 public ghost_lastMismatchSelector;
    bool public ghost_lastMismatchSucceeded;
    bytes public ghost_lastMismatchReturn;
    /// Successful calls that targeted an app already frozen.
    uint256 public ghost_frozenAppWrites;
    /// Events whose content contradicted the log model (digest, hash or sequence mismatch).
    uint256 public ghost_logInconsistencies;
    uint256 public ghost_bootsEvaluated;
    uint256 public ghost_bootsAllowed;
    /// Boots where isAppAllowed disagreed with the expected model's decision.
    uint256 public ghost_bootMismatches;
    address public ghost_frozenApp;
    bytes32 public ghost_frozenDigest;
    address public ghost_frozenOwner;
    mapping(bytes4 selector => uint256 count) public ghost_successesBySelector;

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
        _expected.owners[address(customPolicy)] = s.appOwner;
        // Both models start from the views' empty values (the hash of empty bytes).
        _expected.caPublicKeyHash = keccak256("");
        _expected.acmeAccountHash = keccak256("");
        _fromLogs.caPublicKeyHash = keccak256("");
        _fromLogs.acmeAccountHash = keccak256("");

        // Three apps (the second is the one the owner path may freeze), one OS image, and a KMS
        // measurement and device, all through the same paths the fuzzer uses.
        for (uint256 i = 0; i < SETUP_APPS; ++i) {
            _createApp(address(this), i == RENOUNCE_INDEX ? appOwner2 : appOwner, TDX_SNP_SIM, 0, 2);
        }
        require(_apps.length == SETUP_APPS, "setup apps");
        _gatewayIds.push(address(0));
        _gatewayIds.push(_apps[0]);
        _gatewayIds.push(_apps[1]);
        _gatewayIds.push(s.stranger);
        _addOsImage(timelock, _pools.osImages[1], 0);
        _addKmsMeasurement(timelock, _pools.kmsMeasurements[1]);
        _addKmsDevice(timelock, _pools.kmsDevices[1]);
        require(ghost_outcomeMismatches == 0 && ghost_ownerPathSuccesses == 3, "setup calls");
        // Progress counters count the fuzzed calls only.
        (ghost_calls, ghost_successes, ghost_rejectedCalls) = (0, 0, 0);
        (ghost_ownerPathSuccesses, ghost_appOwnerSuccesses) = (0, 0);
    }

    // ---------------------------------------------------------------------------------------------
    // KmsRegistry: owner-only settings

    function addOsImage(uint256 actorSeed, uint256 hashSeed, uint256 provenanceSeed) external {
        _addOsImage(
            _actor(actorSeed, timelock),
            _pickBytes32(_pools.osImages, hashSeed),
            bound(provenanceSeed, 0, _provenances.length - 1)
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
        if (ok) delete _expected.osImages[h];
    }

    function addKmsMeasurement(uint256 actorSeed, uint256 mrSeed) external {
        _addKmsMeasurement(_actor(actorSeed, timelock), _pickBytes32(_pools.kmsMeasurements, mrSeed));
    }

    function removeKmsMeasurement(uint256 actorSeed, uint256 mrSeed) external {
        address actor = _actor(actorSeed, timelock);
        bytes32 mr = _pickBytes32(_pools.kmsMeasurements, mrSeed);
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

    function addKmsDevice(uint256 actorSeed, uint256 deviceSeed) external {
        _addKmsDevice(_actor(actorSeed, timelock), _pickBytes32(_pools.kmsDevices, deviceSeed));
    }

    function removeKmsDevice(uint256 actorSeed, uint256 deviceSeed) external {
        address actor = _actor(actorSeed, timelock);
        bytes32 d = _pickBytes32(_pools.kmsDevices, deviceSeed);
        bool authorized = actor == _registryOwner();
        bool expectOk = authorized && _expected.kmsDevices[d];
        (bool ok,) = _call(
            actor, address(registry), abi.encodeCall(KmsRegistry.removeKmsDevice, (d)), authorized, expectOk
        );
        if (ok) delete _expected.kmsDevices[d];
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

    /// The owner or a serving node onboards a node; measurement and device are, half the time, ones
    /// the model says are allowed.
    function onboardKmsNode(uint256 actorSeed, uint256 nodeSeed, uint256 mrSeed, uint256 deviceSeed)
        external
    {
        address servingNode = _firstNode(true);
        address actor =
            _actor(actorSeed, nodeSeed % 2 == 0 || servingNode == address(0) ? timelock : servingNode);
        address node = _pools.nodes[bound(nodeSeed, 0, _pools.nodes.length - 1)];
        bytes32 mr = _pickMostlyAllowed(_pools.kmsMeasurements, _expected.kmsMeasurements, mrSeed);
        bytes32 d = _pickMostlyAllowed(_pools.kmsDevices, _expected.kmsDevices, deviceSeed);
        bool authorized = actor == _registryOwner() || _isServing(actor);
        bool expectOk = authorized && node != address(0) && !_expected.nodes[node].active
            && _expected.kmsMeasurements[mr] && _expected.kmsDevices[d];
        (bool ok,) = _call(
            actor,
            address(registry),
            abi.encodeCall(KmsRegistry.onboardKmsNode, (node, mr, d)),
            authorized,
            expectOk
        );
        if (ok) {
            IKmsRegistry.KmsNode storage record = _expected.nodes[node];
            record.active = true;
            record.onboardedBy = actor;
            record.onboardedAt = uint64(block.timestamp);
            record.mrAggregated = mr;
            record.deviceId = d;
            if (actor != _registryOwner()) ++ghost_nodeSuccesses;
        }
    }

    function removeKmsNode(uint256 actorSeed, uint256 nodeSeed) external {
        address actor = _actor(actorSeed, timelock);
        address node = _pools.nodes[bound(nodeSeed, 0, _pools.nodes.length - 1)];
        bool authorized = actor == _registryOwner();
        bool expectOk = authorized && _expected.nodes[node].active;
        (bool ok,) = _call(
            actor, address(registry), abi.encodeCall(KmsRegistry.removeKmsNode, (node)), authorized, expectOk
        );
        if (ok) _expected.nodes[node].active = false;
    }

    /// A node (or anyone else) commits a grant-log range; mostly the next expected range.
    function commitGrantLog(uint256 actorSeed, uint256 nodeSeed, uint256 shapeSeed) external {
        address node = _pools.nodes[bound(nodeSeed, 1, _pools.nodes.length - 1)];
        address activeNode = _firstNode(false);
        if (nodeSeed % 2 == 0 && activeNode != address(0)) node = activeNode;
        address actor = _actor(actorSeed, node);
        uint256 shape = bound(shapeSeed, 0, 63);
        uint64 expectedFrom = _expected.nodes[actor].committedThrough + 1;
        // Low bits: 0 = a gap, 1 = a reversed range, 2 = a zero root, otherwise a valid commit.
        uint64 fromSeq = shape % 8 == 0 ? expectedFrom + 1 : expectedFrom;
        // casting to 'uint64' is safe because shape / 8 is at most 7
        // forge-lint: disable-next-line(unsafe-typecast)
        uint64 toSeq = shape % 8 == 1 ? fromSeq - 1 : fromSeq + uint64(shape / 8);
        bytes32 root = shape % 8 == 2 ? bytes32(0) : keccak256(abi.encode(actor, fromSeq, toSeq));
        bool authorized = _expected.nodes[actor].active;
        bool expectOk = authorized && fromSeq == expectedFrom && toSeq >= fromSeq && root != bytes32(0);
        (bool ok,) = _call(
            actor,
            address(registry),
            abi.encodeCall(KmsRegistry.commitGrantLog, (fromSeq, toSeq, root)),
            authorized,
            expectOk
        );
        if (ok) {
            _expected.nodes[actor].committedThrough = toSeq;
            ++ghost_nodeSuccesses;
        }
    }

    /// Anyone creates an app (until MAX_APPS exist), from an initial setting drawn from the pools.
    function createApp(uint256 actorSeed, uint256 ownerSeed, uint256 maskSeed, uint256 flagsSeed) external {
        if (_apps.length >= MAX_APPS) return;
        address actor = _actor(actorSeed, appOwner);
        uint256 o = bound(ownerSeed, 0, 2);
        address owner_ = o == 0 ? appOwner : o == 1 ? appOwner2 : address(0);
        _createApp(
            actor,
            owner_,
            uint8(bound(maskSeed, 0, 15)),
            uint8(bound(flagsSeed, 0, 7)),
            bound(flagsSeed, 0, 2)
        );
    }

    // ---------------------------------------------------------------------------------------------
    // App: owner-only settings

    function addComposeHash(uint256 appSeed, uint256 actorSeed, uint256 hashSeed, uint256 provenanceSeed)
        external
    {
        address app = _pickApp(appSeed);
        address actor = _actor(actorSeed, _expected.owners[app]);
        bytes32 h = _pickBytes32(_pools.composeHashes, hashSeed);
        uint256 p = bound(provenanceSeed, 0, _provenances.length - 1);
        (bool authorized, bool live) = _appAccess(app, actor);
        bool expectOk = live && h != bytes32(0) && _expected.apps[app].composeDigests[h] == bytes32(0)
            && _provenanceValid[p];
        (bool ok,) =
            _call(actor, app, abi.encodeCall(App.addComposeHash, (h, _provenances[p])), authorized, expectOk);
        if (ok) _expected.apps[app].composeDigests[h] = keccak256(abi.encode(_provenances[p]));
    }

    function removeComposeHash(uint256 appSeed, uint256 actorSeed, uint256 hashSeed) external {
        address app = _pickApp(appSeed);
        address actor = _actor(actorSeed, _expected.owners[app]);
        bytes32 h = _pickBytes32(_pools.composeHashes, hashSeed);
        (bool authorized, bool live) = _appAccess(app, actor);
        bool expectOk = live && _expected.apps[app].composeDigests[h] != bytes32(0);
        (bool ok,) = _call(actor, app, abi.encodeCall(App.removeComposeHash, (h)), authorized, expectOk);
        if (ok) delete _expected.apps[app].composeDigests[h];
    }

    function addDevice(uint256 appSeed, uint256 actorSeed, uint256 deviceSeed) external {
        address app = _pickApp(appSeed);
        address actor = _actor(actorSeed, _expected.owners[app]);
        bytes32 d = _pickBytes32(_pools.devices, deviceSeed);
        (bool authorized, bool live) = _appAccess(app, actor);
        bool expectOk = live && d != bytes32(0) && !_expected.apps[app].devices[d];
        (bool ok,) = _call(actor, app, abi.encodeCall(App.addDevice, (d)), authorized, expectOk);
        if (ok) _expected.apps[app].devices[d] = true;
    }

    function removeDevice(uint256 appSeed, uint256 actorSeed, uint256 deviceSeed) external {
        address app = _pickApp(appSeed);
        address actor = _actor(actorSeed, _expected.owners[app]);
        bytes32 d = _pickBytes32(_pools.devices, deviceSeed);
        (bool authorized, bool live) = _appAccess(app, actor);
        bool expectOk = live && _expected.apps[app].devices[d];
        (bool ok,) = _call(actor, app, abi.encodeCall(App.removeDevice, (d)), authorized, expectOk);
        if (ok) delete _expected.apps[app].devices[d];
    }

    function setAnyDevice(uint256 appSeed, uint256 actorSeed, bool value) external {
        address app = _pickApp(appSeed);
        address actor = _actor(actorSeed, _expected.owners[app]);
        (bool authorized, bool live) = _appAccess(app, actor);
        bool expectOk = live && _expected.apps[app].anyDevice != value;
        (bool ok,) = _call(actor, app, abi.encodeCall(App.setAnyDevice, (value)), authorized, expectOk);
        if (ok) _expected.apps[app].anyDevice = value;
    }

    function setAllowedTeeKinds(uint256 appSeed, uint256 actorSeed, uint256 maskSeed) external {
        address app = _pickApp(appSeed);
        address actor = _actor(actorSeed, _expected.owners[app]);
        uint8 mask = uint8(bound(maskSeed, 0, 15));
        (bool authorized, bool live) = _appAccess(app, actor);
        bool expectOk = live && mask != _expected.apps[app].allowedTeeKinds && _validMask(mask);
        (bool ok,) = _call(actor, app, abi.encodeCall(App.setAllowedTeeKinds, (mask)), authorized, expectOk);
        if (ok) _expected.apps[app].allowedTeeKinds = mask;
    }

    function setRequireUpToDateTcb(uint256 appSeed, uint256 actorSeed, bool value) external {
        address app = _pickApp(appSeed);
        address actor = _actor(actorSeed, _expected.owners[app]);
        (bool authorized, bool live) = _appAccess(app, actor);
        bool expectOk = live && _expected.apps[app].requireUpToDateTcb != value;
        (bool ok,) =
            _call(actor, app, abi.encodeCall(App.setRequireUpToDateTcb, (value)), authorized, expectOk);
        if (ok) _expected.apps[app].requireUpToDateTcb = value;
    }

    function setRequireGpu(uint256 appSeed, uint256 actorSeed, bool value) external {
        address app = _pickApp(appSeed);
        address actor = _actor(actorSeed, _expected.owners[app]);
        (bool authorized, bool live) = _appAccess(app, actor);
        bool expectOk = live && _expected.apps[app].requireGpu != value;
        (bool ok,) = _call(actor, app, abi.encodeCall(App.setRequireGpu, (value)), authorized, expectOk);
        if (ok) _expected.apps[app].requireGpu = value;
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

    function bindDomain(uint256 domainSeed, uint256 appSeed, uint256 actorSeed) external {
        uint256 i = bound(domainSeed, 0, _pools.domains.length - 1);
        string memory domain = _pools.domains[i];
        address app = _appCandidate(appSeed);
        IKmsRegistry.AppKind kind = _expected.appKinds[app];
        address actor = _actor(actorSeed, _expected.owners[app]);
        bool authorized = actor == _expected.owners[app] && kind != IKmsRegistry.AppKind.None;
        // A frozen app (of any kind: a frozen factory app may be registered again as custom) keeps
        // its bindings.
        bool frozenApp = _expected.apps[app].frozen;
        bool expectOk = authorized && _domainNormalised[i] && !frozenApp
            && _expected.domainApps[keccak256(bytes(domain))] == address(0);
        (bool ok,) = _call(
            actor,
            address(domains),
            abi.encodeCall(DomainRegistry.bindDomain, (domain, app)),
            authorized,
            expectOk
        );
        if (ok) {
            _expected.domainApps[keccak256(bytes(domain))] = app;
            ++ghost_domainSuccesses;
        }
    }

    function unbindDomain(uint256 domainSeed, uint256 actorSeed) external {
        string memory domain = _pools.domains[bound(domainSeed, 0, _pools.domains.length - 1)];
        address app = _expected.domainApps[keccak256(bytes(domain))];
        address appOwner_ = _expected.owners[app];
        address actor = _actor(actorSeed, actorSeed % 4 == 0 ? _domainsOwner() : appOwner_);
        bool byGovernance = actor == _domainsOwner();
        bool byAppOwner = app != address(0) && actor == appOwner_;
        bool frozenApp = _expected.apps[app].frozen;
        bool authorized = byGovernance || byAppOwner;
        bool expectOk = app != address(0) && (byGovernance || (byAppOwner && !frozenApp));
        (bool ok,) = _call(
            actor,
            address(domains),
            abi.encodeCall(DomainRegistry.unbindDomain, (domain)),
            authorized,
            expectOk
        );
        if (ok) {
            delete _expected.domainApps[keccak256(bytes(domain))];
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

    function warp(uint256 secondsSeed) external {
        vm.warp(block.timestamp + bound(secondsSeed, 1, 7 days));
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

    /// The registries' state as the chosen model has it.
    function registryModel(ModelSource source) external view returns (RegistryView memory v) {
        Model storage m = _model(source);
        Pools memory p = pools();
        v.osImageDigests = new bytes32[](p.osImages.length);
        v.osImagesAllowed = new bool[](p.osImages.length);
        for (uint256 i = 0; i < p.osImages.length; ++i) {
            v.osImageDigests[i] = m.osImages[p.osImages[i]];
            v.osImagesAllowed[i] = v.osImageDigests[i] != bytes32(0);
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
        v.domainApps = new address[](p.domains.length);
        for (uint256 i = 0; i < p.domains.length; ++i) {
            v.domainApps[i] = m.domainApps[keccak256(bytes(p.domains[i]))];
        }
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

    /// One app's state as the chosen model has it.
    function appModel(ModelSource source, address app) external view returns (AppView memory v) {
        Model storage m = _model(source);
        AppState storage a = m.apps[app];
        v.composeDigests = new bytes32[](_pools.composeHashes.length);
        v.composeAllowed = new bool[](_pools.composeHashes.length);
        for (uint256 i = 0; i < _pools.composeHashes.length; ++i) {
            v.composeDigests[i] = a.composeDigests[_pools.composeHashes[i]];
            v.composeAllowed[i] = v.composeDigests[i] != bytes32(0);
        }
        v.devices = new bool[](_pools.devices.length);
        for (uint256 i = 0; i < _pools.devices.length; ++i) {
            v.devices[i] = a.devices[_pools.devices[i]];
        }
        v.anyDevice = a.anyDevice;
        v.allowedTeeKinds = a.allowedTeeKinds;
        v.requireUpToDateTcb = a.requireUpToDateTcb;
        v.requireGpu = a.requireGpu;
        v.keyGeneration = a.keyGeneration;
        v.frozen = a.frozen;
        v.owner = m.owners[app];
        v.pendingOwner = m.pendingOwners[app];
        v.implementation = m.implementations[app];
        v.registry = address(registry);
    }

    /// A digest of every view of `app`, and of its policy's answer to a fixed set of boots.
    function frozenAppDigest(address app) public view returns (bytes32) {
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
        return
            keccak256(
                abi.encode(RegistryViews.readApp(a, _pools), a.composeHashProvenance(bytes32(0)), answers)
            );
    }

    // ---------------------------------------------------------------------------------------------
    // Internals: calls and prediction

    /// Calls `target` as `actor` and records the outcome against the prediction; applies the events
    /// of a successful call to the log model.
    function _call(address actor, address target, bytes memory data, bool authorized, bool expectOk)
        internal
        returns (bool ok, bytes memory ret)
    {
        bool targetFrozen = _expected.apps[target].frozen;
        ++ghost_calls;
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
        if (ok != expectOk) {
            ++ghost_outcomeMismatches;
            ghost_lastMismatchSelector = selector;
            ghost_lastMismatchSucceeded = ok;
            ghost_lastMismatchReturn = ret;
        }
    }

    function _addOsImage(address actor, bytes32 h, uint256 p) internal {
        bool authorized = actor == _registryOwner();
        bool expectOk =
            authorized && h != bytes32(0) && _expected.osImages[h] == bytes32(0) && _provenanceValid[p];
        (bool ok,) = _call(
            actor,
            address(registry),
            abi.encodeCall(KmsRegistry.addOsImage, (h, _provenances[p])),
            authorized,
            expectOk
        );
        if (ok) _expected.osImages[h] = keccak256(abi.encode(_provenances[p]));
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

    function _addKmsDevice(address actor, bytes32 d) internal {
        bool authorized = actor == _registryOwner();
        bool expectOk = authorized && d != bytes32(0) && !_expected.kmsDevices[d];
        (bool ok,) = _call(
            actor, address(registry), abi.encodeCall(KmsRegistry.addKmsDevice, (d)), authorized, expectOk
        );
        if (ok) _expected.kmsDevices[d] = true;
    }

    /// Creates an app with `composeCount` (0-2) compose hashes from the pool; `flags` bit 0 sets
    /// anyDevice, bit 1 requireUpToDateTcb, bit 2 requireGpu.
    function _createApp(address actor, address owner_, uint8 mask, uint8 flags, uint256 composeCount)
        internal
    {
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
        bool expectOk = owner_ != address(0) && _validMask(mask);
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
        for (uint256 i = 0; i < composeCount; ++i) {
            a.composeDigests[init.composeHashes[i]] = keccak256(abi.encode(init.provenances[i]));
        }
        a.devices[init.devices[0]] = true;
        a.allowedTeeKinds = mask;
        a.anyDevice = init.anyDevice;
        a.requireUpToDateTcb = init.requireUpToDateTcb;
        a.requireGpu = init.requireGpu;
        a.keyGeneration = 1;
    }

    /// Whether `actor` owns `app` per the model, and whether an owner call would pass (not frozen).
    function _appAccess(address app, address actor) internal view returns (bool authorized, bool live) {
        authorized = _expected.owners[app] != address(0) && actor == _expected.owners[app];
        live = authorized && !_expected.apps[app].frozen;
    }

    /// The registry's decision as the expected model computes it.
    function _modelAllows(BootInfo memory b) internal view returns (bool) {
        Model storage m = _expected;
        IKmsRegistry.AppKind kind = m.appKinds[b.appId];
        if (kind == IKmsRegistry.AppKind.None) return false;
        if (b.teeKind == TeeKind.Unknown) return false;
        if (b.teeKind == TeeKind.Simulated && !m.allowSimulatedTee) return false;
        if (b.tcbStatus == TcbStatus.Unknown || b.tcbStatus == TcbStatus.Revoked) return false;
        if (m.osImages[b.osImageHash] == bytes32(0)) return false;
        if (b.appId == address(customPolicy)) return b.instanceId != bytes20(0);
        AppState storage a = m.apps[b.appId];
        if (a.composeDigests[b.composeHash] == bytes32(0)) return false;
        if (!a.anyDevice && !a.devices[b.deviceId]) return false;
        if ((uint256(a.allowedTeeKinds) >> uint8(b.teeKind)) & 1 == 0) return false;
        if (a.requireUpToDateTcb && b.tcbStatus != TcbStatus.UpToDate) return false;
        if (a.requireGpu && b.gpuEvidenceHash == bytes32(0)) return false;
        if (b.keyGeneration != a.keyGeneration) return false;
        return b.instanceId != bytes20(0);
    }

    /// Four bits of `shape` per field (a hash, so that edge seeds do not redraw every field or none);
    /// a field is redrawn from its pool when its bits are zero.
    function _evaluateBoot(uint256 appSeed, uint256 shape, uint256 v) internal {
        BootInfo memory b = _likelyBoot(_appCandidate(appSeed));
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

        (bool allowed,) = registry.isAppAllowed(b);
        ++ghost_bootsEvaluated;
        if (allowed) ++ghost_bootsAllowed;
        if (allowed != _modelAllows(b)) ++ghost_bootMismatches;
        if (_recentBoots.length < RECENT_BOOTS) {
            _recentBoots.push(b);
        } else {
            _recentBoots[_nextBootSlot] = b;
        }
        _nextBootSlot = (_nextBootSlot + 1) % RECENT_BOOTS;
    }

    /// A boot of `app` built from the pool values its current views allow: the registry accepts it
    /// unless something (a registration, an OS image, a compose hash, a device) is missing.
    function _likelyBoot(address app) internal view returns (BootInfo memory b) {
        b.appId = app;
        b.instanceId = bytes20(keccak256(abi.encode("instance", app)));
        b.mrAggregated = keccak256("app mr");
        b.tcbStatus = TcbStatus.UpToDate;
        b.gpuEvidenceHash = keccak256("gpu evidence");
        b.teeKind = TeeKind.Tdx;
        b.composeHash = _pools.composeHashes[1];
        b.deviceId = _pools.devices[1];
        b.osImageHash = _pools.osImages[1];
        for (uint256 i = 1; i < _pools.osImages.length; ++i) {
            if (registry.isOsImageAllowed(_pools.osImages[i])) {
                b.osImageHash = _pools.osImages[i];
                break;
            }
        }
        if (app != address(customPolicy) && app.code.length > 0) {
            App a = App(app);
            for (uint256 i = 1; i < _pools.composeHashes.length; ++i) {
                if (a.isComposeHashAllowed(_pools.composeHashes[i])) {
                    b.composeHash = _pools.composeHashes[i];
                    break;
                }
            }
            for (uint256 i = 1; i < _pools.devices.length; ++i) {
                if (a.isDeviceAllowed(_pools.devices[i])) {
                    b.deviceId = _pools.devices[i];
                    break;
                }
            }
            uint8 mask = a.allowedTeeKinds();
            if (mask & (uint8(1) << uint8(TeeKind.Tdx)) == 0) {
                b.teeKind =
                    mask & (uint8(1) << uint8(TeeKind.SevSnp)) != 0 ? TeeKind.SevSnp : TeeKind.Simulated;
            }
            b.keyGeneration = a.keyGeneration();
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
            (bytes32 digest, Provenance memory p) = abi.decode(log.data, (bytes32, Provenance));
            if (digest != keccak256(abi.encode(p))) ++ghost_logInconsistencies;
            m.osImages[log.topics[1]] = digest;
        } else if (t == IKmsRegistry.OsImageRemoved.selector) {
            delete m.osImages[log.topics[1]];
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
            (record.mrAggregated, record.deviceId, record.onboardedAt) =
                abi.decode(log.data, (bytes32, bytes32, uint64));
        } else if (t == IKmsRegistry.KmsNodeRemoved.selector) {
            m.nodes[_topicAddress(log.topics[1])].active = false;
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
            record.committedThrough = toSeq;
        }
    }

    function _applyDomainLog(Model storage m, Vm.Log memory log) internal {
        bytes32 t = log.topics[0];
        if (t == IDomainRegistry.DomainBound.selector) {
            string memory domain = abi.decode(log.data, (string));
            if (keccak256(bytes(domain)) != log.topics[1]) ++ghost_logInconsistencies;
            m.domainApps[log.topics[1]] = _topicAddress(log.topics[2]);
        } else if (t == IDomainRegistry.DomainUnbound.selector) {
            if (m.domainApps[log.topics[1]] != _topicAddress(log.topics[2])) ++ghost_logInconsistencies;
            delete m.domainApps[log.topics[1]];
        } else if (t == IDomainRegistry.GatewayAcmeAccountSet.selector) {
            m.acmeAccountHash = keccak256(bytes(abi.decode(log.data, (string))));
        }
    }

    function _applyAppLog(Model storage m, Vm.Log memory log) internal {
        bytes32 t = log.topics[0];
        AppState storage a = m.apps[log.emitter];
        if (t == IApp.ComposeHashAdded.selector) {
            (bytes32 digest, Provenance memory p) = abi.decode(log.data, (bytes32, Provenance));
            if (digest != keccak256(abi.encode(p))) ++ghost_logInconsistencies;
            a.composeDigests[log.topics[1]] = digest;
        } else if (t == IApp.ComposeHashRemoved.selector) {
            delete a.composeDigests[log.topics[1]];
        } else if (t == IApp.DeviceAdded.selector) {
            a.devices[log.topics[1]] = true;
        } else if (t == IApp.DeviceRemoved.selector) {
            delete a.devices[log.topics[1]];
        } else if (t == IApp.AnyDeviceSet.selector) {
            a.anyDevice = abi.decode(log.data, (bool));
        } else if (t == IApp.AllowedTeeKindsSet.selector) {
            (uint8 oldMask, uint8 newMask) = abi.decode(log.data, (uint8, uint8));
            if (oldMask != a.allowedTeeKinds) ++ghost_logInconsistencies;
            a.allowedTeeKinds = newMask;
        } else if (t == IApp.RequireUpToDateTcbSet.selector) {
            a.requireUpToDateTcb = abi.decode(log.data, (bool));
        } else if (t == IApp.RequireGpuSet.selector) {
            a.requireGpu = abi.decode(log.data, (bool));
        } else if (t == IApp.KeyGenerationBumped.selector) {
            uint64 generation = abi.decode(log.data, (uint64));
            if (generation != a.keyGeneration + 1) ++ghost_logInconsistencies;
            a.keyGeneration = generation;
        } else if (t == IApp.AppFrozen.selector) {
            a.frozen = true;
        }
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
            _pools.nodes.push(i == 0 ? address(0) : makeAddr(string.concat("node", vm.toString(i))));
            _pools.composeHashes.push(i == 0 ? bytes32(0) : sha256(abi.encode("compose", salt)));
            _pools.devices.push(i == 0 ? bytes32(0) : sha256(abi.encode("device", salt)));
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

    /// The first pool node that is active (and, if `serving`, still allowed to serve), or zero.
    function _firstNode(bool serving) internal view returns (address) {
        for (uint256 i = 1; i < _pools.nodes.length; ++i) {
            address node = _pools.nodes[i];
            if (serving ? _isServing(node) : _expected.nodes[node].active) return node;
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

    function _topicAddress(bytes32 topic) internal pure returns (address) {
        return address(uint160(uint256(topic)));
    }
}
