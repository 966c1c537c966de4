//! A node that refuses the topic query (as a provider does when a block holds more matching logs
//! than it returns: anyone can emit logs with the App events' signatures): the backfill reads
//! those blocks whole, by hash, and loses no app's log.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use axum::{Json, Router, extract::State, routing::post};
use covenant_chain::app::App;
use covenant_testkit::postgres;
use serde_json::{Value, json};

use crate::{
    fixture::{Chain, Indexer, mirror_db, mirrored_compose_hashes},
    history::{app_prov, create_app, h},
    send,
};

#[derive(Clone)]
struct Proxy {
    upstream: String,
    client: reqwest::Client,
    refused: Arc<AtomicU64>,
}

/// Whether `request` is an `eth_getLogs` by topics alone (no address, no block hash).
fn is_topic_query(request: &Value) -> bool {
    let filter = &request["params"][0];
    request["method"] == "eth_getLogs"
        && filter.get("topics").is_some()
        && filter.get("address").is_none()
        && filter.get("blockHash").is_none()
}

async fn relay(State(proxy): State<Proxy>, Json(request): Json<Value>) -> Json<Value> {
    if is_topic_query(&request) {
        proxy.refused.fetch_add(1, Ordering::Relaxed);
        return Json(json!({
            "jsonrpc": "2.0",
            "id": request["id"],
            "error": { "code": -32005, "message": "query returned more than 10000 results" },
        }));
    }
    let answer = proxy
        .client
        .post(&proxy.upstream)
        .json(&request)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    Json(answer)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_topic_query_falls_back_to_whole_blocks_and_loses_no_app_log() {
    let chain = Chain::start().await;
    let owner = chain.account(1);
    let app = create_app(&chain, owner, &[h(0x10)], &[]).await;
    let a = App::new(app, &chain.provider);
    let mut expected = vec![h(0x10).to_string()];
    for i in 0..20u8 {
        send!(
            a.addComposeHash(h(0x20 + i), app_prov("refused"))
                .from(owner)
        );
        expected.push(h(0x20 + i).to_string());
    }
    expected.sort();

    let refused = Arc::new(AtomicU64::new(0));
    let proxy = Proxy {
        upstream: chain.anvil.endpoint(),
        client: reqwest::Client::new(),
        refused: refused.clone(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let router = Router::new().route("/", post(relay)).with_state(proxy);
        axum::serve(listener, router).await.unwrap();
    });

    let db = postgres::database();
    let indexer = Indexer::start(
        &chain,
        &db,
        &["--rpc-url", &url, "--initial-range-blocks", "8"],
    );
    let head = chain.head().await;
    indexer.wait_finalized(head).await;
    assert!(
        refused.load(Ordering::Relaxed) > 0,
        "the node refused the topic queries"
    );
    let pool = mirror_db(&db).await;
    let mut mirrored = mirrored_compose_hashes(&pool).await;
    mirrored.sort();
    assert_eq!(mirrored, expected);
    let v = indexer.get_ok(&format!("/v1/apps/{app}")).await;
    assert_eq!(v["registration"]["kind"], "factory");
    assert_eq!(v["settings"]["owner"], owner.to_checksum(None));
    server.abort();
}
