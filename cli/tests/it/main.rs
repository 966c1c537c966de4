//! The `covenant` binary against real anvil, the real contracts and the indexer: what a
//! developer and a DAO member do, end to end, with the output people read snapshotted.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod env;
mod governance;
mod proof;
mod verify;

use std::{process::Command, time::Duration};

use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use covenant_chain::Deployment;
use covenant_testkit::{
    Anvil, Process, TestDatabase, TestDeployment, deploy_contracts, spawn_indexer,
    tools::{repo_root, workspace_bin},
    wait_for,
};
use serde_json::{Value, json};

/// Blocks below the head that count as final for the indexer.
pub const FINALITY: u64 = 2;

/// Anvil with the contracts (devnet governance timings: 1 s voting delay, 20 s voting period,
/// 10 s Timelock delay) and the indexer mirroring them.
pub struct Devnet {
    pub anvil: Anvil,
    pub deployed: TestDeployment,
    pub deployment: Deployment,
    pub provider: DynProvider,
    _mirror: TestDatabase,
    pub indexer: Process,
    pub indexer_url: String,
}

impl Devnet {
    pub async fn start() -> Self {
        let anvil = Anvil::spawn();
        let deployed = deploy_contracts(&anvil, &[]).unwrap();
        let deployment = Deployment::read(deployed.path()).unwrap();
        let provider = ProviderBuilder::new()
            .connect_http(anvil.endpoint().parse().unwrap())
            .erased();
        let mirror = covenant_testkit::postgres::database();
        let indexer =
            spawn_indexer(deployed.path(), &anvil.endpoint(), mirror.url(), FINALITY).unwrap();
        let line = indexer
            .wait_for_line("the indexer's API", Duration::from_secs(60), |l| {
                l.contains("api listening")
            })
            .unwrap();
        let addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("addr="))
            .unwrap()
            .trim_matches('"')
            .to_owned();
        Self {
            anvil,
            deployed,
            deployment,
            provider,
            _mirror: mirror,
            indexer,
            indexer_url: format!("http://{addr}"),
        }
    }

    /// Anvil account `i`'s private key.
    pub fn key(&self, i: usize) -> String {
        self.anvil.accounts()[i].private_key.clone()
    }

    /// `covenant <args>` with this devnet's endpoints and `key` (if any) in the environment.
    pub fn covenant(&self, key: Option<&str>, args: &[&str]) -> Run {
        self.covenant_with(key, args, &[])
    }

    /// As [`Self::covenant`], with `env` set last (overriding the devnet's).
    pub fn covenant_with(&self, key: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = Command::new(workspace_bin("covenant").unwrap());
        command
            .current_dir(repo_root())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("COVENANT_RPC_URL", self.anvil.endpoint())
            .env("COVENANT_INDEXER_URL", &self.indexer_url)
            .env("COVENANT_DEPLOYMENT", self.deployed.path())
            .args(args);
        if let Some(key) = key {
            command.env("COVENANT_PRIVATE_KEY", key);
        }
        command.envs(env.iter().copied());
        let output = command.output().unwrap();
        Run {
            ok: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout)
                .trim_end()
                .to_owned(),
            stderr: String::from_utf8_lossy(&output.stderr)
                .trim_end()
                .to_owned(),
        }
    }

    /// `covenant --json <args>`, which must succeed.
    pub fn json(&self, key: Option<&str>, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let run = self.covenant(key, &all);
        assert!(run.ok, "covenant {args:?} failed: {}", run.stderr);
        serde_json::from_str(&run.stdout).unwrap()
    }

    /// Writes the compose file of a one-container app `name` (image digest of `byte`s) for this
    /// deployment into `dir`.
    pub fn compose_file(
        &self,
        dir: &std::path::Path,
        name: &str,
        byte: &str,
    ) -> std::path::PathBuf {
        let registry = self.deployment.contracts.kms_registry;
        let path = dir.join(format!("{name}.json"));
        std::fs::write(
            &path,
            json!({
                "manifest_version": 1,
                "name": name,
                "containers": [{ "name": name, "image": format!("covenant.local/{name}@sha256:{}", byte.repeat(32)) }],
                "kms": { "chain_id": 31337, "registry": registry.to_string().to_lowercase() },
            })
            .to_string(),
        )
        .unwrap();
        path
    }

    /// `covenant app create` by anvil account 1, which owns the app, allowing `compose` on any
    /// device (with `extra` arguments); the app's address.
    pub fn create_own_app(
        &self,
        compose: &std::path::Path,
        source: &str,
        extra: &[&str],
    ) -> alloy::primitives::Address {
        let owner = self.anvil.accounts()[1].address.clone();
        let mut args = vec![
            "app",
            "create",
            "--owner",
            &owner,
            "--compose",
            compose.to_str().unwrap(),
            "--source-url",
            source,
            "--commit",
            "v1",
            "--any-device",
        ];
        args.extend_from_slice(extra);
        let created = self.json(Some(&self.key(1)), &args);
        created["app"].as_str().unwrap().parse().unwrap()
    }

    /// Moves the chain's clock `seconds` forward and mines a block there.
    pub fn advance(&self, seconds: u64) {
        self.anvil
            .rpc("evm_increaseTime", json!([seconds]))
            .unwrap();
        self.anvil.rpc("evm_mine", json!([])).unwrap();
    }

    /// Mines until everything sent so far is final, and waits for the indexer to say so.
    pub async fn finalize(&self) {
        self.anvil
            .rpc("anvil_mine", json!([format!("0x{:x}", FINALITY + 1)]))
            .unwrap();
        let want = self.provider.get_block_number().await.unwrap() - FINALITY;
        let client = reqwest::Client::new();
        let url = format!("{}/v1/head", self.indexer_url);
        wait_for(format!("the indexer's finalized block to reach {want}"))
            .timeout(Duration::from_secs(60))
            .watching(&self.indexer)
            .until_ok_async(|| async {
                let head: Value = client
                    .get(&url)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?
                    .json()
                    .await
                    .map_err(|e| e.to_string())?;
                let at = head["finalized"]["number"].as_u64().unwrap_or(0);
                if at >= want {
                    Ok(())
                } else {
                    Err(format!("at {at}"))
                }
            })
            .await
            .unwrap();
    }
}

/// What a `covenant` run printed.
#[derive(Debug)]
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// An HTTP server on loopback that answers every request with one JSON body (a stand-in for a
/// hostile indexer); it stops when dropped.
pub struct OneAnswer {
    addr: std::net::SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl OneAnswer {
    pub fn serve(body: String) -> Self {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Self { addr, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for OneAnswer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        // Wakes the blocking accept, which then sees the flag and ends the thread.
        let _ = std::net::TcpStream::connect(self.addr);
    }
}

/// A TLS server for `name` on loopback answering every request with `body`; returns its port
/// and the PEM of the CA that issued its certificate. It serves until the process ends.
pub fn tls_server(name: &str, body: String) -> (u16, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec![name.to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let config = std::sync::Arc::new(
        rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone(), ca.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { continue };
            let connection = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(connection, tcp);
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let _ = write!(
                tls,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tls.flush();
        }
    });
    (port, ca.pem())
}
