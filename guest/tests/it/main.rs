//! The guest agent booting against the real stack: anvil and the contracts, the indexer, a KMS
//! node, and the `covenant-guest` binary on the simulated TEE (the same verification code as a
//! real one).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

mod api;
mod example;
mod gpu;
mod real_vm;
/// The shared stack, under the name these tests use.
mod stack {
    pub use covenant_test_stack::*;
}
mod workload;

use alloy::primitives::{Address, B256};
use covenant_attest::Policy;
use serde_json::{Value, json};
use stack::{OS_IMAGE_UNLISTED, Stack, send};

pub use covenant_test_stack::{Host, compose_hash};

pub fn kms_policy() -> Policy {
    covenant_guest::boot::kms_verifier_policy()
}

fn compose(stack: &Stack, name: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "manifest_version": 1,
        "name": name,
        "containers": [{
            "name": "web",
            "image": format!("example.invalid/{name}@sha256:{}", "ab".repeat(32)),
            "command": ["/bin/serve"]
        }],
        "allowed_envs": ["DB_PASSWORD"],
        "kms": {
            "chain_id": stack.deployment.chain_id,
            "registry": stack.registry_address().to_string().to_lowercase()
        }
    }))
    .unwrap()
}

/// A compose for `docker compose`: its `web` container lists `DB_PASSWORD` and restarts on
/// failure.
fn workload_compose_for_docker(stack: &Stack) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "manifest_version": 1,
        "name": "dockerised",
        "containers": [{
            "name": "web",
            "image": format!("example.invalid/web@sha256:{}", "ab".repeat(32)),
            "env": ["DB_PASSWORD"],
            "restart": "on-failure"
        }],
        "allowed_envs": ["DB_PASSWORD"],
        "kms": {
            "chain_id": stack.deployment.chain_id,
            "registry": stack.registry_address().to_string().to_lowercase()
        }
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_app_boots_and_every_host_gets_the_same_app_keys() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let stack = Stack::start().await;
    let document = compose(&stack, "hello");
    let app = stack.create_app(compose_hash(&document)).await;
    stack.settle().await;

    let first = Host::new(&stack, "host-a", 0xa1);
    let a = first.boot(app, &document, &[]).unwrap();
    assert_eq!(
        a["appId"].as_str().unwrap().parse::<Address>().unwrap(),
        app
    );
    assert_eq!(
        a["rootSigner"]
            .as_str()
            .unwrap()
            .parse::<Address>()
            .unwrap(),
        stack.kms().root_signer
    );
    assert_eq!(a["composeHash"], compose_hash(&document).to_string());
    assert_eq!(a["firstBoot"], true);
    // The instance id was made and kept in the clear; a reboot keeps it and the app keys.
    let kept = std::fs::read_to_string(first.state_dir.join("instance-id")).unwrap();
    assert_eq!(
        format!("0x{}", kept.trim()),
        a["instanceId"].as_str().unwrap()
    );
    let again = first.boot(app, &document, &[]).unwrap();
    assert_eq!(again["firstBoot"], false);
    assert_eq!(again["instanceId"], a["instanceId"]);
    assert_eq!(again["appKey"], a["appKey"]);

    // Another host (another device, another instance): the same app keys.
    let second = Host::new(&stack, "host-b", 0xb2);
    let b = second.boot(app, &document, &[]).unwrap();
    assert_ne!(b["instanceId"], a["instanceId"]);
    assert_eq!(b["appKey"], a["appKey"]);
    assert_eq!(b["keyGeneration"], a["keyGeneration"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_boot_the_chain_does_not_allow_stops_with_the_kms_reason() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let stack = Stack::start().await;
    let document = compose(&stack, "hello");
    let app = stack.create_app(compose_hash(&document)).await;
    stack.settle().await;
    let host = Host::new(&stack, "host", 0xa1);
    host.boot(app, &document, &[]).unwrap();

    // A compose the app does not allow.
    let other = compose(&stack, "hello-v2");
    let e = host.boot(app, &other, &[]).unwrap_err();
    assert!(
        e.contains("the KMS refused this boot: compose hash not allowed"),
        "{e}"
    );
    // An OS image the registry does not allow.
    let image = B256::from(OS_IMAGE_UNLISTED).to_string();
    let e = host
        .boot(app, &document, &["--os-image", &image])
        .unwrap_err();
    assert!(
        e.contains("the KMS refused this boot: os image not allowed"),
        "{e}"
    );
    // A KMS root the app does not trust: the guest does not present its boot to that node.
    let e = host
        .boot(
            app,
            &document,
            &["--key-provider", &Address::repeat_byte(0x4b).to_string()],
        )
        .unwrap_err();
    assert!(e.contains("not the trusted"), "{e}");
    // A compose naming another deployment is refused before anything is measured.
    let mut foreign: Value = serde_json::from_slice(&document).unwrap();
    foreign["kms"]["chain_id"] = json!(1);
    let e = host
        .boot(app, &serde_json::to_vec(&foreign).unwrap(), &[])
        .unwrap_err();
    assert!(e.contains("not this deployment"), "{e}");

    // Governance revokes the compose hash: once the removal is final, the boot is refused.
    let owner = stack.timelock();
    send!(
        stack
            .app(app)
            .removeComposeHash(compose_hash(&document))
            .from(owner)
    );
    stack.settle().await;
    let e = host.boot(app, &document, &[]).unwrap_err();
    assert!(
        e.contains("the KMS refused this boot: compose hash not allowed"),
        "{e}"
    );
}
