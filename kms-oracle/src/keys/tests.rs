//! Test vectors (docs/kms.md). The raw outputs were computed independently of this crate, with
//! Python's `hmac`/`hashlib` (HKDF-SHA256 per RFC 5869) over the documented salt and info.

use super::*;
use alloy::primitives::address;
use covenant_kms_api::AppKeys;

fn root() -> RootSecret {
    let mut b = [0u8; 32];
    for (i, x) in b.iter_mut().enumerate() {
        *x = i as u8;
    }
    RootSecret::from_bytes(b)
}

fn domain() -> Domain {
    Domain {
        chain_id: 31337,
        kms_registry: address!("2279B7A0a67DB372996a5FaB50D91eAA73d2eBe6"),
    }
}

const APP: Address = Address::repeat_byte(0x11);
const INSTANCE: [u8; 20] = [0x22; 20];

fn vectors() -> Vec<(Purpose, &'static str, &'static str)> {
    vec![
        (
            Purpose::Disk {
                app: APP,
                generation: 1,
                instance: INSTANCE,
            },
            "00046469736b001411111111111111111111111111111111111111110008000000000000000100142222222222222222222222222222222222222222",
            "4eec9e057895590b697f1f8215cc9b61b4370b64d664cbee78a5cb400819cc0a",
        ),
        (
            Purpose::EnvX25519 {
                app: APP,
                generation: 1,
            },
            "000a656e762d7832353531390014111111111111111111111111111111111111111100080000000000000001",
            "82e1c7957616404b21db1432b6b8038fa053d37441c81889e50e83b925eccc07",
        ),
        (
            Purpose::AppSecp256k1 {
                app: APP,
                generation: 1,
            },
            "000d6170702d736563703235366b310014111111111111111111111111111111111111111100080000000000000001",
            "7d101cb0531d86d59e34944836179a594dcedc485760daaeb3f72f44f01e988b",
        ),
        (
            Purpose::AppCaP256 {
                app: APP,
                generation: 1,
            },
            "000b6170702d63612d703235360014111111111111111111111111111111111111111100080000000000000001",
            "60913b90abf24b416d490e5164d91beb2b5f75bfdf0cf6a094ea21fdc1f70e7b",
        ),
        (
            Purpose::AppPath {
                app: APP,
                generation: 1,
                path: b"db/password".to_vec(),
            },
            "00086170702d706174680014111111111111111111111111111111111111111100080000000000000001000b64622f70617373776f7264",
            "d973d4b77a5958ce7b1c5e91db48e77772cae11ab4a9c87a621c24b72d6719e5",
        ),
        (
            Purpose::RootSecp256k1 { generation: 1 },
            "000e726f6f742d736563703235366b3100080000000000000001",
            "0b175b224c74c31ee32d2428f02df23e2d9e16db6061a6d40ba1b3262a39744d",
        ),
        (
            Purpose::RootCaP256 { generation: 1 },
            "000c726f6f742d63612d7032353600080000000000000001",
            "71aaf3789f92d6a2c6cf548cda21f2c789f82334cdd87112b5fe15fe2b10b3c1",
        ),
    ]
}

#[test]
fn salt_and_info_encodings_match_the_specification() {
    assert_eq!(
        hex::encode(domain().salt()),
        "636f76656e616e742d6b6d732d76310000000000007a692279b7a0a67db372996a5fab50d91eaa73d2ebe6"
    );
    for (purpose, info, _) in vectors() {
        assert_eq!(hex::encode(purpose.info()), info, "{}", purpose.label());
    }
}

#[test]
fn derived_bytes_match_an_independent_implementation() {
    for (purpose, _, okm) in vectors() {
        assert_eq!(
            hex::encode(derive(&root(), &domain(), &purpose).as_slice()),
            okm,
            "{}",
            purpose.label()
        );
    }
}

