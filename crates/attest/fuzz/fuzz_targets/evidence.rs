//! The evidence wire form and the runtime event log: decode, replay, read the boot identity, and
//! run the whole verification with a policy that accepts the development simulator.
#![no_main]

use covenant_attest::{
    Binding, Collateral, Evidence, ExpectedMeasurements, ManifestEntry, Measurement, OsImageHash, Policy,
    ReportData, eventlog, simulator::SimulatorRootKey, verify,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(evidence) = Evidence::from_bytes(data) else { return };
    let _ = eventlog::replay(&evidence.event_log);
    let _ = eventlog::decode_identity(&evidence.event_log);
    // The seed's simulated instance (crates/attest/examples/write_fuzz_seeds.rs).
    let policy = Policy {
        simulator_root: Some(SimulatorRootKey::development().root()),
        manifest: vec![ManifestEntry {
            os_image_hash: OsImageHash::new([8; 32]),
            expected: ExpectedMeasurements::Td { mrtd: Measurement::new([2; 48]), rtmr: [Measurement::new([3; 48]); 3] },
        }],
        ..Policy::default()
    };
    let _ = verify(&evidence, &Binding::ReportData(ReportData::new([0; 64])), &Collateral::default(), &policy, 0);
});
