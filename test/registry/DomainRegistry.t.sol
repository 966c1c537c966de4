// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IDomainRegistry} from "../../contracts/interfaces/IDomainRegistry.sol";
import {IKmsRegistry} from "../../contracts/interfaces/IKmsRegistry.sol";
import {DomainName} from "../../contracts/libraries/DomainName.sol";
import {App} from "../../contracts/registry/App.sol";
import {DomainRegistry} from "../../contracts/registry/DomainRegistry.sol";
import {KmsRegistry} from "../../contracts/registry/KmsRegistry.sol";
import {FallbackAppPolicy} from "../mocks/FallbackAppPolicy.sol";
import {OwnedAppPolicy} from "../mocks/OwnedAppPolicy.sol";
import {OwnerlessAppPolicy} from "../mocks/OwnerlessAppPolicy.sol";
import {CovenantFixture} from "../utils/CovenantFixture.sol";
import {
    Ownable2StepUpgradeable
} from "@openzeppelin/contracts-upgradeable/access/Ownable2StepUpgradeable.sol";
import {OwnableUpgradeable} from "@openzeppelin/contracts-upgradeable/access/OwnableUpgradeable.sol";
import {IERC1967} from "@openzeppelin/contracts/interfaces/IERC1967.sol";
import {ERC1967Utils} from "@openzeppelin/contracts/proxy/ERC1967/ERC1967Utils.sol";
import {Initializable} from "@openzeppelin/contracts/proxy/utils/Initializable.sol";
import {UUPSUpgradeable} from "@openzeppelin/contracts/proxy/utils/UUPSUpgradeable.sol";

/// The deployed domain registry and one factory app owned by `appOwner`.
abstract contract DomainRegistryTestBase is CovenantFixture {
    string internal constant DOMAIN = "app.example.com";
    string internal constant OTHER_DOMAIN = "www.example.org";

    App internal app;
    address internal newOwner = makeAddr("newOwner");

    function setUp() public virtual override {
        super.setUp();
        app = _createApp();
    }

    function _hash(string memory domain) internal pure returns (bytes32) {
        return keccak256(bytes(domain));
    }

    /// `target`'s owner claims `domain` for it.
    function _claim(string memory domain, address target) internal {
        vm.prank(App(target).owner());
        domains.claimDomain(domain, target);
    }

    function _notClaimed(string memory domain, address target) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(IDomainRegistry.DomainRegistryNotClaimed.selector, domain, target);
    }

    /// The registry's ERC-7201 namespace.
    function _location() internal pure returns (bytes32) {
        return keccak256(abi.encode(uint256(keccak256("covenant.storage.DomainRegistry")) - 1))
            & ~bytes32(uint256(0xff));
    }

    /// Writes a wave-1 binding of `domain` to `target`, as a registry upgraded from wave 1 holds it
    /// (the `apps` mapping, first in the namespace).
    function _storeWave1Binding(string memory domain, address target) internal {
        vm.store(
            address(domains),
            keccak256(abi.encode(_hash(domain), _location())),
            bytes32(uint256(uint160(target)))
        );
    }

    function _wave1Binding(string memory domain) internal view returns (address) {
        return address(
            uint160(uint256(vm.load(address(domains), keccak256(abi.encode(_hash(domain), _location())))))
        );
    }

    function _unauthorized(address caller) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(OwnableUpgradeable.OwnableUnauthorizedAccount.selector, caller);
    }

    function _notAppOwner(address target, address caller) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(IDomainRegistry.DomainRegistryNotAppOwner.selector, target, caller);
    }

    function _freezeApp() internal {
        vm.prank(appOwner);
        app.freeze();
    }

    function _repeat(bytes1 c, uint256 length) internal pure returns (string memory) {
        bytes memory b = new bytes(length);
        for (uint256 i = 0; i < length; ++i) {
            b[i] = c;
        }
        return string(b);
    }
}

// =================================================================================================
// claimDomain

