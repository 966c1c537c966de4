use covenant_attest::{
    Binding, Collateral, Error, Evidence, Platform, Policy, QuoteCollateralV3, ReportData,
    TcbStatus, tdx, verify,
};

use crate::testdata;

/// Inside the sample collateral's validity window (2025-06-20T00:00:00Z).
const SAMPLE_NOW: u64 = 1_750_377_600;

fn collateral(name: &str) -> QuoteCollateralV3 {
    serde_json::from_slice(&testdata(name)).unwrap()
}

#[test]
fn the_sample_quote_verifies() {
    let quote = testdata("tdx_quote");
    let report =
        tdx::verify_quote(&quote, &collateral("tdx_quote_collateral.json"), SAMPLE_NOW).unwrap();
    assert_eq!(report.tcb_status, TcbStatus::UpToDate);
    assert!(report.advisory_ids.is_empty());
    // 2025-06-19T10:16:03Z, the TCB info's issue date (older than the QE identity's).
    assert_eq!(report.collateral_issued_at, 1_750_328_163);
    assert_ne!(report.measurements.mrtd.as_bytes(), &[0; 48]);
    assert_ne!(report.device_id.as_bytes(), &[0; 32]);
}

#[test]
fn a_td15_ex_quote_v5_verifies() {
    let report = tdx::verify_quote(
        &testdata("tdx_quote_td15ex"),
        &collateral("tdx_quote_td15ex_collateral.json"),
        1_791_504_000,
    )
    .unwrap();
    assert_eq!(report.tcb_status, TcbStatus::UpToDate);
}

#[test]
fn a_platform_below_every_tcb_level_is_rejected() {
    let err = tdx::verify_quote(
        &testdata("tdx_quote_outdated"),
        &collateral("tdx_quote_outdated_collateral.json"),
        1_771_459_200,
    )
    .unwrap_err();
    assert!(matches!(err, Error::TdxQuote(_)), "{err}");
    assert!(err.to_string().contains("No matching TCB level"), "{err}");
}

#[test]
fn an_sgx_quote_is_the_wrong_platform() {
    let err = tdx::verify_quote(
        &testdata("sgx_quote"),
        &collateral("sgx_quote_collateral.json"),
        SAMPLE_NOW,
    )
    .unwrap_err();
    assert!(matches!(err, Error::WrongPlatform(_)), "{err}");
}

#[test]
fn expired_collateral_is_rejected() {
    // 2026-11-21: the CRLs and TCB info of June 2025 have expired.
    let err = tdx::verify_quote(
        &testdata("tdx_quote"),
        &collateral("tdx_quote_collateral.json"),
        1_795_305_600,
    )
    .unwrap_err();
    assert!(matches!(err, Error::TdxQuote(_)), "{err}");
    // And collateral from the future is refused too.
    let err = tdx::verify_quote(
        &testdata("tdx_quote"),
        &collateral("tdx_quote_collateral.json"),
        1_700_000_000,
    )
    .unwrap_err();
    assert!(matches!(err, Error::TdxQuote(_)), "{err}");
}

#[test]
fn collateral_of_another_platform_is_rejected() {
    let err = tdx::verify_quote(
        &testdata("tdx_quote"),
        &collateral("tdx_quote_outdated_collateral.json"),
        SAMPLE_NOW,
    )
    .unwrap_err();
    assert!(matches!(err, Error::TdxQuote(_)), "{err}");
}

