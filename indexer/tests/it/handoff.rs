//! The historic → live handoff while new blocks keep coming: every log exactly once, in order,
//! in the mirror and on the change feed.

use alloy::{primitives::B256, providers::Provider, rpc::types::Filter};
use covenant_chain::app::App;
use covenant_testkit::postgres;

use crate::{
    fixture::{Chain, Feed, Indexer, mirror_db},
    history::{app_prov, create_app, h},
    send,
};

fn numbered(i: u32) -> B256 {
    let mut b = [0x5au8; 32];
    b[..4].copy_from_slice(&i.to_be_bytes());
    b.into()
}

#[tokio::test(flavor = "multi_thread")]
async fn no_gap_and_no_duplicate_across_the_handoff_under_new_blocks() {
    let chain = Chain::start().await;
    let owner = chain.account(1);
    let app = create_app(&chain, owner, &[h(0x10)], &[]).await;
    let a = App::new(app, &chain.provider);
    for i in 0..60 {
        send!(
            a.addComposeHash(numbered(i), app_prov("history"))
                .from(owner)
        );
    }
    let db = postgres::database();
    let ws = chain.anvil.ws_endpoint();
    let indexer = Indexer::start(
        &chain,
        &db,
        &[
            "--ws-url",
            &ws,
            "--initial-range-blocks",
            "3",
            "--max-range-blocks",
            "6",
            "--fetch-concurrency",
            "3",
        ],
    );
    let feed = Feed::subscribe(&indexer, Some("0")).await;
    // New blocks while the backfill runs and after it has handed over to live following.
    for i in 60..140 {
        send!(a.addComposeHash(numbered(i), app_prov("live")).from(owner));
    }
    let head = chain.head().await;
    indexer.wait_finalized(head).await;

    // The mirror holds exactly the chain's logs of the mirrored contracts.
    let c = &chain.deployment.contracts;
    let filter = Filter::new()
        .from_block(chain.deployment.start_block)
        .to_block(head)
        .address(vec![
            c.kms_registry,
            c.domain_registry,
            c.covenant_governor,
            c.timelock_controller,
            c.covenant_token,
            c.covenant_guardian,
            app,
        ]);
    let mut expected: Vec<(i64, i64, String)> = chain
        .provider
        .get_logs(&filter)
        .await
        .unwrap()
        .into_iter()
        .map(|l| {
            (
                l.block_number.unwrap() as i64,
                l.log_index.unwrap() as i64,
                l.block_hash.unwrap().to_string(),
            )
        })
        .collect();
    expected.sort();
    let pool = mirror_db(&db).await;
    let got: Vec<(i64, i64, String)> = sqlx::query_as::<_, (i64, i64, Vec<u8>)>(
        "SELECT block_number, log_index, block_hash FROM events ORDER BY block_number, log_index",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    .into_iter()
    .map(|(b, l, hash)| (b, l, B256::from_slice(&hash).to_string()))
    .collect();
    assert_eq!(got.len(), expected.len());
    assert_eq!(got, expected);

    // The change feed delivered every added hash once, in order.
    let last = numbered(139).to_string();
    feed.wait_for("the last hash", |n, v| {
        n == "ComposeHashAdded" && v["data"]["composeHash"] == last.as_str()
    })
    .await;
    let fed: Vec<String> = feed
        .snapshot()
        .into_iter()
        .filter(|(n, _)| n == "ComposeHashAdded")
        .map(|(_, v)| v["data"]["composeHash"].as_str().unwrap().to_owned())
        .collect();
    let mut want = vec![h(0x10).to_string()];
    want.extend((0..140).map(|i| numbered(i).to_string()));
    assert_eq!(fed, want);
}
