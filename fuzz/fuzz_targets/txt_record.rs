//! `_covenant.<domain>` TXT values (one per line here): the apps named come out sorted, once
//! each, and each is spelled by one of the values (`0x` and its 40 hex digits, any case, with
//! surrounding white space).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let values: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    let apps = covenant_dns::apps_named(values.iter().copied());
    assert!(apps.windows(2).all(|w| w[0] < w[1]));
    for app in apps {
        let spelled = format!("0x{}", hex::encode(app.as_slice()));
        assert!(
            values.iter().any(|v| std::str::from_utf8(v)
                .is_ok_and(|v| v.trim().eq_ignore_ascii_case(&spelled))),
            "{spelled} named by no value"
        );
    }
});