contract DomainRegistryClaimTest is DomainRegistryTestBase {
    function test_ClaimDomain() public {
        vm.expectEmit(address(domains));
        emit IDomainRegistry.DomainClaimed(_hash(DOMAIN), DOMAIN, address(app));
        vm.prank(appOwner);
        domains.claimDomain(DOMAIN, address(app));
        assertTrue(domains.isClaimed(DOMAIN, address(app)));
        assertFalse(domains.isClaimed(OTHER_DOMAIN, address(app)));
    }

    function test_ClaimSeveralDomainsForOneApp() public {
        _claim(DOMAIN, address(app));
        vm.expectEmit(address(domains));
        emit IDomainRegistry.DomainClaimed(_hash(OTHER_DOMAIN), OTHER_DOMAIN, address(app));
        _claim(OTHER_DOMAIN, address(app));
        assertTrue(domains.isClaimed(DOMAIN, address(app)));
        assertTrue(domains.isClaimed(OTHER_DOMAIN, address(app)));
    }

    /// A subdomain is a different name: claiming one says nothing about the other.
    function test_ClaimSubdomainForAnotherApp() public {
        App other = App(registry.createApp(newOwner, _appInit()));
        _claim("example.com", address(app));
        _claim("api.example.com", address(other));
        assertTrue(domains.isClaimed("example.com", address(app)));
        assertFalse(domains.isClaimed("example.com", address(other)));
        assertTrue(domains.isClaimed("api.example.com", address(other)));
        assertFalse(domains.isClaimed("api.example.com", address(app)));
    }

    /// Any number of apps may claim one domain, and no claim blocks another: both stand. Which one
    /// the gateway serves is decided off chain, by the domain's `_covenant` TXT record.
    function test_TwoAppsClaimTheSameDomain() public {
        App other = App(registry.createApp(newOwner, _appInit()));
        _claim(DOMAIN, address(app));
        vm.expectEmit(address(domains));
        emit IDomainRegistry.DomainClaimed(_hash(DOMAIN), DOMAIN, address(other));
        _claim(DOMAIN, address(other));
        assertTrue(domains.isClaimed(DOMAIN, address(app)));
        assertTrue(domains.isClaimed(DOMAIN, address(other)));
    }

    /// One owner may claim a domain for several of its apps.
    function test_OneOwnerClaimsADomainForTwoOfItsApps() public {
        App other = _createApp();
        _claim(DOMAIN, address(app));
        _claim(DOMAIN, address(other));
        assertTrue(domains.isClaimed(DOMAIN, address(app)));
        assertTrue(domains.isClaimed(DOMAIN, address(other)));
    }

    /// Claiming follows the app's current owner.
    function test_ClaimDomainAfterOwnershipTransfer() public {
        vm.prank(appOwner);
        app.transferOwnership(newOwner);

        // The pending owner is not the owner yet.
        vm.prank(newOwner);
        vm.expectRevert(_notAppOwner(address(app), newOwner));
        domains.claimDomain(DOMAIN, address(app));

        vm.prank(newOwner);
        app.acceptOwnership();
        vm.prank(appOwner);
        vm.expectRevert(_notAppOwner(address(app), appOwner));
        domains.claimDomain(DOMAIN, address(app));

        vm.expectEmit(address(domains));
        emit IDomainRegistry.DomainClaimed(_hash(DOMAIN), DOMAIN, address(app));
        vm.prank(newOwner);
        domains.claimDomain(DOMAIN, address(app));
        assertTrue(domains.isClaimed(DOMAIN, address(app)));
    }

    /// Freezing an app locks nothing here: a frozen app's owner may still claim.
    function test_FrozenAppMayClaim() public {
        _freezeApp();
        vm.expectEmit(address(domains));
        emit IDomainRegistry.DomainClaimed(_hash(DOMAIN), DOMAIN, address(app));
        vm.prank(appOwner);
        domains.claimDomain(DOMAIN, address(app));
        assertTrue(domains.isClaimed(DOMAIN, address(app)));
    }

    /// A frozen app's claim does not block another app from claiming the same domain.
    function test_FrozenAppsClaimDoesNotBlockAnotherApp() public {
        _claim(DOMAIN, address(app));
        _freezeApp();
        App other = App(registry.createApp(newOwner, _appInit()));
        vm.expectEmit(address(domains));
        emit IDomainRegistry.DomainClaimed(_hash(DOMAIN), DOMAIN, address(other));
        vm.prank(newOwner);
        domains.claimDomain(DOMAIN, address(other));
        assertTrue(domains.isClaimed(DOMAIN, address(app)));
        assertTrue(domains.isClaimed(DOMAIN, address(other)));
    }

    function test_RevertWhen_DomainHasInvalidCharacter() public {
        vm.prank(appOwner);
        vm.expectRevert(
            abi.encodeWithSelector(
                DomainName.DomainNameInvalid.selector, DomainName.Defect.InvalidCharacter, 0
            )
        );
        domains.claimDomain("App.example.com", address(app));
    }

    function test_RevertWhen_DomainIsEmpty() public {
        vm.prank(appOwner);
        vm.expectRevert(
            abi.encodeWithSelector(DomainName.DomainNameInvalid.selector, DomainName.Defect.Empty, 0)
        );
        domains.claimDomain("", address(app));
    }

    function test_RevertWhen_DomainHasTrailingDot() public {
        vm.prank(appOwner);
        vm.expectRevert(
            abi.encodeWithSelector(DomainName.DomainNameInvalid.selector, DomainName.Defect.EmptyLabel, 16)
        );
        domains.claimDomain("app.example.com.", address(app));
    }

    function test_RevertWhen_DomainIsSingleLabel() public {
        vm.prank(appOwner);
        vm.expectRevert(
            abi.encodeWithSelector(DomainName.DomainNameInvalid.selector, DomainName.Defect.SingleLabel, 9)
        );
        domains.claimDomain("localhost", address(app));
    }

    function test_RevertWhen_DomainIsAnIpAddress() public {
        vm.prank(appOwner);
        vm.expectRevert(
            abi.encodeWithSelector(
                DomainName.DomainNameInvalid.selector, DomainName.Defect.NumericTopLevelLabel, 8
            )
        );
        domains.claimDomain("127.0.0.1", address(app));
    }

    function test_RevertWhen_DomainLabelStartsWithHyphen() public {
        vm.prank(appOwner);
        vm.expectRevert(
            abi.encodeWithSelector(
                DomainName.DomainNameInvalid.selector, DomainName.Defect.HyphenAtLabelEdge, 4
            )
        );
        domains.claimDomain("app.-example.com", address(app));
    }

    function test_RevertWhen_DomainLabelTooLong() public {
        string memory name = string.concat("app.", _repeat("a", 64), ".com");
        vm.prank(appOwner);
        vm.expectRevert(
            abi.encodeWithSelector(DomainName.DomainNameInvalid.selector, DomainName.Defect.LabelTooLong, 4)
        );
        domains.claimDomain(name, address(app));
    }

    function test_RevertWhen_DomainTooLong() public {
        string memory name = string.concat(
            _repeat("a", 63), ".", _repeat("b", 63), ".", _repeat("c", 63), ".", _repeat("d", 62)
        );
        assertEq(bytes(name).length, 254);
        vm.prank(appOwner);
        vm.expectRevert(
            abi.encodeWithSelector(DomainName.DomainNameInvalid.selector, DomainName.Defect.TooLong, 254)
        );
        domains.claimDomain(name, address(app));
    }

    /// The name is checked first, before the app and the caller.
    function test_RevertWhen_DomainInvalidAndAppUnregistered() public {
        vm.prank(stranger);
        vm.expectRevert(
            abi.encodeWithSelector(
                DomainName.DomainNameInvalid.selector, DomainName.Defect.InvalidCharacter, 3
            )
        );
        domains.claimDomain("app_x.example.com", address(0xBEEF));
    }

    function test_RevertWhen_AppNotRegistered() public {
        vm.prank(stranger);
        vm.expectRevert(
            abi.encodeWithSelector(IDomainRegistry.DomainRegistryAppNotRegistered.selector, address(0xBEEF))
        );
        domains.claimDomain(DOMAIN, address(0xBEEF));
    }

    function test_RevertWhen_AppIsZero() public {
        vm.prank(appOwner);
        vm.expectRevert(
            abi.encodeWithSelector(IDomainRegistry.DomainRegistryAppNotRegistered.selector, address(0))
        );
        domains.claimDomain(DOMAIN, address(0));
    }

    function test_RevertWhen_AppDeregistered() public {
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.deregisterApp, (address(app))));
        vm.prank(appOwner);
        vm.expectRevert(
            abi.encodeWithSelector(IDomainRegistry.DomainRegistryAppNotRegistered.selector, address(app))
        );
        domains.claimDomain(DOMAIN, address(app));
    }

    function test_RevertWhen_CallerNotAppOwner() public {
        vm.prank(stranger);
        vm.expectRevert(_notAppOwner(address(app), stranger));
        domains.claimDomain(DOMAIN, address(app));
        assertFalse(domains.isClaimed(DOMAIN, address(app)));
    }

    /// The owner of another app cannot claim in this app's name, even a domain its own app claims.
    function test_RevertWhen_OwnerOfAnotherAppClaims() public {
        App other = App(registry.createApp(newOwner, _appInit()));
        _claim(DOMAIN, address(other));
        vm.prank(newOwner);
        vm.expectRevert(_notAppOwner(address(app), newOwner));
        domains.claimDomain(DOMAIN, address(app));
        assertFalse(domains.isClaimed(DOMAIN, address(app)));
    }

    /// Governance cannot claim a domain for an app it does not own.
    function test_RevertWhen_RegistryOwnerClaimsForAnApp() public {
        vm.prank(address(timelock));
        vm.expectRevert(_notAppOwner(address(app), address(timelock)));
        domains.claimDomain(DOMAIN, address(app));
    }

    function test_RevertWhen_AppOwnershipRenounced() public {
        vm.prank(appOwner);
        app.renounceOwnership();
        vm.prank(appOwner);
        vm.expectRevert(_notAppOwner(address(app), appOwner));
        domains.claimDomain(DOMAIN, address(app));
    }

    /// On a frozen app, a stranger still gets the ownership error.
    function test_RevertWhen_StrangerClaimsForFrozenApp() public {
        _freezeApp();
        vm.prank(stranger);
        vm.expectRevert(_notAppOwner(address(app), stranger));
        domains.claimDomain(DOMAIN, address(app));
    }

    function test_RevertWhen_AlreadyClaimedByTheSameApp() public {
        _claim(DOMAIN, address(app));
        vm.prank(appOwner);
        vm.expectRevert(
            abi.encodeWithSelector(
                IDomainRegistry.DomainRegistryAlreadyClaimed.selector, DOMAIN, address(app)
            )
        );
        domains.claimDomain(DOMAIN, address(app));
    }

    /// A frozen app cannot claim the same domain twice either.
    function test_RevertWhen_FrozenAppClaimsTwice() public {
        _claim(DOMAIN, address(app));
        _freezeApp();
        vm.prank(appOwner);
        vm.expectRevert(
            abi.encodeWithSelector(
                IDomainRegistry.DomainRegistryAlreadyClaimed.selector, DOMAIN, address(app)
            )
        );
        domains.claimDomain(DOMAIN, address(app));
    }

    /// Any name built from valid labels is claimed, found under exactly that spelling, and released.
    function testFuzz_ClaimGeneratedValidDomain(uint256 seed, uint8 labelCount) public {
        string memory name = _validName(seed, bound(labelCount, 2, 4));
        vm.expectEmit(address(domains));
        emit IDomainRegistry.DomainClaimed(_hash(name), name, address(app));
        vm.prank(appOwner);
        domains.claimDomain(name, address(app));
        assertTrue(domains.isClaimed(name, address(app)));
        assertFalse(domains.isClaimed(string.concat(name, "."), address(app)));

        vm.prank(appOwner);
        vm.expectRevert(
            abi.encodeWithSelector(IDomainRegistry.DomainRegistryAlreadyClaimed.selector, name, address(app))
        );
        domains.claimDomain(name, address(app));

        vm.expectEmit(address(domains));
        emit IDomainRegistry.DomainClaimReleased(_hash(name), name, address(app), appOwner);
        vm.prank(appOwner);
        domains.releaseClaim(name, address(app));
        assertFalse(domains.isClaimed(name, address(app)));
    }

    /// Upper-casing any letter of a valid name makes it refused at that byte.
    function testFuzz_RevertWhen_UpperCaseLetter(uint256 seed, uint256 where) public {
        bytes memory name = bytes(_validName(seed, 3));
        where = bound(where, 0, name.length - 1);
        // Move to the next letter at or after `where` (every name ends with a letter-bearing label).
        while (!(name[where] >= "a" && name[where] <= "z")) {
            where = (where + 1) % name.length;
        }
        name[where] = bytes1(uint8(name[where]) - 32);
        vm.prank(appOwner);
        vm.expectRevert(
            abi.encodeWithSelector(
                DomainName.DomainNameInvalid.selector, DomainName.Defect.InvalidCharacter, where
            )
        );
        domains.claimDomain(string(name), address(app));
    }

    bytes internal constant LABEL_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789-";

    /// As in DomainName.t.sol: `labels` valid labels of 1-40 bytes, the last starting with a letter.
    function _validName(uint256 seed, uint256 labels) internal pure returns (string memory name) {
        for (uint256 l = 0; l < labels; ++l) {
            seed = uint256(keccak256(abi.encode(seed, l)));
            uint256 length = 1 + (seed % 40);
            bytes memory label = new bytes(length);
            for (uint256 i = 0; i < length; ++i) {
                uint256 pick = uint256(keccak256(abi.encode(seed, i))) % LABEL_ALPHABET.length;
                bool edge = i == 0 || i == length - 1;
                if (edge && LABEL_ALPHABET[pick] == "-") pick = 0;
                if (l == labels - 1 && i == 0) pick = pick % 26;
                label[i] = LABEL_ALPHABET[pick];
            }
            name = l == 0 ? string(label) : string.concat(name, ".", string(label));
        }
    }
}

