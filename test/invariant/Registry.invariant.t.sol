// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {BootInfo, TcbStatus, TeeKind} from "../../contracts/interfaces/BootPolicy.sol";
import {IKmsRegistry} from "../../contracts/interfaces/IKmsRegistry.sol";
import {App} from "../../contracts/registry/App.sol";
import {
    AppView,
    ModelSource,
    Pools,
    RegistryHandler,
    RegistryView,
    RegistryViews
} from "../handlers/RegistryHandler.sol";
import {CovenantFixture} from "../utils/CovenantFixture.sol";

/// Invariants of the KMS registry, its apps and the domain registry under random calls by the
/// Timelock (the owner path), app owners, KMS nodes and strangers, with time moving forward so
/// that notice periods elapse. The handler keeps two ghost models: one it updates from each
/// successful call, one it rebuilds from the emitted events; both must equal what the contracts'
/// views say, including the views that depend on the time (the settings in force). Ghost records
/// of its own (compose hash add times, node re-activations, claim releases) back the invariants
/// on notice periods, governance removals and domain claims.
contract RegistryInvariantTest is CovenantFixture {
    RegistryHandler internal handler;

    function setUp() public override {
        // The deployment's events seed the handler's log model.
        vm.recordLogs();
        super.setUp();
        handler = new RegistryHandler(
            RegistryHandler.System({
                registry: registry,
                domains: domains,
                timelock: address(timelock),
                kmsRegistryImplementation: address(deployed.kmsRegistryImplementation),
                appImplementation: address(appImplementation),
                domainRegistryImplementation: address(deployed.domainRegistryImplementation),
                appOwner: appOwner,
                stranger: stranger,
                minNoticePeriod: MIN_NOTICE
            })
        );

        bytes4[] memory selectors = new bytes4[](41);
        selectors[0] = RegistryHandler.addOsImage.selector;
        selectors[1] = RegistryHandler.removeOsImage.selector;
        selectors[2] = RegistryHandler.addKmsMeasurement.selector;
        selectors[3] = RegistryHandler.removeKmsMeasurement.selector;
        selectors[4] = RegistryHandler.addKmsDevice.selector;
        selectors[5] = RegistryHandler.removeKmsDevice.selector;
        selectors[6] = RegistryHandler.setKmsRootKeys.selector;
        selectors[7] = RegistryHandler.setGatewayAppId.selector;
        selectors[8] = RegistryHandler.setAllowSimulatedTee.selector;
        selectors[9] = RegistryHandler.setAppImplementation.selector;
        selectors[10] = RegistryHandler.registerCustomApp.selector;
        selectors[11] = RegistryHandler.deregisterApp.selector;
        selectors[12] = RegistryHandler.onboardKmsNode.selector;
        selectors[13] = RegistryHandler.removeKmsNode.selector;
        selectors[14] = RegistryHandler.commitGrantLog.selector;
        selectors[15] = RegistryHandler.createApp.selector;
        selectors[16] = RegistryHandler.addComposeHash.selector;
        selectors[17] = RegistryHandler.removeComposeHash.selector;
        selectors[18] = RegistryHandler.addDevice.selector;
        selectors[19] = RegistryHandler.removeDevice.selector;
        selectors[20] = RegistryHandler.setAnyDevice.selector;
        selectors[21] = RegistryHandler.setAllowedTeeKinds.selector;
        selectors[22] = RegistryHandler.setRequireUpToDateTcb.selector;
        selectors[23] = RegistryHandler.setRequireGpu.selector;
        selectors[24] = RegistryHandler.bumpKeyGeneration.selector;
        selectors[25] = RegistryHandler.freeze.selector;
        selectors[26] = RegistryHandler.transferAppOwnership.selector;
        selectors[27] = RegistryHandler.acceptAppOwnership.selector;
        selectors[28] = RegistryHandler.renounceAppOwnership.selector;
        selectors[29] = RegistryHandler.upgradeApp.selector;
        selectors[30] = RegistryHandler.claimDomain.selector;
        selectors[31] = RegistryHandler.releaseClaim.selector;
        selectors[32] = RegistryHandler.setGatewayAcmeAccount.selector;
        selectors[33] = RegistryHandler.evaluateBoot.selector;
        selectors[34] = RegistryHandler.warp.selector;
        // Ownership and upgrades of the registries themselves.
        selectors[35] = RegistryHandler.transferRegistryOwnership.selector;
        selectors[36] = RegistryHandler.acceptRegistryOwnership.selector;
        selectors[37] = RegistryHandler.renounceRegistryOwnership.selector;
        selectors[38] = RegistryHandler.upgradeRegistry.selector;
        // Notice periods: the registry's minimum and each app's own.
        selectors[39] = RegistryHandler.setMinNoticePeriod.selector;
        selectors[40] = RegistryHandler.setNoticePeriod.selector;
        targetContract(address(handler));
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
    }

    /// No restricted function ever succeeded for a caller that was not authorised, every call's
    /// outcome (and, where the handler predicts one, the error of a refusal) matched the model's
    /// prediction, and the views equal both ghost models (the one updated from successful calls and
    /// the one rebuilt from the emitted events); the domain claims are compared in
    /// {invariant_ClaimsShrinkOnlyByGovernanceOrClaimant}.
    /// It reads about 250 views, so it runs every fourth call (and at the end of each run): a model
    /// divergence persists once it happens, and every call's outcome is already checked against the
    /// model when it is made (ghost_outcomeMismatches).
    /// forge-config: default.invariant.check-interval = 4
    /// forge-config: ci.invariant.check-interval = 4
    function invariant_NoChangeExceptThroughOwnerPath() public view {
        assertEq(handler.ghost_strangerSuccesses(), 0, "a stranger's restricted call succeeded");
        assertEq(handler.ghost_unauthorizedSuccesses(), 0, "an unauthorised restricted call succeeded");
        if (handler.ghost_outcomeMismatches() != 0) {
            assertEq(
                handler.ghost_outcomeMismatches(),
                0,
                string.concat(
                    "call outcome differs from the model; last selector ",
                    vm.toString(abi.encodePacked(handler.ghost_lastMismatchSelector())),
                    handler.ghost_lastMismatchSucceeded() ? " succeeded, return " : " reverted with ",
                    vm.toString(handler.ghost_lastMismatchReturn())
                )
            );
        }
        assertEq(
            handler.ghost_logInconsistencies(),
            0,
            "an event contradicts the state rebuilt from earlier events"
        );
        // The owner path never hands the registries over.
        assertEq(registry.owner(), address(timelock), "registry owner");
        assertEq(domains.owner(), address(timelock), "domain registry owner");

        Pools memory p = handler.pools();
        RegistryView memory actual = RegistryViews.readRegistry(registry, domains, p);
        bytes32 actualHash = keccak256(abi.encode(actual));
        for (uint256 s = 0; s < 2; ++s) {
            RegistryView memory m = handler.registryModel(ModelSource(s));
            // Field-by-field (slow, labelled) only when the encodings differ.
            if (keccak256(abi.encode(m)) != actualHash) _assertRegistryEq(actual, m, _label(s));
        }
        address[] memory apps = handler.apps();
        for (uint256 i = 0; i < apps.length; ++i) {
            AppView memory app = RegistryViews.readApp(App(apps[i]), p);
            actualHash = keccak256(abi.encode(app));
            for (uint256 s = 0; s < 2; ++s) {
                AppView memory m = handler.appModel(ModelSource(s), apps[i]);
                if (keccak256(abi.encode(m)) != actualHash) _assertAppEq(app, m, _label(s));
            }
        }
    }

    /// Once frozen, every view of the app that does not depend on the time stays as it was (lists,
    /// provenance, when each entry takes effect, the scheduled settings and when they apply, notice
    /// period, key generation, owner), and so does its owner; its policy's answers to a fixed set of
    /// boots change only when time passes (a change scheduled before the freeze may take effect);
    /// no call on it ever succeeds again.
    function invariant_FrozenAppNeverChanges() public view {
        address app = handler.ghost_frozenApp();
        if (app == address(0)) return;
        assertTrue(App(app).frozen(), "frozen app unfrozen");
        assertEq(App(app).owner(), handler.ghost_frozenOwner(), "frozen app owner changed");
        assertEq(handler.frozenAppDigest(app), handler.ghost_frozenDigest(), "frozen app views changed");
        assertEq(
            handler.frozenAppAnswers(app),
            handler.ghost_frozenAnswers(),
            "frozen app's answers changed while time stood still"
        );
        assertEq(handler.ghost_frozenAppWrites(), 0, "a call on a frozen app succeeded");
    }

    /// Whenever the registry allows a boot, each condition of the policy holds when checked on its
    /// own through the views (OS image allowed, effective and measuring to a registered value;
    /// compose hash and device listed and effective; the settings in force); and (the converse) when
    /// every condition holds, the boot is allowed. Checked, against the current state and time, on
    /// the last boots the handler evaluated.
    /// Runs every second call (and at the end of each run); each boot is also compared with the model
    /// when the handler evaluates it, as an app boot and as a KMS node boot (ghost_bootMismatches).
    /// forge-config: default.invariant.check-interval = 2
    /// forge-config: ci.invariant.check-interval = 2
    function invariant_IsAppAllowedImpliesConditions() public view {
        assertEq(
            handler.ghost_bootMismatches(),
            0,
            "isAppAllowed or isKmsAllowed differed from the model's decision"
        );
        BootInfo[] memory boots = handler.recentBoots();
        for (uint256 i = 0; i < boots.length; ++i) {
            _checkBoot(boots[i]);
        }
    }

    /// No compose hash takes effect before its notice period ends. For every app and every pool
    /// compose hash, a boot carrying that hash and otherwise built from what the app and registry
    /// allow now is allowed (by the app's own policy or by the registry) only if the handler added
    /// the hash and the notice in force for the app when it did (the longer of the app's notice
    /// period and the registry's minimum then; none for a new app's initial hashes) has passed
    /// since. The add times come from the handler's ghost records, not from the contract's own
    /// composeHashEffectiveAt view.
    /// Runs every second call (and at the end of each run): a hash allowed too early stays allowed
    /// until a warp. Like the two invariants below it needs only a few calls from the handler's
    /// starting state, so the default profile runs it half as often (ci in full), which keeps the
    /// suite's time near what it was before these three were added.
    /// forge-config: default.invariant.runs = 32
    /// forge-config: ci.invariant.runs = 256
    /// forge-config: default.invariant.check-interval = 2
    /// forge-config: ci.invariant.check-interval = 2
    function invariant_ComposeHashNeverEffectiveBeforeNotice() public view {
        address[] memory apps = handler.apps();
        bytes32[] memory hashes = handler.composeHashes();
        for (uint256 i = 0; i < apps.length; ++i) {
            BootInfo memory b = handler.probeBoot(apps[i], bytes32(0));
            for (uint256 j = 1; j < hashes.length; ++j) {
                bytes32 h = hashes[j];
                b.composeHash = h;
                // The registry allows only what the app's policy allows; it is asked when the app
                // refuses, so that a registry allowing on its own is caught too.
                (bool allowed,) = App(apps[i]).isAppAllowed(b);
                if (!allowed) (allowed,) = registry.isAppAllowed(b);
                if (!allowed) continue;
                if (!handler.ghost_composeListed(apps[i], h)) {
                    assertTrue(false, "a compose hash the handler never added (or removed) is allowed");
                }
                uint256 earliest = uint256(handler.ghost_composeAddedAt(apps[i], h))
                    + handler.ghost_composeNoticeAtAdd(apps[i], h);
                if (!_reached(earliest)) {
                    assertGe(block.timestamp, earliest, "compose hash allowed before its notice period ended");
                }
            }
        }
    }

    /// A node governance removed is never active again without a governance operation: every
    /// re-activation of such a node the handler saw was an onboarding by the Timelock; a node the
    /// ghost state still has as removed by governance is inactive and marked removedByGovernance in
    /// the contract (so it came back by no path the handler missed); and an active node whose latest
    /// onboarding followed a governance removal names the Timelock as its onboarder. (The handler
    /// starts with a node removed by governance and serving nodes that try to onboard it.)
    /// forge-config: default.invariant.runs = 32
    /// forge-config: ci.invariant.runs = 256
    function invariant_RemovedNodeReturnsOnlyThroughGovernance() public view {
        RegistryHandler.Reactivation[] memory r = handler.reactivations();
        for (uint256 i = 0; i < r.length; ++i) {
            if (r[i].by != address(timelock)) {
                assertEq(
                    r[i].by,
                    address(timelock),
                    string.concat(
                        "node ",
                        vm.toString(r[i].node),
                        " re-activated after a governance removal by a non-Timelock"
                    )
                );
            }
        }
        assertEq(handler.ghost_reactivationsNotByTimelock(), 0, "re-activation not by the Timelock");
        address[] memory nodes = handler.nodes();
        for (uint256 i = 1; i < nodes.length; ++i) {
            IKmsRegistry.KmsNode memory record = registry.kmsNode(nodes[i]);
            if (handler.ghost_governanceRemoved(nodes[i])) {
                assertFalse(record.active, "node governance removed is active with no onboarding seen");
                assertTrue(
                    record.removedByGovernance, "node governance removed not marked removedByGovernance"
                );
            } else if (record.active && handler.ghost_backAfterGovernanceRemoval(nodes[i])) {
                assertEq(
                    record.onboardedBy, address(timelock), "re-activated node not onboarded by the Timelock"
                );
            }
        }
    }

    /// A domain's claims never shrink except by governance or the claimant: every claim release
    /// the handler saw was made by the Timelock or by the app's owner at that moment, and the set of
    /// claims in the contract (every pool domain × every app candidate) equals the one the handler's
    /// model holds (so no claim disappeared, or appeared, by any other path) and the one rebuilt
    /// from the events. Runs every second call (and at the end of each run): a release is recorded
    /// for good, and a difference in the claims persists. (The handler starts with claims.)
    /// forge-config: default.invariant.runs = 32
    /// forge-config: ci.invariant.runs = 256
    /// forge-config: default.invariant.check-interval = 2
    /// forge-config: ci.invariant.check-interval = 2
    function invariant_ClaimsShrinkOnlyByGovernanceOrClaimant() public view {
        RegistryHandler.ClaimRelease[] memory releases = handler.claimReleases();
        for (uint256 i = 0; i < releases.length; ++i) {
            RegistryHandler.ClaimRelease memory r = releases[i];
            bool byClaimant = r.appOwner != address(0) && r.by == r.appOwner;
            if (r.by != address(timelock) && !byClaimant) {
                assertTrue(
                    false,
                    string.concat(
                        "claim of ",
                        vm.toString(r.app),
                        " released by ",
                        vm.toString(r.by),
                        ", neither the Timelock nor the app's owner"
                    )
                );
            }
        }
        assertEq(handler.ghost_claimReleasesByOthers(), 0, "a claim released by someone else");
        (string[] memory domainPool, address[] memory candidates) = handler.claimTargets();
        bool[] memory actual = RegistryViews.readClaims(domains, domainPool, candidates);
        for (uint256 s = 0; s < 2; ++s) {
            bool[] memory m = handler.claimsModel(ModelSource(s));
            if (keccak256(abi.encode(m)) == keccak256(abi.encode(actual))) continue;
            for (uint256 k = 0; k < actual.length; ++k) {
                assertEq(
                    actual[k],
                    m[k],
                    string.concat(_label(s), ": isClaimed (domain-major index ", vm.toString(k), ")")
                );
            }
        }
    }

    /// Every run made real progress: legitimate changes (through the owner path or by app owners)
    /// landed, and unauthorised or invalid calls were tried and refused. (A run makes about 60
    /// handler calls under the default profile and 120 under ci; short shrunk sequences are spared.)
    function afterInvariant() public view {
        if (handler.ghost_calls() < 32) return;
        assertGt(
            handler.ghost_ownerPathSuccesses() + handler.ghost_appOwnerSuccesses(),
            0,
            "no owner-path or app-owner call succeeded"
        );
        assertGt(handler.ghost_rejectedCalls(), 0, "no call was refused");
    }

    // ---------------------------------------------------------------------------------------------

    /// The conditions of {KmsRegistry-isAppAllowed} and {App-isAppAllowed}, each read through a view
    /// and judged at this block.
    struct Conditions {
        bool registered;
        bool teeKnown;
        bool simulatedAllowed;
        bool tcbAcceptable;
        bool osImageAllowed;
        bool osImageEffective;
        bool osMeasurementRegistered;
        bool composeHashAllowed;
        bool composeHashEffective;
        bool deviceAllowed;
        bool deviceEffective;
        bool teeKindAllowed;
        bool tcbUpToDateIfRequired;
        bool gpuIfRequired;
        bool generationCurrent;
        bool instancePresent;
    }

    function _checkBoot(BootInfo memory b) internal view {
        (bool allowed, string memory reason) = registry.isAppAllowed(b);
        (Conditions memory c, bool all) = _conditions(b);
        // Each assertion runs only when its condition fails, so that passing checks stay cheap.
        if (allowed) {
            if (bytes(reason).length != 0) assertEq(reason, "", "allowed with a reason");
            if (!c.registered) assertTrue(false, "allowed: app not registered");
            if (!c.teeKnown) assertTrue(false, "allowed: unknown tee kind");
            if (!c.simulatedAllowed) assertTrue(false, "allowed: simulated tee while not allowed");
            if (!c.tcbAcceptable) assertTrue(false, "allowed: tcb status Unknown or Revoked");
            if (!c.osImageAllowed) assertTrue(false, "allowed: os image not allowed");
            if (!c.osImageEffective) assertTrue(false, "allowed: os image not yet effective");
            if (!c.osMeasurementRegistered) assertTrue(false, "allowed: os measurement not registered");
            if (!c.composeHashAllowed) assertTrue(false, "allowed: compose hash not allowed");
            if (!c.composeHashEffective) assertTrue(false, "allowed: compose hash not yet effective");
            if (!c.deviceAllowed) assertTrue(false, "allowed: device not allowed and not anyDevice");
            if (!c.deviceEffective) assertTrue(false, "allowed: device not yet effective");
            if (!c.teeKindAllowed) assertTrue(false, "allowed: tee kind bit not set");
            if (!c.tcbUpToDateIfRequired) assertTrue(false, "allowed: tcb not up to date though required");
            if (!c.gpuIfRequired) assertTrue(false, "allowed: gpu evidence missing though required");
            if (!c.generationCurrent) assertTrue(false, "allowed: key generation not the app's");
            if (!c.instancePresent) assertTrue(false, "allowed: instance id missing");
        } else if (bytes(reason).length == 0) {
            assertTrue(false, "denied without a reason");
        }
        if (allowed != all) {
            assertEq(allowed, all, string.concat("isAppAllowed differs from its conditions: ", reason));
        }
    }

    function _conditions(BootInfo memory b) internal view returns (Conditions memory c, bool all) {
        c.registered = registry.appKind(b.appId) != IKmsRegistry.AppKind.None;
        c.teeKnown = b.teeKind != TeeKind.Unknown;
        c.simulatedAllowed = b.teeKind != TeeKind.Simulated || registry.allowSimulatedTee();
        c.tcbAcceptable = b.tcbStatus != TcbStatus.Unknown && b.tcbStatus != TcbStatus.Revoked;
        c.osImageAllowed = registry.isOsImageAllowed(b.osImageHash);
        c.osImageEffective = _reached(registry.osImageEffectiveAt(b.osImageHash));
        c.osMeasurementRegistered =
            registry.isOsMeasurementRegistered(b.osImageHash, b.teeKind, b.osMeasurement);
        c.instancePresent = b.instanceId != bytes20(0);
        if (b.appId == address(handler.customPolicy())) {
            // The custom policy's own rule is the instance id; the app-level conditions do not apply.
            (c.composeHashAllowed, c.composeHashEffective, c.deviceAllowed) = (true, true, true);
            (c.deviceEffective, c.teeKindAllowed, c.tcbUpToDateIfRequired) = (true, true, true);
            (c.gpuIfRequired, c.generationCurrent) = (true, true);
        } else if (b.appId.code.length > 0) {
            _appConditions(App(b.appId), b, c);
        }
        all = c.registered && c.teeKnown && c.simulatedAllowed && c.tcbAcceptable && c.osImageAllowed
            && c.osImageEffective && c.osMeasurementRegistered && c.composeHashAllowed
            && c.composeHashEffective && c.deviceAllowed && c.deviceEffective && c.teeKindAllowed
            && c.tcbUpToDateIfRequired && c.gpuIfRequired && c.generationCurrent && c.instancePresent;
    }

    /// The app-level conditions, through the app's views of the settings in force.
    function _appConditions(App app, BootInfo memory b, Conditions memory c) internal view {
        c.composeHashAllowed = app.isComposeHashAllowed(b.composeHash);
        c.composeHashEffective = _reached(app.composeHashEffectiveAt(b.composeHash));
        bool anyDevice = app.anyDevice();
        c.deviceAllowed = anyDevice || app.isDeviceAllowed(b.deviceId);
        c.deviceEffective = anyDevice || _reached(app.deviceEffectiveAt(b.deviceId));
        c.teeKindAllowed = (app.allowedTeeKinds() >> uint8(b.teeKind)) & 1 == 1;
        c.tcbUpToDateIfRequired = !app.requireUpToDateTcb() || b.tcbStatus == TcbStatus.UpToDate;
        c.gpuIfRequired = !app.requireGpu() || b.gpuEvidenceHash != bytes32(0);
        c.generationCurrent = b.keyGeneration == app.keyGeneration();
    }

    /// Whether the block's time has reached `time` (a test clock only the handler warps).
    function _reached(uint256 time) internal view returns (bool) {
        // forge-lint: disable-next-line(block-timestamp)
        return block.timestamp >= time;
    }

    function _label(uint256 source) internal pure returns (string memory) {
        return ModelSource(source) == ModelSource.Expected ? "expected model" : "log model";
    }

    function _assertRegistryEq(RegistryView memory a, RegistryView memory m, string memory model)
        internal
        pure
    {
        for (uint256 i = 0; i < a.osImageDigests.length; ++i) {
            assertEq(a.osImageDigests[i], m.osImageDigests[i], string.concat(model, ": osImageProvenance"));
            assertEq(a.osImagesAllowed[i], m.osImagesAllowed[i], string.concat(model, ": isOsImageAllowed"));
            assertEq(
                a.osImageEffectiveAt[i], m.osImageEffectiveAt[i], string.concat(model, ": osImageEffectiveAt")
            );
        }
        for (uint256 i = 0; i < a.osMeasurementsRegistered.length; ++i) {
            assertEq(
                a.osMeasurementsRegistered[i],
                m.osMeasurementsRegistered[i],
                string.concat(model, ": isOsMeasurementRegistered (index ", vm.toString(i), ")")
            );
        }
        for (uint256 i = 0; i < a.kmsMeasurements.length; ++i) {
            assertEq(
                a.kmsMeasurements[i], m.kmsMeasurements[i], string.concat(model, ": isKmsMeasurementAllowed")
            );
        }
        for (uint256 i = 0; i < a.kmsDevices.length; ++i) {
            assertEq(a.kmsDevices[i], m.kmsDevices[i], string.concat(model, ": isKmsDeviceAllowed"));
        }
        for (uint256 i = 0; i < a.nodes.length; ++i) {
            IKmsRegistry.KmsNode memory x = a.nodes[i];
            IKmsRegistry.KmsNode memory y = m.nodes[i];
            assertEq(x.active, y.active, string.concat(model, ": kmsNode.active"));
            assertEq(x.onboardedBy, y.onboardedBy, string.concat(model, ": kmsNode.onboardedBy"));
            assertEq(x.onboardedAt, y.onboardedAt, string.concat(model, ": kmsNode.onboardedAt"));
            assertEq(
                x.committedThrough, y.committedThrough, string.concat(model, ": kmsNode.committedThrough")
            );
            assertEq(x.mrAggregated, y.mrAggregated, string.concat(model, ": kmsNode.mrAggregated"));
            assertEq(x.deviceId, y.deviceId, string.concat(model, ": kmsNode.deviceId"));
            assertEq(
                x.removedByGovernance,
                y.removedByGovernance,
                string.concat(model, ": kmsNode.removedByGovernance")
            );
        }
        for (uint256 i = 0; i < a.appKinds.length; ++i) {
            assertEq(uint8(a.appKinds[i]), uint8(m.appKinds[i]), string.concat(model, ": appKind"));
        }
        assertEq(a.minNoticePeriod, m.minNoticePeriod, string.concat(model, ": minNoticePeriod"));
        assertEq(a.allowSimulatedTee, m.allowSimulatedTee, string.concat(model, ": allowSimulatedTee"));
        assertEq(a.appImplementation, m.appImplementation, string.concat(model, ": appImplementation"));
        assertEq(a.gatewayAppId, m.gatewayAppId, string.concat(model, ": gatewayAppId"));
        assertEq(a.rootSigner, m.rootSigner, string.concat(model, ": kmsRootKeys signer"));
        assertEq(a.caPublicKeyHash, m.caPublicKeyHash, string.concat(model, ": kmsRootKeys CA key"));
        assertEq(a.rootGeneration, m.rootGeneration, string.concat(model, ": kmsRootKeys generation"));
        assertEq(a.registryOwner, m.registryOwner, string.concat(model, ": registry owner"));
        assertEq(
            a.registryPendingOwner, m.registryPendingOwner, string.concat(model, ": registry pendingOwner")
        );
        assertEq(
            a.registryImplementation,
            m.registryImplementation,
            string.concat(model, ": registry implementation")
        );
        assertEq(a.domainsOwner, m.domainsOwner, string.concat(model, ": domains owner"));
        assertEq(a.domainsPendingOwner, m.domainsPendingOwner, string.concat(model, ": domains pendingOwner"));
        assertEq(
            a.domainsImplementation, m.domainsImplementation, string.concat(model, ": domains implementation")
        );
        assertEq(a.acmeAccountHash, m.acmeAccountHash, string.concat(model, ": gatewayAcmeAccount"));
        assertEq(keccak256(abi.encode(a)), keccak256(abi.encode(m)), string.concat(model, ": registry views"));
    }

    function _assertAppEq(AppView memory a, AppView memory m, string memory model) internal pure {
        for (uint256 i = 0; i < a.composeDigests.length; ++i) {
            assertEq(
                a.composeDigests[i], m.composeDigests[i], string.concat(model, ": composeHashProvenance")
            );
            assertEq(a.composeAllowed[i], m.composeAllowed[i], string.concat(model, ": isComposeHashAllowed"));
            assertEq(
                a.composeEffectiveAt[i],
                m.composeEffectiveAt[i],
                string.concat(model, ": composeHashEffectiveAt")
            );
        }
        for (uint256 i = 0; i < a.devices.length; ++i) {
            assertEq(a.devices[i], m.devices[i], string.concat(model, ": isDeviceAllowed"));
            assertEq(
                a.deviceEffectiveAt[i], m.deviceEffectiveAt[i], string.concat(model, ": deviceEffectiveAt")
            );
        }
        assertEq(a.anyDevice, m.anyDevice, string.concat(model, ": anyDevice"));
        assertEq(a.allowedTeeKinds, m.allowedTeeKinds, string.concat(model, ": allowedTeeKinds"));
        assertEq(a.requireUpToDateTcb, m.requireUpToDateTcb, string.concat(model, ": requireUpToDateTcb"));
        assertEq(a.requireGpu, m.requireGpu, string.concat(model, ": requireGpu"));
        assertEq(
            keccak256(abi.encode(a.current)),
            keccak256(abi.encode(m.current)),
            string.concat(model, ": settings() in force")
        );
        assertEq(
            keccak256(abi.encode(a.scheduled)),
            keccak256(abi.encode(m.scheduled)),
            string.concat(model, ": settings() scheduled")
        );
        assertEq(
            a.settingsEffectiveAt, m.settingsEffectiveAt, string.concat(model, ": settings() effectiveAt")
        );
        assertEq(a.noticePeriod, m.noticePeriod, string.concat(model, ": noticePeriod"));
        assertEq(a.keyGeneration, m.keyGeneration, string.concat(model, ": keyGeneration"));
        assertEq(a.frozen, m.frozen, string.concat(model, ": frozen"));
        assertEq(a.owner, m.owner, string.concat(model, ": app owner"));
        assertEq(a.pendingOwner, m.pendingOwner, string.concat(model, ": app pendingOwner"));
        assertEq(a.implementation, m.implementation, string.concat(model, ": app implementation"));
        assertEq(a.registry, m.registry, string.concat(model, ": app registry"));
        assertEq(keccak256(abi.encode(a)), keccak256(abi.encode(m)), string.concat(model, ": app views"));
    }
}
