// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {BootInfo, IAppPolicy} from "../../contracts/interfaces/BootPolicy.sol";

/// A custom app policy with an `owner()` and a `frozen()` that always says true: custom apps are not
/// subject to the factory app's freeze, so the domain registry must ignore it.
contract OwnedAppPolicy is IAppPolicy {
    address public immutable owner;

    constructor(address owner_) {
        owner = owner_;
    }

    function frozen() external pure returns (bool) {
        return true;
    }

    function isAppAllowed(BootInfo calldata boot) external view returns (bool, string memory) {
        if (boot.appId != address(this)) return (false, "app id mismatch");
        return (true, "");
    }
}
