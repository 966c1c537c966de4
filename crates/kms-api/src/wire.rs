//! The kms-oracle's wire format: one request and one response type per endpoint, serde both
//! ways, camelCase JSON. The server answers with these types and clients read them, so the two
//! cannot drift. Requests refuse unknown fields (the server must not guess); responses accept
//! them (a newer server may add fields, and a client must not mistake a grant it cannot fully
//! read for a failure). Secret material is a [`Secret`]: wiped on drop, redacted in `Debug`.

use std::collections::BTreeMap;

use alloy::primitives::{Address, B256, Bytes, FixedBytes};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// A secret string (hex key material): serialised as a plain string, wiped on drop, never shown
/// by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }
    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::new)
    }
}

/// The finalized block a decision was made at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlockRef {
    /// Its number.
    pub number: u64,
    /// Its hash.
    #[schema(value_type = String)]
    pub hash: B256,
    /// Its timestamp, unix seconds.
    pub timestamp: u64,
}

/// An error answer. `auditSeq` names the audit entry of a logged refusal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// Why.
    pub error: String,
    /// The refusal's audit entry, when it was logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_seq: Option<u64>,
}

/// `POST /v1/keys`: an attested instance asks for its app's keys.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeysRequest {
    /// The chain the client expects this KMS to serve (refused if another).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_id: Option<u64>,
    /// `GetKey` paths (at most [`MAX_PATHS`], each 1 to [`MAX_PATH_LEN`] bytes).
    #[serde(default)]
    pub paths: Vec<String>,
}

/// The most `GetKey` paths in one request.
pub const MAX_PATHS: usize = 16;
/// The longest `GetKey` path, in bytes.
pub const MAX_PATH_LEN: usize = 256;

/// An app's env-encryption public key, signed by the KMS root (also served publicly by
/// `GET /v1/apps/{app}/env-key`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvKeyStatement {
    /// The app.
    #[schema(value_type = String)]
    pub app_id: Address,
    /// The app's key generation.
    pub key_generation: u64,
    /// The X25519 public key (hex).
    pub public_key: String,
    /// The root generation that signed.
    pub root_generation: u64,
    /// The root signer.
    #[schema(value_type = String)]
    pub root_signer: Address,
    /// 65-byte signature (r ‖ s ‖ v) by the root signer over the env-key digest (docs/kms.md).
    pub signature: String,
}

/// An app's keys for one instance.
#[derive(Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppKeys {
    /// The app.
    #[schema(value_type = String)]
    pub app_id: Address,
    /// The instance.
    #[schema(value_type = String)]
    pub instance_id: FixedBytes<20>,
    /// The app's key generation.
    pub key_generation: u64,
    /// The root generation whose keys signed.
    pub root_generation: u64,
    /// The root signer.
    #[schema(value_type = String)]
    pub root_signer: Address,
    /// The disk-encryption key of this instance.
    #[schema(value_type = String)]
    pub disk_key: Secret,
    /// The env-decryption X25519 secret.
    #[schema(value_type = String)]
    pub env_secret_key: Secret,
    /// Its public key, signed by the root.
    pub env_public_key: EnvKeyStatement,
    /// The app's secp256k1 secret key.
    #[schema(value_type = String)]
    pub app_secret_key: Secret,
    /// Its address.
    #[schema(value_type = String)]
    pub app_address: Address,
    /// The root signer's signature over the app-key digest (docs/kms.md).
    pub app_key_signature: String,
    /// The app CA's P-256 secret scalar.
    #[schema(value_type = String)]
    pub app_ca_secret_key: Secret,
    /// The app CA certificate (PEM), issued by the root CA.
    pub app_ca_certificate: String,
    /// The root CA certificate (PEM).
    pub root_ca_certificate: String,
    /// `GetKey` results, path → key.
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub paths: BTreeMap<String, Secret>,
}

impl std::fmt::Debug for AppKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppKeys")
            .field("app_id", &self.app_id)
            .field("instance_id", &self.instance_id)
            .field("key_generation", &self.key_generation)
            .finish_non_exhaustive()
    }
}

/// The answer to `POST /v1/keys`.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeysResponse {
    /// The keys.
    #[serde(flatten)]
    pub keys: AppKeys,
    /// The grant's audit entry.
    pub audit_seq: u64,
    /// The block decided at.
    pub block: BlockRef,
}

/// `POST /v1/certificates`: an attested instance asks for a TLS certificate of its app.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertificateRequest {
    /// The chain the client expects this KMS to serve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_id: Option<u64>,
    /// PEM `CERTIFICATE REQUEST`.
    #[serde(default)]
    pub csr: String,
    /// What the leaf is for (default: TLS servers and clients).
    #[serde(default)]
    pub usage: TlsUsage,
}

