//! Covenant's simulated NVIDIA GPU, for development and CI, as the [simulator](crate::simulator)
//! is for the CPU. It answers a nonce with an SPDM 1.1 GET_MEASUREMENTS request and MEASUREMENTS
//! response in the Hopper layout (SHA-384 measurement blocks, the FWID and driver version as
//! opaque fields, a P-384 signature r‖s by the device key), with a certificate chain from the
//! device key (whose leaf carries the FWID in a DICE TcbInfo extension) to the simulated device
//! root. That evidence goes through the same parser, signature, chain, FWID and nonce checks as a
//! real GPU's ([`verify_gpu`](crate::nvidia::verify_gpu)); only the root differs, and a verifier
//! trusts it only where it trusts the simulated TEE (the chain's `allowSimulatedTee`).
//!
//! The root's seed is public, so its evidence proves nothing; its certificate is deterministic
//! (RFC 6979 signature, fixed names and validity) and pinned as `simulated_gpu_root.pem`.

use p384::ecdsa::{Signature, SigningKey, signature::Signer};
use sha2::{Digest, Sha384};

use crate::{Error, Result, nvidia::GpuEvidence};

/// The pinned certificate of the simulated device root.
pub(crate) const ROOT_PEM: &[u8] = include_bytes!("simulated_gpu_root.pem");
/// The driver version a simulated GPU reports.
pub const DRIVER_VERSION: &str = "covenant-simulated-1";
/// How many measurement blocks a simulated GPU reports.
pub const BLOCKS: usize = 8;

/// A P-384 key that rcgen can sign certificates with.
struct P384 {
    key: SigningKey,
    public: Vec<u8>,
}

impl P384 {
    /// The key whose scalar is derived from `label` ‖ `seed` (SHA-384, so uniformly spread).
    fn derive(label: &[u8], seed: &[u8]) -> Result<Self> {
        let mut h = Sha384::new();
        h.update(label);
        h.update(seed);
        let key = SigningKey::from_slice(&h.finalize()).map_err(|e| Error::Malformed {
            what: "simulated GPU key",
            reason: e.to_string(),
        })?;
        let public = key
            .verifying_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec();
        Ok(Self { key, public })
    }
}

impl rcgen::PublicKeyData for P384 {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P384_SHA384
    }
}

impl rcgen::SigningKey for P384 {
    fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
        let signature: Signature = self.key.sign(msg);
        Ok(signature.to_der().as_bytes().to_vec())
    }
}

fn certificate_error(e: rcgen::Error) -> Error {
    Error::Malformed {
        what: "simulated GPU certificate",
        reason: e.to_string(),
    }
}

fn root_params() -> Result<rcgen::CertificateParams> {
    let mut params =
        rcgen::CertificateParams::new(Vec::<String>::new()).map_err(certificate_error)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "Covenant simulated GPU device root (development only)",
    );
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    Ok(params)
}

fn root_key() -> Result<P384> {
    P384::derive(b"covenant simulated GPU development root v1", &[])
}

/// The simulated device root's certificate, PEM, as made from its public seed.
pub fn development_root_pem() -> Result<String> {
    let key = root_key()?;
    Ok(root_params()?
        .self_signed(&key)
        .map_err(certificate_error)?
        .pem())
}

/// DICE TcbInfo (TCG, OID 2.23.133.5.4.1) naming the vendor and one SHA-384 FWID, which is the
/// last 48 bytes of the value, as in a Hopper leaf.
fn tcb_info(fwid: &[u8; 48]) -> Vec<u8> {
    const SHA384_OID: [u8; 11] = [
        0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02,
    ];
    let tlv = |tag: u8, content: &[u8]| -> Vec<u8> {
        // Every length here is under 128 bytes: the short form.
        let mut out = vec![tag, content.len() as u8];
        out.extend_from_slice(content);
        out
    };
    let fwid_entry = tlv(0x30, &[&SHA384_OID[..], &tlv(0x04, fwid)].concat());
    let fwids = tlv(0xa6, &tlv(0x30, &fwid_entry));
    tlv(0x30, &[tlv(0x80, b"Covenant"), fwids].concat())
}

/// A simulated confidential GPU: a device key certified under the simulated root, its firmware
/// id, and the measurements it reports.
pub struct SimulatedGpu {
    device: P384,
    chain: String,
    fwid: [u8; 48],
    measurements: Vec<[u8; 48]>,
}

impl std::fmt::Debug for SimulatedGpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatedGpu")
            .field("fwid", &hex::encode(self.fwid))
            .finish_non_exhaustive()
    }
}

