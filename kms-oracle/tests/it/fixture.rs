//! The stack the kms-oracle tests run against: a real anvil with the real contracts, the indexer
//! (its binary: the kms-oracle does not link the indexer) mirroring them into a fresh Postgres
//! database, KMS nodes (the real binary) with their own audit databases, and simulated-TEE apps
//! that talk to them over RA-TLS.

use std::{net::SocketAddr, path::PathBuf, process::Command, sync::Arc, time::Duration};

use alloy::{
    primitives::{Address, B256},
    providers::{DynProvider, Provider, ProviderBuilder},
};
use covenant_attest::{
    AppId, ComposeHash, DeviceId, Evidence, InstanceId, Measurement, OsImageHash, Platform,
    ReportData, TcbStatus,
    eventlog::RuntimeIdentity,
    ratls::{self, RaTlsIdentity},
    simulator::{SimulatedTee, SimulatorRootKey},
};
use covenant_chain::{
    Deployment,
    app::App,
    kms_registry::{IApp, KmsRegistry},
};
use covenant_kms_api::client::{self, Reply};
use covenant_testkit::{
    Anvil, Process, Signal, TestDatabase, TestDeployment, deploy_contracts, wait_for,
};
use serde_json::{Value, json};

pub const OS_IMAGE: [u8; 32] = [0x05; 32];
pub const KMS_DEVICE: [u8; 32] = [0x0d; 32];
pub const KMS_DEVICE_2: [u8; 32] = [0x0e; 32];
pub const APP_DEVICE: [u8; 32] = [0xad; 32];
pub const COMPOSE: [u8; 32] = [0xc0; 32];
pub const MRTD: [u8; 48] = [0x11; 48];
pub const RTMR: [u8; 48] = [0x22; 48];
/// Blocks below the head that count as final.
pub const FINALITY: u64 = 2;

/// An image the chain does not allow.
pub const OS_IMAGE_UNLISTED: [u8; 32] = [0x06; 32];

/// What OS_IMAGE is registered with on chain: the app instances' registers (MRTD ‖ RTMR0..2) and
/// the KMS nodes' (derived from the image by the kms-oracle's simulated TEE), both simulated.
pub fn os_measurements() -> Vec<covenant_chain::kms_registry::KmsRegistry::OsMeasurement> {
    let app = [MRTD, RTMR, RTMR, RTMR].concat();
    let (mrtd, rtmr) = covenant_kms_oracle::identity::simulated_os_registers(B256::from(OS_IMAGE));
    let kms: Vec<u8> = [mrtd, rtmr[0], rtmr[1], rtmr[2]]
        .iter()
        .flat_map(|m| m.as_bytes().to_vec())
        .collect();
    [app, kms]
        .into_iter()
        .map(
            |registers| covenant_chain::kms_registry::KmsRegistry::OsMeasurement {
                teeKind: 3,
                registers: registers.into(),
            },
        )
        .collect()
}

pub use covenant_testkit::send;

pub struct Stack {
    pub anvil: Anvil,
    _deployed: TestDeployment,
    pub deployment: Deployment,
    pub deployment_path: PathBuf,
    pub provider: DynProvider,
    pub mirror: TestDatabase,
    /// The indexer (stop it to freeze the mirror).
    pub indexer: Process,
    pub dir: tempfile::TempDir,
}

impl Stack {
    pub async fn start() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let anvil = Anvil::spawn();
        let deployed = deploy_contracts(&anvil, &[]).unwrap();
        let deployment = Deployment::read(deployed.path()).unwrap();
        let provider = ProviderBuilder::new()
            .connect_http(anvil.endpoint().parse().unwrap())
            .erased();
        let mirror = covenant_testkit::postgres::database();
        let indexer = covenant_testkit::spawn_indexer(
            deployed.path(),
            &anvil.endpoint(),
            mirror.url(),
            FINALITY,
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let stack = Self {
            deployment_path: deployed.path().to_owned(),
            _deployed: deployed,
            anvil,
            deployment,
            provider,
            mirror,
            indexer,
            dir,
        };
        // The registry as governance configures it (the Timelock executes).
        let timelock = stack.timelock();
        let reg = stack.registry();
        send!(
            reg.addOsImage(B256::from(OS_IMAGE), provenance("os"), os_measurements())
                .from(timelock)
        );
        stack
    }