#[test]
fn public_keys_match_the_published_vectors() {
    let (r, d) = (root(), domain());
    let root_signer = derive_secp256k1(&r, &d, &Purpose::RootSecp256k1 { generation: 1 });
    let app_signer = derive_secp256k1(
        &r,
        &d,
        &Purpose::AppSecp256k1 {
            app: APP,
            generation: 1,
        },
    );
    let (_, env) = derive_x25519(
        &r,
        &d,
        &Purpose::EnvX25519 {
            app: APP,
            generation: 1,
        },
    );
    let root_ca = derive_p256(&r, &d, &Purpose::RootCaP256 { generation: 1 });
    let app_ca = derive_p256(
        &r,
        &d,
        &Purpose::AppCaP256 {
            app: APP,
            generation: 1,
        },
    );
    let got = [
        ethereum_address(root_signer.verifying_key()).to_checksum(None),
        ethereum_address(app_signer.verifying_key()).to_checksum(None),
        hex::encode(env.as_bytes()),
        hex::encode(root_ca.verifying_key().to_encoded_point(false).as_bytes()),
        hex::encode(app_ca.verifying_key().to_encoded_point(false).as_bytes()),
    ];
    assert_eq!(got, PUBLISHED);
}

/// Root signer address, app signer address, app env X25519 public key, root CA and app CA P-256
/// public keys (uncompressed SEC1), for the inputs above.
const PUBLISHED: [&str; 5] = [
    "0x631d9D6766821c77b07d471C16468a18Fb52C158",
    "0x59e73BB180749642719D18C5E4300382267d36cc",
    "b6ebe4a4616909182e079b0064a7af3ef31498370880f85f10133e0e6f738f00",
    "045271c740dc0bab4ebf8285dd2f6bd50762e023391ca100c1b008bc80c8ad274d2a74dee04a39f0d0ee0b0fae5effaa3adf2ee7cc27a8e1c70a92c238597f5c18",
    "0486ce371afce5bba96765e33a390f9f851c3449b72cd19b2383089cea8d47aa7d24c5bef5a539184cedcb9992a16e317f7ac85828891a5af84165b9048772a3a0",
];

#[test]
fn every_input_separates_keys() {
    let (r, d) = (root(), domain());
    let disk = |app: Address, generation: u64, instance: [u8; 20], d: &Domain| {
        derive(
            &r,
            d,
            &Purpose::Disk {
                app,
                generation,
                instance,
            },
        )
    };
    let base = disk(APP, 1, INSTANCE, &d);
    assert_eq!(base, disk(APP, 1, INSTANCE, &d), "deterministic");
    assert_ne!(base, disk(APP, 1, [0x23; 20], &d), "per instance");
    assert_ne!(base, disk(APP, 2, INSTANCE, &d), "per key generation");
    assert_ne!(
        base,
        disk(Address::repeat_byte(0x12), 1, INSTANCE, &d),
        "per app"
    );
    assert_ne!(
        base,
        disk(APP, 1, INSTANCE, &Domain { chain_id: 1, ..d }),
        "per chain"
    );
    let other_registry = Domain {
        kms_registry: Address::repeat_byte(0x33),
        ..d
    };
    assert_ne!(
        base,
        disk(APP, 1, INSTANCE, &other_registry),
        "per registry"
    );
    let other_root = RootSecret::from_bytes([0xff; 32]);
    assert_ne!(
        *base,
        *derive(
            &other_root,
            &d,
            &Purpose::Disk {
                app: APP,
                generation: 1,
                instance: INSTANCE
            }
        )
    );
    // Length prefixes: a path that spells another purpose's parts derives another key.
    let mut crafted = Vec::new();
    part(&mut crafted, &INSTANCE);
    let path_key = derive(
        &r,
        &d,
        &Purpose::AppPath {
            app: APP,
            generation: 1,
            path: crafted,
        },
    );
    assert_ne!(*path_key, *base);
}

