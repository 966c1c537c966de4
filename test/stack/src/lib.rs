//! The stack apps boot against in tests, shared by the guest's and the gateway's integration
//! tests: a real anvil with the real contracts, the indexer (its binary) mirroring them into
//! Postgres, a bootstrapped, registered KMS node (its binary), all on ports of their own, and
//! [`Host`]: one host running the `covenant-guest` binary on the simulated TEE.
//!
//! Governance is played by impersonating the Timelock on anvil (the governance flow itself is
//! tested in `test/` and by the devnet). Test support only: never a dependency of a non-test
//! target.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use alloy::{
    primitives::{Address, B256},
    providers::{DynProvider, Provider, ProviderBuilder},
};
use covenant_chain::{
    Deployment,
    kms_registry::{IApp, KmsRegistry},
};
use covenant_testkit::{
    Anvil, Process, Signal, TestDatabase, TestDeployment, deploy_contracts, spawn_indexer,
    tools::workspace_bin, wait_for,
};
use serde_json::{Value, json};

pub const OS_IMAGE: [u8; 32] = [0x05; 32];
pub const OS_IMAGE_UNLISTED: [u8; 32] = [0x06; 32];
pub const KMS_DEVICE: [u8; 32] = [0x0d; 32];
/// Blocks below the head that count as final.
pub const FINALITY: u64 = 2;

pub use covenant_testkit::send;

pub struct Stack {
    pub anvil: Anvil,
    _deployed: TestDeployment,
    pub deployment: Deployment,
    pub deployment_path: PathBuf,
    provider: DynProvider,
    _mirror: TestDatabase,
    _indexer: Process,
    pub dir: tempfile::TempDir,
    pub kms: Option<Kms>,
}

pub struct Kms {
    pub process: Process,
    pub addr: SocketAddr,
    _audit: TestDatabase,
    pub root_signer: Address,
    /// What KMS-issued certificate chains verify against (generation 1).
    pub roots: covenant_kms_api::RootAnchor,
}

impl Kms {
    /// The node's URL with a DNS name.
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }
}

