// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IKmsRegistry} from "../../contracts/interfaces/IKmsRegistry.sol";
import {KeyChain} from "../../contracts/libraries/KeyChain.sol";
import {KeyChainHarness} from "../harnesses/KeyChainHarness.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {Test} from "forge-std/Test.sol";

/// @notice `GetKey` signature chains made by the Rust side (test/data/getkey-vectors.json, checked
/// by `covenant-guest`'s `getkey` tests) verify on chain, and every substitution is refused.
contract KeyChainTest is Test {
    uint256 internal constant SECP256K1_N =
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;

    KeyChainHarness internal harness;
    string internal json;
    address internal registry;
    address internal root;

    function setUp() public {
        harness = new KeyChainHarness();
        json = vm.readFile("test/data/getkey-vectors.json");
        registry = vm.parseJsonAddress(json, ".registry");
        root = vm.parseJsonAddress(json, ".rootSigner");
        vm.chainId(vm.parseJsonUint(json, ".chainId"));
        _registryRoot(root);
    }

    function _registryRoot(address signer) internal {
        vm.etch(registry, hex"00");
        vm.mockCall(
            registry, abi.encodeCall(IKmsRegistry.kmsRootKeys, ()), abi.encode(signer, bytes(""), uint64(1))
        );
    }

    function _vector(uint256 i) internal view returns (KeyChain.PathKey memory k) {
        string memory p = string.concat(".paths[", vm.toString(i), "]");
        k.chainId = vm.parseJsonUint(json, ".chainId");
        k.registry = registry;
        k.app = vm.parseJsonAddress(json, ".app");
        k.keyGeneration = uint64(vm.parseJsonUint(json, ".keyGeneration"));
        k.path = bytes(vm.parseJsonString(json, string.concat(p, ".path")));
        k.pathKey = vm.parseJsonAddress(json, string.concat(p, ".address"));
        k.pathKeySignature = vm.parseJsonBytes(json, string.concat(p, ".signature"));
        k.appKey = vm.parseJsonAddress(json, ".appKey");
        k.appKeySignature = vm.parseJsonBytes(json, ".appKeySignature");
    }

    function _lengthOfPaths() internal view returns (uint256 n) {
        while (vm.keyExistsJson(json, string.concat(".paths[", vm.toString(n), "]"))) n++;
    }

    function test_EveryPublishedChainVerifiesAgainstTheRegistryRoot() public view {
        uint256 n = _lengthOfPaths();
        assertGt(n, 1);
        for (uint256 i = 0; i < n; i++) {
            KeyChain.PathKey memory k = _vector(i);
            assertEq(harness.exposed_rootSigner(k), root);
            harness.exposed_verify(k, IKmsRegistry(registry));
        }
    }

    function test_TheKeyOfOnePathIsNotTheKeyOfAnother() public {
        KeyChain.PathKey memory k = _vector(0);
        k.path = bytes("db/passwore");
        vm.expectPartialRevert(KeyChain.PathKeyNotSignedByAppKey.selector);
        harness.exposed_rootSigner(k);
        // Swapping in another vector's key (or signature) for this path.
        k = _vector(0);
        k.pathKey = _vector(1).pathKey;
        vm.expectPartialRevert(KeyChain.PathKeyNotSignedByAppKey.selector);
        harness.exposed_rootSigner(k);
    }

    function test_AnotherAppOrGenerationBreaksTheChain() public {
        KeyChain.PathKey memory k = _vector(0);
        k.app = address(0xBEEF);
        vm.expectPartialRevert(KeyChain.PathKeyNotSignedByAppKey.selector);
        harness.exposed_rootSigner(k);
        k = _vector(0);
        k.keyGeneration = 2;
        vm.expectPartialRevert(KeyChain.PathKeyNotSignedByAppKey.selector);
        harness.exposed_rootSigner(k);
    }

    function test_AnAppKeyNotSignedByTheRegistryRootIsRefused() public {
        // A key the attacker holds signs a path key; the attacker signs its own app key with a
        // root of its own: the chain is consistent but ends at another root.
        uint256 fakeRoot = 0xA11CE;
        uint256 fakeApp = 0xB0B;
        KeyChain.PathKey memory k = _vector(0);
        k.appKey = vm.addr(fakeApp);
        k.pathKey = vm.addr(0xC0FFEE);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(
            fakeApp, KeyChain.pathKeyDigest(k.chainId, k.registry, k.app, k.keyGeneration, k.path, k.pathKey)
        );
        k.pathKeySignature = abi.encodePacked(r, s, v);
        (v, r, s) =
            vm.sign(fakeRoot, KeyChain.appKeyDigest(k.chainId, k.registry, k.app, k.keyGeneration, k.appKey));
        k.appKeySignature = abi.encodePacked(r, s, v);
        assertEq(harness.exposed_rootSigner(k), vm.addr(fakeRoot));
        vm.expectRevert(abi.encodeWithSelector(KeyChain.NotTheRegistryRoot.selector, vm.addr(fakeRoot), root));
        harness.exposed_verify(k, IKmsRegistry(registry));
        // And after a root rotation, the old root's chains no longer verify.
        _registryRoot(address(0x1234));
        vm.expectRevert(abi.encodeWithSelector(KeyChain.NotTheRegistryRoot.selector, root, address(0x1234)));
        harness.exposed_verify(_vector(0), IKmsRegistry(registry));
    }

    function test_AnotherDeploymentIsRefused() public {
        KeyChain.PathKey memory k = _vector(0);
        vm.chainId(1);
        vm.expectRevert(abi.encodeWithSelector(KeyChain.OtherDeployment.selector, k.chainId, k.registry));
        harness.exposed_verify(k, IKmsRegistry(registry));
        vm.chainId(k.chainId);
        vm.expectRevert(abi.encodeWithSelector(KeyChain.OtherDeployment.selector, k.chainId, k.registry));
        harness.exposed_verify(k, IKmsRegistry(address(0xDEAD)));
    }

    function test_MalleableAndMalformedSignaturesAreRefused() public {
        KeyChain.PathKey memory k = _vector(0);
        bytes memory sig = k.pathKeySignature;
        bytes32 r;
        bytes32 s;
        uint8 v = uint8(sig[64]);
        assembly {
            r := mload(add(sig, 32))
            s := mload(add(sig, 64))
        }
        bytes32 highS = bytes32(SECP256K1_N - uint256(s));
        k.pathKeySignature = abi.encodePacked(r, highS, v == 27 ? uint8(28) : uint8(27));
        vm.expectRevert(abi.encodeWithSelector(ECDSA.ECDSAInvalidSignatureS.selector, highS));
        harness.exposed_rootSigner(k);
        k.pathKeySignature = abi.encodePacked(r, s);
        vm.expectRevert(abi.encodeWithSelector(ECDSA.ECDSAInvalidSignatureLength.selector, 64));
        harness.exposed_rootSigner(k);
    }
}
