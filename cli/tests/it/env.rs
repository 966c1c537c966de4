//! `covenant app env encrypt` against a hostile KMS: a real TLS server serving an env key for a
//! real app at its real key generation, signed by a key that is not the chain's KMS root. Nothing
//! may be sealed to it (the developer's secrets would go to whoever holds that key).

use alloy::{
    primitives::{Address, keccak256},
    signers::{SignerSync, local::PrivateKeySigner},
};
use covenant_chain::app::App;

use crate::Devnet;

#[tokio::test(flavor = "multi_thread")]
async fn an_env_key_not_signed_by_the_chains_root_is_refused() {
    let devnet = Devnet::start().await;
    let dir = tempfile::tempdir().unwrap();
    let registry = devnet.deployment.contracts.kms_registry;
    let compose = dir.path().join("hello.json");
    let document = serde_json::json!({
        "manifest_version": 1,
        "name": "hello",
        "containers": [{
            "name": "hello",
            "image": format!("covenant.local/hello@sha256:{}", "ab".repeat(32)),
        }],
        "allowed_envs": ["API_TOKEN"],
        "kms": { "chain_id": 31337, "registry": registry.to_string().to_lowercase() },
    });
    std::fs::write(&compose, document.to_string()).unwrap();
    let created = devnet.json(
        Some(&devnet.key(1)),
        &[
            "app",
            "create",
            "--compose",
            compose.to_str().unwrap(),
            "--source-url",
            "https://example.invalid/hello",
            "--commit",
            "v1",
            "--any-device",
        ],
    );
    let app: Address = created["app"].as_str().unwrap().parse().unwrap();
    let generation = App::new(app, &devnet.provider)
        .keyGeneration()
        .call()
        .await
        .unwrap();

    // The statement the KMS API serves, signed by a stranger.
    let stranger = PrivateKeySigner::random();
    let public = [0x42u8; 32];
    let digest =
        covenant_kms_api::signatures::env_key_digest(31337, registry, app, generation, &public);
    let signature = stranger.sign_hash_sync(&digest).unwrap();
    let mut bytes = signature.as_bytes();
    bytes[64] = 27 + u8::from(signature.v());
    let answer = serde_json::json!({
        "appId": app,
        "keyGeneration": generation,
        "publicKey": hex::encode(public),
        "rootGeneration": 1,
        "rootSigner": stranger.address(),
        "signature": hex::encode(bytes),
        "block": { "number": 1, "hash": keccak256(b"block"), "timestamp": 1 },
    });
    let (port, _) = crate::tls_server("localhost", answer.to_string());
    let secrets = dir.path().join("secrets.env");
    std::fs::write(&secrets, "API_TOKEN=hunter2\n").unwrap();
    let run = devnet.covenant(
        None,
        &[
            "app",
            "env",
            "encrypt",
            &app.to_string(),
            "--env-file",
            secrets.to_str().unwrap(),
            "--kms-url",
            &format!("https://localhost:{port}"),
        ],
    );
    assert!(!run.ok, "sealed to a stranger's key: {}", run.stdout);
    assert!(
        run.stderr.contains("is not signed by the root signer"),
        "{}",
        run.stderr
    );
    assert!(!run.stdout.contains("hunter2") && !run.stderr.contains("hunter2"));
}
