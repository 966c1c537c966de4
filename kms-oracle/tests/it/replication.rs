//! A second node allowed on chain obtains the root secret over mutually attested TLS, the
//! onboarding is on chain, both derive identical keys; a removed node stops once it is final.

use alloy::primitives::B256;
use serde_json::json;

use crate::fixture::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_gets_the_root_secret_derives_the_same_keys_and_stops_when_removed() {
    let stack = Stack::start().await;
    let first = first_node(&stack, &[]).await;
    let app = stack.create_app().await;

    // The second node: same code and image (same measurement), another device, no root secret.
    let state_dir = stack.dir.path().join("kms-2");
    let report = init(&stack, &state_dir, KMS_DEVICE_2, false);
    assert!(report["root"].is_null());
    let timelock = stack.timelock();
    let registry = stack.registry();
    send!(
        registry
            .addKmsDevice(
                report["deviceId"]
                    .as_str()
                    .unwrap()
                    .parse::<B256>()
                    .unwrap()
            )
            .from(timelock)
    );
    stack.finalize();
    first.wait_serving_at(stack.head().await - FINALITY).await;

    let second = Kms::spawn(
        &stack,
        KmsOptions {
            device: KMS_DEVICE_2,
            state_dir,
            extra: &["--replicate-from", &first.addr.to_string()],
            audit: None,
        },
    );
    assert_eq!(
        second.node,
        report["node"]
            .as_str()
            .unwrap()
            .parse::<alloy::primitives::Address>()
            .unwrap()
    );
    // The onboarding is on chain, by the first node.
    let record = registry.kmsNode(second.node).call().await.unwrap();
    assert!(record.active);
    assert_eq!(record.onboardedBy, first.node);
    stack.finalize();
    second.wait_serving_at(stack.head().await - FINALITY).await;

    // Both nodes derive byte-identical keys.
    let instance = Instance::boot(&Boot::new(app, 7), first.root_signer);
    let a = instance
        .post(&first, "/v1/keys", json!({ "paths": ["x"] }))
        .await
        .json();
    let b = instance
        .post(&second, "/v1/keys", json!({ "paths": ["x"] }))
        .await
        .json();
    for k in [
        "diskKey",
        "envSecretKey",
        "appSecretKey",
        "appCaSecretKey",
        "appAddress",
        "appKeySignature",
    ] {
        assert!(a[k].is_string(), "{a}");
        assert_eq!(a[k], b[k], "{k} differs between nodes");
    }
    assert_eq!(a["paths"], b["paths"]);
    // The first node logged the replication as a grant.
    let pool = first.audit_pool().await;
    let (n,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM audit_log WHERE action = 'replicate' AND granted")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(n, 1);

    // A node that is not allowed cannot replicate: a device the chain does not allow.
    let stranger_dir = stack.dir.path().join("kms-3");
    init(&stack, &stranger_dir, [0x0f; 32], false);
    let (before,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM audit_log WHERE action = 'replicate' AND NOT granted")
            .fetch_one(&pool)
            .await
            .unwrap();
    let (command, _stranger_audit) = Kms::command(
        &stack,
        [0x0f; 32],
        &stranger_dir,
        &["--replicate-from", &first.addr.to_string()],
    );
    let stranger = covenant_testkit::Process::spawn(
        "kms-stranger",
        command,
        covenant_testkit::Signal::SIGTERM,
    )
    .unwrap();
    stranger
        .wait_for_line(
            "the stranger's replication to be refused",
            std::time::Duration::from_secs(60),
            |l| l.contains("replication failed") && l.contains("kms device not allowed"),
        )
        .unwrap();
    let (after,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM audit_log WHERE action = 'replicate' AND NOT granted")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(after > before);
    drop(stranger);

    // Governance removes the second node: it serves until the removal is final, then stops.
    send!(registry.removeKmsNode(second.node).from(timelock));
    let r = instance.post(&second, "/v1/keys", json!({})).await;
    assert_eq!(r.status, 200, "the removal is not final yet: {}", r.json());
    stack.finalize();
    covenant_testkit::wait_for("the removed node to stop serving")
        .timeout(std::time::Duration::from_secs(60))
        .until_ok_async(|| async {
            let r = instance.post(&second, "/v1/keys", json!({})).await;
            let error = r.json()["error"].as_str().unwrap_or_default().to_owned();
            if r.status == 403 && error.contains("not an active KMS node") {
                Ok(())
            } else {
                Err(format!("{} {}", r.status, r.json()))
            }
        })
        .await
        .unwrap();
    assert_eq!(second.get("/healthz").await.status, 503);
    // The first node still serves.
    assert_eq!(
        instance.post(&first, "/v1/keys", json!({})).await.status,
        200
    );
}
