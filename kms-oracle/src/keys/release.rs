//! What a grant hands out, built from derived keys: the app's key bundle with the KMS root's
//! signatures, the app CA certificate chained to the root CA, and leaf certificates signed from
//! CSRs. Pure apart from the clock passed in for leaf validity.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use alloy::primitives::{Address, B256, FixedBytes};
use covenant_kms_api::{AppKeys, EnvKeyStatement, Secret, TlsUsage, signatures};
use p256::ecdsa::signature::Signer;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyUsagePurpose,
    NameConstraints, SanType, SerialNumber,
};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{
    Domain, Purpose, RootSecret, derive, derive_p256, derive_secp256k1, derive_x25519,
    ethereum_address,
};
use crate::{Error, Result};

/// A P-256 key that signs certificates (RFC 6979 deterministic ECDSA, so a certificate is the
/// same bytes on every node).
pub struct P256Signer {
    key: p256::ecdsa::SigningKey,
    public: Vec<u8>,
}

impl P256Signer {
    /// Wraps `key`.
    pub fn new(key: p256::ecdsa::SigningKey) -> Self {
        let public = key
            .verifying_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec();
        Self { key, public }
    }

    /// The uncompressed SEC1 public key.
    pub fn public_sec1(&self) -> &[u8] {
        &self.public
    }
}

impl rcgen::PublicKeyData for P256Signer {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for P256Signer {
    fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
        let signature: p256::ecdsa::Signature = self.key.sign(msg);
        Ok(signature.to_der().as_bytes().to_vec())
    }
}

fn cert_error(e: rcgen::Error) -> Error {
    Error::Certificate(e)
}

fn serial_for(public: &[u8]) -> SerialNumber {
    let mut s: [u8; 16] = Sha256::digest(public)[..16].try_into().unwrap_or([1; 16]);
    s[0] &= 0x7f;
    s[0] |= 0x01;
    SerialNumber::from_slice(&s)
}

fn ca_params(common_name: String, serial: SerialNumber, path_len: Option<u8>) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Covenant");
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = match path_len {
        Some(n) => IsCa::Ca(BasicConstraints::Constrained(n)),
        None => IsCa::Ca(BasicConstraints::Unconstrained),
    };
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2125, 1, 1);
    params.serial_number = Some(serial);
    params
}

fn sign65(key: &k256::ecdsa::SigningKey, digest: &B256) -> Result<[u8; 65]> {
    let (sig, recid) = key
        .sign_prehash_recoverable(digest.as_slice())
        .map_err(Error::Signature)?;
    let mut out = [0u8; 65];
    out[..64].copy_from_slice(&sig.to_bytes());
    out[64] = 27 + recid.to_byte();
    Ok(out)
}

/// The KMS root keys of one registry key generation.
pub struct RootKeys {
    /// The generation.
    pub generation: u64,
    signer: k256::ecdsa::SigningKey,
    /// The root signer's Ethereum address (registered on chain).
    pub signer_address: Address,
    ca: Issuer<'static, P256Signer>,
    /// The root CA's uncompressed SEC1 public key (registered on chain).
    pub ca_public_key: Vec<u8>,
    /// The root CA certificate (self-signed, deterministic), DER.
    pub ca_certificate_der: Vec<u8>,
}

impl std::fmt::Debug for RootKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootKeys")
            .field("generation", &self.generation)
            .field("signer_address", &self.signer_address)
            .finish_non_exhaustive()
    }
}

