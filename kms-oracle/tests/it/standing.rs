//! The node's own standing, each check on its own: it serves only while the chain allows its
//! own evidence (`isKmsAllowed`), the mirror and the chain agree on its onboarding record, and
//! the registered root keys are the ones it derives. And no key leaves without a committed audit
//! row.

use std::time::Duration;

use alloy::primitives::{Address, B256, Bytes};
use serde_json::{Value, json};

use crate::fixture::*;

/// Waits until `/healthz` says the node does not serve, for a reason containing `reason`.
async fn wait_not_serving(kms: &Kms, reason: &str) -> Value {
    covenant_testkit::wait_for(format!("the KMS to stop serving: {reason}"))
        .timeout(Duration::from_secs(60))
        .watching(&kms.process)
        .until_ok_async(|| async {
            let r = kms.get("/healthz").await;
            let v = r.json();
            let said = v["reason"].as_str().unwrap_or_default();
            if r.status == 503 && said.contains(reason) {
                Ok(v)
            } else {
                Err(format!("{} {v}", r.status))
            }
        })
        .await
        .unwrap()
}

async fn keys_status(kms: &Kms, app: Address) -> (u16, Value) {
    let r = Instance::boot(&Boot::new(app, 1), kms.root_signer)
        .post(kms, "/v1/keys", json!({}))
        .await;
    (r.status, r.json())
}

fn disagreements(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("covenant_kms_policy_disagreements_total "))
        .map(|n| n.parse().unwrap())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_serves_only_while_the_chain_stands_behind_it() {
    let stack = Stack::start().await;
    let kms = first_node(&stack, &[]).await;
    let app = stack.create_app().await;
    stack.finalize();
    kms.wait_serving_at(stack.head().await - FINALITY).await;
    assert_eq!(keys_status(&kms, app).await.0, 200);
    let timelock = stack.timelock();
    let registry = stack.registry();

    // 1. The mirror loses the node's onboarding record (tampered): the mirror and the chain
    //    disagree about it, so the node stops, with a metric; restored, it serves again.
    let mirror = sqlx::PgPool::connect(stack.mirror.url()).await.unwrap();
    let tampered = sqlx::query(
        "UPDATE members SET to_block = from_block WHERE set_name = 'kms_node' AND member = $1 AND to_block IS NULL",
    )
    .bind(kms.node.as_slice())
    .execute(&mirror)
    .await
    .unwrap();
    assert_eq!(tampered.rows_affected(), 1);
    stack.finalize();
    wait_not_serving(&kms, "disagree about this node's record").await;
    let (status, body) = keys_status(&kms, app).await;
    assert_eq!(status, 403, "{body}");
    let metrics = String::from_utf8(kms.get("/metrics").await.body).unwrap();
    assert!(disagreements(&metrics) >= 1, "{metrics}");
    sqlx::query("UPDATE members SET to_block = NULL WHERE set_name = 'kms_node' AND member = $1")
        .bind(kms.node.as_slice())
        .execute(&mirror)
        .await
        .unwrap();
    stack.finalize();
    kms.wait_serving_at(stack.head().await - FINALITY).await;

    // 2. Governance removes the node's measurement: `isKmsAllowed` of its own evidence fails
    //    once final; put back, it serves again.
    let report = kms.get("/v1/metadata").await.json();
    let mr: B256 = report["mrAggregated"].as_str().unwrap().parse().unwrap();
    send!(registry.removeKmsMeasurement(mr).from(timelock));
    stack.finalize();
    wait_not_serving(&kms, "isKmsAllowed: kms measurement not allowed").await;
    assert_eq!(keys_status(&kms, app).await.0, 403);
    send!(registry.addKmsMeasurement(mr).from(timelock));
    stack.finalize();
    kms.wait_serving_at(stack.head().await - FINALITY).await;
    assert_eq!(keys_status(&kms, app).await.0, 200);

    // 3. Governance registers root keys this node does not derive: it stops serving.
    send!(
        registry
            .setKmsRootKeys(Address::repeat_byte(0x99), Bytes::from(vec![0x04; 65]))
            .from(timelock)
    );
    stack.finalize();
    wait_not_serving(&kms, "are not this node's").await;
    let (status, body) = keys_status(&kms, app).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("are not this node's"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_leaves_without_a_committed_audit_row() {
    let stack = Stack::start().await;
    let kms = first_node(&stack, &[]).await;
    let app = stack.create_app().await;
    stack.finalize();
    kms.wait_serving_at(stack.head().await - FINALITY).await;
    assert_eq!(keys_status(&kms, app).await.0, 200);

    // The audit table refuses every new row: the grant is decided, but nothing is released.
    let pool = kms.audit_pool().await;
    sqlx::query(
        "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS
         $$ BEGIN RAISE EXCEPTION 'audit writes refused by the test'; END $$",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION refuse_audit()",
    )
    .execute(&pool)
    .await
    .unwrap();
    let r = Instance::boot(&Boot::new(app, 2), kms.root_signer)
        .post(&kms, "/v1/keys", json!({ "paths": ["db"] }))
        .await;
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    let body = r.json();
    assert_eq!(
        body["error"],
        "the audit log is unavailable; nothing was released"
    );
    let text = String::from_utf8_lossy(&r.body);
    for secret in [
        "diskKey",
        "envSecretKey",
        "appSecretKey",
        "appCaSecretKey",
        "paths",
    ] {
        assert!(
            !text.contains(secret),
            "{secret} leaked without an audit row: {text}"
        );
    }

    // The row can be written again: keys flow again, each with its row.
    sqlx::query("DROP TRIGGER refuse_audit ON audit_log")
        .execute(&pool)
        .await
        .unwrap();
    let r = Instance::boot(&Boot::new(app, 2), kms.root_signer)
        .post(&kms, "/v1/keys", json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let seq = r.json()["auditSeq"].as_u64().unwrap();
    let row = kms.get(&format!("/v1/audit/{seq}")).await.json();
    assert_eq!(row["entry"]["granted"], true, "{row}");
}