// =================================================================================================
// releaseClaim

contract DomainRegistryReleaseTest is DomainRegistryTestBase {
    App internal other;

    /// `app` (owned by appOwner) and `other` (owned by newOwner) both claim DOMAIN.
    function setUp() public override {
        super.setUp();
        other = App(registry.createApp(newOwner, _appInit()));
        _claim(DOMAIN, address(app));
        _claim(DOMAIN, address(other));
    }

    /// The claimant's owner releases its claim; the other app's claim on the domain stands.
    function test_ReleaseClaimByAppOwner() public {
        vm.expectEmit(address(domains));
        emit IDomainRegistry.DomainClaimReleased(_hash(DOMAIN), DOMAIN, address(app), appOwner);
        vm.prank(appOwner);
        domains.releaseClaim(DOMAIN, address(app));
        assertFalse(domains.isClaimed(DOMAIN, address(app)));
        assertTrue(domains.isClaimed(DOMAIN, address(other)));
    }

    /// Once released, the domain may be claimed again.
    function test_ClaimAgainAfterRelease() public {
        vm.prank(appOwner);
        domains.releaseClaim(DOMAIN, address(app));
        vm.expectEmit(address(domains));
        emit IDomainRegistry.DomainClaimed(_hash(DOMAIN), DOMAIN, address(app));
        _claim(DOMAIN, address(app));
        assertTrue(domains.isClaimed(DOMAIN, address(app)));
    }

    /// Governance may release any app's claim; the event names it as the releaser.
    function test_ReleaseClaimByRegistryOwner() public {
        vm.expectEmit(address(domains));
        emit IDomainRegistry.DomainClaimReleased(_hash(DOMAIN), DOMAIN, address(app), address(timelock));
        _asTimelock(address(domains), abi.encodeCall(DomainRegistry.releaseClaim, (DOMAIN, address(app))));
        assertFalse(domains.isClaimed(DOMAIN, address(app)));
        assertTrue(domains.isClaimed(DOMAIN, address(other)));
    }

    function test_ReleaseClaimOfFrozenAppByRegistryOwner() public {
        _freezeApp();
        vm.expectEmit(address(domains));
        emit IDomainRegistry.DomainClaimReleased(_hash(DOMAIN), DOMAIN, address(app), address(timelock));
        _asTimelock(address(domains), abi.encodeCall(DomainRegistry.releaseClaim, (DOMAIN, address(app))));
        assertFalse(domains.isClaimed(DOMAIN, address(app)));
    }

    /// Freezing locks nothing here: a frozen app's owner may release its claims too.
    function test_ReleaseClaimOfFrozenAppByAppOwner() public {
        _freezeApp();
        vm.expectEmit(address(domains));
        emit IDomainRegistry.DomainClaimReleased(_hash(DOMAIN), DOMAIN, address(app), appOwner);
        vm.prank(appOwner);
        domains.releaseClaim(DOMAIN, address(app));
        assertFalse(domains.isClaimed(DOMAIN, address(app)));
    }

    /// A deregistered app's owner may still clean up its claims.
    function test_ReleaseClaimOfDeregisteredApp() public {
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.deregisterApp, (address(app))));
        // Until then the claim stands: deregistration does not touch it.
        assertTrue(domains.isClaimed(DOMAIN, address(app)));
        vm.expectEmit(address(domains));
        emit IDomainRegistry.DomainClaimReleased(_hash(DOMAIN), DOMAIN, address(app), appOwner);
        vm.prank(appOwner);
        domains.releaseClaim(DOMAIN, address(app));
        assertFalse(domains.isClaimed(DOMAIN, address(app)));
    }

    /// Release follows the app's current owner.
    function test_ReleaseClaimAfterOwnershipTransfer() public {
        address thirdOwner = makeAddr("thirdOwner");
        vm.prank(appOwner);
        app.transferOwnership(thirdOwner);
        vm.prank(thirdOwner);
        app.acceptOwnership();
        vm.prank(appOwner);
        vm.expectRevert(_notAppOwner(address(app), appOwner));
        domains.releaseClaim(DOMAIN, address(app));
        vm.prank(thirdOwner);
        domains.releaseClaim(DOMAIN, address(app));
        assertFalse(domains.isClaimed(DOMAIN, address(app)));
    }

    function test_RevertWhen_ReleaseClaimByStranger() public {
        vm.prank(stranger);
        vm.expectRevert(_notAppOwner(address(app), stranger));
        domains.releaseClaim(DOMAIN, address(app));
        assertTrue(domains.isClaimed(DOMAIN, address(app)));
    }

    /// The owner of another app claiming the same domain cannot release this app's claim.
    function test_RevertWhen_ReleaseClaimByOwnerOfAnotherApp() public {
        vm.prank(newOwner);
        vm.expectRevert(_notAppOwner(address(app), newOwner));
        domains.releaseClaim(DOMAIN, address(app));
        vm.prank(appOwner);
        vm.expectRevert(_notAppOwner(address(other), appOwner));
        domains.releaseClaim(DOMAIN, address(other));
        assertTrue(domains.isClaimed(DOMAIN, address(app)));
        assertTrue(domains.isClaimed(DOMAIN, address(other)));
    }

    function test_RevertWhen_ReleaseClaimNotMade() public {
        vm.prank(appOwner);
        vm.expectRevert(_notClaimed(OTHER_DOMAIN, address(app)));
        domains.releaseClaim(OTHER_DOMAIN, address(app));
    }

    /// An app that does not claim the domain has nothing to release, whoever else claims it.
    function test_RevertWhen_ReleaseClaimOfAnAppThatDoesNotClaim() public {
        App third = _createApp();
        vm.prank(appOwner);
        vm.expectRevert(_notClaimed(DOMAIN, address(third)));
        domains.releaseClaim(DOMAIN, address(third));
    }

    /// Names are compared byte for byte: another spelling is not claimed.
    function test_RevertWhen_ReleaseClaimOtherSpelling() public {
        vm.prank(appOwner);
        vm.expectRevert(_notClaimed("App.example.com", address(app)));
        domains.releaseClaim("App.example.com", address(app));
    }

    function test_RevertWhen_RegistryOwnerReleasesAClaimNotMade() public {
        vm.prank(address(timelock));
        vm.expectRevert(_notClaimed(OTHER_DOMAIN, address(app)));
        domains.releaseClaim(OTHER_DOMAIN, address(app));
    }

    /// The zero address never claims anything (unset wave-1 bindings read as zero).
    function test_RevertWhen_ReleaseClaimOfZeroApp() public {
        vm.prank(address(timelock));
        vm.expectRevert(_notClaimed(OTHER_DOMAIN, address(0)));
        domains.releaseClaim(OTHER_DOMAIN, address(0));
    }

    function test_RevertWhen_ReleaseClaimTwice() public {
        vm.startPrank(appOwner);
        domains.releaseClaim(DOMAIN, address(app));
        vm.expectRevert(_notClaimed(DOMAIN, address(app)));
        domains.releaseClaim(DOMAIN, address(app));
        vm.stopPrank();
    }
}

