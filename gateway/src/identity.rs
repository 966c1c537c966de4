//! The gateway as an app: it runs inside a TEE under the guest agent, booted as the chain's
//! `gatewayAppId`, and takes its keys from the KMS through the guest's local API — never from a
//! file or an operator.
//!
//! - [`Identity::boot`] asks the guest who it is (`Info`) and refuses to serve unless that app is
//!   the `KmsRegistry`'s `gatewayAppId` at the finalized block.
//! - The ACME account key is derived from `GetKey("gateway/acme")`: every node of the gateway app
//!   gets the same key from the KMS, so they share one ACME account without copying a key.
//! - Certificate keys are sealed in the shared database under a key derived from
//!   `GetKey("gateway/certificates")`, which only instances of the gateway app get.
//! - [`Identity::attest`] is the guest's `GetQuote`: evidence binding a statement (a certificate
//!   key, the node's well-known document) to this TEE.

use std::path::Path;

use alloy::primitives::Address;
use covenant_attest::Evidence;
use covenant_guest_api::{api::InfoResponse, client::GuestClient};
use hkdf::Hkdf;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use sha2::{Digest, Sha256};

/// The `GetKey` path of the ACME account key.
pub const ACME_KEY_PATH: &str = "gateway/acme";
/// The `GetKey` path of the key that seals certificate keys in the database.
pub const SEAL_KEY_PATH: &str = "gateway/certificates";
pub use covenant_guest_api::statements::{
    CERTIFICATE_KEY_STATEMENT, NODE_STATEMENT, certificate_key_report_data, node_report_data,
};

/// The gateway's identity as an app, and the keys it holds.
pub struct Identity {
    guest: GuestClient,
    info: InfoResponse,
    acme_pkcs8: Vec<u8>,
    seal: LessSafeKey,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("app", &self.info.app_id)
            .field("instance", &self.info.instance_id)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Asks the guest at `socket` who this is and takes the keys; refuses unless the app is
    /// `gateway_app` (the chain's `gatewayAppId` at the finalized block, read by the caller).
    pub async fn boot(socket: &Path, gateway_app: Address) -> Result<Self, String> {
        let guest = GuestClient::new(socket);
        let info = guest
            .info()
            .await
            .map_err(|e| format!("the guest's Info: {e}"))?;
        if gateway_app == Address::ZERO {
            return Err("the chain names no gatewayAppId: no gateway may serve".into());
        }
        if info.app_id != gateway_app {
            return Err(format!(
                "this instance booted as app {}, but the chain's gatewayAppId is {gateway_app}",
                info.app_id
            ));
        }
        let acme = path_key(&guest, ACME_KEY_PATH).await?;
        let seal = path_key(&guest, SEAL_KEY_PATH).await?;
        Ok(Self {
            acme_pkcs8: acme_key_pkcs8(&acme)?,
            seal: seal_key(&seal)?,
            guest,
            info,
        })
    }

    /// What the guest said about this instance.
    pub fn info(&self) -> &InfoResponse {
        &self.info
    }

    /// The instance id (20 bytes).
    pub fn instance_id(&self) -> Result<[u8; 20], String> {
        let hex = self.info.instance_id.trim_start_matches("0x");
        hex::decode(hex)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| format!("the guest's instance id {hex} is not 20 bytes"))
    }

    /// The ACME account key (PKCS#8, P-256).
    pub fn acme_account_key(&self) -> &[u8] {
        &self.acme_pkcs8
    }

    /// Evidence from this TEE over `report_data`.
    pub async fn attest(&self, report_data: &[u8; 64]) -> Result<Evidence, String> {
        self.guest
            .get_quote(report_data)
            .await
            .map(|q| q.evidence)
            .map_err(|e| format!("the guest's GetQuote: {e}"))
    }

    /// Seals `plaintext` (a certificate key) for the database, bound to `host`.
    pub fn seal(&self, host: &str, plaintext: &[u8]) -> Result<Vec<u8>, String> {
        let mut nonce = [0u8; NONCE_LEN];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
            .map_err(|_| "no randomness".to_owned())?;
        let mut sealed = plaintext.to_vec();
        self.seal
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(host.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| "sealing failed".to_owned())?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens what [`Identity::seal`] sealed for `host`; fails for anything else.
    pub fn open(&self, host: &str, sealed: &[u8]) -> Result<Vec<u8>, String> {
        if sealed.len() < NONCE_LEN {
            return Err("sealed key too short".into());
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| "bad nonce".to_owned())?;
        let mut buffer = rest.to_vec();
        let plain = self
            .seal
            .open_in_place(nonce, Aad::from(host.as_bytes()), &mut buffer)
            .map_err(|_| format!("the stored key of {host} does not open with this app's key"))?;
        Ok(plain.to_vec())
    }
}

