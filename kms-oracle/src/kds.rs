//! VCEK certificates for SEV-SNP reports whose evidence carries none (the guest's host supplied
//! no certificate table), from a service in the shape of AMD's key distribution service
//! (`/vcek/v1/<product>/<hwid>?blSPL=…&teeSPL=…&snpSPL=…&ucodeSPL=…`), kept in an on-disk cache.
//!
//! - A VCEK is fixed for its chip and TCB, so a cached one is used for as long as it is valid
//!   (`covenant-attest` checks its validity at every verification). A certificate is cached
//!   (on disk, and in memory so a repeat is neither read nor checked twice) only once it
//!   verified the report it was fetched for.
//! - Nothing fetched is trusted for what it says: `covenant-attest` checks the chain to AMD's
//!   pinned ARK/ASK and that the certificate names the report's chip and TCB. That is why plain
//!   HTTP is enough for authenticity; an attacker on the path can only withhold a VCEK (the
//!   client is then refused: fail closed).
//! - The product (Milan, Genoa, Turin) is read from the report's CPUID fields (report version 3
//!   and later); an older report is tried as Milan, then Genoa.
//! - A VLEK is never fetched: it is the cloud's key, and no public service hands it out; a
//!   VLEK-signed report must carry it.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use covenant_attest::snp::{SnpSigner, SnpSigning};

/// The largest certificate read from the service.
const MAX_RESPONSE: usize = 16 * 1024;

/// Why no VCEK.
#[derive(Debug, thiserror::Error)]
pub enum VcekError {
    /// The report does not parse, or names no signing key.
    #[error("the SEV-SNP report does not say what signed it: {0}")]
    Report(String),
    /// A VLEK-signed report without its VLEK.
    #[error(
        "the SEV-SNP report is signed by a VLEK and its evidence carries none (a VLEK cannot be fetched)"
    )]
    VlekMissing,
    /// The service had none that verifies.
    #[error("no VCEK for chip {chip}… at TCB {tcb}: {reason}")]
    Unavailable {
        /// The first bytes of the chip id, hex.
        chip: String,
        /// The reported TCB.
        tcb: String,
        /// What failed, per product tried.
        reason: String,
    },
}

/// AMD's products, as the key distribution service names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Product {
    /// EPYC 7003.
    Milan,
    /// EPYC 9004 (and 8004, 97x4).
    Genoa,
    /// EPYC 9005.
    Turin,
}

impl Product {
    fn name(self) -> &'static str {
        match self {
            Self::Milan => "Milan",
            Self::Genoa => "Genoa",
            Self::Turin => "Turin",
        }
    }

    /// The products a report may come from, most likely first.
    pub fn candidates(signing: &SnpSigning) -> Vec<Product> {
        match signing.cpuid {
            Some((0x19, model)) if model < 0x10 => vec![Self::Milan],
            Some((0x19, _)) => vec![Self::Genoa],
            Some((0x1a, _)) => vec![Self::Turin],
            Some(_) => Vec::new(),
            None => vec![Self::Milan, Self::Genoa],
        }
    }

    /// The service's path for `signing`'s VCEK: the hardware id is the whole CHIP_ID before
    /// Turin and its first 8 bytes from Turin on, which also names the FMC SPL.
    pub fn vcek_path(self, signing: &SnpSigning) -> String {
        let t = &signing.reported_tcb;
        let (hwid, fmc) = match self {
            Self::Turin => (
                hex::encode(&signing.chip_id[..8]),
                format!("&fmcSPL={}", signing.fmc.unwrap_or(0)),
            ),
            _ => (hex::encode(signing.chip_id), String::new()),
        };
        format!(
            "vcek/v1/{}/{hwid}?blSPL={}&teeSPL={}&snpSPL={}&ucodeSPL={}{fmc}",
            self.name(),
            t.bootloader,
            t.tee,
            t.snp,
            t.microcode
        )
    }
}

/// The most verified VCEKs kept in memory (one per chip and TCB seen).
const MEMORY_ENTRIES: usize = 4096;

/// A key distribution service client with its cache.
#[derive(Clone, Debug)]
pub struct Kds {
    base: url::Url,
    http: reqwest::Client,
    cache_dir: PathBuf,
    /// VCEKs that verified a report, by request path: answered without the disk or a second
    /// verification (the verifier checks the certificate again anyway).
    verified: Arc<Mutex<HashMap<String, Vec<u8>>>>,
}

