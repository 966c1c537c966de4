//! RA-TLS: TLS certificates that carry TEE evidence, and rustls verifiers that accept a peer only
//! when that evidence verifies under a policy and binds the certificate's own key.
//!
//! The certificate is self-signed with a fresh P-256 key; its report data is
//! `SHA-512("covenant-ratls-v1:" ‖ SubjectPublicKeyInfo DER)` and the evidence (its wire form) is
//! the value of the non-critical extension [`EVIDENCE_OID`]. Possession of the key is proven by
//! the TLS handshake itself, so a copied certificate is useless without the key.

use std::{fmt, sync::Arc};

use rustls::{
    DigitallySignedStruct, DistinguishedName, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{CryptoProvider, WebPkiSupportedAlgorithms},
    pki_types::{CertificateDer, ServerName, UnixTime},
    server::danger::{ClientCertVerified, ClientCertVerifier},
};
use sha2::Digest;
use x509_parser::{
    der_parser::oid::Oid,
    prelude::{FromDer, X509Certificate},
};
use zeroize::Zeroizing;

use crate::{
    Binding, Collateral, Error, Evidence, MAX_EVIDENCE_LEN, Policy, ReportData, Result,
    VerifiedEvidence, tls_report_data, verify,
};

/// The evidence extension: `2.25.15937584026913254737` (an integer under the UUID arc).
pub const EVIDENCE_OID: &[u64] = &[2, 25, 15_937_584_026_913_254_737];
/// The largest certificate accepted, in bytes.
pub const MAX_CERTIFICATE_LEN: usize = MAX_EVIDENCE_LEN + 4096;

/// A certificate with evidence, and its private key.
pub struct RaTlsIdentity {
    /// The certificate (DER).
    pub certificate_der: Vec<u8>,
    /// The private key (PKCS#8 DER), wiped on drop.
    pub private_key_der: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for RaTlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RaTlsIdentity")
            .field(
                "certificate_der",
                &format!("{} bytes", self.certificate_der.len()),
            )
            .finish_non_exhaustive()
    }
}

impl RaTlsIdentity {
    /// The certificate's key (SubjectPublicKeyInfo DER), whose report data its evidence binds.
    pub fn subject_public_key_info(&self) -> Result<Vec<u8>> {
        let (_, certificate) = X509Certificate::from_der(&self.certificate_der)
            .map_err(|e| Error::RaTls(format!("not a certificate: {e}")))?;
        Ok(certificate.public_key().raw.to_vec())
    }
}

/// Makes a fresh key pair, asks `evidence_for` for evidence over the key's report data, and
/// returns a self-signed certificate carrying it.
pub fn generate_identity(
    evidence_for: impl FnOnce(&ReportData) -> Result<Evidence>,
) -> Result<RaTlsIdentity> {
    let rcgen_error = |e: rcgen::Error| Error::RaTls(e.to_string());
    let key = rcgen::KeyPair::generate().map_err(rcgen_error)?;
    let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
    let evidence = evidence_for(&tls_report_data(&spki))?.to_bytes();
    if evidence.len() > MAX_EVIDENCE_LEN {
        return Err(Error::TooLarge {
            what: "evidence",
            limit: MAX_EVIDENCE_LEN,
            got: evidence.len(),
        });
    }
    let mut params =
        rcgen::CertificateParams::new(vec!["covenant-ratls".to_owned()]).map_err(rcgen_error)?;
    params
        .custom_extensions
        .push(rcgen::CustomExtension::from_oid_content(
            EVIDENCE_OID,
            evidence,
        ));
    let certificate = params.self_signed(&key).map_err(rcgen_error)?;
    Ok(RaTlsIdentity {
        certificate_der: certificate.der().to_vec(),
        private_key_der: Zeroizing::new(key.serialize_der()),
    })
}

/// Verifies an RA-TLS certificate: its evidence under `policy`, bound to its own key.
pub fn verify_certificate(
    certificate_der: &[u8],
    collateral: &Collateral,
    policy: &Policy,
    now: u64,
) -> Result<VerifiedEvidence> {
    ParsedCertificate::parse(certificate_der)?.verify(collateral, policy, now)
}

