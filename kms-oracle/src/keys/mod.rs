//! Key derivation (specified in docs/kms.md, with test vectors). Pure: no I/O, no randomness.
//!
//! Every key is HKDF-SHA256 of the KMS root secret:
//! - salt = `"covenant-kms-v1" ‖ chain id (u64 BE) ‖ KmsRegistry address (20 bytes)`, so keys of
//!   one deployment are useless on another chain or registry;
//! - info = a sequence of parts, each `length (u16 BE) ‖ bytes`: the purpose (ASCII), then the
//!   app id (20 bytes), the key generation (u64 BE), and the instance id (20 bytes) for
//!   per-instance keys, or the path for `GetKey`; root keys have the purpose and the registry's
//!   key generation only. Length prefixes make every info string decode one way.
//! - output: 32 bytes; a curve key that is not a valid scalar (probability ~2^-128) is derived
//!   again with a counter part appended.

use alloy::primitives::Address;
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

/// The salt's fixed prefix.
pub const SALT_PREFIX: &[u8] = b"covenant-kms-v1";

/// The KMS root secret. Never printed: `Debug` shows only that it is redacted.
pub struct RootSecret(Zeroizing<[u8; 32]>);

impl RootSecret {
    /// Wraps 32 secret bytes (the caller zeroizes its copy).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }
}

impl RootSecret {
    /// The secret bytes, for sealing and for replication to an attested, allowed KMS node only.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for RootSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RootSecret(<redacted>)")
    }
}

/// Which deployment the keys belong to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Domain {
    /// Chain id.
    pub chain_id: u64,
    /// The `KmsRegistry` proxy address.
    pub kms_registry: Address,
}

impl Domain {
    /// The HKDF salt.
    pub fn salt(&self) -> Vec<u8> {
        let mut salt = SALT_PREFIX.to_vec();
        salt.extend_from_slice(&self.chain_id.to_be_bytes());
        salt.extend_from_slice(self.kms_registry.as_slice());
        salt
    }
}

/// What a key is for, and whose it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// The disk-encryption key of one instance of an app.
    Disk {
        /// The app.
        app: Address,
        /// The app's key generation.
        generation: u64,
        /// The instance.
        instance: [u8; 20],
    },
    /// The app's X25519 key that env secrets are encrypted to.
    EnvX25519 {
        /// The app.
        app: Address,
        /// The app's key generation.
        generation: u64,
    },
    /// The app's secp256k1 key (Ethereum-verifiable).
    AppSecp256k1 {
        /// The app.
        app: Address,
        /// The app's key generation.
        generation: u64,
    },
    /// The app's P-256 CA key that signs its TLS certificates.
    AppCaP256 {
        /// The app.
        app: Address,
        /// The app's key generation.
        generation: u64,
    },
    /// A key the app asks for by path (`GetKey(path)`).
    AppPath {
        /// The app.
        app: Address,
        /// The app's key generation.
        generation: u64,
        /// The path, as given.
        path: Vec<u8>,
    },
    /// The KMS root signing key (secp256k1) of a registry key generation.
    RootSecp256k1 {
        /// The registry's key generation.
        generation: u64,
    },
    /// The KMS root CA key (P-256) of a registry key generation.
    RootCaP256 {
        /// The registry's key generation.
        generation: u64,
    },
}

fn part(out: &mut Vec<u8>, bytes: &[u8]) {
    // Parts are at most a path long; paths are bounded by the API far below 64 KiB.
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&bytes[..usize::from(len)]);
}

