use covenant_attest::{
    AppId, Binding, Collateral, ComposeHash, DeviceId, Error, Evidence, ExpectedMeasurements,
    InstanceId, ManifestEntry, Measurement, OsImageHash, Platform, PlatformMeasurements, Policy,
    TcbStatus,
    eventlog::{RuntimeEvent, RuntimeIdentity},
    simulator::{SimulatedTee, SimulatorRootKey},
    tls_report_data, verify,
};

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
        manifest: vec![ManifestEntry {
            os_image_hash: OsImageHash::new([0x05; 32]),
            expected: ExpectedMeasurements::Td {
                mrtd: Measurement::new([1; 48]),
                rtmr: [
                    Measurement::new([2; 48]),
                    Measurement::new([3; 48]),
                    Measurement::new([4; 48]),
                ],
            },
        }],
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
fn registers_must_match_the_manifest_entry_of_the_claimed_os_image() {
    let tee = booted(TcbStatus::UpToDate);
    let run = |policy: &Policy| {
        verify(
            &evidence(&tee, SPKI),
            &Binding::TlsKey(SPKI),
            &Collateral::default(),
            policy,
            NOW,
        )
    };
    assert!(run(&dev_policy()).is_ok());
    // Another OS image's measurements.
    let mut policy = dev_policy();
    if let ExpectedMeasurements::Td { mrtd, .. } = &mut policy.manifest[0].expected {
        *mrtd = Measurement::new([9; 48]);
    }
    assert!(matches!(
        run(&policy),
        Err(Error::MeasurementMismatch { .. })
    ));
    // Any one of RTMR0..2 differing is another image (or firmware) too; RTMR3 is the runtime
    // register the event log replays, never in the manifest.
    for i in 0..3 {
        let mut policy = dev_policy();
        if let ExpectedMeasurements::Td { rtmr, .. } = &mut policy.manifest[0].expected {
            rtmr[i] = Measurement::new([0xee; 48]);
        }
        assert!(
            matches!(run(&policy), Err(Error::MeasurementMismatch { .. })),
            "RTMR{i} is not compared"
        );
    }
    // An OS image the manifest does not know.
    let mut policy = dev_policy();
    policy.manifest[0].os_image_hash = OsImageHash::new([0x06; 32]);
    assert!(matches!(
        run(&policy),
        Err(Error::MeasurementMismatch { .. })
    ));
    // No manifest at all: nothing verifies.
    let policy = Policy {
        manifest: Vec::new(),
        ..dev_policy()
    };
    assert!(matches!(
        run(&policy),
        Err(Error::MeasurementMismatch { .. })
    ));
}
