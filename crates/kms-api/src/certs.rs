//! Verifying certificate chains a KMS issued (`POST /v1/certificates`): leaf → app CA → root CA,
//! where the root CA's key must be the on-chain `kmsRootKeys().caPublicKey` of the stated
//! generation. For the gateway (an app's TLS certificate), the CLI and app-to-app mTLS.
//!
//! What a chain must show, all of it checked:
//! - three certificates, each valid at the given time;
//! - the root CA: the registered key, self-signed, a CA, naming this deployment (chain id and
//!   registry) and the stated root generation;
//! - the app CA: signed by the root CA, a CA that may issue only leaves, naming one app and its
//!   key generation, with a name constraint that permits only that app's leaf subject (the app
//!   holds its CA key; a standard X.509 verifier then refuses a leaf it signs for another app);
//! - the leaf: signed by that app CA, not a CA, for TLS servers, clients or both (reported as
//!   [`VerifiedAppCertificate::usage`]: a verifier checks the role it accepts it in), naming the same app
//!   (common name and the URI `urn:covenant:app:<address>`) — and the app the caller expects, if
//!   it names one.
//!
//! What a chain does *not* show: that the app's key generation is still the current one (compare
//! [`VerifiedAppCertificate::key_generation`] with the app's `keyGeneration()` at a finalized
//! block: a leaf lives 90 days, a bump revokes its keys sooner), and that the app controls the DNS
//! names in the leaf (they are what the app asked for; the domain's claim and its DNS proof are
//! checked by the gateway and `covenant verify`).

use alloy::primitives::Address;

use crate::wire::TlsUsage;
use x509_parser::{
    certificate::X509Certificate,
    extensions::{GeneralName, ParsedExtension},
    prelude::FromDer,
    time::ASN1Time,
};

/// The on-chain root keys a chain must lead to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootAnchor {
    /// The chain the deployment is on.
    pub chain_id: u64,
    /// The `KmsRegistry` proxy.
    pub kms_registry: Address,
    /// The root key generation (`kmsRootKeys()`).
    pub generation: u64,
    /// The root CA's public key, uncompressed SEC1 (`kmsRootKeys().caPublicKey`).
    pub ca_public_key: Vec<u8>,
}

/// What a verified chain proves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedAppCertificate {
    /// The app the leaf was issued to.
    pub app: Address,
    /// The app's key generation (its app CA's).
    pub key_generation: u64,
    /// The DNS names of the leaf, as the app asked for them (not proof of control).
    pub dns_names: Vec<String>,
    /// The leaf's public key (SubjectPublicKeyInfo, DER).
    pub public_key_der: Vec<u8>,
    /// What the leaf is for: a verifier checks the role it accepts the leaf in.
    pub usage: TlsUsage,
}

/// Why a chain is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CertificateError {
    /// Not three parseable certificates.
    #[error("malformed certificate chain: {0}")]
    Malformed(String),
    /// The root CA's key is not the registered one.
    #[error("the root CA is not the registered KMS root of generation {generation}")]
    OtherRoot {
        /// The generation whose key was expected.
        generation: u64,
    },
    /// The root CA names another deployment or generation.
    #[error("the root CA is `{found}`, expected `{expected}`")]
    OtherRootName {
        /// What the root CA names.
        found: String,
        /// What was expected.
        expected: String,
    },
    /// A signature does not verify.
    #[error("the {which} is not signed by its issuer")]
    BadSignature {
        /// Which certificate.
        which: &'static str,
    },
    /// A certificate is not valid at the time given.
    #[error("the {which} is not valid at {now}")]
    NotValid {
        /// Which certificate.
        which: &'static str,
        /// The time, unix seconds.
        now: i64,
    },
    /// A certificate plays the wrong role (a CA as leaf, a leaf as CA, a CA that may issue CAs).
    #[error("the {which} {reason}")]
    WrongRole {
        /// Which certificate.
        which: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// The leaf and its app CA name different apps, or the leaf names none.
    #[error("the leaf names app {leaf}, its app CA names app {ca}")]
    AppMismatch {
        /// The leaf's app (as written).
        leaf: String,
        /// The app CA's app.
        ca: Address,
    },
    /// The chain is another app's.
    #[error("the certificate is app {found}'s, not app {expected}'s")]
    OtherApp {
        /// The app expected.
        expected: Address,
        /// The app the chain names.
        found: Address,
    },
}

