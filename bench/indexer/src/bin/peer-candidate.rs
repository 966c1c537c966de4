//! `--candidate-cmd` for the Ponder peer harness: indexes the harness emitter's
//! `ComposeHashAdded(address indexed app, bytes32 indexed hash, string provenance)` over
//! `--from-block..=--to-block` into `compose_hash_added`, with the indexer's fetch path, then
//! exits. Each range is committed with its cursor in one transaction, as the indexer does.
#![allow(clippy::print_stdout)]

use std::sync::{Arc, Mutex};

use alloy::{primitives::Address, sol, sol_types::SolEvent};
use clap::Parser;
use covenant_indexer::{
    metrics::Metrics,
    source::{LogFilter, RangeSizer, Rpc, fetch_logs},
};
use futures::{StreamExt, stream};

sol! {
    event ComposeHashAdded(address indexed app, bytes32 indexed hash, string provenance);
}

#[derive(Parser)]
struct Args {
    #[arg(long)]
    rpc: String,
    #[arg(long)]
    database_url: String,
    #[arg(long)]
    address: Address,
    #[arg(long)]
    from_block: u64,
    #[arg(long)]
    to_block: u64,
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let rpc = Rpc::new(&args.rpc, std::time::Duration::from_secs(60))?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&args.database_url)
        .await?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS compose_hash_added (
            block_hash BYTEA NOT NULL, log_index BIGINT NOT NULL, block_number BIGINT NOT NULL,
            app BYTEA NOT NULL, hash BYTEA NOT NULL, provenance TEXT NOT NULL,
            PRIMARY KEY (block_hash, log_index));
         CREATE TABLE IF NOT EXISTS candidate_cursor (id BOOLEAN PRIMARY KEY, block BIGINT NOT NULL);",
    )
    .execute(&pool)
    .await?;
    let sizer = Arc::new(Mutex::new(RangeSizer::new(2000, 100_000, 10_000)));
    let metrics = Metrics::unregistered();
    let filter = LogFilter {
        addresses: vec![args.address],
        topics: Vec::new(),
    };
    let to = args.to_block;
    let ranges = Box::pin(stream::unfold(args.from_block, {
        let sizer = sizer.clone();
        move |from| {
            let next = sizer
                .lock()
                .map(|s| s.next(from, to))
                .unwrap_or((from, from));
            async move { (from <= to).then(|| (next, next.1 + 1)) }
        }
    }));
    let mut fetched = ranges
        .map(|(a, b)| {
            let (rpc, sizer, metrics, filter) =
                (rpc.clone(), sizer.clone(), metrics.clone(), filter.clone());
            async move {
                fetch_logs(&rpc, a, b, &filter, &sizer, &metrics)
                    .await
                    .map(|logs| (b, logs))
            }
        })
        .buffered(args.concurrency);
    let mut total = 0usize;
    while let Some(range) = fetched.next().await {
        let (end, logs) = range?;
        let (mut bh, mut li, mut bn, mut app, mut hash, mut prov) = (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        );
        for log in &logs {
            let ev = ComposeHashAdded::decode_raw_log(log.topics(), &log.data().data)?;
            bh.push(log.block_hash.unwrap_or_default().to_vec());
            li.push(log.log_index.unwrap_or_default() as i64);
            bn.push(log.block_number.unwrap_or_default() as i64);
            app.push(ev.app.to_vec());
            hash.push(ev.hash.to_vec());
            prov.push(ev.provenance);
        }
        total += logs.len();
        let mut tx = pool.begin().await?;
        sqlx::query(
            "INSERT INTO compose_hash_added SELECT * FROM UNNEST($1::bytea[], $2::int8[], $3::int8[], $4::bytea[], $5::bytea[], $6::text[])
             ON CONFLICT DO NOTHING",
        )
        .bind(bh)
        .bind(li)
        .bind(bn)
        .bind(app)
        .bind(hash)
        .bind(prov)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO candidate_cursor VALUES (true, $1) ON CONFLICT (id) DO UPDATE SET block = $1")
            .bind(end as i64)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    println!("indexed {total} events");
    Ok(())
}
