//! The two arms on the local stack: the mock model server run as a Covenant app — its compose
//! allowed on chain, booted by `covenant-guest` on the simulated TEE, registered with and routed
//! by `covenant-gateway` — reached directly (plain HTTP to the port it listens on) and through
//! Covenant (HTTPS to the app's name at the gateway's public listener, which forwards over the
//! pinned RA-TLS hop to the guest, which forwards to the app). Both arms reach the same mock
//! process, so the difference between them is the path.
//!
//! Built on the test stack (`covenant-test-stack`: anvil with the contracts, the indexer, a KMS
//! node); benchmark and test support only.

use std::{
    net::SocketAddr,
    process::Command,
    time::{Duration, Instant},
};

use alloy::primitives::Address;
use covenant_test_stack::{FINALITY, Host, Stack, compose_hash};
use covenant_testkit::{Process, Signal, TestDatabase, tls, tools::workspace_bin};
use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};

use crate::{
    client::{Api, Client, Target},
    mock::{self, Timing},
};

/// The base domain the benchmark's gateway serves apps under.
pub const BASE_DOMAIN: &str = "apps.bench.test";

/// The running stack with the model app booted and routed.
pub struct Arms {
    /// Plain HTTP to the mock model's port.
    pub direct: Target,
    /// HTTPS to the app's name at the gateway.
    pub through: Target,
    app: Address,
    guest: Process,
    gateway: Process,
    _gateway_db: TestDatabase,
    _stack: Stack,
}

impl Arms {
    /// Starts the stack, allows and boots the mock model with `timing` as an app, and waits
    /// until a request through the gateway streams.
    pub async fn start(timing: Timing) -> Result<Self, String> {
        let stack = Stack::start().await;
        let port = covenant_testkit::free_port().map_err(|e| e.to_string())?;
        let document = compose(&stack, port, timing)?;
        let app = stack.create_app(compose_hash(&document)).await;
        stack.settle().await;

        let gateway_db = covenant_testkit::postgres::database();
        let dev_ca = stack.dir.path().join("gateway-dev-ca.pem");
        let mut cmd = Command::new(workspace_bin("covenant-gateway").map_err(|e| e.to_string())?);
        cmd.arg("run")
            .args(["--deployment", path(&stack.deployment_path)?])
            .args(["--rpc-url", &stack.anvil.endpoint()])
            .args(["--mirror-database-url", stack.mirror_url()])
            .args(["--database-url", gateway_db.url()])
            .args(["--listen", "127.0.0.1:0"])
            .args(["--public-listen", "127.0.0.1:0"])
            .args(["--base-domain", BASE_DOMAIN])
            .args(["--finality", &FINALITY.to_string()])
            .args(["--dev-ca-out", path(&dev_ca)?]);
        let gateway = Process::spawn("gateway", cmd, Signal::SIGTERM).map_err(|e| e.to_string())?;
        let line = |needle: &'static str| -> Result<SocketAddr, String> {
            let line = gateway
                .wait_for_line(needle, Duration::from_secs(120), |l| l.contains(needle))
                .map_err(|e| e.to_string())?;
            addr_of(&line)
        };
        let api = line("gateway api listening")?;
        let public = line("gateway public listening")?;

        let host = Host::new(&stack, "model", 0x4d);
        let gateway_url = format!("https://localhost:{}", api.port());
        let guest = host.run(app, &document, &["--gateway-url", &gateway_url]);

