use std::sync::Arc;

use covenant_attest::{
    AppId, Collateral, ComposeHash, DeviceId, Error, Evidence, InstanceId, Measurement,
    OsImageHash, Platform, Policy, ReportData,
    eventlog::RuntimeIdentity,
    ratls::{self, RaTlsIdentity, RaTlsVerifier},
    simulator::{SimulatedTee, SimulatorRootKey},
};
use rustls::{
    ClientConfig, ClientConnection, ServerConfig, ServerConnection,
    crypto::{CryptoProvider, ring},
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
};

const NOW: u64 = 1_795_305_600;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

fn tee(app: u8) -> SimulatedTee {
    let mut tee = SimulatedTee::new(
        SimulatorRootKey::development(),
        DeviceId::new([app; 32]),
        Measurement::new([1; 48]),
        [Measurement::new([2; 48]); 3],
    );
    let identity = RuntimeIdentity {
        app_id: AppId::new([app; 20]),
        compose_hash: ComposeHash::new([3; 32]),
        instance_id: InstanceId::new([4; 20]),
        key_provider: vec![5; 20],
        os_image_hash: OsImageHash::new([6; 32]),
        gpu_evidence_hash: None,
    };
    tee.record_boot(&identity);
    tee
}

/// An RA-TLS identity whose evidence binds `report_data` (normally: the certificate's own key).
fn identity_with(tee: &SimulatedTee, override_report_data: Option<ReportData>) -> RaTlsIdentity {
    ratls::generate_identity(|report_data| {
        Ok(Evidence {
            platform: Platform::Simulated,
            quote: tee.quote(&override_report_data.unwrap_or(*report_data)),
            vcek: Vec::new(),
            event_log: tee.event_log().to_vec(),
            gpu: None,
        })
    })
    .unwrap()
}

fn dev_policy() -> Policy {
    Policy {
        simulator_root: Some(SimulatorRootKey::development().root()),
        ..Policy::default()
    }
}

fn verifier(policy: Policy) -> Arc<RaTlsVerifier> {
    Arc::new(base_verifier(policy))
}

fn base_verifier(policy: Policy) -> RaTlsVerifier {
    RaTlsVerifier::new(policy, Collateral::default(), &provider()).with_fixed_time(NOW)
}

fn chain(id: &RaTlsIdentity) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    (
        vec![CertificateDer::from(id.certificate_der.clone())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(id.private_key_der.to_vec())),
    )
}

/// A real rustls handshake, in memory: mutual RA-TLS.
fn handshake(
    server_id: &RaTlsIdentity,
    server_policy: Policy,
    client_id: &RaTlsIdentity,
    client_policy: Policy,
) -> Result<(ClientConnection, ServerConnection), rustls::Error> {
    let (certs, key) = chain(server_id);
    let server = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier(server_policy))
        .with_single_cert(certs, key)?;
    let (certs, key) = chain(client_id);
    let client = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier(client_policy))
        .with_client_auth_cert(certs, key)?;
    drive(client, server)
}

/// Runs a handshake between `client` and `server` in memory.
fn drive(
    client: ClientConfig,
    server: ServerConfig,
) -> Result<(ClientConnection, ServerConnection), rustls::Error> {
    let mut c = ClientConnection::new(Arc::new(client), "covenant-ratls".try_into().unwrap())?;
    let mut s = ServerConnection::new(Arc::new(server))?;
    for _ in 0..16 {
        let mut buf = Vec::new();
        c.write_tls(&mut buf).unwrap();
        s.read_tls(&mut &buf[..]).unwrap();
        s.process_new_packets()?;
        let mut buf = Vec::new();
        s.write_tls(&mut buf).unwrap();
        c.read_tls(&mut &buf[..]).unwrap();
        c.process_new_packets()?;
        if !c.is_handshaking() && !s.is_handshaking() {
            return Ok((c, s));
        }
    }
    panic!("handshake did not finish");
}

/// The attestation error inside a rustls certificate rejection.
fn attest_error(err: &rustls::Error) -> &Error {
    match err {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => other
            .0
            .downcast_ref::<Error>()
            .unwrap_or_else(|| panic!("not an attestation error: {err}")),
        _ => panic!("not a certificate rejection: {err}"),
    }
}

#[test]
fn mutual_ra_tls_succeeds_and_exposes_the_peers_identity() {
    let (server_tee, client_tee) = (tee(0xaa), tee(0xbb));
    let (server_id, client_id) = (
        identity_with(&server_tee, None),
        identity_with(&client_tee, None),
    );
    let (_, server) = handshake(&server_id, dev_policy(), &client_id, dev_policy()).unwrap();
    let peer = &server.peer_certificates().unwrap()[0];
    let verified =
        ratls::verify_certificate(peer, &Collateral::default(), &dev_policy(), NOW).unwrap();
    assert_eq!(verified.runtime().app_id, AppId::new([0xbb; 20]));
}

