// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {ERC20Votes} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Votes.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";

/// @title CovenantToken
/// @notice The governance token: its holders (after delegating) vote on every registry change.
/// The whole supply is minted at deployment; there is no later minting. Votes are checkpointed by
/// timestamp (`CLOCK_MODE` is `mode=timestamp`), so governance periods are in seconds.
contract CovenantToken is ERC20, ERC20Permit, ERC20Votes {
    /// @notice `holders` and `amounts` differ in length.
    error CovenantTokenAllocationMismatch(uint256 holders, uint256 amounts);

    /// @param name_ the token name (also the EIP-712 domain name).
    /// @param symbol_ the token symbol.
    /// @param holders the initial holders.
    /// @param amounts the amount minted to each holder, index for index.
    constructor(
        string memory name_,
        string memory symbol_,
        address[] memory holders,
        uint256[] memory amounts
    ) ERC20(name_, symbol_) ERC20Permit(name_) {
        if (holders.length != amounts.length) {
            revert CovenantTokenAllocationMismatch(holders.length, amounts.length);
        }
        for (uint256 i = 0; i < holders.length; ++i) {
            _mint(holders[i], amounts[i]);
        }
    }

    /// @notice The current timepoint of vote checkpoints: the block timestamp.
    /// @return the timestamp.
    function clock() public view override returns (uint48) {
        return uint48(block.timestamp);
    }

    /// @notice The clock mode (EIP-6372).
    /// @return `mode=timestamp`.
    // solhint-disable-next-line func-name-mixedcase
    function CLOCK_MODE() public pure override returns (string memory) {
        return "mode=timestamp";
    }

    /// @inheritdoc ERC20Permit
    function nonces(address owner) public view override(ERC20Permit, Nonces) returns (uint256) {
        return super.nonces(owner);
    }

    function _update(address from, address to, uint256 value) internal override(ERC20, ERC20Votes) {
        super._update(from, to, value);
    }
}
