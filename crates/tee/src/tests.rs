//! Each producer's evidence through `covenant_attest::verify`: the simulated one accepted end to
//! end; the real ones on fake configfs/sysfs trees holding real vectors, where `verify` accepts
//! every stage the vector's signer can vouch for (signature, endorsements, collateral, TCB) and
//! refuses exactly at the binding, which only real hardware can sign for our key and log.

use std::{fs, path::Path, sync::Arc};

use covenant_attest::{
    AppId, Binding, Collateral, ComposeHash, DeviceId, Error as AttestError, InstanceId,
    Measurement, OsImageHash, Platform, Policy, ReportData, TcbStatus,
    eventlog::{self, RuntimeIdentity},
    ratls,
    simulator::{SimulatedTee, SimulatorRootKey},
    verify,
};

use super::*;

fn testdata(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../attest/testdata")
        .join(name);
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn identity(app: u8) -> RuntimeIdentity {
    RuntimeIdentity {
        app_id: AppId::new([app; 20]),
        compose_hash: ComposeHash::new([0xc0; 32]),
        instance_id: InstanceId::new([0x11; 20]),
        key_provider: vec![0x4b; 20],
        os_image_hash: OsImageHash::new([0x05; 32]),
        gpu_evidence_hash: None,
    }
}

const MRTD: [u8; 48] = [0x21; 48];
/// A time within the simulated GPU certificates' validity.
const NOW: u64 = 1_795_305_600;
const RTMR: [u8; 48] = [0x22; 48];

fn every_tcb() -> Vec<TcbStatus> {
    vec![
        TcbStatus::UpToDate,
        TcbStatus::SwHardeningNeeded,
        TcbStatus::ConfigurationNeeded,
        TcbStatus::ConfigurationAndSwHardeningNeeded,
        TcbStatus::OutOfDate,
        TcbStatus::OutOfDateConfigurationNeeded,
    ]
}

#[test]
fn simulated_evidence_of_any_app_verifies_end_to_end() {
    let policy = Policy {
        simulator_root: Some(SimulatorRootKey::development().root()),
        ..Policy::default()
    };
    // An app, the gateway, a KMS node: each boots as an app identity of its own.
    for app in [0xa1, 0x6a, 0x4d] {
        let mut producer = Simulated::new(SimulatedTee::new(
            SimulatorRootKey::development(),
            DeviceId::new([0xdd; 32]),
            Measurement::new(MRTD),
            [Measurement::new(RTMR); 3],
        ));
        producer.record_boot(&identity(app)).unwrap();
        assert_eq!(producer.platform(), Platform::Simulated);
        let tls = producer.ratls_identity().unwrap();
        let verified =
            ratls::verify_certificate(&tls.certificate_der, &Collateral::default(), &policy, 0)
                .unwrap();
        assert_eq!(verified.runtime(), &identity(app));
        assert_eq!(verified.event_log(), producer.event_log());
    }
}

#[test]
fn a_boot_with_a_gpu_binds_its_evidence_to_the_boot_key() {
    let policy = Policy {
        simulator_root: Some(SimulatorRootKey::development().root()),
        ..Policy::default()
    };
    let mut producer = Simulated::new(SimulatedTee::new(
        SimulatorRootKey::development(),
        DeviceId::new([0xdd; 32]),
        Measurement::new(MRTD),
        [Measurement::new(RTMR); 3],
    ));
    let gpu = SimulatedGpu::new(
        &[7; 32],
        [0xf1; 48],
        [[0x33; 48]; covenant_attest::simulated_gpu::BLOCKS],
    )
    .unwrap();
    let boot = producer.boot(&identity(0xa1), Some(&gpu)).unwrap();
    let announced = boot.gpu.as_ref().unwrap();
    assert_eq!(
        announced.bound_key,
        boot.identity.subject_public_key_info().unwrap()
    );
    // The RA-TLS certificate proves the GPU, and the boot the chain judges names it.
    let verified = ratls::verify_certificate(
        &boot.identity.certificate_der,
        &Collateral::default(),
        &policy,
        NOW,
    )
    .unwrap();
    assert!(verified.gpu().is_some());
    assert_eq!(verified.runtime().gpu_evidence_hash, Some(announced.hash()));
    // Evidence over other report data proves it through the boot key the GPU evidence names.
    let report_data = ReportData::new([0x42; 64]);
    let mut later = producer.evidence(&report_data).unwrap();
    later.gpu = Some(announced.clone());
    let verified = verify(
        &later,
        &Binding::ReportData(report_data),
        &Collateral::default(),
        &policy,
        NOW,
    )
    .unwrap();
    assert_eq!(verified.gpu().unwrap().fwid, vec![0xf1; 48]);
}

/// A fake configfs-tsm mount whose "kernel" answers with `provider`, `quote` and `aux`.
fn fake_tsm(
    root: &Path,
    provider: &'static str,
    quote: Vec<u8>,
    aux: Option<Vec<u8>>,
) -> configfs::ConfigfsTsm {
    configfs::ConfigfsTsm::new(root).with_fake_kernel(Arc::new(move |entry: &Path| {
        fs::write(entry.join("provider"), format!("{provider}\n")).unwrap();
        fs::write(entry.join("generation"), "1\n").unwrap();
        fs::write(entry.join("outblob"), &quote).unwrap();
        if let Some(aux) = &aux {
            fs::write(entry.join("auxblob"), aux).unwrap();
        }
    }))
}

/// What the producer wrote to `inblob` of its latest entry (a fake tree keeps entries: only
/// real configfs removes a directory with its attribute files).
fn last_inblob(root: &Path) -> Vec<u8> {
    let latest = fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("inblob").exists())
        .max_by_key(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.rsplit('-').next().unwrap().parse::<u64>().unwrap()
        })
        .unwrap();
    fs::read(latest.join("inblob")).unwrap()
}

