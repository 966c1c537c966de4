//! A custom policy contract is an arbitrary contract: its own events, which the App ABI does not
//! describe, are kept verbatim and never stop the mirror.

use alloy::{
    network::TransactionBuilder,
    primitives::{Address, U256},
    providers::Provider,
    rpc::types::TransactionRequest,
    sol_types::SolConstructor,
};
use covenant_chain::{kms_registry::KmsRegistry, token::CovenantToken};
use covenant_testkit::postgres;

use crate::{
    fixture::{Chain, Indexer, mirror_db},
    send,
};

#[tokio::test(flavor = "multi_thread")]
async fn a_custom_apps_unknown_events_are_kept_raw_and_never_stop_the_mirror() {
    let chain = Chain::start().await;
    let deployer = chain.account(0);
    // Any contract can be admitted as a custom app: here a second votes token.
    let mut code = covenant_testkit::artifact_bytecode("CovenantToken").unwrap();
    code.extend(
        CovenantToken::constructorCall {
            name_: "Other".into(),
            symbol_: "OTH".into(),
            holders: vec![deployer],
            amounts: vec![U256::from(1000)],
        }
        .abi_encode(),
    );
    let tx = TransactionRequest::default()
        .from(deployer)
        .with_deploy_code(code);
    let custom: Address = chain
        .provider
        .send_transaction(tx)
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap()
        .contract_address
        .unwrap();
    let registry = KmsRegistry::new(chain.deployment.contracts.kms_registry, &chain.provider);
    send!(registry.registerCustomApp(custom).from(chain.timelock()));
    let other = CovenantToken::new(custom, &chain.provider);
    send!(
        other
            .transfer(chain.account(1), U256::from(7))
            .from(deployer)
    );

    let db = postgres::database();
    let indexer = Indexer::start(&chain, &db, &[]);
    let head = chain.head().await;
    indexer.wait_finalized(head).await;
    let pool = mirror_db(&db).await;
    let kept: Vec<(String, serde_json::Value)> = sqlx::query_as(
        "SELECT name, data::jsonb FROM events WHERE contract = $1 ORDER BY block_number, log_index",
    )
    .bind(custom.as_slice())
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(kept.len(), 1, "the transfer after registration: {kept:?}");
    assert_eq!(kept[0].0, "UnknownAppEvent");
    assert_eq!(kept[0].1["topics"].as_array().unwrap().len(), 3);
    let v = indexer.get_ok(&format!("/v1/apps/{custom}")).await;
    assert_eq!(v["registration"]["kind"], "custom");
    assert!(indexer.get("/healthz").await.0 == 200);
}
