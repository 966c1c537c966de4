//! Custom domains' DNS side: the TXT record `_covenant.<domain>` names the app whose on-chain
//! claim (`DomainRegistry`) counts. Its value is the app id, `0x` and 40 hex digits (case does not
//! matter); records of any other form are ignored. The gateway routes by it and `covenant verify`
//! checks it, so both read it here.

use alloy::primitives::Address;

/// The app ids a TXT record set names (sorted, without repeats).
pub fn apps_named<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Vec<Address> {
    let mut apps: Vec<Address> = values
        .into_iter()
        .filter_map(|v| std::str::from_utf8(v).ok())
        .map(str::trim)
        .filter(|v| v.len() == 42 && v.starts_with("0x"))
        .filter_map(|v| v.parse().ok())
        .collect();
    apps.sort();
    apps.dedup();
    apps
}

/// The TXT record's name for `domain` (canonical, no trailing dot), fully qualified.
pub fn txt_name(domain: &str) -> String {
    format!("_covenant.{domain}.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_app_ids_are_read_from_the_record() {
        let app = Address::repeat_byte(0xab);
        let upper = format!("0x{}", hex::encode_upper(app.as_slice()));
        let values: Vec<Vec<u8>> = vec![
            app.to_string().into_bytes(),
            format!(" {upper} ").into_bytes(),
            b"v=spf1 -all".to_vec(),
            hex::encode(app.as_slice()).into_bytes(),
            format!("{app}00").into_bytes(),
            vec![0xff, 0xfe],
        ];
        assert_eq!(apps_named(values.iter().map(Vec::as_slice)), vec![app]);
    }
}
