//! TDX quote parsing, framing checks and dcap-qvl verification, against the sample collateral.
#![no_main]

use covenant_attest::{QuoteCollateralV3, tdx};
use libfuzzer_sys::fuzz_target;

static COLLATERAL: &[u8] = include_bytes!("../../testdata/tdx_quote_collateral.json");

fuzz_target!(|data: &[u8]| {
    let collateral: QuoteCollateralV3 = serde_json::from_slice(COLLATERAL).expect("sample collateral");
    let _ = tdx::verify_quote(data, &collateral, 1_750_377_600);
});
