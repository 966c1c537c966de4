use covenant_attest::{
    Error, ReportData,
    nvidia::{GpuEvidence, gpu_nonce, verify_gpu},
    simulated_gpu::{BLOCKS, SimulatedGpu},
};

const NOW: u64 = 1_795_305_600;

fn sample() -> (GpuEvidence, [u8; 32]) {
    crate::gpu_sample()
}

#[test]
fn the_hopper_sample_verifies() {
    let (evidence, nonce) = sample();
    let verified = verify_gpu(&evidence, &nonce, NOW, false).unwrap();
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
    let err = verify_gpu(&evidence, &bound, NOW, false).unwrap_err();
    assert!(matches!(err, Error::Gpu { what: "nonce", .. }), "{err}");
}

#[test]
fn every_flip_in_the_signed_report_is_refused() {
    let (evidence, nonce) = sample();
    for at in (0..evidence.report.len()).step_by(5) {
        let mut bad = evidence.clone();
        bad.report[at] ^= 0x01;
        assert!(
            verify_gpu(&bad, &nonce, NOW, false).is_err(),
            "flip at byte {at} accepted"
        );
    }
    let mut truncated = evidence.clone();
    truncated.report.pop();
    assert!(matches!(
        verify_gpu(&truncated, &nonce, NOW, false),
        Err(Error::Malformed { .. } | Error::Gpu { .. })
    ));
    let mut extended = evidence;
    extended.report.push(0);
    assert!(verify_gpu(&extended, &nonce, NOW, false).is_err());
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
    let err = verify_gpu(&short, &nonce, NOW, false).unwrap_err();
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
        verify_gpu(&swapped, &nonce, NOW, false),
        Err(Error::Gpu { .. })
    ));
    // Before the certificates were issued.
    let err = verify_gpu(&evidence, &nonce, 1_500_000_000, false).unwrap_err();
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
    assert!(verify_gpu(&garbage, &nonce, NOW, false).is_err());
}

fn simulated_gpu(seed: u8) -> SimulatedGpu {
    SimulatedGpu::new(&[seed; 32], [0xf1; 48], [[0x33; 48]; BLOCKS]).unwrap()
}

#[test]
fn a_simulated_gpu_verifies_only_where_simulation_is_accepted() {
    let nonce = gpu_nonce(&ReportData::new([9; 64]));
    let evidence = simulated_gpu(1).evidence(&nonce);
    let verified = verify_gpu(&evidence, &nonce, NOW, true).unwrap();
    assert_eq!(verified.measurements.len(), BLOCKS);
    assert_eq!(verified.fwid, vec![0xf1; 48]);
    assert_eq!(
        verified.driver_version.as_deref(),
        Some(covenant_attest::simulated_gpu::DRIVER_VERSION)
    );
    let err = verify_gpu(&evidence, &nonce, NOW, false).unwrap_err();
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
    // The same checks as a real GPU's: another nonce, any flipped byte.
    let other = gpu_nonce(&ReportData::new([8; 64]));
    let err = verify_gpu(&evidence, &other, NOW, true).unwrap_err();
    assert!(matches!(err, Error::Gpu { what: "nonce", .. }), "{err}");
    for at in 0..evidence.report.len() {
        let mut bad = evidence.clone();
        bad.report[at] ^= 0x01;
        assert!(
            verify_gpu(&bad, &nonce, NOW, true).is_err(),
            "flip at byte {at} accepted"
        );
    }
}

#[test]
fn a_simulated_leaf_under_another_root_or_another_devices_key_is_refused() {
    let nonce = gpu_nonce(&ReportData::new([9; 64]));
    let one = simulated_gpu(1).evidence(&nonce);
    let two = simulated_gpu(2).evidence(&nonce);
    assert_ne!(one.certificate_chain, two.certificate_chain);
    // Device two's report with device one's certificate: the signature does not verify.
    let mut mixed = two.clone();
    mixed.certificate_chain = one.certificate_chain.clone();
    let err = verify_gpu(&mixed, &nonce, NOW, true).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Gpu {
                what: "signature",
                ..
            }
        ),
        "{err}"
    );
    // A simulated leaf presented under the real NVIDIA root: the link does not verify.
    let (real, _) = sample();
    let leaf = one
        .certificate_chain
        .split_inclusive("-----END CERTIFICATE-----\n")
        .next()
        .unwrap()
        .to_owned();
    let real_root = real
        .certificate_chain
        .split_inclusive("-----END CERTIFICATE-----\n")
        .last()
        .unwrap();
    let mut rerooted = one;
    rerooted.certificate_chain = format!("{leaf}{real_root}");
    let err = verify_gpu(&rerooted, &nonce, NOW, true).unwrap_err();
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
}
