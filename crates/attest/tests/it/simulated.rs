use covenant_attest::{
    AppId, Binding, Collateral, ComposeHash, DeviceId, Error, Evidence, InstanceId, Measurement,
    OsImageHash, Platform, PlatformMeasurements, Policy, TcbStatus,
    eventlog::{RuntimeEvent, RuntimeIdentity, names},
    simulator::{SimulatedTee, SimulatorRootKey},
    tls_report_data, verify,
};

use sha2::{Digest, Sha256};

const NOW: u64 = 1_795_305_600;
const SPKI: &[u8] = b"a TLS key's SubjectPublicKeyInfo";

fn identity() -> RuntimeIdentity {
    RuntimeIdentity {
        app_id: AppId::new([0xa1; 20]),
        compose_hash: ComposeHash::new([0xc0; 32]),
        instance_id: InstanceId::new([0x1d; 20]),
        key_provider: vec![0x4b; 20],
        os_image_hash: OsImageHash::new([0x05; 32]),
        gpu_evidence_hash: None,
    }
}

fn booted(status: TcbStatus) -> SimulatedTee {
    booted_as(&identity(), status)
}

fn booted_as(id: &RuntimeIdentity, status: TcbStatus) -> SimulatedTee {
    let mut tee = SimulatedTee::new(
        SimulatorRootKey::development(),
        DeviceId::new([0xde; 32]),
        Measurement::new([1; 48]),
        [
            Measurement::new([2; 48]),
            Measurement::new([3; 48]),
            Measurement::new([4; 48]),
        ],
    )
    .with_tcb_status(status);
    tee.record_boot(id);
    tee
}

fn evidence(tee: &SimulatedTee, spki: &[u8]) -> Evidence {
    Evidence {
        platform: Platform::Simulated,
        quote: tee.quote(&tls_report_data(spki)),
        vcek: Vec::new(),
        event_log: tee.event_log().to_vec(),
        gpu: None,
    }
}

/// Verifies `tee`'s evidence, bound to SPKI, under `policy`.
fn verify_tee(
    tee: &SimulatedTee,
    policy: &Policy,
) -> covenant_attest::Result<covenant_attest::VerifiedEvidence> {
    verify(
        &evidence(tee, SPKI),
        &Binding::TlsKey(SPKI),
        &Collateral::default(),
        policy,
        NOW,
    )
}

fn dev_policy() -> Policy {
    Policy {
        simulator_root: Some(SimulatorRootKey::development().root()),
        ..Policy::default()
    }
}

#[test]
fn simulated_evidence_verifies_under_a_policy_that_allows_it() {
    let tee = booted(TcbStatus::UpToDate);
    let verified = verify_tee(&tee, &dev_policy()).unwrap();
    assert_eq!(verified.platform(), Platform::Simulated);
    assert_eq!(verified.runtime(), &identity());
    assert_eq!(verified.device_id(), DeviceId::new([0xde; 32]));
    assert_eq!(verified.tcb_status(), TcbStatus::UpToDate);
    assert_eq!(
        verified.measurements(),
        &PlatformMeasurements::Td(*tee.measurements())
    );
    assert_eq!(verified.mr_aggregated(), tee.measurements().mr_aggregated());
    assert_eq!(verified.report_data(), tls_report_data(SPKI));
}

#[test]
fn the_default_policy_refuses_simulated_evidence() {
    let tee = booted(TcbStatus::UpToDate);
    let err = verify_tee(&tee, &Policy::default()).unwrap_err();
    assert!(matches!(err, Error::SimulatedNotAllowed), "{err}");
}

#[test]
fn evidence_bound_to_another_key_is_refused() {
    let tee = booted(TcbStatus::UpToDate);
    let err = verify(
        &evidence(&tee, b"someone else's key"),
        &Binding::TlsKey(SPKI),
        &Collateral::default(),
        &dev_policy(),
        NOW,
    )
    .unwrap_err();
    assert!(matches!(err, Error::ReportDataMismatch { .. }), "{err}");
}