fn malformed(reason: impl Into<String>) -> CertificateError {
    CertificateError::Malformed(reason.into())
}

/// PEM certificates (as `/v1/certificates` returns them) to DER.
pub fn pem_chain_to_der(pems: &[String]) -> Result<Vec<Vec<u8>>, CertificateError> {
    pems.iter()
        .map(|p| {
            let (rest, pem) = x509_parser::pem::parse_x509_pem(p.as_bytes())
                .map_err(|e| malformed(format!("not PEM: {e}")))?;
            if pem.label != "CERTIFICATE" || !rest.iter().all(u8::is_ascii_whitespace) {
                return Err(malformed("expected exactly one PEM CERTIFICATE per entry"));
            }
            Ok(pem.contents)
        })
        .collect()
}

fn common_name<'a>(cert: &'a X509Certificate<'_>) -> Option<&'a str> {
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
}

fn check_valid(
    cert: &X509Certificate<'_>,
    which: &'static str,
    now: i64,
) -> Result<(), CertificateError> {
    let at = ASN1Time::from_timestamp(now).map_err(|e| malformed(e.to_string()))?;
    if cert.validity().is_valid_at(at) {
        Ok(())
    } else {
        Err(CertificateError::NotValid { which, now })
    }
}

fn check_signed_by(
    cert: &X509Certificate<'_>,
    issuer: &X509Certificate<'_>,
    which: &'static str,
) -> Result<(), CertificateError> {
    if cert.issuer() != issuer.subject() {
        return Err(CertificateError::BadSignature { which });
    }
    cert.verify_signature(Some(issuer.public_key()))
        .map_err(|_| CertificateError::BadSignature { which })
}

/// A CA must be allowed to sign certificates.
fn check_signs_certificates(
    cert: &X509Certificate<'_>,
    which: &'static str,
) -> Result<(), CertificateError> {
    match cert.key_usage() {
        Ok(Some(ku)) if ku.value.key_cert_sign() => Ok(()),
        Ok(_) => Err(CertificateError::WrongRole {
            which,
            reason: "may not sign certificates",
        }),
        Err(e) => Err(malformed(format!("key usage: {e}"))),
    }
}

/// The leaf must be for TLS servers, clients or both, and nothing that signs certificates.
fn check_leaf_usage(cert: &X509Certificate<'_>) -> Result<TlsUsage, CertificateError> {
    let usage = match cert.extended_key_usage() {
        Ok(Some(eku)) => TlsUsage::from_flags(eku.value.server_auth, eku.value.client_auth),
        _ => None,
    };
    let signs_certificates = matches!(cert.key_usage(), Ok(Some(ku)) if ku.value.key_cert_sign());
    match usage {
        Some(usage) if !signs_certificates => Ok(usage),
        _ => Err(CertificateError::WrongRole {
            which: "leaf",
            reason: "is not a TLS certificate",
        }),
    }
}

/// `Some(path length)` for a CA, `None` for a leaf.
fn ca_path_len(cert: &X509Certificate<'_>) -> Result<Option<Option<u32>>, CertificateError> {
    match cert.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => Ok(Some(bc.value.path_len_constraint)),
        Ok(_) => Ok(None),
        Err(e) => Err(malformed(format!("basic constraints: {e}"))),
    }
}

