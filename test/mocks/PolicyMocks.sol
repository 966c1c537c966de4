// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {BootInfo, IAppPolicy} from "../../contracts/interfaces/BootPolicy.sol";

/// A custom policy that answers with a fixed verdict and reason.
contract FixedPolicy is IAppPolicy {
    bool internal immutable _ALLOWED;
    string internal _reason;

    constructor(bool allowed, string memory reason) {
        _ALLOWED = allowed;
        _reason = reason;
    }

    function isAppAllowed(BootInfo calldata) external view returns (bool, string memory) {
        return (_ALLOWED, _reason);
    }
}

/// A custom policy that always reverts.
contract RevertingPolicy is IAppPolicy {
    function isAppAllowed(BootInfo calldata) external pure returns (bool, string memory) {
        revert("broken policy");
    }
}
