//! Reorgs made on anvil: the mirror converges to the new canonical chain, and neither the
//! finalized view nor the change feed ever contains the orphaned data.

use alloy::{primitives::B256, sol_types::SolCall};
use covenant_chain::app::App;
use covenant_testkit::{postgres, wait_for};
use serde_json::json;
use std::time::Duration;

use crate::{
    fixture::{Chain, Feed, Indexer, indexed_block, mirror_db, mirrored_compose_hashes},
    history::{app_prov, create_app, h},
    send,
};

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn reorgs_of_depth_1_5_and_30_converge_and_never_reach_the_finalized_view() {
    let chain = Chain::start().await;
    let owner = chain.account(1);
    let app = create_app(&chain, owner, &[h(0x10)], &[]).await;
    chain.mine(45);
    let db = postgres::database();
    let ws = chain.anvil.ws_endpoint();
    let indexer = Indexer::start(&chain, &db, &["--finality", "40", "--ws-url", &ws]);
    let pool = mirror_db(&db).await;
    let feed = Feed::subscribe(&indexer, Some("0")).await;
    let a = App::new(app, &chain.provider);

    let mut replacements = vec![h(0x10).to_string()];
    for (i, depth) in [1u64, 5, 30].into_iter().enumerate() {
        let orphan: B256 = h(0xe0 + i as u8);
        let replacement: B256 = h(0xf0 + i as u8);
        send!(a.addComposeHash(orphan, app_prov("orphan")).from(owner));
        if depth > 1 {
            chain.mine(depth - 1);
        }
        let head = chain.head().await;
        wait_for(format!(
            "the mirror to index block {head} with the soon-orphaned hash"
        ))
        .timeout(Duration::from_secs(60))
        .watching(&indexer.process)
        .until_async(|| async {
            indexed_block(&pool).await >= head
                && mirrored_compose_hashes(&pool)
                    .await
                    .contains(&orphan.to_string())
        })
        .await
        .unwrap();

        let data = App::addComposeHashCall {
            composeHash: replacement,
            provenance: app_prov("canonical"),
        }
        .abi_encode();
        let tx = json!({ "from": owner, "to": app, "data": format!("0x{}", alloy::hex::encode(data)), "gas": "0x200000" });
        chain
            .anvil
            .rpc("anvil_reorg", json!([depth, [[tx, 0]]]))
            .unwrap();
        assert_eq!(chain.head().await, head, "anvil_reorg keeps the height");

        wait_for(format!("the mirror to follow the reorg of depth {depth}"))
            .timeout(Duration::from_secs(60))
            .watching(&indexer.process)
            .until_async(|| async {
                let hashes = mirrored_compose_hashes(&pool).await;
                indexed_block(&pool).await >= head
                    && hashes.contains(&replacement.to_string())
                    && !hashes.contains(&orphan.to_string())
            })
            .await
            .unwrap();
        replacements.push(replacement.to_string());

        // The finalized view never served the orphan.
        let v = indexer.get_ok(&format!("/v1/apps/{app}")).await;
        let history = v["composeHashHistory"].to_string();
        assert!(
            !history.contains(&orphan.to_string()[2..]),
            "orphan in the finalized view: {history}"
        );
    }
    let metrics = indexer.get("/metrics").await.1;
    let metrics = metrics.as_str().unwrap();
    assert_eq!(
        metric(metrics, "covenant_indexer_reorgs_total"),
        3.0,
        "{metrics}"
    );
    assert_eq!(
        metric(metrics, "covenant_indexer_reorg_depth_blocks_sum"),
        36.0,
        "{metrics}"
    );

    // Once final, the canonical hashes are served and announced; the orphans never were.
    chain.mine(41);
    let head = chain.head().await;
    indexer.wait_finalized(head - 40).await;
    let v = indexer.get_ok(&format!("/v1/apps/{app}")).await;
    let served: Vec<String> = v["composeHashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["composeHash"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(served, replacements);
    let last = replacements.last().unwrap().clone();
    feed.wait_for("the last canonical hash", |n, v| {
        n == "ComposeHashAdded" && v["data"]["composeHash"] == last.as_str()
    })
    .await;
    let fed: Vec<String> = feed
        .snapshot()
        .into_iter()
        .filter(|(n, _)| n == "ComposeHashAdded")
        .map(|(_, v)| v["data"]["composeHash"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        fed, replacements,
        "the feed carries exactly the canonical hashes, in order"
    );
}
