//! The certificates the gateway presents for the names it terminates TLS for.
//!
//! A certificate exists only for a name the gateway routes: the public listener asks for one
//! ([`Certificates::ensure`]) after the name resolved to a routed app, never for a name a
//! client merely sent, so anonymous traffic cannot make the gateway issue (or order) anything.
//! Two sources ([`Source`]):
//! - an **ACME CA** when the gateway runs as an app with a directory configured: the key is made
//!   here, attested (evidence over its SubjectPublicKeyInfo, stored before the key serves
//!   anyone), the certificate ordered under the gateway app's account ([`crate::acme`]) by one
//!   node at a time (an advisory lock per name in the shared database), and stored with its key
//!   sealed, so every other node loads it instead of ordering again;
//! - a **development CA**, made at start-up, whose certificate is written where clients of a
//!   development setup can trust it (`--dev-ca-out`); every leaf is a fresh P-256 key for one
//!   name, valid for 30 days.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration as StdDuration,
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

use crate::{
    acme::Acme,
    identity::Identity,
    store::{KeyAttestation, Store, StoredCertificate},
};

/// Leaves issued before the cache starts over (a bound, not a policy: only routed names get
/// here).
const MAX_HOSTS: usize = 65_536;

/// A certificate authority for development: its key lives only in this process.
pub struct DevCa {
    issuer: Issuer<'static, KeyPair>,
    certificate_pem: String,
    certificate_der: Vec<u8>,
    /// When the gateway runs as an app: every key it issues is attested (and the attestation
    /// stored) before it serves, as with ACME, so verifiers can check a development gateway's
    /// keys too.
    attested_by: Option<(Arc<Identity>, Store)>,
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
            attested_by: None,
        })
    }

    /// The same CA, attesting each key it issues through `identity` into `store` first.
    pub fn attested_by(mut self, identity: Arc<Identity>, store: Store) -> Self {
        self.attested_by = Some((identity, store));
        self
    }

    /// A certificate for `host` with a fresh key, attested first when the gateway is an app.
    async fn issue_attested(&self, host: &str) -> Result<CertifiedKey, String> {
        let (certified, spki) = self.issue(host)?;
        if let Some((identity, store)) = &self.attested_by {
            let evidence = identity
                .attest(&crate::identity::certificate_key_report_data(&spki))
                .await?;
            store
                .put_attestation(&KeyAttestation {
                    spki_sha256: crate::identity::sha256(&spki),
                    spki,
                    host: host.to_owned(),
                    instance_id: identity.instance_id()?,
                    evidence: serde_json::to_value(&evidence).map_err(|e| e.to_string())?,
                    created_at: unix_now(),
                })
                .await
                .map_err(|e| format!("the gateway database: {e}"))?;
        }
        Ok(certified)
    }

    /// The CA certificate, PEM.
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// Issues a certificate for `host` with a fresh key; the key's SubjectPublicKeyInfo with it.
    fn issue(&self, host: &str) -> Result<(CertifiedKey, Vec<u8>), String> {
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
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
        let certified = certified(
            vec![leaf.der().to_vec(), self.certificate_der.clone()],
            key.serialize_der(),
        )?;
        Ok((certified, spki))
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

/// Where certificates come from.
#[derive(Debug)]
pub enum Source {
    /// The development CA (no ACME directory configured).
    Dev(Box<DevCa>),
    /// The ACME CA, under the gateway app's account; certificates shared through the database.
    Acme(AcmeSource),
}

/// What ordering from an ACME CA takes.
#[derive(Debug)]
pub struct AcmeSource {
    /// The account.
    pub acme: Acme,
    /// The gateway as an app: attests and seals the keys.
    pub identity: Arc<Identity>,
    /// The shared database.
    pub store: Store,
    /// `covenant_gateway_certificates_total`.
    pub installed: prometheus::IntCounterVec,
}

/// How long a node waits for another node's order of the same name.
const ORDER_WAIT: StdDuration = StdDuration::from_secs(120);

/// A certificate as served, and when to replace it.
#[derive(Debug, Clone)]
struct Installed {
    key: Arc<CertifiedKey>,
    /// Two thirds into its lifetime: from then on a connection for the name starts a renewal
    /// (the certificate is still served meanwhile).
    renew_at: i64,
    /// Its notAfter: from then on it is never served.
    expires_at: i64,
}

/// How long after a failed renewal the next is tried.
const RENEW_RETRY: StdDuration = StdDuration::from_secs(60);

/// The certificates per name, and where new ones come from.
#[derive(Debug)]
pub struct Certificates {
    source: Source,
    by_host: RwLock<HashMap<String, Installed>>,
    ordering: tokio::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Names being renewed in the background, and since when.
    renewing: std::sync::Mutex<HashMap<String, std::time::Instant>>,
}

fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

impl Certificates {
    /// Certificates from `source`.
    pub fn new(source: Source) -> Self {
        Self {
            source,
            by_host: RwLock::new(HashMap::new()),
            ordering: tokio::sync::Mutex::new(HashMap::new()),
            renewing: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The source.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Makes sure a certificate for `host` (a canonical name the gateway routes) can be
    /// served: made by the development CA, or — with ACME — loaded from the shared database,
    /// or ordered by this node while it holds the name's lock (any other node waits and loads
    /// the result). One two thirds into its lifetime is still served while a renewal runs in
    /// the background; an expired one is never served.
    pub async fn ensure(self: &Arc<Self>, host: &str) -> Result<(), String> {
        let now = unix_now();
        match self.installed(host) {
            Some(i) if now < i.renew_at => return Ok(()),
            Some(i) if now < i.expires_at => {
                self.renew_in_background(host);
                return Ok(());
            }
            _ => {}
        }
        self.obtain(host).await
    }

    fn renew_in_background(self: &Arc<Self>, host: &str) {
        {
            let mut renewing = self
                .renewing
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if renewing
                .get(host)
                .is_some_and(|since| since.elapsed() < RENEW_RETRY)
            {
                return;
            }
            renewing.insert(host.to_owned(), std::time::Instant::now());
        }
        let (this, host) = (self.clone(), host.to_owned());
        tokio::spawn(async move {
            tracing::info!(target: "gateway::acme", host, "renewing a certificate");
            if this.obtain(&host).await.is_ok() {
                this.renewing
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(&host);
            }
        });
    }

    /// A certificate for `host` not due for renewal, from the source.
    async fn obtain(&self, host: &str) -> Result<(), String> {
        let installed = match &self.source {
            Source::Dev(ca) => installed(ca.issue_attested(host).await?)?,
            Source::Acme(source) => {
                let mine = {
                    let mut ordering = self.ordering.lock().await;
                    ordering.entry(host.to_owned()).or_default().clone()
                };
                let _turn = mine.lock().await;
                if self
                    .installed(host)
                    .is_some_and(|i| unix_now() < i.renew_at)
                {
                    return Ok(());
                }
                let issued = source.obtain(host).await;
                self.ordering.lock().await.remove(host);
                issued.inspect_err(|e| {
                    source.installed.with_label_values(&["failed"]).inc();
                    tracing::warn!(target: "gateway::acme", host, error = %e, "no certificate");
                })?
            }
        };
        self.install(host, installed);
        Ok(())
    }

    fn installed(&self, host: &str) -> Option<Installed> {
        self.by_host
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(host)
            .cloned()
    }

    fn install(&self, host: &str, installed: Installed) {
        let mut by_host = self
            .by_host
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if by_host.len() >= MAX_HOSTS {
            by_host.clear();
        }
        by_host.insert(host.to_owned(), installed);
    }

    /// The certificate to serve for `host`: made, and not expired.
    pub fn get(&self, host: &str) -> Option<Arc<CertifiedKey>> {
        self.installed(host)
            .filter(|i| unix_now() < i.expires_at)
            .map(|i| i.key)
    }

    /// The TLS-ALPN-01 answer for `host` (certificate and key), while an order of it is in
    /// progress (any node's).
    pub async fn challenge(
        &self,
        host: &str,
    ) -> Option<(
        rustls::pki_types::CertificateDer<'static>,
        rustls::pki_types::PrivatePkcs8KeyDer<'static>,
    )> {
        let Source::Acme(source) = &self.source else {
            return None;
        };
        match source.store.challenge(host).await {
            Ok(Some(digest)) => crate::acme::challenge_certificate(host, &digest)
                .map_err(|e| tracing::warn!(target: "gateway::acme", host, error = %e, "challenge"))
                .ok(),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(target: "gateway::acme", host, error = %e, "challenge lookup");
                None
            }
        }
    }
}

impl AcmeSource {
    /// `host`'s certificate from the database, or ordered under the name's lock.
    async fn obtain(&self, host: &str) -> Result<Installed, String> {
        let now = unix_now();
        // A stored certificate another node ordered (or renewed) counts until it is due.
        let usable = |c: &StoredCertificate| {
            pem_chain(&c.chain_pem)
                .ok()
                .and_then(|chain| chain.first().and_then(|leaf| lifetime(leaf).ok()))
                .is_some_and(|(not_before, not_after)| now < renew_at(not_before, not_after))
        };
        let db = |e: sqlx::Error| format!("the gateway database: {e}");
        if let Some(stored) = self.store.certificate(host).await.map_err(db)?
            && usable(&stored)
        {
            return self.load(&stored);
        }
        let mut lock = self.store.lock_order(host, ORDER_WAIT).await.map_err(db)?;
        if let Some(stored) = lock.stored().await.map_err(db)?
            && usable(&stored)
        {
            return self.load(&stored);
        }
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
        // The attestation is stored before the key can serve anyone.
        let evidence = self
            .identity
            .attest(&crate::identity::certificate_key_report_data(&spki))
            .await?;
        self.store
            .put_attestation(&KeyAttestation {
                spki_sha256: crate::identity::sha256(&spki),
                spki: spki.clone(),
                host: host.to_owned(),
                instance_id: self.identity.instance_id()?,
                evidence: serde_json::to_value(&evidence).map_err(|e| e.to_string())?,
                created_at: now,
            })
            .await
            .map_err(db)?;
        let mut params =
            CertificateParams::new(vec![host.to_owned()]).map_err(|e| e.to_string())?;
        params.distinguished_name = DistinguishedName::new();
        let csr = params.serialize_request(&key).map_err(|e| e.to_string())?;
        tracing::info!(target: "gateway::acme", host, "ordering a certificate");
        let chain_pem = self.acme.order(host, csr.der(), &self.store).await?;
        let chain = pem_chain(&chain_pem)?;
        let leaf = chain.first().ok_or("the CA returned no certificate")?;
        if crate::instance::spki(leaf)? != spki {
            return Err("the CA's certificate is not for the key this node made".into());
        }
        let stored = StoredCertificate {
            host: host.to_owned(),
            not_after: not_after(leaf)?,
            key_sealed: self.identity.seal(host, &key.serialize_der())?,
            spki_sha256: crate::identity::sha256(&spki),
            account_uri: self.acme.account_uri().to_owned(),
            chain_pem,
        };
        lock.commit(&stored).await.map_err(db)?;
        tracing::info!(target: "gateway::acme", host, "certificate ordered");
        self.installed.with_label_values(&["ordered"]).inc();
        installed(certified(chain, key.serialize_der())?)
    }

    fn load(&self, stored: &StoredCertificate) -> Result<Installed, String> {
        let key = self.identity.open(&stored.host, &stored.key_sealed)?;
        let loaded = installed(certified(pem_chain(&stored.chain_pem)?, key)?)?;
        self.installed.with_label_values(&["loaded"]).inc();
        Ok(loaded)
    }
}

/// The certificates of a PEM chain (DER).
pub fn pem_chain(pem: &str) -> Result<Vec<Vec<u8>>, String> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(|c| c.map(|c| c.to_vec()).map_err(|e| e.to_string()))
        .collect()
}

/// A certificate's notBefore and notAfter (Unix seconds).
pub fn lifetime(der: &[u8]) -> Result<(i64, i64), String> {
    use x509_parser::prelude::FromDer;
    let (_, certificate) = x509_parser::certificate::X509Certificate::from_der(der)
        .map_err(|e| format!("not a certificate: {e}"))?;
    let validity = certificate.validity();
    Ok((
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    ))
}

/// A certificate's notAfter (Unix seconds).
fn not_after(der: &[u8]) -> Result<i64, String> {
    lifetime(der).map(|(_, not_after)| not_after)
}

/// When a certificate valid from `not_before` to `not_after` is renewed: two thirds into it.
fn renew_at(not_before: i64, not_after: i64) -> i64 {
    not_before + (not_after - not_before).max(0) * 2 / 3
}

/// `key` as served, with its renewal and expiry times from its leaf.
fn installed(key: CertifiedKey) -> Result<Installed, String> {
    let leaf = key.cert.first().ok_or("an empty certificate chain")?;
    let (not_before, not_after) = lifetime(leaf)?;
    Ok(Installed {
        key: Arc::new(key),
        renew_at: renew_at(not_before, not_after),
        expires_at: not_after,
    })
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
    fn a_certificate_is_renewed_two_thirds_into_its_lifetime() {
        assert_eq!(renew_at(1_000, 1_090), 1_060);
        assert_eq!(renew_at(1_000, 900), 1_000);
    }

    #[tokio::test]
    async fn a_certificate_exists_only_for_names_asked_for_and_chains_to_the_ca() {
        let certificates = Arc::new(Certificates::new(Source::Dev(Box::new(
            DevCa::generate("apps.test").unwrap(),
        ))));
        assert!(certificates.get("a.apps.test").is_none());
        certificates.ensure("a.apps.test").await.unwrap();
        let issued = certificates.get("a.apps.test").unwrap();
        assert!(certificates.get("b.apps.test").is_none());
        // Asking again keeps the same key.
        certificates.ensure("a.apps.test").await.unwrap();
        assert!(Arc::ptr_eq(
            &issued,
            &certificates.get("a.apps.test").unwrap()
        ));

        let mut roots = rustls::RootCertStore::empty();
        let (_, ca) =
            rustls::pki_types::pem::PemObject::from_pem_slice(match certificates.source() {
                Source::Dev(ca) => ca.certificate_pem().as_bytes(),
                Source::Acme(_) => unreachable!(),
            })
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
