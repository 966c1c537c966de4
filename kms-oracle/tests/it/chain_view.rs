//! The chain view cannot be bent by whoever runs the indexer's Postgres: the mirror's finalized
//! block must be canonical and final on the kms-oracle's own RPC (and a witness RPC's, if one is
//! set), and its age is measured against the RPC's head, not only the (host-controlled) clock.

use std::time::Duration;

use alloy::primitives::B256;
use covenant_testkit::{Anvil, wait_for};
use serde_json::{Value, json};

use crate::fixture::*;

async fn keys(kms: &Kms, boot: &Boot) -> (u16, String) {
    let r = Instance::boot(boot, kms.root_signer)
        .post(kms, "/v1/keys", json!({}))
        .await;
    let v: Value = r.json();
    (r.status, v["error"].as_str().unwrap_or_default().to_owned())
}

/// Waits until `kms` answers `status` with an error containing `reason`.
async fn until_answered(kms: &Kms, boot: &Boot, status: u16, reason: &str) {
    wait_for(format!("the KMS to answer {status} `{reason}`"))
        .timeout(Duration::from_secs(60))
        .watching(&kms.process)
        .until_ok_async(|| async {
            let (s, error) = keys(kms, boot).await;
            if s == status && error.contains(reason) {
                Ok(())
            } else {
                Err(format!("{s} {error}"))
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{e:?}\n{}", kms.process.log_tail(30)));
}

/// The mirror's finalized block: (number, hash).
async fn mirror_finalized(mirror: &sqlx::PgPool) -> (i64, Vec<u8>) {
    sqlx::query_as("SELECT finalized_number, finalized_hash FROM mirror")
        .fetch_one(mirror)
        .await
        .unwrap()
}

/// Points the mirror's finalized block at `number` with `hash` (the block row too, as an
/// operator with write access to the database can).
async fn set_mirror_finalized(mirror: &sqlx::PgPool, number: i64, hash: &[u8]) {
    sqlx::query(
        "INSERT INTO blocks (number, hash, timestamp)
         VALUES ($1, $2, (SELECT max(timestamp) FROM blocks))
         ON CONFLICT (number) DO UPDATE SET hash = EXCLUDED.hash,
           timestamp = COALESCE(blocks.timestamp, EXCLUDED.timestamp)",
    )
    .bind(number)
    .bind(hash)
    .execute(mirror)
    .await
    .unwrap();
    sqlx::query("UPDATE mirror SET finalized_number = $1, finalized_hash = $2")
        .bind(number)
        .bind(hash)
        .execute(mirror)
        .await
        .unwrap();
}

/// Moves the chain's clock `secs` ahead and mines a block.
fn advance_chain_time(stack: &Stack, secs: u64) {
    stack.anvil.rpc("evm_increaseTime", json!([secs])).unwrap();
    stack.mine(1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_or_rolled_back_mirror_is_refused_once_stale_against_the_rpc_head() {
    let stack = Stack::start().await;
    let kms = first_node(&stack, &["--max-finalized-age-secs", "120"]).await;
    let app = stack.create_app().await;
    stack.finalize();
    kms.wait_serving_at(stack.head().await - FINALITY).await;
    let boot = Boot::new(app, 1);
    assert_eq!(keys(&kms, &boot).await.0, 200);
    let mirror = sqlx::PgPool::connect(stack.mirror.url()).await.unwrap();
    let (before_number, before_hash) = mirror_finalized(&mirror).await;

    // Governance revokes the app's code; once final, the KMS refuses it.
    let owner = stack.app_owner();
    send!(
        stack
            .app_as(app)
            .removeComposeHash(B256::from(COMPOSE))
            .from(owner)
    );
    stack.finalize();
    until_answered(&kms, &boot, 403, "compose hash not allowed").await;

    // The operator freezes the mirror. The chain goes on (its head is 10 minutes later, the
    // host's clock is not): the KMS refuses everything once its block is stale against the head.
    stack.indexer.stop();
    advance_chain_time(&stack, 600);
    until_answered(&kms, &boot, 503, "finalized head is stale").await;

    // The operator rolls the mirror back to a block from before the revocation; a node that
    // starts on it (a restart reads the mirror afresh) finds it canonical and final, where
    // `eth_call` would allow the revoked code: refused as stale against the RPC's head.
    set_mirror_finalized(&mirror, before_number, &before_hash).await;
    let restarted = Kms::spawn(
        &stack,
        KmsOptions {
            device: KMS_DEVICE,
            state_dir: kms.state_dir.clone(),
            extra: &["--max-finalized-age-secs", "120"],
            audit: None,
        },
    );
    let (status, error) = keys(&restarted, &boot).await;
    assert_eq!(status, 503, "{error}");
    assert!(error.contains("finalized head is stale"), "{error}");
    assert!(
        error.contains(&format!("block {before_number} ")),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_block_that_is_not_canonical_or_final_on_the_rpc_or_the_witness_is_refused() {
    let stack = Stack::start().await;
    let kms = first_node(&stack, &[]).await;
    let app = stack.create_app().await;
    stack.finalize();
    kms.wait_serving_at(stack.head().await - FINALITY).await;
    let boot = Boot::new(app, 1);
    assert_eq!(keys(&kms, &boot).await.0, 200);

    // A witness that is the same chain agrees: granted.
    let same = Kms::spawn(
        &stack,
        KmsOptions {
            device: KMS_DEVICE,
            state_dir: kms.state_dir.clone(),
            extra: &["--witness-rpc-url", &stack.anvil.endpoint()],
            audit: None,
        },
    );
    assert_eq!(keys(&same, &boot).await.0, 200);
    same.process.stop();

    // A witness on another chain with the same id (a fork, or an RPC that lies) has another
    // block at that height: refused.
    let witness = Anvil::builder()
        .with_chain_id(stack.anvil.chain_id())
        .spawn();
    witness
        .rpc(
            "anvil_mine",
            json!([format!("0x{:x}", stack.head().await + 10)]),
        )
        .unwrap();
    let forked = Kms::spawn(
        &stack,
        KmsOptions {
            device: KMS_DEVICE,
            state_dir: kms.state_dir.clone(),
            extra: &["--witness-rpc-url", &witness.endpoint()],
            audit: None,
        },
    );
    let (status, error) = keys(&forked, &boot).await;
    assert_eq!(status, 503, "{error}");
    assert!(error.contains("the witness RPC has 0x"), "{error}");
    forked.process.stop();

    // The operator swaps the hash of the mirror's finalized block, then points the mirror at a
    // block the RPC does not count as final: both refused by the running node. (Its own
    // grant-log commits keep the chain moving, so "not final" is a height the chain has not
    // reached.)
    let mirror = sqlx::PgPool::connect(stack.mirror.url()).await.unwrap();
    stack.indexer.stop();
    let (number, _) = mirror_finalized(&mirror).await;
    set_mirror_finalized(&mirror, number, &[0xee; 32]).await;
    until_answered(&kms, &boot, 503, "this node's RPC has 0x").await;
    let ahead = stack.head().await as i64 + 1_000;
    set_mirror_finalized(&mirror, ahead, &[0xef; 32]).await;
    until_answered(
        &kms,
        &boot,
        503,
        "is ahead of this node's RPC's finalized block",
    )
    .await;
}