/// The app the chain names as the gateway (`KmsRegistry.gatewayAppId`) at the view's current
/// finalized block.
pub async fn chain_gateway_app(view: &covenant_mirror::PolicyView) -> Result<Address, String> {
    let block = view.current_block().map_err(|e| format!("{e:?}"))?;
    view.chain()
        .call(
            view.registry(),
            &covenant_chain::kms_registry::KmsRegistry::gatewayAppIdCall {},
            block.hash,
        )
        .await
        .map_err(|e| format!("gatewayAppId: {e}"))
}

async fn path_key(guest: &GuestClient, path: &str) -> Result<[u8; 32], String> {
    let answer = guest
        .get_key(path)
        .await
        .map_err(|e| format!("the guest's GetKey({path}): {e}"))?;
    hex::decode(answer.key.trim_start_matches("0x"))
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("GetKey({path}) answered a key that is not 32 bytes"))
}

fn expand(secret: &[u8; 32], info: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's limit: expanding cannot fail.
    let _ = Hkdf::<Sha256>::new(Some(b"covenant-gateway"), secret).expand(info, &mut out);
    out
}

/// The P-256 ACME account key (PKCS#8 DER) derived from the `gateway/acme` path key.
pub fn acme_key_pkcs8(secret: &[u8; 32]) -> Result<Vec<u8>, String> {
    use p256::pkcs8::EncodePrivateKey;
    // A scalar out of range has probability ~2^-32; the counter makes the derivation total.
    for counter in 0u8..=255 {
        let candidate = expand(
            secret,
            &[b"acme-account-p256:".as_slice(), &[counter]].concat(),
        );
        if let Ok(key) = p256::SecretKey::from_slice(&candidate) {
            return key
                .to_pkcs8_der()
                .map(|d| d.as_bytes().to_vec())
                .map_err(|e| e.to_string());
        }
    }
    Err("no P-256 scalar derived".into())
}

fn seal_key(secret: &[u8; 32]) -> Result<LessSafeKey, String> {
    let key = expand(secret, b"certificate-keys-aes-256-gcm");
    UnboundKey::new(&AES_256_GCM, &key)
        .map(LessSafeKey::new)
        .map_err(|_| "bad sealing key".to_owned())
}

/// SHA-256, as an array.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_acme_key_is_one_p256_key_per_path_key_and_ring_accepts_it() {
        let a = acme_key_pkcs8(&[7; 32]).unwrap();
        assert_eq!(a, acme_key_pkcs8(&[7; 32]).unwrap());
        assert_ne!(a, acme_key_pkcs8(&[8; 32]).unwrap());
        instant_acme::Key::from_pkcs8_der(rustls::pki_types::PrivatePkcs8KeyDer::from(a)).unwrap();
    }

    #[test]
    fn a_sealed_key_opens_only_with_the_same_key_and_host() {
        let seal = |s: u8| seal_key(&[s; 32]).unwrap();
        let (k, other) = (seal(1), seal(2));
        let sealing = Identity {
            guest: GuestClient::new("/nonexistent"),
            info: serde_json::from_value(serde_json::json!({
                "appId": Address::ZERO, "instanceId": "0x00", "composeHash": "0x00",
                "keyGeneration": 1, "appKey": Address::ZERO, "platform": "simulated",
                "eventLog": [], "kms": {"url": "", "node": Address::ZERO,
                "rootSigner": Address::ZERO, "checkedAtBlock": 0, "auditSeq": 0}
            }))
            .unwrap(),
            acme_pkcs8: Vec::new(),
            seal: k,
        };
        let sealed = sealing.seal("a.example", b"secret key").unwrap();
        assert_eq!(sealing.open("a.example", &sealed).unwrap(), b"secret key");
        assert!(sealing.open("b.example", &sealed).is_err());
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(sealing.open("a.example", &tampered).is_err());
        let foreign = Identity {
            seal: other,
            ..sealing
        };
        assert!(foreign.open("a.example", &sealed).is_err());
    }
}