#[test]
fn tdx_extends_rtmr3_in_order_and_its_evidence_verifies_up_to_the_binding() {
    let dir = tempfile::tempdir().unwrap();
    let rtmr3 = dir.path().join("rtmr3:sha384");
    fs::write(&rtmr3, [0u8; 48]).unwrap();
    let tsm = fake_tsm(dir.path(), "tdx_guest", testdata("tdx_quote"), None);
    let mut producer = Tdx::new(tsm, rtmr::Rtmr3::new(&rtmr3));
    // Every event is one 48-byte write of its digest, in the boot order.
    for event in identity(0xa1).boot_events() {
        producer.extend(event.clone()).unwrap();
        assert_eq!(fs::read(&rtmr3).unwrap(), event.digest(), "{}", event.name);
    }
    assert_eq!(
        producer.event_log(),
        identity(0xa1).boot_events().as_slice()
    );
    assert_eq!(
        eventlog::decode_identity(producer.event_log()).unwrap(),
        identity(0xa1)
    );

    let binding = ReportData::new([0x5a; 64]);
    let evidence = producer.evidence(&binding).unwrap();
    assert_eq!(last_inblob(dir.path()), binding.as_bytes());
    assert_eq!(evidence.platform, Platform::Tdx);
    assert_eq!(evidence.quote, testdata("tdx_quote"));
    assert!(evidence.vcek.is_empty());
    // The quote's signature, PCK chain, collateral and TCB are accepted; the vector's RTMR3 is
    // not our log's, which is where a real TD's quote would match.
    let collateral = Collateral {
        tdx: Some(serde_json::from_slice(&testdata("tdx_quote_collateral.json")).unwrap()),

        ..Collateral::default()
    };
    let policy = Policy {
        accepted_tcb: every_tcb(),
        ..Policy::default()
    };
    let err = verify(
        &evidence,
        &Binding::ReportData(binding),
        &collateral,
        &policy,
        1_750_377_600,
    )
    .unwrap_err();
    assert!(matches!(err, AttestError::EventLogMismatch { .. }), "{err}");

    // A provider that is not TDX is refused by the TDX producer.
    let snp = fake_tsm(dir.path(), "sev_guest", testdata("report_milan.bin"), None);
    let wrong = Tdx::new(snp, rtmr::Rtmr3::new(&rtmr3)).evidence(&binding);
    assert!(
        matches!(wrong, Err(Error::WrongPlatform { .. })),
        "{wrong:?}"
    );
    // A missing RTMR interface is a clear error naming it.
    let missing = Tdx::new(
        configfs::ConfigfsTsm::new(dir.path()),
        rtmr::Rtmr3::new(dir.path().join("absent")),
    )
    .extend(identity(1).boot_events().remove(0))
    .unwrap_err();
    assert!(missing.to_string().contains("absent"), "{missing}");
}