    pub fn registry_address(&self) -> Address {
        self.deployment.contracts.kms_registry
    }

    /// Lets the test send transactions as `who`.
    pub fn impersonate(&self, who: Address) {
        self.anvil
            .rpc("anvil_impersonateAccount", json!([who.to_string()]))
            .unwrap();
        self.anvil
            .rpc(
                "anvil_setBalance",
                json!([who.to_string(), "0x56BC75E2D63100000"]),
            )
            .unwrap();
    }

    /// The KMS root signer registered on chain now (zero before any).
    pub fn root_signer(&self) -> Address {
        use alloy::sol_types::SolCall;
        let call = KmsRegistry::kmsRootKeysCall {}.abi_encode();
        let out = self
            .anvil
            .rpc(
                "eth_call",
                json!([{"to": self.registry_address().to_string(), "data": alloy::primitives::hex::encode_prefixed(call)}, "latest"]),
            )
            .unwrap();
        let bytes = alloy::primitives::hex::decode(out.as_str().unwrap()).unwrap();
        KmsRegistry::kmsRootKeysCall::abi_decode_returns(&bytes)
            .unwrap()
            ._0
    }

    pub fn timelock(&self) -> Address {
        let t = self.deployment.contracts.timelock_controller;
        self.impersonate(t);
        t
    }

    /// The registry; calls choose their sender with `.from(..)` (impersonated on anvil).
    pub fn registry(&self) -> KmsRegistry::KmsRegistryInstance<DynProvider> {
        KmsRegistry::new(self.registry_address(), self.provider.clone())
    }

    pub fn app_as(&self, app: Address) -> App::AppInstance<DynProvider> {
        App::new(app, self.provider.clone())
    }

    pub fn mine(&self, blocks: u64) {
        self.anvil
            .rpc("anvil_mine", json!([format!("0x{blocks:x}")]))
            .unwrap();
    }

    /// How many transactions `who` has sent.
    pub async fn nonce(&self, who: Address) -> u64 {
        self.provider.get_transaction_count(who).await.unwrap()
    }

    /// The selectors of the calls `who` sent in blocks `from` to the head.
    pub async fn calls_sent_since(&self, who: Address, from: u64) -> Vec<[u8; 4]> {
        use alloy::{consensus::Transaction as _, network::TransactionResponse as _};
        let mut calls = Vec::new();
        for number in from..=self.head().await {
            let block = self
                .provider
                .get_block_by_number(number.into())
                .full()
                .await
                .unwrap()
                .expect("a mined block");
            for tx in block.transactions.into_transactions() {
                if tx.from() == who {
                    calls.push(tx.input()[..4].try_into().unwrap());
                }
            }
        }
        calls
    }

    pub async fn head(&self) -> u64 {
        self.provider.get_block_number().await.unwrap()
    }

    /// Mines until everything sent so far is final.
    pub fn finalize(&self) {
        self.mine(FINALITY + 1);
    }

    /// Creates an app owned by the Timelock that allows `COMPOSE` on any device, simulated TEEs
    /// included.
    pub async fn create_app(&self) -> Address {
        let owner = self.timelock();
        let reg = self.registry();
        let init = IApp::AppInit {
            composeHashes: vec![B256::from(COMPOSE)],
            provenances: vec![covenant_chain::kms_registry::Provenance {
                sourceUrl: "https://example.invalid/app".into(),
                sourceCommit: "0123456789abcdef".into(),
                artifactDigests: vec![B256::repeat_byte(0x42)],
            }],
            devices: vec![],
            anyDevice: true,
            allowedTeeKinds: 0b1110,
            requireUpToDateTcb: false,
            requireGpu: false,
            noticePeriod: 0,
        };
        let receipt = send!(
            reg.createApp(owner, init)
                .from(self.anvil.accounts()[1].address.parse().unwrap())
        );
        let created = receipt
            .inner
            .logs()
            .iter()
            .find_map(|l| l.log_decode::<KmsRegistry::AppCreated>().ok())
            .expect("AppCreated");
        created.inner.data.app
    }

