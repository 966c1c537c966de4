// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {BootInfo, IAppPolicy} from "../../contracts/interfaces/BootPolicy.sol";

/// A custom app policy that allows one instance only: its decision depends on the instance id,
/// so the kms-oracle must ask it about every instance (no sharing of answers between instances).
contract InstanceAllowlistPolicy is IAppPolicy {
    bytes20 public immutable allowedInstance;

    constructor(bytes20 allowedInstance_) {
        allowedInstance = allowedInstance_;
    }

    function isAppAllowed(BootInfo calldata boot) external view returns (bool, string memory) {
        if (boot.appId != address(this)) return (false, "app id mismatch");
        if (boot.instanceId != allowedInstance) return (false, "instance not allowed");
        return (true, "");
    }
}
