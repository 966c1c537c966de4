//! TDX collateral for client quotes, from a PCCS (the Intel PCS v4 API shape: PCK CRL, TCB info,
//! QE identity, root CA CRL, each with its issuer chain), kept in an on-disk cache per FMSPC and
//! PCK CA.
//!
//! - A cached set is used until one day before its earliest `nextUpdate` (TCB info, QE
//!   identity, both CRLs); then it is fetched again.
//! - When the PCCS cannot be reached, the cached set is used until that `nextUpdate` and not a
//!   second longer: past it, every TDX quote of that platform is refused (fail closed).
//! - Nothing fetched is trusted for what it says: `covenant-attest` checks every signature up to
//!   Intel's root, and the policy's maximum collateral age bounds how old a served set may be.
//!   That is also why plain HTTP is enough for authenticity (a PCCS on the node's network); an
//!   attacker on the path can only withhold or replay sets, which the two bounds above limit.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use covenant_attest::QuoteCollateralV3;
use serde::{Deserialize, Serialize};

/// Refetch this long before the collateral's `nextUpdate`.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(24 * 3600);
/// The largest response read from the PCCS.
const MAX_RESPONSE: usize = 1 << 20;

/// Why no usable collateral.
#[derive(Debug, thiserror::Error)]
pub enum CollateralError {
    /// The quote does not name its platform (FMSPC, PCK CA).
    #[error("the quote's PCK certificate does not name its platform: {0}")]
    Quote(String),
    /// Fetching failed and there is no cached set still valid.
    #[error(
        "no valid TDX collateral for FMSPC {fmspc} ({ca} CA): {reason}; the quote cannot be checked"
    )]
    Unavailable {
        /// The platform.
        fmspc: String,
        /// The PCK CA.
        ca: &'static str,
        /// What failed.
        reason: String,
    },
}

/// A cached set.
#[derive(Serialize, Deserialize)]
struct Cached {
    /// The earliest `nextUpdate` of its parts, unix seconds.
    next_update: u64,
    collateral: QuoteCollateralV3,
}

/// A PCCS client with its cache.
#[derive(Clone, Debug)]
pub struct Pccs {
    base: url::Url,
    http: reqwest::Client,
    cache_dir: PathBuf,
}

fn unavailable(fmspc: &str, ca: &'static str, reason: impl Into<String>) -> CollateralError {
    CollateralError::Unavailable {
        fmspc: fmspc.to_owned(),
        ca,
        reason: reason.into(),
    }
}

impl Pccs {
    /// A client of the PCCS at `base` (e.g. `http://pccs:8081`), caching in `cache_dir`.
    pub fn new(base: url::Url, cache_dir: PathBuf, timeout: Duration) -> crate::Result<Self> {
        Ok(Self {
            base,
            http: crate::fetch::client(timeout, "pccs client")?,
            cache_dir,
        })
    }

    /// The collateral for a TDX `quote` at `now` (unix seconds): cached, or fetched.
    pub async fn tdx_collateral(
        &self,
        quote: &[u8],
        now: u64,
    ) -> Result<QuoteCollateralV3, CollateralError> {
        let (fmspc, ca) = platform_of(quote)?;
        let file = self.cache_dir.join(format!("tdx-{fmspc}-{ca}.json"));
        let cached = read_cache(&file);
        if let Some(c) = &cached
            && now + REFRESH_MARGIN.as_secs() < c.next_update
        {
            return Ok(c.collateral.clone());
        }
        match self.fetch(&fmspc, ca).await {
            Ok(collateral) => {
                let next_update = next_update(&collateral)
                    .map_err(|e| unavailable(&fmspc, ca, format!("the PCCS served {e}")))?;
                if next_update <= now {
                    return Err(unavailable(
                        &fmspc,
                        ca,
                        format!("the PCCS served collateral that expired at {next_update}"),
                    ));
                }
                write_cache(
                    &file,
                    &Cached {
                        next_update,
                        collateral: collateral.clone(),
                    },
                );
                Ok(collateral)
            }
            Err(reason) => match cached {
                Some(c) if now < c.next_update => {
                    tracing::warn!(target: "kms::pccs", %fmspc, ca, error = %reason, valid_until = c.next_update, "PCCS unreachable; using the cached collateral until its nextUpdate");
                    Ok(c.collateral)
                }
                Some(c) => Err(unavailable(
                    &fmspc,
                    ca,
                    format!(
                        "the cached copy expired at {} and the PCCS failed: {reason}",
                        c.next_update
                    ),
                )),
                None => Err(unavailable(
                    &fmspc,
                    ca,
                    format!("the PCCS failed: {reason}"),
                )),
            },
        }
    }

    async fn get(&self, path_and_query: &str) -> Result<reqwest::Response, String> {
        crate::fetch::get(&self.http, &self.base, path_and_query, MAX_RESPONSE).await
    }