#[test]
fn a_tampered_event_log_is_refused() {
    let tee = booted(TcbStatus::UpToDate);
    let mut e = evidence(&tee, SPKI);
    e.event_log[1].payload[0] ^= 1;
    let err = verify(
        &e,
        &Binding::TlsKey(SPKI),
        &Collateral::default(),
        &dev_policy(),
        NOW,
    )
    .unwrap_err();
    assert!(matches!(err, Error::EventLogMismatch { .. }), "{err}");
    let mut e = evidence(&tee, SPKI);
    e.event_log.pop();
    let err = verify(
        &e,
        &Binding::TlsKey(SPKI),
        &Collateral::default(),
        &dev_policy(),
        NOW,
    )
    .unwrap_err();
    assert!(matches!(err, Error::EventLogMismatch { .. }), "{err}");
}

#[test]
fn an_incomplete_boot_sequence_is_refused() {
    let mut tee = SimulatedTee::new(
        SimulatorRootKey::development(),
        DeviceId::new([0xde; 32]),
        Measurement::new([1; 48]),
        [Measurement::new([2; 48]); 3],
    );
    tee.extend(RuntimeEvent::new("app-id", vec![1; 20]));
    let err = verify_tee(&tee, &dev_policy()).unwrap_err();
    assert!(matches!(err, Error::EventLog(_)), "{err}");
}

#[test]
fn a_tcb_status_outside_the_policy_is_refused() {
    let tee = booted(TcbStatus::OutOfDate);
    let err = verify_tee(&tee, &dev_policy()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::TcbNotAccepted {
                status: TcbStatus::OutOfDate,
                ..
            }
        ),
        "{err}"
    );
    let lenient = Policy {
        accepted_tcb: vec![TcbStatus::UpToDate, TcbStatus::OutOfDate],
        ..dev_policy()
    };
    assert!(verify_tee(&tee, &lenient).is_ok());
}

