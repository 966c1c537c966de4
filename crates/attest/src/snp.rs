//! AMD SEV-SNP attestation reports, verified with the `sev` crate. The report's KEY_INFO names
//! the key that signed it, and that decides the chain:
//! - **VCEK** (a per-chip key): the certificate chains to AMD's pinned ARK → ASK (Milan, Genoa
//!   or Turin) and was issued for this chip (hwID = CHIP_ID);
//! - **VLEK** (a key AMD issues to a cloud provider and the provider loads into its chips' firmware):
//!   the certificate chains to the pinned ARK → ASVK of the same product (`src/amd/`, AMD's
//!   published "SEV-VLEK-<product>" certificates). A VLEK names no chip, so CHIP_ID is only the
//!   firmware's word — and clouds mask it to zeros (then every masked chip has the same
//!   [`DeviceId`], see [`SnpReport::chip_id_masked`]).
//!
//! Either way the certificate must be valid at the verification time and certify this TCB (its
//! SPL extensions = the report's REPORTED_TCB), and a report that says it is unsigned is refused.

use sev::{
    certs::snp::{Certificate, Chain, Verifiable, builtin, ca},
    firmware::guest::AttestationReport,
    parser::ByteParser,
};
use sha2::{Digest, Sha256};
use x509_parser::{
    der_parser::{self, oid, oid::Oid},
    prelude::*,
};

use crate::{DeviceId, Error, Measurement, MrAggregated, ReportData, Result, TcbStatus};

/// The length of an SNP attestation report.
pub const REPORT_LEN: usize = 1184;
/// Where the (unsigned) signature block starts; everything before it is signed.
const SIGNATURE_OFFSET: usize = 0x2a0;
/// The largest VCEK certificate accepted, in bytes.
pub const MAX_VCEK_LEN: usize = 4096;

/// What an SNP report proves, once it verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnpReport {
    /// MEASUREMENT: the launch digest.
    pub measurement: Measurement,
    /// HOST_DATA, set by the host at launch.
    pub host_data: [u8; 32],
    /// REPORT_DATA.
    pub report_data: ReportData,
    /// sha256(CHIP_ID).
    pub device_id: DeviceId,
    /// The TCB the report was signed at (the VCEK's).
    pub reported_tcb: SnpTcb,
    /// The TCB the firmware has committed to (no rollback below it).
    pub committed_tcb: SnpTcb,
    /// What the guest policy and the request allow: judged by [`check_guest`].
    pub guest: SnpGuest,
    /// Which AMD key signed the report.
    pub signer: SnpSigner,
    /// CHIP_ID is all zeros: the firmware was told to mask it (clouds that sign with a VLEK do),
    /// so [`SnpReport::device_id`] names no single chip.
    pub chip_id_masked: bool,
}

/// The AMD key that signed a report (the report's KEY_INFO.SIGNING_KEY).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SnpSigner {
    /// The chip's Versioned Chip Endorsement Key: ARK → ASK → VCEK.
    Vcek,
    /// A cloud provider's Versioned Loaded Endorsement Key: ARK → ASVK → VLEK.
    Vlek,
}

impl SnpSigner {
    fn from_key_info(signing_key: u32) -> Result<Self> {
        match signing_key {
            0 => Ok(Self::Vcek),
            1 => Ok(Self::Vlek),
            7 => Err(fail("report signature", "the report says it is not signed")),
            other => Err(fail(
                "report signature",
                format!("unknown signing key {other} in KEY_INFO"),
            )),
        }
    }

    /// What the certificate is called in messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Vcek => "VCEK",
            Self::Vlek => "VLEK",
        }
    }
}

/// The parts of a report that say how far the guest can be inspected or moved, and from where
/// the report was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnpGuest {
    /// The guest policy allows debugging (the host can read and write guest memory).
    pub debug_allowed: bool,
    /// The guest policy allows a migration agent.
    pub migration_agent_allowed: bool,
    /// The VMPL the report was requested at.
    pub vmpl: u32,
}

/// Refuses a guest whose policy allows debugging or a migration agent, or whose report was not
/// requested at VMPL 0 (a lower-privileged level could ask for reports over anything).
pub fn check_guest(guest: &SnpGuest) -> Result<()> {
    if guest.debug_allowed {
        return Err(fail("guest policy", "debugging is allowed"));
    }
    if guest.migration_agent_allowed {
        return Err(fail("guest policy", "a migration agent is allowed"));
    }
    if guest.vmpl != 0 {
        return Err(fail(
            "VMPL",
            format!("the report was requested at VMPL {}, not 0", guest.vmpl),
        ));
    }
    Ok(())
}

