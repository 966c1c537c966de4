//! The crate's one error type. Every variant names what failed; none is ever a "deny" decision
//! taken on a caller's behalf, it is the reason evidence could not be accepted.

use crate::{Measurement, Platform, ReportData, TcbStatus};

/// Why evidence was rejected (or could not be produced).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field has the wrong length.
    #[error("{what} must be {expected} bytes, got {got}")]
    Length {
        /// The field.
        what: &'static str,
        /// The required length.
        expected: usize,
        /// The actual length.
        got: usize,
    },
    /// A field is larger than its bound.
    #[error("{what} is {got} bytes, more than the limit of {limit}")]
    TooLarge {
        /// The field.
        what: &'static str,
        /// The limit.
        limit: usize,
        /// The actual size.
        got: usize,
    },
    /// The evidence could not be decoded.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being decoded.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// The evidence is for another platform than it claims, or than the verifier expects.
    #[error("wrong platform: {0}")]
    WrongPlatform(String),
    /// Simulated evidence, and the policy does not allow it.
    #[error("simulated TEE evidence is not allowed by this policy")]
    SimulatedNotAllowed,
    /// The platform is not in the policy's list.
    #[error("platform {0:?} is not allowed by this policy")]
    PlatformNotAllowed(Platform),
    /// dcap-qvl rejected the TDX quote (signature, certificate chain, CRL, TCB info, QE identity).
    #[error("TDX quote rejected: {0}")]
    TdxQuote(String),
    /// The SEV-SNP report or its certificate chain did not verify.
    #[error("SEV-SNP {what} rejected: {reason}")]
    SnpVerification {
        /// Which check failed (VCEK chain, report signature, TCB, chip id).
        what: &'static str,
        /// The detail.
        reason: String,
    },
    /// The simulator's signature did not verify.
    #[error("simulated quote signature invalid: {0}")]
    SimulatorSignature(String),
    /// NVIDIA GPU evidence did not verify.
    #[error("GPU evidence rejected: {what}: {reason}")]
    Gpu {
        /// Which check failed.
        what: &'static str,
        /// The detail.
        reason: String,
    },
    /// The TCB status string is not one this crate knows.
    #[error("unknown TCB status {0}")]
    UnknownTcbStatus(String),
    /// The TCB status is not accepted by the policy.
    #[error("TCB status {status:?} is not accepted (advisories: {advisories:?})")]
    TcbNotAccepted {
        /// The platform's status.
        status: TcbStatus,
        /// Its advisories.
        advisories: Vec<String>,
    },
    /// The collateral was issued too long ago.
    #[error("collateral issued at {issued} is older than the limit of {max_age_secs} s at {now}")]
    StaleCollateral {
        /// When it was issued (unix seconds).
        issued: u64,
        /// The verification time (unix seconds).
        now: u64,
        /// The policy's limit.
        max_age_secs: u64,
    },
    /// Collateral needed for this platform was not supplied.
    #[error("no collateral supplied for {0:?}")]
    MissingCollateral(Platform),
    /// The quote's report data does not bind what it should (e.g. the TLS key).
    #[error("report data mismatch: quote has {got}, expected {expected}")]
    ReportDataMismatch {
        /// What the binding requires.
        expected: Box<ReportData>,
        /// What the quote carries.
        got: Box<ReportData>,
    },
    /// The event log is malformed or breaks a bound.
    #[error("event log rejected: {0}")]
    EventLog(String),
    /// Replaying the event log does not give the signed register.
    #[error("event log does not match the signed register: replayed {replayed}, signed {signed}")]
    EventLogMismatch {
        /// What the replay produced.
        replayed: Box<Measurement>,
        /// What the quote says.
        signed: Box<Measurement>,
    },
    /// The app-compose document is invalid.
    #[error("app-compose rejected: {0}")]
    Compose(String),
    /// RA-TLS certificate or extension problem.
    #[error("RA-TLS: {0}")]
    RaTls(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
