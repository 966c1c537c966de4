//! Env secrets: environment variables a developer encrypts to an app, which only the app's
//! instances (inside a TEE the chain allows) can read.
//!
//! - HPKE (RFC 9180) base mode: KEM DHKEM(X25519, HKDF-SHA256), KDF HKDF-SHA256, AEAD AES-256-GCM.
//! - The recipient is the app's X25519 env key, which the KMS root signer signs
//!   ([`covenant_kms_api::signatures::env_key_digest`]); [`seal`] refuses a statement whose
//!   signature does not recover to the root signer the caller trusts (read it from the chain).
//! - `info` = `"covenant-env-v1"` ‖ app id (20 bytes) ‖ key generation (u64 BE): a secret sealed
//!   for one app or generation does not open for another. `aad` is empty.
//! - The plaintext is a JSON object of names to string values, keys sorted (serde_json of a
//!   `BTreeMap`).
//! - [`open`] accepts only names the app's compose lists in `allowed_envs`, so a host that
//!   replays another deployment's secrets cannot inject a variable the app did not ask for.
//!
//! Spec and vectors: `docs/guest.md`, "Env secrets".

use std::collections::BTreeMap;

use alloy::primitives::Address;
use covenant_kms_api::{EnvKeyStatement, signatures};
use hpke::{
    Deserializable, OpModeR, OpModeS, Serializable, aead::AesGcm256, kdf::HkdfSha256,
    kem::X25519HkdfSha256,
};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The only format version.
pub const VERSION: u32 = 1;
/// The `info` prefix.
pub const INFO_PREFIX: &[u8] = b"covenant-env-v1";
/// The most variables one document may carry.
pub const MAX_VARIABLES: usize = 64;
/// The largest plaintext, in bytes.
pub const MAX_PLAINTEXT: usize = 64 * 1024;

/// Sealed env secrets, as a developer publishes them (JSON, camelCase).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EncryptedEnv {
    /// Always [`VERSION`].
    pub version: u32,
    /// The app sealed to.
    pub app_id: Address,
    /// Its key generation.
    pub key_generation: u64,
    /// The app's X25519 env public key used (hex), as the KMS root signed it.
    pub public_key: String,
    /// The HPKE encapsulated key (hex, 32 bytes).
    pub enc: String,
    /// The AES-256-GCM ciphertext and tag (hex).
    pub ciphertext: String,
}

/// Why env secrets were not sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// The env-key statement's signature is not the trusted root signer's.
    #[error("the env key of {app} is not signed by the root signer {expected}: {reason}")]
    UnsignedKey {
        /// The app.
        app: Address,
        /// The trusted root signer.
        expected: Address,
        /// What was wrong.
        reason: String,
    },
    /// A field is malformed.
    #[error("malformed env secrets: {0}")]
    Malformed(String),
    /// Sealed for another app or key generation.
    #[error("the env secrets are for app {app} generation {generation}, not this app's generation")]
    OtherApp {
        /// The app they name.
        app: Address,
        /// The generation they name.
        generation: u64,
    },
    /// Decryption failed (another key, tampered, or another app's `info`).
    #[error("the env secrets do not decrypt with this app's env key")]
    Decrypt,
    /// A name the compose does not list.
    #[error("env variable {0:?} is not in the compose's allowed_envs")]
    NotAllowed(String),
    /// Too many variables, or too large.
    #[error("env secrets too large: {0}")]
    TooLarge(String),
}

/// `info` for `app` at `generation`.
pub fn info(app: Address, generation: u64) -> Vec<u8> {
    let mut info = INFO_PREFIX.to_vec();
    info.extend_from_slice(app.as_slice());
    info.extend_from_slice(&generation.to_be_bytes());
    info
}

/// Checks that `statement` (an app's env key, as a KMS serves it) is signed by `root_signer` for
/// the deployment `chain_id` / `registry`, and returns the key.
pub fn verified_env_key(
    statement: &EnvKeyStatement,
    chain_id: u64,
    registry: Address,
    root_signer: Address,
) -> Result<[u8; 32], EnvError> {
    let unsigned = |reason: String| EnvError::UnsignedKey {
        app: statement.app_id,
        expected: root_signer,
        reason,
    };
    let public: [u8; 32] = hex::decode(statement.public_key.trim_start_matches("0x"))
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| EnvError::Malformed("the env public key is not 32 hex bytes".into()))?;
    let signature = hex::decode(statement.signature.trim_start_matches("0x"))
        .map_err(|_| EnvError::Malformed("the env key signature is not hex".into()))?;
    let digest = signatures::env_key_digest(
        chain_id,
        registry,
        statement.app_id,
        statement.key_generation,
        &public,
    );
    match signatures::recover(digest, &signature) {
        Ok(who) if who == root_signer => Ok(public),
        Ok(who) => Err(unsigned(format!("it recovers to {who}"))),
        Err(e) => Err(unsigned(e.to_string())),
    }
}

