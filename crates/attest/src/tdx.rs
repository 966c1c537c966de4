//! Intel TDX quotes (v4 and v5), verified with dcap-qvl against collateral the caller supplies
//! (this crate never fetches anything).

use dcap_qvl::{QuoteCollateralV3, quote::Quote};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{DeviceId, Error, Measurement, ReportData, Result, TcbStatus, TdMeasurements};

/// The largest quote accepted, in bytes (real quotes with a PCK chain are about 5 KB).
pub const MAX_QUOTE_LEN: usize = 16 * 1024;

/// What a TDX quote proves, once dcap-qvl accepted it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TdxReport {
    /// MRTD and RTMR0–3.
    pub measurements: TdMeasurements,
    /// REPORTDATA.
    pub report_data: ReportData,
    /// sha256(PPID) of the platform.
    pub device_id: DeviceId,
    /// The platform's TCB status.
    pub tcb_status: TcbStatus,
    /// Intel advisories for that status.
    pub advisory_ids: Vec<String>,
    /// The oldest issue date of the signed collateral used (TCB info, QE identity), unix seconds.
    pub collateral_issued_at: u64,
}

/// Verifies a TDX quote at `now` (unix seconds) against `collateral`: structure, platform, then
/// dcap-qvl (QE report and quote signatures, PCK chain to Intel's root, CRLs, TCB info, QE
/// identity). Policy (accepted statuses, collateral age) is [`crate::verify`]'s job.
pub fn verify_quote(quote: &[u8], collateral: &QuoteCollateralV3, now: u64) -> Result<TdxReport> {
    if quote.len() > MAX_QUOTE_LEN {
        return Err(Error::TooLarge {
            what: "TDX quote",
            limit: MAX_QUOTE_LEN,
            got: quote.len(),
        });
    }
    let parsed = Quote::parse(quote).map_err(|e| Error::Malformed {
        what: "TDX quote",
        reason: format!("{e:#}"),
    })?;
    if parsed.header.is_sgx() || parsed.report.as_td10().is_none() {
        return Err(Error::WrongPlatform("an SGX quote, not a TDX quote".into()));
    }
    let chain = check_declared_length(quote)?;
    // dcap-qvl verifies the PCK chain the quote carries (below) against Intel's root. The quote's
    // issuer certificates must also be byte-identical to the collateral's PCK CRL issuer chain,
    // so the CRL that is checked is the one issued for this very chain, and no byte of the
    // quote's chain goes unchecked.
    let issuers =
        der_certificates(collateral.pck_crl_issuer_chain.as_bytes()).ok_or_else(|| {
            Error::Malformed {
                what: "PCK CRL issuer chain",
                reason: "not PEM".into(),
            }
        })?;
    if chain.get(1..) != Some(&issuers[..]) {
        return Err(Error::TdxQuote(
            "the quote's PCK chain differs from the collateral's issuer chain".into(),
        ));
    }
    // dcap-qvl would prefer a PCK chain in the collateral over the quote's; clear it so the
    // quote's own chain, which the framing checks above cover byte for byte, is the one verified.
    let mut collateral = collateral.clone();
    collateral.pck_certificate_chain = None;
    let verified = dcap_qvl::verify::verify(quote, &collateral, now)
        .map_err(|e| Error::TdxQuote(format!("{e:#}")))?;
    let td = verified
        .report
        .as_td10()
        .ok_or_else(|| Error::WrongPlatform("verified report is not a TD report".into()))?;
    if verified.ppid.is_empty() {
        return Err(Error::TdxQuote(
            "the PCK certificate carries no PPID".into(),
        ));
    }
    let m = |bytes: &[u8; 48]| Measurement::new(*bytes);
    Ok(TdxReport {
        measurements: TdMeasurements {
            mrtd: m(&td.mr_td),
            rtmr: [m(&td.rt_mr0), m(&td.rt_mr1), m(&td.rt_mr2), m(&td.rt_mr3)],
        },
        report_data: ReportData::new(td.report_data),
        device_id: DeviceId::from_hardware_id(&verified.ppid),
        tcb_status: TcbStatus::from_intel(&verified.status)?,
        advisory_ids: verified.advisory_ids,
        collateral_issued_at: collateral_issued_at(&collateral)?,
    })
}

