//! Eviction latency: a compose hash removal made final → the instance gone from the gateway's
//! routing table, on the real stack (anvil and the contracts, the indexer, a KMS node, the
//! `covenant-gateway` binary, one guest per app on the simulated TEE). The clock starts when the
//! block that makes the removal final has been mined and stops when `GET /v1/instances` no longer
//! lists the instance (polled every millisecond). Prints p50/p99/max. Not a test: nothing is
//! asserted about the time.
//!
//! cargo bench --workspace --bench gateway-eviction -- [--apps N]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)]

use std::{
    process::Command,
    time::{Duration, Instant},
};

use alloy::primitives::Address;
use covenant_test_stack::{FINALITY, Host, Stack, compose_hash, send};
use covenant_testkit::{Process, Signal, tls, tools::workspace_bin};
use serde_json::{Value, json};

fn routed(api: std::net::SocketAddr) -> Vec<Address> {
    let fetched = tls::get_with_chain(api, "localhost", "/v1/instances").unwrap();
    let routes: Value = serde_json::from_str(&fetched.body).unwrap();
    routes["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["app"].as_str().unwrap().parse().unwrap())
        .collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().collect();
    let apps_count: usize = args
        .iter()
        .position(|a| a == "--apps")
        .map_or(20, |i| args[i + 1].parse().unwrap());
    let stack = Stack::start().await;
    let document = serde_json::to_vec(&json!({
        "manifest_version": 1,
        "name": "sleeper",
        "containers": [{
            "name": "web",
            "image": format!("example.invalid/sleeper@sha256:{}", "ab".repeat(32)),
            "command": ["/bin/sleep", "600"]
        }],
        "ports": [{"container": "web", "port": 8080, "protocol": "http"}],
        "kms": {
            "chain_id": stack.deployment.chain_id,
            "registry": stack.registry_address().to_string().to_lowercase()
        }
    }))
    .unwrap();
    let hash = compose_hash(&document);
    let mut apps = Vec::new();
    for _ in 0..apps_count {
        apps.push(stack.create_app(hash).await);
    }
    stack.settle().await;
    let db = covenant_testkit::postgres::database();
    let mut cmd = Command::new(workspace_bin("covenant-gateway").unwrap());
    cmd.arg("run")
        .args(["--deployment", stack.deployment_path.to_str().unwrap()])
        .args(["--rpc-url", &stack.anvil.endpoint()])
        .args(["--mirror-database-url", stack.mirror_url()])
        .args(["--database-url", db.url()])
        .args(["--listen", "127.0.0.1:0"])
        .args(["--base-domain", "apps.bench.test"])
        .args(["--finality", &FINALITY.to_string()]);
    let gateway = Process::spawn("gateway", cmd, Signal::SIGTERM).unwrap();
    let line = gateway
        .wait_for_line("the gateway api line", Duration::from_secs(60), |l| {
            l.contains("gateway api listening")
        })
        .unwrap();
    let api: std::net::SocketAddr = line
        .split("addr=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    let url = format!("https://localhost:{}", api.port());
    let hosts: Vec<Host<'_>> = (0..apps_count)
        .map(|i| Host::new(&stack, &format!("host-{i}"), (i % 250) as u8 + 1))
        .collect();
    let _guests: Vec<Process> = hosts
        .iter()
        .zip(&apps)
        .map(|(host, app)| host.run(*app, &document, &["--gateway-url", &url]))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while routed(api).len() < apps_count {
        assert!(Instant::now() < deadline, "{}", gateway.log_tail(20));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut latencies = Vec::new();
    for app in &apps {
        send!(
            stack
                .app(*app)
                .removeComposeHash(hash)
                .from(stack.timelock())
        );
        stack.finalize();
        let start = Instant::now();
        while routed(api).contains(app) {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{}",
                gateway.log_tail(20)
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        println!("{app}: evicted {ms:.1} ms after finality");
        latencies.push(ms);
    }
    latencies.sort_by(f64::total_cmp);
    let at = |p: f64| latencies[((p / 100.0) * (latencies.len() as f64 - 1.0)).round() as usize];
    println!(
        "eviction after finality, {} instances: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (target p99 <= 1000 ms)",
        latencies.len(),
        at(50.0),
        at(99.0),
        at(100.0)
    );
}