// =================================================================================================
// Wave-1 bindings, kept in storage by the upgrade, count as claims

contract DomainRegistryWave1BindingTest is DomainRegistryTestBase {
    App internal other;

    function setUp() public override {
        super.setUp();
        other = App(registry.createApp(newOwner, _appInit()));
        _storeWave1Binding(DOMAIN, address(app));
    }

    function test_Wave1BindingCountsAsAClaim() public view {
        assertTrue(domains.isClaimed(DOMAIN, address(app)));
        assertFalse(domains.isClaimed(DOMAIN, address(other)));
        assertFalse(domains.isClaimed(OTHER_DOMAIN, address(app)));
    }

    function test_RevertWhen_TheBoundAppClaimsAgain() public {
        vm.prank(appOwner);
        vm.expectRevert(
            abi.encodeWithSelector(
                IDomainRegistry.DomainRegistryAlreadyClaimed.selector, DOMAIN, address(app)
            )
        );
        domains.claimDomain(DOMAIN, address(app));
    }

    /// A wave-1 binding blocks no one: another app claims the domain beside it.
    function test_Wave1BindingDoesNotBlockAnotherApp() public {
        _claim(DOMAIN, address(other));
        assertTrue(domains.isClaimed(DOMAIN, address(app)));
        assertTrue(domains.isClaimed(DOMAIN, address(other)));
        // Releasing the other app's claim leaves the binding.
        vm.prank(newOwner);
        domains.releaseClaim(DOMAIN, address(other));
        assertTrue(domains.isClaimed(DOMAIN, address(app)));
        assertEq(_wave1Binding(DOMAIN), address(app));
    }

    /// Releasing the claim clears the wave-1 binding; the app may then claim afresh.
    function test_ReleaseClearsTheWave1Binding() public {
        vm.expectEmit(address(domains));
        emit IDomainRegistry.DomainClaimReleased(_hash(DOMAIN), DOMAIN, address(app), appOwner);
        vm.prank(appOwner);
        domains.releaseClaim(DOMAIN, address(app));
        assertFalse(domains.isClaimed(DOMAIN, address(app)));
        assertEq(_wave1Binding(DOMAIN), address(0));

        _claim(DOMAIN, address(app));
        assertTrue(domains.isClaimed(DOMAIN, address(app)));
        assertEq(_wave1Binding(DOMAIN), address(0));
    }

    function test_RegistryOwnerReleasesAWave1Binding() public {
        vm.expectEmit(address(domains));
        emit IDomainRegistry.DomainClaimReleased(_hash(DOMAIN), DOMAIN, address(app), address(timelock));
        _asTimelock(address(domains), abi.encodeCall(DomainRegistry.releaseClaim, (DOMAIN, address(app))));
        assertFalse(domains.isClaimed(DOMAIN, address(app)));
        assertEq(_wave1Binding(DOMAIN), address(0));
    }

    function test_RevertWhen_StrangerReleasesAWave1Binding() public {
        vm.prank(stranger);
        vm.expectRevert(_notAppOwner(address(app), stranger));
        domains.releaseClaim(DOMAIN, address(app));
        vm.prank(newOwner);
        vm.expectRevert(_notAppOwner(address(app), newOwner));
        domains.releaseClaim(DOMAIN, address(app));
        assertEq(_wave1Binding(DOMAIN), address(app));
    }
}

