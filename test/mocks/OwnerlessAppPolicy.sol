// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {BootInfo, IAppPolicy} from "../../contracts/interfaces/BootPolicy.sol";

/// A custom app policy with no `owner()`: it allows every boot of itself.
contract OwnerlessAppPolicy is IAppPolicy {
    function isAppAllowed(BootInfo calldata boot) external view returns (bool, string memory) {
        if (boot.appId != address(this)) return (false, "app id mismatch");
        return (true, "");
    }
}
