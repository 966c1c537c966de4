// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Provenance} from "../../contracts/interfaces/BootPolicy.sol";
import {IApp} from "../../contracts/interfaces/IApp.sol";
import {IKmsRegistry} from "../../contracts/interfaces/IKmsRegistry.sol";

/// Benchmark helper: creates apps in bulk through the registry's permissionless factory, so a chain
/// with tens of thousands of apps can be made quickly. Used by `bench/indexer`; never deployed
/// outside a benchmark.
contract AppFlood {
    /// Creates `count` apps owned by `owner`, each allowing one compose hash on any device.
    function createApps(IKmsRegistry registry, address owner, uint256 count) external {
        bytes32[] memory digests = new bytes32[](1);
        digests[0] = keccak256("image");
        IApp.AppInit memory init;
        init.composeHashes = new bytes32[](1);
        init.provenances = new Provenance[](1);
        init.provenances[0] = Provenance({
            sourceUrl: "https://git.example/bench", sourceCommit: "0123456789abcdef", artifactDigests: digests
        });
        init.anyDevice = true;
        init.allowedTeeKinds = 0x0e;
        for (uint256 i = 0; i < count; ++i) {
            init.composeHashes[0] = keccak256(abi.encode(address(this), i));
            registry.createApp(owner, init);
        }
    }
}
