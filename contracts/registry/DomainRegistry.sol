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
/// @notice Domain claims and the gateway's ACME account, behind a UUPS proxy owned by the
/// Timelock. See {IDomainRegistry}.
contract DomainRegistry is IDomainRegistry, Ownable2StepUpgradeable, UUPSUpgradeable {
    /// @custom:storage-location erc7201:covenant.storage.DomainRegistry
    struct DomainRegistryStorage {
        // Wave 1's single binding per domain; after the upgrade it counts as a claim of that app.
        mapping(bytes32 domainHash => address app) apps;
        string gatewayAcmeAccount;
        // v2
        mapping(bytes32 domainHash => mapping(address app => bool claimed)) claims;
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
    function claimDomain(string calldata domain, address app) external {
        DomainName.requireNormalised(domain);
        if (_KMS_REGISTRY.appKind(app) == IKmsRegistry.AppKind.None) {
            revert DomainRegistryAppNotRegistered(app);
        }
        _requireAppOwner(app);
        DomainRegistryStorage storage $ = _s();
        bytes32 domainHash = keccak256(bytes(domain));
        if (_claimed($, domainHash, app)) revert DomainRegistryAlreadyClaimed(domain, app);
        $.claims[domainHash][app] = true;
        emit DomainClaimed(domainHash, domain, app);
    }

    /// @inheritdoc IDomainRegistry
    function releaseClaim(string calldata domain, address app) external {
        DomainRegistryStorage storage $ = _s();
        bytes32 domainHash = keccak256(bytes(domain));
        if (!_claimed($, domainHash, app)) revert DomainRegistryNotClaimed(domain, app);
        if (msg.sender != owner()) _requireAppOwner(app);
        delete $.claims[domainHash][app];
        if ($.apps[domainHash] == app) delete $.apps[domainHash];
        emit DomainClaimReleased(domainHash, domain, app, msg.sender);
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
    function isClaimed(string calldata domain, address app) external view returns (bool) {
        return _claimed(_s(), keccak256(bytes(domain)), app);
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

    function _claimed(DomainRegistryStorage storage $, bytes32 domainHash, address app)
        private
        view
        returns (bool)
    {
        return app != address(0) && ($.claims[domainHash][app] || $.apps[domainHash] == app);
    }

    /// The caller must own `app` (its `owner()`). A custom policy needs an `owner()` for its
    /// claims; any failure to read one (missing function, revert, malformed reply) counts as "not
    /// the owner". Whether the app is frozen does not matter: a claim locks nothing.
    function _requireAppOwner(address app) private view {
        (bool ok, bytes memory reply) = app.staticcall(abi.encodeCall(IApp.owner, ()));
        if (!ok || reply.length != 32 || abi.decode(reply, (uint256)) >> 160 != 0) {
            revert DomainRegistryNotAppOwner(app, msg.sender);
        }
        if (abi.decode(reply, (address)) != msg.sender) revert DomainRegistryNotAppOwner(app, msg.sender);
    }

    function _s() private pure returns (DomainRegistryStorage storage $) {
        assembly {
            $.slot := DOMAIN_REGISTRY_STORAGE_LOCATION
        }
    }
}
