// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {CovenantGovernor} from "../../contracts/governance/CovenantGovernor.sol";
import {CovenantGuardian} from "../../contracts/governance/CovenantGuardian.sol";
import {CovenantToken} from "../../contracts/governance/CovenantToken.sol";
import {
    BootInfo,
    OsMeasurement,
    Provenance,
    TcbStatus,
    TeeKind
} from "../../contracts/interfaces/BootPolicy.sol";
import {IApp} from "../../contracts/interfaces/IApp.sol";
import {App} from "../../contracts/registry/App.sol";
import {DomainRegistry} from "../../contracts/registry/DomainRegistry.sol";
import {KmsRegistry} from "../../contracts/registry/KmsRegistry.sol";
import {CovenantDeployment} from "../../scripts/deploy/CovenantDeployment.sol";
import {IGovernor} from "@openzeppelin/contracts/governance/IGovernor.sol";
import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";
import {Test} from "forge-std/Test.sol";

/// The full Covenant deployment (the same code the deploy script runs), with voters who have
/// delegated, and helpers to act through the owner path (the Timelock) or through full governance.
abstract contract CovenantFixture is Test, CovenantDeployment {
    uint256 internal constant TIMELOCK_DELAY = 2 days;
    uint48 internal constant VOTING_DELAY = 1 days;
    uint32 internal constant VOTING_PERIOD = 5 days;
    uint256 internal constant QUORUM_PERCENT = 4;
    uint64 internal constant MIN_NOTICE = 1 days;
    uint64 internal constant GUARDIAN_TERM = 365 days;
    uint256 internal constant SUPPLY = 1_000_000 ether;
    /// 4 % of SUPPLY.
    uint256 internal constant QUORUM = 40_000 ether;

    uint8 internal constant TDX = uint8(1) << 1;
    uint8 internal constant SNP = uint8(1) << 2;
    uint8 internal constant SIMULATED = uint8(1) << 3;

    // keccak256, not sha256: a sha256 constant is computed by a call to the precompile each time it
    // is used, and that call would consume a pending vm.prank.
    bytes32 internal constant OS_IMAGE = keccak256("covenant-os 1.0");
    bytes32 internal constant COMPOSE_HASH = keccak256("app-compose v1");
    bytes32 internal constant DEVICE = keccak256("device-1");
    bytes32 internal constant KMS_MR = keccak256("kms mr aggregated");
    bytes32 internal constant KMS_DEVICE = keccak256("kms device");
    bytes20 internal constant INSTANCE = bytes20(keccak256("instance-1"));
    /// Registers OS_IMAGE measures to on TDX (and the simulator): MRTD || RTMR0..2.
    bytes internal constant OS_TD_REGISTERS = abi.encodePacked(
        keccak256("mrtd"),
        bytes16(0),
        keccak256("rtmr0"),
        bytes16(0),
        keccak256("rtmr1"),
        bytes16(0),
        keccak256("rtmr2"),
        bytes16(0)
    );
    /// What OS_IMAGE measures to on SEV-SNP.
    bytes internal constant OS_SNP_REGISTERS = abi.encodePacked(keccak256("snp measurement"), bytes16(0));

    Deployed internal deployed;
    CovenantToken internal token;
    TimelockController internal timelock;
    CovenantGovernor internal governor;
    CovenantGuardian internal guardianContract;
    bytes32 internal osTdMeasurement;
    KmsRegistry internal registry;
    App internal appImplementation;
    DomainRegistry internal domains;

    // Voters: alice 50 %, bob 30 %, carol 15.9 %, dave exactly the quorum (4 %), erin 0.1 %.
    address internal alice = makeAddr("alice");
    address internal bob = makeAddr("bob");
    address internal carol = makeAddr("carol");
    address internal dave = makeAddr("dave");
    address internal erin = makeAddr("erin");
    address internal guardian = makeAddr("guardian");
    address internal appOwner = makeAddr("appOwner");
    address internal stranger = makeAddr("stranger");

    function setUp() public virtual {
        osTdMeasurement = sha256(OS_TD_REGISTERS);
        address[] memory holders = new address[](5);
        (holders[0], holders[1], holders[2], holders[3], holders[4]) = (alice, bob, carol, dave, erin);
        uint256[] memory amounts = new uint256[](5);
        (amounts[0], amounts[1], amounts[2], amounts[3], amounts[4]) =
        (500_000 ether, 300_000 ether, 159_000 ether, QUORUM, 1000 ether);
        deployed = _deployCovenant(
            DeployConfig({
                holders: holders,
                amounts: amounts,
                guardian: guardian,
                guardianExpiresAt: uint64(block.timestamp) + GUARDIAN_TERM,
                timelockDelay: TIMELOCK_DELAY,
                votingDelay: VOTING_DELAY,
                votingPeriod: VOTING_PERIOD,
                proposalThreshold: 0,
                quorumPercent: QUORUM_PERCENT,
                allowSimulatedTee: false,
                minNoticePeriod: MIN_NOTICE
            }),
            address(this)
        );
        token = deployed.token;
        timelock = deployed.timelock;
        governor = deployed.governor;
        guardianContract = deployed.guardian;
        registry = deployed.kmsRegistry;
        appImplementation = deployed.appImplementation;
        domains = deployed.domainRegistry;
        for (uint256 i = 0; i < holders.length; ++i) {
            vm.prank(holders[i]);
            token.delegate(holders[i]);
        }
        vm.warp(block.timestamp + 1);
    }

    // ---------------------------------------------------------------------------------------------
    // Owner path and governance

    /// Calls `target` as the Timelock (the registries' owner) and bubbles up any revert.
    function _asTimelock(address target, bytes memory data) internal {
        vm.prank(address(timelock));
        (bool ok, bytes memory ret) = target.call(data);
        if (!ok) {
            assembly {
                revert(add(ret, 32), mload(ret))
            }
        }
    }

    function _single(address target, bytes memory data)
        internal
        pure
        returns (address[] memory targets, uint256[] memory values, bytes[] memory calldatas)
    {
        targets = new address[](1);
        targets[0] = target;
        values = new uint256[](1);
        calldatas = new bytes[](1);
        calldatas[0] = data;
    }

    /// Proposes (as alice), waits for voting to open, and returns the proposal id.
    function _proposeAndOpen(address target, bytes memory data, string memory description)
        internal
        returns (uint256 proposalId)
    {
        (address[] memory targets, uint256[] memory values, bytes[] memory calldatas) = _single(target, data);
        vm.prank(alice);
        proposalId = governor.propose(targets, values, calldatas, description);
        vm.warp(block.timestamp + VOTING_DELAY + 1);
    }

    /// Closes voting (warps past the deadline).
    function _closeVoting(uint256 proposalId) internal {
        vm.warp(governor.proposalDeadline(proposalId) + 1);
    }

    /// Queues a succeeded proposal.
    function _queue(address target, bytes memory data, string memory description) internal {
        (address[] memory targets, uint256[] memory values, bytes[] memory calldatas) = _single(target, data);
        governor.queue(targets, values, calldatas, keccak256(bytes(description)));
    }

    /// Executes a queued proposal (anyone may).
    function _execute(address target, bytes memory data, string memory description) internal {
        (address[] memory targets, uint256[] memory values, bytes[] memory calldatas) = _single(target, data);
        governor.execute(targets, values, calldatas, keccak256(bytes(description)));
    }

    /// Proposes a batch (as alice), votes it through and queues it; returns the values and the
    /// Timelock salt the Governor used, for cancelling or executing it directly.
    function _queueBatch(address[] memory targets, bytes[] memory calldatas, string memory description)
        internal
        returns (uint256[] memory values, bytes32 salt)
    {
        values = new uint256[](targets.length);
        vm.prank(alice);
        uint256 id = governor.propose(targets, values, calldatas, description);
        vm.warp(block.timestamp + VOTING_DELAY + 1);
        vm.prank(alice);
        governor.castVote(id, 1);
        _closeVoting(id);
        governor.queue(targets, values, calldatas, keccak256(bytes(description)));
        salt = bytes20(address(governor)) ^ keccak256(bytes(description));
    }

    /// The whole path: propose, alice votes for, queue, wait the Timelock delay, execute.
    function _govern(address target, bytes memory data, string memory description)
        internal
        returns (uint256 proposalId)
    {
        proposalId = _proposeAndOpen(target, data, description);
        vm.prank(alice);
        governor.castVote(proposalId, 1);
        _closeVoting(proposalId);
        _queue(target, data, description);
        vm.warp(block.timestamp + TIMELOCK_DELAY);
        _execute(target, data, description);
        assertEq(uint8(governor.state(proposalId)), uint8(IGovernor.ProposalState.Executed));
    }

    // ---------------------------------------------------------------------------------------------
    // Values

    function _provenance(string memory commit) internal pure returns (Provenance memory p) {
        p.sourceUrl = "https://git.example/covenant/app";
        p.sourceCommit = commit;
        p.artifactDigests = new bytes32[](1);
        p.artifactDigests[0] = keccak256(bytes(commit));
    }

    /// An app with one compose hash and one device, allowing every known TEE kind.
    function _appInit() internal pure returns (IApp.AppInit memory init) {
        init.composeHashes = new bytes32[](1);
        init.composeHashes[0] = COMPOSE_HASH;
        init.provenances = new Provenance[](1);
        init.provenances[0] = _provenance("v1");
        init.devices = new bytes32[](1);
        init.devices[0] = DEVICE;
        init.allowedTeeKinds = TDX | SNP | SIMULATED;
        init.noticePeriod = MIN_NOTICE;
    }

    function _createApp() internal returns (App) {
        return App(registry.createApp(appOwner, _appInit()));
    }

    /// OS_IMAGE's measurements on TDX, SEV-SNP and the simulator.
    function _osMeasurements() internal pure returns (OsMeasurement[] memory m) {
        m = new OsMeasurement[](3);
        m[0] = OsMeasurement({teeKind: TeeKind.Tdx, registers: OS_TD_REGISTERS});
        m[1] = OsMeasurement({teeKind: TeeKind.SevSnp, registers: OS_SNP_REGISTERS});
        m[2] = OsMeasurement({teeKind: TeeKind.Simulated, registers: OS_TD_REGISTERS});
    }

    /// Allows OS_IMAGE through the owner path and waits out the notice period.
    function _allowOsImage() internal {
        _asTimelock(
            address(registry),
            abi.encodeCall(KmsRegistry.addOsImage, (OS_IMAGE, _provenance("os-1.0"), _osMeasurements()))
        );
        vm.warp(block.timestamp + MIN_NOTICE);
    }

    /// A boot of `app` that every default setting allows (on TDX, up to date).
    function _boot(address app) internal view returns (BootInfo memory b) {
        b.appId = app;
        b.composeHash = COMPOSE_HASH;
        b.instanceId = INSTANCE;
        b.deviceId = DEVICE;
        b.mrAggregated = keccak256("app mr");
        b.osImageHash = OS_IMAGE;
        b.osMeasurement = _tdMeasurement();
        b.teeKind = TeeKind.Tdx;
        b.tcbStatus = TcbStatus.UpToDate;
        b.keyGeneration = 1;
    }

    /// A KMS node boot that the defaults of `_allowKms` allow.
    function _kmsBoot() internal view returns (BootInfo memory b) {
        b.mrAggregated = KMS_MR;
        b.deviceId = KMS_DEVICE;
        b.osImageHash = OS_IMAGE;
        b.osMeasurement = _tdMeasurement();
        b.teeKind = TeeKind.Tdx;
        b.tcbStatus = TcbStatus.UpToDate;
    }

    /// sha256 of OS_TD_REGISTERS, computed once in setUp (sha256 is a precompile call, which would
    /// consume a pending vm.prank if computed where a boot is built).
    function _tdMeasurement() internal view returns (bytes32) {
        return osTdMeasurement;
    }

    /// Allows KMS_MR and KMS_DEVICE through the owner path.
    function _allowKms() internal {
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.addKmsMeasurement, (KMS_MR)));
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.addKmsDevice, (KMS_DEVICE)));
    }

    function _assertAllowed(BootInfo memory b) internal view {
        (bool allowed, string memory reason) = registry.isAppAllowed(b);
        assertTrue(allowed, reason);
        assertEq(reason, "");
    }

    function _assertDenied(BootInfo memory b, string memory expected) internal view {
        (bool allowed, string memory reason) = registry.isAppAllowed(b);
        assertFalse(allowed);
        assertEq(reason, expected);
    }
}
