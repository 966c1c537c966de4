// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IKmsRegistry} from "../../contracts/interfaces/IKmsRegistry.sol";
import {KeyChain} from "../../contracts/libraries/KeyChain.sol";

/// @notice Exposes {KeyChain}'s internal functions so tests can call them and expect reverts.
contract KeyChainHarness {
    function exposed_rootSigner(KeyChain.PathKey memory k) external pure returns (address) {
        return KeyChain.rootSigner(k);
    }

    function exposed_verify(KeyChain.PathKey memory k, IKmsRegistry registry) external view {
        KeyChain.verify(k, registry);
    }
}