/// The evidence an RA-TLS certificate carries, *unverified*: for choosing the collateral to
/// verify it with (a TDX quote's platform), never for a decision.
pub fn certificate_evidence(certificate_der: &[u8]) -> Result<Evidence> {
    ParsedCertificate::parse(certificate_der).map(|p| p.evidence)
}

/// An RA-TLS certificate parsed once — its key and its evidence, *unverified* — for a caller
/// that must look at the evidence (to choose its collateral) before verifying it.
#[derive(Clone, Debug)]
pub struct ParsedCertificate {
    spki: Vec<u8>,
    evidence: Evidence,
}

impl ParsedCertificate {
    /// Parses `certificate_der` (within the size limit; one evidence extension).
    pub fn parse(certificate_der: &[u8]) -> Result<Self> {
        let (spki, evidence) = parse_certificate(certificate_der)?;
        Ok(Self { spki, evidence })
    }

    /// The evidence, not verified: never for a decision.
    pub fn evidence(&self) -> &Evidence {
        &self.evidence
    }

    /// What [`verify_certificate`] answers for the certificate.
    pub fn verify(
        &self,
        collateral: &Collateral,
        policy: &Policy,
        now: u64,
    ) -> Result<VerifiedEvidence> {
        verify(
            &self.evidence,
            &Binding::TlsKey(&self.spki),
            collateral,
            policy,
            now,
        )
    }
}

/// The certificate's SubjectPublicKeyInfo (DER) and its one evidence extension.
fn parse_certificate(certificate_der: &[u8]) -> Result<(Vec<u8>, Evidence)> {
    if certificate_der.len() > MAX_CERTIFICATE_LEN {
        return Err(Error::TooLarge {
            what: "certificate",
            limit: MAX_CERTIFICATE_LEN,
            got: certificate_der.len(),
        });
    }
    let (rest, certificate) = X509Certificate::from_der(certificate_der)
        .map_err(|e| Error::RaTls(format!("certificate does not parse: {e}")))?;
    if !rest.is_empty() {
        return Err(Error::RaTls("trailing bytes after the certificate".into()));
    }
    let spki = certificate.tbs_certificate.subject_pki.raw;
    let oid = Oid::from(EVIDENCE_OID).map_err(|_| Error::RaTls("invalid evidence OID".into()))?;
    let mut found = certificate.extensions().iter().filter(|e| e.oid == oid);
    let extension = found
        .next()
        .ok_or_else(|| Error::RaTls("no evidence extension".into()))?;
    if found.next().is_some() {
        return Err(Error::RaTls("more than one evidence extension".into()));
    }
    // The key that signs the handshake is the key the evidence binds.
    Ok((spki.to_vec(), Evidence::from_bytes(extension.value)?))
}

/// Decides whether a verified peer is one this service talks to (its app, compose hash, …).
pub type Authorizer =
    Arc<dyn Fn(&VerifiedEvidence) -> std::result::Result<(), String> + Send + Sync>;

/// A rustls verifier (for either side) that accepts a peer only with an RA-TLS certificate whose
/// evidence verifies under its policy and, if set, satisfies its [`Authorizer`].
pub struct RaTlsVerifier {
    policy: Policy,
    collateral: Collateral,
    fixed_time: Option<u64>,
    authorizer: Option<Authorizer>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for RaTlsVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RaTlsVerifier")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl RaTlsVerifier {
    /// A verifier with `policy` and `collateral`, checking handshake signatures with `provider`.
    pub fn new(policy: Policy, collateral: Collateral, provider: &CryptoProvider) -> Self {
        Self {
            policy,
            collateral,
            fixed_time: None,
            authorizer: None,
            algorithms: provider.signature_verification_algorithms,
        }
    }

