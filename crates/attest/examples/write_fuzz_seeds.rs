//! Writes seed inputs for the `evidence` and `ratls_certificate` fuzz targets (simulated evidence
//! and an RA-TLS certificate carrying it) into `fuzz/corpus/`. Run from `crates/attest`:
//! `cargo run --example write_fuzz_seeds`.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use covenant_attest::{
    AppId, ComposeHash, DeviceId, Evidence, InstanceId, Measurement, OsImageHash, Platform,
    ReportData,
    eventlog::RuntimeIdentity,
    ratls,
    simulator::{SimulatedTee, SimulatorRootKey},
};

fn main() {
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
    let evidence = |report_data: &ReportData| Evidence {
        platform: Platform::Simulated,
        quote: tee.quote(report_data),
        vcek: Vec::new(),
        event_log: tee.event_log().to_vec(),
        gpu: None,
    };
    let corpus = std::path::Path::new("fuzz/corpus");
    std::fs::write(
        corpus.join("evidence/simulated.json"),
        evidence(&ReportData::new([0; 64])).to_bytes(),
    )
    .unwrap();
    let identity = ratls::generate_identity(|rd| Ok(evidence(rd))).unwrap();
    std::fs::write(
        corpus.join("ratls_certificate/simulated.der"),
        &identity.certificate_der,
    )
    .unwrap();
    println!("wrote seeds under {}", corpus.display());
}