impl Stack {
    /// Anvil, the contracts (simulated TEEs allowed), the indexer, `OS_IMAGE` registered with
    /// the simulated TEE's registers, and one KMS node serving.
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
        let mut stack = Self {
            deployment_path: deployed.path().to_owned(),
            _deployed: deployed,
            anvil,
            deployment,
            provider,
            _mirror: mirror,
            _indexer: indexer,
            dir: tempfile::tempdir().unwrap(),
            kms: None,
        };
        let (mrtd, rtmr) = covenant_tee::simulated_os_registers(OS_IMAGE);
        let registers: Vec<u8> = [mrtd, rtmr[0], rtmr[1], rtmr[2]]
            .iter()
            .flat_map(|m| m.as_bytes().to_vec())
            .collect();
        let timelock = stack.timelock();
        send!(
            stack
                .registry()
                .addOsImage(
                    B256::from(OS_IMAGE),
                    provenance("os"),
                    vec![KmsRegistry::OsMeasurement {
                        teeKind: 3,
                        registers: registers.into(),
                    }],
                )
                .from(timelock)
        );
        stack.kms = Some(stack.start_kms().await);
        stack
    }

    fn kms_args(&self, state_dir: &std::path::Path, audit_url: &str) -> Vec<String> {
        [
            "--deployment",
            self.deployment_path.to_str().unwrap(),
            "--rpc-url",
            &self.anvil.endpoint(),
            "--mirror-database-url",
            self._mirror.url(),
            "--database-url",
            audit_url,
            "--state-dir",
            state_dir.to_str().unwrap(),
            "--tee",
            "simulated",
            "--device-id",
            &B256::from(KMS_DEVICE).to_string(),
            "--os-image",
            &B256::from(OS_IMAGE).to_string(),
            "--finality",
            &FINALITY.to_string(),
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// Bootstraps a KMS node, registers it as governance would, and runs it.
    async fn start_kms(&self) -> Kms {
        let bin = workspace_bin("covenant-kms-oracle").unwrap();
        let state_dir = self.dir.path().join("kms");
        let out = Command::new(&bin)
            .arg("init")
            .args(self.kms_args(&state_dir, "postgres://unused"))
            .arg("--bootstrap")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        let field = |v: &Value, name: &str| v[name].as_str().unwrap().to_owned();
        let mr: B256 = field(&report, "mrAggregated").parse().unwrap();
        let device: B256 = field(&report, "deviceId").parse().unwrap();
        let node: Address = field(&report, "node").parse().unwrap();
        let root_signer: Address = field(&report["root"], "rootSigner").parse().unwrap();
        let ca = alloy::primitives::Bytes::from(
            hex::decode(&field(&report["root"], "caPublicKey")[2..]).unwrap(),
        );
        let (timelock, reg) = (self.timelock(), self.registry());
        send!(reg.addKmsMeasurement(mr).from(timelock));
        send!(reg.addKmsDevice(device).from(timelock));
        send!(reg.setKmsRootKeys(root_signer, ca.clone()).from(timelock));
        send!(reg.onboardKmsNode(node, mr, device).from(timelock));
        self.anvil
            .rpc(
                "anvil_setBalance",
                json!([node.to_string(), "0x56BC75E2D63100000"]),
            )
            .unwrap();
        self.finalize();
        let audit = covenant_testkit::postgres::database();
        let mut cmd = Command::new(&bin);
        cmd.arg("run")
            .args(self.kms_args(&state_dir, audit.url()))
            .args(["--listen", "127.0.0.1:0", "--commit-interval-ms", "200"]);
        let process = Process::spawn("kms", cmd, Signal::SIGTERM).unwrap();
        let line = process
            .wait_for_line("the kms listening line", Duration::from_secs(120), |l| {
                l.contains("kms listening")
            })
            .unwrap();
        let addr = line
            .split("addr=")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .unwrap()
            .parse()
            .unwrap();
        Kms {
            process,
            addr,
            _audit: audit,
            root_signer,
            roots: covenant_kms_api::RootAnchor {
                chain_id: self.deployment.chain_id,
                kms_registry: self.registry_address(),
                generation: 1,
                ca_public_key: ca.to_vec(),
            },
        }
    }

    /// The indexer's database (the mirror).
    pub fn mirror_url(&self) -> &str {
        self._mirror.url()
    }

    pub fn kms(&self) -> &Kms {
        self.kms.as_ref().unwrap()
    }

    pub fn registry_address(&self) -> Address {
        self.deployment.contracts.kms_registry
    }

    pub fn timelock(&self) -> Address {
        let t = self.deployment.contracts.timelock_controller;
        for (method, params) in [
            ("anvil_impersonateAccount", json!([t.to_string()])),
            (
                "anvil_setBalance",
                json!([t.to_string(), "0x56BC75E2D63100000"]),
            ),
        ] {
            self.anvil.rpc(method, params).unwrap();
        }
        t
    }

    pub fn registry(&self) -> KmsRegistry::KmsRegistryInstance<DynProvider> {
        KmsRegistry::new(self.registry_address(), self.provider.clone())
    }

    pub fn domains(
        &self,
    ) -> covenant_chain::domain_registry::DomainRegistry::DomainRegistryInstance<DynProvider> {
        covenant_chain::domain_registry::DomainRegistry::new(
            self.deployment.contracts.domain_registry,
            self.provider.clone(),
        )
    }

    pub fn app(&self, app: Address) -> covenant_chain::app::App::AppInstance<DynProvider> {
        covenant_chain::app::App::new(app, self.provider.clone())
    }

    /// Mines until everything sent so far is final.
    pub fn finalize(&self) {
        self.anvil
            .rpc("anvil_mine", json!([format!("0x{:x}", FINALITY + 1)]))
            .unwrap();
    }

    /// Mines until everything sent so far is final and the KMS decides at that block.
    pub async fn settle(&self) {
        self.finalize();
        let head = self.provider.get_block_number().await.unwrap();
        let kms = self.kms();
        wait_for(format!("the KMS to serve at block {}", head - FINALITY))
            .timeout(Duration::from_secs(60))
            .watching(&kms.process)
            .until_ok_async(|| async {
                let (status, body) = health(kms.addr).await?;
                let at = body["block"]["number"].as_u64().unwrap_or(0);
                if status == 200 && at >= head - FINALITY {
                    Ok(())
                } else {
                    Err(format!("{status} {body}"))
                }
            })
            .await
            .unwrap();
    }

    /// Creates an app owned by the Timelock that allows `compose_hash` on any device and TEE
    /// kind, simulated included, effective at once.
    pub async fn create_app(&self, compose_hash: B256) -> Address {
        self.create_app_allowing(&[compose_hash], false).await
    }

    /// As [`Stack::create_app`], for every hash of `compose_hashes`, requiring GPU evidence
    /// when `require_gpu`.
    pub async fn create_app_allowing(&self, compose_hashes: &[B256], require_gpu: bool) -> Address {
        let owner = self.timelock();
        let init = IApp::AppInit {
            composeHashes: compose_hashes.to_vec(),
            provenances: vec![
                covenant_chain::kms_registry::Provenance {
                    sourceUrl: "https://example.invalid/app".into(),
                    sourceCommit: "0123456789abcdef".into(),
                    artifactDigests: vec![B256::repeat_byte(0x42)],
                };
                compose_hashes.len()
            ],
            devices: vec![],
            anyDevice: true,
            allowedTeeKinds: 0b1110,
            requireUpToDateTcb: false,
            requireGpu: require_gpu,
            noticePeriod: 0,
        };
        let receipt = send!(
            self.registry()
                .createApp(owner, init)
                .from(self.anvil.accounts()[1].address.parse().unwrap())
        );
        receipt
            .inner
            .logs()
            .iter()
            .find_map(|l| l.log_decode::<KmsRegistry::AppCreated>().ok())
            .expect("AppCreated")
            .inner
            .data
            .app
    }
}

/// `GET /healthz` of the node at `addr` (anonymous RA-TLS client, the node's evidence verified).
async fn health(addr: SocketAddr) -> Result<(u16, Value), String> {
    get(addr, "/healthz").await
}

/// `GET /v1/apps/{app}/env-key` of the stack's KMS node: the app's root-signed env key.
pub async fn env_key(stack: &Stack, app: Address) -> covenant_kms_api::EnvKeyStatement {
    let (status, body) = get(stack.kms().addr, &format!("/v1/apps/{app}/env-key"))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body).unwrap()
}

