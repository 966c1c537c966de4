//! The guest's local API requests as an app sends them (JSON bodies of `/GetKey`, `/GetQuote`,
//! `/EmitEvent`, `/GetTlsKey`), parsed as the guest parses them and checked as it checks them:
//! a name accepted for a TLS certificate is a lower-case DNS name of at most 253 bytes (with at
//! most a leading wildcard label); an event accepted for the event log has a valid name.
#![no_main]

use covenant_attest::eventlog::{RuntimeEvent, check_app_event};
use covenant_guest_api::api::{
    EmitEventRequest, GetKeyRequest, GetQuoteRequest, GetTlsKeyRequest, REPORT_DATA_LEN,
    is_tls_name, quote_report_data,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<GetKeyRequest>(data);
    if let Ok(r) = serde_json::from_slice::<GetQuoteRequest>(data)
        && let Ok(bytes) = hex::decode(&r.report_data)
        && let Ok(report_data) = <[u8; REPORT_DATA_LEN]>::try_from(bytes.as_slice())
    {
        // Bound to the app's domain: never the bytes the app asked for.
        assert_ne!(quote_report_data(&report_data), report_data);
    }
    if let Ok(r) = serde_json::from_slice::<EmitEventRequest>(data)
        && let Ok(payload) = hex::decode(&r.payload)
    {
        let _ = check_app_event(&RuntimeEvent::new(&r.name, payload));
    }
    if let Ok(r) = serde_json::from_slice::<GetTlsKeyRequest>(data) {
        for name in r.names.iter().filter(|n| is_tls_name(n)) {
            let rest = name.strip_prefix("*.").unwrap_or(name);
            assert!(name.len() <= 253 && !rest.is_empty(), "{name}");
            assert!(
                rest.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'),
                "{name}"
            );
            assert!(!rest.contains('*') && !rest.contains(".."), "{name}");
        }
    }
});
