//! The policy view batches new boots' checks across callers (one mirror statement and one
//! JSON-RPC batch): each boot in a batch still gets the answer the chain gives for *its* boot.

use std::{sync::Arc, time::Duration};

use alloy::{eips::BlockId, primitives::Address};
use covenant_attest::{Binding, Collateral, Policy, ReportData, simulator::SimulatorRootKey};
use covenant_chain::{BootInfo, Finality};
use covenant_mirror::{ChainReader, PolicyView, ViewMetrics, ViewSettings};
use covenant_testkit::wait_for;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts};

use crate::fixture::{Boot, FINALITY, Instance, OS_IMAGE_UNLISTED, Stack, evidence};

/// The `BootInfo` the KMS judges for `b`: its simulated evidence verified, as a request's is.
fn boot_info(b: &Boot) -> BootInfo {
    let instance = Instance::boot(b, Address::repeat_byte(0x99));
    let rd = ReportData::new([7; 64]);
    let policy = Policy {
        platforms: vec![],
        simulator_root: Some(SimulatorRootKey::development().root()),
        ..Policy::judged_by_chain(true)
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let verified = covenant_attest::verify(
        &evidence(&instance.tee, &rd),
        &Binding::ReportData(rd),
        &Collateral::default(),
        &policy,
        now,
    )
    .unwrap();
    covenant_chain::boot_info(&verified, 0)
}

struct View {
    view: Arc<PolicyView>,
    batch_size: Histogram,
    reads: IntCounterVec,
    disagreements: IntCounter,
    _stop: tokio::sync::watch::Sender<bool>,
}

async fn view(stack: &Stack) -> View {
    let reads = IntCounterVec::new(Opts::new("reads", "reads"), &["function"]).unwrap();
    let chain = ChainReader::connect(
        &stack.anvil.endpoint(),
        Duration::from_secs(10),
        stack.deployment.chain_id,
        reads.clone(),
    )
    .await
    .unwrap();
    let mirror = covenant_mirror::connect_mirror(stack.mirror.url(), 4)
        .await
        .unwrap();
    let batch_size = Histogram::with_opts(HistogramOpts::new("batch", "batch")).unwrap();
    let disagreements = IntCounter::new("disagreements", "disagreements").unwrap();
    let view = Arc::new(
        PolicyView::new(
            chain,
            None,
            mirror,
            stack.deployment.clone(),
            ViewSettings {
                max_age: Duration::from_secs(3600),
                poll: Duration::from_millis(200),
                finality: Finality::Confirmations(FINALITY),
            },
            Arc::new(covenant_mirror::SystemClock),
            ViewMetrics {
                disagreements: disagreements.clone(),
                finalized_block: IntGauge::new("block", "block").unwrap(),
                finalized_timestamp_seconds: IntGauge::new("ts", "ts").unwrap(),
                app_check_batch_size: batch_size.clone(),
            },
        )
        .await
        .unwrap(),
    );
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    tokio::spawn(view.follow(shutdown));
    View {
        view,
        batch_size,
        reads,
        disagreements,
        _stop: stop,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boots_checked_in_one_batch_each_get_the_chains_answer_for_their_own_boot() {
    let stack = Stack::start().await;
    let (a, b, c) = (
        stack.create_app().await,
        stack.create_app().await,
        stack.create_app().await,
    );
    stack.finalize();
    let target = stack.head().await - FINALITY;
    let v = view(&stack).await;
    let block = wait_for(format!("the view at block {target}"))
        .timeout(Duration::from_secs(60))
        .until_ok_async(|| async {
            match v.view.current_block() {
                Ok(b) if b.number >= target => Ok(b),
                other => Err(format!("{other:?}")),
            }
        })
        .await
        .unwrap();

    // Allowed and denied boots of the same and of different apps, side by side.
    let boots: Vec<BootInfo> = [
        Boot::new(a, 1),
        Boot {
            compose: [0xc1; 32],
            ..Boot::new(a, 2)
        },
        Boot::new(b, 1),
        Boot {
            os_image: OS_IMAGE_UNLISTED,
            ..Boot::new(b, 3)
        },
        Boot::new(Address::repeat_byte(0x5e), 1),
        Boot::new(c, 4),
    ]
    .iter()
    .map(boot_info)
    .collect();

    // Asked together: the first question runs alone at once, the others arrive while it runs
    // and share the next batch.
    let answers =
        futures::future::join_all(boots.iter().map(|boot| v.view.app(&block, boot))).await;
    assert_eq!(v.batch_size.get_sample_count(), 2);
    assert_eq!(v.batch_size.get_sample_sum() as usize, boots.len());
    assert_eq!(
        v.reads.with_label_values(&["isAppAllowed"]).get(),
        boots.len() as u64
    );

    let registry = stack.registry();
    let mut allowed = 0;
    for answer in answers {
        let answer = answer.unwrap();
        let chain = registry
            .isAppAllowed(answer.boot.clone())
            .block(BlockId::hash(block.hash))
            .call()
            .await
            .unwrap();
        match &answer.verdict {
            Ok(()) => {
                assert!(chain._0, "allowed, but the chain says {}", chain._1);
                allowed += 1;
            }
            Err(deny) => {
                assert!(
                    !chain._0,
                    "denied ({}), but the chain allows it",
                    deny.reason
                );
                assert_eq!(deny.reason, chain._1);
            }
        }
    }
    assert_eq!(
        allowed, 3,
        "the boots of a, b and c with the allowed compose hash and image"
    );
    assert_eq!(v.disagreements.get(), 0);

    // Asked again at the same block: remembered, no batch.
    let again = futures::future::join_all(boots.iter().map(|boot| v.view.app(&block, boot))).await;
    assert!(again.iter().all(Result::is_ok));
    assert_eq!(v.batch_size.get_sample_count(), 2);

    // New instances of allowed apps: their apps' answers are shared once the chain shows the
    // deployment's own code decides (read in the batch), so no new isAppAllowed call is made.
    let more: Vec<BootInfo> = [Boot::new(a, 7), Boot::new(c, 8)]
        .iter()
        .map(boot_info)
        .collect();
    let answers = futures::future::join_all(more.iter().map(|boot| v.view.app(&block, boot))).await;
    for answer in answers {
        assert!(answer.unwrap().verdict.is_ok());
    }
    assert_eq!(
        v.reads.with_label_values(&["isAppAllowed"]).get(),
        boots.len() as u64
    );
    assert_eq!(v.batch_size.get_sample_count(), 4);
}