fn parse<'a>(der: &'a [u8], which: &str) -> Result<X509Certificate<'a>, CertificateError> {
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|e| malformed(format!("{which}: {e}")))?;
    if !rest.is_empty() {
        return Err(malformed(format!("{which}: trailing bytes")));
    }
    Ok(cert)
}

fn parse_address(s: &str) -> Option<Address> {
    let ok = s.len() == 42 && s.starts_with("0x");
    ok.then(|| s.parse().ok()).flatten()
}

/// Verifies `chain` (leaf, app CA, root CA; DER) against `anchor` at `now` (unix seconds). With
/// `expected_app`, the leaf must be that app's.
pub fn verify_app_chain(
    chain: &[Vec<u8>],
    anchor: &RootAnchor,
    expected_app: Option<Address>,
    now: i64,
) -> Result<VerifiedAppCertificate, CertificateError> {
    let [leaf, app_ca, root] = chain else {
        return Err(malformed(format!(
            "{} certificates, expected leaf, app CA and root CA",
            chain.len()
        )));
    };
    let (leaf, app_ca, root) = (
        parse(leaf, "leaf")?,
        parse(app_ca, "app CA")?,
        parse(root, "root CA")?,
    );

    // The root: the registered key, naming this deployment and generation.
    if root.public_key().subject_public_key.data.as_ref() != anchor.ca_public_key.as_slice() {
        return Err(CertificateError::OtherRoot {
            generation: anchor.generation,
        });
    }
    let expected_root = format!(
        "Covenant KMS root, chain {} registry {} generation {}",
        anchor.chain_id, anchor.kms_registry, anchor.generation
    );
    let root_name = common_name(&root).unwrap_or_default();
    if root_name != expected_root {
        return Err(CertificateError::OtherRootName {
            found: root_name.to_owned(),
            expected: expected_root,
        });
    }
    check_signed_by(&root, &root, "root CA")?;
    if ca_path_len(&root)?.is_none() {
        return Err(CertificateError::WrongRole {
            which: "root CA",
            reason: "is not a CA",
        });
    }
    check_signs_certificates(&root, "root CA")?;
    check_valid(&root, "root CA", now)?;

    // The app CA: one app, one generation, may issue leaves only.
    check_signed_by(&app_ca, &root, "app CA")?;
    if ca_path_len(&app_ca)? != Some(Some(0)) {
        return Err(CertificateError::WrongRole {
            which: "app CA",
            reason: "is not a CA limited to issuing leaves",
        });
    }
    check_signs_certificates(&app_ca, "app CA")?;
    check_valid(&app_ca, "app CA", now)?;
    let ca_name = common_name(&app_ca).unwrap_or_default();
    let (ca_app, key_generation) = ca_name
        .strip_prefix("Covenant app ")
        .and_then(|rest| rest.split_once(" generation "))
        .and_then(|(app, g)| Some((parse_address(app)?, g.parse::<u64>().ok()?)))
        .ok_or_else(|| malformed(format!("the app CA's name `{ca_name}` names no app")))?;

    // The leaf: signed by that app CA, the same app, the one name the app CA may certify.
    check_signed_by(&leaf, &app_ca, "leaf")?;
    check_constrained_to(&app_ca, &leaf)?;
    if ca_path_len(&leaf)?.is_some() {
        return Err(CertificateError::WrongRole {
            which: "leaf",
            reason: "is a CA",
        });
    }
    let usage = check_leaf_usage(&leaf)?;
    check_valid(&leaf, "leaf", now)?;
    let mut uri_apps = Vec::new();
    let mut dns_names = Vec::new();
    for ext in leaf.extensions() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
            for name in &san.general_names {
                match name {
                    GeneralName::URI(uri) => uri_apps.push(
                        uri.strip_prefix("urn:covenant:app:")
                            .and_then(parse_address),
                    ),
                    GeneralName::DNSName(d) => dns_names.push((*d).to_owned()),
                    _ => {}
                }
            }
        }
    }
    let leaf_name = common_name(&leaf).unwrap_or_default();
    let names_ca_app = parse_address(leaf_name) == Some(ca_app)
        && uri_apps.len() == 1
        && uri_apps[0] == Some(ca_app);
    if !names_ca_app {
        return Err(CertificateError::AppMismatch {
            leaf: leaf_name.to_owned(),
            ca: ca_app,
        });
    }
    if let Some(expected) = expected_app
        && expected != ca_app
    {
        return Err(CertificateError::OtherApp {
            expected,
            found: ca_app,
        });
    }
    Ok(VerifiedAppCertificate {
        app: ca_app,
        key_generation,
        dns_names,
        public_key_der: leaf.public_key().raw.to_vec(),
        usage,
    })
}

