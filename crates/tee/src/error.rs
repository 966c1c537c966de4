//! Why evidence could not be produced.

use std::path::PathBuf;

/// A failure to produce evidence.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A kernel interface (configfs-tsm, the RTMR sysfs file) failed or answered something wrong.
    #[error("{path}: {reason}")]
    Kernel {
        /// The file or directory involved.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A blob from the kernel is larger than anything valid.
    #[error("{what} of {got} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// What it was.
        what: &'static str,
        /// The limit.
        limit: usize,
        /// Its size.
        got: usize,
    },
    /// The platform answered for another TEE than the producer is for.
    #[error("configfs-tsm produced {got:?} evidence, this producer is for {expected:?}")]
    WrongPlatform {
        /// The producer's platform.
        expected: covenant_attest::Platform,
        /// The provider's.
        got: covenant_attest::Platform,
    },
    /// The SEV-SNP certificate table from the host is malformed or has no VCEK.
    #[error("SEV-SNP certificate table: {0}")]
    CertTable(&'static str),
    /// The GPU could not produce evidence.
    #[error("GPU: {0}")]
    Gpu(String),
    /// The event log cannot be replayed.
    #[error(transparent)]
    Attest(#[from] covenant_attest::Error),
}

/// The crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
