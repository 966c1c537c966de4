//! SEV-SNP report parsing and verification with the sample VCEK.
#![no_main]

use covenant_attest::snp;
use libfuzzer_sys::fuzz_target;

static VCEK: &[u8] = include_bytes!("../../testdata/vcek_milan.der");

fuzz_target!(|data: &[u8]| {
    let _ = snp::verify_report(data, VCEK, 1_795_305_600);
});