    /// Accepts only peers for which `authorize` returns `Ok` (e.g. a given app id). Without one,
    /// any peer whose evidence verifies is accepted.
    pub fn with_authorizer(mut self, authorize: Authorizer) -> Self {
        self.authorizer = Some(authorize);
        self
    }

    /// Verifies as of `unix_seconds` instead of the handshake's time (tests pin it).
    pub fn with_fixed_time(mut self, unix_seconds: u64) -> Self {
        self.fixed_time = Some(unix_seconds);
        self
    }

    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        if !intermediates.is_empty() {
            return Err(reject(Error::RaTls(
                "RA-TLS certificates are self-signed; no chain expected".into(),
            )));
        }
        let now = self.fixed_time.unwrap_or(now.as_secs());
        let verified =
            verify_certificate(end_entity, &self.collateral, &self.policy, now).map_err(reject)?;
        match &self.authorizer {
            Some(authorize) => authorize(&verified)
                .map_err(|reason| reject(Error::RaTls(format!("peer not authorized: {reason}")))),
            None => Ok(()),
        }
    }
}

fn reject(error: Error) -> rustls::Error {
    rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
        Arc::new(error),
    )))
}

impl ServerCertVerifier for RaTlsVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity, intermediates, now)
            .map(|()| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

impl ClientCertVerifier for RaTlsVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity, intermediates, now)
            .map(|()| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A rustls server-certificate verifier for TLS 1.3 peers known by their key rather than by a
/// chain: it checks that the server signed the handshake with its certificate's key and, when
/// pinned, that the certificate's SubjectPublicKeyInfo hashes (SHA-256) to the pin. No chain,
/// name or validity check. Unpinned, it suits a client that sends nothing secret (the guest
/// registering its public evidence with a gateway); pinned, the gateway's hop to the key an
/// instance registered.
#[derive(Debug)]
pub struct KeyVerifier {
    pin: Option<[u8; 32]>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl KeyVerifier {
    /// Accepts any key that signed the handshake.
    pub fn any_key(provider: &CryptoProvider) -> Self {
        Self {
            pin: None,
            algorithms: provider.signature_verification_algorithms,
        }
    }

    /// Accepts only the key whose SubjectPublicKeyInfo hashes to `spki_sha256`.
    pub fn pinned(provider: &CryptoProvider, spki_sha256: [u8; 32]) -> Self {
        Self {
            pin: Some(spki_sha256),
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for KeyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(pin) = self.pin else {
            return Ok(ServerCertVerified::assertion());
        };
        let (_, certificate) = X509Certificate::from_der(end_entity)
            .map_err(|e| rustls::Error::General(format!("certificate: {e}")))?;
        let spki = certificate.tbs_certificate.subject_pki.raw;
        if <[u8; 32]>::from(sha2::Sha256::digest(spki)) == pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the server presented another key than the pinned one".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.3 only".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A rustls client-certificate verifier for servers that check RA-TLS evidence *after* the
/// handshake (so that a refused peer gets a clear HTTP error, and the policy can depend on the
/// chain's state at the decision): it accepts any single certificate within
/// [`MAX_CERTIFICATE_LEN`] and checks only that the client signed the handshake with that
/// certificate's key. Client certificates are optional (public endpoints need none); a server
/// using it must call [`verify_certificate`] on the peer's certificate before trusting it.
#[derive(Debug)]
pub struct PossessionVerifier {
    algorithms: WebPkiSupportedAlgorithms,
}

impl PossessionVerifier {
    /// A verifier checking handshake signatures with `provider`.
    pub fn new(provider: &CryptoProvider) -> Self {
        Self {
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ClientCertVerifier for PossessionVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if !intermediates.is_empty() {
            return Err(reject(Error::RaTls(
                "RA-TLS certificates are self-signed; no chain expected".into(),
            )));
        }
        if end_entity.len() > MAX_CERTIFICATE_LEN {
            return Err(reject(Error::TooLarge {
                what: "client certificate",
                limit: MAX_CERTIFICATE_LEN,
                got: end_entity.len(),
            }));
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