// =================================================================================================
// setGatewayAcmeAccount

contract DomainRegistryAcmeAccountTest is DomainRegistryTestBase {
    string internal constant ACCOUNT = "https://acme-v02.api.letsencrypt.org/acme/acct/123456789";

    function test_SetGatewayAcmeAccount() public {
        vm.expectEmit(address(domains));
        emit IDomainRegistry.GatewayAcmeAccountSet(ACCOUNT);
        _asTimelock(address(domains), abi.encodeCall(DomainRegistry.setGatewayAcmeAccount, (ACCOUNT)));
        assertEq(domains.gatewayAcmeAccount(), ACCOUNT);
    }

    function test_SetThenClearGatewayAcmeAccount() public {
        _asTimelock(address(domains), abi.encodeCall(DomainRegistry.setGatewayAcmeAccount, (ACCOUNT)));
        vm.expectEmit(address(domains));
        emit IDomainRegistry.GatewayAcmeAccountSet("");
        _asTimelock(address(domains), abi.encodeCall(DomainRegistry.setGatewayAcmeAccount, ("")));
        assertEq(domains.gatewayAcmeAccount(), "");
    }

    function test_ReplaceGatewayAcmeAccount() public {
        _asTimelock(address(domains), abi.encodeCall(DomainRegistry.setGatewayAcmeAccount, (ACCOUNT)));
        string memory next = "https://acme.example/acct/2";
        vm.expectEmit(address(domains));
        emit IDomainRegistry.GatewayAcmeAccountSet(next);
        _asTimelock(address(domains), abi.encodeCall(DomainRegistry.setGatewayAcmeAccount, (next)));
        assertEq(domains.gatewayAcmeAccount(), next);
    }

    function test_SetGatewayAcmeAccountOf512Bytes() public {
        string memory longest = _repeat("x", 512);
        vm.expectEmit(address(domains));
        emit IDomainRegistry.GatewayAcmeAccountSet(longest);
        _asTimelock(address(domains), abi.encodeCall(DomainRegistry.setGatewayAcmeAccount, (longest)));
        assertEq(domains.gatewayAcmeAccount(), longest);
    }

    function test_RevertWhen_GatewayAcmeAccountTooLong() public {
        string memory tooLong = _repeat("x", 513);
        vm.prank(address(timelock));
        vm.expectRevert(
            abi.encodeWithSelector(IDomainRegistry.DomainRegistryAcmeAccountTooLong.selector, 513)
        );
        domains.setGatewayAcmeAccount(tooLong);
    }

    function test_RevertWhen_SetGatewayAcmeAccountByNonOwner() public {
        vm.prank(stranger);
        vm.expectRevert(_unauthorized(stranger));
        domains.setGatewayAcmeAccount(ACCOUNT);

        vm.prank(appOwner);
        vm.expectRevert(_unauthorized(appOwner));
        domains.setGatewayAcmeAccount(ACCOUNT);

        // Governance members act through the Timelock, never directly.
        vm.prank(address(governor));
        vm.expectRevert(_unauthorized(address(governor)));
        domains.setGatewayAcmeAccount(ACCOUNT);
    }

    function test_RevertWhen_ClearUnsetGatewayAcmeAccount() public {
        vm.prank(address(timelock));
        vm.expectRevert(IDomainRegistry.DomainRegistryNoChange.selector);
        domains.setGatewayAcmeAccount("");
    }

    function test_RevertWhen_SetSameGatewayAcmeAccount() public {
        _asTimelock(address(domains), abi.encodeCall(DomainRegistry.setGatewayAcmeAccount, (ACCOUNT)));
        vm.prank(address(timelock));
        vm.expectRevert(IDomainRegistry.DomainRegistryNoChange.selector);
        domains.setGatewayAcmeAccount(ACCOUNT);
    }

    /// The length bound is checked before the no-change rule.
    function test_RevertWhen_TooLongIsCheckedFirst() public {
        string memory tooLong = _repeat("x", 600);
        vm.prank(stranger);
        vm.expectRevert(_unauthorized(stranger));
        domains.setGatewayAcmeAccount(tooLong);
        vm.prank(address(timelock));
        vm.expectRevert(
            abi.encodeWithSelector(IDomainRegistry.DomainRegistryAcmeAccountTooLong.selector, 600)
        );
        domains.setGatewayAcmeAccount(tooLong);
    }

    /// Any length: accepted up to 512 bytes (except the no-op empty value), refused above.
    function testFuzz_SetGatewayAcmeAccountLength(uint256 length) public {
        length = bound(length, 0, 1024);
        string memory uri = _repeat("a", length);
        vm.prank(address(timelock));
        if (length > 512) {
            vm.expectRevert(
                abi.encodeWithSelector(IDomainRegistry.DomainRegistryAcmeAccountTooLong.selector, length)
            );
        } else if (length == 0) {
            vm.expectRevert(IDomainRegistry.DomainRegistryNoChange.selector);
        } else {
            vm.expectEmit(address(domains));
            emit IDomainRegistry.GatewayAcmeAccountSet(uri);
        }
        domains.setGatewayAcmeAccount(uri);
        assertEq(domains.gatewayAcmeAccount(), length <= 512 ? uri : "");
    }
}

