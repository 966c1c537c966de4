// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Provenance} from "../../contracts/interfaces/BootPolicy.sol";
import {ProvenanceLib} from "../../contracts/libraries/ProvenanceLib.sol";

/// Exposes the internal library function so tests can call it with calldata and expect reverts.
contract ProvenanceLibHarness {
    function exposed_checkedDigest(Provenance calldata p) external pure returns (bytes32) {
        return ProvenanceLib.checkedDigest(p);
    }

    function exposed_maxSourceUrl() external pure returns (uint256) {
        return ProvenanceLib.MAX_SOURCE_URL;
    }

    function exposed_maxSourceCommit() external pure returns (uint256) {
        return ProvenanceLib.MAX_SOURCE_COMMIT;
    }

    function exposed_maxArtifactDigests() external pure returns (uint256) {
        return ProvenanceLib.MAX_ARTIFACT_DIGESTS;
    }
}
