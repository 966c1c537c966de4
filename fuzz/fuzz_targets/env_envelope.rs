//! Sealed env secrets as the host hands them to the guest (`EncryptedEnv`, JSON): any envelope
//! is refused with an error or opened; what opens names only allowed variables.
#![no_main]

use alloy_primitives::Address;
use covenant_guest_api::env::{EncryptedEnv, open};
use libfuzzer_sys::fuzz_target;

/// The env key pair of the guest-api's own tests (docs/guest.md).
const ENV_SECRET: [u8; 32] = [
    0x82, 0xe1, 0xc7, 0x95, 0x76, 0x16, 0x40, 0x4b, 0x21, 0xdb, 0x14, 0x32, 0xb6, 0xb8, 0x03,
    0x8f, 0xa0, 0x53, 0xd3, 0x74, 0x41, 0xc8, 0x18, 0x89, 0xe5, 0x0e, 0x83, 0xb9, 0x25, 0xec,
    0xcc, 0x07,
];

fuzz_target!(|data: &[u8]| {
    let Ok(sealed) = serde_json::from_slice::<EncryptedEnv>(data) else {
        return;
    };
    let allowed = vec!["API_TOKEN".to_owned(), "DB_PASSWORD".to_owned()];
    if let Ok(variables) = open(&sealed, &ENV_SECRET, Address::repeat_byte(0x11), 1, &allowed) {
        assert!(variables.keys().all(|k| allowed.contains(k)));
    }
});
