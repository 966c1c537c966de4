//! The gateway against the real stack: anvil and the contracts, the indexer, a KMS node, guests
//! (the `covenant-guest` binary on the simulated TEE) registering by evidence, and the
//! `covenant-gateway` binary deciding them at every finalized block.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

mod acme;
mod domains;
mod http;
mod proxy;
mod registration;

use std::{net::SocketAddr, process::Command, time::Duration};

use alloy::primitives::Address;
use covenant_test_stack::{FINALITY, Host, Stack};
use covenant_testkit::{Process, Signal, TestDatabase, tls, tools::workspace_bin, wait_for};
use serde_json::{Value, json};

/// The base domain the tests' gateway serves.
pub const BASE_DOMAIN: &str = "apps.covenant.test";

/// A gateway node on the stack.
pub struct GatewayNode {
    pub process: Process,
    pub addr: SocketAddr,
    /// The public listener.
    pub public: SocketAddr,
    /// The gateway database's URL.
    pub db_url: String,
    /// The root (DER) the certificates of names it terminates TLS for chain to: its development
    /// CA, or the ACME CA's root.
    pub public_root: Vec<u8>,
    _db: Option<TestDatabase>,
    _dir: tempfile::TempDir,
}

impl GatewayNode {
    /// Starts `covenant-gateway run` on `stack` with a database of its own.
    pub fn start(stack: &Stack) -> Self {
        Self::start_with(stack, &[])
    }

    /// Starts `covenant-gateway run` on `stack` with `extra` arguments.
    pub fn start_with(stack: &Stack, extra: &[&str]) -> Self {
        let db = covenant_testkit::postgres::database();
        let url = db.url().to_owned();
        Self::spawn(stack, url, Some(db), extra)
    }

    /// Starts another node sharing `other`'s database.
    pub fn start_sharing(stack: &Stack, other: &GatewayNode) -> Self {
        Self::spawn(stack, other.db_url.clone(), None, &[])
    }

