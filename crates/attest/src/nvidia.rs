//! NVIDIA Hopper GPU evidence in confidential-computing mode, in pure Rust: the SPDM 1.1
//! GET_MEASUREMENTS request and MEASUREMENTS response, the ECDSA P-384/SHA-384 signature by the
//! device's leaf key over both, the five-certificate chain to the pinned NVIDIA Device Identity
//! CA (validity checked at the given time), the FWID of the leaf against the firmware's, and the
//! request nonce.
//!
//! The guest binds the GPU evidence to its CPU evidence by using [`gpu_nonce`] of the CPU quote's
//! report data as the SPDM request nonce, and by extending sha256 of the GPU evidence into the
//! runtime log (`gpu-evidence` event).

use p384::ecdsa::{Signature, VerifyingKey, signature::Verifier};
use sha2::{Digest, Sha256};
use x509_parser::{certificate::X509Certificate, der_parser::oid, pem::Pem, prelude::FromDer};

use crate::{Error, GpuEvidenceHash, ReportData, Result};

/// The pinned root: "NVIDIA Device Identity CA" (self-signed P-384).
const DEVICE_ROOT_PEM: &[u8] = include_bytes!("nvidia_device_identity_ca.pem");
/// Bounds on the inputs.
pub const MAX_REPORT_LEN: usize = 16 * 1024;
/// The most certificates in the chain.
pub const CHAIN_LEN: usize = 5;
/// The largest PEM chain accepted, in bytes.
pub const MAX_CHAIN_LEN: usize = 32 * 1024;

const REQUEST_LEN: usize = 37;
const SIGNATURE_LEN: usize = 96;
const OPAQUE_FWID: u16 = 20;

/// GPU evidence as the guest collects it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuEvidence {
    /// The SPDM GET_MEASUREMENTS request followed by the MEASUREMENTS response.
    #[serde(with = "crate::eventlog::hex_bytes")]
    pub report: Vec<u8>,
    /// The device certificate chain, PEM, leaf first.
    pub certificate_chain: String,
    /// When the SPDM nonce is bound to another key than the evidence's own binding: that key
    /// (SubjectPublicKeyInfo DER), whose RA-TLS report data the nonce derives from
    /// ([`gpu_nonce`] of [`tls_report_data`](crate::tls_report_data)). A guest collects its GPU
    /// evidence once per boot, bound to its boot key; later evidence over other report data
    /// (an app's quote) carries that key here. Empty: bound to the evidence's own binding.
    #[serde(
        default,
        with = "crate::eventlog::hex_bytes",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub bound_key: Vec<u8>,
}

impl GpuEvidence {
    /// sha256(report ‖ chain): what the guest extends into its runtime log.
    /// The bound key is not covered: the nonce inside the report fixes it.
    pub fn hash(&self) -> GpuEvidenceHash {
        let mut h = Sha256::new();
        h.update(&self.report);
        h.update(self.certificate_chain.as_bytes());
        GpuEvidenceHash::new(h.finalize().into())
    }
}

/// What verified GPU evidence says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedGpu {
    /// Measurement blocks: (index, digest value).
    pub measurements: Vec<(u8, Vec<u8>)>,
    /// The firmware id (48 bytes) the leaf certificate and the firmware agree on.
    pub fwid: Vec<u8>,
    /// The driver version string the firmware reports, if any.
    pub driver_version: Option<String>,
    /// The chain ends at the simulated GPU root (development only), not NVIDIA's.
    pub simulated: bool,
}

/// The SPDM nonce that binds GPU evidence to CPU report data:
/// sha256("covenant-gpu-nonce-v1:" ‖ report data).
pub fn gpu_nonce(cpu_report_data: &ReportData) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"covenant-gpu-nonce-v1:");
    h.update(cpu_report_data.as_bytes());
    h.finalize().into()
}

fn fail(what: &'static str, reason: impl ToString) -> Error {
    Error::Gpu {
        what,
        reason: reason.to_string(),
    }
}