impl RootKeys {
    /// Derives the root keys of `generation`.
    pub fn derive(root: &RootSecret, domain: &Domain, generation: u64) -> Result<Self> {
        let signer = derive_secp256k1(root, domain, &Purpose::RootSecp256k1 { generation });
        let signer_address = ethereum_address(signer.verifying_key());
        let ca_key = P256Signer::new(derive_p256(
            root,
            domain,
            &Purpose::RootCaP256 { generation },
        ));
        let ca_public_key = ca_key.public_sec1().to_vec();
        let params = ca_params(
            format!(
                "Covenant KMS root, chain {} registry {} generation {generation}",
                domain.chain_id, domain.kms_registry
            ),
            serial_for(&ca_public_key),
            None,
        );
        let certificate = params.self_signed(&ca_key).map_err(cert_error)?;
        Ok(Self {
            generation,
            signer,
            signer_address,
            ca: Issuer::new(params, ca_key),
            ca_public_key,
            ca_certificate_der: certificate.der().to_vec(),
        })
    }
}

/// What the root signer signs for an app's secp256k1 key (`covenant_kms_api::signatures`).
pub fn app_key_digest(domain: &Domain, app: Address, generation: u64, app_key: Address) -> B256 {
    signatures::app_key_digest(
        domain.chain_id,
        domain.kms_registry,
        app,
        generation,
        app_key,
    )
}

/// What the root signer signs for an app's env key (`covenant_kms_api::signatures`).
pub fn env_key_digest(domain: &Domain, app: Address, generation: u64, public: &[u8; 32]) -> B256 {
    signatures::env_key_digest(
        domain.chain_id,
        domain.kms_registry,
        app,
        generation,
        public,
    )
}

/// `app`'s env-encryption public key at `generation`, signed by `roots`.
pub fn env_key_statement(
    root: &RootSecret,
    domain: &Domain,
    roots: &RootKeys,
    app: Address,
    generation: u64,
) -> Result<EnvKeyStatement> {
    let (_, public) = derive_x25519(root, domain, &Purpose::EnvX25519 { app, generation });
    let digest = env_key_digest(domain, app, generation, public.as_bytes());
    Ok(EnvKeyStatement {
        app_id: app,
        key_generation: generation,
        public_key: hex::encode(public.as_bytes()),
        root_generation: roots.generation,
        root_signer: roots.signer_address,
        signature: hex::encode(sign65(&roots.signer, &digest)?),
    })
}

/// Everything every instance of an app receives for one (app key generation, root generation):
/// all of [`AppKeys`] except the per-instance disk key and the `GetKey` paths. Deterministic, so
/// it is derived once per app and kept in an [`AppMaterialCache`]; secrets are wiped on drop.
pub struct AppMaterial {
    app_id: Address,
    key_generation: u64,
    root_generation: u64,
    root_signer: Address,
    env_secret_key: Secret,
    env_public_key: EnvKeyStatement,
    app_secret_key: Secret,
    app_address: Address,
    app_key_signature: String,
    app_ca_secret_key: Secret,
    app_ca_certificate: String,
    root_ca_certificate: String,
}

impl std::fmt::Debug for AppMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppMaterial")
            .field("app_id", &self.app_id)
            .field("key_generation", &self.key_generation)
            .field("root_generation", &self.root_generation)
            .finish_non_exhaustive()
    }
}

impl AppMaterial {
    /// Derives the app-wide keys of `app` at `generation`, signed by `roots`.
    pub fn derive(
        root: &RootSecret,
        domain: &Domain,
        roots: &RootKeys,
        app: Address,
        generation: u64,
    ) -> Result<Self> {
        let (env_secret, _) = derive_x25519(root, domain, &Purpose::EnvX25519 { app, generation });
        let app_key = derive_secp256k1(root, domain, &Purpose::AppSecp256k1 { app, generation });
        let app_address = ethereum_address(app_key.verifying_key());
        let signature = sign65(
            &roots.signer,
            &app_key_digest(domain, app, generation, app_address),
        )?;
        let (ca_key, _, ca_der) = app_ca(root, domain, roots, app, generation)?;
        let ca_secret = Zeroizing::new(ca_key.key.to_bytes());
        Ok(Self {
            app_id: app,
            key_generation: generation,
            root_generation: roots.generation,
            root_signer: roots.signer_address,
            env_secret_key: Secret::new(hex::encode(env_secret.to_bytes())),
            env_public_key: env_key_statement(root, domain, roots, app, generation)?,
            app_secret_key: Secret::new(hex::encode(app_key.to_bytes())),
            app_address,
            app_key_signature: hex::encode(signature),
            app_ca_secret_key: Secret::new(hex::encode(ca_secret.as_slice())),
            app_ca_certificate: pem(&ca_der),
            root_ca_certificate: pem(&roots.ca_certificate_der),
        })
    }
}

