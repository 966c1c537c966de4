// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Provenance} from "../../contracts/interfaces/BootPolicy.sol";
import {IApp} from "../../contracts/interfaces/IApp.sol";

/// Benchmark helper: owns apps and adds compose hashes to them in bulk, so a chain with hundreds
/// of thousands of real registry events (`App.ComposeHashAdded`) can be made quickly. Used by
/// `bench/indexer`; never deployed outside a benchmark.
contract ComposeHashFlood {
    /// Adds `count` compose hashes `keccak256(abi.encode(app, i))` for i in `from..from+count`.
    function flood(IApp app, uint256 from, uint256 count) external {
        bytes32[] memory digests = new bytes32[](1);
        digests[0] = keccak256("image");
        Provenance memory provenance = Provenance({
            sourceUrl: "https://git.example/bench", sourceCommit: "0123456789abcdef", artifactDigests: digests
        });
        for (uint256 i = from; i < from + count; ++i) {
            app.addComposeHash(keccak256(abi.encode(app, i)), provenance);
        }
    }
}
