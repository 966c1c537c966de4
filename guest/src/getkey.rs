//! `GetKey(path)`: a key an app derives for its own use (a database key, a signing key), with the
//! signatures that chain it to the KMS root registered on chain.
//!
//! - secret = HKDF-SHA256(ikm = the app's secp256k1 secret from the KMS, salt =
//!   `"covenant-getkey-v1"`, info = `len(path) (u16 BE) ‖ path`), 32 bytes, used as a secp256k1
//!   scalar (in the ~2^-128 case that it is not one, derived again with a part `n` (u16 BE,
//!   length-prefixed like the path: `00 02 ‖ n`) appended, n = 1, 2, …). Every instance of the app derives the same key for the same path and key
//!   generation; another app, generation or path gives an unrelated key.
//! - the app key signs [`covenant_kms_api::signatures::path_key_digest`] of the path key's
//!   address; the KMS root signed the app key when the KMS released it. Both recover with
//!   `ecrecover`, so a contract checks a path key against `KmsRegistry.kmsRootKeys()`
//!   (`contracts/libraries/KeyChain.sol`).
//!
//! Pure: no I/O. The spec and vectors are in `docs/guest.md` and `test/data/getkey-vectors.json`.

use alloy::{
    primitives::{Address, B256},
    signers::{SignerSync, local::PrivateKeySigner},
};
use covenant_kms_api::signatures;
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

/// The HKDF salt of path keys.
pub const SALT: &[u8] = b"covenant-getkey-v1";
/// The longest path, in bytes.
pub const MAX_PATH_LEN: usize = 256;

/// Why a path key was not made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GetKeyError {
    /// The path is empty or longer than [`MAX_PATH_LEN`] bytes.
    #[error("a path is 1 to {MAX_PATH_LEN} bytes, got {0}")]
    PathLength(usize),
    /// The app key's signature from the KMS does not recover to the root signer.
    #[error("the KMS root's signature over the app key does not verify: {0}")]
    AppKeySignature(String),
    /// The app secret is not a secp256k1 key.
    #[error("the app secret is not a secp256k1 key")]
    AppSecret,
}

/// What the app key's place in the chain is: whose it is and who vouched for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppKeyContext {
    /// The chain of the KMS deployment.
    pub chain_id: u64,
    /// Its `KmsRegistry` proxy.
    pub registry: Address,
    /// The app.
    pub app: Address,
    /// The app's key generation.
    pub key_generation: u64,
    /// The KMS root signer that signed the app key.
    pub root_signer: Address,
    /// Its 65-byte signature over [`signatures::app_key_digest`].
    pub app_key_signature: Vec<u8>,
}

/// The app's signing key, checked against the root's signature: the only way to make path keys.
pub struct AppSigner {
    context: AppKeyContext,
    signer: PrivateKeySigner,
}

impl std::fmt::Debug for AppSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppSigner")
            .field("context", &self.context)
            .field("address", &self.signer.address())
            .finish_non_exhaustive()
    }
}

/// A path key and its place in the chain.
#[derive(Clone)]
pub struct PathKey {
    /// The secret (32 bytes; also a secp256k1 scalar).
    pub secret: Zeroizing<[u8; 32]>,
    /// Its Ethereum address.
    pub address: Address,
    /// The app key's 65-byte signature over [`signatures::path_key_digest`].
    pub signature: Vec<u8>,
}

impl std::fmt::Debug for PathKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PathKey")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl AppSigner {
    /// The app key `secret` that the KMS released with `context`; refused unless the root's
    /// signature in `context` is over this very key.
    pub fn new(secret: &[u8; 32], context: AppKeyContext) -> Result<Self, GetKeyError> {
        let signer = PrivateKeySigner::from_bytes(&B256::from(*secret))
            .map_err(|_| GetKeyError::AppSecret)?;
        let digest = signatures::app_key_digest(
            context.chain_id,
            context.registry,
            context.app,
            context.key_generation,
            signer.address(),
        );
        match signatures::recover(digest, &context.app_key_signature) {
            Ok(who) if who == context.root_signer => Ok(Self { context, signer }),
            Ok(who) => Err(GetKeyError::AppKeySignature(format!(
                "it recovers to {who}, not the root signer {}",
                context.root_signer
            ))),
            Err(e) => Err(GetKeyError::AppKeySignature(e.to_string())),
        }
    }

    /// Where the app key sits in the chain.
    pub fn context(&self) -> &AppKeyContext {
        &self.context
    }

    /// The app key's address.
    pub fn address(&self) -> Address {
        self.signer.address()
    }

    /// The key for `path`, signed by the app key.
    pub fn path_key(&self, path: &[u8]) -> Result<PathKey, GetKeyError> {
        if path.is_empty() || path.len() > MAX_PATH_LEN {
            return Err(GetKeyError::PathLength(path.len()));
        }
        let app_secret = Zeroizing::new(self.signer.to_bytes().0);
        let (secret, key) = derive(app_secret.as_slice(), path);
        let address = key.address();
        let c = &self.context;
        let digest = signatures::path_key_digest(
            c.chain_id,
            c.registry,
            c.app,
            c.key_generation,
            path,
            address,
        );
        let signature = self
            .signer
            .sign_hash_sync(&digest)
            .map_err(|_| GetKeyError::AppSecret)?
            .as_bytes()
            .to_vec();
        Ok(PathKey {
            secret,
            address,
            signature,
        })
    }
}

/// The path secret and its signer (the first HKDF output that is a valid scalar).
fn derive(app_secret: &[u8], path: &[u8]) -> (Zeroizing<[u8; 32]>, PrivateKeySigner) {
    let hkdf = Hkdf::<Sha256>::new(Some(SALT), app_secret);
    let mut counter: u16 = 0;
    loop {
        let mut info = Vec::with_capacity(2 + path.len() + 4);
        info.extend_from_slice(&(path.len() as u16).to_be_bytes());
        info.extend_from_slice(path);
        if counter > 0 {
            info.extend_from_slice(&2u16.to_be_bytes());
            info.extend_from_slice(&counter.to_be_bytes());
        }
        let mut okm = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's limit of 255 * 32.
        if hkdf.expand(&info, okm.as_mut_slice()).is_ok()
            && let Ok(signer) = PrivateKeySigner::from_bytes(&B256::from(*okm))
        {
            return (okm, signer);
        }
        counter = counter.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests;
