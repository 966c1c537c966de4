use covenant_attest::{
    Binding, Collateral, DeviceId, Error, Evidence, Platform, Policy, ReportData, TcbStatus,
    snp::{self, SnpSigner, SnpTcb},
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

/// 2025-06-01: inside the AWS VLEK's validity (2024-12-10 .. 2025-12-10).
const VLEK_NOW: u64 = 1_748_736_000;

fn vlek_sample() -> (Vec<u8>, Vec<u8>) {
    (
        testdata("report_vlek_milan_aws.bin"),
        testdata("vlek_milan_aws.der"),
    )
}

#[test]
fn a_real_vlek_signed_report_verifies_through_the_pinned_asvk() {
    let (report, vlek) = vlek_sample();
    let verified = snp::verify_report(&report, &vlek, VLEK_NOW).unwrap();
    assert_eq!(verified.signer, SnpSigner::Vlek);
    assert_eq!(
        verified.reported_tcb,
        SnpTcb {
            bootloader: 4,
            tee: 0,
            snp: 24,
            microcode: 217
        }
    );
    // The report data the guest asked for (the AK digest the sample was made with).
    assert!(
        verified
            .report_data
            .to_hex()
            .starts_with("87ab7caf510e1b3520dc3cceb64ee441")
    );
    // The cloud masks CHIP_ID: the device id then names no single chip, and says so.
    assert!(verified.chip_id_masked);
    assert_eq!(verified.device_id, DeviceId::from_hardware_id(&[0; 64]));
    // The Milan VCEK sample is a chip's own key and its CHIP_ID is real.
    let vcek = snp::verify_report(
        &testdata("report_milan.bin"),
        &testdata("vcek_milan.der"),
        NOW,
    )
    .unwrap();
    assert_eq!(vcek.signer, SnpSigner::Vcek);
    assert!(!vcek.chip_id_masked);
}

#[test]
fn each_signer_needs_its_own_kind_of_certificate() {
    let (report, vlek) = vlek_sample();
    // A VLEK-signed report with a VCEK: the VCEK does not chain to an ASVK.
    let err = snp::verify_report(&report, &testdata("vcek_milan.der"), VLEK_NOW).unwrap_err();
    assert!(
        matches!(
            err,
            Error::SnpVerification {
                what: "VLEK chain",
                ..
            }
        ),
        "{err}"
    );
    // A VCEK-signed report with a VLEK: the VLEK does not chain to an ASK.
    let err = snp::verify_report(&testdata("report_milan.bin"), &vlek, VLEK_NOW).unwrap_err();
    assert!(
        matches!(
            err,
            Error::SnpVerification {
                what: "VCEK chain",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_report_that_says_it_is_unsigned_or_names_an_unknown_key_is_refused() {
    let (report, vlek) = vlek_sample();
    // KEY_INFO at 0x48, SIGNING_KEY in bits 2..4.
    for signing_key in [7u32, 2] {
        let mut bad = report.clone();
        let key_info = u32::from_le_bytes(bad[0x48..0x4c].try_into().unwrap());
        let key_info = (key_info & !0b11100) | (signing_key << 2);
        bad[0x48..0x4c].copy_from_slice(&key_info.to_le_bytes());
        let err = snp::verify_report(&bad, &vlek, VLEK_NOW).unwrap_err();
        assert!(
            err.to_string().contains(if signing_key == 7 {
                "not signed"
            } else {
                "unknown signing key 2"
            }),
            "{err}"
        );
    }
    assert_eq!(
        snp::unverified_signing(&report).unwrap().signer,
        SnpSigner::Vlek,
        "the signer is read from KEY_INFO"
    );
}

#[test]
fn a_vlek_outside_its_validity_is_rejected() {
    let (report, vlek) = vlek_sample();
    // 2026-11-21: the sample VLEK expired on 2025-12-10.
    let err = snp::verify_report(&report, &vlek, NOW).unwrap_err();
    assert!(
        matches!(
            err,
            Error::SnpVerification {
                what: "VLEK validity",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn every_signed_byte_of_the_vlek_report_matters() {
    let (report, vlek) = vlek_sample();
    for at in 0..0x2a0 {
        let mut bad = report.clone();
        bad[at] ^= 0x01;
        assert!(
            snp::verify_report(&bad, &vlek, VLEK_NOW).is_err(),
            "flip at byte {at} accepted"
        );
    }
}

#[test]
fn a_vlek_report_reaches_the_binding_stage_of_the_pipeline() {
    let (quote, vcek) = vlek_sample();
    let evidence = Evidence {
        platform: Platform::Snp,
        quote,
        vcek,
        event_log: Vec::new(),
        gpu: None,
    };
    let policy = Policy {
        snp_minimum_tcb: Some(SnpTcb {
            bootloader: 4,
            tee: 0,
            snp: 24,
            microcode: 217,
        }),
        ..Policy::default()
    };
    let binding = Binding::ReportData(ReportData::new([0; 64]));
    let err = verify(
        &evidence,
        &binding,
        &Collateral::default(),
        &policy,
        VLEK_NOW,
    )
    .unwrap_err();
    assert!(matches!(err, Error::ReportDataMismatch { .. }), "{err}");
}

#[test]
fn a_vcek_the_evidence_lacks_comes_from_the_collateral_and_is_checked_the_same() {
    let evidence = Evidence {
        platform: Platform::Snp,
        quote: testdata("report_milan.bin"),
        vcek: Vec::new(),
        event_log: Vec::new(),
        gpu: None,
    };
    let policy = Policy {
        snp_minimum_tcb: Some(SnpTcb {
            bootloader: 3,
            tee: 0,
            snp: 8,
            microcode: 115,
        }),
        ..Policy::default()
    };
    let binding = Binding::ReportData(ReportData::new([0; 64]));
    let with = |vcek: Option<Vec<u8>>| {
        let collateral = Collateral {
            snp_vcek: vcek,
            ..Collateral::default()
        };
        verify(&evidence, &binding, &collateral, &policy, NOW).unwrap_err()
    };
    let err = with(None);
    assert!(err.to_string().contains("carries no VCEK"), "{err}");
    let err = with(Some(testdata("vcek_milan.der")));
    assert!(matches!(err, Error::ReportDataMismatch { .. }), "{err}");
    // A supplied VCEK of another chip is refused like one in the evidence.
    let err = with(Some(testdata("vcek_turin.der")));
    assert!(matches!(err, Error::SnpVerification { .. }), "{err}");
    assert!(snp::signed_by(&evidence.quote, &testdata("vcek_milan.der"), NOW).is_ok());
    assert!(snp::signed_by(&evidence.quote, &testdata("vcek_turin.der"), NOW).is_err());
}
