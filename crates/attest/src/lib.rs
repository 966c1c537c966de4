//! Covenant's attestation core: everything that decides whether TEE evidence is genuine, shared
//! by the kms-oracle, the gateway, the guest agent and the CLI.
//!
//! - [`verify`]: evidence ([`Evidence`]: platform, quote or report, runtime event log) → a
//!   [`VerifiedEvidence`], the only way to obtain one. It checks the platform's signature and
//!   endorsements (TDX with dcap-qvl against supplied [`Collateral`]; SEV-SNP with the `sev`
//!   crate, VCEK → ASK → ARK or VLEK → ASVK → ARK; the [simulator](simulator) against its
//!   root), the [`Policy`] (platforms, TCB statuses, collateral age, whether simulated evidence
//!   is accepted), replays the [event log](eventlog) against RTMR3, checks the report data
//!   [`Binding`], and decodes the boot identity (app id, compose hash, instance id, key
//!   provider, OS image).
//! - [`compose`]: the app-compose document and its hash, sha256 of RFC 8785 canonical JSON.
//! - [`simulator`] and [`simulated_gpu`]: the development TEE and GPU, signing with published
//!   roots that verifiers trust only where the chain allows simulated TEEs.
//!
//! Synchronous, no I/O, no network: collateral is data, and the verification time is a parameter
//! (tests pin it). Every failure is a typed [`Error`] that names the check; no input panics.
//! This crate must not decide policy it cannot see (on-chain allowlists live in the registries),
//! nor produce evidence (`covenant-tee` does, with the I/O that takes).

mod error;
mod types;
mod verify;

pub mod compose;
pub mod eventlog;
pub mod nvidia;
pub mod ratls;
pub mod simulated_gpu;
pub mod simulator;
pub mod snp;
pub mod tdx;

pub use error::{Error, Result};
pub use types::{
    AppId, ComposeHash, DeviceId, GpuEvidenceHash, InstanceId, Measurement, MrAggregated,
    OsImageHash, Platform, ReportData, TcbStatus, TdMeasurements,
};
pub use verify::{
    Binding, Collateral, Evidence, MAX_EVIDENCE_LEN, PlatformMeasurements, Policy, RATLS_PREFIX,
    SNP_RUNTIME_PREFIX, VerifiedEvidence, snp_host_data, snp_report_data, tls_report_data, verify,
};

/// Re-exported so callers can build [`Collateral`] without depending on dcap-qvl themselves.
pub use dcap_qvl::QuoteCollateralV3;