/// What a KMS-issued leaf is for: its extended key usages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TlsUsage {
    /// TLS servers only (`serverAuth`).
    Server,
    /// TLS clients only (`clientAuth`).
    Client,
    /// Both (`serverAuth` and `clientAuth`).
    #[default]
    ServerAndClient,
}

impl TlsUsage {
    /// From the leaf's extended key usages; `None` when it has neither.
    pub fn from_flags(server: bool, client: bool) -> Option<Self> {
        match (server, client) {
            (true, true) => Some(Self::ServerAndClient),
            (true, false) => Some(Self::Server),
            (false, true) => Some(Self::Client),
            (false, false) => None,
        }
    }

    /// Whether a TLS server may present such a leaf.
    pub fn serves(self) -> bool {
        matches!(self, Self::Server | Self::ServerAndClient)
    }

    /// Whether a TLS client may present such a leaf.
    pub fn authenticates_clients(self) -> bool {
        matches!(self, Self::Client | Self::ServerAndClient)
    }
}

/// The answer to `POST /v1/certificates`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateResponse {
    /// Leaf, app CA, root CA (PEM).
    pub certificate_chain: Vec<String>,
    /// The app the leaf names.
    #[schema(value_type = String)]
    pub app_id: Address,
    /// The app's key generation (its app CA's).
    pub key_generation: u64,
    /// The grant's audit entry.
    pub audit_seq: u64,
    /// The block decided at.
    pub block: BlockRef,
}

/// `POST /v1/replicate`: an attested KMS node asks for the root secret.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicateRequest {
    /// The chain the client expects this KMS to serve. (The new node's identity address is
    /// never sent: the serving node reads it from the `kms-identity` event of the evidence.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_id: Option<u64>,
}

/// The answer to `POST /v1/replicate`.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicateResponse {
    /// The root secret (hex).
    #[schema(value_type = String)]
    pub root_secret: Secret,
    /// The transaction that recorded the onboarding.
    #[schema(value_type = String)]
    pub onboarding_tx: B256,
    /// The onboarded node.
    #[schema(value_type = String)]
    pub node: Address,
    /// The grant's audit entry.
    pub audit_seq: u64,
    /// The block decided at.
    pub block: BlockRef,
}

/// The answer to `GET /v1/apps/{app}/env-key`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvKeyResponse {
    /// The signed statement.
    #[serde(flatten)]
    pub statement: EnvKeyStatement,
    /// The block the app's generation was read at.
    pub block: BlockRef,
}

/// The answer to `GET /v1/metadata`: who this node is and whether it serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// The chain served.
    pub chain_id: u64,
    /// The `KmsRegistry` proxy.
    #[schema(value_type = String)]
    pub kms_registry: Address,
    /// The node's identity address.
    #[schema(value_type = String)]
    pub node: Address,
    /// Its aggregated measurement as of `system-ready` (what `addKmsMeasurement` allows; shared
    /// by every node of the same code, before each extends its own `kms-identity`).
    #[schema(value_type = String)]
    pub mr_aggregated: B256,
    /// Its device id.
    #[schema(value_type = String)]
    pub device_id: B256,
    /// The OS image it booted.
    #[schema(value_type = String)]
    pub os_image_hash: B256,
    /// The finalized block, when the view has a fresh one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<BlockRef>,
    /// Whether the chain lets it serve at that block.
    pub serving: bool,
    /// Why not, when it does not serve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The registered root keys, when it serves.
    #[serde(default, flatten, skip_serializing_if = "Option::is_none")]
    pub root: Option<RootKeysInfo>,
}

/// The KMS root public keys of one generation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RootKeysInfo {
    /// The generation.
    pub root_generation: u64,
    /// The root signer's address.
    #[schema(value_type = String)]
    pub root_signer: Address,
    /// The root CA public key (uncompressed SEC1).
    #[schema(value_type = String)]
    pub root_ca_public_key: Bytes,
    /// The root CA certificate (PEM).
    pub root_ca_certificate: String,
}

