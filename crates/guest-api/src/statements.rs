//! Statements Covenant's own apps attest through `GetQuote`, byte for byte: the gateway app
//! publishes evidence over them (`/.well-known/covenant`, docs/gateway.md) and verifiers — the
//! `covenant verify` command, tests — recompute them. Each is the `data` an app passes to
//! `GetQuote`; the guest binds it once more with its app-quote prefix
//! ([`crate::api::quote_report_data`]).

use sha2::{Digest, Sha512};

/// The statement prefix of an attestation over a certificate key the gateway made.
pub const CERTIFICATE_KEY_STATEMENT: &[u8] = b"covenant-gateway-certificate-key-v1:";
/// The statement prefix of a gateway node's attestation over its well-known facts.
pub const NODE_STATEMENT: &[u8] = b"covenant-gateway-node-v1:";

/// The report data of an attestation over the certificate key `spki` (DER): SHA-512 of
/// [`CERTIFICATE_KEY_STATEMENT`] and the key.
pub fn certificate_key_report_data(spki: &[u8]) -> [u8; 64] {
    let mut h = Sha512::new();
    h.update(CERTIFICATE_KEY_STATEMENT);
    h.update(spki);
    h.finalize().into()
}

/// The report data of a gateway node's attestation: SHA-512 of [`NODE_STATEMENT`], the ACME
/// account URI (empty without one), a zero byte, and the registration API's certificate key
/// (DER).
pub fn node_report_data(account_uri: &str, api_spki: &[u8]) -> [u8; 64] {
    let mut h = Sha512::new();
    h.update(NODE_STATEMENT);
    h.update(account_uri.as_bytes());
    h.update([0u8]);
    h.update(api_spki);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The account and the key cannot trade bytes: the zero byte ends the account.
    #[test]
    fn the_node_statement_separates_the_account_from_the_key() {
        assert_ne!(node_report_data("ab", b"c"), node_report_data("a", b"bc"));
        assert_ne!(
            certificate_key_report_data(b"k"),
            node_report_data("", b"k"),
            "a certificate key's statement is not a node's"
        );
    }
}