#[test]
fn the_root_secret_is_never_printed() {
    assert_eq!(format!("{:?}", root()), "RootSecret(<redacted>)");
}

#[test]
fn keys_from_cached_app_material_are_the_specified_derivations() {
    let (r, d) = (root(), domain());
    let roots = RootKeys::derive(&r, &d, 1).unwrap();
    let cache = AppMaterialCache::default();
    let json = |k: &AppKeys| serde_json::to_value(k).unwrap();
    let paths = ["db".to_owned(), "tls".to_owned()];
    assert!(cache.cached(APP, 1, roots.generation).is_none());
    for instance in [INSTANCE, [0x23; 20]] {
        let material = cache.get_or_derive(&r, &d, &roots, APP, 1).unwrap();
        let keys = json(&instance_keys(&r, &d, &material, instance.into(), &paths));
        // Per instance: the disk key; per app: everything else, as published and specified.
        let disk = derive(
            &r,
            &d,
            &Purpose::Disk {
                app: APP,
                generation: 1,
                instance,
            },
        );
        assert_eq!(keys["diskKey"], hex::encode(disk.as_slice()));
        for p in &paths {
            let key = derive(
                &r,
                &d,
                &Purpose::AppPath {
                    app: APP,
                    generation: 1,
                    path: p.as_bytes().to_vec(),
                },
            );
            assert_eq!(keys["paths"][p], hex::encode(key.as_slice()));
        }
        let address = |v: &serde_json::Value| v.as_str().unwrap().parse::<Address>().unwrap();
        assert_eq!(
            address(&keys["rootSigner"]),
            PUBLISHED[0].parse::<Address>().unwrap()
        );
        assert_eq!(
            address(&keys["appAddress"]),
            PUBLISHED[1].parse::<Address>().unwrap()
        );
        assert_eq!(keys["envPublicKey"]["publicKey"], PUBLISHED[2]);
        assert_eq!(keys["instanceId"], format!("0x{}", hex::encode(instance)));
    }
    // What was derived is found by exactly its app, key generation and root generation.
    let derived = cache.get_or_derive(&r, &d, &roots, APP, 1).unwrap();
    let cached = cache.cached(APP, 1, roots.generation).unwrap();
    assert!(std::sync::Arc::ptr_eq(&derived, &cached));
    assert!(cache.cached(APP, 2, roots.generation).is_none());
    assert!(cache.cached(APP, 1, roots.generation + 1).is_none());
    assert!(
        cache
            .cached(Address::repeat_byte(0x12), 1, roots.generation)
            .is_none()
    );
    // One entry per app: a newer generation replaces the older; another app has its own.
    assert_eq!(cache.len(), 1);
    let g2 = cache.get_or_derive(&r, &d, &roots, APP, 2).unwrap();
    assert_eq!(cache.len(), 1);
    cache
        .get_or_derive(&r, &d, &roots, Address::repeat_byte(0x12), 1)
        .unwrap();
    assert_eq!(cache.len(), 2);
    let g1 = cache.get_or_derive(&r, &d, &roots, APP, 1).unwrap();
    let keys_of = |m: &AppMaterial| json(&instance_keys(&r, &d, m, INSTANCE.into(), &[]));
    let (k1, k2) = (keys_of(&g1), keys_of(&g2));
    assert_ne!(k1["appSecretKey"], k2["appSecretKey"], "per key generation");
    assert_eq!(k2["keyGeneration"], 2);
    // Another root generation signs the same app keys with another signer.
    let roots2 = RootKeys::derive(&r, &d, 2).unwrap();
    let r2 = keys_of(&cache.get_or_derive(&r, &d, &roots2, APP, 1).unwrap());
    assert_eq!(k1["appSecretKey"], r2["appSecretKey"]);
    assert_ne!(k1["appKeySignature"], r2["appKeySignature"]);
    assert_ne!(k1["rootSigner"], r2["rootSigner"]);
}
