//! `covenant-kms-api` against two real kms-oracle nodes: the typed client's failover and errors,
//! the KMS identity check over plain RPC, and the verifier of KMS-issued certificate chains.

use std::{sync::Arc, time::Duration};

use alloy::primitives::{Address, B256};
use covenant_kms_api::{
    CertificateError, CertificateRequest, ClientError, Finality, IdentityError, KeysRequest,
    KmsClient, KmsIdentityChecker, RootAnchor, client::client_config, pem_chain_to_der,
    verify_app_chain,
};
use covenant_mirror::Clock;

use crate::fixture::*;

fn now() -> u64 {
    covenant_mirror::SystemClock.now_secs()
}

/// A client of `nodes` (in order) presenting `instance`'s RA-TLS certificate.
fn client_of(instance: &Instance, urls: &[String]) -> KmsClient {
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    KmsClient::new(&urls, instance.config(), Duration::from_secs(20)).unwrap()
}

/// The node's URL with a DNS name.
fn url(kms: &Kms) -> String {
    format!("https://localhost:{}", kms.addr.port())
}

async fn audit_rows(kms: &Kms) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM audit_log")
        .fetch_one(&kms.audit_pool().await)
        .await
        .unwrap();
    n
}

async fn checker(stack: &Stack) -> KmsIdentityChecker {
    KmsIdentityChecker::connect(
        &stack.anvil.endpoint(),
        stack.deployment.chain_id,
        stack.registry_address(),
        Finality::Confirmations(FINALITY),
        Duration::from_secs(600),
        Duration::from_secs(10),
        covenant_kms_oracle::identity::verifier_policy(true),
        covenant_attest::Collateral::default(),
    )
    .await
    .unwrap()
}

