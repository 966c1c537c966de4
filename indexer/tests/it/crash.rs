//! Crash safety: the indexer killed with SIGKILL at many points of backfill and live following,
//! then restarted, ends in exactly the state of an uninterrupted run.

use std::time::Duration;

use covenant_chain::app::App;
use covenant_testkit::{postgres, wait_for};
use serde_json::Value;

use crate::{
    fixture::{Chain, Indexer, indexed_block, indexer_command, mirror_db},
    history::{self, app_prov, h},
    send,
};

/// Every projection table, in a canonical order (the `blocks` table is left out: which blocks
/// are kept depends on where ranges happened to end).
pub async fn dump(pool: &sqlx::PgPool) -> Vec<(String, Vec<Value>)> {
    let mut out = Vec::new();
    for table in [
        "events",
        "members",
        "settings",
        "proposals",
        "proposal_transitions",
        "votes",
        "timelock_operations",
        "governance_checkpoints",
    ] {
        let rows: Vec<Value> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT to_jsonb(t) FROM {table} t ORDER BY to_jsonb(t)::text"
        )))
        .fetch_all(pool)
        .await
        .unwrap();
        out.push((table.to_owned(), rows));
    }
    let mirror: Value = sqlx::query_scalar(
        "SELECT jsonb_build_object('indexed', indexed_number, 'hash', encode(indexed_hash, 'hex'), 'finalized', finalized_number) FROM mirror",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    out.push(("mirror".into(), vec![mirror]));
    out
}

/// A seeded generator (xorshift), the seed printed so a failure can be replayed.
pub struct Rng(u64);

impl Rng {
    pub fn from_env() -> Self {
        let seed = std::env::var("COVENANT_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("COVENANT_TEST_SEED={seed}");
        Self(seed | 1)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn sigkill(indexer: &Indexer) {
    let status = std::process::Command::new("kill")
        .args(["-KILL", &indexer.process.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    indexer.process.stop();
}

/// Runs until the finalized view reaches `stop` and the process exits.
fn run_to(chain: &Chain, db: &covenant_testkit::TestDatabase, stop: u64, extra: &[&str]) {
    let stop_s = stop.to_string();
    let mut args = vec!["--stop-at-block", &stop_s];
    args.extend_from_slice(extra);
    let indexer = Indexer::spawn(indexer_command(chain, db, &args));
    indexer
        .process
        .wait_for_line("the stop block", Duration::from_secs(120), |l| {
            l.contains("stop block is final")
        })
        .unwrap();
    indexer.process.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_random_points_ends_in_the_uninterrupted_state() {
    let mut rng = Rng::from_env();
    let chain = Chain::start().await;
    let hist = Box::pin(history::script(&chain)).await;
    let owner2 = chain.account(2); // app1's pending owner accepts, then adds hashes.
    let app1 = App::new(hist.apps[0], &chain.provider);
    send!(app1.acceptOwnership().from(owner2));
    for i in 0..20u8 {
        send!(
            app1.addComposeHash(h(0x30 + i), app_prov("bulk"))
                .from(owner2)
        );
    }
    let small_ranges = [
        "--initial-range-blocks",
        "2",
        "--max-range-blocks",
        "3",
        "--fetch-concurrency",
        "2",
    ];

    let db = postgres::database();
    let pool = mirror_db(&db).await;
    let mut kills = 0;
    // Backfill: kill as soon as the cursor passes a random block, or right at start-up.
    let head = chain.head().await;
    // Random steps of at most a tenth of the chain: at least 10 kills whatever the seed.
    let max_step = ((head - 3) / 10).max(1);
    let mut target = 0;
    while target < head - 3 {
        target += 1 + rng.below(max_step);
        let indexer = Indexer::start(&chain, &db, &small_ranges);
        let t = target.min(head);
        wait_for(format!("the cursor to pass block {t} before the kill"))
            .timeout(Duration::from_secs(60))
            .watching(&indexer.process)
            .until_async(|| async { indexed_block(&pool).await >= t })
            .await
            .unwrap();
        sigkill(&indexer);
        kills += 1;
    }
    // Live following: new blocks arrive while the indexer is killed again and again.
    for round in 0..10u8 {
        let indexer = Indexer::start(&chain, &db, &small_ranges);
        let n = 1 + rng.below(3) as u8;
        for j in 0..n {
            let mut live = [0x77u8; 32];
            (live[0], live[1]) = (round, j);
            send!(
                app1.addComposeHash(live.into(), app_prov("live"))
                    .from(owner2)
            );
        }
        if rng.below(2) == 0 {
            send!(app1.removeComposeHash(h(0x30 + round)).from(owner2));
        }
        let head = chain.head().await;
        let t = head - rng.below(2);
        wait_for(format!("the cursor to pass block {t} before the kill"))
            .timeout(Duration::from_secs(60))
            .watching(&indexer.process)
            .until_async(|| async { indexed_block(&pool).await >= t })
            .await
            .unwrap();
        sigkill(&indexer);
        kills += 1;
    }
    assert!(kills >= 20, "only {kills} kills");
    let head = chain.head().await;
    run_to(&chain, &db, head, &small_ranges);

    let reference = postgres::database();
    run_to(&chain, &reference, head, &[]);
    let reference_pool = mirror_db(&reference).await;
    let (got, want) = (dump(&pool).await, dump(&reference_pool).await);
    for ((table, g), (_, w)) in got.iter().zip(&want) {
        assert_eq!(g.len(), w.len(), "row count of {table}");
        assert_eq!(g, w, "rows of {table}");
    }
    assert!(
        want[0].1.len() > 100,
        "the history is substantial: {} events",
        want[0].1.len()
    );
}
