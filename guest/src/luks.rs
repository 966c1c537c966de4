//! The instance's data volume on a real VM: a LUKS2 block device the host attaches, unlocked with
//! the instance's volume key through `cryptsetup`, an ext4 file system inside, mounted for the
//! workload. The host sees ciphertext only; the key never leaves the guest's memory except on
//! the pipe to `cryptsetup` (never in an argument, so never in `ps` or an audit log).
//!
//! A device is formatted only while the instance's state directory has no [`FORMATTED_MARKER`]
//! (written once the volume and its file system are made): a device without a LUKS2 header after that was replaced
//! or wiped by the host, and the boot stops rather than hand the app an empty volume. (The marker
//! is in the clear, like the instance id: a host that deletes it and wipes the device gets the
//! app an empty volume, which wiping alone already costs the app.) A LUKS2 device the key does
//! not open (another instance's, or one the host made) stops the boot too.
//!
//! The tools are found on `PATH` (`cryptsetup`, `mkfs.ext4`, `mount`, `umount`).

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use zeroize::Zeroizing;

/// The file in the state directory that says the instance's device was formatted.
pub const FORMATTED_MARKER: &str = "volume-luks2";

/// The device-mapper name of the open volume.
pub const MAPPER_NAME: &str = "covenant-data";

/// Why the volume could not be opened or closed.
#[derive(Debug, thiserror::Error)]
pub enum LuksError {
    /// A boot after the format found no LUKS2 header: the device was replaced or wiped.
    #[error(
        "{0} holds no LUKS2 volume, but this instance's was formatted before: the host replaced \
         or wiped the instance's data device"
    )]
    NotLuks(PathBuf),
    /// A tool failed.
    #[error("{tool} failed ({status}): {stderr}")]
    Tool {
        /// The tool and its subcommand.
        tool: String,
        /// Its exit status.
        status: String,
        /// What it said.
        stderr: String,
    },
    /// A tool could not be started.
    #[error("cannot run {tool}: {reason}")]
    Missing {
        /// The tool.
        tool: String,
        /// Why.
        reason: String,
    },
}

/// An open, mounted volume: [`OpenVolume::close`] unmounts and locks it.
#[derive(Debug)]
pub struct OpenVolume {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Whether this boot formatted it.
    pub formatted: bool,
}

fn run(tool: &str, args: &[&str], key: Option<&[u8]>) -> Result<std::process::Output, LuksError> {
    let name = || format!("{tool} {}", args.first().copied().unwrap_or_default());
    let mut child = Command::new(tool)
        .args(args)
        .stdin(if key.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| LuksError::Missing {
            tool: tool.to_owned(),
            reason: e.to_string(),
        })?;
    if let (Some(key), Some(mut stdin)) = (key, child.stdin.take()) {
        // Dropping stdin closes it: the tool reads the key to end of file.
        stdin.write_all(key).map_err(|e| LuksError::Tool {
            tool: name(),
            status: "key not written".into(),
            stderr: e.to_string(),
        })?;
    }
    child.wait_with_output().map_err(|e| LuksError::Tool {
        tool: name(),
        status: "no exit status".into(),
        stderr: e.to_string(),
    })
}

fn check(tool: &str, args: &[&str], key: Option<&[u8]>) -> Result<(), LuksError> {
    let out = run(tool, args, key)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(LuksError::Tool {
            tool: format!("{tool} {}", args.first().copied().unwrap_or_default()),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

fn path_str(path: &Path) -> Result<&str, LuksError> {
    path.to_str().ok_or_else(|| LuksError::Missing {
        tool: "the volume".into(),
        reason: format!("{} is not UTF-8", path.display()),
    })
}

/// Opens the instance's volume on `device` with `key` and mounts it on `mount_point`,
/// formatting it first when the device has no LUKS2 header and `state_dir` says the instance's
/// was never formatted.
pub fn open(
    device: &Path,
    mount_point: &Path,
    key: &Zeroizing<[u8; 32]>,
    state_dir: &Path,
) -> Result<OpenVolume, LuksError> {
    let dev = path_str(device)?;
    let marker = state_dir.join(FORMATTED_MARKER);
    let first_boot = !marker.exists();
    let is_luks = run("cryptsetup", &["isLuks", "--type", "luks2", dev], None)?
        .status
        .success();
    let formatted = match (is_luks, first_boot) {
        (true, _) => false,
        (false, false) => return Err(LuksError::NotLuks(device.to_owned())),
        (false, true) => {
            tracing::info!(
                device = dev,
                "first boot: formatting the data device as LUKS2"
            );
            // The key is 32 uniformly random bytes, not a password: a slow KDF adds nothing.
            check(
                "cryptsetup",
                &[
                    "luksFormat",
                    "--type",
                    "luks2",
                    "--batch-mode",
                    "--cipher",
                    "aes-xts-plain64",
                    "--key-size",
                    "512",
                    "--pbkdf",
                    "pbkdf2",
                    "--pbkdf-force-iterations",
                    "1000",
                    "--key-file",
                    "-",
                    dev,
                ],
                Some(key.as_slice()),
            )?;
            true
        }
    };
    check(
        "cryptsetup",
        &[
            "open",
            "--type",
            "luks2",
            "--key-file",
            "-",
            dev,
            MAPPER_NAME,
        ],
        Some(key.as_slice()),
    )?;
    let mapped = format!("/dev/mapper/{MAPPER_NAME}");
    let mounted = (|| {
        if first_boot {
            // Also after a format that stopped before its file system was made: the volume
            // opened with this instance's key, and nothing was ever stored on it.
            check("mkfs.ext4", &["-q", "-L", "covenant-data", &mapped], None)?;
            std::fs::write(&marker, b"").map_err(|e| LuksError::Missing {
                tool: "the format marker".into(),
                reason: format!("{}: {e}", marker.display()),
            })?;
        }
        std::fs::create_dir_all(mount_point).map_err(|e| LuksError::Missing {
            tool: "mkdir".into(),
            reason: format!("{}: {e}", mount_point.display()),
        })?;
        check(
            "mount",
            &["-o", "nodev,nosuid", &mapped, path_str(mount_point)?],
            None,
        )
    })();
    if let Err(e) = mounted {
        // Leave nothing open behind a failed boot.
        let _ = check("cryptsetup", &["close", MAPPER_NAME], None);
        return Err(e);
    }
    Ok(OpenVolume {
        mount_point: mount_point.to_owned(),
        formatted,
    })
}

impl OpenVolume {
    /// Unmounts and locks the volume.
    pub fn close(self) -> Result<(), LuksError> {
        check("umount", &[path_str(&self.mount_point)?], None)?;
        check("cryptsetup", &["close", MAPPER_NAME], None)
    }
}
