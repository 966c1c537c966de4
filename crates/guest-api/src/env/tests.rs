use alloy::{
    primitives::B256,
    signers::{SignerSync, local::PrivateKeySigner},
};
use hpke::rand_core::{TryCryptoRng, TryRng};

use super::*;

// docs/kms.md vectors: the root signer, and the env key of app 0x11..11 at generation 1.
const ROOT_SECRET: &str = "0b175b224c74c31ee32d2428f02df23e2d9e16db6061a6d40ba1b3262a39744d";
const ENV_SECRET: &str = "82e1c7957616404b21db1432b6b8038fa053d37441c81889e50e83b925eccc07";
const ENV_PUBLIC: &str = "b6ebe4a4616909182e079b0064a7af3ef31498370880f85f10133e0e6f738f00";
const REGISTRY: &str = "0x2279B7A0a67DB372996a5FaB50D91eAA73d2eBe6";
// The published vector (docs/guest.md), computed independently of this crate by a Python RFC 9180
// implementation on the `cryptography` package's X25519, HMAC and AES-GCM.
const VECTOR_PLAINTEXT: &str = r#"{"API_TOKEN":"s3cret","DB_PASSWORD":"hunter2"}"#;
const VECTOR_EPHEMERAL_IKM: [u8; 32] = [0x5e; 32];
const VECTOR_ENC: &str = "35931816bd49e31231e52f8adf1fe4966ba57379c8adefe1c1ba8c18175a736b";
const VECTOR_CIPHERTEXT: &str = "21beafe9f12b9a6ffd50bcd66c3985566a8ee518091b35ff834c449e602ff6b931051929720ad8d36091f503b8536e4d74bc975f58263f1547b7ec5346b4";

fn app() -> Address {
    Address::repeat_byte(0x11)
}

fn registry() -> Address {
    REGISTRY.parse().unwrap()
}

fn root() -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&B256::from_slice(&hex::decode(ROOT_SECRET).unwrap())).unwrap()
}

fn env_secret() -> [u8; 32] {
    hex::decode(ENV_SECRET).unwrap().try_into().unwrap()
}

/// The env-key statement a KMS serves, signed by `signer`.
fn statement(signer: &PrivateKeySigner, app: Address, generation: u64) -> EnvKeyStatement {
    let public: [u8; 32] = hex::decode(ENV_PUBLIC).unwrap().try_into().unwrap();
    let digest = signatures::env_key_digest(31337, registry(), app, generation, &public);
    EnvKeyStatement {
        app_id: app,
        key_generation: generation,
        public_key: ENV_PUBLIC.into(),
        root_generation: 1,
        root_signer: signer.address(),
        signature: hex::encode(signer.sign_hash_sync(&digest).unwrap().as_bytes()),
    }
}

fn allowed(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

fn variables() -> BTreeMap<String, String> {
    serde_json::from_str(VECTOR_PLAINTEXT).unwrap()
}

/// Hands HPKE a fixed ephemeral key seed (vectors only).
struct FixedIkm([u8; 32]);

impl TryRng for FixedIkm {
    type Error = std::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        unreachable!("HPKE asks only for bytes")
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        unreachable!("HPKE asks only for bytes")
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        dst.copy_from_slice(&self.0[..dst.len()]);
        Ok(())
    }
}

impl TryCryptoRng for FixedIkm {}

#[test]
fn the_published_vector_matches_an_independent_implementation_and_opens() {
    let public = verified_env_key(
        &statement(&root(), app(), 1),
        31337,
        registry(),
        root().address(),
    )
    .unwrap();
    let recipient = <X25519HkdfSha256 as hpke::Kem>::PublicKey::from_bytes(&public).unwrap();
    let (enc, ciphertext) =
        hpke::single_shot_seal_with_rng::<AesGcm256, HkdfSha256, X25519HkdfSha256>(
            &OpModeS::Base,
            &recipient,
            &info(app(), 1),
            VECTOR_PLAINTEXT.as_bytes(),
            &[],
            &mut FixedIkm(VECTOR_EPHEMERAL_IKM),
        )
        .unwrap();
    assert_eq!(hex::encode(enc.to_bytes()), VECTOR_ENC);
    assert_eq!(hex::encode(&ciphertext), VECTOR_CIPHERTEXT);
    // And `plaintext` (what `seal` encrypts) is exactly the vector's plaintext.
    assert_eq!(
        plaintext(&variables()).unwrap().as_slice(),
        VECTOR_PLAINTEXT.as_bytes()
    );

    let sealed = EncryptedEnv {
        version: 1,
        app_id: app(),
        key_generation: 1,
        public_key: ENV_PUBLIC.into(),
        enc: VECTOR_ENC.into(),
        ciphertext: VECTOR_CIPHERTEXT.into(),
    };
    let opened = open(
        &sealed,
        &env_secret(),
        app(),
        1,
        &allowed(&["API_TOKEN", "DB_PASSWORD", "UNUSED"]),
    )
    .unwrap();
    assert_eq!(opened.len(), 2);
    assert_eq!(opened["DB_PASSWORD"].as_str(), "hunter2");
    assert_eq!(opened["API_TOKEN"].as_str(), "s3cret");
}

