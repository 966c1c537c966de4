// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {CovenantGovernor} from "../../contracts/governance/CovenantGovernor.sol";
import {CovenantGuardian} from "../../contracts/governance/CovenantGuardian.sol";
import {CovenantToken} from "../../contracts/governance/CovenantToken.sol";
import {OsMeasurement, Provenance, TeeKind} from "../../contracts/interfaces/BootPolicy.sol";
import {KmsRegistry} from "../../contracts/registry/KmsRegistry.sol";
import {OwnableUpgradeable} from "@openzeppelin/contracts-upgradeable/access/OwnableUpgradeable.sol";
import {IGovernor} from "@openzeppelin/contracts/governance/IGovernor.sol";
import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {CommonBase} from "forge-std/Base.sol";
import {StdCheats} from "forge-std/StdCheats.sol";
import {StdUtils} from "forge-std/StdUtils.sol";

/// Drives registry-changing proposals through the Governor and the Timelock with time warps:
/// propose, vote by rotating holders, queue, execute (through the Governor or straight through the
/// Timelock), guardian cancel, proposer cancel, token transfers between holders, and attempts to
/// go around governance. It predicts each call's outcome, records when every executed proposal was
/// queued and executed, and models the registry settings that executed proposals changed.
contract GovernanceHandler is CommonBase, StdCheats, StdUtils {
    /// The deployment the handler drives.
    struct System {
        CovenantGovernor governor;
        TimelockController timelock;
        CovenantToken token;
        KmsRegistry registry;
        address guardian;
        /// The contract the guardian cancels through (it holds the Timelock's CANCELLER_ROLE).
        CovenantGuardian guardianContract;
        address deployer;
        address stranger;
        address[] holders;
    }

    /// What a proposal changes in the registry.
    enum Kind {
        SetAllowSimulatedTee,
        AddOsImage,
        RemoveOsImage
    }

    struct Proposal {
        uint256 id;
        address proposer;
        Kind kind;
        bool flag;
        bytes32 osImage;
        bytes32 descriptionHash;
        /// The handler gave up driving it (defeated, canceled, or its call cannot run now).
        bool abandoned;
    }

    uint256 internal constant MAX_PROPOSALS = 16;
    uint256 internal constant NONE = type(uint256).max;

    CovenantGovernor public immutable governor;
    TimelockController public immutable timelock;
    CovenantToken public immutable token;
    KmsRegistry public immutable registry;
    address public immutable guardian;
    CovenantGuardian public immutable guardianContract;
    /// When the guardian's term ends (no proposal here renews it).
    uint64 public immutable guardianExpiresAt;
    address public immutable deployer;
    address public immutable stranger;

    address[] internal _holders;
    /// Holders, the guardian, the deployer and a stranger.
    address[] internal _actors;
    bytes32[] internal _osImages;
    Proposal[] internal _proposals;

    // Ghost model of the registry settings governance changes.
    bool public ghost_allowSimulatedTee;
    mapping(bytes32 osImageHash => bool allowed) public ghost_osImageAllowed;

    // Ghost timestamps of every executed proposal.
    uint256[] internal _executed;
    mapping(uint256 proposalId => uint256 timestamp) public ghost_queuedAt;
    mapping(uint256 proposalId => uint256 timestamp) public ghost_eta;
    mapping(uint256 proposalId => uint256 timestamp) public ghost_executedAt;

    // Ghost totals.
    uint256 public ghost_proposed;
    uint256 public ghost_votes;
    uint256 public ghost_queued;
    uint256 public ghost_executedThroughTimelock;
    uint256 public ghost_guardianCancels;
    uint256 public ghost_proposerCancels;
    uint256 public ghost_transfers;
    uint256 public ghost_advanceCalls;
    /// Proposals `advance` created and drove in the same call, and how many of them were executed.
    uint256 public ghost_freshDrives;
    uint256 public ghost_freshDrivesExecuted;
    uint256 public ghost_bypassAttempts;
    /// Successful calls by a caller that had no right to make them.
    uint256 public ghost_unauthorizedSuccesses;
    /// Calls whose outcome differed from the prediction.
    uint256 public ghost_outcomeMismatches;
    bytes4 public ghost_lastMismatchSelector;

    constructor(System memory s) {
        governor = s.governor;
        timelock = s.timelock;
        token = s.token;
        registry = s.registry;
        guardian = s.guardian;
        guardianContract = s.guardianContract;
        guardianExpiresAt = s.guardianContract.expiresAt();
        deployer = s.deployer;
        stranger = s.stranger;
        for (uint256 i = 0; i < s.holders.length; ++i) {
            _holders.push(s.holders[i]);
            _actors.push(s.holders[i]);
        }
        _actors.push(s.guardian);
        _actors.push(s.deployer);
        _actors.push(s.stranger);
        for (uint256 i = 1; i <= 3; ++i) {
            _osImages.push(keccak256(abi.encode("governed os image", i)));
        }
        ghost_allowSimulatedTee = s.registry.allowSimulatedTee();
    }

    // ---------------------------------------------------------------------------------------------
    // Governance steps

    /// Anyone proposes (the threshold is zero) a registry change, mostly one that can run now.
    function propose(uint256 proposerSeed, uint256 kindSeed, uint256 valueSeed) external {
        if (_proposals.length >= MAX_PROPOSALS) return;
        _propose(_actors[bound(proposerSeed, 0, _actors.length - 1)], kindSeed, valueSeed, false);
    }

    /// A holder (or a stranger, with no votes) votes; support 0 against, 1 and 3 for, 2 abstain.
    function castVote(uint256 proposalSeed, uint256 voterSeed, uint256 supportSeed) external {
        if (_proposals.length == 0) return;
        Proposal storage p = _proposals[bound(proposalSeed, 0, _proposals.length - 1)];
        address voter = voterSeed % 8 == 7 ? stranger : _holders[bound(voterSeed, 0, _holders.length - 1)];
        uint8 support = uint8(bound(supportSeed, 0, 3) % 3);
        _vote(p, voter, support);
    }

    function warp(uint256 secondsSeed) external {
        _warp(bound(secondsSeed, 1 hours, 3 days));
    }

    /// Anyone queues a proposal.
    function queue(uint256 proposalSeed, uint256 actorSeed) external {
        if (_proposals.length == 0) return;
        _queue(
            _proposals[bound(proposalSeed, 0, _proposals.length - 1)],
            _actors[bound(actorSeed, 0, _actors.length - 1)]
        );
    }

    /// Anyone executes a proposal through the Governor.
    function execute(uint256 proposalSeed, uint256 actorSeed) external {
        if (_proposals.length == 0) return;
        _execute(
            _proposals[bound(proposalSeed, 0, _proposals.length - 1)],
            _actors[bound(actorSeed, 0, _actors.length - 1)]
        );
    }

    /// Anyone executes a queued operation straight through the Timelock (its executor role is open).
    function executeThroughTimelock(uint256 proposalSeed, uint256 actorSeed) external {
        if (_proposals.length == 0) return;
        Proposal storage p = _proposals[bound(proposalSeed, 0, _proposals.length - 1)];
        address actor = _actors[bound(actorSeed, 0, _actors.length - 1)];
        (address[] memory targets, uint256[] memory values, bytes[] memory calldatas) = _calls(p);
        bool expectOk = timelock.isOperationReady(_operationId(p)) && _wouldRun(p);
        vm.prank(actor);
        try timelock.executeBatch(targets, values, calldatas, bytes32(0), _salt(p)) {
            _recordExecuted(p, expectOk, TimelockController.executeBatch.selector);
            ++ghost_executedThroughTimelock;
        } catch {
            _checkOutcome(false, expectOk, TimelockController.executeBatch.selector);
        }
    }

    /// The guardian (or anyone else) cancels a queued operation through the guardian contract, which
    /// cancels in the Timelock until the guardian's term ends; a quarter of the calls go to the
    /// Timelock directly instead, which no actor may do (only the Governor and the guardian
    /// contract hold the canceller role).
    function guardianCancel(uint256 proposalSeed, uint256 actorSeed) external {
        if (_proposals.length == 0) return;
        Proposal storage p = _proposals[bound(proposalSeed, 0, _proposals.length - 1)];
        address actor = actorSeed % 2 == 0 ? guardian : _actors[bound(actorSeed, 0, _actors.length - 1)];
        bytes32 operationId = _operationId(p);
        bool direct = (actorSeed >> 8) % 4 == 0;
        // A test clock warped by the handler, not a validator-set timestamp.
        // forge-lint: disable-next-line(block-timestamp)
        bool authorized = !direct && actor == guardian && block.timestamp < guardianExpiresAt;
        bool expectOk = authorized && timelock.isOperationPending(operationId);
        bool ok = direct ? _cancelInTimelock(operationId, actor) : _cancelThroughGuardian(p, actor);
        _checkOutcome(
            ok, expectOk, direct ? TimelockController.cancel.selector : CovenantGuardian.cancel.selector
        );
        if (ok) {
            if (!authorized) ++ghost_unauthorizedSuccesses;
            ++ghost_guardianCancels;
            p.abandoned = true;
        }
    }

    /// The proposer (or anyone else) cancels a proposal through the Governor (only while pending).
    function proposerCancel(uint256 proposalSeed, uint256 actorSeed) external {
        if (_proposals.length == 0) return;
        Proposal storage p = _proposals[bound(proposalSeed, 0, _proposals.length - 1)];
        address actor = actorSeed % 2 == 0 ? p.proposer : _actors[bound(actorSeed, 0, _actors.length - 1)];
        bool authorized = actor == p.proposer;
        bool expectOk = authorized && governor.state(p.id) == IGovernor.ProposalState.Pending;
        (address[] memory targets, uint256[] memory values, bytes[] memory calldatas) = _calls(p);
        vm.prank(actor);
        try governor.cancel(targets, values, calldatas, p.descriptionHash) {
            _checkOutcome(true, expectOk, IGovernor.cancel.selector);
            if (!authorized) ++ghost_unauthorizedSuccesses;
            ++ghost_proposerCancels;
            p.abandoned = true;
        } catch {
            _checkOutcome(false, expectOk, IGovernor.cancel.selector);
        }
    }

    /// A holder moves up to a tenth of its tokens to another holder (votes follow, both delegated).
    function transferTokens(uint256 fromSeed, uint256 toSeed, uint256 amountSeed) external {
        address from = _holders[bound(fromSeed, 0, _holders.length - 1)];
        address to = _holders[bound(toSeed, 0, _holders.length - 1)];
        uint256 amount = bound(amountSeed, 0, token.balanceOf(from) / 10);
        vm.prank(from);
        bool ok = token.transfer(to, amount);
        _checkOutcome(ok, true, IERC20.transfer.selector);
        ++ghost_transfers;
    }

    /// Someone who is not the Governor tries to change the registry or the Timelock without a vote.
    function bypassGovernance(uint256 actorSeed, uint256 attemptSeed) external {
        address actor = _actors[bound(actorSeed, 0, _actors.length - 1)];
        uint256 attempt = bound(attemptSeed, 0, 5);
        bytes memory change = abi.encodeCall(KmsRegistry.setAllowSimulatedTee, (!ghost_allowSimulatedTee));
        address target;
        bytes memory data;
        if (attempt == 0) {
            (target, data) = (address(registry), change);
        } else if (attempt == 1) {
            target = address(timelock);
            data = abi.encodeCall(
                TimelockController.schedule,
                (address(registry), 0, change, bytes32(0), bytes32(0), timelock.getMinDelay())
            );
        } else if (attempt == 2) {
            target = address(timelock);
            data = abi.encodeCall(TimelockController.updateDelay, (0));
        } else if (attempt == 3) {
            bytes32 role = actorSeed % 2 == 0 ? timelock.PROPOSER_ROLE() : timelock.DEFAULT_ADMIN_ROLE();
            (target, data) = (address(timelock), abi.encodeCall(timelock.grantRole, (role, actor)));
        } else if (attempt == 4) {
            (target, data) =
            (address(registry), abi.encodeCall(OwnableUpgradeable.transferOwnership, (actor)));
        } else {
            // The Governor's own governance-only functions (called from outside a proposal).
            (target, data) =
            (address(governor), abi.encodeCall(governor.updateTimelock, (TimelockController(payable(actor)))));
        }
        ++ghost_bypassAttempts;
        vm.prank(actor);
        (bool ok,) = target.call(data);
        if (ok) ++ghost_unauthorizedSuccesses;
        // casting to 'bytes4' is safe because it keeps the selector, the intended prefix
        // forge-lint: disable-next-line(unsafe-typecast)
        _checkOutcome(ok, false, bytes4(data));
    }

    /// Drives the oldest live proposal (proposing a runnable one if none is live) through every
    /// remaining step — wait, vote for by the holders who have not voted, queue, wait the delay,
    /// execute — so that runs reliably execute proposals; gives up on a proposal that is defeated,
    /// canceled or whose call cannot run, and moves to the next. A proposal it creates and drives
    /// in the same call meets no interference, so it must be executed (see ghost_freshDrives).
    function advance(uint256 proposerSeed, uint256 kindSeed, uint256 valueSeed) external {
        ++ghost_advanceCalls;
        kindSeed = bound(kindSeed, 0, type(uint128).max);
        valueSeed = bound(valueSeed, 0, type(uint128).max);
        for (uint256 attempt = 0; attempt < 4; ++attempt) {
            uint256 i = _oldestLive();
            bool fresh = i == NONE;
            if (fresh) {
                if (_proposals.length >= MAX_PROPOSALS) return;
                address proposer = _holders[bound(proposerSeed, 0, _holders.length - 1)];
                if (!_propose(proposer, kindSeed + attempt, valueSeed + attempt, true)) return;
                i = _proposals.length - 1;
                ++ghost_freshDrives;
            }
            bool executed = _drive(_proposals[i]);
            if (fresh && executed) ++ghost_freshDrivesExecuted;
            if (executed) return;
            _proposals[i].abandoned = true;
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Views for the invariant suite

    function executedProposals() external view returns (uint256[] memory) {
        return _executed;
    }

    function osImagePool() external view returns (bytes32[] memory) {
        return _osImages;
    }

    function proposalCount() external view returns (uint256) {
        return _proposals.length;
    }

    function proposalId(uint256 index) external view returns (uint256) {
        return _proposals[index].id;
    }

    // ---------------------------------------------------------------------------------------------
    // Internals

    /// Proposes a registry change; three times in four (always if `mustRun`) one that can run
    /// against the current model.
    function _propose(address proposer, uint256 kindSeed, uint256 valueSeed, bool mustRun)
        internal
        returns (bool)
    {
        Proposal memory p;
        p.proposer = proposer;
        p.kind = Kind(bound(kindSeed, 0, 2));
        bool runnable = mustRun || valueSeed % 4 != 0;
        p.flag = runnable ? !ghost_allowSimulatedTee : ghost_allowSimulatedTee;
        p.osImage = _osImages[bound(valueSeed >> 2, 0, _osImages.length - 1)];
        if (runnable && p.kind != Kind.SetAllowSimulatedTee) {
            // An image in the state the change needs; if there is none, the opposite change.
            bool found;
            for (uint256 i = 0; i < _osImages.length && !found; ++i) {
                bytes32 candidate = _osImages[(i + (valueSeed >> 2)) % _osImages.length];
                found = ghost_osImageAllowed[candidate] == (p.kind == Kind.RemoveOsImage);
                if (found) p.osImage = candidate;
            }
            if (!found) p.kind = p.kind == Kind.AddOsImage ? Kind.RemoveOsImage : Kind.AddOsImage;
        }
        string memory description = string.concat("Covenant proposal #", vm.toString(_proposals.length + 1));
        p.descriptionHash = keccak256(bytes(description));
        (address[] memory targets, uint256[] memory values, bytes[] memory calldatas) = _calls(p);
        vm.prank(proposer);
        try governor.propose(targets, values, calldatas, description) returns (uint256 id) {
            p.id = id;
            _proposals.push(p);
            ++ghost_proposed;
            _checkOutcome(true, true, IGovernor.propose.selector);
            return true;
        } catch {
            _checkOutcome(false, true, IGovernor.propose.selector);
            return false;
        }
    }

    function _vote(Proposal storage p, address voter, uint8 support) internal {
        bool expectOk =
            governor.state(p.id) == IGovernor.ProposalState.Active && !governor.hasVoted(p.id, voter);
        vm.prank(voter);
        try governor.castVote(p.id, support) {
            _checkOutcome(true, expectOk, IGovernor.castVote.selector);
            ++ghost_votes;
        } catch {
            _checkOutcome(false, expectOk, IGovernor.castVote.selector);
        }
    }

    /// `actor` cancels operation `id` straight in the Timelock.
    function _cancelInTimelock(bytes32 id, address actor) internal returns (bool ok) {
        vm.prank(actor);
        try timelock.cancel(id) {
            ok = true;
        } catch {}
    }

    /// `actor` cancels the Timelock operation of `p` through the guardian contract.
    function _cancelThroughGuardian(Proposal storage p, address actor) internal returns (bool ok) {
        (address[] memory targets, uint256[] memory values, bytes[] memory calldatas) = _calls(p);
        bytes32 salt = _salt(p);
        vm.prank(actor);
        try guardianContract.cancel(targets, values, calldatas, bytes32(0), salt) {
            ok = true;
        } catch {}
    }

    function _queue(Proposal storage p, address actor) internal returns (bool ok) {
        bool expectOk = governor.state(p.id) == IGovernor.ProposalState.Succeeded;
        (address[] memory targets, uint256[] memory values, bytes[] memory calldatas) = _calls(p);
        vm.prank(actor);
        try governor.queue(targets, values, calldatas, p.descriptionHash) {
            ok = true;
            ghost_queuedAt[p.id] = block.timestamp;
            ghost_eta[p.id] = governor.proposalEta(p.id);
            ++ghost_queued;
        } catch {}
        _checkOutcome(ok, expectOk, IGovernor.queue.selector);
    }

    function _execute(Proposal storage p, address actor) internal returns (bool ok) {
        bool expectOk = governor.state(p.id) == IGovernor.ProposalState.Queued
            && timelock.isOperationReady(_operationId(p)) && _wouldRun(p);
        (address[] memory targets, uint256[] memory values, bytes[] memory calldatas) = _calls(p);
        vm.prank(actor);
        try governor.execute(targets, values, calldatas, p.descriptionHash) {
            ok = true;
            _recordExecuted(p, expectOk, IGovernor.execute.selector);
        } catch {
            _checkOutcome(false, expectOk, IGovernor.execute.selector);
        }
    }

    /// Takes `p` through its remaining steps; true once it is executed.
    function _drive(Proposal storage p) internal returns (bool) {
        for (uint256 step = 0; step < 8; ++step) {
            IGovernor.ProposalState state = governor.state(p.id);
            if (state == IGovernor.ProposalState.Executed) return true;
            if (state == IGovernor.ProposalState.Pending) {
                _warp(governor.proposalSnapshot(p.id) + 1 - block.timestamp);
            } else if (state == IGovernor.ProposalState.Active) {
                for (uint256 i = 0; i < _holders.length; ++i) {
                    if (!governor.hasVoted(p.id, _holders[i])) _vote(p, _holders[i], 1);
                }
                _warp(governor.proposalDeadline(p.id) + 1 - block.timestamp);
            } else if (state == IGovernor.ProposalState.Succeeded) {
                if (!_queue(p, _holders[step % _holders.length])) return false;
            } else if (state == IGovernor.ProposalState.Queued) {
                uint256 eta = governor.proposalEta(p.id);
                // A test clock warped by the handler, not a validator-set timestamp.
                // forge-lint: disable-next-line(block-timestamp)
                if (block.timestamp < eta) _warp(eta - block.timestamp);
                if (!_execute(p, stranger)) return false;
            } else {
                return false;
            }
        }
        return false;
    }

    function _recordExecuted(Proposal storage p, bool expectOk, bytes4 selector) internal {
        _checkOutcome(true, expectOk, selector);
        _executed.push(p.id);
        ghost_executedAt[p.id] = block.timestamp;
        if (p.kind == Kind.SetAllowSimulatedTee) ghost_allowSimulatedTee = p.flag;
        else ghost_osImageAllowed[p.osImage] = p.kind == Kind.AddOsImage;
    }

    /// Whether the proposal's registry call would succeed against the model.
    function _wouldRun(Proposal storage p) internal view returns (bool) {
        if (p.kind == Kind.SetAllowSimulatedTee) return p.flag != ghost_allowSimulatedTee;
        if (p.kind == Kind.AddOsImage) return !ghost_osImageAllowed[p.osImage];
        return ghost_osImageAllowed[p.osImage];
    }

    function _calls(Proposal memory p)
        internal
        view
        returns (address[] memory targets, uint256[] memory values, bytes[] memory calldatas)
    {
        targets = new address[](1);
        targets[0] = address(registry);
        values = new uint256[](1);
        calldatas = new bytes[](1);
        if (p.kind == Kind.SetAllowSimulatedTee) {
            calldatas[0] = abi.encodeCall(KmsRegistry.setAllowSimulatedTee, (p.flag));
        } else if (p.kind == Kind.AddOsImage) {
            Provenance memory provenance;
            provenance.sourceUrl = "https://git.example/covenant/os";
            provenance.sourceCommit = "v1";
            provenance.artifactDigests = new bytes32[](1);
            provenance.artifactDigests[0] = p.osImage;
            OsMeasurement[] memory measurements = new OsMeasurement[](1);
            measurements[0] = OsMeasurement({teeKind: TeeKind.Tdx, registers: new bytes(192)});
            calldatas[0] = abi.encodeCall(KmsRegistry.addOsImage, (p.osImage, provenance, measurements));
        } else {
            calldatas[0] = abi.encodeCall(KmsRegistry.removeOsImage, (p.osImage));
        }
    }

    /// The Timelock operation id the Governor uses for `p` (see GovernorTimelockControl).
    function _operationId(Proposal memory p) internal view returns (bytes32) {
        (address[] memory targets, uint256[] memory values, bytes[] memory calldatas) = _calls(p);
        return timelock.hashOperationBatch(targets, values, calldatas, bytes32(0), _salt(p));
    }

    function _salt(Proposal memory p) internal view returns (bytes32) {
        return bytes20(address(governor)) ^ p.descriptionHash;
    }

    function _oldestLive() internal view returns (uint256) {
        for (uint256 i = 0; i < _proposals.length; ++i) {
            if (_proposals[i].abandoned) continue;
            IGovernor.ProposalState state = governor.state(_proposals[i].id);
            if (
                state != IGovernor.ProposalState.Executed && state != IGovernor.ProposalState.Defeated
                    && state != IGovernor.ProposalState.Canceled && state != IGovernor.ProposalState.Expired
            ) return i;
        }
        return NONE;
    }

    function _warp(uint256 delta) internal {
        vm.warp(block.timestamp + delta);
        vm.roll(block.number + 1);
    }

    function _checkOutcome(bool ok, bool expectOk, bytes4 selector) internal {
        if (ok != expectOk) {
            ++ghost_outcomeMismatches;
            ghost_lastMismatchSelector = selector;
        }
    }
}