// =================================================================================================
// Custom apps registered by governance

contract DomainRegistryCustomAppTest is DomainRegistryTestBase {
    /// A custom policy without owner() cannot claim a domain, not even through governance.
    function test_RevertWhen_CustomAppHasNoOwner() public {
        OwnerlessAppPolicy policy = new OwnerlessAppPolicy();
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.registerCustomApp, (address(policy))));
        assertEq(uint8(registry.appKind(address(policy))), uint8(IKmsRegistry.AppKind.Custom));

        vm.prank(stranger);
        vm.expectRevert(_notAppOwner(address(policy), stranger));
        domains.claimDomain(DOMAIN, address(policy));

        vm.prank(address(timelock));
        vm.expectRevert(_notAppOwner(address(policy), address(timelock)));
        domains.claimDomain(DOMAIN, address(policy));

        vm.prank(address(policy));
        vm.expectRevert(_notAppOwner(address(policy), address(policy)));
        domains.claimDomain(DOMAIN, address(policy));
        assertFalse(domains.isClaimed(DOMAIN, address(policy)));
    }

    /// A custom policy with owner() claims and releases through that owner.
    function test_CustomAppWithOwnerClaimsAndReleases() public {
        OwnedAppPolicy policy = new OwnedAppPolicy(newOwner, false);
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.registerCustomApp, (address(policy))));

        vm.prank(stranger);
        vm.expectRevert(_notAppOwner(address(policy), stranger));
        domains.claimDomain(DOMAIN, address(policy));

        vm.expectEmit(address(domains));
        emit IDomainRegistry.DomainClaimed(_hash(DOMAIN), DOMAIN, address(policy));
        vm.prank(newOwner);
        domains.claimDomain(DOMAIN, address(policy));
        assertTrue(domains.isClaimed(DOMAIN, address(policy)));

        vm.expectEmit(address(domains));
        emit IDomainRegistry.DomainClaimReleased(_hash(DOMAIN), DOMAIN, address(policy), newOwner);
        vm.prank(newOwner);
        domains.releaseClaim(DOMAIN, address(policy));
        assertFalse(domains.isClaimed(DOMAIN, address(policy)));
    }

    /// A custom policy that says it is frozen claims like any other: freezing locks nothing here.
    function test_FrozenCustomAppMayClaim() public {
        OwnedAppPolicy policy = new OwnedAppPolicy(newOwner, true);
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.registerCustomApp, (address(policy))));
        vm.prank(newOwner);
        domains.claimDomain(DOMAIN, address(policy));
        assertTrue(domains.isClaimed(DOMAIN, address(policy)));
    }

    /// A claim belongs to the app's address: it survives deregistration and registration again as
    /// a custom policy, and such an app cannot claim the domain a second time.
    function test_ClaimSurvivesReRegistrationAsCustom() public {
        _claim(DOMAIN, address(app));
        vm.prank(appOwner);
        app.freeze();
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.deregisterApp, (address(app))));
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.registerCustomApp, (address(app))));
        assertTrue(domains.isClaimed(DOMAIN, address(app)));
        vm.prank(appOwner);
        vm.expectRevert(
            abi.encodeWithSelector(
                IDomainRegistry.DomainRegistryAlreadyClaimed.selector, DOMAIN, address(app)
            )
        );
        domains.claimDomain(DOMAIN, address(app));
        _claim(OTHER_DOMAIN, address(app));
        assertTrue(domains.isClaimed(OTHER_DOMAIN, address(app)));
    }

    /// A custom policy must be registered before claiming, like any app.
    function test_RevertWhen_CustomAppNotRegistered() public {
        OwnedAppPolicy policy = new OwnedAppPolicy(newOwner, false);
        vm.prank(newOwner);
        vm.expectRevert(
            abi.encodeWithSelector(IDomainRegistry.DomainRegistryAppNotRegistered.selector, address(policy))
        );
        domains.claimDomain(DOMAIN, address(policy));
    }

    function test_RevertWhen_CustomAppAnswersOwnerWithGarbage() public {
        FallbackAppPolicy policy = new FallbackAppPolicy();
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.registerCustomApp, (address(policy))));
        vm.prank(stranger);
        vm.expectRevert(
            abi.encodeWithSelector(
                IDomainRegistry.DomainRegistryNotAppOwner.selector, address(policy), stranger
            )
        );
        domains.claimDomain(DOMAIN, address(policy));
        assertFalse(domains.isClaimed(DOMAIN, address(policy)));
    }
}