/// Verifies `evidence` at `now` (unix seconds), requiring the SPDM request nonce `nonce` and a
/// chain to the NVIDIA Device Identity CA, or to the [simulated GPU](crate::simulated_gpu) root
/// when `accept_simulated` (only where simulated TEEs are accepted).
pub fn verify_gpu(
    evidence: &GpuEvidence,
    nonce: &[u8; 32],
    now: u64,
    accept_simulated: bool,
) -> Result<VerifiedGpu> {
    let report = &evidence.report;
    if report.len() > MAX_REPORT_LEN {
        return Err(Error::TooLarge {
            what: "GPU report",
            limit: MAX_REPORT_LEN,
            got: report.len(),
        });
    }
    if evidence.certificate_chain.len() > MAX_CHAIN_LEN {
        return Err(Error::TooLarge {
            what: "GPU certificate chain",
            limit: MAX_CHAIN_LEN,
            got: evidence.certificate_chain.len(),
        });
    }
    let parsed = parse_report(report)?;
    if &parsed.request_nonce != nonce {
        return Err(fail(
            "nonce",
            "the SPDM request nonce is not the one derived from the CPU evidence",
        ));
    }

    let chain = pem_chain(evidence.certificate_chain.as_bytes())?;
    let certificates = chain
        .iter()
        .map(|der| X509Certificate::from_der(der).map(|(_, c)| c))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| fail("certificate chain", e))?;
    let nvidia_root = pem_chain(DEVICE_ROOT_PEM)?;
    let simulated_root = pem_chain(crate::simulated_gpu::ROOT_PEM)?;
    let simulated = accept_simulated && chain.last() == simulated_root.first();
    if !simulated && chain.last() != nvidia_root.first() {
        return Err(fail(
            "certificate chain",
            if accept_simulated {
                "ends at neither the NVIDIA Device Identity CA nor the simulated GPU root"
            } else {
                "does not end at the pinned NVIDIA Device Identity CA"
            },
        ));
    }
    let now = i64::try_from(now).map_err(|_| fail("time", "out of range"))?;
    for (i, cert) in certificates.iter().enumerate() {
        let validity = cert.validity();
        if now < validity.not_before.timestamp() || now > validity.not_after.timestamp() {
            return Err(fail(
                "certificate validity",
                format!("certificate {i} is not valid at {now}"),
            ));
        }
        let issuer = certificates.get(i + 1).unwrap_or(cert);
        cert.verify_signature(Some(issuer.public_key()))
            .map_err(|e| fail("certificate chain", format!("link {i}: {e}")))?;
    }

    let leaf = certificates
        .first()
        .ok_or_else(|| fail("certificate chain", "empty"))?;
    let key = VerifyingKey::from_sec1_bytes(&leaf.public_key().subject_public_key.data)
        .map_err(|e| fail("leaf key", e))?;
    let signature = Signature::from_slice(&report[report.len() - SIGNATURE_LEN..])
        .map_err(|e| fail("signature", e))?;
    key.verify(&report[..report.len() - SIGNATURE_LEN], &signature)
        .map_err(|e| fail("signature", e))?;

    let dice = leaf
        .extensions()
        .iter()
        .find(|e| e.oid == oid!(2.23.133.5.4.1))
        .ok_or_else(|| fail("FWID", "the leaf has no DICE TcbInfo extension"))?;
    let leaf_fwid = dice
        .value
        .get(dice.value.len().saturating_sub(48)..)
        .unwrap_or_default();
    let fwid = parsed
        .opaque(OPAQUE_FWID)
        .ok_or_else(|| fail("FWID", "the firmware reports none"))?;
    if fwid.len() != 48 || fwid != leaf_fwid {
        return Err(fail(
            "FWID",
            "the firmware's FWID differs from the leaf certificate's",
        ));
    }
    let driver_version = parsed
        .opaque(3)
        .map(|v| String::from_utf8_lossy(v.strip_suffix(&[0]).unwrap_or(v)).into_owned());
    let fwid = fwid.to_vec();
    Ok(VerifiedGpu {
        measurements: parsed.measurements,
        fwid,
        driver_version,
        simulated,
    })
}

struct ParsedReport {
    request_nonce: [u8; 32],
    measurements: Vec<(u8, Vec<u8>)>,
    opaque: Vec<(u16, Vec<u8>)>,
}

impl ParsedReport {
    fn opaque(&self, kind: u16) -> Option<&[u8]> {
        self.opaque
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, v)| v.as_slice())
    }
}

