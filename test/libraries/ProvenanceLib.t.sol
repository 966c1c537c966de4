// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Provenance} from "../../contracts/interfaces/BootPolicy.sol";
import {ProvenanceLib} from "../../contracts/libraries/ProvenanceLib.sol";
import {ProvenanceLibHarness} from "../harnesses/ProvenanceLibHarness.sol";
import {Test} from "forge-std/Test.sol";

contract ProvenanceLibTest is Test {
    uint256 internal constant MAX_URL = 512;
    uint256 internal constant MAX_COMMIT = 128;
    uint256 internal constant MAX_DIGESTS = 32;

    ProvenanceLibHarness internal harness;

    function setUp() public {
        harness = new ProvenanceLibHarness();
    }

    // ---------------------------------------------------------------------------------------------
    // Bounds

    function test_BoundsAreTheDocumentedOnes() public view {
        assertEq(harness.exposed_maxSourceUrl(), MAX_URL);
        assertEq(harness.exposed_maxSourceCommit(), MAX_COMMIT);
        assertEq(harness.exposed_maxArtifactDigests(), MAX_DIGESTS);
    }

    function test_AcceptsAValidProvenance() public view {
        Provenance memory p = _valid();
        assertEq(harness.exposed_checkedDigest(p), keccak256(abi.encode(p)));
    }

    function test_AcceptsNoArtifactDigests() public view {
        Provenance memory p = _valid();
        p.artifactDigests = new bytes32[](0);
        assertEq(harness.exposed_checkedDigest(p), keccak256(abi.encode(p)));
    }

    function test_AcceptsEveryBoundExactly() public view {
        Provenance memory p = Provenance({
            sourceUrl: string(_filled(MAX_URL, "u")),
            sourceCommit: string(_filled(MAX_COMMIT, "c")),
            artifactDigests: _digests(MAX_DIGESTS, 1)
        });
        assertEq(harness.exposed_checkedDigest(p), keccak256(abi.encode(p)));
    }

    function test_AcceptsOneByteUrlAndCommit() public view {
        Provenance memory p = _valid();
        p.sourceUrl = "u";
        p.sourceCommit = "c";
        assertEq(harness.exposed_checkedDigest(p), keccak256(abi.encode(p)));
    }

    function test_RevertWhen_SourceUrlIsEmpty() public {
        Provenance memory p = _valid();
        p.sourceUrl = "";
        vm.expectRevert(abi.encodeWithSelector(ProvenanceLib.ProvenanceSourceUrlLength.selector, 0));
        harness.exposed_checkedDigest(p);
    }

    function test_RevertWhen_SourceUrlIsLongerThan512Bytes() public {
        Provenance memory p = _valid();
        p.sourceUrl = string(_filled(MAX_URL + 1, "u"));
        vm.expectRevert(abi.encodeWithSelector(ProvenanceLib.ProvenanceSourceUrlLength.selector, 513));
        harness.exposed_checkedDigest(p);
    }

    function test_RevertWhen_SourceCommitIsEmpty() public {
        Provenance memory p = _valid();
        p.sourceCommit = "";
        vm.expectRevert(abi.encodeWithSelector(ProvenanceLib.ProvenanceSourceCommitLength.selector, 0));
        harness.exposed_checkedDigest(p);
    }

    function test_RevertWhen_SourceCommitIsLongerThan128Bytes() public {
        Provenance memory p = _valid();
        p.sourceCommit = string(_filled(MAX_COMMIT + 1, "c"));
        vm.expectRevert(abi.encodeWithSelector(ProvenanceLib.ProvenanceSourceCommitLength.selector, 129));
        harness.exposed_checkedDigest(p);
    }

    function test_RevertWhen_MoreThan32ArtifactDigests() public {
        Provenance memory p = _valid();
        p.artifactDigests = _digests(MAX_DIGESTS + 1, 1);
        vm.expectRevert(abi.encodeWithSelector(ProvenanceLib.ProvenanceTooManyDigests.selector, 33));
        harness.exposed_checkedDigest(p);
    }

    function test_RevertWhen_FirstArtifactDigestIsZero() public {
        Provenance memory p = _valid();
        p.artifactDigests = _digests(3, 1);
        p.artifactDigests[0] = bytes32(0);
        vm.expectRevert(abi.encodeWithSelector(ProvenanceLib.ProvenanceZeroDigest.selector, 0));
        harness.exposed_checkedDigest(p);
    }

    function test_RevertWhen_LastOf32ArtifactDigestsIsZero() public {
        Provenance memory p = _valid();
        p.artifactDigests = _digests(MAX_DIGESTS, 1);
        p.artifactDigests[MAX_DIGESTS - 1] = bytes32(0);
        vm.expectRevert(abi.encodeWithSelector(ProvenanceLib.ProvenanceZeroDigest.selector, 31));
        harness.exposed_checkedDigest(p);
    }

    /// Several zero digests: the first one is reported.
    function test_RevertWhen_SeveralArtifactDigestsAreZero() public {
        Provenance memory p = _valid();
        p.artifactDigests = _digests(5, 1);
        p.artifactDigests[2] = bytes32(0);
        p.artifactDigests[4] = bytes32(0);
        vm.expectRevert(abi.encodeWithSelector(ProvenanceLib.ProvenanceZeroDigest.selector, 2));
        harness.exposed_checkedDigest(p);
    }

    /// Checks run in order: URL, commit, digest count, digests.
    function test_RevertWhen_SeveralBoundsBreak_ReportsTheFirstInOrder() public {
        Provenance memory p =
            Provenance({sourceUrl: "", sourceCommit: "", artifactDigests: new bytes32[](33)});
        vm.expectRevert(abi.encodeWithSelector(ProvenanceLib.ProvenanceSourceUrlLength.selector, 0));
        harness.exposed_checkedDigest(p);

        p.sourceUrl = "u";
        vm.expectRevert(abi.encodeWithSelector(ProvenanceLib.ProvenanceSourceCommitLength.selector, 0));
        harness.exposed_checkedDigest(p);

        p.sourceCommit = "c";
        vm.expectRevert(abi.encodeWithSelector(ProvenanceLib.ProvenanceTooManyDigests.selector, 33));
        harness.exposed_checkedDigest(p);

        p.artifactDigests = new bytes32[](32);
        vm.expectRevert(abi.encodeWithSelector(ProvenanceLib.ProvenanceZeroDigest.selector, 0));
        harness.exposed_checkedDigest(p);
    }

    // ---------------------------------------------------------------------------------------------
    // Digest

    /// The digest commits to every field: changing any one changes it.
    function test_DigestChangesWithEveryField() public view {
        Provenance memory p = _valid();
        bytes32 base = harness.exposed_checkedDigest(p);

        Provenance memory q = _valid();
        q.sourceUrl = "https://git.example/other";
        assertNotEq(harness.exposed_checkedDigest(q), base);

        q = _valid();
        q.sourceCommit = "deadbeef";
        assertNotEq(harness.exposed_checkedDigest(q), base);

        q = _valid();
        q.artifactDigests[0] = bytes32(uint256(q.artifactDigests[0]) ^ 1);
        assertNotEq(harness.exposed_checkedDigest(q), base);

        q = _valid();
        q.artifactDigests = new bytes32[](0);
        assertNotEq(harness.exposed_checkedDigest(q), base);
    }

    /// Moving bytes between URL and commit changes the digest (the encoding is not a concatenation).
    function test_DigestSeparatesUrlFromCommit() public view {
        Provenance memory a = _valid();
        a.sourceUrl = "ab";
        a.sourceCommit = "c";
        Provenance memory b = _valid();
        b.sourceUrl = "a";
        b.sourceCommit = "bc";
        assertNotEq(harness.exposed_checkedDigest(a), harness.exposed_checkedDigest(b));
    }

    // ---------------------------------------------------------------------------------------------
    // Fuzz

    /// Any provenance within the bounds is accepted and digested as keccak256(abi.encode(p)).
    function testFuzz_DigestOfValidProvenance(
        uint256 urlLength,
        uint256 commitLength,
        uint256 count,
        uint256 seed
    ) public view {
        urlLength = bound(urlLength, 1, MAX_URL);
        commitLength = bound(commitLength, 1, MAX_COMMIT);
        count = bound(count, 0, MAX_DIGESTS);
        Provenance memory p = Provenance({
            sourceUrl: string(_random(urlLength, seed)),
            sourceCommit: string(_random(commitLength, seed ^ 1)),
            artifactDigests: _digests(count, seed)
        });
        assertEq(harness.exposed_checkedDigest(p), keccak256(abi.encode(p)));
    }

    /// Arbitrary lengths: accepted exactly when every bound holds, otherwise the first broken bound
    /// is reported with its value.
    function testFuzz_LengthsAcceptedIffWithinBounds(uint256 urlLength, uint256 commitLength, uint256 count)
        public
    {
        urlLength = bound(urlLength, 0, MAX_URL + 64);
        commitLength = bound(commitLength, 0, MAX_COMMIT + 64);
        count = bound(count, 0, MAX_DIGESTS + 8);
        Provenance memory p = Provenance({
            sourceUrl: string(_filled(urlLength, "u")),
            sourceCommit: string(_filled(commitLength, "c")),
            artifactDigests: _digests(count, 7)
        });
        if (urlLength == 0 || urlLength > MAX_URL) {
            vm.expectRevert(
                abi.encodeWithSelector(ProvenanceLib.ProvenanceSourceUrlLength.selector, urlLength)
            );
        } else if (commitLength == 0 || commitLength > MAX_COMMIT) {
            vm.expectRevert(
                abi.encodeWithSelector(ProvenanceLib.ProvenanceSourceCommitLength.selector, commitLength)
            );
        } else if (count > MAX_DIGESTS) {
            vm.expectRevert(abi.encodeWithSelector(ProvenanceLib.ProvenanceTooManyDigests.selector, count));
        } else {
            assertEq(harness.exposed_checkedDigest(p), keccak256(abi.encode(p)));
            return;
        }
        harness.exposed_checkedDigest(p);
    }

    /// A zero digest at any index `i` of up to 32 digests is reported at `i`.
    function testFuzz_RevertWhen_ZeroDigestAtIndex(uint256 count, uint256 index, uint256 seed) public {
        count = bound(count, 1, MAX_DIGESTS);
        index = bound(index, 0, count - 1);
        Provenance memory p = _valid();
        p.artifactDigests = _digests(count, seed);
        p.artifactDigests[index] = bytes32(0);
        vm.expectRevert(abi.encodeWithSelector(ProvenanceLib.ProvenanceZeroDigest.selector, index));
        harness.exposed_checkedDigest(p);
    }

    // ---------------------------------------------------------------------------------------------
    // Helpers

    function _valid() internal pure returns (Provenance memory p) {
        p.sourceUrl = "https://git.example/covenant/app";
        p.sourceCommit = "0123456789abcdef0123456789abcdef01234567";
        p.artifactDigests = new bytes32[](1);
        p.artifactDigests[0] = sha256("image");
    }

    function _filled(uint256 length, bytes1 c) internal pure returns (bytes memory b) {
        b = new bytes(length);
        for (uint256 i = 0; i < length; ++i) {
            b[i] = c;
        }
    }

    function _random(uint256 length, uint256 seed) internal pure returns (bytes memory b) {
        b = new bytes(length);
        for (uint256 i = 0; i < length; ++i) {
            b[i] = bytes1(uint8(uint256(keccak256(abi.encode(seed, i)))));
        }
    }

    /// `count` non-zero digests derived from `seed`.
    function _digests(uint256 count, uint256 seed) internal pure returns (bytes32[] memory d) {
        d = new bytes32[](count);
        for (uint256 i = 0; i < count; ++i) {
            d[i] = keccak256(abi.encode(seed, i)) | bytes32(uint256(1));
        }
    }
}