/// Flipping a bit anywhere — header, TD report, signature, QE report, certification data — or
/// truncating or extending the quote never verifies and never panics.
#[test]
fn every_corruption_is_rejected() {
    let quote = testdata("tdx_quote");
    let collateral = collateral("tdx_quote_collateral.json");
    let mut rejected = std::collections::BTreeMap::<String, usize>::new();
    // Every byte of the header, body and signature, and a stride through the certificates.
    let positions = 0..quote.len();
    for at in positions {
        let mut bad = quote.clone();
        bad[at] ^= 0x10;
        match tdx::verify_quote(&bad, &collateral, SAMPLE_NOW) {
            Ok(report) => panic!("flip at byte {at} accepted: {report:?}"),
            Err(e) => *rejected.entry(variant(&e)).or_default() += 1,
        }
    }
    // The signature data ends at byte 4936; the 70 bytes after it are zero padding, which a QE may
    // add and which carries nothing: cutting it off changes nothing, cutting anything else fails.
    for cut in [0, 1, 47, 48, 632, 1_000, 4_000, 4_935] {
        assert!(
            tdx::verify_quote(&quote[..cut], &collateral, SAMPLE_NOW).is_err(),
            "cut at {cut}"
        );
    }
    assert!(tdx::verify_quote(&quote[..4_936], &collateral, SAMPLE_NOW).is_ok());
    let mut longer = quote.clone();
    longer.extend_from_slice(&[0xff; 16]);
    let err = tdx::verify_quote(&longer, &collateral, SAMPLE_NOW).unwrap_err();
    assert!(matches!(err, Error::Malformed { .. }), "{err}");
    let huge = vec![0; tdx::MAX_QUOTE_LEN + 1];
    assert!(matches!(
        tdx::verify_quote(&huge, &collateral, SAMPLE_NOW),
        Err(Error::TooLarge { .. })
    ));
    assert!(rejected.contains_key("TdxQuote"), "{rejected:?}");
}

fn variant(e: &Error) -> String {
    format!("{e:?}")
        .split(['(', ' ', '{'])
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn the_pipeline_applies_policy_to_a_real_quote() {
    let evidence = Evidence {
        platform: Platform::Tdx,
        quote: testdata("tdx_quote"),
        vcek: Vec::new(),
        event_log: Vec::new(),
        gpu: None,
    };
    let with = Collateral {
        tdx: Some(collateral("tdx_quote_collateral.json")),

        ..Collateral::default()
    };
    let binding = Binding::ReportData(ReportData::new([0; 64]));

    let err = verify(
        &evidence,
        &binding,
        &Collateral::default(),
        &Policy::default(),
        SAMPLE_NOW,
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::MissingCollateral(Platform::Tdx)),
        "{err}"
    );

    let snp_only = Policy {
        platforms: vec![Platform::Snp],
        ..Policy::default()
    };
    let err = verify(&evidence, &binding, &with, &snp_only, SAMPLE_NOW).unwrap_err();
    assert!(
        matches!(err, Error::PlatformNotAllowed(Platform::Tdx)),
        "{err}"
    );

    let strict_age = Policy {
        max_collateral_age: std::time::Duration::from_secs(3600),
        ..Policy::default()
    };
    let err = verify(&evidence, &binding, &with, &strict_age, SAMPLE_NOW).unwrap_err();
    assert!(
        matches!(
            err,
            Error::StaleCollateral {
                issued: 1_750_328_163,
                ..
            }
        ),
        "{err}"
    );

    // Signature, collateral and TCB pass, and this TD's RTMR3 is zero (an empty log replays to
    // it); the report data is not the binding asked for.
    let err = verify(&evidence, &binding, &with, &Policy::default(), SAMPLE_NOW).unwrap_err();
    assert!(matches!(err, Error::ReportDataMismatch { .. }), "{err}");

    // Bound to what the quote does carry, everything passes but the boot identity: this TD never
    // recorded Covenant's boot events.
    let carried = tdx::verify_quote(&evidence.quote, with.tdx.as_ref().unwrap(), SAMPLE_NOW)
        .unwrap()
        .report_data;
    let err = verify(
        &evidence,
        &Binding::ReportData(carried),
        &with,
        &Policy::default(),
        SAMPLE_NOW,
    )
    .unwrap_err();
    assert!(matches!(err, Error::EventLog(_)), "{err}");

    // And a log that does not replay to RTMR3 is refused before the binding is looked at.
    let mut with_log = evidence.clone();
    with_log
        .event_log
        .push(covenant_attest::eventlog::RuntimeEvent::new(
            "app-id",
            vec![1; 20],
        ));
    let err = verify(&with_log, &binding, &with, &Policy::default(), SAMPLE_NOW).unwrap_err();
    assert!(matches!(err, Error::EventLogMismatch { .. }), "{err}");
}