impl SimulatedGpu {
    /// The GPU whose device key derives from `device_seed` (so a device keeps its identity
    /// across boots), running firmware `fwid` that reports `measurements`.
    pub fn new(
        device_seed: &[u8; 32],
        fwid: [u8; 48],
        measurements: [[u8; 48]; BLOCKS],
    ) -> Result<Self> {
        let device = P384::derive(b"covenant simulated GPU device v1", device_seed)?;
        let root = root_key()?;
        let root_params = root_params()?;
        let issuer = rcgen::Issuer::from_params(&root_params, &root);
        let mut params =
            rcgen::CertificateParams::new(Vec::<String>::new()).map_err(certificate_error)?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("Covenant simulated GPU {}", hex::encode(&device_seed[..8])),
        );
        params
            .custom_extensions
            .push(rcgen::CustomExtension::from_oid_content(
                &[2, 23, 133, 5, 4, 1],
                tcb_info(&fwid),
            ));
        let leaf = params
            .signed_by(&device, &issuer)
            .map_err(certificate_error)?;
        let root_pem = std::str::from_utf8(ROOT_PEM).map_err(|e| Error::Malformed {
            what: "simulated GPU root",
            reason: e.to_string(),
        })?;
        Ok(Self {
            device,
            chain: format!("{}{root_pem}", leaf.pem()),
            fwid,
            measurements: measurements.to_vec(),
        })
    }

    /// The development GPU of `device_seed`: firmware and measurements fixed by public labels,
    /// the same for every simulated GPU.
    pub fn development(device_seed: &[u8; 32]) -> Result<Self> {
        let digest = |label: &str| -> [u8; 48] { Sha384::digest(label.as_bytes()).into() };
        let mut measurements = [[0; 48]; BLOCKS];
        for (i, m) in measurements.iter_mut().enumerate() {
            *m = digest(&format!("covenant simulated GPU measurement {i}"));
        }
        Self::new(
            device_seed,
            digest("covenant simulated GPU firmware v1"),
            measurements,
        )
    }

    /// Evidence for the SPDM request `nonce`: request ‖ response ‖ signature, and the chain.
    pub fn evidence(&self, nonce: &[u8; 32]) -> GpuEvidence {
        // GET_MEASUREMENTS, SPDM 1.1, signature requested, all blocks, slot 0.
        let mut report = vec![0x11, 0xe0, 0x01, 0xff];
        report.extend_from_slice(nonce);
        report.push(0x00);
        // MEASUREMENTS.
        report.extend_from_slice(&[0x11, 0x60, 0x00, 0x00]);
        let mut record = Vec::new();
        for (i, digest) in self.measurements.iter().enumerate() {
            record.push(i as u8 + 1);
            record.push(0x01); // DMTF measurement specification
            record.extend_from_slice(&(3 + 48u16).to_le_bytes());
            record.push(0x01); // immutable ROM / firmware digest
            record.extend_from_slice(&48u16.to_le_bytes());
            record.extend_from_slice(digest);
        }
        report.push(self.measurements.len() as u8);
        report.extend_from_slice(&(record.len() as u32).to_le_bytes()[..3]);
        report.extend_from_slice(&record);
        let responder_nonce: [u8; 32] = Sha384::digest([&nonce[..], &self.fwid[..]].concat())[..32]
            .try_into()
            .unwrap_or_default();
        report.extend_from_slice(&responder_nonce);
        let mut opaque = Vec::new();
        for (kind, value) in [
            (3u16, [DRIVER_VERSION.as_bytes(), &[0]].concat()),
            (20u16, self.fwid.to_vec()),
        ] {
            opaque.extend_from_slice(&kind.to_le_bytes());
            opaque.extend_from_slice(&(value.len() as u16).to_le_bytes());
            opaque.extend_from_slice(&value);
        }
        report.extend_from_slice(&(opaque.len() as u16).to_le_bytes());
        report.extend_from_slice(&opaque);
        let signature: Signature = self.device.key.sign(&report);
        report.extend_from_slice(&signature.to_bytes());
        GpuEvidence {
            report,
            certificate_chain: self.chain.clone(),
            bound_key: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pinned root is what the public seed makes; `COVENANT_WRITE_VECTORS=1` rewrites it.
    #[test]
    fn the_pinned_root_is_the_development_root() {
        let made = development_root_pem().unwrap();
        if std::env::var_os("COVENANT_WRITE_VECTORS").is_some() {
            std::fs::write(
                concat!(env!("CARGO_MANIFEST_DIR"), "/src/simulated_gpu_root.pem"),
                &made,
            )
            .unwrap();
        }
        assert_eq!(made.as_bytes(), ROOT_PEM);
    }

    #[test]
    fn tcb_info_ends_with_the_fwid() {
        let fwid = [0xab; 48];
        let der = tcb_info(&fwid);
        assert_eq!(der[0], 0x30);
        assert_eq!(usize::from(der[1]), der.len() - 2);
        assert_eq!(&der[der.len() - 48..], &fwid);
    }
}
