//! TDX runtime measurement register 3, extended through the kernel's TDX guest interface: the
//! `measurements/rtmr3:sha384` attribute of the `tdx_guest` device (Linux tsm-mr), where writing
//! a 48-byte digest extends RTMR3 with it (`RTMR3 = SHA384(RTMR3 ‖ digest)`).

use std::{
    fs::OpenOptions,
    io::Write,
    path::{Path, PathBuf},
};

use crate::{Error, Result};

/// Where the kernel exposes RTMR3.
pub const DEFAULT_RTMR3: &str = "/sys/class/misc/tdx_guest/measurements/rtmr3:sha384";

/// RTMR3 through sysfs.
#[derive(Clone, Debug)]
pub struct Rtmr3 {
    path: PathBuf,
}

impl Default for Rtmr3 {
    fn default() -> Self {
        Self::new(DEFAULT_RTMR3)
    }
}

impl Rtmr3 {
    /// The register at `path` (tests pass a file of a fake tree).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The attribute's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Extends RTMR3 with `digest`: one write of exactly 48 bytes at offset 0 (the attribute
    /// neither truncates nor appends).
    pub fn extend(&self, digest: &[u8; 48]) -> Result<()> {
        let fail = |reason: String| Error::Kernel {
            path: self.path.clone(),
            reason,
        };
        let mut file = OpenOptions::new()
            .write(true)
            .open(&self.path)
            .map_err(|e| fail(format!("open for extending: {e}")))?;
        let written = file
            .write(digest)
            .map_err(|e| fail(format!("extend: {e}")))?;
        if written != digest.len() {
            return Err(fail(format!(
                "the kernel took {written} of 48 bytes of the digest"
            )));
        }
        Ok(())
    }
}