/// An SEV-SNP TCB version: the security patch levels of its components.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SnpTcb {
    /// PSP bootloader SPL.
    pub bootloader: u8,
    /// PSP OS (TEE) SPL.
    pub tee: u8,
    /// SNP firmware SPL.
    pub snp: u8,
    /// Microcode SPL.
    pub microcode: u8,
}

impl SnpTcb {
    /// Whether every component is at least `minimum`'s.
    pub fn meets(&self, minimum: &SnpTcb) -> bool {
        self.bootloader >= minimum.bootloader
            && self.tee >= minimum.tee
            && self.snp >= minimum.snp
            && self.microcode >= minimum.microcode
    }

    /// The TCB status under `minimum`: `UpToDate` when both the reported and the committed TCB
    /// meet it, otherwise `OutOfDate`. Without a configured minimum nothing is up to date.
    pub fn status(reported: &SnpTcb, committed: &SnpTcb, minimum: Option<&SnpTcb>) -> TcbStatus {
        match minimum {
            Some(min) if reported.meets(min) && committed.meets(min) => TcbStatus::UpToDate,
            _ => TcbStatus::OutOfDate,
        }
    }
}

fn tcb(version: &sev::firmware::host::TcbVersion) -> SnpTcb {
    SnpTcb {
        bootloader: version.bootloader,
        tee: version.tee,
        snp: version.snp,
        microcode: version.microcode,
    }
}

impl SnpReport {
    /// sha256(MEASUREMENT ‖ HOST_DATA).
    pub fn mr_aggregated(&self) -> MrAggregated {
        let mut h = Sha256::new();
        h.update(self.measurement.as_bytes());
        h.update(self.host_data);
        MrAggregated::new(h.finalize().into())
    }
}

fn fail(what: &'static str, reason: impl ToString) -> Error {
    Error::SnpVerification {
        what,
        reason: reason.to_string(),
    }
}

/// Verifies `report` with the VCEK or VLEK certificate `vcek_der` (whichever the report's KEY_INFO
/// names) at `now` (unix seconds): signature, chain, certificate bound to this TCB (and, for a
/// VCEK, this chip), guest policy (no debugging, no migration agent, VMPL 0). The TCB status is
/// the caller's to decide ([`SnpTcb::status`]).
pub fn verify_report(report: &[u8], vcek_der: &[u8], now: u64) -> Result<SnpReport> {
    let signed = verify_signed_report(report, vcek_der, now)?;
    check_guest(&signed.guest)?;
    Ok(signed)
}

/// What a report says about the key that signed it, read without verifying anything: what a
/// verifier needs to fetch the VCEK from a key distribution service. Nothing here is trusted;
/// the certificate fetched with it is checked by [`verify_report`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnpSigning {
    /// The key named in KEY_INFO.
    pub signer: SnpSigner,
    /// CHIP_ID.
    pub chip_id: [u8; 64],
    /// REPORTED_TCB.
    pub reported_tcb: SnpTcb,
    /// REPORTED_TCB's FMC SPL (Turin and later).
    pub fmc: Option<u8>,
    /// The CPUID family and model of the chip (report version 3 and later).
    pub cpuid: Option<(u8, u8)>,
}

/// Reads [`SnpSigning`] from `report`.
pub fn unverified_signing(report: &[u8]) -> Result<SnpSigning> {
    let parsed = parse(report)?;
    Ok(SnpSigning {
        signer: SnpSigner::from_key_info(parsed.key_info.signing_key())?,
        chip_id: parsed.chip_id,
        reported_tcb: tcb(&parsed.reported_tcb),
        fmc: parsed.reported_tcb.fmc,
        cpuid: parsed.cpuid_fam_id.zip(parsed.cpuid_mod_id),
    })
}

/// Whether `vcek_der` is the key that signed `report`, certified by AMD for its chip and TCB and
/// valid at `now`: what a cache of fetched VCEKs checks before it keeps one. Says nothing about
/// the guest; verify reports with [`verify_report`].
pub fn signed_by(report: &[u8], vcek_der: &[u8], now: u64) -> Result<()> {
    verify_signed_report(report, vcek_der, now).map(|_| ())
}

