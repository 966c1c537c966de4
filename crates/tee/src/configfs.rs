//! Quote generation on real hardware through Linux configfs-tsm
//! (`/sys/kernel/config/tsm/report`), which serves both TDX (`tdx_guest`) and SEV-SNP
//! (`sev_guest`) guests: make an entry directory, write the 64 bytes of report data to `inblob`,
//! read the quote from `outblob`, and check `generation` to make sure no other writer raced us.

use std::{
    fs,
    io::Read,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use covenant_attest::{Platform, ReportData};

use crate::{Error, Result};

/// Where the kernel exposes configfs-tsm.
pub const DEFAULT_ROOT: &str = "/sys/kernel/config/tsm/report";
/// The largest quote or auxiliary blob read, in bytes.
pub const MAX_BLOB_LEN: usize = 64 * 1024;

/// A quote fresh from the platform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TsmQuote {
    /// Which TEE produced it.
    pub platform: Platform,
    /// The quote (TDX) or report (SNP).
    pub quote: Vec<u8>,
    /// The auxiliary blob (SNP: the certificate table the host supplied), possibly empty.
    pub aux: Vec<u8>,
}

/// Plays the kernel's part in unit tests: populates an entry the moment it is made, as
/// configfs does on `mkdir`.
#[cfg(test)]
pub(crate) type FakeKernel = std::sync::Arc<dyn Fn(&Path) + Send + Sync>;

/// A configfs-tsm mount.
#[derive(Clone)]
pub struct ConfigfsTsm {
    root: PathBuf,
    #[cfg(test)]
    fake_kernel: Option<FakeKernel>,
}

impl std::fmt::Debug for ConfigfsTsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigfsTsm")
            .field("root", &self.root)
            .finish()
    }
}

impl Default for ConfigfsTsm {
    fn default() -> Self {
        Self::new(DEFAULT_ROOT)
    }
}

impl ConfigfsTsm {
    /// A configfs-tsm report directory at `root` (tests pass a fake tree).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            #[cfg(test)]
            fake_kernel: None,
        }
    }

    /// This mount with `kernel` populating every new entry (a fake tree that behaves).
    #[cfg(test)]
    pub(crate) fn with_fake_kernel(mut self, kernel: FakeKernel) -> Self {
        self.fake_kernel = Some(kernel);
        self
    }

    /// The provider behind the mount (`tdx_guest`, `sev_guest`): which TEE this machine is.
    pub fn platform(&self) -> Result<Platform> {
        let entry = self.open()?;
        provider(&entry.path)
    }

    /// Creates a new report entry (removed again when dropped).
    pub fn open(&self) -> Result<TsmEntry> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "covenant-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = self.root.join(name);
        fs::create_dir(&path).map_err(|e| failure(&path, format!("mkdir: {e}")))?;
        #[cfg(test)]
        if let Some(kernel) = &self.fake_kernel {
            kernel(&path);
        }
        Ok(TsmEntry { path })
    }

    /// Creates an entry and asks it for a quote over `report_data`.
    pub fn quote(&self, report_data: &ReportData) -> Result<TsmQuote> {
        self.open()?.quote(report_data)
    }
}

/// One configfs-tsm report entry.
#[derive(Debug)]
pub struct TsmEntry {
    path: PathBuf,
}

impl TsmEntry {
    /// The entry's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `report_data` and reads the quote the kernel produced for it. Fails if the entry
    /// was written by anyone else in between (its generation is not 1).
    pub fn quote(&self, report_data: &ReportData) -> Result<TsmQuote> {
        let inblob = self.path.join("inblob");
        fs::write(&inblob, report_data.as_bytes()).map_err(|e| failure(&inblob, e))?;
        let quote = read_bounded(&self.path.join("outblob"))?;
        let generation = read_text(&self.path.join("generation"))?;
        if generation != "1" {
            return Err(failure(
                &self.path,
                format!("generation is {generation}, expected 1: another writer used this entry"),
            ));
        }
        let platform = provider(&self.path)?;
        let aux_path = self.path.join("auxblob");
        let aux = if aux_path.exists() {
            read_bounded(&aux_path)?
        } else {
            Vec::new()
        };
        if quote.is_empty() {
            return Err(failure(&self.path, "empty outblob"));
        }
        Ok(TsmQuote {
            platform,
            quote,
            aux,
        })
    }
}

impl Drop for TsmEntry {
    fn drop(&mut self) {
        // configfs removes the attribute files with the directory.
        let _ = fs::remove_dir(&self.path);
    }
}

