// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

/// @title CovenantGuardian
/// @notice The Timelock's cancel-only guardian, with limits that keep it from entrenching itself:
/// its power expires at a set time that only governance can renew, and it cannot cancel an
/// operation whose every call revokes, replaces or limits the guardian. A person or a Safe acts
/// through this contract, which alone holds the Timelock's CANCELLER_ROLE besides the Governor.
/// @dev Operations are identified by their full content, hashed by the Timelock itself, so the
/// guardian cannot misstate what it cancels. A batch mixing guardian changes with other calls can
/// be cancelled: governance cannot shield a change by bundling it with the guardian's removal.
contract CovenantGuardian {
    /// @notice The longest term governance may grant at once (two years).
    uint64 public constant MAX_TERM = 730 days;

    /// @notice The Timelock whose operations the guardian may cancel.
    TimelockController public immutable TIMELOCK;

    /// @notice Who may cancel through this contract.
    address public guardian;
    /// @notice When the guardian's power ends (block timestamp; it may act strictly before).
    uint64 public expiresAt;

    /// @notice The guardian cancelled a Timelock operation.
    event OperationCancelled(bytes32 indexed id, address indexed by);
    /// @notice The guardian's power now ends at `expiresAt`.
    event GuardianTermSet(uint64 expiresAt);
    /// @notice The account that acts as guardian changed.
    event GuardianSet(address indexed previous, address indexed guardian);

    /// @notice The caller is not the guardian.
    error GuardianUnauthorized(address caller);
    /// @notice The caller is not the Timelock (governance).
    error GuardianOnlyGovernance(address caller);
    /// @notice The guardian's term is over.
    error GuardianExpired(uint64 expiresAt);
    /// @notice The operation only changes the guardian; the guardian may not cancel it.
    error GuardianCannotCancelItsOwnRemoval(bytes32 id);
    /// @notice The requested term ends in the past or more than {MAX_TERM} from now.
    error GuardianInvalidTerm(uint64 expiresAt);
    /// @notice The operation is empty or its arrays differ in length.
    error GuardianMalformedOperation();

    modifier onlyGovernance() {
        if (msg.sender != address(TIMELOCK)) revert GuardianOnlyGovernance(msg.sender);
        _;
    }

    /// @param timelock the Timelock.
    /// @param guardian_ the account that acts as guardian.
    /// @param expiresAt_ when its power ends (at most {MAX_TERM} from deployment).
    constructor(TimelockController timelock, address guardian_, uint64 expiresAt_) {
        TIMELOCK = timelock;
        guardian = guardian_;
        emit GuardianSet(address(0), guardian_);
        _setTerm(expiresAt_);
    }

    /// @notice Cancels the pending Timelock batch operation with this content.
    /// @dev Requirements: caller is the guardian; its term has not ended; the operation is not only
    /// guardian changes (see {isGuardianChange}); it is pending in the Timelock. Emits
    /// {OperationCancelled} (and the Timelock's `Cancelled`).
    function cancel(
        address[] calldata targets,
        uint256[] calldata values,
        bytes[] calldata payloads,
        bytes32 predecessor,
        bytes32 salt
    ) external {
        if (msg.sender != guardian) revert GuardianUnauthorized(msg.sender);
        if (block.timestamp >= expiresAt) revert GuardianExpired(expiresAt);
        uint256 n = targets.length;
        if (n == 0 || n != values.length || n != payloads.length) revert GuardianMalformedOperation();
        bytes32 id = TIMELOCK.hashOperationBatch(targets, values, payloads, predecessor, salt);
        bool onlyGuardianChanges = true;
        for (uint256 i = 0; i < n && onlyGuardianChanges; ++i) {
            onlyGuardianChanges = isGuardianChange(targets[i], payloads[i]);
        }
        if (onlyGuardianChanges) revert GuardianCannotCancelItsOwnRemoval(id);
        TIMELOCK.cancel(id);
        emit OperationCancelled(id, msg.sender);
    }

    /// @notice Sets when the guardian's power ends: renews or shortens its term (governance only).
    /// @dev Requirements: caller is the Timelock; not in the past, at most {MAX_TERM} ahead.
    /// Emits {GuardianTermSet}.
    /// @param expiresAt_ the new end of term.
    function setTerm(uint64 expiresAt_) external onlyGovernance {
        _setTerm(expiresAt_);
    }

    /// @notice Replaces the account that acts as guardian (governance only; zero to remove).
    /// @dev Requirements: caller is the Timelock. Emits {GuardianSet}.
    /// @param guardian_ the new guardian.
    function setGuardian(address guardian_) external onlyGovernance {
        emit GuardianSet(guardian, guardian_);
        guardian = guardian_;
    }

    /// @notice Whether a call revokes, replaces or limits the guardian: any call to this contract
    /// (only governance can make them), or the Timelock revoking this contract's CANCELLER_ROLE.
    /// @param target the call's target.
    /// @param payload the call's data.
    /// @return true if the call only concerns the guardian.
    function isGuardianChange(address target, bytes calldata payload) public view returns (bool) {
        if (target == address(this)) return true;
        if (target != address(TIMELOCK) || payload.length != 68) return false;
        if (bytes4(payload[:4]) != IAccessControl.revokeRole.selector) return false;
        (bytes32 role, address account) = abi.decode(payload[4:], (bytes32, address));
        return role == TIMELOCK.CANCELLER_ROLE() && account == address(this);
    }

    function _setTerm(uint64 expiresAt_) private {
        if (expiresAt_ < block.timestamp || expiresAt_ > block.timestamp + MAX_TERM) {
            revert GuardianInvalidTerm(expiresAt_);
        }
        expiresAt = expiresAt_;
        emit GuardianTermSet(expiresAt_);
    }
}
