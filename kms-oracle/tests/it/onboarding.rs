//! Onboarding is bound to evidence: the serving node onboards the address the new node's
//! evidence names (its `kms-identity` boot event), never one the request names, refuses evidence
//! that names none, and never brings back a node governance removed.

use std::sync::Arc;

use alloy::{
    primitives::{Address, B256},
    sol_types::SolCall as _,
};
use covenant_attest::{
    DeviceId,
    ratls::{self, RaTlsIdentity},
    simulator::{SimulatedTee, SimulatorRootKey},
};
use covenant_chain::kms_registry::KmsRegistry;
use covenant_kms_api::client::{self, Reply};
use covenant_kms_oracle::identity::{NodeTee, kms_runtime_identity, simulated_os_registers};
use serde_json::{Value, json};

use crate::fixture::*;

/// POSTs `body` to `/v1/replicate` over RA-TLS presenting `identity`.
async fn replicate(kms: &Kms, identity: &RaTlsIdentity, body: Value) -> Reply {
    let config = client::client_config(
        Some((&identity.certificate_der, &identity.private_key_der)),
        kms_verifier(),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .unwrap();
    client::request(
        Arc::new(config),
        kms.addr,
        "POST",
        "/v1/replicate",
        Some(body.to_string().into_bytes()),
    )
    .await
    .unwrap()
}

/// A KMS node's boot on an allowed device and image, claiming identity `node`.
fn node_identity(stack: &Stack, node: Address) -> RaTlsIdentity {
    NodeTee::simulated(
        stack.registry_address(),
        B256::from(KMS_DEVICE_2),
        B256::from(OS_IMAGE),
        node,
    )
    .unwrap()
    .ratls_identity()
    .unwrap()
}

fn refused(reply: &Reply, status: u16, reason: &str) {
    let body = reply.json();
    assert_eq!(reply.status, status, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains(reason), "expected `{reason}`, got `{error}`");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onboarding_takes_the_address_from_the_evidence_and_never_reactivates_a_removed_node() {
    let stack = Stack::start().await;
    let first = first_node(&stack, &[]).await;
    let registry = stack.registry();
    let timelock = stack.timelock();
    send!(
        registry
            .addKmsDevice(B256::from(KMS_DEVICE_2))
            .from(timelock)
    );
    stack.finalize();
    first.wait_serving_at(stack.head().await - FINALITY).await;
    let chain_id = stack.deployment.chain_id;

    // The same boot as a KMS node (same code, image and device) but no kms-identity event: the
    // address would have to come from somewhere else, so the node refuses.
    let (mrtd, rtmr) = simulated_os_registers(B256::from(OS_IMAGE));
    let mut anonymous_tee = SimulatedTee::new(
        SimulatorRootKey::development(),
        DeviceId::new(KMS_DEVICE_2),
        mrtd,
        rtmr,
    );
    anonymous_tee.record_boot(&kms_runtime_identity(
        stack.registry_address(),
        B256::from(OS_IMAGE),
    ));
    let no_identity = ratls::generate_identity(|rd| Ok(evidence(&anonymous_tee, rd))).unwrap();
    let r = replicate(&first, &no_identity, json!({ "chainId": chain_id })).await;
    refused(&r, 403, "the evidence names no KMS identity");
    assert!(r.json()["rootSecret"].is_null());

    // The request cannot name the node: a body with an address is refused before any decision.
    let claimed = Address::repeat_byte(0xb0);
    let named = Address::repeat_byte(0xe1);
    let evidence_named = node_identity(&stack, named);
    let r = replicate(
        &first,
        &evidence_named,
        json!({ "chainId": chain_id, "node": claimed.to_string() }),
    )
    .await;
    refused(&r, 400, "unknown field `node`");
    assert!(!registry.kmsNode(claimed).call().await.unwrap().active);
    assert!(!registry.kmsNode(named).call().await.unwrap().active);

    // The evidence names the address, and that address is the one onboarded on chain.
    let r = replicate(&first, &evidence_named, json!({ "chainId": chain_id })).await;
    let body = r.json();
    assert_eq!(r.status, 200, "{body}");
    assert_eq!(
        body["node"].as_str().unwrap().parse::<Address>().unwrap(),
        named
    );
    assert_eq!(body["rootSecret"].as_str().unwrap().len(), 64);
    let record = registry.kmsNode(named).call().await.unwrap();
    assert!(record.active);
    assert_eq!(record.onboardedBy, first.node);
    assert_eq!(record.deviceId, B256::from(KMS_DEVICE_2));
    assert!(!registry.kmsNode(claimed).call().await.unwrap().active);

    // An active node is not onboarded twice.
    stack.finalize();
    first.wait_serving_at(stack.head().await - FINALITY).await;
    let r = replicate(&first, &evidence_named, json!({})).await;
    refused(&r, 403, "is already active");

    // Governance removes it; once that is final, a serving node refuses to bring it back (the
    // registry would revert too), sends no transaction and hands nothing over.
    send!(registry.removeKmsNode(named).from(timelock));
    stack.finalize();
    first.wait_serving_at(stack.head().await - FINALITY).await;
    let since = stack.head().await + 1;
    let r = replicate(&first, &node_identity(&stack, named), json!({})).await;
    refused(&r, 403, "was removed by governance");
    assert!(r.json()["rootSecret"].is_null());
    let record = registry.kmsNode(named).call().await.unwrap();
    assert!(!record.active);
    assert!(record.removedByGovernance);
    // Its only transactions are audit-log commits (the refusal's row among them).
    let sent = stack.calls_sent_since(first.node, since).await;
    assert!(
        sent.iter()
            .all(|s| *s == KmsRegistry::commitGrantLogCall::SELECTOR),
        "a removed node cost the serving node gas: {sent:x?}"
    );
    // The refusal is in the audit log, with its reason.
    let seq = r.json()["auditSeq"].as_u64().expect("an audit row");
    let row = first.get(&format!("/v1/audit/{seq}")).await.json();
    assert_eq!(row["entry"]["granted"], false);
    assert!(
        row["entry"]["reason"]
            .as_str()
            .unwrap()
            .contains("removed by governance"),
        "{row}"
    );

    // Governance itself may bring it back.
    send!(
        registry
            .onboardKmsNode(named, record.mrAggregated, record.deviceId)
            .from(timelock)
    );
    let record = registry.kmsNode(named).call().await.unwrap();
    assert!(record.active);
    assert!(!record.removedByGovernance);
}