/// An anonymous `GET` of the node at `addr`.
async fn get(addr: SocketAddr, path: &str) -> Result<(u16, Value), String> {
    let provider = rustls::crypto::ring::default_provider();
    let verifier = std::sync::Arc::new(covenant_attest::ratls::RaTlsVerifier::new(
        covenant_attest::Policy::judged_by_chain(true),
        covenant_attest::Collateral::default(),
        &provider,
    ));
    let config =
        covenant_kms_api::client::client_config(None, verifier, std::sync::Arc::new(provider))
            .map_err(|e| e.to_string())?;
    let reply =
        covenant_kms_api::client::request(std::sync::Arc::new(config), addr, "GET", path, None)
            .await
            .map_err(|e| e.to_string())?;
    Ok((reply.status, reply.json()))
}

pub fn provenance(what: &str) -> KmsRegistry::Provenance {
    KmsRegistry::Provenance {
        sourceUrl: format!("https://example.invalid/{what}"),
        sourceCommit: "0123456789abcdef".into(),
        artifactDigests: vec![B256::repeat_byte(0x42)],
    }
}

pub fn compose_hash(document: &[u8]) -> B256 {
    B256::from(
        *covenant_attest::compose::compose_hash(document)
            .unwrap()
            .1
            .as_bytes(),
    )
}

/// One host's boot of `app`: its own state directory and device.
pub struct Host<'a> {
    pub stack: &'a Stack,
    pub state_dir: std::path::PathBuf,
    pub device: B256,
}

impl<'a> Host<'a> {
    pub fn new(stack: &'a Stack, name: &str, device: u8) -> Self {
        let state_dir = stack.dir.path().join(name);
        std::fs::create_dir_all(&state_dir).unwrap();
        Self {
            stack,
            state_dir,
            device: B256::repeat_byte(device),
        }
    }

    /// Where `run` serves its API.
    pub fn socket(&self) -> std::path::PathBuf {
        self.state_dir.join("guest.sock")
    }

    /// `covenant-guest <subcommand>` for `app` booted with `compose` (written into the state
    /// directory), with `extra` arguments; `--os-image` is the listed image unless `extra` names
    /// one, and `run` serves on [`Host::socket`].
    pub fn command(
        &self,
        subcommand: &str,
        app: Address,
        compose: &[u8],
        extra: &[&str],
    ) -> Command {
        let compose_path = self.state_dir.join("app-compose.json");
        std::fs::write(&compose_path, compose).unwrap();
        let mut cmd = Command::new(workspace_bin("covenant-guest").unwrap());
        cmd.arg(subcommand)
            .args(["--compose", path(&compose_path)])
            .args(["--app-id", &app.to_string()])
            .args(["--state-dir", path(&self.state_dir)])
            .args(["--deployment", path(&self.stack.deployment_path)])
            .args(["--rpc-url", &self.stack.anvil.endpoint()])
            .args(["--finality", &FINALITY.to_string()])
            .args(["--kms-url", &self.stack.kms().url()])
            .args(["--tee", "simulated"])
            .args(["--device-id", &self.device.to_string()]);
        if !extra.contains(&"--os-image") {
            cmd.args(["--os-image", &B256::from(OS_IMAGE).to_string()]);
        }
        if subcommand == "run" {
            cmd.args(["--socket", path(&self.socket())]);
        }
        cmd.args(extra);
        cmd
    }

    /// Runs `covenant-guest boot`: the printed identity, or the error it stopped with.
    pub fn boot(&self, app: Address, compose: &[u8], extra: &[&str]) -> Result<Value, String> {
        let out = self.command("boot", app, compose, extra).output().unwrap();
        if out.status.success() {
            Ok(serde_json::from_slice(&out.stdout).unwrap())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Runs `covenant-guest run` expecting it to stop before serving: the error it stopped with.
    pub fn run_refused(&self, app: Address, compose: &[u8], extra: &[&str]) -> String {
        let out = self.command("run", app, compose, extra).output().unwrap();
        assert!(!out.status.success(), "run served");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Starts `covenant-guest run` and waits until its API listens on [`Host::socket`].
    pub fn run(&self, app: Address, compose: &[u8], extra: &[&str]) -> Process {
        let cmd = self.command("run", app, compose, extra);
        let process = Process::spawn("guest", cmd, Signal::SIGTERM).unwrap();
        process
            .wait_for_line(
                "the guest api listening line",
                Duration::from_secs(60),
                |l| l.contains("guest api listening"),
            )
            .unwrap();
        process
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}