    /// Sends an app call as its owner (the Timelock).
    pub fn app_owner(&self) -> Address {
        self.timelock()
    }
}

pub fn provenance(what: &str) -> KmsRegistry::Provenance {
    KmsRegistry::Provenance {
        sourceUrl: format!("https://example.invalid/{what}"),
        sourceCommit: "0123456789abcdef".into(),
        artifactDigests: vec![B256::repeat_byte(0x42)],
    }
}

/// A KMS node process.
pub struct Kms {
    pub process: Process,
    pub addr: SocketAddr,
    pub state_dir: PathBuf,
    pub audit: TestDatabase,
    pub node: Address,
    /// The root signer registered when the node started (what an app's `key-provider` names).
    pub root_signer: Address,
}

pub struct KmsOptions<'a> {
    pub device: [u8; 32],
    pub state_dir: PathBuf,
    pub extra: &'a [&'a str],
    pub audit: Option<TestDatabase>,
}

pub fn common_args(
    stack: &Stack,
    state_dir: &std::path::Path,
    audit_url: &str,
    device: [u8; 32],
) -> Vec<String> {
    vec![
        "--deployment".into(),
        stack.deployment_path.to_str().unwrap().into(),
        "--rpc-url".into(),
        stack.anvil.endpoint(),
        "--mirror-database-url".into(),
        stack.mirror.url().into(),
        "--database-url".into(),
        audit_url.into(),
        "--state-dir".into(),
        state_dir.to_str().unwrap().into(),
        "--tee".into(),
        "simulated".into(),
        "--device-id".into(),
        B256::from(device).to_string(),
        "--os-image".into(),
        B256::from(OS_IMAGE).to_string(),
        "--finality".into(),
        FINALITY.to_string(),
    ]
}

/// A port of its own, frequent on-chain commits and room for every test's connections from
/// loopback, unless `extra` sets them.
fn test_defaults(extra: &[&str]) -> Vec<&'static str> {
    [
        ("--listen", "127.0.0.1:0"),
        ("--commit-interval-ms", "200"),
        ("--connections-per-source-per-sec", "1000"),
    ]
    .into_iter()
    .filter(|(flag, _)| !extra.contains(flag))
    .flat_map(|(flag, value)| [flag, value])
    .collect()
}