fn csr_pem(name: &str) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    rcgen::CertificateParams::new(vec![name.to_owned()])
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_fails_over_between_two_nodes_and_types_every_error() {
    let stack = Stack::start().await;
    let first = first_node(&stack, &[]).await;
    let second = second_node(&stack, &first).await;
    let app = stack.create_app().await;
    stack.finalize();
    let head = stack.head().await;
    first.wait_serving_at(head - FINALITY).await;
    second.wait_serving_at(head - FINALITY).await;

    let instance = Instance::boot(&Boot::new(app, 3), first.root_signer);
    let client = client_of(&instance, &[url(&first), url(&second)]);
    let request = KeysRequest {
        chain_id: Some(stack.deployment.chain_id),
        paths: vec!["db".into()],
    };

    // Served by the first node, twice on one kept-alive connection.
    let a = client.keys(&request).await.unwrap();
    assert_eq!(a.endpoint.url(), url(&first));
    assert_eq!(a.body.keys.app_id, app);
    let again = client.keys(&request).await.unwrap();
    assert_eq!(again.body.keys.disk_key, a.body.keys.disk_key);
    assert_eq!(again.body.audit_seq, a.body.audit_seq + 1);

    // A decision is returned as such, with the node's reason and audit entry, and is not asked
    // of the other node.
    let second_rows = audit_rows(&second).await;
    let stranger = Instance::boot(
        &Boot {
            compose: [0xee; 32],
            ..Boot::new(app, 4)
        },
        first.root_signer,
    );
    match client_of(&stranger, &[url(&first), url(&second)])
        .keys(&request)
        .await
    {
        Err(ClientError::Refused {
            status: 403,
            reason,
            audit_seq: Some(_),
            ..
        }) => assert!(reason.contains("compose hash not allowed"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(audit_rows(&second).await, second_rows);
    // A malformed request is refused too (no failover).
    let bad = KeysRequest {
        chain_id: Some(stack.deployment.chain_id + 1),
        paths: vec![],
    };
    assert!(matches!(
        client.keys(&bad).await,
        Err(ClientError::Refused { status: 400, .. })
    ));

    // A client whose verifier accepts no simulated evidence refuses the node itself.
    let provider = rustls::crypto::ring::default_provider();
    let strict = covenant_attest::ratls::RaTlsVerifier::new(
        covenant_attest::Policy {
            simulator_root: None,
            ..covenant_kms_oracle::identity::verifier_policy(true)
        },
        covenant_attest::Collateral::default(),
        &provider,
    );
    let config = client_config(None, Arc::new(strict), Arc::new(provider)).unwrap();
    let suspicious =
        KmsClient::new(&[&url(&first)], Arc::new(config), Duration::from_secs(20)).unwrap();
    assert!(
        matches!(
            suspicious.metadata().await,
            Err(ClientError::BadEvidence { .. })
        ),
        "a node whose evidence does not verify is refused"
    );

    // The first node stops: the same client fails over to the second, which derives the same keys.
    first.process.stop();
    let b = client.keys(&request).await.unwrap();
    assert_eq!(b.endpoint.url(), url(&second));
    assert_eq!(b.body.keys.disk_key, a.body.keys.disk_key);
    assert_eq!(b.body.keys.paths["db"], a.body.keys.paths["db"]);

    // Both stopped: every node's failure, typed.
    second.process.stop();
    match client.keys(&request).await {
        Err(ClientError::AllFailed(errors)) => {
            assert_eq!(errors.len(), 2, "{errors:?}");
            assert!(
                errors
                    .iter()
                    .all(|e| matches!(e, ClientError::Unreachable { .. })),
                "{errors:?}"
            );
        }
        other => panic!("expected every node to fail, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_identity_check_and_the_certificate_chain_verifier_follow_the_chain() {
    let stack = Stack::start().await;
    let kms = first_node(&stack, &[]).await;
    let app = stack.create_app().await;
    let other_app = stack.create_app().await;
    stack.finalize();
    kms.wait_serving_at(stack.head().await - FINALITY).await;

    // The node's identity over plain RPC: evidence, isKmsAllowed, its record, the root keys.
    let checker = checker(&stack).await;
    let instance = Instance::boot(&Boot::new(app, 1), kms.root_signer);
    let client = client_of(&instance, &[url(&kms)]);
    let metadata = client.metadata().await.unwrap();
    let standing = checker
        .check_metadata(
            metadata.server_certificate.as_deref(),
            &metadata.body,
            now(),
        )
        .await
        .unwrap();
    assert_eq!(standing.node, kms.node);
    assert_eq!(standing.roots.generation, 1);
    // A node stating another address than the one its evidence binds is refused.
    let certificate = metadata.server_certificate.clone().unwrap();
    let bound = Some(kms.node);
    assert!(matches!(
        checker
            .check(&certificate, Address::repeat_byte(0x77), now())
            .await,
        Err(IdentityError::IdentityMismatch { evidence, .. }) if evidence == bound
    ));
    // Stating other root keys is refused.
    let mut lying = metadata.body.clone();
    if let Some(root) = lying.root.as_mut() {
        root.root_signer = Address::repeat_byte(0x55);
    }
    assert!(matches!(
        checker
            .check_metadata(Some(&certificate), &lying, now())
            .await,
        Err(IdentityError::RootKeys { .. })
    ));
    // Stating another deployment is refused as such.
    let mut elsewhere = metadata.body.clone();
    elsewhere.chain_id += 1;
    assert!(matches!(
        checker
            .check_metadata(Some(&certificate), &elsewhere, now())
            .await,
        Err(IdentityError::OtherDeployment { .. })
    ));
    // A finalized block older than the checker's bound (600 s) answers nothing.
    assert!(matches!(
        checker
            .check_metadata(Some(&certificate), &metadata.body, now() + 601)
            .await,
        Err(IdentityError::Stale { bound: 600, .. })
    ));

    // The node documents its endpoints (generated from its handlers and the wire types).
    let doc = kms.get("/openapi.json").await.json();
    let paths: std::collections::BTreeSet<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        paths,
        [
            "/healthz",
            "/metrics",
            "/v1/apps/{app}/env-key",
            "/v1/audit",
            "/v1/audit/{seq}",
            "/v1/certificates",
            "/v1/keys",
            "/v1/metadata",
            "/v1/replicate",
        ]
        .into_iter()
        .collect()
    );
    let keys_schema = &doc["components"]["schemas"]["KeysRequest"]["properties"];
    assert!(keys_schema["paths"].is_object() && keys_schema["chainId"].is_object());

    // A chain the running node issued verifies against the on-chain root key.
    let issue = |instance: Instance, name: &'static str| {
        let kms_url = url(&kms);
        async move {
            client_of(&instance, &[kms_url])
                .certificate(&CertificateRequest {
                    chain_id: None,
                    csr: csr_pem(name),
                    usage: Default::default(),
                })
                .await
                .unwrap()
                .body
        }
    };
    let issued = issue(
        Instance::boot(&Boot::new(app, 1), kms.root_signer),
        "app.example",
    )
    .await;
    let chain = pem_chain_to_der(&issued.certificate_chain).unwrap();
    let anchor = standing.roots.clone();
    let t = now() as i64;
    let verified = verify_app_chain(&chain, &anchor, Some(app), t).unwrap();
    assert_eq!(verified.app, app);
    assert_eq!(verified.key_generation, issued.key_generation);
    assert_eq!(verified.dns_names, vec!["app.example".to_owned()]);
    assert_eq!(verified.usage, covenant_kms_api::TlsUsage::ServerAndClient);

    // Rejected: another root key.
    let mut other_root = anchor.clone();
    other_root.ca_public_key[40] ^= 1;
    assert_eq!(
        verify_app_chain(&chain, &other_root, Some(app), t),
        Err(CertificateError::OtherRoot { generation: 1 })
    );
    // Another generation (the key a chain of generation 2 would need is not this one's).
    let next = RootAnchor {
        generation: 2,
        ..anchor.clone()
    };
    assert!(matches!(
        verify_app_chain(&chain, &next, Some(app), t),
        Err(CertificateError::OtherRootName { .. })
    ));
    // Expired (the leaf lives 90 days).
    assert_eq!(
        verify_app_chain(&chain, &anchor, Some(app), t + 91 * 24 * 3600),
        Err(CertificateError::NotValid {
            which: "leaf",
            now: t + 91 * 24 * 3600
        })
    );
    // A leaf of another app.
    assert_eq!(
        verify_app_chain(&chain, &anchor, Some(other_app), t),
        Err(CertificateError::OtherApp {
            expected: other_app,
            found: app
        })
    );
    // A leaf under another app's CA.
    let others = issue(
        Instance::boot(&Boot::new(other_app, 2), kms.root_signer),
        "other.example",
    )
    .await;
    let other_chain = pem_chain_to_der(&others.certificate_chain).unwrap();
    let spliced = vec![chain[0].clone(), other_chain[1].clone(), chain[2].clone()];
    assert_eq!(
        verify_app_chain(&spliced, &anchor, None, t),
        Err(CertificateError::BadSignature { which: "leaf" })
    );
    assert!(verify_app_chain(&other_chain, &anchor, Some(other_app), t).is_ok());

    // Once governance removes the node's device and that is final, the identity check refuses it.
    let timelock = stack.timelock();
    send!(
        stack
            .registry()
            .removeKmsDevice(B256::from(KMS_DEVICE))
            .from(timelock)
    );
    stack.finalize();
    match checker.check(&certificate, kms.node, now()).await {
        Err(IdentityError::NotAllowed { reason, .. }) => {
            assert_eq!(reason, "kms device not allowed")
        }
        other => panic!("expected the chain to refuse the node, got {other:?}"),
    }
}
