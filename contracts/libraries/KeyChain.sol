// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IKmsRegistry} from "../interfaces/IKmsRegistry.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/// @title KeyChain
/// @notice Verifies on chain that a key an app instance handed out by `GetKey(path)` belongs to that
/// app: the app's key signed the path key, and the KMS root signer signed the app's key
/// (docs/guest.md, "GetKey"). Digests are `keccak256(abi.encodePacked(...))` with a domain string
/// first, byte for byte what the Rust side signs (`covenant_kms_api::signatures`); signatures are
/// 65 bytes `r ‖ s ‖ v` in OpenZeppelin's canonical form (low `s`, `v` 27 or 28).
library KeyChain {
    /// @notice A path key and the signatures that chain it to a KMS root.
    struct PathKey {
        /// The chain of the KMS deployment.
        uint256 chainId;
        /// Its `KmsRegistry` proxy.
        address registry;
        /// The app.
        address app;
        /// The app's key generation.
        uint64 keyGeneration;
        /// The path as the app asked for it.
        bytes path;
        /// The path key's address.
        address pathKey;
        /// The app key's signature over {pathKeyDigest}.
        bytes pathKeySignature;
        /// The app key's address.
        address appKey;
        /// The KMS root signer's signature over {appKeyDigest}.
        bytes appKeySignature;
    }

    /// @notice The path key was not signed by the app key it names.
    error PathKeyNotSignedByAppKey(address recovered, address appKey);
    /// @notice The chain is about another deployment than the registry asked.
    error OtherDeployment(uint256 chainId, address registry);
    /// @notice The root that signed the app key is not the registry's root signer.
    error NotTheRegistryRoot(address recovered, address rootSigner);

    /// @notice What the KMS root signer signs for an app's secp256k1 key.
    function appKeyDigest(
        uint256 chainId,
        address registry,
        address app,
        uint64 keyGeneration,
        address appKey
    ) internal pure returns (bytes32) {
        return keccak256(
            abi.encodePacked("covenant-app-key-v1", chainId, registry, app, keyGeneration, appKey)
        );
    }

    /// @notice What an app's key signs for the key of `path`.
    function pathKeyDigest(
        uint256 chainId,
        address registry,
        address app,
        uint64 keyGeneration,
        bytes memory path,
        address pathKey
    ) internal pure returns (bytes32) {
        return keccak256(
            abi.encodePacked(
                "covenant-path-key-v1", chainId, registry, app, keyGeneration, keccak256(path), pathKey
            )
        );
    }

    /// @notice The root signer `k` chains up to. Reverts when the path key is not the app key's.
    function rootSigner(PathKey memory k) internal pure returns (address) {
        bytes32 pathDigest = pathKeyDigest(k.chainId, k.registry, k.app, k.keyGeneration, k.path, k.pathKey);
        address signer = ECDSA.recover(pathDigest, k.pathKeySignature);
        if (signer != k.appKey) revert PathKeyNotSignedByAppKey(signer, k.appKey);
        return ECDSA.recover(
            appKeyDigest(k.chainId, k.registry, k.app, k.keyGeneration, k.appKey), k.appKeySignature
        );
    }

    /// @notice Reverts unless `k` is about `registry` on this chain and chains up to the root signer
    /// `registry` has now. (The app's current key generation is the app's business: compare
    /// `k.keyGeneration` with `IApp(k.app).keyGeneration()` where an old generation must not count.)
    function verify(PathKey memory k, IKmsRegistry registry) internal view {
        if (k.chainId != block.chainid || k.registry != address(registry)) {
            revert OtherDeployment(k.chainId, k.registry);
        }
        (address root,,) = registry.kmsRootKeys();
        address recovered = rootSigner(k);
        if (recovered != root) revert NotTheRegistryRoot(recovered, root);
    }
}