/// The app CA permits exactly one subject, the leaf's, and no other kind of name is constrained.
fn check_constrained_to(
    app_ca: &X509Certificate<'_>,
    leaf: &X509Certificate<'_>,
) -> Result<(), CertificateError> {
    let unconstrained = CertificateError::WrongRole {
        which: "app CA",
        reason: "does not limit its leaves to its app's name",
    };
    let constraints = app_ca
        .extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::NameConstraints(nc) => Some((ext.critical, nc)),
            _ => None,
        });
    let Some((true, nc)) = constraints else {
        return Err(unconstrained);
    };
    let permitted = match (&nc.permitted_subtrees, &nc.excluded_subtrees) {
        (Some(p), None) if p.len() == 1 => &p[0],
        _ => return Err(unconstrained),
    };
    match &permitted.base {
        GeneralName::DirectoryName(name) if name.as_raw() == leaf.subject().as_raw() => Ok(()),
        _ => Err(unconstrained),
    }
}

#[cfg(test)]
mod tests {
    //! What only a chain the KMS would never issue can show: the key-usage checks. (Chains a
    //! running KMS issued, and every other rejection, are tested in the kms-oracle's tests.)
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
        GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose, NameConstraints, SanType,
    };

    use super::*;

    const APP: Address = Address::repeat_byte(0xa1);

    fn params(name: &str) -> CertificateParams {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p
    }

    /// A leaf, app CA and root CA shaped as the KMS issues them; `edit` changes the
    /// parameters (root, app CA, leaf) before signing.
    fn chain(
        edit: impl FnOnce(&mut CertificateParams, &mut CertificateParams, &mut CertificateParams),
    ) -> (Vec<Vec<u8>>, RootAnchor) {
        let anchor = |key: &KeyPair| RootAnchor {
            chain_id: 31337,
            kms_registry: Address::repeat_byte(0x42),
            generation: 1,
            ca_public_key: key.public_key_raw().to_vec(),
        };
        let (root_key, ca_key, leaf_key) = (
            KeyPair::generate().unwrap(),
            KeyPair::generate().unwrap(),
            KeyPair::generate().unwrap(),
        );
        let a = anchor(&root_key);
        let mut root = params(&format!(
            "Covenant KMS root, chain {} registry {} generation {}",
            a.chain_id, a.kms_registry, a.generation
        ));
        root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        root.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let mut ca = params(&format!("Covenant app {APP} generation 3"));
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        ca.name_constraints = Some(only(&APP.to_string()));
        let mut leaf = params(&APP.to_string());
        leaf.subject_alt_names = vec![SanType::URI(
            format!("urn:covenant:app:{APP}").try_into().unwrap(),
        )];
        leaf.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        edit(&mut root, &mut ca, &mut leaf);
        let root_der = root.self_signed(&root_key).unwrap().der().to_vec();
        let root_issuer = Issuer::new(root, root_key);
        let ca_der = ca.signed_by(&ca_key, &root_issuer).unwrap().der().to_vec();
        let ca_issuer = Issuer::new(ca, ca_key);
        let leaf_der = leaf
            .signed_by(&leaf_key, &ca_issuer)
            .unwrap()
            .der()
            .to_vec();
        (vec![leaf_der, ca_der, root_der], a)
    }

    /// Name constraints that permit only the subject `CN=<name>`.
    fn only(name: &str) -> NameConstraints {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        NameConstraints {
            permitted_subtrees: vec![GeneralSubtree::DirectoryName(dn)],
            excluded_subtrees: Vec::new(),
        }
    }

    fn verify((chain, anchor): (Vec<Vec<u8>>, RootAnchor)) -> Result<u64, CertificateError> {
        let now = ASN1Time::now().timestamp();
        verify_app_chain(&chain, &anchor, Some(APP), now).map(|v| v.key_generation)
    }

    #[test]
    fn a_chain_shaped_as_the_kms_issues_it_verifies() {
        assert_eq!(verify(chain(|_, _, _| {})), Ok(3));
    }

    #[test]
    fn cas_that_may_not_sign_certificates_are_refused() {
        let no_signing = vec![KeyUsagePurpose::DigitalSignature];
        let refused = |which| {
            Err(CertificateError::WrongRole {
                which,
                reason: "may not sign certificates",
            })
        };
        let root = chain(|root, _, _| root.key_usages = no_signing.clone());
        assert_eq!(verify(root), refused("root CA"));
        let ca = chain(|_, ca, _| ca.key_usages = no_signing.clone());
        assert_eq!(verify(ca), refused("app CA"));
    }

    #[test]
    fn a_leaf_must_be_for_tls_servers_or_clients_says_which_and_signs_no_certificates() {
        let refused = Err(CertificateError::WrongRole {
            which: "leaf",
            reason: "is not a TLS certificate",
        });
        let usage = |ekus: Vec<ExtendedKeyUsagePurpose>| {
            let (chain, anchor) = chain(move |_, _, leaf| leaf.extended_key_usages = ekus);
            let now = ASN1Time::now().timestamp();
            verify_app_chain(&chain, &anchor, Some(APP), now).map(|v| v.usage)
        };
        assert_eq!(
            usage(vec![ExtendedKeyUsagePurpose::ServerAuth]),
            Ok(TlsUsage::Server)
        );
        assert_eq!(
            usage(vec![ExtendedKeyUsagePurpose::ClientAuth]),
            Ok(TlsUsage::Client)
        );
        assert_eq!(
            usage(vec![
                ExtendedKeyUsagePurpose::ClientAuth,
                ExtendedKeyUsagePurpose::ServerAuth
            ]),
            Ok(TlsUsage::ServerAndClient)
        );
        assert!(usage(vec![ExtendedKeyUsagePurpose::CodeSigning]).is_err());
        let no_usage = chain(|_, _, leaf| leaf.extended_key_usages.clear());
        assert_eq!(verify(no_usage), refused);
        let signs = chain(|_, _, leaf| leaf.key_usages = vec![KeyUsagePurpose::KeyCertSign]);
        assert_eq!(verify(signs), refused);
    }

    #[test]
    fn an_app_ca_must_permit_only_its_own_apps_leaf_name() {
        let refused = Err(CertificateError::WrongRole {
            which: "app CA",
            reason: "does not limit its leaves to its app's name",
        });
        let unconstrained = chain(|_, ca, _| ca.name_constraints = None);
        assert_eq!(verify(unconstrained), refused);
        let other = Address::repeat_byte(0xb2).to_string();
        let elsewhere = chain(|_, ca, _| ca.name_constraints = Some(only(&other)));
        assert_eq!(verify(elsewhere), refused);
        let also_dns = chain(|_, ca, _| {
            let mut nc = only(&APP.to_string());
            nc.excluded_subtrees = vec![GeneralSubtree::DnsName("example.org".into())];
            ca.name_constraints = Some(nc);
        });
        assert_eq!(verify(also_dns), refused);
    }
}
