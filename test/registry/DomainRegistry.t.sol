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

    function _bind(string memory domain, address target) internal {
        vm.prank(App(target).owner());
        domains.bindDomain(domain, target);
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
// bindDomain

contract DomainRegistryBindTest is DomainRegistryTestBase {
    function test_BindDomain() public {
        vm.expectEmit(address(domains));
        emit IDomainRegistry.DomainBound(_hash(DOMAIN), DOMAIN, address(app));
        vm.prank(appOwner);
        domains.bindDomain(DOMAIN, address(app));
        assertEq(domains.appOf(DOMAIN), address(app));
        assertEq(domains.appOf(OTHER_DOMAIN), address(0));
    }

    function test_BindSeveralDomainsToOneApp() public {
        _bind(DOMAIN, address(app));
        vm.expectEmit(address(domains));
        emit IDomainRegistry.DomainBound(_hash(OTHER_DOMAIN), OTHER_DOMAIN, address(app));
        _bind(OTHER_DOMAIN, address(app));
        assertEq(domains.appOf(DOMAIN), address(app));
        assertEq(domains.appOf(OTHER_DOMAIN), address(app));
    }

    /// A subdomain is a different name: it may be bound to a different app.
    function test_BindSubdomainToAnotherApp() public {
        App other = App(registry.createApp(newOwner, _appInit()));
        _bind("example.com", address(app));
        _bind("api.example.com", address(other));
        assertEq(domains.appOf("example.com"), address(app));
        assertEq(domains.appOf("api.example.com"), address(other));
    }

    /// Binding follows the app's current owner.
    function test_BindDomainAfterOwnershipTransfer() public {
        vm.prank(appOwner);
        app.transferOwnership(newOwner);

        // The pending owner is not the owner yet.
        vm.prank(newOwner);
        vm.expectRevert(_notAppOwner(address(app), newOwner));
        domains.bindDomain(DOMAIN, address(app));

        vm.prank(newOwner);
        app.acceptOwnership();
        vm.prank(appOwner);
        vm.expectRevert(_notAppOwner(address(app), appOwner));
        domains.bindDomain(DOMAIN, address(app));

        vm.expectEmit(address(domains));
        emit IDomainRegistry.DomainBound(_hash(DOMAIN), DOMAIN, address(app));
        vm.prank(newOwner);
        domains.bindDomain(DOMAIN, address(app));
        assertEq(domains.appOf(DOMAIN), address(app));
    }

    function test_RevertWhen_DomainHasInvalidCharacter() public {
        vm.prank(appOwner);
        vm.expectRevert(
            abi.encodeWithSelector(
                DomainName.DomainNameInvalid.selector, DomainName.Defect.InvalidCharacter, 0
            )
        );
        domains.bindDomain("App.example.com", address(app));
    }

    function test_RevertWhen_DomainIsEmpty() public {
        vm.prank(appOwner);
        vm.expectRevert(
            abi.encodeWithSelector(DomainName.DomainNameInvalid.selector, DomainName.Defect.Empty, 0)
        );
        domains.bindDomain("", address(app));
    }

    function test_RevertWhen_DomainHasTrailingDot() public {
        vm.prank(appOwner);
        vm.expectRevert(
            abi.encodeWithSelector(DomainName.DomainNameInvalid.selector, DomainName.Defect.EmptyLabel, 16)
        );
        domains.bindDomain("app.example.com.", address(app));
    }

    function test_RevertWhen_DomainIsSingleLabel() public {
        vm.prank(appOwner);
        vm.expectRevert(
            abi.encodeWithSelector(DomainName.DomainNameInvalid.selector, DomainName.Defect.SingleLabel, 9)
        );
        domains.bindDomain("localhost", address(app));
    }

    function test_RevertWhen_DomainIsAnIpAddress() public {
        vm.prank(appOwner);
        vm.expectRevert(
            abi.encodeWithSelector(
                DomainName.DomainNameInvalid.selector, DomainName.Defect.NumericTopLevelLabel, 8
            )
        );
        domains.bindDomain("127.0.0.1", address(app));
    }

    function test_RevertWhen_DomainLabelStartsWithHyphen() public {
        vm.prank(appOwner);
        vm.expectRevert(
            abi.encodeWithSelector(
                DomainName.DomainNameInvalid.selector, DomainName.Defect.HyphenAtLabelEdge, 4
            )
        );
        domains.bindDomain("app.-example.com", address(app));
    }

    function test_RevertWhen_DomainLabelTooLong() public {
        string memory name = string.concat("app.", _repeat("a", 64), ".com");
        vm.prank(appOwner);
        vm.expectRevert(
            abi.encodeWithSelector(DomainName.DomainNameInvalid.selector, DomainName.Defect.LabelTooLong, 4)
        );
        domains.bindDomain(name, address(app));
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
        domains.bindDomain(name, address(app));
    }

    /// The name is checked first, before the app and the caller.
    function test_RevertWhen_DomainInvalidAndAppUnregistered() public {
        vm.prank(stranger);
        vm.expectRevert(
            abi.encodeWithSelector(
                DomainName.DomainNameInvalid.selector, DomainName.Defect.InvalidCharacter, 3
            )
        );
        domains.bindDomain("app_x.example.com", address(0xBEEF));
    }

    function test_RevertWhen_AppNotRegistered() public {
        vm.prank(stranger);
        vm.expectRevert(
            abi.encodeWithSelector(IDomainRegistry.DomainRegistryAppNotRegistered.selector, address(0xBEEF))
        );
        domains.bindDomain(DOMAIN, address(0xBEEF));
    }

    function test_RevertWhen_AppIsZero() public {
        vm.prank(appOwner);
        vm.expectRevert(
            abi.encodeWithSelector(IDomainRegistry.DomainRegistryAppNotRegistered.selector, address(0))
        );
        domains.bindDomain(DOMAIN, address(0));
    }

    function test_RevertWhen_AppDeregistered() public {
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.deregisterApp, (address(app))));
        vm.prank(appOwner);
        vm.expectRevert(
            abi.encodeWithSelector(IDomainRegistry.DomainRegistryAppNotRegistered.selector, address(app))
        );
        domains.bindDomain(DOMAIN, address(app));
    }

    function test_RevertWhen_CallerNotAppOwner() public {
        vm.prank(stranger);
        vm.expectRevert(_notAppOwner(address(app), stranger));
        domains.bindDomain(DOMAIN, address(app));
        assertEq(domains.appOf(DOMAIN), address(0));
    }

    /// Governance cannot bind a domain to an app it does not own.
    function test_RevertWhen_RegistryOwnerBindsForAnApp() public {
        vm.prank(address(timelock));
        vm.expectRevert(_notAppOwner(address(app), address(timelock)));
        domains.bindDomain(DOMAIN, address(app));
    }

    function test_RevertWhen_AppOwnershipRenounced() public {
        vm.prank(appOwner);
        app.renounceOwnership();
        vm.prank(appOwner);
        vm.expectRevert(_notAppOwner(address(app), appOwner));
        domains.bindDomain(DOMAIN, address(app));
    }

    function test_RevertWhen_AppFrozen() public {
        _freezeApp();
        vm.prank(appOwner);
        vm.expectRevert(
            abi.encodeWithSelector(IDomainRegistry.DomainRegistryAppFrozen.selector, address(app))
        );
        domains.bindDomain(DOMAIN, address(app));
    }

    /// On a frozen app, a stranger still gets the ownership error first.
    function test_RevertWhen_StrangerBindsToFrozenApp() public {
        _freezeApp();
        vm.prank(stranger);
        vm.expectRevert(_notAppOwner(address(app), stranger));
        domains.bindDomain(DOMAIN, address(app));
    }

    function test_RevertWhen_AlreadyBoundToAnotherApp() public {
        App other = App(registry.createApp(newOwner, _appInit()));
        _bind(DOMAIN, address(app));
        vm.prank(newOwner);
        vm.expectRevert(
            abi.encodeWithSelector(IDomainRegistry.DomainRegistryAlreadyBound.selector, DOMAIN, address(app))
        );
        domains.bindDomain(DOMAIN, address(other));
        assertEq(domains.appOf(DOMAIN), address(app));
    }

    /// The same owner cannot move a domain between its apps without unbinding first.
    function test_RevertWhen_AlreadyBoundToAnotherAppOfTheSameOwner() public {
        App other = _createApp();
        _bind(DOMAIN, address(app));
        vm.prank(appOwner);
        vm.expectRevert(
            abi.encodeWithSelector(IDomainRegistry.DomainRegistryAlreadyBound.selector, DOMAIN, address(app))
        );
        domains.bindDomain(DOMAIN, address(other));
    }

    function test_RevertWhen_AlreadyBoundToTheSameApp() public {
        _bind(DOMAIN, address(app));
        vm.prank(appOwner);
        vm.expectRevert(
            abi.encodeWithSelector(IDomainRegistry.DomainRegistryAlreadyBound.selector, DOMAIN, address(app))
        );
        domains.bindDomain(DOMAIN, address(app));
    }

    /// Any name built from valid labels binds, is found under exactly that spelling, and unbinds.
    function testFuzz_BindGeneratedValidDomain(uint256 seed, uint8 labelCount) public {
        string memory name = _validName(seed, bound(labelCount, 2, 4));
        vm.expectEmit(address(domains));
        emit IDomainRegistry.DomainBound(_hash(name), name, address(app));
        vm.prank(appOwner);
        domains.bindDomain(name, address(app));
        assertEq(domains.appOf(name), address(app));
        assertEq(domains.appOf(string.concat(name, ".")), address(0));

        vm.prank(appOwner);
        vm.expectRevert(
            abi.encodeWithSelector(IDomainRegistry.DomainRegistryAlreadyBound.selector, name, address(app))
        );
        domains.bindDomain(name, address(app));

        vm.expectEmit(address(domains));
        emit IDomainRegistry.DomainUnbound(_hash(name), name, address(app));
        vm.prank(appOwner);
        domains.unbindDomain(name);
        assertEq(domains.appOf(name), address(0));
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
        domains.bindDomain(string(name), address(app));
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
// unbindDomain

contract DomainRegistryUnbindTest is DomainRegistryTestBase {
    function setUp() public override {
        super.setUp();
        _bind(DOMAIN, address(app));
    }

    function test_UnbindDomainByAppOwner() public {
        vm.expectEmit(address(domains));
        emit IDomainRegistry.DomainUnbound(_hash(DOMAIN), DOMAIN, address(app));
        vm.prank(appOwner);
        domains.unbindDomain(DOMAIN);
        assertEq(domains.appOf(DOMAIN), address(0));
    }

    /// Once unbound, the domain may go to another app.
    function test_RebindAfterUnbind() public {
        App other = App(registry.createApp(newOwner, _appInit()));
        vm.prank(appOwner);
        domains.unbindDomain(DOMAIN);
        vm.expectEmit(address(domains));
        emit IDomainRegistry.DomainBound(_hash(DOMAIN), DOMAIN, address(other));
        vm.prank(newOwner);
        domains.bindDomain(DOMAIN, address(other));
        assertEq(domains.appOf(DOMAIN), address(other));
    }

    function test_UnbindDomainByRegistryOwner() public {
        vm.expectEmit(address(domains));
        emit IDomainRegistry.DomainUnbound(_hash(DOMAIN), DOMAIN, address(app));
        _asTimelock(address(domains), abi.encodeCall(DomainRegistry.unbindDomain, (DOMAIN)));
        assertEq(domains.appOf(DOMAIN), address(0));
    }

    /// Governance can remove the binding of a frozen app; nobody else can.
    function test_UnbindDomainOfFrozenAppByRegistryOwner() public {
        _freezeApp();
        vm.expectEmit(address(domains));
        emit IDomainRegistry.DomainUnbound(_hash(DOMAIN), DOMAIN, address(app));
        _asTimelock(address(domains), abi.encodeCall(DomainRegistry.unbindDomain, (DOMAIN)));
        assertEq(domains.appOf(DOMAIN), address(0));
    }

    function test_RevertWhen_AppOwnerUnbindsDomainOfFrozenApp() public {
        _freezeApp();
        vm.prank(appOwner);
        vm.expectRevert(
            abi.encodeWithSelector(IDomainRegistry.DomainRegistryAppFrozen.selector, address(app))
        );
        domains.unbindDomain(DOMAIN);
        assertEq(domains.appOf(DOMAIN), address(app));
    }

    /// A deregistered app's owner may still clean up its bindings.
    function test_UnbindDomainOfDeregisteredApp() public {
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.deregisterApp, (address(app))));
        vm.expectEmit(address(domains));
        emit IDomainRegistry.DomainUnbound(_hash(DOMAIN), DOMAIN, address(app));
        vm.prank(appOwner);
        domains.unbindDomain(DOMAIN);
        assertEq(domains.appOf(DOMAIN), address(0));
    }

    function test_RevertWhen_UnbindDomainByStranger() public {
        vm.prank(stranger);
        vm.expectRevert(_notAppOwner(address(app), stranger));
        domains.unbindDomain(DOMAIN);
        assertEq(domains.appOf(DOMAIN), address(app));
    }

    /// The owner of another app cannot unbind this app's domain.
    function test_RevertWhen_UnbindDomainByOwnerOfAnotherApp() public {
        registry.createApp(newOwner, _appInit());
        vm.prank(newOwner);
        vm.expectRevert(_notAppOwner(address(app), newOwner));
        domains.unbindDomain(DOMAIN);
    }

    function test_RevertWhen_UnbindDomainNotBound() public {
        vm.prank(appOwner);
        vm.expectRevert(abi.encodeWithSelector(IDomainRegistry.DomainRegistryNotBound.selector, OTHER_DOMAIN));
        domains.unbindDomain(OTHER_DOMAIN);
    }

    /// Names are compared byte for byte: another spelling is not bound.
    function test_RevertWhen_UnbindDomainOtherSpelling() public {
        vm.prank(appOwner);
        vm.expectRevert(
            abi.encodeWithSelector(IDomainRegistry.DomainRegistryNotBound.selector, "App.example.com")
        );
        domains.unbindDomain("App.example.com");
    }

    function test_RevertWhen_RegistryOwnerUnbindsDomainNotBound() public {
        vm.prank(address(timelock));
        vm.expectRevert(abi.encodeWithSelector(IDomainRegistry.DomainRegistryNotBound.selector, OTHER_DOMAIN));
        domains.unbindDomain(OTHER_DOMAIN);
    }

    function test_RevertWhen_UnbindDomainTwice() public {
        vm.startPrank(appOwner);
        domains.unbindDomain(DOMAIN);
        vm.expectRevert(abi.encodeWithSelector(IDomainRegistry.DomainRegistryNotBound.selector, DOMAIN));
        domains.unbindDomain(DOMAIN);
        vm.stopPrank();
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
    /// A custom policy without owner() cannot have a domain bound, not even by governance.
    function test_RevertWhen_CustomAppHasNoOwner() public {
        OwnerlessAppPolicy policy = new OwnerlessAppPolicy();
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.registerCustomApp, (address(policy))));
        assertEq(uint8(registry.appKind(address(policy))), uint8(IKmsRegistry.AppKind.Custom));

        vm.prank(stranger);
        vm.expectRevert(_notAppOwner(address(policy), stranger));
        domains.bindDomain(DOMAIN, address(policy));

        vm.prank(address(timelock));
        vm.expectRevert(_notAppOwner(address(policy), address(timelock)));
        domains.bindDomain(DOMAIN, address(policy));

        vm.prank(address(policy));
        vm.expectRevert(_notAppOwner(address(policy), address(policy)));
        domains.bindDomain(DOMAIN, address(policy));
        assertEq(domains.appOf(DOMAIN), address(0));
    }

    /// A custom policy with owner() is bound by that owner.
    function test_CustomAppWithOwnerBindsAndUnbinds() public {
        OwnedAppPolicy policy = new OwnedAppPolicy(newOwner, false);
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.registerCustomApp, (address(policy))));

        vm.prank(stranger);
        vm.expectRevert(_notAppOwner(address(policy), stranger));
        domains.bindDomain(DOMAIN, address(policy));

        vm.expectEmit(address(domains));
        emit IDomainRegistry.DomainBound(_hash(DOMAIN), DOMAIN, address(policy));
        vm.prank(newOwner);
        domains.bindDomain(DOMAIN, address(policy));
        assertEq(domains.appOf(DOMAIN), address(policy));

        vm.expectEmit(address(domains));
        emit IDomainRegistry.DomainUnbound(_hash(DOMAIN), DOMAIN, address(policy));
        vm.prank(newOwner);
        domains.unbindDomain(DOMAIN);
        assertEq(domains.appOf(DOMAIN), address(0));
    }

    /// A custom policy that says it is frozen gets the freeze rule of factory apps.
    function test_RevertWhen_CustomAppIsFrozen() public {
        OwnedAppPolicy policy = new OwnedAppPolicy(newOwner, true);
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.registerCustomApp, (address(policy))));
        vm.prank(newOwner);
        vm.expectRevert(
            abi.encodeWithSelector(IDomainRegistry.DomainRegistryAppFrozen.selector, address(policy))
        );
        domains.bindDomain(DOMAIN, address(policy));
    }

    /// A frozen factory app stays frozen for bindings after governance deregisters it and registers
    /// it again as a custom policy.
    function test_RevertWhen_FrozenAppIsReRegisteredAsCustom() public {
        vm.prank(appOwner);
        app.freeze();
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.deregisterApp, (address(app))));
        _asTimelock(address(registry), abi.encodeCall(KmsRegistry.registerCustomApp, (address(app))));
        vm.prank(appOwner);
        vm.expectRevert(
            abi.encodeWithSelector(IDomainRegistry.DomainRegistryAppFrozen.selector, address(app))
        );
        domains.bindDomain(DOMAIN, address(app));
    }

    /// A custom policy must be registered before binding, like any app.
    function test_RevertWhen_CustomAppNotRegistered() public {
        OwnedAppPolicy policy = new OwnedAppPolicy(newOwner, false);
        vm.prank(newOwner);
        vm.expectRevert(
            abi.encodeWithSelector(IDomainRegistry.DomainRegistryAppNotRegistered.selector, address(policy))
        );
        domains.bindDomain(DOMAIN, address(policy));
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
        domains.bindDomain(DOMAIN, address(policy));
        assertEq(domains.appOf(DOMAIN), address(0));
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
        assertEq(domains.appOf(DOMAIN), address(0));
        assertEq(domains.appOf(""), address(0));
    }

    /// appOf looks a name up byte for byte; it neither normalises nor reverts.
    function test_AppOfIsExact() public {
        _bind(DOMAIN, address(app));
        assertEq(domains.appOf(DOMAIN), address(app));
        assertEq(domains.appOf("App.example.com"), address(0));
        assertEq(domains.appOf("app.example.com."), address(0));
        assertEq(domains.appOf("example.com"), address(0));
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

        // Not even the owner of a bound app.
        vm.prank(appOwner);
        vm.expectRevert(_unauthorized(appOwner));
        domains.upgradeToAndCall(address(next), "");
    }

    function test_UpgradeByOwnerPreservesState() public {
        _bind(DOMAIN, address(app));
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
        assertEq(domains.appOf(DOMAIN), address(app));
        assertEq(domains.gatewayAcmeAccount(), account);
        assertEq(domains.owner(), address(timelock));
    }

    /// The ERC-7201 slot matches its formula, and the fields sit where the layout says.
    function test_StorageLocation() public {
        bytes32 location = keccak256(abi.encode(uint256(keccak256("covenant.storage.DomainRegistry")) - 1))
            & ~bytes32(uint256(0xff));
        assertEq(location, 0x5075a01f94903bbdf889e5c4395e48070531d7b2b13b9a7a2d1e1aeae876ed00);

        _bind(DOMAIN, address(app));
        assertEq(
            vm.load(address(domains), keccak256(abi.encode(_hash(DOMAIN), location))),
            bytes32(uint256(uint160(address(app))))
        );
        _asTimelock(address(domains), abi.encodeCall(DomainRegistry.setGatewayAcmeAccount, ("acct")));
        // A short string is stored in place: its bytes, then twice its length in the lowest byte.
        assertEq(
            vm.load(address(domains), bytes32(uint256(location) + 1)),
            bytes32(abi.encodePacked("acct")) | bytes32(uint256(8))
        );
    }
}