/// `init`: returns the report.
pub fn init(
    stack: &Stack,
    state_dir: &std::path::Path,
    device: [u8; 32],
    bootstrap: bool,
) -> Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_covenant-kms-oracle"));
    cmd.arg("init")
        .args(common_args(stack, state_dir, "postgres://unused", device));
    if bootstrap {
        cmd.arg("--bootstrap");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "init failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

impl Kms {
    /// The `run` command for a node (its audit database fresh).
    pub fn command(
        stack: &Stack,
        device: [u8; 32],
        state_dir: &std::path::Path,
        extra: &[&str],
    ) -> (Command, TestDatabase) {
        let audit = covenant_testkit::postgres::database();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_covenant-kms-oracle"));
        cmd.arg("run")
            .args(common_args(stack, state_dir, audit.url(), device))
            .args(test_defaults(extra))
            .args(extra)
            .env("COVENANT_LOG", "info,kms=debug");
        (cmd, audit)
    }

    pub fn spawn(stack: &Stack, o: KmsOptions<'_>) -> Self {
        let audit = o.audit.unwrap_or_else(covenant_testkit::postgres::database);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_covenant-kms-oracle"));
        cmd.arg("run")
            .args(common_args(stack, &o.state_dir, audit.url(), o.device))
            .args(test_defaults(o.extra))
            .args(o.extra)
            .env("COVENANT_LOG", "info,kms=debug");
        let process = Process::spawn("kms", cmd, Signal::SIGTERM).unwrap();
        let line = process
            .wait_for_line("the kms listening line", Duration::from_secs(120), |l| {
                l.contains("kms listening")
            })
            .unwrap();
        let field = |name: &str| {
            line.split(&format!("{name}="))
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .to_owned()
        };
        Self {
            addr: field("addr").parse().unwrap(),
            node: field("node").parse().unwrap(),
            root_signer: stack.root_signer(),
            process,
            state_dir: o.state_dir,
            audit,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        client::request(anonymous(), self.addr, "GET", path, None)
            .await
            .unwrap()
    }

    /// Waits until this node serves at a finalized block at or above `block`.
    pub async fn wait_serving_at(&self, block: u64) {
        wait_for(format!("the KMS to serve at block {block}"))
            .timeout(Duration::from_secs(60))
            .watching(&self.process)
            .until_ok_async(|| async {
                let r = self.get("/healthz").await;
                let v = r.json();
                let at = v["block"]["number"].as_u64().unwrap_or(0);
                if r.status == 200 && at >= block {
                    Ok(())
                } else {
                    Err(format!("{} {v}", r.status))
                }
            })
            .await
            .unwrap();
    }

    /// The value of one sample of `/metrics`, e.g. `covenant_kms_audit_chain_broken` or
    /// `covenant_kms_unauthenticated_total{reason="handshake"}` (0 when absent).
    pub async fn metric(&self, sample: &str) -> f64 {
        let text = String::from_utf8(self.get("/metrics").await.body).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
            .map_or(0.0, |v| v.trim().parse().unwrap())
    }

    /// Rows in this node's audit log.
    pub async fn audit_rows(&self) -> i64 {
        let pool = self.audit_pool().await;
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM audit_log")
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        n
    }

    pub async fn audit_pool(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(self.audit.url()).await.unwrap()
    }
}

/// Registers a bootstrapped node on chain as governance would: OS image (already), measurement,
/// device, root keys, onboarding; and funds its identity for grant-log commits.
pub async fn register_node(stack: &Stack, report: &Value) {
    let timelock = stack.timelock();
    let reg = stack.registry();
    let mr: B256 = report["mrAggregated"].as_str().unwrap().parse().unwrap();
    let device: B256 = report["deviceId"].as_str().unwrap().parse().unwrap();
    let node: Address = report["node"].as_str().unwrap().parse().unwrap();
    send!(reg.addKmsMeasurement(mr).from(timelock));
    send!(reg.addKmsDevice(device).from(timelock));
    if let Some(root) = report.get("root").filter(|r| !r.is_null()) {
        let signer: Address = root["rootSigner"].as_str().unwrap().parse().unwrap();
        let ca = alloy::primitives::Bytes::from(
            hex::decode(&root["caPublicKey"].as_str().unwrap()[2..]).unwrap(),
        );
        send!(reg.setKmsRootKeys(signer, ca).from(timelock));
        send!(reg.onboardKmsNode(node, mr, device).from(timelock));
    }
    stack
        .anvil
        .rpc(
            "anvil_setBalance",
            json!([node.to_string(), "0x56BC75E2D63100000"]),
        )
        .unwrap();
}

/// A bootstrapped, registered KMS node serving at the current finalized block.
pub async fn first_node(stack: &Stack, extra: &[&str]) -> Kms {
    first_node_with(stack, extra, None).await
}

/// [`first_node`] writing its audit log to `audit` (a fresh database if `None`).
pub async fn first_node_with(stack: &Stack, extra: &[&str], audit: Option<TestDatabase>) -> Kms {
    let state_dir = stack.dir.path().join("kms-1");
    let report = init(stack, &state_dir, KMS_DEVICE, true);
    register_node(stack, &report).await;
    stack.finalize();
    let kms = Kms::spawn(
        stack,
        KmsOptions {
            device: KMS_DEVICE,
            state_dir,
            extra,
            audit,
        },
    );
    let head = stack.head().await;
    kms.wait_serving_at(head - FINALITY).await;
    kms
}

/// The verifier a client uses for the KMS's own certificate.
pub fn kms_verifier() -> Arc<covenant_attest::ratls::RaTlsVerifier> {
    let provider = rustls::crypto::ring::default_provider();
    Arc::new(covenant_attest::ratls::RaTlsVerifier::new(
        covenant_kms_oracle::identity::verifier_policy(true),
        covenant_attest::Collateral::default(),
        &provider,
    ))
}

pub fn anonymous() -> Arc<rustls::ClientConfig> {
    Arc::new(
        client::client_config(
            None,
            kms_verifier(),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .unwrap(),
    )
}

/// A simulated-TEE app instance.
pub struct Instance {
    pub tee: SimulatedTee,
    pub identity: RaTlsIdentity,
}

pub struct Boot {
    pub app: Address,
    pub compose: [u8; 32],
    pub instance: [u8; 20],
    pub device: [u8; 32],
    pub tcb: TcbStatus,
    pub os_image: [u8; 32],
    /// Events the app extends after `system-ready` (none by default).
    pub after_boot: Vec<covenant_attest::eventlog::RuntimeEvent>,
}

impl Boot {
    pub fn new(app: Address, instance: u8) -> Self {
        Self {
            app,
            compose: COMPOSE,
            instance: [instance; 20],
            device: APP_DEVICE,
            tcb: TcbStatus::UpToDate,
            os_image: OS_IMAGE,
            after_boot: Vec::new(),
        }
    }
}

impl Instance {
    /// `b` booted trusting the KMS root `key_provider` (its `key-provider` event).
    pub fn boot(b: &Boot, key_provider: Address) -> Self {
        let mut tee = SimulatedTee::new(
            SimulatorRootKey::development(),
            DeviceId::new(b.device),
            Measurement::new(MRTD),
            [Measurement::new(RTMR); 3],
        )
        .with_tcb_status(b.tcb);
        tee.record_boot(&RuntimeIdentity {
            app_id: AppId::new(b.app.into_array()),
            compose_hash: ComposeHash::new(b.compose),
            instance_id: InstanceId::new(b.instance),
            key_provider: key_provider.to_vec(),
            os_image_hash: OsImageHash::new(b.os_image),
            gpu_evidence_hash: None,
        });
        for event in &b.after_boot {
            tee.extend(event.clone());
        }
        let identity = ratls::generate_identity(|rd| Ok(evidence(&tee, rd))).unwrap();
        Self { tee, identity }
    }

    pub fn config(&self) -> Arc<rustls::ClientConfig> {
        Arc::new(
            client::client_config(
                Some((
                    &self.identity.certificate_der,
                    &self.identity.private_key_der,
                )),
                kms_verifier(),
                Arc::new(rustls::crypto::ring::default_provider()),
            )
            .unwrap(),
        )
    }

    pub async fn post(&self, kms: &Kms, path: &str, body: Value) -> Reply {
        client::request(
            self.config(),
            kms.addr,
            "POST",
            path,
            Some(body.to_string().into_bytes()),
        )
        .await
        .unwrap()
    }
}

pub fn evidence(tee: &SimulatedTee, rd: &ReportData) -> Evidence {
    Evidence {
        platform: Platform::Simulated,
        quote: tee.quote(rd),
        vcek: Vec::new(),
        event_log: tee.event_log().to_vec(),
        gpu: None,
    }
}

pub fn app_provenance(what: &str) -> App::Provenance {
    App::Provenance {
        sourceUrl: format!("https://example.invalid/{what}"),
        sourceCommit: "0123456789abcdef".into(),
        artifactDigests: vec![B256::repeat_byte(0x42)],
    }
}

/// A second node (device `KMS_DEVICE_2`, allowed by governance) that obtains the root secret
/// from `first`, serving at the current finalized block.
pub async fn second_node(stack: &Stack, first: &Kms) -> Kms {
    let state_dir = stack.dir.path().join("kms-2");
    init(stack, &state_dir, KMS_DEVICE_2, false);
    let timelock = stack.timelock();
    send!(
        stack
            .registry()
            .addKmsDevice(B256::from(KMS_DEVICE_2))
            .from(timelock)
    );
    stack.finalize();
    first.wait_serving_at(stack.head().await - FINALITY).await;
    let second = Kms::spawn(
        stack,
        KmsOptions {
            device: KMS_DEVICE_2,
            state_dir,
            // With a collateral source configured the source's certificate is read first (to
            // fetch its collateral; none for simulated evidence, so the service is never asked).
            extra: &[
                "--replicate-from",
                &first.addr.to_string(),
                "--kds-url",
                "http://kds.invalid/",
            ],
            audit: None,
        },
    );
    stack.finalize();
    second.wait_serving_at(stack.head().await - FINALITY).await;
    second
}