        let mut roots = rustls::RootCertStore::empty();
        let pem = std::fs::read(&dev_ca).map_err(|e| format!("{}: {e}", dev_ca.display()))?;
        for der in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
            roots
                .add(der.map_err(|e| format!("the gateway's CA: {e:?}"))?)
                .map_err(|e| format!("the gateway's CA: {e}"))?;
        }
        let name = format!("{}.{BASE_DOMAIN}", hex::encode(app.as_slice()));
        let arms = Self {
            direct: Target::plain(SocketAddr::from(([127, 0, 0, 1], port))),
            through: Target::tls(public, &name, roots)?,
            app,
            guest,
            gateway,
            _gateway_db: gateway_db,
            _stack: stack,
        };
        arms.wait_serving(api).await?;
        Ok(arms)
    }

    /// Waits until the gateway routes the app and a request through it streams.
    async fn wait_serving(&self, api: SocketAddr) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(120);
        let body = Api::Completions.body(mock::MODEL, "ready", 2);
        let mut last = String::new();
        while Instant::now() < deadline {
            if self.routed(api) {
                // A fresh client each time: a refused attempt leaves nothing behind.
                match Client::new(self.through.clone())
                    .stream(Api::Completions, &body)
                    .await
                {
                    Ok(_) => return Ok(()),
                    Err(e) => last = e,
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!(
            "the model app did not serve through the gateway: {last}\ngateway:\n{}\nguest:\n{}",
            self.gateway.log_tail(20),
            self.guest.log_tail(20)
        ))
    }

    fn routed(&self, api: SocketAddr) -> bool {
        let Ok(fetched) = tls::get_with_chain(api, "localhost", "/v1/instances") else {
            return false;
        };
        let Ok(routes) = serde_json::from_str::<Value>(&fetched.body) else {
            return false;
        };
        let app = self.app.to_string().to_lowercase();
        routes["apps"].as_array().is_some_and(|apps| {
            apps.iter().any(|a| {
                a["app"].as_str().map(str::to_lowercase) == Some(app.clone())
                    && a["instances"].as_array().is_some_and(|i| !i.is_empty())
            })
        })
    }

    /// The last lines the gateway and the guest logged.
    pub fn logs(&self) -> String {
        format!(
            "gateway:\n{}\nguest:\n{}",
            self.gateway.log_tail(30),
            self.guest.log_tail(30)
        )
    }
}

/// The control arm: `hops` plain TCP relays (`covenant-bench-inference relay`, separate
/// processes, no TLS, no HTTP) chained in front of `to`; the processes (stopped when dropped) and
/// the first relay's address.
pub fn relays(to: SocketAddr, hops: usize) -> Result<(Vec<Process>, SocketAddr), String> {
    let bin = workspace_bin("covenant-bench-inference").map_err(|e| e.to_string())?;
    let mut processes = Vec::with_capacity(hops);
    let mut next = to;
    for _ in 0..hops {
        let mut cmd = Command::new(&bin);
        cmd.args(["relay", "--to", &next.to_string()]);
        let process = Process::spawn("relay", cmd, Signal::SIGTERM).map_err(|e| e.to_string())?;
        let line = process
            .wait_for_line("the relay's listening line", Duration::from_secs(30), |l| {
                l.contains("relay listening")
            })
            .map_err(|e| e.to_string())?;
        next = addr_of(&line)?;
        processes.push(process);
    }
    Ok((processes, next))
}

/// The compose of the model app: `covenant-bench-inference mock-server` with `timing` on `port`.
fn compose(stack: &Stack, port: u16, timing: Timing) -> Result<Vec<u8>, String> {
    let bin = workspace_bin("covenant-bench-inference").map_err(|e| e.to_string())?;
    let ms = |d: Duration| (d.as_secs_f64() * 1000.0).to_string();
    serde_json::to_vec(&json!({
        "manifest_version": 1,
        "name": "model",
        "containers": [{
            "name": "model",
            "image": format!("example.invalid/mock-model@sha256:{}", "4d".repeat(32)),
            "command": [
                path(&bin)?, "mock-server",
                "--listen", format!("127.0.0.1:{port}"),
                "--prefill-ms", ms(timing.prefill_base),
                "--prefill-per-token-ms", ms(timing.prefill_per_token),
                "--per-token-ms", ms(timing.per_token),
            ]
        }],
        "ports": [{"container": "model", "port": port, "protocol": "http"}],
        "kms": {
            "chain_id": stack.deployment.chain_id,
            "registry": stack.registry_address().to_string().to_lowercase()
        }
    }))
    .map_err(|e| e.to_string())
}

fn path(p: &std::path::Path) -> Result<&str, String> {
    p.to_str()
        .ok_or_else(|| format!("{} is not UTF-8", p.display()))
}

/// The address in a log line's `addr=` field.
fn addr_of(line: &str) -> Result<SocketAddr, String> {
    line.split("addr=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no address in {line:?}"))
}