#[test]
fn sealed_secrets_open_only_for_their_app_generation_and_allowed_names() {
    let vars = variables();
    let sealed = seal(
        &statement(&root(), app(), 1),
        31337,
        registry(),
        root().address(),
        &vars,
    )
    .unwrap();
    let names = allowed(&["API_TOKEN", "DB_PASSWORD"]);
    let opened = open(&sealed, &env_secret(), app(), 1, &names).unwrap();
    assert_eq!(opened["API_TOKEN"].as_str(), "s3cret");
    // Two seals of the same secrets differ (fresh ephemeral key).
    let again = seal(
        &statement(&root(), app(), 1),
        31337,
        registry(),
        root().address(),
        &vars,
    )
    .unwrap();
    assert_ne!(again.enc, sealed.enc);

    // Another app or generation, as stated in the document.
    let other_app = Address::repeat_byte(0x12);
    assert_eq!(
        open(&sealed, &env_secret(), other_app, 1, &names),
        Err(EnvError::OtherApp {
            app: app(),
            generation: 1
        })
    );
    assert!(matches!(
        open(&sealed, &env_secret(), app(), 2, &names),
        Err(EnvError::OtherApp { .. })
    ));
    // Relabelled for another app: `info` differs, so it does not decrypt.
    let relabelled = EncryptedEnv {
        app_id: other_app,
        ..sealed.clone()
    };
    assert_eq!(
        open(&relabelled, &env_secret(), other_app, 1, &names),
        Err(EnvError::Decrypt)
    );
    let regenerated = EncryptedEnv {
        key_generation: 2,
        ..sealed.clone()
    };
    assert_eq!(
        open(&regenerated, &env_secret(), app(), 2, &names),
        Err(EnvError::Decrypt)
    );
    // Another key, or a flipped bit.
    assert_eq!(
        open(&sealed, &[7u8; 32], app(), 1, &names),
        Err(EnvError::Decrypt)
    );
    let mut flipped = hex::decode(&sealed.ciphertext).unwrap();
    flipped[0] ^= 1;
    let tampered = EncryptedEnv {
        ciphertext: hex::encode(flipped),
        ..sealed.clone()
    };
    assert_eq!(
        open(&tampered, &env_secret(), app(), 1, &names),
        Err(EnvError::Decrypt)
    );
    // A name the compose does not list.
    assert_eq!(
        open(&sealed, &env_secret(), app(), 1, &allowed(&["API_TOKEN"])),
        Err(EnvError::NotAllowed("DB_PASSWORD".into()))
    );
}

/// Seals `plaintext` as it is (not as `seal` would encode it) to the vector key.
fn sealed_raw(plaintext: &[u8]) -> EncryptedEnv {
    let public: [u8; 32] = hex::decode(ENV_PUBLIC).unwrap().try_into().unwrap();
    let recipient = <X25519HkdfSha256 as hpke::Kem>::PublicKey::from_bytes(&public).unwrap();
    let (enc, ciphertext) = hpke::single_shot_seal::<AesGcm256, HkdfSha256, X25519HkdfSha256>(
        &OpModeS::Base,
        &recipient,
        &info(app(), 1),
        plaintext,
        &[],
    )
    .unwrap();
    EncryptedEnv {
        version: 1,
        app_id: app(),
        key_generation: 1,
        public_key: ENV_PUBLIC.into(),
        enc: hex::encode(enc.to_bytes()),
        ciphertext: hex::encode(ciphertext),
    }
}

#[test]
fn only_the_sealed_form_opens_not_duplicates_or_too_many_names() {
    let names = allowed(&["A", "B"]);
    assert!(
        open(
            &sealed_raw(br#"{"A":"1","B":"2"}"#),
            &env_secret(),
            app(),
            1,
            &names
        )
        .is_ok()
    );
    for bad in [
        &br#"{"A":"1","A":"2"}"#[..],
        br#"{"B":"2","A":"1"}"#,
        br#"{"A": "1"}"#,
    ] {
        assert!(
            matches!(
                open(&sealed_raw(bad), &env_secret(), app(), 1, &names),
                Err(EnvError::Malformed(_))
            ),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    let many: BTreeMap<String, String> = (0..=MAX_VARIABLES)
        .map(|i| (format!("V{i}"), String::new()))
        .collect();
    let names: Vec<String> = many.keys().cloned().collect();
    assert!(matches!(
        open(
            &sealed_raw(&serde_json::to_vec(&many).unwrap()),
            &env_secret(),
            app(),
            1,
            &names
        ),
        Err(EnvError::TooLarge(_))
    ));
}

#[test]
fn only_a_key_the_trusted_root_signed_is_sealed_to() {
    let vars = variables();
    let impostor = PrivateKeySigner::from_bytes(&B256::repeat_byte(9)).unwrap();
    // Signed by another root.
    assert!(matches!(
        seal(
            &statement(&impostor, app(), 1),
            31337,
            registry(),
            root().address(),
            &vars
        ),
        Err(EnvError::UnsignedKey { .. })
    ));
    // Signed for another app, generation, chain or registry than the statement says.
    let mut moved = statement(&root(), app(), 1);
    moved.app_id = Address::repeat_byte(0x12);
    assert!(seal(&moved, 31337, registry(), root().address(), &vars).is_err());
    let mut bumped = statement(&root(), app(), 1);
    bumped.key_generation = 2;
    assert!(seal(&bumped, 31337, registry(), root().address(), &vars).is_err());
    let genuine = statement(&root(), app(), 1);
    assert!(seal(&genuine, 1, registry(), root().address(), &vars).is_err());
    assert!(seal(&genuine, 31337, Address::ZERO, root().address(), &vars).is_err());
    // A bad name or too many variables are refused before anything is sealed.
    let bad: BTreeMap<_, _> = [("db-password".to_owned(), "x".to_owned())].into();
    assert!(matches!(
        seal(&genuine, 31337, registry(), root().address(), &bad),
        Err(EnvError::Malformed(_))
    ));
    let many: BTreeMap<_, _> = (0..=MAX_VARIABLES)
        .map(|i| (format!("V{i}"), String::new()))
        .collect();
    assert!(matches!(
        seal(&genuine, 31337, registry(), root().address(), &many),
        Err(EnvError::TooLarge(_))
    ));
}
