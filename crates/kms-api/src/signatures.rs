//! What KMS-rooted signatures are made over, and how they are checked.
//!
//! Every digest is `keccak256(abi.encodePacked(...))` with a domain string first, so the same
//! signature verifies with `ecrecover` on chain (`contracts/libraries/KeyChain.sol`) and here:
//!
//! - the KMS root signer signs an app's secp256k1 key ([`app_key_digest`]) and its X25519
//!   env-encryption key ([`env_key_digest`]);
//! - an app's key signs each `GetKey` path key ([`path_key_digest`]), so a path key chains up to
//!   the root signer registered on chain (`KmsRegistry.kmsRootKeys`).
//!
//! Signatures are 65 bytes `r ‖ s ‖ v` (v = 27 or 28) with `s` in the lower half of the group
//! order, the form OpenZeppelin's `ECDSA.recover` accepts; [`recover`] refuses any other.

use alloy::primitives::{Address, B256, Signature, U256, keccak256};

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Not 65 bytes.
    #[error("a signature is 65 bytes (r, s, v), got {0}")]
    Length(usize),
    /// `v` is not 27 or 28.
    #[error("signature v must be 27 or 28, got {0}")]
    V(u8),
    /// `s` in the upper half of the order (the malleable twin of a valid signature).
    #[error("signature s is not in the lower half of the group order")]
    HighS,
    /// Nothing can be recovered.
    #[error("no key recovers from the signature")]
    Unrecoverable,
}

fn packed(
    domain: &[u8],
    chain_id: u64,
    registry: Address,
    app: Address,
    generation: u64,
) -> Vec<u8> {
    let mut m = Vec::with_capacity(domain.len() + 32 + 20 + 20 + 8 + 32);
    m.extend_from_slice(domain);
    m.extend_from_slice(&U256::from(chain_id).to_be_bytes::<32>());
    m.extend_from_slice(registry.as_slice());
    m.extend_from_slice(app.as_slice());
    m.extend_from_slice(&generation.to_be_bytes());
    m
}

/// `keccak256("covenant-app-key-v1" ‖ chainId (uint256) ‖ registry ‖ app ‖ keyGeneration
/// (uint64) ‖ app key address)`: what the root signer signs for an app's secp256k1 key.
pub fn app_key_digest(
    chain_id: u64,
    registry: Address,
    app: Address,
    generation: u64,
    app_key: Address,
) -> B256 {
    let mut m = packed(b"covenant-app-key-v1", chain_id, registry, app, generation);
    m.extend_from_slice(app_key.as_slice());
    keccak256(m)
}

/// `keccak256("covenant-env-key-v1" ‖ chainId (uint256) ‖ registry ‖ app ‖ keyGeneration
/// (uint64) ‖ X25519 public key (32))`: what the root signer signs for an app's env key.
pub fn env_key_digest(
    chain_id: u64,
    registry: Address,
    app: Address,
    generation: u64,
    public: &[u8; 32],
) -> B256 {
    let mut m = packed(b"covenant-env-key-v1", chain_id, registry, app, generation);
    m.extend_from_slice(public);
    keccak256(m)
}

/// `keccak256("covenant-path-key-v1" ‖ chainId (uint256) ‖ registry ‖ app ‖ keyGeneration
/// (uint64) ‖ keccak256(path) ‖ path key address)`: what an app's key signs for the key
/// `GetKey(path)` returned.
pub fn path_key_digest(
    chain_id: u64,
    registry: Address,
    app: Address,
    generation: u64,
    path: &[u8],
    path_key: Address,
) -> B256 {
    let mut m = packed(b"covenant-path-key-v1", chain_id, registry, app, generation);
    m.extend_from_slice(keccak256(path).as_slice());
    m.extend_from_slice(path_key.as_slice());
    keccak256(m)
}

/// The address that signed `digest`, for a 65-byte `r ‖ s ‖ v` signature in the canonical form.
pub fn recover(digest: B256, signature: &[u8]) -> Result<Address, SignatureError> {
    let bytes: &[u8; 65] = signature
        .try_into()
        .map_err(|_| SignatureError::Length(signature.len()))?;
    let v = bytes[64];
    if v != 27 && v != 28 {
        return Err(SignatureError::V(v));
    }
    let s = U256::from_be_slice(&bytes[32..64]);
    if s > HALF_ORDER {
        return Err(SignatureError::HighS);
    }
    let signature = Signature::from_bytes_and_parity(&bytes[..64], v == 28);
    signature
        .recover_address_from_prehash(&digest)
        .map_err(|_| SignatureError::Unrecoverable)
}

/// Half the secp256k1 group order, rounded down (the largest `s` accepted).
const HALF_ORDER: U256 = U256::from_limbs([
    0xdfe9_2f46_681b_20a0,
    0x5d57_6e73_57a4_501d,
    0xffff_ffff_ffff_ffff,
    0x7fff_ffff_ffff_ffff,
]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_the_packed_encodings_with_their_domains() {
        let (registry, app, key) = (
            Address::repeat_byte(0x22),
            Address::repeat_byte(0x11),
            Address::repeat_byte(0x33),
        );
        let d = app_key_digest(31337, registry, app, 1, key);
        let mut m = b"covenant-app-key-v1".to_vec();
        m.extend_from_slice(&[0u8; 30]);
        m.extend_from_slice(&[0x7a, 0x69]);
        m.extend_from_slice(&[0x22; 20]);
        m.extend_from_slice(&[0x11; 20]);
        m.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]);
        m.extend_from_slice(&[0x33; 20]);
        assert_eq!(d, keccak256(&m));
        // Each field and each domain separates.
        assert_ne!(d, app_key_digest(31337, registry, app, 2, key));
        assert_ne!(d, app_key_digest(1, registry, app, 1, key));
        let path = path_key_digest(31337, registry, app, 1, b"db", key);
        assert_ne!(path, path_key_digest(31337, registry, app, 1, b"dc", key));
        assert_ne!(path, d);
    }

    #[test]
    fn only_canonical_signatures_recover() {
        use alloy::signers::{SignerSync, local::PrivateKeySigner};
        let signer = PrivateKeySigner::from_bytes(&B256::repeat_byte(7)).unwrap();
        let digest = keccak256(b"x");
        let sig = signer.sign_hash_sync(&digest).unwrap();
        let mut bytes = sig.as_bytes().to_vec();
        assert_eq!(recover(digest, &bytes), Ok(signer.address()));
        assert_ne!(recover(keccak256(b"y"), &bytes), Ok(signer.address()));
        assert_eq!(
            recover(digest, &bytes[..64]),
            Err(SignatureError::Length(64))
        );
        // The malleable twin (n - s, flipped v) is refused.
        let n = U256::from_be_slice(&[
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c,
            0xd0, 0x36, 0x41, 0x41,
        ]);
        let s = U256::from_be_slice(&bytes[32..64]);
        let mut twin = bytes.clone();
        twin[32..64].copy_from_slice(&(n - s).to_be_bytes::<32>());
        twin[64] = if twin[64] == 27 { 28 } else { 27 };
        assert_eq!(recover(digest, &twin), Err(SignatureError::HighS));
        bytes[64] = 1;
        assert_eq!(recover(digest, &bytes), Err(SignatureError::V(1)));
    }
}
