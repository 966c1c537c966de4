//! RA-TLS certificates: X.509 parsing, the evidence extension, and its verification.
#![no_main]

use covenant_attest::{Collateral, Policy, ratls, simulator::SimulatorRootKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let policy = Policy { simulator_root: Some(SimulatorRootKey::development().root()), ..Policy::default() };
    let _ = ratls::verify_certificate(data, &Collateral::default(), &policy, 1_795_305_600);
});
