//! The gateway's names: what a client's SNI or `Host` header asks for. A canonical name is
//! canonical again, lower case and at most 253 bytes; an app's name is exactly the gateway's own
//! spelling of that app (so one app has one name and no custom domain can shadow it); a custom
//! domain is never under the base domain; the `Host` header never yields a name with a port,
//! upper case or a trailing dot.
#![no_main]

use covenant_gateway::{
    http::requested_host,
    names::{MAX_NAME_LEN, Target, app_host, canonical, target},
};
use libfuzzer_sys::fuzz_target;

const BASE: &str = "apps.example";

fuzz_target!(|data: &[u8]| {
    if let Ok(name) = std::str::from_utf8(data) {
        let canonical_name = canonical(name).ok();
        if let Some(c) = &canonical_name {
            assert!(c.len() <= MAX_NAME_LEN, "{c}");
            assert!(!c.bytes().any(|b| b.is_ascii_uppercase()), "{c}");
            assert_eq!(canonical(c).ok().as_deref(), Some(c.as_str()));
        }
        match target(name, BASE) {
            Ok(Target::App { app, port }) => {
                assert_eq!(Some(app_host(app, port, BASE)), canonical_name, "{name}");
            }
            Ok(Target::Custom(c)) => {
                assert_eq!(Some(&c), canonical_name.as_ref());
                assert!(!c.ends_with(".apps.example") && c != BASE, "{c}");
            }
            Err(_) => {}
        }
    }
    if let Ok(value) = http::HeaderValue::from_bytes(data) {
        let Ok(request) = http::Request::builder()
            .header(http::header::HOST, value)
            .body(())
        else {
            return;
        };
        let (parts, ()) = request.into_parts();
        if let Some(host) = requested_host(&parts) {
            assert!(!host.is_empty() && host.len() <= MAX_NAME_LEN, "{host}");
            assert!(
                !host.bytes().any(|b| b.is_ascii_uppercase() || b == b':'),
                "{host}"
            );
            assert!(!host.ends_with('.'), "{host}");
        }
    }
});