/// The most apps whose [`AppMaterial`] is kept (one entry each: caching a new generation of an
/// app drops its older one); when full, the cache starts again empty.
const APP_MATERIAL_CACHE_LIMIT: usize = 4096;

/// [`AppMaterial`] by (app, key generation, root generation). It holds derivations, not
/// decisions: whether an instance may have them is decided for every request, and a key
/// generation bump or a root rotation changes the cache key.
#[derive(Debug, Default)]
pub struct AppMaterialCache {
    entries: Mutex<HashMap<(Address, u64, u64), Arc<AppMaterial>>>,
}

impl AppMaterialCache {
    /// The material of `app` at `generation` under `roots`, derived on first use.
    pub fn get_or_derive(
        &self,
        root: &RootSecret,
        domain: &Domain,
        roots: &RootKeys,
        app: Address,
        generation: u64,
    ) -> Result<Arc<AppMaterial>> {
        let key = (app, generation, roots.generation);
        if let Some(m) = self.lock().get(&key) {
            return Ok(m.clone());
        }
        let material = Arc::new(AppMaterial::derive(root, domain, roots, app, generation)?);
        let mut entries = self.lock();
        // Only the app's current generations are ever granted: drop its others.
        entries.retain(|(a, _, _), _| *a != app);
        if entries.len() >= APP_MATERIAL_CACHE_LIMIT {
            entries.clear();
        }
        entries.insert(key, material.clone());
        Ok(material)
    }

    /// The material of `app` at `generation` under root generation `root_generation`, if it
    /// was derived already.
    pub fn cached(
        &self,
        app: Address,
        generation: u64,
        root_generation: u64,
    ) -> Option<Arc<AppMaterial>> {
        self.lock()
            .get(&(app, generation, root_generation))
            .cloned()
    }

    /// How many entries are cached (at most one per app).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Address, u64, u64), Arc<AppMaterial>>> {
        // The map is only ever inserted into or cleared: a poisoned lock holds a valid map.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A DER certificate as PEM.
pub fn pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// The subject of every leaf of `app`, and the only name its app CA may certify.
fn leaf_name(app: Address) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Covenant app");
    dn.push(DnType::CommonName, app.to_string());
    dn
}

fn app_ca(
    root: &RootSecret,
    domain: &Domain,
    roots: &RootKeys,
    app: Address,
    generation: u64,
) -> Result<(P256Signer, CertificateParams, Vec<u8>)> {
    let key = P256Signer::new(derive_p256(
        root,
        domain,
        &Purpose::AppCaP256 { app, generation },
    ));
    let mut params = ca_params(
        format!("Covenant app {app} generation {generation}"),
        serial_for(key.public_sec1()),
        Some(0),
    );
    // The app holds its CA key; any verifier that enforces name constraints refuses a leaf it
    // signs under another app's name.
    params.name_constraints = Some(NameConstraints {
        permitted_subtrees: vec![GeneralSubtree::DirectoryName(leaf_name(app))],
        excluded_subtrees: Vec::new(),
    });
    let cert = params.signed_by(&key, &roots.ca).map_err(cert_error)?;
    Ok((key, params, cert.der().to_vec()))
}