fn parse(report: &[u8]) -> Result<AttestationReport> {
    if report.len() != REPORT_LEN {
        return Err(Error::Length {
            what: "SNP report",
            expected: REPORT_LEN,
            got: report.len(),
        });
    }
    AttestationReport::from_bytes(report).map_err(|e| Error::Malformed {
        what: "SNP report",
        reason: e.to_string(),
    })
}

/// What the AMD key hierarchy vouches for in `report`: signature, chain, certificate bound to
/// this TCB (and chip) — everything but the guest policy ([`check_guest`]).
pub(crate) fn verify_signed_report(report: &[u8], vcek_der: &[u8], now: u64) -> Result<SnpReport> {
    if report.len() != REPORT_LEN {
        return Err(Error::Length {
            what: "SNP report",
            expected: REPORT_LEN,
            got: report.len(),
        });
    }
    if vcek_der.len() > MAX_VCEK_LEN {
        return Err(Error::TooLarge {
            what: "VCEK",
            limit: MAX_VCEK_LEN,
            got: vcek_der.len(),
        });
    }
    let parsed = parse(report)?;
    // The signature is checked over the re-encoded report: require the encoding to be canonical,
    // so no byte of the input escapes the signature.
    let reencoded = parsed.to_bytes().map_err(|e| Error::Malformed {
        what: "SNP report",
        reason: e.to_string(),
    })?;
    if reencoded.as_slice() != report {
        return Err(Error::Malformed {
            what: "SNP report",
            reason: "non-canonical encoding".into(),
        });
    }
    // The signature block is r and s (72 bytes each, little-endian, P-384 uses 48) and reserved
    // bytes: none of it is signed, so everything but the 48-byte scalars must be zero.
    let signature = &report[SIGNATURE_OFFSET..];
    let padding_is_zero =
        signature[48..72].iter().all(|b| *b == 0) && signature[72 + 48..].iter().all(|b| *b == 0);
    if !padding_is_zero {
        return Err(Error::Malformed {
            what: "SNP report",
            reason: "non-zero signature padding".into(),
        });
    }

    let signer = SnpSigner::from_key_info(parsed.key_info.signing_key())?;
    let vek = Certificate::from_der(vcek_der).map_err(|e| fail(signer.name(), e))?;
    let chain = amd_chains(signer)?
        .into_iter()
        .map(|ca| Chain {
            ca,
            vek: vek.clone(),
        })
        .find(|chain| chain.verify().is_ok())
        .ok_or_else(|| match signer {
            SnpSigner::Vcek => fail("VCEK chain", "not signed by any pinned AMD ARK/ASK"),
            SnpSigner::Vlek => fail("VLEK chain", "not signed by any pinned AMD ARK/ASVK"),
        })?;
    (&chain, &parsed)
        .verify()
        .map_err(|e| fail("report signature", e))?;
    check_vek_binding(signer, vcek_der, &parsed, now)?;

    Ok(SnpReport {
        measurement: Measurement::new(parsed.measurement),
        host_data: parsed.host_data,
        report_data: ReportData::new(parsed.report_data),
        device_id: DeviceId::from_hardware_id(&parsed.chip_id),
        reported_tcb: tcb(&parsed.reported_tcb),
        committed_tcb: tcb(&parsed.committed_tcb),
        guest: SnpGuest {
            debug_allowed: parsed.policy.debug_allowed(),
            migration_agent_allowed: parsed.policy.migrate_ma_allowed(),
            vmpl: parsed.vmpl,
        },
        signer,
        chip_id_masked: parsed.chip_id.iter().all(|b| *b == 0),
    })
}

/// AMD's ASVK ("SEV-VLEK-<product>") certificates, each signed by the product's ARK. Copies of
/// the certificates AMD's key distribution service publishes (see `src/amd/README.md`).
const ASVK_MILAN: &[u8] = include_bytes!("amd/asvk_milan.pem");
const ASVK_GENOA: &[u8] = include_bytes!("amd/asvk_genoa.pem");
const ASVK_TURIN: &[u8] = include_bytes!("amd/asvk_turin.pem");

