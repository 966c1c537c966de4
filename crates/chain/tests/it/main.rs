//! The Rust side and the contracts agree: bindings from the committed ABIs, the deployment file,
//! and a `BootInfo` built from verified (simulated) evidence, judged by the real registry on anvil.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use alloy::{
    network::TransactionBuilder,
    primitives::{Address, FixedBytes},
    providers::{Provider, ProviderBuilder},
    rpc::types::TransactionRequest,
};
use covenant_attest::{
    AppId, Binding, Collateral, ComposeHash, DeviceId, Evidence, InstanceId, Measurement,
    OsImageHash, Platform, Policy, ReportData,
    eventlog::RuntimeIdentity,
    simulator::{SimulatedTee, SimulatorRootKey},
    verify,
};
use covenant_chain::{
    Deployment, TcbStatus, boot_info,
    kms_registry::{IApp, KmsRegistry},
};
use covenant_testkit::{Anvil, deploy_contracts};

const DEVICE: [u8; 32] = [0xde; 32];
const OS_IMAGE: [u8; 32] = [0x05; 32];
const COMPOSE: [u8; 32] = [0xc0; 32];

fn provenance(commit: &str) -> KmsRegistry::Provenance {
    KmsRegistry::Provenance {
        sourceUrl: "https://git.example/app".into(),
        sourceCommit: commit.into(),
        artifactDigests: vec![FixedBytes([0xab; 32])],
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_boot_built_from_verified_evidence_is_judged_by_the_real_registry() {
    let anvil = Anvil::spawn();
    let deployed = deploy_contracts(&anvil, &[]).unwrap();
    let deployment = Deployment::read(deployed.path()).unwrap();
    assert_eq!(deployment.chain_id, anvil.chain_id());
    let provider = ProviderBuilder::new().connect_http(anvil.endpoint().parse().unwrap());
    let registry = KmsRegistry::new(deployment.contracts.kms_registry, &provider);
    assert_eq!(
        registry.owner().call().await.unwrap(),
        deployment.contracts.timelock_controller
    );
    assert!(registry.allowSimulatedTee().call().await.unwrap());

    // Account 0 creates an app; the Timelock (impersonated) allows the OS image.
    let owner: Address = anvil.accounts()[0].address.parse().unwrap();
    let init = IApp::AppInit {
        composeHashes: vec![FixedBytes(COMPOSE)],
        provenances: vec![covenant_chain::kms_registry::Provenance {
            sourceUrl: "https://git.example/app".into(),
            sourceCommit: "v1".into(),
            artifactDigests: vec![FixedBytes([0xab; 32])],
        }],
        devices: vec![FixedBytes(DEVICE)],
        anyDevice: false,
        allowedTeeKinds: 0x0e,
        requireUpToDateTcb: true,
        requireGpu: false,
        noticePeriod: 0,
    };
    let receipt = registry
        .createApp(owner, init)
        .from(owner)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let created = receipt
        .decoded_log::<KmsRegistry::AppCreated>()
        .expect("AppCreated");
    let app = created.app;
    let timelock = deployment.contracts.timelock_controller;
    anvil
        .rpc(
            "anvil_impersonateAccount",
            serde_json::json!([timelock.to_string()]),
        )
        .unwrap();
    anvil
        .rpc(
            "anvil_setBalance",
            serde_json::json!([timelock.to_string(), "0xde0b6b3a7640000"]),
        )
        .unwrap();
    let add_os = registry
        .addOsImage(
            FixedBytes(OS_IMAGE),
            provenance("os-1"),
            vec![KmsRegistry::OsMeasurement {
                teeKind: 3,
                registers: [[1u8; 48], [2; 48], [2; 48], [2; 48]].concat().into(),
            }],
        )
        .calldata()
        .clone();
    let tx = TransactionRequest::default()
        .with_from(timelock)
        .with_to(*registry.address())
        .with_input(add_os);
    provider
        .send_transaction(tx)
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();

    // A simulated instance of that app proves itself; its verified evidence becomes a BootInfo.
    let mut tee = SimulatedTee::new(
        SimulatorRootKey::development(),
        DeviceId::new(DEVICE),
        Measurement::new([1; 48]),
        [Measurement::new([2; 48]); 3],
    );
    tee.record_boot(&RuntimeIdentity {
        app_id: AppId::new(app.into_array()),
        compose_hash: ComposeHash::new(COMPOSE),
        instance_id: InstanceId::new([0x1d; 20]),
        key_provider: vec![0x4b; 20],
        os_image_hash: OsImageHash::new(OS_IMAGE),
        gpu_evidence_hash: None,
    });
    let nonce = ReportData::new([0x77; 64]);
    let evidence = Evidence {
        platform: Platform::Simulated,
        quote: tee.quote(&nonce),
        vcek: Vec::new(),
        event_log: tee.event_log().to_vec(),
        gpu: None,
    };
    let policy = Policy {
        simulator_root: Some(SimulatorRootKey::development().root()),
        ..Policy::default()
    };
    let verified = verify(
        &evidence,
        &Binding::ReportData(nonce),
        &Collateral::default(),
        &policy,
        0,
    )
    .unwrap();
    let boot = boot_info(&verified, 1);
    assert_eq!(boot.appId, app);

    let verdict = registry.isAppAllowed(boot.clone()).call().await.unwrap();
    assert!(verdict._0, "{}", verdict._1);
    assert_eq!(verdict._1, "");

    // Every field reaches the contract: change one and the verdict names it.
    let mut wrong = boot.clone();
    wrong.keyGeneration = 2;
    let verdict = registry.isAppAllowed(wrong).call().await.unwrap();
    assert_eq!(
        (verdict._0, verdict._1.as_str()),
        (false, "key generation not current")
    );
    let mut wrong = boot.clone();
    wrong.deviceId = FixedBytes([0; 32]);
    assert_eq!(
        registry.isAppAllowed(wrong).call().await.unwrap()._1,
        "device not allowed"
    );
    let mut wrong = boot;
    wrong.tcbStatus = TcbStatus::OutOfDate as u8;
    assert_eq!(
        registry.isAppAllowed(wrong).call().await.unwrap()._1,
        "tcb not up to date"
    );
}

#[test]
fn a_malformed_deployment_file_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("covenant-chain-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.json");
    std::fs::write(&path, br#"{"chainId": 1}"#).unwrap();
    let err = Deployment::read(&path).unwrap_err();
    assert!(err.to_string().contains("malformed"), "{err}");
    let err = Deployment::read(&dir.join("missing.json")).unwrap_err();
    assert!(err.to_string().contains("cannot read"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