/// The keys of `instance` of the app `material` belongs to: the app-wide material plus the
/// instance's disk key and the `GetKey` keys of `paths`.
pub fn instance_keys(
    root: &RootSecret,
    domain: &Domain,
    material: &AppMaterial,
    instance: FixedBytes<20>,
    paths: &[String],
) -> AppKeys {
    let (app, generation) = (material.app_id, material.key_generation);
    let disk = derive(
        root,
        domain,
        &Purpose::Disk {
            app,
            generation,
            instance: instance.0,
        },
    );
    let paths = paths
        .iter()
        .map(|p| {
            let key = derive(
                root,
                domain,
                &Purpose::AppPath {
                    app,
                    generation,
                    path: p.as_bytes().to_vec(),
                },
            );
            (p.clone(), Secret::new(hex::encode(key.as_slice())))
        })
        .collect();
    AppKeys {
        app_id: app,
        instance_id: instance,
        key_generation: generation,
        root_generation: material.root_generation,
        root_signer: material.root_signer,
        disk_key: Secret::new(hex::encode(disk.as_slice())),
        env_secret_key: material.env_secret_key.clone(),
        env_public_key: material.env_public_key.clone(),
        app_secret_key: material.app_secret_key.clone(),
        app_address: material.app_address,
        app_key_signature: material.app_key_signature.clone(),
        app_ca_secret_key: material.app_ca_secret_key.clone(),
        app_ca_certificate: material.app_ca_certificate.clone(),
        root_ca_certificate: material.root_ca_certificate.clone(),
        paths,
    }
}

/// What a leaf is asked for: the app and its key generation (whose app CA signs), the CSR (DER)
/// and the usage.
#[derive(Clone, Copy, Debug)]
pub struct LeafRequest<'a> {
    /// The app.
    pub app: Address,
    /// Its key generation.
    pub generation: u64,
    /// The CSR, DER.
    pub csr_der: &'a [u8],
    /// The extended key usages.
    pub usage: TlsUsage,
}

/// Signs a leaf certificate for the request's app from its CSR. The CSR's signature must verify;
/// the leaf keeps only the CSR's key and DNS names, and carries the app id as its common name and
/// as a URI name `urn:covenant:app:<address>`. Returns the chain: leaf, app CA, root CA (PEM).
pub fn sign_leaf(
    root: &RootSecret,
    domain: &Domain,
    roots: &RootKeys,
    request: LeafRequest<'_>,
    now_unix: i64,
) -> Result<Vec<String>, String> {
    let LeafRequest {
        app,
        generation,
        csr_der,
        usage,
    } = request;
    let csr = CertificateSigningRequestParams::from_der(&csr_der.to_vec().into())
        .map_err(|e| format!("malformed CSR: {e}"))?;
    let mut sans = Vec::new();
    for san in &csr.params.subject_alt_names {
        match san {
            SanType::DnsName(name) => sans.push(SanType::DnsName(name.clone())),
            other => {
                return Err(format!(
                    "unsupported subject alternative name in CSR: {other:?}"
                ));
            }
        }
    }
    if sans.len() > 32 {
        return Err("too many names in CSR (at most 32)".into());
    }
    let uri = format!("urn:covenant:app:{app}");
    sans.push(SanType::URI(
        uri.try_into().map_err(|e: rcgen::Error| e.to_string())?,
    ));
    let mut params = CertificateParams::default();
    params.distinguished_name = leaf_name(app);
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = match usage {
        TlsUsage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
        TlsUsage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
        TlsUsage::ServerAndClient => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    };
    let now = time::OffsetDateTime::from_unix_timestamp(now_unix).map_err(|e| e.to_string())?;
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(90);
    params.serial_number = Some(serial_for(&[csr_der, &now_unix.to_be_bytes()].concat()));
    let (ca_key, ca_params, ca_der) =
        app_ca(root, domain, roots, app, generation).map_err(|e| e.to_string())?;
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = params
        .signed_by(&csr.public_key, &issuer)
        .map_err(|e| format!("signing the leaf: {e}"))?;
    Ok(vec![
        pem(leaf.der()),
        pem(&ca_der),
        pem(&roots.ca_certificate_der),
    ])
}