/// The pinned ARK → ASK (VCEK) or ARK → ASVK (VLEK) pairs of every product.
fn amd_chains(signer: SnpSigner) -> Result<Vec<ca::Chain>> {
    let pair = |ark: std::io::Result<Certificate>, ask: std::io::Result<Certificate>| {
        Ok::<_, Error>(ca::Chain {
            ark: ark.map_err(|e| fail("pinned ARK", e))?,
            ask: ask.map_err(|e| fail("pinned ASK/ASVK", e))?,
        })
    };
    let asvk = Certificate::from_pem;
    Ok(match signer {
        SnpSigner::Vcek => vec![
            pair(builtin::milan::ark(), builtin::milan::ask())?,
            pair(builtin::genoa::ark(), builtin::genoa::ask())?,
            pair(builtin::turin::ark(), builtin::turin::ask())?,
        ],
        SnpSigner::Vlek => vec![
            pair(builtin::milan::ark(), asvk(ASVK_MILAN))?,
            pair(builtin::genoa::ark(), asvk(ASVK_GENOA))?,
            pair(builtin::turin::ark(), asvk(ASVK_TURIN))?,
        ],
    })
}

/// The certificate must be valid now and name this TCB (blSPL, teeSPL, snpSPL, ucodeSPL); a VCEK
/// must also name this chip (hwID). A VLEK names no chip, only the cloud provider (cspID).
fn check_vek_binding(
    signer: SnpSigner,
    vcek_der: &[u8],
    report: &AttestationReport,
    now: u64,
) -> Result<()> {
    let name = signer.name();
    let (_, cert) = X509Certificate::from_der(vcek_der).map_err(|e| fail(name, e))?;
    let validity = cert.validity();
    let now_i = i64::try_from(now).map_err(|_| fail(name, "time out of range"))?;
    if now_i < validity.not_before.timestamp() || now_i > validity.not_after.timestamp() {
        return Err(fail(
            match signer {
                SnpSigner::Vcek => "VCEK validity",
                SnpSigner::Vlek => "VLEK validity",
            },
            format!(
                "not valid at {now} ({} .. {})",
                validity.not_before, validity.not_after
            ),
        ));
    }
    let ext = |oid: Oid<'static>| {
        cert.extensions()
            .iter()
            .find(|e| e.oid == oid)
            .map(|e| e.value)
            .ok_or_else(|| fail(name, format!("missing extension {oid}")))
    };
    let spl = |oid: Oid<'static>| -> Result<u8> {
        let raw = ext(oid.clone())?;
        let (_, any) = der_parser::der::parse_der_integer(raw).map_err(|e| fail(name, e))?;
        any.as_u32()
            .ok()
            .and_then(|v| u8::try_from(v).ok())
            .ok_or_else(|| fail(name, format!("bad SPL {oid}")))
    };
    let tcb = &report.reported_tcb;
    let checks = [
        (
            "bootloader",
            spl(oid!(1.3.6.1.4.1.3704.1.3.1))?,
            tcb.bootloader,
        ),
        ("tee", spl(oid!(1.3.6.1.4.1.3704.1.3.2))?, tcb.tee),
        ("snp", spl(oid!(1.3.6.1.4.1.3704.1.3.3))?, tcb.snp),
        (
            "microcode",
            spl(oid!(1.3.6.1.4.1.3704.1.3.8))?,
            tcb.microcode,
        ),
    ];
    for (component, in_vcek, in_report) in checks {
        if in_vcek != in_report {
            return Err(fail(
                "certified TCB",
                format!("{component} SPL is {in_vcek} in the {name} but {in_report} in the report"),
            ));
        }
    }
    if signer == SnpSigner::Vlek {
        // The cloud provider the VLEK was issued to; a VLEK without one is not a VLEK.
        ext(oid!(1.3.6.1.4.1.3704.1.5))?;
        return Ok(());
    }
    let hw_id = ext(oid!(1.3.6.1.4.1.3704.1.4))?;
    // hwID is an OCTET STRING; some VCEKs carry the raw 64 bytes.
    let hw_id = match der_parser::der::parse_der_octetstring(hw_id) {
        Ok((_, obj)) => obj.as_slice().map_err(|e| fail("VCEK", e))?.to_vec(),
        Err(_) => hw_id.to_vec(),
    };
    let chip_id = &report.chip_id[..];
    let matches = hw_id == chip_id
        || (hw_id.len() < 64
            && chip_id.starts_with(&hw_id)
            && chip_id[hw_id.len()..].iter().all(|b| *b == 0));
    if !matches {
        return Err(fail("VCEK chip id", "the VCEK was issued for another chip"));
    }
    Ok(())
}