#[test]
fn evidence_bound_to_another_key_is_refused() {
    let server_tee = tee(0xaa);
    let stolen = identity_with(&server_tee, Some(ReportData::new([9; 64])));
    let client_id = identity_with(&tee(0xbb), None);
    let err = handshake(&stolen, dev_policy(), &client_id, dev_policy()).unwrap_err();
    assert!(
        matches!(attest_error(&err), Error::ReportDataMismatch { .. }),
        "{err}"
    );
}

#[test]
fn simulated_evidence_is_refused_by_the_production_policy() {
    let server_id = identity_with(&tee(0xaa), None);
    let client_id = identity_with(&tee(0xbb), None);
    let err = handshake(&server_id, dev_policy(), &client_id, Policy::default()).unwrap_err();
    assert!(
        matches!(attest_error(&err), Error::SimulatedNotAllowed),
        "{err}"
    );
    let err = handshake(&server_id, Policy::default(), &client_id, dev_policy()).unwrap_err();
    assert!(
        matches!(attest_error(&err), Error::SimulatedNotAllowed),
        "{err}"
    );
}

#[test]
fn a_certificate_without_evidence_is_refused() {
    let plain = rcgen::generate_simple_self_signed(vec!["covenant-ratls".to_owned()]).unwrap();
    let plain = RaTlsIdentity {
        certificate_der: plain.cert.der().to_vec(),
        private_key_der: zeroize::Zeroizing::new(plain.signing_key.serialize_der()),
    };
    let client_id = identity_with(&tee(0xbb), None);
    let err = handshake(&plain, dev_policy(), &client_id, dev_policy()).unwrap_err();
    assert!(
        matches!(attest_error(&err), Error::RaTls(m) if m.contains("no evidence extension")),
        "{err}"
    );
}

#[test]
fn a_copied_certificate_without_its_key_fails_the_handshake() {
    let genuine = identity_with(&tee(0xaa), None);
    let other = identity_with(&tee(0xaa), None);
    let replayed = RaTlsIdentity {
        certificate_der: genuine.certificate_der.clone(),
        private_key_der: other.private_key_der.clone(),
    };
    let client_id = identity_with(&tee(0xbb), None);
    // rustls refuses a key that does not match the certificate; if it did not, the peer would
    // reject the handshake signature.
    assert!(handshake(&replayed, dev_policy(), &client_id, dev_policy()).is_err());
}

#[test]
fn malformed_certificates_are_refused_with_a_reason() {
    let id = identity_with(&tee(0xaa), None);
    let policy = dev_policy();
    for at in (0..id.certificate_der.len()).step_by(11) {
        let mut bad = id.certificate_der.clone();
        bad[at] ^= 0x01;
        // Never a panic; a flip in the signed certificate body changes the key or the evidence.
        let _ = ratls::verify_certificate(&bad, &Collateral::default(), &policy, NOW);
    }
    assert!(ratls::verify_certificate(&[], &Collateral::default(), &policy, NOW).is_err());
    let mut trailing = id.certificate_der.clone();
    trailing.push(0);
    assert!(ratls::verify_certificate(&trailing, &Collateral::default(), &policy, NOW).is_err());
    let huge = vec![0; ratls::MAX_CERTIFICATE_LEN + 1];
    assert!(ratls::verify_certificate(&huge, &Collateral::default(), &policy, NOW).is_err());
}

#[test]
fn an_authorizer_restricts_which_verified_peers_are_accepted() {
    let server_id = identity_with(&tee(0xaa), None);
    let client_id = identity_with(&tee(0xbb), None);
    let only_app = |app: u8| -> ratls::Authorizer {
        Arc::new(move |peer: &covenant_attest::VerifiedEvidence| {
            if peer.runtime().app_id == AppId::new([app; 20]) {
                Ok(())
            } else {
                Err("another app".into())
            }
        })
    };
    let (certs, key) = chain(&server_id);
    let check = |authorizer: ratls::Authorizer| {
        let verifier = Arc::new(base_verifier(dev_policy()).with_authorizer(authorizer));
        let (c_certs, c_key) = chain(&client_id);
        let server = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs.clone(), key.clone_key())
            .unwrap();
        let client = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(verifier_for_client())
            .with_client_auth_cert(c_certs, c_key)
            .unwrap();
        drive(client, server)
    };
    assert!(check(only_app(0xbb)).is_ok());
    let err = check(only_app(0xcc)).unwrap_err();
    assert!(
        matches!(attest_error(&err), Error::RaTls(m) if m.contains("peer not authorized")),
        "{err}"
    );
}

fn verifier_for_client() -> Arc<RaTlsVerifier> {
    verifier(dev_policy())
}
