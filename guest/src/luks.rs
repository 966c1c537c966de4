//! The instance's data volume on a real VM: a LUKS2 block device the host attaches, an ext4 file
//! system inside, mounted for the workload. The host sees ciphertext only.
//!
//! The LUKS2 header is the host's to write, so nothing in it is trusted: the volume key
//! (aes-xts-plain64, 512 bits) is derived from the instance's volume key ([`luks_volume_key`])
//! and handed to `cryptsetup` directly (`--volume-key-file`), never unwrapped from a keyslot a
//! host could have made (a `cipher_null` keyslot opens with any passphrase). `cryptsetup`
//! checks it against the header's digest, which only a holder of the key can have made, and the
//! open mapping must then report that cipher and key size. The key reaches `cryptsetup` through
//! an anonymous memory file (`/dev/fd/N`), never an argument, a disk file or a log.
//!
//! A device is formatted only while the instance's state directory has no [`FORMATTED_MARKER`]
//! (written once the volume and its file system are made): a device without a LUKS2 header after
//! that was replaced or wiped by the host, and the boot stops rather than hand the app an empty
//! volume. A file system is made only where `blkid` finds none, so a host that deletes the
//! marker gains nothing. A LUKS2 device the key does not open (another instance's, or one the
//! host made) stops the boot too.
//!
//! The tools are found on `PATH` (`cryptsetup`, `blkid`, `mkfs.ext4`, `mount`, `umount`).

use std::{
    io::Write,
    os::fd::{AsRawFd, OwnedFd},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

/// The file in the state directory that says the instance's device was formatted.
pub const FORMATTED_MARKER: &str = "volume-luks2";

/// The device-mapper name of the open volume.
pub const MAPPER_NAME: &str = "covenant-data";
/// The data cipher, and its key size in bits.
pub const CIPHER: (&str, u32) = ("aes-xts-plain64", 512);

/// The LUKS2 volume key: HKDF-SHA256(ikm = the instance's volume key, salt =
/// `"covenant-luks2-v1"`, info = `"aes-xts-plain64"`), 64 bytes.
pub fn luks_volume_key(volume_key: &[u8; 32]) -> Zeroizing<[u8; 64]> {
    let mut key = Zeroizing::new([0u8; 64]);
    // 64 bytes is within HKDF-SHA256's output limit.
    let _ = Hkdf::<Sha256>::new(Some(b"covenant-luks2-v1"), volume_key)
        .expand(CIPHER.0.as_bytes(), key.as_mut());
    key
}

/// An anonymous memory file holding `secret`, inherited by the tools this process starts, which
/// read it as `/dev/fd/N`. Closed (and gone) when dropped.
fn secret_file(secret: &[u8]) -> Result<OwnedFd, LuksError> {
    use nix::sys::memfd::{MFdFlags, memfd_create};
    let failed = |e: String| LuksError::Missing {
        tool: "a memory file for the volume key".into(),
        reason: e,
    };
    let fd = memfd_create("covenant-volume-key", MFdFlags::empty())
        .map_err(|e| failed(e.to_string()))?;
    let mut file = std::fs::File::from(fd);
    file.write_all(secret).map_err(|e| failed(e.to_string()))?;
    Ok(OwnedFd::from(file))
}

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
    /// The open mapping does not use the cipher the volume key is for.
    #[error("the open volume reports {0}, not aes-xts-plain64 with a 512-bit key")]
    WrongCipher(String),
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

/// Opens the instance's volume on `device` with the instance's `key` and mounts it on
/// `mount_point`, formatting it first when the device has no LUKS2 header and `state_dir` says
/// the instance's was never formatted.
pub fn open(
    device: &Path,
    mount_point: &Path,
    key: &Zeroizing<[u8; 32]>,
    state_dir: &Path,
) -> Result<OpenVolume, LuksError> {
    let dev = path_str(device)?;
    let marker = state_dir.join(FORMATTED_MARKER);
    let volume_key = secret_file(luks_volume_key(key).as_slice())?;
    let volume_key_path = format!("/dev/fd/{}", volume_key.as_raw_fd());
    let is_luks = run("cryptsetup", &["isLuks", "--type", "luks2", dev], None)?
        .status
        .success();
    let formatted = match (is_luks, marker.exists()) {
        (true, _) => false,
        (false, true) => return Err(LuksError::NotLuks(device.to_owned())),
        (false, false) => {
            tracing::info!(device = dev, "formatting the data device as LUKS2");
            let key_size = CIPHER.1.to_string();
            // The keyslot LUKS2 insists on gets the instance's key as its passphrase, with a
            // fast KDF (32 random bytes need no stretching); the guest never opens through it.
            check(
                "cryptsetup",
                &[
                    "luksFormat",
                    "--type",
                    "luks2",
                    "--batch-mode",
                    "--cipher",
                    CIPHER.0,
                    "--key-size",
                    &key_size,
                    "--volume-key-file",
                    &volume_key_path,
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
            "--volume-key-file",
            &volume_key_path,
            dev,
            MAPPER_NAME,
        ],
        None,
    )?;
    drop(volume_key);
    let mapped = format!("/dev/mapper/{MAPPER_NAME}");
    let mounted = (|| {
        check_cipher()?;
        // `blkid -p` exits 2 when it finds nothing: a volume formatted now, or one whose format
        // stopped before its file system was made. Anything else it finds is kept.
        let probe = run("blkid", &["-p", &mapped], None)?;
        match probe.status.code() {
            Some(0) => {}
            Some(2) => check("mkfs.ext4", &["-q", "-L", "covenant-data", &mapped], None)?,
            _ => {
                return Err(LuksError::Tool {
                    tool: "blkid -p".into(),
                    status: probe.status.to_string(),
                    stderr: String::from_utf8_lossy(&probe.stderr).trim().to_owned(),
                });
            }
        }
        std::fs::write(&marker, b"").map_err(|e| LuksError::Missing {
            tool: "the format marker".into(),
            reason: format!("{}: {e}", marker.display()),
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

/// The open mapping must use [`CIPHER`] (`cryptsetup status`).
fn check_cipher() -> Result<(), LuksError> {
    let out = run("cryptsetup", &["status", MAPPER_NAME], None)?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_owned()))
            .unwrap_or_default()
    };
    let (cipher, key_size) = (field("cipher:"), field("keysize:"));
    if out.status.success() && cipher == CIPHER.0 && key_size == format!("{} bits", CIPHER.1) {
        Ok(())
    } else {
        Err(LuksError::WrongCipher(format!("{cipher:?}, {key_size:?}")))
    }
}

impl OpenVolume {
    /// Unmounts and locks the volume.
    pub fn close(self) -> Result<(), LuksError> {
        check("umount", &[path_str(&self.mount_point)?], None)?;
        check("cryptsetup", &["close", MAPPER_NAME], None)
    }
}
