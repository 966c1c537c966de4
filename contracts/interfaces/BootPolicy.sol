// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @notice The kind of trusted execution environment that produced a piece of evidence.
/// `Unknown` is never accepted; `Simulated` only where {IKmsRegistry-allowSimulatedTee} is true.
enum TeeKind {
    Unknown,
    Tdx,
    SevSnp,
    Simulated
}

/// @notice The platform's TCB status as the attestation verifier reported it (Intel's vocabulary;
/// SEV-SNP and the simulator map onto it). `Unknown` and `Revoked` are never accepted.
enum TcbStatus {
    Unknown,
    UpToDate,
    SwHardeningNeeded,
    ConfigurationNeeded,
    ConfigurationAndSwHardeningNeeded,
    OutOfDate,
    OutOfDateConfigurationNeeded,
    Revoked
}

/// @notice What a verified TEE boot proves about itself, as the kms-oracle builds it from evidence.
/// Which check reads which field:
/// - `appId`: {IKmsRegistry-isAppAllowed} (registered) and the app policy (its own address);
/// - `composeHash`, `deviceId`, `tcbStatus`, `gpuEvidenceHash`, `keyGeneration`, `instanceId`,
///   `teeKind`: the app policy;
/// - `osImageHash`, `osMeasurement`, `teeKind`, `tcbStatus`: the registry, for apps and KMS nodes
///   (the OS image must be allowed and effective, and `osMeasurement` registered for it on `teeKind`);
/// - `mrAggregated`, `deviceId`: {IKmsRegistry-isKmsAllowed}. For apps the kms-oracle checks that
///   `mrAggregated` matches the replayed event log; it is not an on-chain allowlist.
struct BootInfo {
    /// The app's `App` proxy address.
    address appId;
    /// sha256 of the JCS-canonical app-compose document.
    bytes32 composeHash;
    /// 20 random bytes created at the instance's first boot.
    bytes20 instanceId;
    /// sha256(PPID) for TDX, sha256(CHIP_ID) for SEV-SNP.
    bytes32 deviceId;
    /// sha256(MRTD || RTMR0 || RTMR1 || RTMR2 || RTMR3), or the platform's equivalent.
    bytes32 mrAggregated;
    /// The guest OS image the instance booted.
    bytes32 osImageHash;
    /// sha256 of the platform registers that measure the OS: MRTD || RTMR0 || RTMR1 || RTMR2 (TDX
    /// and the simulated TEE, 192 bytes) or the launch MEASUREMENT (SEV-SNP, 48 bytes).
    bytes32 osMeasurement;
    /// Which TEE produced the evidence.
    TeeKind teeKind;
    /// The TCB status of the platform.
    TcbStatus tcbStatus;
    /// sha256 of the verified GPU evidence, or zero when no GPU evidence was presented.
    bytes32 gpuEvidenceHash;
    /// The key generation the kms-oracle is about to derive keys for.
    uint64 keyGeneration;
}

/// @notice Where an artefact allowed on chain comes from, so that anyone can rebuild and compare it.
/// Only its digest (keccak256 of its ABI encoding) is stored; the full value is in the event that
/// added the artefact.
struct Provenance {
    /// Where the source lives (e.g. a git repository URL).
    string sourceUrl;
    /// The revision of that source (e.g. a git commit id).
    string sourceCommit;
    /// Digests of the built artefacts (container images of an app-compose; the OS image).
    bytes32[] artifactDigests;
}

/// @notice What an OS image measures to on one platform, registered with the image
/// ({IKmsRegistry-addOsImage}) so that every verifier reads it from the chain.
struct OsMeasurement {
    /// The platform (`Tdx`, `SevSnp` or `Simulated`).
    TeeKind teeKind;
    /// The raw registers: MRTD || RTMR0 || RTMR1 || RTMR2 (TDX, simulated: 192 bytes) or the launch
    /// MEASUREMENT (SEV-SNP: 48 bytes). `BootInfo.osMeasurement` is their sha256.
    bytes registers;
}

/// @notice The policy of one app: whether a boot may receive the app's keys.
interface IAppPolicy {
    /// @notice Whether `boot` may receive this app's keys, and if not, why.
    /// @param boot the verified boot, with `boot.appId` equal to this contract's address.
    /// @return allowed true if every condition of the policy holds.
    /// @return reason empty when allowed; otherwise a short, stable reason string.
    function isAppAllowed(BootInfo calldata boot) external view returns (bool allowed, string memory reason);
}