    fn spawn(stack: &Stack, db_url: String, db: Option<TestDatabase>, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let dev_ca_path = dir.path().join("dev-ca.pem");
        let mut cmd = Command::new(workspace_bin("covenant-gateway").unwrap());
        cmd.arg("run")
            .args(["--deployment", stack.deployment_path.to_str().unwrap()])
            .args(["--rpc-url", &stack.anvil.endpoint()])
            .args(["--mirror-database-url", stack.mirror_url()])
            .args(["--database-url", &db_url])
            .args(["--listen", "127.0.0.1:0"])
            .args(["--public-listen", "127.0.0.1:0"])
            .args(["--base-domain", BASE_DOMAIN])
            .args(["--finality", &FINALITY.to_string()])
            .args(["--dev-ca-out", dev_ca_path.to_str().unwrap()])
            .args(extra);
        let process = Process::spawn("gateway", cmd, Signal::SIGTERM).unwrap();
        let line = process
            .wait_for_line("the gateway api line", Duration::from_secs(60), |l| {
                l.contains("gateway api listening")
            })
            .unwrap();
        let addr = addr_of(&line);
        let public = addr_of(
            &process
                .wait_for_line("the public listening line", Duration::from_secs(60), |l| {
                    l.contains("gateway public listening")
                })
                .unwrap(),
        );
        let pem = std::fs::read(&dev_ca_path).unwrap();
        let dev_ca = rustls::pki_types::pem::PemObject::from_pem_slice(&pem)
            .map(|der: rustls::pki_types::CertificateDer<'static>| der.to_vec())
            .unwrap();
        Self {
            process,
            addr,
            public,
            db_url,
            public_root: dev_ca,
            _db: db,
            _dir: dir,
        }
    }

    /// Runs the gateway as an app: `covenant-guest run` of `app` (the chain's `gatewayAppId`)
    /// on `host`, whose compose ([`gateway_compose`]) runs `covenant-gateway` with the guest's
    /// socket; its certificates chain to `public_root`.
    pub fn as_app(
        host: &Host<'_>,
        app: Address,
        compose: &[u8],
        db_url: &str,
        public_root: Vec<u8>,
    ) -> Self {
        let process = host.run(app, compose, &[]);
        let line = |what: &str, needle: &'static str| {
            addr_of(
                &process
                    .wait_for_line(what, Duration::from_secs(120), |l| l.contains(needle))
                    .unwrap(),
            )
        };
        let addr = line("the gateway api line", "gateway api listening");
        let public = line("the public listening line", "gateway public listening");
        Self {
            process,
            addr,
            public,
            db_url: db_url.to_owned(),
            public_root,
            _db: None,
            _dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The registration API's URL.
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// `GET /v1/instances`.
    pub fn routes(&self) -> Value {
        let fetched = tls::get_with_chain(self.addr, "localhost", "/v1/instances").unwrap();
        assert_eq!(fetched.status, 200, "{}", fetched.body);
        serde_json::from_str(&fetched.body).unwrap()
    }

    /// The instance ids routed for `app`.
    pub fn instances_of(&self, app: Address) -> Vec<String> {
        let routes = self.routes();
        routes["apps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["app"].as_str().unwrap().parse::<Address>().unwrap() == app)
            .flat_map(|a| a["instances"].as_array().unwrap().clone())
            .map(|i| i["instanceId"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Waits until `app` has `count` routed instances.
    pub fn wait_routed(&self, app: Address, count: usize) -> Vec<String> {
        wait_for(format!("{count} routed instances of {app}"))
            .timeout(Duration::from_secs(60))
            .watching(&self.process)
            .until_ok(|| {
                let routed = self.instances_of(app);
                if routed.len() == count {
                    Ok(routed)
                } else {
                    Err(format!("{} routed: {}", routed.len(), self.routes()))
                }
            })
            .unwrap()
    }
}

/// The address in a log line's `addr=` field.
fn addr_of(line: &str) -> SocketAddr {
    line.split("addr=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap()
}

/// A compose running the echo app (`test/apps/echo`) on `port` as an HTTP port.
pub fn echo_compose(stack: &Stack, name: &str, port: u16) -> Vec<u8> {
    let bin = workspace_bin("covenant-echo-app").unwrap();
    serde_json::to_vec(&json!({
        "manifest_version": 1,
        "name": name,
        "containers": [{
            "name": "echo",
            "image": format!("example.invalid/{name}@sha256:{}", "34".repeat(32)),
            "command": [bin.to_str().unwrap(), "--listen", format!("127.0.0.1:{port}"), "--name", name]
        }],
        "ports": [{"container": "echo", "port": port, "protocol": "http"}],
        "kms": {
            "chain_id": stack.deployment.chain_id,
            "registry": stack.registry_address().to_string().to_lowercase()
        }
    }))
    .unwrap()
}

/// A compose running `covenant-gateway` as an app: on `stack`, its database `db_url`, its public
/// listener on `public` (its registration API on a port of its own choosing), certificates from
/// the ACME `directory` whose TLS `acme_ca_file` is trusted, custom domains checked with `dns`.
pub fn gateway_compose(
    stack: &Stack,
    db_url: &str,
    public: SocketAddr,
    directory: &str,
    acme_ca_file: &std::path::Path,
    dns: SocketAddr,
) -> Vec<u8> {
    let bin = workspace_bin("covenant-gateway").unwrap();
    let command: Vec<String> = [
        bin.to_str().unwrap(),
        "run",
        "--deployment",
        stack.deployment_path.to_str().unwrap(),
        "--rpc-url",
        &stack.anvil.endpoint(),
        "--mirror-database-url",
        stack.mirror_url(),
        "--database-url",
        db_url,
        "--listen",
        "127.0.0.1:0",
        "--public-listen",
        &public.to_string(),
        "--base-domain",
        BASE_DOMAIN,
        "--finality",
        &FINALITY.to_string(),
        "--acme-directory",
        directory,
        "--acme-ca-file",
        acme_ca_file.to_str().unwrap(),
        "--dns-server",
        &dns.to_string(),
    ]
    .map(str::to_owned)
    .to_vec();
    serde_json::to_vec(&json!({
        "manifest_version": 1,
        "name": "gateway",
        "containers": [{
            "name": "gateway",
            "image": format!("example.invalid/gateway@sha256:{}", "56".repeat(32)),
            "command": command
        }],
        "ports": [],
        "kms": {
            "chain_id": stack.deployment.chain_id,
            "registry": stack.registry_address().to_string().to_lowercase()
        }
    }))
    .unwrap()
}

/// A compose whose one container sleeps, with one HTTP port.
pub fn sleeper_compose(stack: &Stack, name: &str, port: u16) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "manifest_version": 1,
        "name": name,
        "containers": [{
            "name": "web",
            "image": format!("example.invalid/{name}@sha256:{}", "ab".repeat(32)),
            "command": ["/bin/sleep", "600"]
        }],
        "ports": [{"container": "web", "port": port, "protocol": "http"}],
        "kms": {
            "chain_id": stack.deployment.chain_id,
            "registry": stack.registry_address().to_string().to_lowercase()
        }
    }))
    .unwrap()
}