#[test]
fn snp_commits_the_log_in_report_data_and_takes_the_vcek_from_the_certificate_table() {
    let dir = tempfile::tempdir().unwrap();
    let vcek = testdata("vcek_milan.der");
    let ask_guid = [
        0x4a, 0xb7, 0xb3, 0x79, 0xbb, 0xac, 0x4f, 0xe4, 0xa0, 0x2f, 0x05, 0xae, 0xf3, 0x27, 0xc7,
        0x82,
    ];
    let table = certtable::build(&[
        (ask_guid, &testdata("ask_milan.pem")),
        (certtable::VCEK_GUID, &vcek),
    ]);
    let tsm = fake_tsm(
        dir.path(),
        "sev_guest",
        testdata("report_milan.bin"),
        Some(table),
    );
    let mut producer = Snp::new(tsm);
    producer.record_boot(&identity(0xa1)).unwrap();
    let binding = ReportData::new([0x5a; 64]);

    // The report data asked for commits to the binding and the replayed log.
    let expected = covenant_attest::snp_report_data(
        &binding,
        &eventlog::replay(producer.event_log()).unwrap(),
    );
    let evidence = producer.evidence(&binding).unwrap();
    assert_eq!(last_inblob(dir.path()), expected.as_bytes());
    assert_eq!(evidence.platform, Platform::Snp);
    assert_eq!(evidence.vcek, vcek);
    assert_eq!(evidence.quote, testdata("report_milan.bin"));
    assert_ne!(expected, binding);

    // The report's signature and the VCEK → ASK → ARK chain are accepted; the vector's report
    // data is not ours, which is where a real guest's report would match.
    let policy = Policy {
        accepted_tcb: every_tcb(),
        ..Policy::default()
    };
    let err = verify(
        &evidence,
        &Binding::ReportData(binding),
        &Collateral::default(),
        &policy,
        1_795_305_600,
    )
    .unwrap_err();
    match err {
        AttestError::ReportDataMismatch { expected: want, .. } => assert_eq!(*want, expected),
        other => panic!("expected the binding to be what fails, got {other}"),
    }

    // Without a VCEK in the table the evidence goes without one: the verifier fetches it.
    let bare = fake_tsm(
        dir.path(),
        "sev_guest",
        testdata("report_milan.bin"),
        Some(certtable::build(&[(ask_guid, b"ask")])),
    );
    let mut producer = Snp::new(bare);
    producer.record_boot(&identity(0xa1)).unwrap();
    assert!(producer.evidence(&binding).unwrap().vcek.is_empty());
}

#[test]
fn snp_takes_the_vlek_for_a_vlek_signed_report_and_refuses_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let (report, vlek) = (
        testdata("report_vlek_milan_aws.bin"),
        testdata("vlek_milan_aws.der"),
    );
    let with = |table| {
        let mut producer = Snp::new(fake_tsm(dir.path(), "sev_guest", report.clone(), table));
        producer.record_boot(&identity(0xa2)).unwrap();
        producer.evidence(&ReportData::new([0x5b; 64]))
    };
    let table = certtable::build(&[
        (certtable::VCEK_GUID, &testdata("vcek_milan.der")),
        (certtable::VLEK_GUID, &vlek),
    ]);
    assert_eq!(with(Some(table)).unwrap().vcek, vlek);
    let vcek_only = certtable::build(&[(certtable::VCEK_GUID, &testdata("vcek_milan.der"))]);
    assert!(matches!(
        with(Some(vcek_only)),
        Err(Error::CertTable("no VLEK entry"))
    ));
}

#[test]
fn the_mount_says_which_tee_this_is() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        fake_tsm(dir.path(), "sev_guest", vec![1], None)
            .platform()
            .unwrap(),
        Platform::Snp
    );
    assert_eq!(
        fake_tsm(dir.path(), "tdx_guest", vec![1], None)
            .platform()
            .unwrap(),
        Platform::Tdx
    );
    assert!(
        configfs::ConfigfsTsm::new(dir.path().join("none"))
            .platform()
            .is_err()
    );
}
