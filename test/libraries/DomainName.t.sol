// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {DomainName} from "../../contracts/libraries/DomainName.sol";
import {DomainNameHarness} from "../harnesses/DomainNameHarness.sol";
import {Test} from "forge-std/Test.sol";

contract DomainNameTest is Test {
    DomainNameHarness internal harness;

    bytes internal constant LABEL_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789-";

    function setUp() public {
        harness = new DomainNameHarness();
    }

    function assertDefect(string memory name, DomainName.Defect expected, uint256 position) internal view {
        (DomainName.Defect defect, uint256 offset) = harness.exposed_check(name);
        assertEq(uint256(defect), uint256(expected), name);
        assertEq(offset, position, name);
    }

    function test_AcceptsNormalisedNames() public view {
        assertDefect("example.com", DomainName.Defect.None, 0);
        assertDefect("a.b", DomainName.Defect.None, 0);
        assertDefect("0x1234-app.gateway.covenant.test", DomainName.Defect.None, 0);
        assertDefect("xn--bcher-kva.example", DomainName.Defect.None, 0);
        assertDefect("123.example", DomainName.Defect.None, 0);
        assertDefect("example.c0m", DomainName.Defect.None, 0);
    }

    function test_RejectsEmptyName() public view {
        assertDefect("", DomainName.Defect.Empty, 0);
    }

    function test_RejectsNamesLongerThan253Bytes() public view {
        string memory longest = _repeatLabels(4, 63); // 4 * 63 + 3 dots = 255
        assertDefect(longest, DomainName.Defect.TooLong, 255);
        string memory fits = string.concat(_label(63), ".", _label(63), ".", _label(63), ".", _label(61));
        assertEq(bytes(fits).length, 253);
        assertDefect(fits, DomainName.Defect.None, 0);
    }

    function test_RejectsEmptyLabels() public view {
        assertDefect(".example.com", DomainName.Defect.EmptyLabel, 0);
        assertDefect("example..com", DomainName.Defect.EmptyLabel, 8);
        assertDefect("example.com.", DomainName.Defect.EmptyLabel, 12);
    }

    function test_RejectsLabelsLongerThan63Bytes() public view {
        assertDefect(string.concat(_label(64), ".com"), DomainName.Defect.LabelTooLong, 0);
        assertDefect(string.concat("www.", _label(64), ".com"), DomainName.Defect.LabelTooLong, 4);
        assertDefect(string.concat(_label(63), ".com"), DomainName.Defect.None, 0);
    }

    function test_RejectsCharactersOutsideTheNormalisedAlphabet() public view {
        assertDefect("Example.com", DomainName.Defect.InvalidCharacter, 0);
        assertDefect("example.coM", DomainName.Defect.InvalidCharacter, 10);
        assertDefect("exa_mple.com", DomainName.Defect.InvalidCharacter, 3);
        assertDefect("exa mple.com", DomainName.Defect.InvalidCharacter, 3);
        assertDefect("*.example.com", DomainName.Defect.InvalidCharacter, 0);
        assertDefect(unicode"bücher.example", DomainName.Defect.InvalidCharacter, 1);
    }

    function test_RejectsHyphenAtLabelEdges() public view {
        assertDefect("-example.com", DomainName.Defect.HyphenAtLabelEdge, 0);
        assertDefect("example-.com", DomainName.Defect.HyphenAtLabelEdge, 7);
        assertDefect("example.-com", DomainName.Defect.HyphenAtLabelEdge, 8);
        assertDefect("a.b-", DomainName.Defect.HyphenAtLabelEdge, 3);
        assertDefect("-.com", DomainName.Defect.HyphenAtLabelEdge, 0);
    }

    function test_RejectsSingleLabel() public view {
        assertDefect("localhost", DomainName.Defect.SingleLabel, 9);
    }

    function test_RejectsNumericTopLevelLabel() public view {
        assertDefect("127.0.0.1", DomainName.Defect.NumericTopLevelLabel, 8);
        assertDefect("example.123", DomainName.Defect.NumericTopLevelLabel, 8);
    }

    function test_RevertWhen_RequireNormalisedGetsAnInvalidName() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                DomainName.DomainNameInvalid.selector, DomainName.Defect.InvalidCharacter, 0
            )
        );
        harness.exposed_requireNormalised("Example.com");
    }

    function test_RequireNormalisedAcceptsAValidName() public view {
        harness.exposed_requireNormalised("app.example.com");
        (DomainName.Defect defect,) = harness.exposed_check("app.example.com");
        assertEq(uint256(defect), uint256(DomainName.Defect.None));
    }

    /// Any name built from valid labels is accepted.
    function testFuzz_AcceptsGeneratedValidNames(uint256 seed, uint8 labelCount) public view {
        string memory name = _validName(seed, bound(labelCount, 2, 4));
        assertDefect(name, DomainName.Defect.None, 0);
    }

    /// Replacing any byte of a valid name by one outside the alphabet is caught at exactly that byte.
    function testFuzz_RejectsAnyForeignByteAtItsPosition(uint256 seed, uint256 where, uint8 foreign)
        public
        view
    {
        bytes memory name = bytes(_validName(seed, 3));
        where = bound(where, 0, name.length - 1);
        bytes1 replacement = bytes1(foreign);
        // Move alphabet bytes and the dot above 0x7f, where every byte is foreign.
        if (_inAlphabet(replacement) || replacement == ".") replacement |= 0x80;
        name[where] = replacement;
        assertDefect(string(name), DomainName.Defect.InvalidCharacter, where);
    }

    /// `check` is total: arbitrary bytes never revert, and whatever it accepts is lower-case ASCII
    /// with a dot, within the length bound.
    function testFuzz_CheckIsTotalAndAcceptsOnlyTheAlphabet(bytes calldata raw) public view {
        (DomainName.Defect defect,) = harness.exposed_check(string(raw));
        if (defect != DomainName.Defect.None) return;
        assertLe(raw.length, DomainName.MAX_LENGTH);
        bool sawDot;
        for (uint256 i = 0; i < raw.length; ++i) {
            assertTrue(_inAlphabet(raw[i]) || raw[i] == ".");
            sawDot = sawDot || raw[i] == ".";
        }
        assertTrue(sawDot);
    }

    function _validName(uint256 seed, uint256 labels) internal pure returns (string memory name) {
        for (uint256 l = 0; l < labels; ++l) {
            seed = uint256(keccak256(abi.encode(seed, l)));
            uint256 length = 1 + (seed % 40);
            bytes memory label = new bytes(length);
            for (uint256 i = 0; i < length; ++i) {
                uint256 pick = uint256(keccak256(abi.encode(seed, i))) % LABEL_ALPHABET.length;
                bool edge = i == 0 || i == length - 1;
                // Edges may not be hyphens; the last label must contain a letter.
                if (edge && LABEL_ALPHABET[pick] == "-") pick = 0;
                if (l == labels - 1 && i == 0) pick = pick % 26;
                label[i] = LABEL_ALPHABET[pick];
            }
            name = l == 0 ? string(label) : string.concat(name, ".", string(label));
        }
    }

    function _inAlphabet(bytes1 c) internal pure returns (bool) {
        return (c >= "a" && c <= "z") || (c >= "0" && c <= "9") || c == "-";
    }

    function _label(uint256 length) internal pure returns (string memory) {
        bytes memory label = new bytes(length);
        for (uint256 i = 0; i < length; ++i) {
            label[i] = "a";
        }
        return string(label);
    }

    function _repeatLabels(uint256 count, uint256 length) internal pure returns (string memory name) {
        name = _label(length);
        for (uint256 i = 1; i < count; ++i) {
            name = string.concat(name, ".", _label(length));
        }
    }
}
