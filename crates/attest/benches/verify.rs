//! Verification cost per evidence kind, single-threaded. These bound the kms-oracle's grants per
//! second: each grant verifies one piece of evidence. Run: `cargo bench --workspace --bench verify`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;

use covenant_attest::{
    AppId, Binding, Collateral, ComposeHash, DeviceId, Evidence, InstanceId, Measurement,
    OsImageHash, Platform, Policy, QuoteCollateralV3,
    eventlog::RuntimeIdentity,
    nvidia::{GpuEvidence, verify_gpu},
    ratls,
    simulator::{SimulatedTee, SimulatorRootKey},
    snp, tdx, tls_report_data, verify,
};
use criterion::{Criterion, criterion_group, criterion_main};

fn testdata(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata")
            .join(name),
    )
    .unwrap()
}

fn simulated() -> SimulatedTee {
    let mut tee = SimulatedTee::new(
        SimulatorRootKey::development(),
        DeviceId::new([1; 32]),
        Measurement::new([2; 48]),
        [Measurement::new([3; 48]); 3],
    );
    let identity = RuntimeIdentity {
        app_id: AppId::new([4; 20]),
        compose_hash: ComposeHash::new([5; 32]),
        instance_id: InstanceId::new([6; 20]),
        key_provider: vec![7; 20],
        os_image_hash: OsImageHash::new([8; 32]),
        gpu_evidence_hash: None,
    };
    tee.record_boot(&identity);
    tee
}

fn bench(c: &mut Criterion) {
    let quote = testdata("tdx_quote");
    let collateral: QuoteCollateralV3 =
        serde_json::from_slice(&testdata("tdx_quote_collateral.json")).unwrap();
    c.bench_function("tdx quote (dcap-qvl + framing)", |b| {
        b.iter(|| tdx::verify_quote(black_box(&quote), &collateral, 1_750_377_600).unwrap())
    });

    let report = testdata("report_milan.bin");
    let vcek = testdata("vcek_milan.der");
    c.bench_function("sev-snp report (VCEK chain + signature)", |b| {
        b.iter(|| snp::verify_report(black_box(&report), &vcek, 1_795_305_600).unwrap())
    });

    let gpu = GpuEvidence {
        report: hex::decode(
            String::from_utf8(testdata("hopperAttestationReport.txt"))
                .unwrap()
                .trim(),
        )
        .unwrap(),
        certificate_chain: String::from_utf8(testdata("hopperCertChain.txt")).unwrap(),
        bound_key: Vec::new(),
    };
    let nonce: [u8; 32] = gpu.report[4..36].try_into().unwrap();
    c.bench_function("nvidia gpu (SPDM + 5-cert chain)", |b| {
        b.iter(|| verify_gpu(black_box(&gpu), &nonce, 1_795_305_600, false).unwrap())
    });

    let tee = simulated();
    let spki = b"bench key";
    let evidence = Evidence {
        platform: Platform::Simulated,
        quote: tee.quote(&tls_report_data(spki)),
        vcek: Vec::new(),
        event_log: tee.event_log().to_vec(),
        gpu: None,
    };
    let policy = Policy {
        simulator_root: Some(SimulatorRootKey::development().root()),
        ..Policy::default()
    };
    c.bench_function("simulated evidence (full verify)", |b| {
        b.iter(|| {
            verify(
                black_box(&evidence),
                &Binding::TlsKey(spki),
                &Collateral::default(),
                &policy,
                0,
            )
            .unwrap()
        })
    });

    let identity = ratls::generate_identity(|rd| {
        Ok(Evidence {
            platform: Platform::Simulated,
            quote: tee.quote(rd),
            vcek: Vec::new(),
            event_log: tee.event_log().to_vec(),
            gpu: None,
        })
    })
    .unwrap();
    c.bench_function("ra-tls certificate, simulated (parse + full verify)", |b| {
        b.iter(|| {
            ratls::verify_certificate(
                black_box(&identity.certificate_der),
                &Collateral::default(),
                &policy,
                0,
            )
            .unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
