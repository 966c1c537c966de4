//! The stack the indexer tests run against: a real anvil with the real contracts, a fresh
//! Postgres database, and the indexer binary.

use std::{process::Command, time::Duration};

use alloy::{
    primitives::Address,
    providers::{DynProvider, Provider, ProviderBuilder},
};
use covenant_chain::Deployment;
use covenant_testkit::{
    Anvil, AnvilBuilder, Process, Signal, TestDatabase, TestDeployment, deploy_contracts, wait_for,
};
use serde_json::Value;

pub struct Chain {
    pub anvil: Anvil,
    pub _deployed: TestDeployment,
    pub deployment: Deployment,
    pub deployment_path: std::path::PathBuf,
    pub provider: DynProvider,
}

impl Chain {
    pub async fn start() -> Self {
        Self::start_with(Anvil::builder()).await
    }

    pub async fn start_with(builder: AnvilBuilder) -> Self {
        let anvil = builder.spawn();
        let deployed = deploy_contracts(&anvil, &[]).unwrap();
        let deployment = Deployment::read(deployed.path()).unwrap();
        let provider = ProviderBuilder::new()
            .connect_http(anvil.endpoint().parse().unwrap())
            .erased();
        Self {
            deployment_path: deployed.path().to_owned(),
            _deployed: deployed,
            anvil,
            deployment,
            provider,
        }
    }

    pub fn account(&self, i: usize) -> Address {
        self.anvil.accounts()[i].address.parse().unwrap()
    }

    /// Lets tests send transactions as `who` (the Timelock, a KMS node, ...).
    pub fn impersonate(&self, who: Address) {
        self.anvil
            .rpc(
                "anvil_impersonateAccount",
                serde_json::json!([who.to_string()]),
            )
            .unwrap();
        self.anvil
            .rpc(
                "anvil_setBalance",
                serde_json::json!([who.to_string(), "0x56BC75E2D63100000"]),
            )
            .unwrap();
    }

    pub fn timelock(&self) -> Address {
        let t = self.deployment.contracts.timelock_controller;
        self.impersonate(t);
        t
    }

    pub async fn head(&self) -> u64 {
        self.provider.get_block_number().await.unwrap()
    }

    pub fn mine(&self, blocks: u64) {
        self.anvil
            .rpc("anvil_mine", serde_json::json!([format!("0x{blocks:x}")]))
            .unwrap();
    }

    /// The head block's timestamp.
    pub async fn timestamp(&self) -> u64 {
        self.provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .unwrap()
            .unwrap()
            .header
            .timestamp
    }

    pub fn advance_time(&self, seconds: u64) {
        self.anvil
            .rpc("evm_increaseTime", serde_json::json!([seconds]))
            .unwrap();
        self.mine(1);
    }
}

pub struct Indexer {
    pub process: Process,
    pub api: String,
}

pub fn indexer_command(chain: &Chain, db: &TestDatabase, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_covenant-indexer"));
    cmd.arg("--deployment")
        .arg(&chain.deployment_path)
        .args(["--database-url", db.url()])
        .env("COVENANT_LOG", "info,indexer=debug");
    let rpc = chain.anvil.endpoint();
    // Test defaults, unless the test sets them.
    for (flag, value) in [
        ("--rpc-url", rpc.as_str()),
        ("--listen", "127.0.0.1:0"),
        ("--finality", "0"),
        ("--poll-interval-ms", "50"),
        ("--progress", "never"),
    ] {
        if !extra.contains(&flag) {
            cmd.args([flag, value]);
        }
    }
    cmd.args(extra);
    cmd
}

impl Indexer {
    pub fn start(chain: &Chain, db: &TestDatabase, extra: &[&str]) -> Self {
        Self::spawn(indexer_command(chain, db, extra))
    }

    pub fn spawn(cmd: Command) -> Self {
        let process = Process::spawn("indexer", cmd, Signal::SIGTERM).unwrap();
        let line = process
            .wait_for_line("its API address", Duration::from_secs(60), |l| {
                l.contains("api listening")
            })
            .unwrap();
        let addr = line
            .split("addr=")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned();
        Self {
            process,
            api: format!("http://{addr}"),
        }
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = reqwest::get(format!("{}{path}", self.api)).await.unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&body).unwrap_or(Value::String(body)),
        )
    }

    pub async fn get_ok(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(format!("{}{path}", self.api))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Waits until the finalized view reaches `block`.
    pub async fn wait_finalized(&self, block: u64) -> Value {
        wait_for(format!(
            "the indexer's finalized view to reach block {block}"
        ))
        .timeout(Duration::from_secs(60))
        .watching(&self.process)
        .until_ok_async(|| async {
            let r = reqwest::get(format!("{}/v1/head", self.api))
                .await
                .map_err(|e| e.to_string())?;
            let v: Value = r.json().await.map_err(|e| e.to_string())?;
            match v["finalized"]["number"].as_u64() {
                Some(n) if n >= block => Ok(v),
                other => Err(format!("finalized {other:?}: {v}")),
            }
        })
        .await
        .unwrap()
    }
}

/// A change-feed subscriber collecting every event it receives.
pub struct Feed {
    pub events: std::sync::Arc<std::sync::Mutex<Vec<(String, Value)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Feed {
    pub async fn subscribe(indexer: &Indexer, after: Option<&str>) -> Self {
        use futures::StreamExt;
        let url = match after {
            Some(a) => format!("{}/v1/feed?after={a}", indexer.api),
            None => format!("{}/v1/feed", indexer.api),
        };
        let response = reqwest::get(url).await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = events.clone();
        let task = tokio::spawn(async move {
            let mut body = response.bytes_stream();
            let mut buf = String::new();
            let (mut name, mut data) = (String::new(), String::new());
            while let Some(Ok(chunk)) = body.next().await {
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(i) = buf.find('\n') {
                    let line: String = buf.drain(..=i).collect();
                    let line = line.trim_end_matches(['\n', '\r']);
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim());
                    } else if line.is_empty() && !data.is_empty() {
                        let value = serde_json::from_str(&data).unwrap_or(Value::Null);
                        sink.lock()
                            .unwrap()
                            .push((std::mem::take(&mut name), value));
                        data.clear();
                    }
                }
            }
        });
        Self { events, task }
    }

    pub fn snapshot(&self) -> Vec<(String, Value)> {
        self.events.lock().unwrap().clone()
    }

    /// Waits until an event satisfies `pred`.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&str, &Value) -> bool) {
        wait_for(format!("the change feed to deliver {what}"))
            .timeout(Duration::from_secs(60))
            .until_async(|| {
                let found = self.events.lock().unwrap().iter().any(|(n, v)| pred(n, v));
                async move { found }
            })
            .await
            .unwrap();
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A direct connection to the mirror's database, for checks the API does not expose.
pub async fn mirror_db(db: &TestDatabase) -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(db.url())
        .await
        .unwrap()
}

/// The compose hashes ever added in the (unfinalized) mirror, from the raw events.
pub async fn mirrored_compose_hashes(pool: &sqlx::PgPool) -> Vec<String> {
    sqlx::query_scalar::<_, String>(
        "SELECT data->>'composeHash' FROM events WHERE name = 'ComposeHashAdded' ORDER BY block_number, log_index",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

pub async fn indexed_block(pool: &sqlx::PgPool) -> u64 {
    sqlx::query_scalar::<_, i64>("SELECT indexed_number FROM mirror")
        .fetch_one(pool)
        .await
        .unwrap() as u64
}