    async fn fetch(&self, fmspc: &str, ca: &'static str) -> Result<QuoteCollateralV3, String> {
        let pck = self
            .get(&format!("sgx/certification/v4/pckcrl?ca={ca}&encoding=der"))
            .await?;
        let pck_crl_issuer_chain = issuer_chain(&pck, &["SGX-PCK-CRL-Issuer-Chain"])?;
        let pck_crl = body(pck).await?;

        let tcb = self
            .get(&format!("tdx/certification/v4/tcb?fmspc={fmspc}"))
            .await?;
        let tcb_info_issuer_chain = issuer_chain(
            &tcb,
            &["TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain"],
        )?;
        let tcb: TcbInfoResponse = serde_json::from_slice(&body(tcb).await?)
            .map_err(|e| format!("TCB info is not the v4 shape: {e}"))?;

        let qe = self.get("tdx/certification/v4/qe/identity").await?;
        let qe_identity_issuer_chain = issuer_chain(&qe, &["SGX-Enclave-Identity-Issuer-Chain"])?;
        let qe: QeIdentityResponse = serde_json::from_slice(&body(qe).await?)
            .map_err(|e| format!("QE identity is not the v4 shape: {e}"))?;

        let root = body(self.get("sgx/certification/v4/rootcacrl").await?).await?;
        // A PCCS answers the root CA CRL as hex text, Intel's PCS as DER.
        let root_ca_crl = std::str::from_utf8(&root)
            .ok()
            .and_then(|text| hex::decode(text.trim()).ok())
            .unwrap_or(root);

        Ok(QuoteCollateralV3 {
            pck_crl_issuer_chain,
            root_ca_crl,
            pck_crl,
            tcb_info_issuer_chain,
            // The signed text, byte for byte.
            tcb_info: tcb.tcb_info.get().to_owned(),
            tcb_info_signature: hex::decode(&tcb.signature)
                .map_err(|_| "the TCB info signature is not hex".to_owned())?,
            qe_identity_issuer_chain,
            qe_identity: qe.enclave_identity.get().to_owned(),
            qe_identity_signature: hex::decode(&qe.signature)
                .map_err(|_| "the QE identity signature is not hex".to_owned())?,
            pck_certificate_chain: None,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TcbInfoResponse {
    tcb_info: Box<serde_json::value::RawValue>,
    signature: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QeIdentityResponse {
    enclave_identity: Box<serde_json::value::RawValue>,
    signature: String,
}

fn issuer_chain(response: &reqwest::Response, names: &[&str]) -> Result<String, String> {
    let value = names
        .iter()
        .find_map(|n| response.headers().get(*n))
        .ok_or_else(|| format!("no {} header", names[0]))?;
    let encoded = value
        .to_str()
        .map_err(|_| format!("the {} header is not text", names[0]))?;
    percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| format!("the {} header is not URL-encoded PEM", names[0]))
}

async fn body(response: reqwest::Response) -> Result<Vec<u8>, String> {
    crate::fetch::body(response, MAX_RESPONSE).await
}

/// The FMSPC (upper-case hex) and PCK CA (`platform`, `processor`) of a quote's PCK certificate.
pub fn platform_of(quote: &[u8]) -> Result<(String, &'static str), CollateralError> {
    let parsed =
        dcap_qvl::quote::Quote::parse(quote).map_err(|e| CollateralError::Quote(e.to_string()))?;
    let fmspc =
        dcap_qvl::intel::quote_fmspc(&parsed).map_err(|e| CollateralError::Quote(e.to_string()))?;
    let ca = dcap_qvl::intel::quote_ca(&parsed)
        .map_err(|e| CollateralError::Quote(e.to_string()))?
        .as_id_str();
    Ok((hex::encode_upper(fmspc), ca))
}

/// The earliest `nextUpdate` of a set's parts, unix seconds.
pub fn next_update(c: &QuoteCollateralV3) -> Result<u64, String> {
    let json_next = |text: &str, what: &str| -> Result<u64, String> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("{what} that is not JSON: {e}"))?;
        let at = v
            .get("nextUpdate")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| format!("{what} without nextUpdate"))?;
        time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
            .map(|t| t.unix_timestamp().max(0) as u64)
            .map_err(|e| format!("{what} with a bad nextUpdate: {e}"))
    };
    let crl_next = |der: &[u8], what: &str| -> Result<u64, String> {
        use x509_parser::prelude::FromDer;
        let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(der)
            .map_err(|e| format!("{what} that does not parse: {e}"))?;
        crl.next_update()
            .map(|t| t.timestamp().max(0) as u64)
            .ok_or_else(|| format!("{what} without nextUpdate"))
    };
    Ok(json_next(&c.tcb_info, "a TCB info")?
        .min(json_next(&c.qe_identity, "a QE identity")?)
        .min(crl_next(&c.pck_crl, "a PCK CRL")?)
        .min(crl_next(&c.root_ca_crl, "a root CA CRL")?))
}

fn read_cache(file: &Path) -> Option<Cached> {
    let bytes = std::fs::read(file).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(target: "kms::pccs", file = %file.display(), error = %e, "ignoring an unreadable collateral cache entry");
            None
        }
    }
}

fn write_cache(file: &Path, cached: &Cached) {
    match serde_json::to_vec(cached) {
        Ok(bytes) => crate::fetch::write_cache(file, &bytes),
        Err(e) => {
            tracing::warn!(target: "kms::pccs", file = %file.display(), error = %e, "could not encode the collateral for the cache");
        }
    }
}