#[test]
fn a_quote_claiming_another_platform_is_refused() {
    let tee = booted(TcbStatus::UpToDate);
    let mut e = evidence(&tee, SPKI);
    e.platform = Platform::Tdx;
    let collateral = Collateral {
        tdx: Some(serde_json::from_slice(&crate::testdata("tdx_quote_collateral.json")).unwrap()),

        ..Collateral::default()
    };
    let err = verify(&e, &Binding::TlsKey(SPKI), &collateral, &dev_policy(), NOW).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Malformed {
                what: "TDX quote",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn evidence_round_trips_through_its_wire_form_and_rejects_garbage() {
    let tee = booted(TcbStatus::UpToDate);
    let e = evidence(&tee, SPKI);
    assert_eq!(Evidence::from_bytes(&e.to_bytes()).unwrap(), e);
    assert!(matches!(
        Evidence::from_bytes(b"{\"platform\":\"tdx\"}"),
        Err(Error::Malformed { .. })
    ));
    assert!(matches!(
        Evidence::from_bytes(b"\xff\x00"),
        Err(Error::Malformed { .. })
    ));
    let huge = vec![b' '; covenant_attest::MAX_EVIDENCE_LEN + 1];
    assert!(matches!(
        Evidence::from_bytes(&huge),
        Err(Error::TooLarge { .. })
    ));
}

fn booted_with_gpu(gpu: Option<covenant_attest::GpuEvidenceHash>) -> SimulatedTee {
    booted_as(
        &RuntimeIdentity {
            gpu_evidence_hash: gpu,
            ..identity()
        },
        TcbStatus::UpToDate,
    )
}

#[test]
fn gpu_evidence_must_be_announced_bound_and_present() {
    let (gpu, _) = crate::gpu_sample();
    let binding = Binding::TlsKey(SPKI);
    let check = |tee: &SimulatedTee, gpu_evidence: Option<covenant_attest::nvidia::GpuEvidence>| {
        let mut e = evidence(tee, SPKI);
        e.gpu = gpu_evidence;
        verify(&e, &binding, &Collateral::default(), &dev_policy(), NOW).unwrap_err()
    };
    // Announced, missing.
    let err = check(&booted_with_gpu(Some(gpu.hash())), None);
    assert!(
        matches!(
            err,
            Error::Gpu {
                what: "evidence",
                ..
            }
        ),
        "{err}"
    );
    // Present, not announced.
    let err = check(&booted_with_gpu(None), Some(gpu.clone()));
    assert!(
        matches!(
            err,
            Error::Gpu {
                what: "event log",
                ..
            }
        ),
        "{err}"
    );
    // Announced with another hash.
    let other = covenant_attest::GpuEvidenceHash::new([7; 32]);
    let err = check(&booted_with_gpu(Some(other)), Some(gpu.clone()));
    assert!(
        matches!(
            err,
            Error::Gpu {
                what: "evidence hash",
                ..
            }
        ),
        "{err}"
    );
    // Announced and present: genuine GPU evidence, but its nonce was not derived from this
    // quote's report data, so it is refused.
    let err = check(&booted_with_gpu(Some(gpu.hash())), Some(gpu));
    assert!(matches!(err, Error::Gpu { what: "nonce", .. }), "{err}");
}

#[test]
fn the_os_measurement_covers_mrtd_and_rtmr0_to_2_and_nothing_else() {
    let verified = verify_tee(&booted(TcbStatus::UpToDate), &dev_policy()).unwrap();
    let mut registers = vec![1u8; 48];
    registers.extend([2u8; 48]);
    registers.extend([3u8; 48]);
    registers.extend([4u8; 48]);
    let expected: [u8; 32] = Sha256::digest(&registers).into();
    assert_eq!(verified.os_measurement(), expected);
    // Another app on the same image measures the same OS (RTMR3 is the runtime log, not the OS).
    let mut other = identity();
    other.compose_hash = ComposeHash::new([0xc2; 32]);
    let verified_other =
        verify_tee(&booted_as(&other, TcbStatus::UpToDate), &dev_policy()).unwrap();
    assert_eq!(verified_other.os_measurement(), expected);
    assert_ne!(verified_other.mr_aggregated(), verified.mr_aggregated());
    // Any one of MRTD, RTMR0..2 differing is another OS.
    for i in 0..4 {
        let mut m = [
            Measurement::new([1; 48]),
            Measurement::new([2; 48]),
            Measurement::new([3; 48]),
            Measurement::new([4; 48]),
        ];
        m[i] = Measurement::new([0xee; 48]);
        let mut tee = SimulatedTee::new(
            SimulatorRootKey::development(),
            DeviceId::new([0xde; 32]),
            m[0],
            [m[1], m[2], m[3]],
        );
        tee.record_boot(&identity());
        let v = verify_tee(&tee, &dev_policy()).unwrap();
        assert_ne!(v.os_measurement(), expected, "register {i} is not covered");
    }
}

#[test]
fn a_kms_identity_extended_after_system_ready_is_bound_and_leaves_the_code_measurement_alone() {
    let plain = verify_tee(&booted(TcbStatus::UpToDate), &dev_policy()).unwrap();
    assert_eq!(plain.kms_identity(), None);
    assert_eq!(plain.mr_aggregated_at_system_ready(), plain.mr_aggregated());
    let node = [0xab; 20];
    let mut tee = booted(TcbStatus::UpToDate);
    tee.extend(RuntimeEvent::new(names::KMS_IDENTITY, node.to_vec()));
    let with_identity = verify_tee(&tee, &dev_policy()).unwrap();
    assert_eq!(with_identity.kms_identity(), Some(node));
    // Every node of the same code shares the measurement at system-ready; the full aggregate
    // (RTMR3 after the identity event) differs per node.
    assert_eq!(
        with_identity.mr_aggregated_at_system_ready(),
        plain.mr_aggregated()
    );
    assert_ne!(with_identity.mr_aggregated(), plain.mr_aggregated());
    // Not right after system-ready, twice, or of the wrong length: no identity.
    let mut late = booted(TcbStatus::UpToDate);
    late.extend(RuntimeEvent::new("note", b"x".to_vec()));
    late.extend(RuntimeEvent::new(names::KMS_IDENTITY, node.to_vec()));
    assert_eq!(
        verify_tee(&late, &dev_policy()).unwrap().kms_identity(),
        None
    );
    let mut twice = booted(TcbStatus::UpToDate);
    twice.extend(RuntimeEvent::new(names::KMS_IDENTITY, node.to_vec()));
    twice.extend(RuntimeEvent::new(names::KMS_IDENTITY, [0xcd; 20].to_vec()));
    assert_eq!(
        verify_tee(&twice, &dev_policy()).unwrap().kms_identity(),
        None
    );
    let mut short = booted(TcbStatus::UpToDate);
    short.extend(RuntimeEvent::new(names::KMS_IDENTITY, vec![0xab; 19]));
    assert_eq!(
        verify_tee(&short, &dev_policy()).unwrap().kms_identity(),
        None
    );
}

/// A simulated boot with a simulated GPU whose nonce binds `spki`'s RA-TLS report data, as the
/// guest does it: the GPU evidence first, its hash in the boot's events, then the quote.
fn booted_with_bound_gpu(
    spki: &[u8],
    device: u8,
) -> (SimulatedTee, covenant_attest::nvidia::GpuEvidence) {
    let gpu = covenant_attest::simulated_gpu::SimulatedGpu::new(
        &[device; 32],
        [0xf1; 48],
        [[0x33; 48]; covenant_attest::simulated_gpu::BLOCKS],
    )
    .unwrap()
    .evidence(&covenant_attest::nvidia::gpu_nonce(&tls_report_data(spki)));
    (booted_with_gpu(Some(gpu.hash())), gpu)
}

#[test]
fn a_bound_simulated_gpu_is_accepted_and_a_swapped_one_refused() {
    let (tee, gpu) = booted_with_bound_gpu(SPKI, 1);
    let mut e = evidence(&tee, SPKI);
    e.gpu = Some(gpu.clone());
    let binding = Binding::TlsKey(SPKI);
    let verified = verify(&e, &binding, &Collateral::default(), &dev_policy(), NOW).unwrap();
    assert_eq!(verified.gpu().unwrap().fwid, vec![0xf1; 48]);
    assert_eq!(verified.runtime().gpu_evidence_hash, Some(gpu.hash()));
    // Where simulated evidence is not accepted, neither is the simulated GPU (the CPU evidence
    // here is simulated too, so it is refused first; the GPU root check is nvidia.rs's).
    assert!(
        verify(
            &e,
            &binding,
            &Collateral::default(),
            &Policy::default(),
            NOW
        )
        .is_err()
    );

    // Another GPU's evidence for the very same nonce: not the one the boot announced.
    let (_, other_gpu) = booted_with_bound_gpu(SPKI, 2);
    let mut swapped = e.clone();
    swapped.gpu = Some(other_gpu);
    let err = verify(
        &swapped,
        &binding,
        &Collateral::default(),
        &dev_policy(),
        NOW,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Gpu {
                what: "evidence hash",
                ..
            }
        ),
        "{err}"
    );
    // GPU evidence bound to another key, announced as such: the nonce gives it away.
    let (tee, gpu) = booted_with_bound_gpu(b"another key", 1);
    let mut e = evidence(&tee, SPKI);
    e.gpu = Some(gpu);
    let err = verify(&e, &binding, &Collateral::default(), &dev_policy(), NOW).unwrap_err();
    assert!(matches!(err, Error::Gpu { what: "nonce", .. }), "{err}");
}

#[test]
fn evidence_over_other_report_data_proves_the_gpu_through_the_boot_key_it_names() {
    let (tee, gpu) = booted_with_bound_gpu(SPKI, 1);
    let report_data = covenant_attest::ReportData::new([0x42; 64]);
    let over = |gpu: covenant_attest::nvidia::GpuEvidence| {
        let e = Evidence {
            platform: Platform::Simulated,
            quote: tee.quote(&report_data),
            vcek: Vec::new(),
            event_log: tee.event_log().to_vec(),
            gpu: Some(gpu),
        };
        verify(
            &e,
            &Binding::ReportData(report_data),
            &Collateral::default(),
            &dev_policy(),
            NOW,
        )
    };
    // Without naming the boot key, the nonce does not match this evidence's report data.
    let err = over(gpu.clone()).unwrap_err();
    assert!(matches!(err, Error::Gpu { what: "nonce", .. }), "{err}");
    let named = covenant_attest::nvidia::GpuEvidence {
        bound_key: SPKI.to_vec(),
        ..gpu
    };
    assert_eq!(named.hash(), gpu_hash_of(&tee));
    over(named.clone()).unwrap();
    // Naming another key does not help.
    let wrong = covenant_attest::nvidia::GpuEvidence {
        bound_key: b"another key".to_vec(),
        ..named
    };
    let err = over(wrong).unwrap_err();
    assert!(matches!(err, Error::Gpu { what: "nonce", .. }), "{err}");
}

fn gpu_hash_of(tee: &SimulatedTee) -> covenant_attest::GpuEvidenceHash {
    let event = tee
        .event_log()
        .iter()
        .find(|e| e.name == names::GPU_EVIDENCE)
        .unwrap();
    covenant_attest::GpuEvidenceHash::try_from_slice(&event.payload).unwrap()
}
