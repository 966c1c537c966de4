//! A confidential GPU through the whole boot: its evidence bound to the boot key and announced
//! in the `gpu-evidence` event, judged by the KMS (the chain's `requireGpu`), and refused when it
//! was made for another boot.

use std::{sync::Arc, time::Duration};

use alloy::primitives::B256;
use covenant_attest::{
    DeviceId, ReportData,
    nvidia::{GpuEvidence, gpu_nonce},
    simulated_gpu::SimulatedGpu,
    simulator::{SimulatedTee, SimulatorRootKey},
};
use covenant_guest::boot::{self, BootError, KmsAccess, Launch};
use covenant_kms_api::KmsIdentityChecker;
use covenant_tee::GpuProducer;
use serde_json::Value;

use crate::{Host, compose, compose_hash, kms_policy, stack::OS_IMAGE, stack::Stack};

fn gpu_compose(stack: &Stack, name: &str) -> Vec<u8> {
    let mut document: Value = serde_json::from_slice(&compose(stack, name)).unwrap();
    document["flags"] = serde_json::json!({ "gpu": true });
    serde_json::to_vec(&document).unwrap()
}

/// A host that hands the guest GPU evidence it captured elsewhere: genuine, but made for
/// another nonce.
#[derive(Debug)]
struct Replaying(GpuEvidence);

impl GpuProducer for Replaying {
    fn evidence(&self, _nonce: &[u8; 32]) -> covenant_tee::Result<GpuEvidence> {
        Ok(self.0.clone())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_gpu_gets_the_keys_and_a_missing_or_replayed_one_is_refused() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let stack = Stack::start().await;
    let with_gpu = gpu_compose(&stack, "inference");
    let without_gpu = compose(&stack, "inference");
    let app = stack
        .create_app_allowing(&[compose_hash(&with_gpu), compose_hash(&without_gpu)], true)
        .await;
    stack.settle().await;
    let host = Host::new(&stack, "gpu-host", 0xa1);
    let gpu_device = B256::repeat_byte(0x61).to_string();
    let gpu_args = ["--gpu", "simulated", "--gpu-device-id", gpu_device.as_str()];

    // The boot binds the GPU and announces it; the KMS accepts it for an app requiring a GPU.
    let booted = host.boot(app, &with_gpu, &gpu_args).unwrap();
    let announced = booted["gpuEvidenceHash"].as_str().unwrap();
    assert_eq!(announced.len(), 66, "{booted}");
    // Another host with another GPU: the same app keys, another GPU announced.
    let other_gpu = B256::repeat_byte(0x62).to_string();
    let second = Host::new(&stack, "gpu-host-2", 0xb2)
        .boot(
            app,
            &with_gpu,
            &["--gpu", "simulated", "--gpu-device-id", other_gpu.as_str()],
        )
        .unwrap();
    assert_eq!(second["appKey"], booted["appKey"]);
    assert_ne!(second["gpuEvidenceHash"], booted["gpuEvidenceHash"]);

    // An app's quote over its own bytes carries the boot's GPU evidence, which names the boot
    // key its nonce binds: verifiers see the GPU with any quote.
    let guest = host.run(app, &with_gpu, &gpu_args);
    let quote = covenant_guest_api::client::GuestClient::new(host.socket())
        .get_quote(&[7; 64])
        .await
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let quoted = ReportData::new(covenant_guest_api::api::quote_report_data(&[7; 64]));
    let verified = covenant_attest::verify(
        &quote.evidence,
        &covenant_attest::Binding::ReportData(quoted),
        &covenant_attest::Collateral::default(),
        &kms_policy(),
        now,
    )
    .unwrap();
    let gpu = verified.gpu().expect("the quote proves the GPU");
    assert_eq!(
        gpu.measurements.len(),
        covenant_attest::simulated_gpu::BLOCKS
    );
    assert_eq!(
        verified.runtime().gpu_evidence_hash.unwrap().to_string(),
        quote.evidence.gpu.as_ref().unwrap().hash().to_string()
    );
    guest.stop();

    // A compose that needs a GPU does not boot without one.
    let e = host.boot(app, &with_gpu, &[]).unwrap_err();
    assert!(e.contains("flags.gpu"), "{e}");
    // A compose that does not say so boots without one, and the chain's requireGpu refuses it.
    let e = host.boot(app, &without_gpu, &[]).unwrap_err();
    assert!(
        e.contains("the KMS refused this boot: gpu evidence required"),
        "{e}"
    );

    // Genuine GPU evidence made for another nonce, handed in by the host: the guest announces
    // what it got, and the KMS refuses it at the binding.
    let replayed = SimulatedGpu::development(&[0x61; 32])
        .unwrap()
        .evidence(&gpu_nonce(&ReportData::new([1; 64])));
    let e = boot_through_the_library(&stack, &host, app, &with_gpu, &Replaying(replayed)).await;
    match e {
        BootError::Refused { reason, .. } => {
            assert!(reason.contains("nonce"), "{reason}")
        }
        other => panic!("expected the KMS's refusal, got {other}"),
    }
}

/// The boot `covenant-guest boot` does, with `gpu` as the GPU: the error it stops with.
async fn boot_through_the_library(
    stack: &Stack,
    host: &Host<'_>,
    app: alloy::primitives::Address,
    document: &[u8],
    gpu: &dyn GpuProducer,
) -> BootError {
    let timeout = Duration::from_secs(20);
    let checker = KmsIdentityChecker::connect(
        &stack.anvil.endpoint(),
        stack.deployment.chain_id,
        stack.registry_address(),
        crate::stack::FINALITY.to_string().parse().unwrap(),
        Duration::from_secs(1800),
        timeout,
        kms_policy(),
        covenant_attest::Collateral::default(),
    )
    .await
    .unwrap();
    let access = KmsAccess {
        urls: vec![stack.kms().url()],
        checker,
        verifier: Arc::new(covenant_attest::ratls::RaTlsVerifier::new(
            kms_policy(),
            covenant_attest::Collateral::default(),
            &rustls::crypto::ring::default_provider(),
        )),
        timeout,
    };
    let (mrtd, rtmr) = covenant_tee::simulated_os_registers(OS_IMAGE);
    let tee = covenant_tee::Simulated::new(SimulatedTee::new(
        SimulatorRootKey::development(),
        DeviceId::new(host.device.0),
        mrtd,
        rtmr,
    ));
    let launch = Launch {
        compose: document.to_vec(),
        app_id: app,
        os_image: B256::from(OS_IMAGE),
        state_dir: host.state_dir.clone(),
        chain_id: stack.deployment.chain_id,
        registry: stack.registry_address(),
    };
    let measured =
        boot::measure(launch, stack.kms().root_signer, Box::new(tee), Some(gpu)).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    boot::request_keys(&measured, &access, now)
        .await
        .map(|_| ())
        .unwrap_err()
}
