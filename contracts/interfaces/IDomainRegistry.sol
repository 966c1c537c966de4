// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title IDomainRegistry
/// @notice Which app serves a domain, as its owner declared it, and the ACME account the gateway
/// uses (for CAA `accounturi` pinning). Domains are stored in the one normalised form of
/// {DomainName}. Owned by the Timelock.
interface IDomainRegistry {
    /// @notice `domain` is now bound to `app`.
    event DomainBound(bytes32 indexed domainHash, string domain, address indexed app);
    /// @notice `domain` is no longer bound to `app`.
    event DomainUnbound(bytes32 indexed domainHash, string domain, address indexed app);
    /// @notice The gateway's ACME account URI changed.
    event GatewayAcmeAccountSet(string accountUri);

    /// @notice The app is not registered in the KMS registry.
    error DomainRegistryAppNotRegistered(address app);
    /// @notice The caller does not own the app.
    error DomainRegistryNotAppOwner(address app, address caller);
    /// @notice The app is frozen; its bindings cannot change.
    error DomainRegistryAppFrozen(address app);
    /// @notice The domain is bound to another app already.
    error DomainRegistryAlreadyBound(string domain, address app);
    /// @notice The domain is not bound.
    error DomainRegistryNotBound(string domain);
    /// @notice The URI is longer than the limit.
    error DomainRegistryAcmeAccountTooLong(uint256 length);
    /// @notice The call would not change anything.
    error DomainRegistryNoChange();

    /// @notice Binds `domain` to `app`, so the gateway serves it from that app's instances.
    /// @dev Requirements: `domain` normalised (see {DomainName}); `app` registered; caller is the
    /// app's owner; the app is not frozen; `domain` unbound. Emits {DomainBound}.
    /// @param domain the normalised domain name.
    /// @param app the app.
    function bindDomain(string calldata domain, address app) external;

    /// @notice Removes the binding of `domain`.
    /// @dev Requirements: `domain` bound; caller is the bound app's owner (app not frozen) or this
    /// registry's owner (governance). Emits {DomainUnbound}.
    /// @param domain the normalised domain name.
    function unbindDomain(string calldata domain) external;

    /// @notice Sets the ACME account URI of the gateway (for CAA `accounturi`).
    /// @dev Requirements: owner; at most 512 bytes; a change. Emits {GatewayAcmeAccountSet}.
    /// @param accountUri the account URI (empty to unset).
    function setGatewayAcmeAccount(string calldata accountUri) external;

    /// @notice The app bound to `domain`, or zero.
    /// @param domain the normalised domain name.
    /// @return app the app.
    function appOf(string calldata domain) external view returns (address app);

    /// @notice The gateway's ACME account URI.
    /// @return accountUri the URI (empty if unset).
    function gatewayAcmeAccount() external view returns (string memory accountUri);
}
