//! What an ACME CA (or another gateway node, through the shared database) hands the gateway as
//! a certificate chain: PEM, read into DER certificates, each with its validity read and its key
//! taken out. Nothing panics; a chain that reads has only certificates.
#![no_main]

use covenant_gateway::{
    certs::{lifetime, pem_chain},
    instance::spki,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(pem) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(chain) = pem_chain(pem) {
        for der in chain {
            let life = lifetime(&der);
            let key = spki(&der);
            // A certificate whose validity reads is a certificate: its key reads too.
            assert_eq!(life.is_ok(), key.is_ok(), "{life:?} {key:?}");
        }
    }
});
