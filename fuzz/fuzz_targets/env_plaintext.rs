//! The plaintext inside sealed env secrets: the input is sealed to the app's env key exactly as
//! `covenant env encrypt` would (HPKE base mode, the app and generation bound in `info`) and
//! opened as the guest does. What opens is exactly the canonical encoding of what it yields (no
//! duplicate names, no reordering), with allowed, well-formed names only.
#![no_main]

use std::collections::BTreeMap;

use alloy_primitives::Address;
use covenant_guest_api::env::{EncryptedEnv, info, open};
use hpke::{
    Deserializable, OpModeS, Serializable, aead::AesGcm256, kdf::HkdfSha256,
    kem::X25519HkdfSha256,
};
use libfuzzer_sys::fuzz_target;

/// The env key pair of the guest-api's own tests (docs/guest.md).
const ENV_SECRET: [u8; 32] = [
    0x82, 0xe1, 0xc7, 0x95, 0x76, 0x16, 0x40, 0x4b, 0x21, 0xdb, 0x14, 0x32, 0xb6, 0xb8, 0x03,
    0x8f, 0xa0, 0x53, 0xd3, 0x74, 0x41, 0xc8, 0x18, 0x89, 0xe5, 0x0e, 0x83, 0xb9, 0x25, 0xec,
    0xcc, 0x07,
];
const ENV_PUBLIC: [u8; 32] = [
    0xb6, 0xeb, 0xe4, 0xa4, 0x61, 0x69, 0x09, 0x18, 0x2e, 0x07, 0x9b, 0x00, 0x64, 0xa7, 0xaf,
    0x3e, 0xf3, 0x14, 0x98, 0x37, 0x08, 0x80, 0xf8, 0x5f, 0x10, 0x13, 0x3e, 0x0e, 0x6f, 0x73,
    0x8f, 0x00,
];

fuzz_target!(|data: &[u8]| {
    let app = Address::repeat_byte(0x11);
    let recipient = <X25519HkdfSha256 as hpke::Kem>::PublicKey::from_bytes(&ENV_PUBLIC)
        .expect("the test key is an X25519 key");
    let (enc, ciphertext) = hpke::single_shot_seal::<AesGcm256, HkdfSha256, X25519HkdfSha256>(
        &OpModeS::Base,
        &recipient,
        &info(app, 1),
        data,
        &[],
    )
    .expect("sealing");
    let sealed = EncryptedEnv {
        version: 1,
        app_id: app,
        key_generation: 1,
        public_key: hex::encode(ENV_PUBLIC),
        enc: hex::encode(enc.to_bytes()),
        ciphertext: hex::encode(ciphertext),
    };
    let allowed = vec!["API_TOKEN".to_owned(), "DB_PASSWORD".to_owned(), "A".to_owned()];
    if let Ok(variables) = open(&sealed, &ENV_SECRET, app, 1, &allowed) {
        let plain: BTreeMap<&str, &str> = variables
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(serde_json::to_vec(&plain).expect("serialisable"), data);
        assert!(variables.keys().all(|k| allowed.contains(k)));
    }
});
