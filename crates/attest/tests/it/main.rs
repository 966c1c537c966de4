//! Verification against real TDX and SEV-SNP evidence, and the whole pipeline with the simulator.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod nvidia;
mod properties;
mod ratls;
mod simulated;
mod snp;
mod tdx;

use std::path::PathBuf;

pub fn testdata(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The real Hopper GPU evidence and the nonce it was made with.
pub fn gpu_sample() -> (covenant_attest::nvidia::GpuEvidence, [u8; 32]) {
    let text = |name: &str| String::from_utf8(testdata(name)).unwrap();
    let report = hex::decode(text("hopperAttestationReport.txt").trim()).unwrap();
    let nonce = hex::decode(text("nonce.txt").trim())
        .unwrap()
        .try_into()
        .unwrap();
    let evidence = covenant_attest::nvidia::GpuEvidence {
        report,
        certificate_chain: text("hopperCertChain.txt"),
        bound_key: Vec::new(),
    };
    (evidence, nonce)
}
