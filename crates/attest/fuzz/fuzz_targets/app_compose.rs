//! app-compose validation and canonical hashing; a document that hashes must hash the same after
//! a round trip through serde_json (whitespace and key order do not matter).
#![no_main]

use covenant_attest::compose::compose_hash;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((_, hash)) = compose_hash(data) {
        let value: serde_json::Value = serde_json::from_slice(data).expect("it parsed once");
        let pretty = serde_json::to_vec_pretty(&value).expect("serialisable");
        let (_, again) = compose_hash(&pretty).expect("the same document, reformatted");
        assert_eq!(hash, again);
    }
});