fn plaintext(variables: &BTreeMap<String, String>) -> Result<Zeroizing<Vec<u8>>, EnvError> {
    if variables.len() > MAX_VARIABLES {
        return Err(EnvError::TooLarge(format!(
            "{} variables, at most {MAX_VARIABLES}",
            variables.len()
        )));
    }
    for name in variables.keys() {
        check_name(name)?;
    }
    let bytes = Zeroizing::new(
        serde_json::to_vec(variables).map_err(|e| EnvError::Malformed(e.to_string()))?,
    );
    if bytes.len() > MAX_PLAINTEXT {
        return Err(EnvError::TooLarge(format!(
            "{} bytes, at most {MAX_PLAINTEXT}",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// Seals `variables` to the app of `statement`, whose signature must recover to `root_signer`
/// (see [`verified_env_key`]).
pub fn seal(
    statement: &EnvKeyStatement,
    chain_id: u64,
    registry: Address,
    root_signer: Address,
    variables: &BTreeMap<String, String>,
) -> Result<EncryptedEnv, EnvError> {
    let public = verified_env_key(statement, chain_id, registry, root_signer)?;
    let plaintext = plaintext(variables)?;
    let recipient = <X25519HkdfSha256 as hpke::Kem>::PublicKey::from_bytes(&public)
        .map_err(|_| EnvError::Malformed("the env public key is not an X25519 key".into()))?;
    let (enc, ciphertext) = hpke::single_shot_seal::<AesGcm256, HkdfSha256, X25519HkdfSha256>(
        &OpModeS::Base,
        &recipient,
        &info(statement.app_id, statement.key_generation),
        &plaintext,
        &[],
    )
    .map_err(|e| EnvError::Malformed(format!("sealing: {e}")))?;
    Ok(encrypted(statement, &public, &enc.to_bytes(), ciphertext))
}

fn encrypted(
    statement: &EnvKeyStatement,
    public: &[u8; 32],
    enc: &[u8],
    ciphertext: Vec<u8>,
) -> EncryptedEnv {
    EncryptedEnv {
        version: VERSION,
        app_id: statement.app_id,
        key_generation: statement.key_generation,
        public_key: hex::encode(public),
        enc: hex::encode(enc),
        ciphertext: hex::encode(ciphertext),
    }
}

/// Opens `sealed` inside an instance of `app` at `generation` with the app's env secret key, and
/// returns the variables, every one of which must be in `allowed` (the compose's `allowed_envs`).
pub fn open(
    sealed: &EncryptedEnv,
    env_secret: &[u8; 32],
    app: Address,
    generation: u64,
    allowed: &[String],
) -> Result<BTreeMap<String, Zeroizing<String>>, EnvError> {
    if sealed.version != VERSION {
        return Err(EnvError::Malformed(format!(
            "version {}, expected {VERSION}",
            sealed.version
        )));
    }
    if sealed.app_id != app || sealed.key_generation != generation {
        return Err(EnvError::OtherApp {
            app: sealed.app_id,
            generation: sealed.key_generation,
        });
    }
    let enc = hex::decode(&sealed.enc)
        .ok()
        .and_then(|b| <X25519HkdfSha256 as hpke::Kem>::EncappedKey::from_bytes(&b).ok())
        .ok_or_else(|| EnvError::Malformed("enc is not a 32-byte X25519 key".into()))?;
    let ciphertext = hex::decode(&sealed.ciphertext)
        .map_err(|_| EnvError::Malformed("the ciphertext is not hex".into()))?;
    if ciphertext.len() > MAX_PLAINTEXT + 16 {
        return Err(EnvError::TooLarge(format!("{} bytes", ciphertext.len())));
    }
    let secret = <X25519HkdfSha256 as hpke::Kem>::PrivateKey::from_bytes(env_secret)
        .map_err(|_| EnvError::Malformed("the env secret key is not an X25519 key".into()))?;
    let plaintext = Zeroizing::new(
        hpke::single_shot_open::<AesGcm256, HkdfSha256, X25519HkdfSha256>(
            &OpModeR::Base,
            &secret,
            &enc,
            &info(app, generation),
            &ciphertext,
            &[],
        )
        .map_err(|_| EnvError::Decrypt)?,
    );
    let variables: BTreeMap<String, String> = serde_json::from_slice(&plaintext)
        .map_err(|_| EnvError::Malformed("the plaintext is not a JSON object of strings".into()))?;
    if variables.len() > MAX_VARIABLES {
        return Err(EnvError::TooLarge(format!(
            "{} variables, at most {MAX_VARIABLES}",
            variables.len()
        )));
    }
    // Exactly the encoding `seal` makes (sorted keys, no spaces): a duplicate name, whose last
    // value JSON parsers keep silently, is refused.
    let canonical = Zeroizing::new(
        serde_json::to_vec(&variables).map_err(|e| EnvError::Malformed(e.to_string()))?,
    );
    if canonical.as_slice() != plaintext.as_slice() {
        return Err(EnvError::Malformed(
            "the plaintext is not in the sealed form (sorted names, each once, no spaces)".into(),
        ));
    }
    let mut out = BTreeMap::new();
    for (name, value) in variables {
        check_name(&name)?;
        if !allowed.contains(&name) {
            return Err(EnvError::NotAllowed(name));
        }
        out.insert(name, Zeroizing::new(value));
    }
    Ok(out)
}

/// An env variable name as the compose allows them (`covenant_attest::compose::is_env_name`).
fn check_name(name: &str) -> Result<(), EnvError> {
    if covenant_attest::compose::is_env_name(name) {
        Ok(())
    } else {
        Err(EnvError::Malformed(format!(
            "{name:?} is not an env variable name"
        )))
    }
}

#[cfg(test)]
mod tests;
