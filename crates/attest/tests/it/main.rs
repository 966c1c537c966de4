//! Verification against real TDX and SEV-SNP evidence, and the whole pipeline with the simulator.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

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
