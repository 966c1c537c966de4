//! The example app (`test/apps/hello`) under a real guest: its certificate verifies up to the
//! chain's root CA, and its evidence binds that certificate's key to the app's boot.

use std::time::Duration;

use alloy::primitives::Address;
use covenant_attest::{Binding, ReportData};
use covenant_testkit::{tls::get_with_chain, tools::workspace_bin, wait_for};
use serde_json::{Value, json};
use sha2::Digest;

use crate::{Host, compose_hash, stack::Stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_app_serves_a_chain_verified_certificate_and_its_attested_identity() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let stack = Stack::start().await;
    let host = Host::new(&stack, "host", 0xa1);
    let addr_file = host.state_dir.join("app.addr");
    let bin = workspace_bin("covenant-example-app").unwrap();
    let document = serde_json::to_vec(&json!({
        "manifest_version": 1,
        "name": "hello",
        "containers": [{
            "name": "hello",
            "image": format!("example.invalid/hello@sha256:{}", "12".repeat(32)),
            "command": [bin.to_str().unwrap(), "--listen", "127.0.0.1:0",
                        "--addr-file", addr_file.to_str().unwrap()]
        }],
        "ports": [{"container": "hello", "port": 8443, "protocol": "tls-passthrough"}],
        "kms": {
            "chain_id": stack.deployment.chain_id,
            "registry": stack.registry_address().to_string().to_lowercase()
        }
    }))
    .unwrap();
    let app = stack.create_app(compose_hash(&document)).await;
    stack.settle().await;
    let guest = host.run(app, &document, &[]);
    let addr: std::net::SocketAddr = wait_for("the example app to serve")
        .timeout(Duration::from_secs(60))
        .watching(&guest)
        .until_ok(|| {
            std::fs::read_to_string(&addr_file)
                .map_err(|e| e.to_string())
                .and_then(|a| {
                    a.parse()
                        .map_err(|e: std::net::AddrParseError| e.to_string())
                })
        })
        .unwrap();

    let fetched = get_with_chain(addr, "localhost", "/").unwrap();
    assert_eq!(fetched.status, 200, "{}", fetched.body);
    let chain = fetched.chain;
    let identity: Value = serde_json::from_str(&fetched.body).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // The certificate: under this app's CA, up to the root CA key registered on chain.
    let verified =
        covenant_kms_api::verify_app_chain(&chain, &stack.kms().roots, Some(app), now as i64)
            .unwrap();
    assert_eq!(verified.dns_names, ["localhost"]);
    // The identity: this app, the compose the chain allows, a database key chained to the root.
    assert_eq!(
        identity["appId"]
            .as_str()
            .unwrap()
            .parse::<Address>()
            .unwrap(),
        app
    );
    assert_eq!(identity["composeHash"], compose_hash(&document).to_string());
    assert_eq!(
        identity["rootSigner"]
            .as_str()
            .unwrap()
            .parse::<Address>()
            .unwrap(),
        stack.kms().root_signer
    );
    // The database key: its address and the app key's signature, which recovers; no secret.
    let db = &identity["databaseKey"];
    let mut fields: Vec<&String> = db.as_object().unwrap().keys().collect();
    fields.sort();
    assert_eq!(fields, ["address", "path", "signature"]);
    let digest = covenant_kms_api::signatures::path_key_digest(
        stack.deployment.chain_id,
        stack.registry_address(),
        app,
        identity["keyGeneration"].as_u64().unwrap(),
        b"example/database",
        db["address"].as_str().unwrap().parse().unwrap(),
    );
    let signature = hex::decode(db["signature"].as_str().unwrap()).unwrap();
    assert_eq!(
        covenant_kms_api::signatures::recover(digest, &signature).unwrap(),
        identity["appKey"]
            .as_str()
            .unwrap()
            .parse::<Address>()
            .unwrap()
    );
    // The evidence binds the very key this TLS connection was made with.
    let evidence: covenant_attest::Evidence =
        serde_json::from_value(identity["evidence"].clone()).unwrap();
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    let policy = covenant_attest::Policy {
        platforms: vec![],
        ..covenant_attest::Policy::judged_by_chain(true)
    };
    let spki_digest: [u8; 64] = sha2::Sha512::digest(leaf.public_key().raw).into();
    let bound = ReportData::new(covenant_guest_api::api::quote_report_data(&spki_digest));
    let verified = covenant_attest::verify(
        &evidence,
        &Binding::ReportData(bound),
        &covenant_attest::Collateral::default(),
        &policy,
        now,
    )
    .unwrap();
    // It is not an RA-TLS credential for that key: published evidence cannot ask a KMS for keys.
    assert!(
        covenant_attest::verify(
            &evidence,
            &Binding::TlsKey(leaf.public_key().raw),
            &covenant_attest::Collateral::default(),
            &policy,
            now,
        )
        .is_err()
    );
    assert_eq!(verified.runtime().app_id.as_bytes(), app.as_slice());
    assert_eq!(
        verified.runtime().compose_hash.as_bytes(),
        compose_hash(&document).as_slice()
    );
    guest.stop();
    assert!(
        guest.log_contains("guest stopped"),
        "{}",
        guest.log_tail(20)
    );
}
