//! The certificates the gateway presents for the names it terminates TLS for.
//!
//! A certificate exists only for a name the gateway routes: the public listener asks for one
//! ([`Certificates::ensure`]) after the name resolved to a routed app, never for a name a
//! client merely sent, so anonymous traffic cannot make the gateway issue (or order) anything.
//! The source here is a **development CA**, made at start-up, whose certificate is written
//! where clients of a development setup can trust it (`--dev-ca-out`); every leaf is a fresh
//! P-256 key for one name, valid for 30 days.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::{
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use time::{Duration, OffsetDateTime};

/// Leaves issued before the cache starts over (a bound, not a policy: only routed names get
/// here).
const MAX_HOSTS: usize = 65_536;

/// A certificate authority for development: its key lives only in this process.
pub struct DevCa {
    issuer: Issuer<'static, KeyPair>,
    certificate_pem: String,
    certificate_der: Vec<u8>,
}

impl std::fmt::Debug for DevCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCa").finish_non_exhaustive()
    }
}

impl DevCa {
    /// A new CA named for `base_domain`.
    pub fn generate(base_domain: &str) -> Result<Self, rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut name = DistinguishedName::new();
        name.push(
            DnType::CommonName,
            format!("Covenant gateway development CA for {base_domain}"),
        );
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(365);
        let certificate = params.self_signed(&key)?;
        Ok(Self {
            certificate_pem: certificate.pem(),
            certificate_der: certificate.der().to_vec(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate, PEM.
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// Issues a certificate for `host` with a fresh key.
    fn issue(&self, host: &str) -> Result<CertifiedKey, String> {
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let mut params =
            CertificateParams::new(vec![host.to_owned()]).map_err(|e| e.to_string())?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, host);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(30);
        let leaf = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| e.to_string())?;
        certified(
            vec![leaf.der().to_vec(), self.certificate_der.clone()],
            key.serialize_der(),
        )
    }
}

/// A certificate chain and its key as rustls serves them.
fn certified(chain: Vec<Vec<u8>>, key_pkcs8: Vec<u8>) -> Result<CertifiedKey, String> {
    let key = rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(rustls::pki_types::PrivateKeyDer::Pkcs8(key_pkcs8.into()))
        .map_err(|e| e.to_string())?;
    Ok(CertifiedKey::new(
        chain.into_iter().map(Into::into).collect(),
        key,
    ))
}

/// The certificates per name, and where new ones come from.
#[derive(Debug)]
pub struct Certificates {
    ca: DevCa,
    by_host: RwLock<HashMap<String, Arc<CertifiedKey>>>,
}

impl Certificates {
    /// Certificates issued by `ca`.
    pub fn new(ca: DevCa) -> Self {
        Self {
            ca,
            by_host: RwLock::new(HashMap::new()),
        }
    }

    /// The development CA.
    pub fn dev_ca(&self) -> &DevCa {
        &self.ca
    }

    /// Makes sure a certificate for `host` (a canonical name the gateway routes) exists.
    pub fn ensure(&self, host: &str) -> Result<(), String> {
        if self
            .by_host
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains_key(host)
        {
            return Ok(());
        }
        let issued = Arc::new(self.ca.issue(host)?);
        let mut by_host = self
            .by_host
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if by_host.len() >= MAX_HOSTS {
            by_host.clear();
        }
        by_host.entry(host.to_owned()).or_insert(issued);
        Ok(())
    }

    /// The certificate for `host`, if one was made.
    pub fn get(&self, host: &str) -> Option<Arc<CertifiedKey>> {
        self.by_host
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(host)
            .cloned()
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = crate::names::canonical(hello.server_name()?).ok()?;
        self.get(&name)
    }
}

#[cfg(test)]
mod tests {
    use rustls::client::danger::ServerCertVerifier;

    use super::*;

    #[test]
    fn a_certificate_exists_only_for_names_asked_for_and_chains_to_the_ca() {
        let certificates = Certificates::new(DevCa::generate("apps.test").unwrap());
        assert!(certificates.get("a.apps.test").is_none());
        certificates.ensure("a.apps.test").unwrap();
        let issued = certificates.get("a.apps.test").unwrap();
        assert!(certificates.get("b.apps.test").is_none());
        // Asking again keeps the same key.
        certificates.ensure("a.apps.test").unwrap();
        assert!(Arc::ptr_eq(
            &issued,
            &certificates.get("a.apps.test").unwrap()
        ));

        let mut roots = rustls::RootCertStore::empty();
        let (_, ca) = rustls::pki_types::pem::PemObject::from_pem_slice(
            certificates.dev_ca().certificate_pem().as_bytes(),
        )
        .map(|der: rustls::pki_types::CertificateDer<'static>| ((), der))
        .unwrap();
        roots.add(ca).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let now = rustls::pki_types::UnixTime::now();
        let check = |name: &str| {
            verifier.verify_server_cert(
                &issued.cert[0],
                &issued.cert[1..],
                &rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap(),
                &[],
                now,
            )
        };
        assert!(check("a.apps.test").is_ok());
        assert!(check("b.apps.test").is_err());
    }
}