/// The length fields around the signature data are not covered by any signature: require them to
/// describe the quote exactly (signature 64 ‖ attestation key 64 ‖ certification data type 2 ‖
/// size 4 ‖ data), allowing only zero padding after it, so that no byte of an accepted quote is
/// ignored.
fn check_declared_length(quote: &[u8]) -> Result<Vec<Vec<u8>>> {
    let malformed = |reason: String| Error::Malformed {
        what: "TDX quote",
        reason,
    };
    let truncated = || malformed("truncated".into());
    let u16_at = |at: usize| {
        quote
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        quote
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    const HEADER: usize = 48;
    const TD10_BODY: usize = 584;
    const FIXED_AUTH: usize = 64 + 64 + 2 + 4;
    let length_at = match u16_at(0) {
        Some(4) => HEADER + TD10_BODY,
        // v5: body type (2) and body size (4) precede the body.
        Some(5) => HEADER + 6 + u32_at(HEADER + 2).ok_or_else(truncated)?,
        other => return Err(malformed(format!("unsupported quote version {other:?}"))),
    };
    let declared = u32_at(length_at).ok_or_else(truncated)?;
    let start = length_at + 4;
    // Type 6: QE report certification data, which carries the PCK chain (all TDX QEs use it).
    let certification_type = u16_at(start + 64 + 64).ok_or_else(truncated)?;
    if certification_type != 6 {
        return Err(malformed(format!(
            "certification data type {certification_type}, expected 6"
        )));
    }
    let certification = u32_at(start + 64 + 64 + 2).ok_or_else(truncated)?;
    if declared != FIXED_AUTH.saturating_add(certification) {
        return Err(malformed(format!(
            "signature data is declared as {declared} bytes but holds {}",
            FIXED_AUTH.saturating_add(certification)
        )));
    }
    // Inside: QE report (384) ‖ its signature (64) ‖ QE auth data size (2) ‖ data ‖ PCK chain type
    // (2, must be 5) ‖ size (4) ‖ the chain; the sizes must add up to the certification data.
    let qe = start + FIXED_AUTH;
    let auth = u16_at(qe + 448).ok_or_else(truncated)? as usize;
    let chain_type = u16_at(qe + 450 + auth).ok_or_else(truncated)?;
    let chain = u32_at(qe + 452 + auth).ok_or_else(truncated)?;
    if chain_type != 5 {
        return Err(malformed(format!(
            "PCK certification data type {chain_type}, expected 5"
        )));
    }
    if certification != (456 + auth).saturating_add(chain) {
        return Err(malformed(
            "inner certification data sizes do not add up".into(),
        ));
    }
    // The chain must be canonical PEM (LF, 64-column base64) with an optional NUL terminator, so
    // that no armour byte can change while the certificates stay the same.
    let pem_at = qe + 456 + auth;
    let chain_bytes = quote
        .get(pem_at..pem_at.saturating_add(chain))
        .ok_or_else(truncated)?;
    let text = chain_bytes.strip_suffix(&[0]).unwrap_or(chain_bytes);
    let certificates =
        der_certificates(text).ok_or_else(|| malformed("PCK chain is not PEM".into()))?;
    if canonical_pem(&certificates) != text {
        return Err(malformed("PCK chain is not canonical PEM".into()));
    }
    let padding = quote
        .get(start.saturating_add(declared)..)
        .ok_or_else(truncated)?;
    if padding.iter().any(|b| *b != 0) {
        return Err(malformed("non-zero bytes after the signature data".into()));
    }
    Ok(certificates)
}

const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const END: &str = "-----END CERTIFICATE-----";

/// The DER certificates of a PEM bundle; `None` if it is not one.
fn der_certificates(text: &[u8]) -> Option<Vec<Vec<u8>>> {
    use base64::{Engine, engine::general_purpose::STANDARD};
    let mut rest = std::str::from_utf8(text).ok()?.trim();
    let mut certificates = Vec::new();
    while !rest.is_empty() {
        let (body, after) = rest.strip_prefix(BEGIN)?.split_once(END)?;
        let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        certificates.push(STANDARD.decode(compact).ok()?);
        rest = after.trim_start();
    }
    (!certificates.is_empty()).then_some(certificates)
}

/// The canonical PEM of `certificates`: LF line ends, 64-column base64.
fn canonical_pem(certificates: &[Vec<u8>]) -> Vec<u8> {
    use base64::{Engine, engine::general_purpose::STANDARD};
    let mut out = String::new();
    for der in certificates {
        out.push_str(BEGIN);
        out.push('\n');
        let encoded = STANDARD.encode(der);
        for line in encoded.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str(END);
        out.push('\n');
    }
    out.into_bytes()
}

/// The oldest `issueDate` of the TCB info and QE identity in `collateral`.
fn collateral_issued_at(collateral: &QuoteCollateralV3) -> Result<u64> {
    let tcb = issue_date("TCB info", &collateral.tcb_info)?;
    let qe = issue_date("QE identity", &collateral.qe_identity)?;
    Ok(tcb.min(qe))
}

fn issue_date(what: &'static str, signed_json: &str) -> Result<u64> {
    let malformed = |reason: String| Error::Malformed { what, reason };
    let value: serde_json::Value =
        serde_json::from_str(signed_json).map_err(|e| malformed(e.to_string()))?;
    let text = value
        .get("issueDate")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| malformed("no issueDate".into()))?;
    let at =
        OffsetDateTime::parse(text, &Rfc3339).map_err(|e| malformed(format!("issueDate: {e}")))?;
    u64::try_from(at.unix_timestamp())
        .map_err(|_| malformed(format!("issueDate {text} before 1970")))
}
