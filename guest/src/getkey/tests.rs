use std::path::PathBuf;

use alloy::primitives::{Address, B256, hex};
use serde::{Deserialize, Serialize};

use super::*;

// The docs/kms.md vectors: root secret 00..1f, chain 31337, this registry, app 0x11..11,
// generation 1 give these root and app secp256k1 keys.
const ROOT_SECRET: &str = "0b175b224c74c31ee32d2428f02df23e2d9e16db6061a6d40ba1b3262a39744d";
const ROOT_SIGNER: &str = "0x631d9D6766821c77b07d471C16468a18Fb52C158";
const APP_SECRET: &str = "7d101cb0531d86d59e34944836179a594dcedc485760daaeb3f72f44f01e988b";
const APP_ADDRESS: &str = "0x59e73BB180749642719D18C5E4300382267d36cc";
const REGISTRY: &str = "0x2279B7A0a67DB372996a5FaB50D91eAA73d2eBe6";
// HKDF-SHA256 outputs computed independently of this crate (Python hmac/hashlib, RFC 5869).
const INDEPENDENT: [(&str, &str); 2] = [
    (
        "db/password",
        "4e5c91b1c3bbf4dc7637544ada73c39f82b30bbadff5ceae7a1355675786bde4",
    ),
    (
        "tls/ü",
        "002096cc27e489dfcdbc27894ba4c11ddcd0150f1182f0ac3a30cf82dcd3f86f",
    ),
];

fn secret(hex_str: &str) -> [u8; 32] {
    hex::decode(hex_str).unwrap().try_into().unwrap()
}

fn context(root: &PrivateKeySigner, app_key: Address) -> AppKeyContext {
    let (chain_id, registry, app) = (31337, REGISTRY.parse().unwrap(), Address::repeat_byte(0x11));
    let digest = signatures::app_key_digest(chain_id, registry, app, 1, app_key);
    AppKeyContext {
        chain_id,
        registry,
        app,
        key_generation: 1,
        root_signer: root.address(),
        app_key_signature: root.sign_hash_sync(&digest).unwrap().as_bytes().to_vec(),
    }
}

fn vector_signer() -> AppSigner {
    let root = PrivateKeySigner::from_bytes(&B256::from(secret(ROOT_SECRET))).unwrap();
    assert_eq!(root.address(), ROOT_SIGNER.parse::<Address>().unwrap());
    let app = secret(APP_SECRET);
    let app_address = PrivateKeySigner::from_bytes(&B256::from(app))
        .unwrap()
        .address();
    assert_eq!(app_address, APP_ADDRESS.parse::<Address>().unwrap());
    AppSigner::new(&app, context(&root, app_address)).unwrap()
}

/// `test/data/getkey-vectors.json`: what the forge test of `KeyChain.sol` verifies on chain.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Vectors {
    chain_id: u64,
    registry: Address,
    app: Address,
    key_generation: u64,
    root_signer: Address,
    app_key: Address,
    app_key_signature: String,
    paths: Vec<PathVector>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PathVector {
    path: String,
    secret: String,
    address: Address,
    signature: String,
}

fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../test/data/getkey-vectors.json")
}

#[test]
fn path_keys_match_the_independent_hkdf_and_the_published_vectors() {
    let signer = vector_signer();
    let c = signer.context().clone();
    let mut paths = Vec::new();
    for (path, expected) in INDEPENDENT {
        let key = signer.path_key(path.as_bytes()).unwrap();
        assert_eq!(hex::encode(key.secret.as_slice()), expected, "{path}");
        // The chain: path key ← app key ← root signer.
        let digest = signatures::path_key_digest(
            c.chain_id,
            c.registry,
            c.app,
            c.key_generation,
            path.as_bytes(),
            key.address,
        );
        assert_eq!(
            signatures::recover(digest, &key.signature),
            Ok(signer.address())
        );
        paths.push(PathVector {
            path: path.into(),
            secret: hex::encode_prefixed(key.secret.as_slice()),
            address: key.address,
            signature: hex::encode_prefixed(&key.signature),
        });
    }
    let vectors = Vectors {
        chain_id: c.chain_id,
        registry: c.registry,
        app: c.app,
        key_generation: c.key_generation,
        root_signer: c.root_signer,
        app_key: signer.address(),
        app_key_signature: hex::encode_prefixed(&c.app_key_signature),
        paths,
    };
    let file = vectors_path();
    if std::env::var_os("COVENANT_WRITE_VECTORS").is_some() {
        let text = serde_json::to_string_pretty(&vectors).unwrap() + "\n";
        std::fs::write(&file, text).unwrap();
    }
    let published: Vectors = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(
        published, vectors,
        "test/data/getkey-vectors.json is stale (COVENANT_WRITE_VECTORS=1 rewrites it)"
    );
}

#[test]
fn a_path_key_is_stable_and_separated_by_path_app_key_and_length() {
    let signer = vector_signer();
    let a = signer.path_key(b"db").unwrap();
    assert_eq!(signer.path_key(b"db").unwrap().secret, a.secret);
    assert_ne!(signer.path_key(b"dc").unwrap().secret, a.secret);
    // Length prefixes: no path is a prefix-collision of another.
    assert_ne!(signer.path_key(b"db\0").unwrap().secret, a.secret);
    // Another app key gives another key for the same path.
    let root = PrivateKeySigner::from_bytes(&B256::from(secret(ROOT_SECRET))).unwrap();
    let other_secret = [0x42; 32];
    let other_address = PrivateKeySigner::from_bytes(&B256::from(other_secret))
        .unwrap()
        .address();
    let other = AppSigner::new(&other_secret, context(&root, other_address)).unwrap();
    assert_ne!(other.path_key(b"db").unwrap().secret, a.secret);
    // Bounds.
    assert_eq!(
        signer.path_key(b"").unwrap_err(),
        GetKeyError::PathLength(0)
    );
    assert!(signer.path_key(&[b'a'; MAX_PATH_LEN]).is_ok());
    assert_eq!(
        signer.path_key(&[b'a'; MAX_PATH_LEN + 1]).unwrap_err(),
        GetKeyError::PathLength(MAX_PATH_LEN + 1)
    );
}

#[test]
fn an_app_key_the_root_did_not_sign_is_refused() {
    let root = PrivateKeySigner::from_bytes(&B256::from(secret(ROOT_SECRET))).unwrap();
    let app = secret(APP_SECRET);
    let app_address: Address = APP_ADDRESS.parse().unwrap();
    // Signed for another key, another generation, by another root, or garbled.
    let for_other_key = context(&root, Address::repeat_byte(0x99));
    assert!(matches!(
        AppSigner::new(&app, for_other_key),
        Err(GetKeyError::AppKeySignature(_))
    ));
    let mut other_generation = context(&root, app_address);
    other_generation.key_generation = 2;
    assert!(AppSigner::new(&app, other_generation).is_err());
    let impostor = PrivateKeySigner::from_bytes(&B256::repeat_byte(3)).unwrap();
    let mut by_impostor = context(&impostor, app_address);
    by_impostor.root_signer = root.address();
    assert!(AppSigner::new(&app, by_impostor).is_err());
    let mut truncated = context(&root, app_address);
    truncated.app_key_signature.pop();
    assert!(AppSigner::new(&app, truncated).is_err());
    // The genuine one is accepted.
    assert!(AppSigner::new(&app, context(&root, app_address)).is_ok());
}