/// Reads request ‖ response; every length must add up to the whole input.
fn parse_report(report: &[u8]) -> Result<ParsedReport> {
    let malformed = |reason: String| Error::Malformed {
        what: "SPDM report",
        reason,
    };
    let mut r = Reader {
        bytes: report,
        at: 0,
    };
    let request = r
        .take(REQUEST_LEN)
        .ok_or_else(|| malformed("truncated request".into()))?;
    if request[1] != 0xe0 {
        return Err(malformed(format!(
            "request code {:#x}, expected GET_MEASUREMENTS",
            request[1]
        )));
    }
    let mut request_nonce = [0; 32];
    request_nonce.copy_from_slice(&request[4..36]);
    let header = r
        .take(4)
        .ok_or_else(|| malformed("truncated response".into()))?;
    if header[1] != 0x60 || header[0] != request[0] {
        return Err(malformed(
            "not a MEASUREMENTS response of the same SPDM version".into(),
        ));
    }
    let blocks = r.u8().ok_or_else(|| malformed("truncated".into()))?;
    let record_len = r.u24().ok_or_else(|| malformed("truncated".into()))?;
    let record = r
        .take(record_len)
        .ok_or_else(|| malformed("truncated measurement record".into()))?;
    let mut measurements = Vec::new();
    let mut rec = Reader {
        bytes: record,
        at: 0,
    };
    while !rec.done() {
        let index = rec
            .u8()
            .ok_or_else(|| malformed("truncated block".into()))?;
        let _spec = rec
            .u8()
            .ok_or_else(|| malformed("truncated block".into()))?;
        let size = rec
            .u16()
            .ok_or_else(|| malformed("truncated block".into()))? as usize;
        let block = rec
            .take(size)
            .ok_or_else(|| malformed("truncated block".into()))?;
        let mut b = Reader {
            bytes: block,
            at: 0,
        };
        let _kind = b.u8().ok_or_else(|| malformed("truncated block".into()))?;
        let value_len = b.u16().ok_or_else(|| malformed("truncated block".into()))? as usize;
        let value = b
            .take(value_len)
            .ok_or_else(|| malformed("truncated value".into()))?;
        if !b.done() {
            return Err(malformed(format!("block {index} has trailing bytes")));
        }
        measurements.push((index, value.to_vec()));
    }
    if measurements.len() != usize::from(blocks) {
        return Err(malformed(format!(
            "{} blocks, header says {blocks}",
            measurements.len()
        )));
    }
    r.take(32)
        .ok_or_else(|| malformed("truncated responder nonce".into()))?;
    let opaque_len = r.u16().ok_or_else(|| malformed("truncated".into()))? as usize;
    let opaque_bytes = r
        .take(opaque_len)
        .ok_or_else(|| malformed("truncated opaque data".into()))?;
    let mut opaque = Vec::new();
    let mut o = Reader {
        bytes: opaque_bytes,
        at: 0,
    };
    while !o.done() {
        let kind = o
            .u16()
            .ok_or_else(|| malformed("truncated opaque field".into()))?;
        let len = o
            .u16()
            .ok_or_else(|| malformed("truncated opaque field".into()))? as usize;
        let value = o
            .take(len)
            .ok_or_else(|| malformed("truncated opaque field".into()))?;
        opaque.push((kind, value.to_vec()));
    }
    r.take(SIGNATURE_LEN)
        .ok_or_else(|| malformed("truncated signature".into()))?;
    if !r.done() {
        return Err(malformed("trailing bytes after the signature".into()));
    }
    Ok(ParsedReport {
        request_nonce,
        measurements,
        opaque,
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let slice = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(slice)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| usize::from(b[0]) | usize::from(b[1]) << 8 | usize::from(b[2]) << 16)
    }
    fn done(&self) -> bool {
        self.at == self.bytes.len()
    }
}

/// The DER certificates of a PEM bundle, at most [`CHAIN_LEN`].
fn pem_chain(pem: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for item in Pem::iter_from_buffer(pem) {
        let item = item.map_err(|e| fail("certificate chain", e))?;
        if item.label != "CERTIFICATE" {
            return Err(fail(
                "certificate chain",
                format!("unexpected PEM label {}", item.label),
            ));
        }
        out.push(item.contents);
        if out.len() > CHAIN_LEN {
            return Err(fail(
                "certificate chain",
                format!("more than {CHAIN_LEN} certificates"),
            ));
        }
    }
    if out.is_empty() {
        return Err(fail("certificate chain", "no certificate"));
    }
    Ok(out)
}