/// The answer to `GET /healthz`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// `serving` or `not serving`.
    pub status: String,
    /// The block it serves at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<BlockRef>,
    /// Why it does not serve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A logged decision as `GET /v1/audit/{seq}` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// The node that decided.
    #[schema(value_type = String)]
    pub node: Address,
    /// Its sequence number (1, 2, … per node, no gaps).
    pub seq: u64,
    /// The leaf hash of entry `seq - 1` (zero for the first): the log is a hash chain.
    #[schema(value_type = String)]
    pub prev: B256,
    /// Unix milliseconds.
    pub at_ms: u64,
    /// `keys`, `certificate` or `replicate`.
    pub action: String,
    /// Whether it was granted.
    pub granted: bool,
    /// Why not (empty when granted).
    pub reason: String,
    /// The app, when the evidence verified.
    #[schema(value_type = Option<String>)]
    pub app_id: Option<Address>,
    /// The instance, when the evidence verified.
    #[schema(value_type = Option<String>)]
    pub instance_id: Option<FixedBytes<20>>,
    /// The compose hash, when the evidence verified.
    #[schema(value_type = Option<String>)]
    pub compose_hash: Option<B256>,
    /// sha256 of the client certificate, when one was presented.
    #[schema(value_type = Option<String>)]
    pub evidence_digest: Option<B256>,
    /// The finalized block decided at, when one was used: a two-element array, the number (an
    /// integer) then the hash (0x-hex).
    #[schema(value_type = Option<Vec<serde_json::Value>>)]
    pub block: Option<(u64, B256)>,
}

/// An on-chain grant-log commitment covering an entry, with the entry's inclusion proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Commitment {
    /// First sequence number committed.
    pub from_seq: u64,
    /// Last sequence number committed.
    pub to_seq: u64,
    /// The RFC 6962 Merkle root committed on chain.
    #[schema(value_type = String)]
    pub root: B256,
    /// The commit transaction.
    #[schema(value_type = String)]
    pub tx_hash: B256,
    /// The entry's index in the tree.
    pub index: u64,
    /// The tree's size.
    pub tree_size: u64,
    /// The inclusion proof (RFC 6962 audit path).
    #[schema(value_type = Vec<String>)]
    pub path: Vec<B256>,
}

/// The answer to `GET /v1/audit?app=…`: an app's decisions by this node, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppAudit {
    /// The app.
    #[schema(value_type = String)]
    pub app: Address,
    /// The entries (each provable with `GET /v1/audit/{seq}`).
    pub entries: Vec<AuditEntry>,
    /// The `before` that continues the list, when there may be more.
    pub next_before: Option<u64>,
}

/// The answer to `GET /v1/audit/{seq}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntryResponse {
    /// The entry.
    pub entry: AuditEntry,
    /// Its canonical encoding (the Merkle leaf's content).
    #[schema(value_type = String)]
    pub leaf: Bytes,
    /// `SHA-256(0x00 ‖ leaf)`.
    #[schema(value_type = String)]
    pub leaf_hash: B256,
    /// The commitment covering it, once committed.
    pub commitment: Option<Commitment>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_serialise_as_strings_and_never_show_in_debug() {
        let s = Secret::new("00ff".into());
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"00ff\"");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        let back: Secret = serde_json::from_str("\"00ff\"").unwrap();
        assert_eq!(back.expose(), "00ff");
    }

    #[test]
    fn requests_refuse_unknown_fields() {
        let e = serde_json::from_str::<KeysRequest>(r#"{"paths":[],"extra":1}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `extra`"), "{e}");
        let r: KeysRequest = serde_json::from_str(r#"{"chainId":5}"#).unwrap();
        assert_eq!(
            r,
            KeysRequest {
                chain_id: Some(5),
                paths: vec![]
            }
        );
    }

    #[test]
    fn metadata_round_trips_with_and_without_root_keys() {
        let mut m = Metadata {
            chain_id: 1,
            kms_registry: Address::repeat_byte(1),
            node: Address::repeat_byte(2),
            mr_aggregated: B256::repeat_byte(3),
            device_id: B256::repeat_byte(4),
            os_image_hash: B256::repeat_byte(5),
            block: None,
            serving: false,
            reason: Some("stale".into()),
            root: None,
        };
        let text = serde_json::to_string(&m).unwrap();
        assert!(!text.contains("rootSigner"), "{text}");
        assert_eq!(serde_json::from_str::<Metadata>(&text).unwrap(), m);
        m.root = Some(RootKeysInfo {
            root_generation: 1,
            root_signer: Address::repeat_byte(6),
            root_ca_public_key: Bytes::from(vec![4u8; 65]),
            root_ca_certificate: "pem".into(),
        });
        m.serving = true;
        m.reason = None;
        let text = serde_json::to_string(&m).unwrap();
        assert!(text.contains("\"rootGeneration\":1"), "{text}");
        assert_eq!(serde_json::from_str::<Metadata>(&text).unwrap(), m);
    }
}