fn provider(entry: &Path) -> Result<Platform> {
    match read_text(&entry.join("provider"))?.as_str() {
        "tdx_guest" => Ok(Platform::Tdx),
        "sev_guest" => Ok(Platform::Snp),
        other => Err(failure(entry, format!("unknown provider {other:?}"))),
    }
}

fn failure(path: &Path, reason: impl ToString) -> Error {
    Error::Kernel {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

fn read_bounded(path: &Path) -> Result<Vec<u8>> {
    let file = fs::File::open(path).map_err(|e| failure(path, e))?;
    let mut out = Vec::new();
    file.take(MAX_BLOB_LEN as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| failure(path, e))?;
    if out.len() > MAX_BLOB_LEN {
        return Err(Error::TooLarge {
            what: "configfs-tsm blob",
            limit: MAX_BLOB_LEN,
            got: out.len(),
        });
    }
    Ok(out)
}

fn read_text(path: &Path) -> Result<String> {
    let bytes = read_bounded(path)?;
    Ok(String::from_utf8_lossy(&bytes).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plays the kernel's part for an entry: provider, generation and the quote it will return.
    fn fake_kernel(entry: &TsmEntry, provider: &str, generation: &str, quote: &[u8]) {
        fs::write(entry.path().join("provider"), format!("{provider}\n")).unwrap();
        fs::write(entry.path().join("generation"), format!("{generation}\n")).unwrap();
        fs::write(entry.path().join("outblob"), quote).unwrap();
    }

    fn root() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn writes_the_report_data_and_reads_the_quote() {
        let root = root();
        let tsm = ConfigfsTsm::new(root.path());
        let entry = tsm.open().unwrap();
        fake_kernel(&entry, "tdx_guest", "1", b"a TDX quote");
        let quote = entry.quote(&ReportData::new([7; 64])).unwrap();
        assert_eq!(
            quote,
            TsmQuote {
                platform: Platform::Tdx,
                quote: b"a TDX quote".to_vec(),
                aux: vec![]
            }
        );
        assert_eq!(fs::read(entry.path().join("inblob")).unwrap(), vec![7; 64]);
    }

    #[test]
    fn reads_snp_with_its_aux_blob() {
        let root = root();
        let entry = ConfigfsTsm::new(root.path()).open().unwrap();
        fake_kernel(&entry, "sev_guest", "1", b"an SNP report");
        fs::write(entry.path().join("auxblob"), b"certs").unwrap();
        let quote = entry.quote(&ReportData::new([0; 64])).unwrap();
        assert_eq!(quote.platform, Platform::Snp);
        assert_eq!(quote.aux, b"certs");
    }

    #[test]
    fn refuses_a_raced_entry_an_unknown_provider_and_oversized_blobs() {
        let root = root();
        let tsm = ConfigfsTsm::new(root.path());
        let entry = tsm.open().unwrap();
        fake_kernel(&entry, "tdx_guest", "2", b"q");
        assert!(
            entry
                .quote(&ReportData::new([0; 64]))
                .unwrap_err()
                .to_string()
                .contains("another writer")
        );
        let entry = tsm.open().unwrap();
        fake_kernel(&entry, "arm_cca", "1", b"q");
        assert!(
            entry
                .quote(&ReportData::new([0; 64]))
                .unwrap_err()
                .to_string()
                .contains("unknown provider")
        );
        let entry = tsm.open().unwrap();
        fake_kernel(&entry, "tdx_guest", "1", &vec![0; MAX_BLOB_LEN + 1]);
        assert!(matches!(
            entry.quote(&ReportData::new([0; 64])),
            Err(Error::TooLarge { .. })
        ));
        let entry = tsm.open().unwrap();
        fake_kernel(&entry, "tdx_guest", "1", b"");
        assert!(entry.quote(&ReportData::new([0; 64])).is_err());
    }

    #[test]
    fn a_missing_configfs_is_a_clear_error() {
        let err = ConfigfsTsm::new("/nonexistent/tsm/report")
            .quote(&ReportData::new([0; 64]))
            .unwrap_err();
        assert!(matches!(err, Error::Kernel { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/tsm/report"), "{err}");
    }

    #[test]
    fn entries_are_unique_and_removed() {
        let root = root();
        let tsm = ConfigfsTsm::new(root.path());
        let (a, b) = (tsm.open().unwrap(), tsm.open().unwrap());
        assert_ne!(a.path(), b.path());
        let path = a.path().to_owned();
        drop(a);
        assert!(!path.exists());
    }
}