impl Kds {
    /// A client of the service at `base`, caching in `cache_dir`.
    pub fn new(base: url::Url, cache_dir: PathBuf, timeout: Duration) -> crate::Result<Self> {
        Ok(Self {
            base,
            http: crate::fetch::client(timeout, "kds client")?,
            cache_dir,
            verified: Arc::default(),
        })
    }

    /// The VCEK (DER) that signed `report`, valid at `now`: cached, or fetched and checked.
    pub async fn vcek(&self, report: &[u8], now: u64) -> Result<Vec<u8>, VcekError> {
        let signing = covenant_attest::snp::unverified_signing(report)
            .map_err(|e| VcekError::Report(e.to_string()))?;
        if signing.signer == SnpSigner::Vlek {
            return Err(VcekError::VlekMissing);
        }
        let mut reasons = Vec::new();
        for product in Product::candidates(&signing) {
            let path = product.vcek_path(&signing);
            if let Some(der) = self
                .verified
                .lock()
                .ok()
                .and_then(|m| m.get(&path).cloned())
            {
                return Ok(der);
            }
            let file = self.cache_dir.join(cache_name(&path));
            if let Some(der) = std::fs::read(&file).ok()
                && covenant_attest::snp::signed_by(report, &der, now).is_ok()
            {
                self.remember(path, &der);
                return Ok(der);
            }
            match self.fetch(&path).await {
                Ok(der) => match covenant_attest::snp::signed_by(report, &der, now) {
                    Ok(()) => {
                        crate::fetch::write_cache(&file, &der);
                        self.remember(path, &der);
                        return Ok(der);
                    }
                    Err(e) => reasons.push(format!("{}: the served VCEK {e}", product.name())),
                },
                Err(e) => reasons.push(format!("{}: {e}", product.name())),
            }
        }
        if reasons.is_empty() {
            reasons.push(format!(
                "the report's CPUID {:?} is no product this node knows",
                signing.cpuid
            ));
        }
        Err(VcekError::Unavailable {
            chip: hex::encode(&signing.chip_id[..8]),
            tcb: format!("{:?}", signing.reported_tcb),
            reason: reasons.join("; "),
        })
    }

    fn remember(&self, path: String, der: &[u8]) {
        if let Ok(mut memory) = self.verified.lock() {
            if memory.len() >= MEMORY_ENTRIES {
                memory.clear();
            }
            memory.insert(path, der.to_vec());
        }
    }

    async fn fetch(&self, path: &str) -> Result<Vec<u8>, String> {
        let response = crate::fetch::get(&self.http, &self.base, path, MAX_RESPONSE).await?;
        crate::fetch::body(response, MAX_RESPONSE).await
    }
}

/// A file name for the VCEK at `path`: the path's characters that are safe in a file name.
fn cache_name(path: &str) -> String {
    let safe: String = path
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("snp-{safe}.der")
}

#[cfg(test)]
mod tests {
    use covenant_attest::snp::SnpTcb;

    use super::*;

    fn signing(cpuid: Option<(u8, u8)>) -> SnpSigning {
        let mut chip_id = [0u8; 64];
        chip_id[0] = 0xab;
        chip_id[63] = 0xcd;
        SnpSigning {
            signer: SnpSigner::Vcek,
            chip_id,
            reported_tcb: SnpTcb {
                bootloader: 3,
                tee: 0,
                snp: 8,
                microcode: 115,
            },
            fmc: Some(1),
            cpuid,
        }
    }

    #[test]
    fn the_product_comes_from_cpuid_and_shapes_the_path() {
        assert_eq!(
            Product::candidates(&signing(None)),
            [Product::Milan, Product::Genoa]
        );
        assert_eq!(
            Product::candidates(&signing(Some((0x19, 0x01)))),
            [Product::Milan]
        );
        assert_eq!(
            Product::candidates(&signing(Some((0x19, 0x11)))),
            [Product::Genoa]
        );
        assert_eq!(
            Product::candidates(&signing(Some((0x1a, 0x02)))),
            [Product::Turin]
        );
        assert!(Product::candidates(&signing(Some((0x17, 0x31)))).is_empty());

        let milan = Product::Milan.vcek_path(&signing(None));
        assert!(milan.starts_with("vcek/v1/Milan/ab0000"), "{milan}");
        assert!(
            milan.ends_with("00cd?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115"),
            "{milan}"
        );
        let turin = Product::Turin.vcek_path(&signing(None));
        assert_eq!(
            turin,
            "vcek/v1/Turin/ab00000000000000?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115&fmcSPL=1"
        );
        assert!(!cache_name(&milan).contains(['/', '?', '&', '=']));
    }
}
