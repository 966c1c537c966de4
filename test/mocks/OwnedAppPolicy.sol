// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {BootInfo, IAppPolicy} from "../../contracts/interfaces/BootPolicy.sol";

/// A custom app policy with an `owner()` and a `frozen()` fixed at construction: the domain
/// registry honours a custom app's freeze as it does a factory app's.
contract OwnedAppPolicy is IAppPolicy {
    address public immutable owner;
    bool public immutable frozen;

    constructor(address owner_, bool frozen_) {
        owner = owner_;
        frozen = frozen_;
    }

    function isAppAllowed(BootInfo calldata boot) external view returns (bool, string memory) {
        if (boot.appId != address(this)) return (false, "app id mismatch");
        return (true, "");
    }
}
