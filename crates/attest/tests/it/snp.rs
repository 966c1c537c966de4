use covenant_attest::{
    Binding, Collateral, DeviceId, Error, Evidence, Platform, Policy, ReportData, TcbStatus,
    snp::{self, SnpTcb},
    verify,
};

use crate::testdata;

/// 2026-11-21: inside the Milan VCEK's validity (2023-04-03 .. 2030-04-03).
const NOW: u64 = 1_795_305_600;

#[test]
fn the_milan_sample_verifies() {
    let report = snp::verify_report(
        &testdata("report_milan.bin"),
        &testdata("vcek_milan.der"),
        NOW,
    )
    .unwrap();
    assert!(report.measurement.to_hex().starts_with("7a1e5c266c0108db"));
    assert!(report.measurement.to_hex().ends_with("1f"));
    assert_eq!(
        report.reported_tcb,
        SnpTcb {
            bootloader: 3,
            tee: 0,
            snp: 8,
            microcode: 115
        }
    );
    let raw = testdata("report_milan.bin");
    assert_eq!(
        report.device_id,
        DeviceId::from_hardware_id(&raw[0x1a0..0x1e0])
    );
    assert!(report.device_id.to_hex().len() == 64);
}

#[test]
fn a_flipped_report_byte_breaks_the_signature() {
    let mut report = testdata("report_milan.bin");
    report[21] ^= 0x80;
    let err = snp::verify_report(&report, &testdata("vcek_milan.der"), NOW).unwrap_err();
    assert!(err.to_string().contains("SEV-SNP"), "{err}");
}

#[test]
fn every_signed_byte_matters() {
    let report = testdata("report_milan.bin");
    let vcek = testdata("vcek_milan.der");
    for at in 0..report.len() {
        let mut bad = report.clone();
        bad[at] ^= 0x01;
        assert!(
            snp::verify_report(&bad, &vcek, NOW).is_err(),
            "flip at byte {at} accepted"
        );
    }
}

#[test]
fn a_corrupted_vcek_breaks_the_chain() {
    let mut vcek = testdata("vcek_milan.der");
    vcek[40] ^= 0xff;
    let err = snp::verify_report(&testdata("report_milan.bin"), &vcek, NOW).unwrap_err();
    assert!(matches!(err, Error::SnpVerification { .. }), "{err}");
}

#[test]
fn a_vcek_of_another_chip_is_rejected() {
    let err = snp::verify_report(
        &testdata("report_milan.bin"),
        &testdata("vcek_turin.der"),
        NOW,
    )
    .unwrap_err();
    assert!(matches!(err, Error::SnpVerification { .. }), "{err}");
}

#[test]
fn an_expired_or_not_yet_valid_vcek_is_rejected() {
    for now in [1_600_000_000, 2_000_000_000] {
        let err = snp::verify_report(
            &testdata("report_milan.bin"),
            &testdata("vcek_milan.der"),
            now,
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                Error::SnpVerification {
                    what: "VCEK validity",
                    ..
                }
            ),
            "{err}"
        );
    }
}

#[test]
fn wrong_lengths_are_rejected() {
    let report = testdata("report_milan.bin");
    let vcek = testdata("vcek_milan.der");
    assert!(matches!(
        snp::verify_report(&report[1..], &vcek, NOW),
        Err(Error::Length { .. })
    ));
    assert!(snp::verify_report(&report, &vcek[..100], NOW).is_err());
    assert!(matches!(
        snp::verify_report(&report, &vec![0; 5000], NOW),
        Err(Error::TooLarge { .. })
    ));
}

#[test]
fn the_tcb_status_comes_from_the_configured_minimum() {
    let at = SnpTcb {
        bootloader: 3,
        tee: 0,
        snp: 8,
        microcode: 115,
    };
    let newer = SnpTcb {
        microcode: 116,
        ..at
    };
    assert_eq!(SnpTcb::status(&at, &at, Some(&at)), TcbStatus::UpToDate);
    assert_eq!(SnpTcb::status(&at, &at, Some(&newer)), TcbStatus::OutOfDate);
    assert_eq!(
        SnpTcb::status(&newer, &at, Some(&newer)),
        TcbStatus::OutOfDate,
        "committed TCB counts"
    );
    assert_eq!(
        SnpTcb::status(&at, &at, None),
        TcbStatus::OutOfDate,
        "no minimum, nothing is current"
    );
}

#[test]
fn the_pipeline_requires_the_report_data_to_bind_key_and_log() {
    let evidence = Evidence {
        platform: Platform::Snp,
        quote: testdata("report_milan.bin"),
        vcek: testdata("vcek_milan.der"),
        event_log: Vec::new(),
        gpu: None,
    };
    let binding = Binding::ReportData(ReportData::new([0; 64]));
    // Without a configured TCB minimum, SNP is never up to date.
    let err = verify(
        &evidence,
        &binding,
        &Collateral::default(),
        &Policy::default(),
        NOW,
    )
    .unwrap_err();
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
    let policy = Policy {
        snp_minimum_tcb: Some(SnpTcb {
            bootloader: 3,
            tee: 0,
            snp: 8,
            microcode: 115,
        }),
        ..Policy::default()
    };
    let err = verify(&evidence, &binding, &Collateral::default(), &policy, NOW).unwrap_err();
    assert!(matches!(err, Error::ReportDataMismatch { .. }), "{err}");
}
