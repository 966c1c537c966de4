use covenant_attest::{
    Error, ReportData,
    nvidia::{GpuEvidence, gpu_nonce, verify_gpu},
};

const NOW: u64 = 1_795_305_600;

fn sample() -> (GpuEvidence, [u8; 32]) {
    crate::gpu_sample()
}

#[test]
fn the_hopper_sample_verifies() {
    let (evidence, nonce) = sample();
    let verified = verify_gpu(&evidence, &nonce, NOW).unwrap();
    assert_eq!(verified.measurements.len(), 64);
    assert!(
        verified
            .measurements
            .iter()
            .all(|(_, digest)| digest.len() == 48)
    );
    assert_eq!(hex::encode(&verified.fwid)[..8], *"f5c384ae");
    assert_eq!(verified.driver_version.as_deref(), Some("550.90.07"));
}

#[test]
fn another_nonce_is_refused() {
    let (evidence, _) = sample();
    let bound = gpu_nonce(&ReportData::new([1; 64]));
    let err = verify_gpu(&evidence, &bound, NOW).unwrap_err();
    assert!(matches!(err, Error::Gpu { what: "nonce", .. }), "{err}");
}

#[test]
fn every_flip_in_the_signed_report_is_refused() {
    let (evidence, nonce) = sample();
    for at in (0..evidence.report.len()).step_by(5) {
        let mut bad = evidence.clone();
        bad.report[at] ^= 0x01;
        assert!(
            verify_gpu(&bad, &nonce, NOW).is_err(),
            "flip at byte {at} accepted"
        );
    }
    let mut truncated = evidence.clone();
    truncated.report.pop();
    assert!(matches!(
        verify_gpu(&truncated, &nonce, NOW),
        Err(Error::Malformed { .. } | Error::Gpu { .. })
    ));
    let mut extended = evidence;
    extended.report.push(0);
    assert!(verify_gpu(&extended, &nonce, NOW).is_err());
}

#[test]
fn a_broken_or_foreign_chain_is_refused() {
    let (evidence, nonce) = sample();
    // Drop the root: the chain no longer ends at the pinned CA.
    let certs: Vec<&str> = evidence
        .certificate_chain
        .split_inclusive("-----END CERTIFICATE-----\n")
        .collect();
    let mut short = evidence.clone();
    short.certificate_chain = certs[..certs.len() - 1].concat();
    let err = verify_gpu(&short, &nonce, NOW).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Gpu {
                what: "certificate chain",
                ..
            }
        ),
        "{err}"
    );
    // Swap two intermediates: a link no longer verifies.
    let mut swapped = evidence.clone();
    swapped.certificate_chain = [certs[0], certs[2], certs[1], certs[3], certs[4]].concat();
    assert!(matches!(
        verify_gpu(&swapped, &nonce, NOW),
        Err(Error::Gpu { .. })
    ));
    // Before the certificates were issued.
    let err = verify_gpu(&evidence, &nonce, 1_500_000_000).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Gpu {
                what: "certificate validity",
                ..
            }
        ),
        "{err}"
    );
    let mut garbage = evidence;
    garbage.certificate_chain = "not a pem".into();
    assert!(verify_gpu(&garbage, &nonce, NOW).is_err());
}
