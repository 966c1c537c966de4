// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {DomainName} from "../../contracts/libraries/DomainName.sol";

/// Exposes the internal library functions so tests can call them and expect reverts.
contract DomainNameHarness {
    function exposed_check(string memory name) external pure returns (DomainName.Defect, uint256) {
        return DomainName.check(name);
    }

    function exposed_requireNormalised(string memory name) external pure {
        DomainName.requireNormalised(name);
    }
}
