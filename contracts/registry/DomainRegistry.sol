// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IApp} from "../interfaces/IApp.sol";
import {IDomainRegistry} from "../interfaces/IDomainRegistry.sol";
import {IKmsRegistry} from "../interfaces/IKmsRegistry.sol";
import {DomainName} from "../libraries/DomainName.sol";
import {
    Ownable2StepUpgradeable
} from "@openzeppelin/contracts-upgradeable/access/Ownable2StepUpgradeable.sol";
import {UUPSUpgradeable} from "@openzeppelin/contracts/proxy/utils/UUPSUpgradeable.sol";

/// @title DomainRegistry
/// @notice Domain → app bindings and the gateway's ACME account, behind a UUPS proxy owned by the
/// Timelock. See {IDomainRegistry}.
contract DomainRegistry is IDomainRegistry, Ownable2StepUpgradeable, UUPSUpgradeable {
    /// @custom:storage-location erc7201:covenant.storage.DomainRegistry
    struct DomainRegistryStorage {
        mapping(bytes32 domainHash => address app) apps;
        string gatewayAcmeAccount;
    }

    // keccak256(abi.encode(uint256(keccak256("covenant.storage.DomainRegistry")) - 1)) & ~bytes32(uint256(0xff))
    bytes32 private constant DOMAIN_REGISTRY_STORAGE_LOCATION =
        0x5075a01f94903bbdf889e5c4395e48070531d7b2b13b9a7a2d1e1aeae876ed00;

    /// @notice The longest accepted ACME account URI, in bytes.
    uint256 public constant MAX_ACME_ACCOUNT_LENGTH = 512;

    /// @dev The KMS registry whose apps may be bound.
    IKmsRegistry private immutable _KMS_REGISTRY;

    /// @param kmsRegistry_ the KMS registry (proxy).
    constructor(IKmsRegistry kmsRegistry_) {
        _KMS_REGISTRY = kmsRegistry_;
        _disableInitializers();
    }

    /// @notice Sets up the registry behind its proxy.
    /// @param owner_ the owner: the Timelock.
    function initialize(address owner_) external initializer {
        __Ownable_init(owner_);
    }

    /// @inheritdoc IDomainRegistry
    function bindDomain(string calldata domain, address app) external {
        DomainName.requireNormalised(domain);
        if (_KMS_REGISTRY.appKind(app) == IKmsRegistry.AppKind.None) {
            revert DomainRegistryAppNotRegistered(app);
        }
        _requireAppOwner(app);
        DomainRegistryStorage storage $ = _s();
        bytes32 domainHash = keccak256(bytes(domain));
        address current = $.apps[domainHash];
        if (current != address(0)) revert DomainRegistryAlreadyBound(domain, current);
        $.apps[domainHash] = app;
        emit DomainBound(domainHash, domain, app);
    }

    /// @inheritdoc IDomainRegistry
    function unbindDomain(string calldata domain) external {
        DomainRegistryStorage storage $ = _s();
        bytes32 domainHash = keccak256(bytes(domain));
        address app = $.apps[domainHash];
        if (app == address(0)) revert DomainRegistryNotBound(domain);
        if (msg.sender != owner()) _requireAppOwner(app);
        delete $.apps[domainHash];
        emit DomainUnbound(domainHash, domain, app);
    }

    /// @inheritdoc IDomainRegistry
    function setGatewayAcmeAccount(string calldata accountUri) external onlyOwner {
        uint256 length = bytes(accountUri).length;
        if (length > MAX_ACME_ACCOUNT_LENGTH) revert DomainRegistryAcmeAccountTooLong(length);
        DomainRegistryStorage storage $ = _s();
        if (keccak256(bytes(accountUri)) == keccak256(bytes($.gatewayAcmeAccount))) {
            revert DomainRegistryNoChange();
        }
        $.gatewayAcmeAccount = accountUri;
        emit GatewayAcmeAccountSet(accountUri);
    }

    /// @inheritdoc IDomainRegistry
    function appOf(string calldata domain) external view returns (address) {
        return _s().apps[keccak256(bytes(domain))];
    }

    /// @inheritdoc IDomainRegistry
    function gatewayAcmeAccount() external view returns (string memory) {
        return _s().gatewayAcmeAccount;
    }

    /// @notice The KMS registry whose apps may be bound.
    /// @return the registry.
    function kmsRegistry() external view returns (IKmsRegistry) {
        return _KMS_REGISTRY;
    }

    /// @dev Upgrades are authorised by the owner (the Timelock) only.
    function _authorizeUpgrade(address) internal view override onlyOwner {}

    /// The caller must own `app` (its `owner()`), and the app must not be frozen (its `frozen()`,
    /// whatever its kind: a frozen factory app stays frozen if it is deregistered or registered
    /// again as a custom policy). A custom policy needs an `owner()` for domains to be bound to it;
    /// any failure to read one (missing function, revert, malformed reply) counts as "not the
    /// owner"; one without `frozen()` is not frozen.
    function _requireAppOwner(address app) private view {
        (bool ok, bytes memory reply) = app.staticcall(abi.encodeCall(IApp.owner, ()));
        if (!ok || reply.length != 32 || abi.decode(reply, (uint256)) >> 160 != 0) {
            revert DomainRegistryNotAppOwner(app, msg.sender);
        }
        if (abi.decode(reply, (address)) != msg.sender) revert DomainRegistryNotAppOwner(app, msg.sender);
        (ok, reply) = app.staticcall(abi.encodeCall(IApp.frozen, ()));
        if (ok && reply.length == 32 && abi.decode(reply, (uint256)) == 1) {
            revert DomainRegistryAppFrozen(app);
        }
    }

    function _s() private pure returns (DomainRegistryStorage storage $) {
        assembly {
            $.slot := DOMAIN_REGISTRY_STORAGE_LOCATION
        }
    }
}