// =================================================================================================
// Views, initialisation, ownership and upgrades of the registry itself

contract DomainRegistryViewsTest is DomainRegistryTestBase {
    function test_Views() public view {
        assertEq(address(domains.kmsRegistry()), address(registry));
        assertEq(address(deployed.domainRegistryImplementation.kmsRegistry()), address(registry));
        assertEq(domains.MAX_ACME_ACCOUNT_LENGTH(), 512);
        assertEq(domains.owner(), address(timelock));
        assertEq(domains.pendingOwner(), address(0));
        assertEq(domains.gatewayAcmeAccount(), "");
        assertFalse(domains.isClaimed(DOMAIN, address(app)));
        assertFalse(domains.isClaimed("", address(app)));
        // The zero address claims nothing, though an unset wave-1 binding reads as zero.
        assertFalse(domains.isClaimed(DOMAIN, address(0)));
        assertFalse(domains.isClaimed("", address(0)));
    }

    /// isClaimed looks a name up byte for byte, for one app; it neither normalises nor reverts.
    function test_IsClaimedIsExact() public {
        App other = _createApp();
        _claim(DOMAIN, address(app));
        assertTrue(domains.isClaimed(DOMAIN, address(app)));
        assertFalse(domains.isClaimed(DOMAIN, address(other)));
        assertFalse(domains.isClaimed(DOMAIN, address(0)));
        assertFalse(domains.isClaimed("App.example.com", address(app)));
        assertFalse(domains.isClaimed("app.example.com.", address(app)));
        assertFalse(domains.isClaimed("example.com", address(app)));
        assertFalse(domains.isClaimed("not a domain", address(app)));
    }

    /// isClaimed answers for any address, registered or not, and does not consult the KMS registry.
    function test_IsClaimedOfUnregisteredAddresses() public {
        _claim(DOMAIN, address(app));
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.deregisterApp, (address(app))));
        assertTrue(domains.isClaimed(DOMAIN, address(app)));
        assertFalse(domains.isClaimed(DOMAIN, stranger));
    }

    function test_RevertWhen_InitializeCalledOnTheImplementation() public {
        vm.expectRevert(Initializable.InvalidInitialization.selector);
        deployed.domainRegistryImplementation.initialize(stranger);
    }

    function test_RevertWhen_InitializeCalledAgain() public {
        vm.prank(address(timelock));
        vm.expectRevert(Initializable.InvalidInitialization.selector);
        domains.initialize(stranger);
        assertEq(domains.owner(), address(timelock));
    }

    function test_TwoStepOwnershipTransfer() public {
        vm.expectEmit(address(domains));
        emit Ownable2StepUpgradeable.OwnershipTransferStarted(address(timelock), newOwner);
        _asTimelock(address(domains), abi.encodeCall(Ownable2StepUpgradeable.transferOwnership, (newOwner)));
        assertEq(domains.owner(), address(timelock));
        assertEq(domains.pendingOwner(), newOwner);

        vm.prank(stranger);
        vm.expectRevert(_unauthorized(stranger));
        domains.acceptOwnership();

        vm.expectEmit(address(domains));
        emit OwnableUpgradeable.OwnershipTransferred(address(timelock), newOwner);
        vm.prank(newOwner);
        domains.acceptOwnership();
        assertEq(domains.owner(), newOwner);
    }

    function test_RevertWhen_TransferOwnershipByNonOwner() public {
        vm.prank(stranger);
        vm.expectRevert(_unauthorized(stranger));
        domains.transferOwnership(stranger);
    }

    function test_RevertWhen_RenounceOwnershipByNonOwner() public {
        vm.prank(stranger);
        vm.expectRevert(_unauthorized(stranger));
        domains.renounceOwnership();
    }

    function test_RevertWhen_UpgradeByNonOwner() public {
        DomainRegistry next = new DomainRegistry(registry);
        vm.prank(stranger);
        vm.expectRevert(_unauthorized(stranger));
        domains.upgradeToAndCall(address(next), "");

        // Not even the owner of a claiming app.
        vm.prank(appOwner);
        vm.expectRevert(_unauthorized(appOwner));
        domains.upgradeToAndCall(address(next), "");
    }

    function test_UpgradeByOwnerPreservesState() public {
        _claim(DOMAIN, address(app));
        _storeWave1Binding(OTHER_DOMAIN, address(app));
        string memory account = "https://acme.example/acct/1";
        _asTimelock(address(domains), abi.encodeCall(DomainRegistry.setGatewayAcmeAccount, (account)));

        DomainRegistry next = new DomainRegistry(registry);
        vm.expectEmit(address(domains));
        emit IERC1967.Upgraded(address(next));
        _asTimelock(address(domains), abi.encodeCall(UUPSUpgradeable.upgradeToAndCall, (address(next), "")));

        assertEq(
            address(uint160(uint256(vm.load(address(domains), ERC1967Utils.IMPLEMENTATION_SLOT)))),
            address(next)
        );
        assertTrue(domains.isClaimed(DOMAIN, address(app)));
        assertTrue(domains.isClaimed(OTHER_DOMAIN, address(app)));
        assertEq(domains.gatewayAcmeAccount(), account);
        assertEq(domains.owner(), address(timelock));
    }

    /// The ERC-7201 slot matches its formula, and the fields sit where the layout says.
    function test_StorageLocation() public {
        bytes32 location = keccak256(abi.encode(uint256(keccak256("covenant.storage.DomainRegistry")) - 1))
            & ~bytes32(uint256(0xff));
        assertEq(location, 0x5075a01f94903bbdf889e5c4395e48070531d7b2b13b9a7a2d1e1aeae876ed00);
        assertEq(location, _location());

        // A claim: claims[domainHash][app], the third field; the wave-1 `apps` mapping is untouched.
        _claim(DOMAIN, address(app));
        bytes32 inner = keccak256(abi.encode(_hash(DOMAIN), uint256(location) + 2));
        assertEq(vm.load(address(domains), keccak256(abi.encode(address(app), inner))), bytes32(uint256(1)));
        assertEq(vm.load(address(domains), keccak256(abi.encode(_hash(DOMAIN), location))), bytes32(0));
        _asTimelock(address(domains), abi.encodeCall(DomainRegistry.setGatewayAcmeAccount, ("acct")));
        // A short string is stored in place: its bytes, then twice its length in the lowest byte.
        assertEq(
            vm.load(address(domains), bytes32(uint256(location) + 1)),
            bytes32(abi.encodePacked("acct")) | bytes32(uint256(8))
        );
    }
}
