// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title DomainName
/// @notice Checks that a DNS name is in the one normalised form Covenant stores on chain, so that
/// a domain has exactly one spelling and the gateway, the indexer and users compare names byte for
/// byte. Normalised means: lower-case ASCII letters, digits and hyphens in dot-separated labels
/// (internationalised names in their `xn--` form), each label 1-63 bytes and not starting or ending
/// with a hyphen, at least two labels, a top-level label that is not all digits (so an IPv4 address
/// is never a domain), at most 253 bytes, and no trailing dot.
/// @dev Pure and allocation-free; cost is linear in the length, which is bounded by {MAX_LENGTH}.
library DomainName {
    /// @notice The longest normalised name, in bytes (RFC 1035 without the trailing dot).
    uint256 internal constant MAX_LENGTH = 253;
    /// @notice The longest label, in bytes (RFC 1035).
    uint256 internal constant MAX_LABEL_LENGTH = 63;

    /// @notice What makes a name not normalised. `None` means the name is valid.
    enum Defect {
        None,
        Empty,
        TooLong,
        EmptyLabel,
        LabelTooLong,
        InvalidCharacter,
        HyphenAtLabelEdge,
        SingleLabel,
        NumericTopLevelLabel
    }

    /// @notice The name is not normalised.
    /// @param defect the first rule the name breaks.
    /// @param position the byte offset where the check failed (the name's length for whole-name rules).
    error DomainNameInvalid(Defect defect, uint256 position);

    /// @notice Reverts with {DomainNameInvalid} unless `name` is a normalised domain name.
    /// @param name the candidate name.
    function requireNormalised(string memory name) internal pure {
        (Defect defect, uint256 position) = check(name);
        if (defect != Defect.None) revert DomainNameInvalid(defect, position);
    }

    /// @notice Returns the first rule `name` breaks and where, or `(Defect.None, 0)` if it is normalised.
    /// @param name the candidate name.
    /// @return defect the first broken rule, scanning left to right; whole-name rules come first.
    /// @return position the byte offset of the failure (the name's length for whole-name rules).
    function check(string memory name) internal pure returns (Defect defect, uint256 position) {
        bytes memory b = bytes(name);
        uint256 length = b.length;
        if (length == 0) return (Defect.Empty, 0);
        if (length > MAX_LENGTH) return (Defect.TooLong, length);

        uint256 labelStart = 0;
        uint256 labels = 0;
        bool labelAllDigits = true;
        for (uint256 i = 0; i <= length; ++i) {
            if (i == length || b[i] == ".") {
                uint256 labelLength = i - labelStart;
                if (labelLength == 0) return (Defect.EmptyLabel, i);
                if (labelLength > MAX_LABEL_LENGTH) return (Defect.LabelTooLong, labelStart);
                if (b[labelStart] == "-") return (Defect.HyphenAtLabelEdge, labelStart);
                if (b[i - 1] == "-") return (Defect.HyphenAtLabelEdge, i - 1);
                ++labels;
                if (i == length) break;
                labelStart = i + 1;
                labelAllDigits = true;
                continue;
            }
            bytes1 c = b[i];
            bool isDigit = c >= "0" && c <= "9";
            if (!isDigit && !(c >= "a" && c <= "z") && c != "-") return (Defect.InvalidCharacter, i);
            if (!isDigit) labelAllDigits = false;
        }
        if (labels < 2) return (Defect.SingleLabel, length);
        if (labelAllDigits) return (Defect.NumericTopLevelLabel, labelStart);
        return (Defect.None, 0);
    }
}
