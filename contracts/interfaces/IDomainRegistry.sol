// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title IDomainRegistry
/// @notice Domain *claims* and the ACME account the gateway uses (for CAA `accounturi` pinning).
/// Any number of apps may claim a domain and no claim blocks another: which claim counts is proven
/// off chain by control of the name, a DNS TXT record `_covenant.<domain>` whose value names the app
/// id (the gateway checks it before it routes or orders a certificate, and so does `covenant
/// verify`). A claim is made and released by the app's owner; governance may release any claim.
/// Freezing an app locks nothing here. Domains are stored in the one normalised form of
/// {DomainName}. Owned by the Timelock.
interface IDomainRegistry {
    /// @notice `app` claims `domain`.
    event DomainClaimed(bytes32 indexed domainHash, string domain, address indexed app);
    /// @notice `app` no longer claims `domain`; `by` is the app's owner or governance.
    event DomainClaimReleased(bytes32 indexed domainHash, string domain, address indexed app, address by);
    /// @notice The gateway's ACME account URI changed.
    event GatewayAcmeAccountSet(string accountUri);

    /// @notice The app is not registered in the KMS registry.
    error DomainRegistryAppNotRegistered(address app);
    /// @notice The caller does not own the app.
    error DomainRegistryNotAppOwner(address app, address caller);
    /// @notice The app already claims the domain.
    error DomainRegistryAlreadyClaimed(string domain, address app);
    /// @notice The app does not claim the domain.
    error DomainRegistryNotClaimed(string domain, address app);
    /// @notice The URI is longer than the limit.
    error DomainRegistryAcmeAccountTooLong(uint256 length);
    /// @notice The call would not change anything.
    error DomainRegistryNoChange();

    /// @notice Records that `app` claims `domain`. Whether the gateway serves it from the app is
    /// decided by the DNS TXT record `_covenant.<domain>`.
    /// @dev Requirements: `domain` normalised (see {DomainName}); `app` registered; caller is the
    /// app's owner; not claimed by `app` yet. Emits {DomainClaimed}.
    /// @param domain the normalised domain name.
    /// @param app the app.
    function claimDomain(string calldata domain, address app) external;

    /// @notice Withdraws the claim of `app` on `domain`.
    /// @dev Requirements: claimed by `app`; caller is the app's owner or this registry's owner
    /// (governance). Emits {DomainClaimReleased}.
    /// @param domain the normalised domain name.
    /// @param app the claimant.
    function releaseClaim(string calldata domain, address app) external;

    /// @notice Sets the ACME account URI of the gateway (for CAA `accounturi`).
    /// @dev Requirements: owner; at most 512 bytes; a change. Emits {GatewayAcmeAccountSet}.
    /// @param accountUri the account URI (empty to unset).
    function setGatewayAcmeAccount(string calldata accountUri) external;

    /// @notice Whether `app` claims `domain`.
    /// @param domain the normalised domain name.
    /// @param app the app.
    /// @return claimed true if the claim stands.
    function isClaimed(string calldata domain, address app) external view returns (bool claimed);

    /// @notice The gateway's ACME account URI.
    /// @return accountUri the URI (empty if unset).
    function gatewayAcmeAccount() external view returns (string memory accountUri);
}
