//! SPDM request/response parsing and verification with the sample certificate chain.
#![no_main]

use covenant_attest::nvidia::{GpuEvidence, verify_gpu};
use libfuzzer_sys::fuzz_target;

static CHAIN: &str = include_str!("../../testdata/hopperCertChain.txt");

fuzz_target!(|data: &[u8]| {
    let evidence = GpuEvidence { report: data.to_vec(), certificate_chain: CHAIN.to_owned(), bound_key: Vec::new() };
    let mut nonce = [0; 32];
    if let Some(n) = data.get(4..36) {
        nonce.copy_from_slice(n);
    }
    let _ = verify_gpu(&evidence, &nonce, 1_795_305_600, false);
});