impl Purpose {
    /// The purpose label, first part of the info string.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Disk { .. } => "disk",
            Self::EnvX25519 { .. } => "env-x25519",
            Self::AppSecp256k1 { .. } => "app-secp256k1",
            Self::AppCaP256 { .. } => "app-ca-p256",
            Self::AppPath { .. } => "app-path",
            Self::RootSecp256k1 { .. } => "root-secp256k1",
            Self::RootCaP256 { .. } => "root-ca-p256",
        }
    }

    /// The HKDF info string.
    pub fn info(&self) -> Vec<u8> {
        let mut out = Vec::new();
        part(&mut out, self.label().as_bytes());
        match self {
            Self::Disk {
                app,
                generation,
                instance,
            } => {
                part(&mut out, app.as_slice());
                part(&mut out, &generation.to_be_bytes());
                part(&mut out, instance);
            }
            Self::EnvX25519 { app, generation }
            | Self::AppSecp256k1 { app, generation }
            | Self::AppCaP256 { app, generation } => {
                part(&mut out, app.as_slice());
                part(&mut out, &generation.to_be_bytes());
            }
            Self::AppPath {
                app,
                generation,
                path,
            } => {
                part(&mut out, app.as_slice());
                part(&mut out, &generation.to_be_bytes());
                part(&mut out, path);
            }
            Self::RootSecp256k1 { generation } | Self::RootCaP256 { generation } => {
                part(&mut out, &generation.to_be_bytes());
            }
        }
        out
    }
}

/// 32 bytes for `purpose` (with `counter` > 0 appended as one more part, for curve retries).
fn okm(root: &RootSecret, domain: &Domain, purpose: &Purpose, counter: u8) -> Zeroizing<[u8; 32]> {
    let hk = Hkdf::<Sha256>::new(Some(&domain.salt()), root.0.as_slice());
    let mut info = purpose.info();
    if counter > 0 {
        part(&mut info, &[counter]);
    }
    let mut out = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's 8160-byte limit: expand cannot fail.
    if hk.expand(&info, out.as_mut_slice()).is_err() {
        out.zeroize();
    }
    out
}

/// The raw 32-byte key for `purpose` (disk keys, path keys, X25519 secrets).
pub fn derive(root: &RootSecret, domain: &Domain, purpose: &Purpose) -> Zeroizing<[u8; 32]> {
    okm(root, domain, purpose, 0)
}

/// A secp256k1 signing key for `purpose`.
pub fn derive_secp256k1(
    root: &RootSecret,
    domain: &Domain,
    purpose: &Purpose,
) -> k256::ecdsa::SigningKey {
    let mut counter = 0u8;
    loop {
        let bytes = okm(root, domain, purpose, counter);
        if let Ok(key) = k256::ecdsa::SigningKey::from_slice(bytes.as_slice()) {
            return key;
        }
        counter = counter.wrapping_add(1);
    }
}

/// A P-256 signing key for `purpose`.
pub fn derive_p256(
    root: &RootSecret,
    domain: &Domain,
    purpose: &Purpose,
) -> p256::ecdsa::SigningKey {
    let mut counter = 0u8;
    loop {
        let bytes = okm(root, domain, purpose, counter);
        if let Ok(key) = p256::ecdsa::SigningKey::from_slice(bytes.as_slice()) {
            return key;
        }
        counter = counter.wrapping_add(1);
    }
}

/// An X25519 key pair for `purpose`.
pub fn derive_x25519(
    root: &RootSecret,
    domain: &Domain,
    purpose: &Purpose,
) -> (x25519_dalek::StaticSecret, x25519_dalek::PublicKey) {
    let bytes = derive(root, domain, purpose);
    let secret = x25519_dalek::StaticSecret::from(*bytes);
    let public = x25519_dalek::PublicKey::from(&secret);
    (secret, public)
}

/// The Ethereum address of a secp256k1 key.
pub fn ethereum_address(key: &k256::ecdsa::VerifyingKey) -> Address {
    let point = key.to_encoded_point(false);
    Address::from_raw_public_key(&point.as_bytes()[1..])
}

#[cfg(test)]
mod tests;

mod keyring;
mod release;
pub use keyring::Keyring;
pub use release::{
    AppMaterial, AppMaterialCache, LeafRequest, P256Signer, RootKeys, app_key_digest,
    env_key_digest, env_key_statement, instance_keys, pem, sign_leaf,
};
