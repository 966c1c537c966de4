//! The guest's local API: HTTP/1.1 + JSON on a Unix socket, one request and one response type
//! per call (camelCase; requests refuse unknown fields). The guest answers with these types and
//! [`crate::client::GuestClient`] reads them, so the two cannot drift.
//!
//! | call | route |
//! |---|---|
//! | `Info` | `GET /Info` |
//! | `GetKey(path)` | `POST /GetKey` |
//! | `GetQuote(reportData)` | `POST /GetQuote` |
//! | `EmitEvent(name, payload)` | `POST /EmitEvent` |
//! | `GetTlsKey(names)` | `POST /GetTlsKey` |
//!
//! Errors are `{"error": "..."}` with 400 (bad input) or 503 (the guest cannot answer now).

use alloy::primitives::Address;
use covenant_attest::{Evidence, eventlog::RuntimeEvent};
use serde::{Deserialize, Serialize};

/// The longest `GetKey` path, in bytes.
pub const MAX_PATH_LEN: usize = 256;
/// `GetQuote`'s report data, in bytes.
pub const REPORT_DATA_LEN: usize = 64;

/// The KMS node that released the app's keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KmsUsed {
    /// The URL it was reached at.
    pub url: String,
    /// Its identity address.
    pub node: Address,
    /// The root signer it served with (the app's key provider).
    pub root_signer: Address,
    /// The finalized block its standing was checked at.
    pub checked_at_block: u64,
    /// The grant's audit entry on that node.
    pub audit_seq: u64,
}

/// `GET /Info`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InfoResponse {
    /// The app.
    pub app_id: Address,
    /// The instance (hex, 20 bytes).
    pub instance_id: String,
    /// The compose hash (hex, 32 bytes).
    pub compose_hash: String,
    /// The app's key generation.
    pub key_generation: u64,
    /// The app key's address.
    pub app_key: Address,
    /// The TEE platform (`tdx`, `snp`, `simulated`).
    pub platform: String,
    /// The runtime event log so far (payloads hex).
    pub event_log: Vec<RuntimeEvent>,
    /// The KMS node used.
    pub kms: KmsUsed,
}

/// `POST /GetKey`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetKeyRequest {
    /// 1 to [`MAX_PATH_LEN`] bytes.
    pub path: String,
}

/// The answer to `POST /GetKey`: the key and the signatures that chain it to the KMS root
/// (docs/guest.md, "GetKey"; `contracts/libraries/KeyChain.sol` verifies them on chain).
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetKeyResponse {
    /// The key (hex, 32 bytes; also a secp256k1 scalar).
    pub key: String,
    /// The key's Ethereum address.
    pub address: Address,
    /// The app key's signature over the path-key digest (hex, 65 bytes).
    pub signature: String,
    /// The app.
    pub app_id: Address,
    /// The app's key generation.
    pub key_generation: u64,
    /// The app key's address.
    pub app_key: Address,
    /// The root signer's signature over the app-key digest (hex, 65 bytes).
    pub app_key_signature: String,
    /// The root signer.
    pub root_signer: Address,
    /// The chain of the KMS deployment.
    pub chain_id: u64,
    /// Its `KmsRegistry`.
    pub registry: Address,
}

impl std::fmt::Debug for GetKeyResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GetKeyResponse")
            .field("address", &self.address)
            .field("app_id", &self.app_id)
            .finish_non_exhaustive()
    }
}

/// What `GetQuote` puts in the evidence's report data for the caller's `data`:
/// `SHA-512("covenant-app-quote-v1:" ‖ data)`. The prefix keeps an app's quotes apart from the
/// RA-TLS binding (`SHA-512("covenant-ratls-v1:" ‖ SPKI)`) a KMS accepts for key requests: a
/// process that can reach the socket cannot mint a credential for the app's keys.
pub fn quote_report_data(data: &[u8; REPORT_DATA_LEN]) -> [u8; REPORT_DATA_LEN] {
    use sha2::{Digest, Sha512};
    let mut h = Sha512::new();
    h.update(b"covenant-app-quote-v1:");
    h.update(data);
    h.finalize().into()
}

/// `POST /GetQuote`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetQuoteRequest {
    /// Exactly [`REPORT_DATA_LEN`] bytes, hex.
    pub report_data: String,
}

/// The answer to `POST /GetQuote`: evidence whose report data is [`quote_report_data`] of the
/// caller's bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetQuoteResponse {
    /// The evidence: platform, quote, endorsement key, event log.
    pub evidence: Evidence,
}

/// `POST /EmitEvent`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EmitEventRequest {
    /// 1–64 bytes of `a-z`, `0-9`, `-`, `.`, `_`; not a boot event's name.
    pub name: String,
    /// The payload (hex, at most 4,096 bytes).
    pub payload: String,
}

/// The answer to `POST /EmitEvent`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmitEventResponse {
    /// The event's position in the log.
    pub index: usize,
}

/// The most DNS names one `GetTlsKey` certificate may carry.
pub const MAX_TLS_NAMES: usize = 32;

/// `POST /GetTlsKey`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetTlsKeyRequest {
    /// DNS names for the certificate: 1 to [`MAX_TLS_NAMES`].
    pub names: Vec<String>,
    /// What the certificate is for: `server`, `client` or `server-and-client` (the default).
    #[serde(default)]
    pub usage: TlsUsage,
}

pub use covenant_kms_api::TlsUsage;

/// A DNS name a `GetTlsKey` certificate may carry: 1–253 bytes, labels of 1–63 `a-z 0-9 -` (not at either
/// end), optionally a leading `*.` wildcard label.
pub fn is_tls_name(name: &str) -> bool {
    let rest = name.strip_prefix("*.").unwrap_or(name);
    !rest.is_empty()
        && name.len() <= 253
        && rest.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// The answer to `POST /GetTlsKey`: a fresh key and its certificate chain under the app CA.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetTlsKeyResponse {
    /// The P-256 private key (PKCS#8 PEM), made for this call and kept nowhere else.
    pub key: String,
    /// Leaf (the key, the names, the app id, the usage asked for), app CA, root CA (PEM).
    pub certificate_chain: Vec<String>,
}

impl std::fmt::Debug for GetTlsKeyResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GetTlsKeyResponse")
            .field("certificate_chain", &self.certificate_chain.len())
            .finish_non_exhaustive()
    }
}

/// An error answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// Why.
    pub error: String,
}
