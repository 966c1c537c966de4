// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {KmsRegistry} from "../../contracts/registry/KmsRegistry.sol";

/// A next version of the registry for upgrade tests: it appends one field in its own namespace and
/// initialises it with `reinitializer(3)`.
contract KmsRegistryV2 is KmsRegistry {
    /// @custom:storage-location erc7201:covenant.storage.KmsRegistryV2
    struct V2Storage {
        uint256 answer;
    }

    // keccak256(abi.encode(uint256(keccak256("covenant.storage.KmsRegistryV2")) - 1)) & ~bytes32(uint256(0xff))
    bytes32 private constant V2_LOCATION = keccak256(
        abi.encode(uint256(keccak256("covenant.storage.KmsRegistryV2")) - 1)
    ) & ~bytes32(uint256(0xff));

    function initializeV3(uint256 answer_) external reinitializer(3) {
        _v2().answer = answer_;
    }

    function answer() external view returns (uint256) {
        return _v2().answer;
    }

    function version() external pure returns (uint256) {
        return 3;
    }

    function _v2() private pure returns (V2Storage storage $) {
        bytes32 location = V2_LOCATION;
        assembly {
            $.slot := location
        }
    }
}
