// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Provenance} from "../interfaces/BootPolicy.sol";

/// @title ProvenanceLib
/// @notice Bounds and digests the {Provenance} of an allowed artefact. Bounds keep every event that
/// carries a provenance small enough for the indexer and for block gas limits.
library ProvenanceLib {
    /// @notice The longest accepted source URL, in bytes.
    uint256 internal constant MAX_SOURCE_URL = 512;
    /// @notice The longest accepted source commit, in bytes.
    uint256 internal constant MAX_SOURCE_COMMIT = 128;
    /// @notice The most artefact digests one provenance may list.
    uint256 internal constant MAX_ARTIFACT_DIGESTS = 32;

    /// @notice The source URL is empty or longer than {MAX_SOURCE_URL}.
    error ProvenanceSourceUrlLength(uint256 length);
    /// @notice The source commit is empty or longer than {MAX_SOURCE_COMMIT}.
    error ProvenanceSourceCommitLength(uint256 length);
    /// @notice More than {MAX_ARTIFACT_DIGESTS} artefact digests.
    error ProvenanceTooManyDigests(uint256 count);
    /// @notice The artefact digest at `index` is zero.
    error ProvenanceZeroDigest(uint256 index);

    /// @notice Checks the bounds of `p` and returns keccak256 of its ABI encoding.
    /// @dev Reverts with one of this library's errors when a bound is broken.
    /// @param p the provenance.
    /// @return the digest that registries store for the artefact.
    function checkedDigest(Provenance calldata p) internal pure returns (bytes32) {
        uint256 urlLength = bytes(p.sourceUrl).length;
        if (urlLength == 0 || urlLength > MAX_SOURCE_URL) revert ProvenanceSourceUrlLength(urlLength);
        uint256 commitLength = bytes(p.sourceCommit).length;
        if (commitLength == 0 || commitLength > MAX_SOURCE_COMMIT) {
            revert ProvenanceSourceCommitLength(commitLength);
        }
        uint256 count = p.artifactDigests.length;
        if (count > MAX_ARTIFACT_DIGESTS) revert ProvenanceTooManyDigests(count);
        for (uint256 i = 0; i < count; ++i) {
            if (p.artifactDigests[i] == bytes32(0)) revert ProvenanceZeroDigest(i);
        }
        return keccak256(abi.encode(p));
    }
}
