//! An unresponsive RPC node and a Postgres restart mid-run: the indexer backs off, reports
//! unhealthy, and resumes without loss or duplication.

use std::{sync::Arc, time::Duration};

use covenant_chain::app::App;
use covenant_testkit::{PgCluster, wait_for};

use crate::{
    crash::dump,
    fixture::{Chain, Indexer, mirror_db, mirrored_compose_hashes},
    history::{app_prov, create_app, h},
    send,
};

async fn wait_health(indexer: &Indexer, status: u16) {
    wait_for(format!("/healthz to answer {status}"))
        .timeout(Duration::from_secs(60))
        .watching(&indexer.process)
        .until_async(|| async { indexer.get("/healthz").await.0 == status })
        .await
        .unwrap();
}

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

#[tokio::test(flavor = "multi_thread")]
async fn rpc_outage_and_postgres_restart_are_survived_without_loss_or_duplication() {
    let chain = Chain::start().await;
    let owner = chain.account(1);
    let app = create_app(&chain, owner, &[h(0x10)], &[]).await;
    let a = App::new(app, &chain.provider);
    let cluster = Arc::new(PgCluster::builder().start());
    let db = cluster.try_create_database().unwrap();
    let indexer = Indexer::start(&chain, &db, &["--rpc-timeout-ms", "300"]);
    let head = chain.head().await;
    indexer.wait_finalized(head).await;
    wait_health(&indexer, 200).await;

    // The node stops answering (SIGSTOP): requests time out, the indexer reports unhealthy.
    signal(chain.anvil.pid(), "-STOP");
    wait_health(&indexer, 503).await;
    let (_, body) = indexer.get("/healthz").await;
    assert!(body["reason"].as_str().unwrap().contains("rpc"), "{body}");
    // Reads of the finalized view keep working from the mirror during the outage.
    assert_eq!(indexer.get(&format!("/v1/apps/{app}")).await.0, 200);
    signal(chain.anvil.pid(), "-CONT");
    send!(
        a.addComposeHash(h(0x11), app_prov("after rpc outage"))
            .from(owner)
    );
    let head = chain.head().await;
    indexer.wait_finalized(head).await;
    wait_health(&indexer, 200).await;

    // Postgres crashes and comes back while new blocks arrive.
    let pool = mirror_db(&db).await;
    cluster.restart().unwrap();
    send!(
        a.addComposeHash(h(0x12), app_prov("during db restart"))
            .from(owner)
    );
    send!(
        a.addComposeHash(h(0x13), app_prov("during db restart"))
            .from(owner)
    );
    let head = chain.head().await;
    indexer.wait_finalized(head).await;
    wait_health(&indexer, 200).await;

    let hashes = mirrored_compose_hashes(&pool).await;
    let expected: Vec<String> = [0x10, 0x11, 0x12, 0x13]
        .into_iter()
        .map(|b| h(b).to_string())
        .collect();
    assert_eq!(hashes, expected, "every hash exactly once, in order");
    let metrics = indexer.get("/metrics").await.1;
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("covenant_indexer_rpc_errors_total ") && !l.ends_with(" 0")),
        "{metrics}"
    );

    // And the result equals a fresh, uninterrupted run.
    let reference = cluster.try_create_database().unwrap();
    let fresh = Indexer::start(&chain, &reference, &[]);
    fresh.wait_finalized(head).await;
    let (got, want) = (dump(&pool).await, dump(&mirror_db(&reference).await).await);
    for ((table, g), (_, w)) in got.iter().zip(&want) {
        assert_eq!(g, w, "rows of {table}");
    }
}
