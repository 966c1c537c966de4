//! The data volume under the simulated TEE: an encrypted directory image (development only; a
//! real VM's volume is LUKS2 through `cryptsetup`, not built yet).
//!
//! The instance's files live in `<state>/volume.enc`, sealed with the instance's disk key from
//! the KMS; while the guest runs they are open in a plaintext working directory that the app gets
//! as `COVENANT_DATA_DIR`, and the guest seals the directory back when it stops. Format
//! (`docs/guest.md`, "Data volume"):
//!
//! - key = HKDF-SHA256(ikm = disk key, salt = `"covenant-volume-v1"`, info = app id ‖ instance
//!   id), 32 bytes, AES-256-GCM;
//! - file = `"CVOL1"` ‖ nonce (12 random bytes) ‖ AES-256-GCM(key, nonce, aad = `"CVOL1"`,
//!   plaintext) with its 16-byte tag;
//! - plaintext = entries, each `len(path)` (u16 BE) ‖ path (the name's bytes, relative,
//!   `/`-separated, no `.`, `..` or empty parts) ‖ `len(content)` (u64 BE) ‖ content; regular
//!   files only.
//!
//! Only the sealing instance's disk key opens it, on any host (the disk key depends on the app,
//! its key generation and the instance id, not on the device). A volume that does not open is an
//! error and is never overwritten. After a stop that did not seal (a crash), the plaintext
//! directory left behind is sealed at the next boot before the volume is opened.

use std::{
    os::unix::ffi::OsStrExt,
    path::{Component, Path, PathBuf},
};

use alloy::primitives::Address;
use hkdf::Hkdf;
use ring::{
    aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey},
    rand::{SecureRandom, SystemRandom},
};
use sha2::Sha256;
use zeroize::Zeroizing;

/// The sealed image's name in the state directory.
pub const FILE: &str = "volume.enc";
/// The format's magic and `aad`.
pub const MAGIC: &[u8] = b"CVOL1";
/// The largest volume, in bytes of plaintext.
pub const MAX_VOLUME: u64 = 256 * 1024 * 1024;

/// Why the volume could not be opened or sealed.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A file could not be read or written.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The image does not open with this instance's disk key (another instance's, or altered).
    #[error("the data volume {} does not open with this instance's disk key; it is left as it is", .0.display())]
    Sealed(PathBuf),
    /// The image or the directory is not in the format.
    #[error("the data volume is malformed: {0}")]
    Malformed(String),
}

/// The volume's key for `app`'s instance `instance`.
pub fn volume_key(disk_key: &[u8; 32], app: Address, instance: &[u8; 20]) -> Zeroizing<[u8; 32]> {
    let mut info = app.to_vec();
    info.extend_from_slice(instance);
    let mut key = Zeroizing::new([0u8; 32]);
    // 32 bytes is within HKDF-SHA256's output limit.
    let _ = Hkdf::<Sha256>::new(Some(b"covenant-volume-v1"), disk_key).expand(&info, key.as_mut());
    key
}

fn aead(key: &[u8; 32]) -> Result<LessSafeKey, VolumeError> {
    UnboundKey::new(&AES_256_GCM, key)
        .map(LessSafeKey::new)
        .map_err(|_| VolumeError::Malformed("the volume key".into()))
}

/// Opens the image at `state_dir` (if there is one) into the empty directory `data_dir`.
/// Returns how many files it held.
pub fn open(state_dir: &Path, data_dir: &Path, key: &[u8; 32]) -> Result<usize, VolumeError> {
    let image = state_dir.join(FILE);
    let sealed = match std::fs::read(&image) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(source) => {
            return Err(VolumeError::Io {
                what: "reading",
                path: image,
                source,
            });
        }
    };
    let Some(rest) = sealed.strip_prefix(MAGIC) else {
        return Err(VolumeError::Sealed(image));
    };
    if rest.len() < NONCE_LEN + AES_256_GCM.tag_len() {
        return Err(VolumeError::Sealed(image));
    }
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let nonce =
        Nonce::try_assume_unique_for_key(nonce).map_err(|_| VolumeError::Sealed(image.clone()))?;
    let mut buffer = Zeroizing::new(ciphertext.to_vec());
    let plaintext = aead(key)?
        .open_in_place(nonce, Aad::from(MAGIC), buffer.as_mut_slice())
        .map_err(|_| VolumeError::Sealed(image.clone()))?;
    let mut rest: &[u8] = plaintext;
    let mut files = 0;
    while !rest.is_empty() {
        let (path, content, tail) = entry(rest)?;
        let target = data_dir.join(&path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|source| VolumeError::Io {
                what: "creating",
                path: parent.to_owned(),
                source,
            })?;
        }
        std::fs::write(&target, content).map_err(|source| VolumeError::Io {
            what: "writing",
            path: target.clone(),
            source,
        })?;
        files += 1;
        rest = tail;
    }
    Ok(files)
}

fn take<'a>(rest: &'a [u8], n: usize, what: &str) -> Result<(&'a [u8], &'a [u8]), VolumeError> {
    if rest.len() < n {
        return Err(VolumeError::Malformed(format!("truncated {what}")));
    }
    Ok(rest.split_at(n))
}

fn entry(rest: &[u8]) -> Result<(PathBuf, &[u8], &[u8]), VolumeError> {
    let (len, rest) = take(rest, 2, "path length")?;
    let (path, rest) = take(rest, u16::from_be_bytes([len[0], len[1]]) as usize, "path")?;
    let (len, rest) = take(rest, 8, "content length")?;
    let len = u64::from_be_bytes(
        len.try_into()
            .map_err(|_| VolumeError::Malformed("length".into()))?,
    );
    let (content, rest) = take(rest, usize::try_from(len).unwrap_or(usize::MAX), "content")?;
    Ok((relative(path)?, content, rest))
}

/// `path` (bytes, as Unix names are) as a relative path with only normal parts.
fn relative(path: &[u8]) -> Result<PathBuf, VolumeError> {
    let p = Path::new(std::ffi::OsStr::from_bytes(path));
    if path.is_empty() || !p.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(VolumeError::Malformed(format!(
            "{} is not a relative path",
            p.display()
        )));
    }
    Ok(p.to_owned())
}

/// Seals every regular file under `data_dir` into the image in `state_dir` (written whole, then
/// renamed into place). Returns how many files it holds.
pub fn seal(state_dir: &Path, data_dir: &Path, key: &[u8; 32]) -> Result<usize, VolumeError> {
    let mut files = Vec::new();
    collect(data_dir, data_dir, &mut files)?;
    files.sort();
    let mut plaintext = Zeroizing::new(Vec::new());
    for relative in &files {
        let path = data_dir.join(relative);
        let content = Zeroizing::new(std::fs::read(&path).map_err(|source| VolumeError::Io {
            what: "reading",
            path: path.clone(),
            source,
        })?);
        let name = relative.as_os_str().as_bytes();
        let name_len = u16::try_from(name.len())
            .map_err(|_| VolumeError::Malformed(format!("{} is too long", relative.display())))?;
        plaintext.extend_from_slice(&name_len.to_be_bytes());
        plaintext.extend_from_slice(name);
        plaintext.extend_from_slice(&(content.len() as u64).to_be_bytes());
        plaintext.extend_from_slice(&content);
        if plaintext.len() as u64 > MAX_VOLUME {
            return Err(VolumeError::Malformed(format!(
                "more than {MAX_VOLUME} bytes"
            )));
        }
    }
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| VolumeError::Malformed("no randomness".into()))?;
    let mut buffer = plaintext.to_vec();
    aead(key)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(MAGIC),
            &mut buffer,
        )
        .map_err(|_| VolumeError::Malformed("sealing".into()))?;
    let mut image = MAGIC.to_vec();
    image.extend_from_slice(&nonce);
    image.extend_from_slice(&buffer);
    let target = state_dir.join(FILE);
    let io = |what: &'static str| {
        let path = target.clone();
        move |source| VolumeError::Io { what, path, source }
    };
    let tmp = tempfile::NamedTempFile::new_in(state_dir).map_err(io("creating a file for"))?;
    std::fs::write(tmp.path(), &image).map_err(io("writing"))?;
    tmp.as_file().sync_all().map_err(io("syncing"))?;
    tmp.persist(&target).map_err(|e| io("replacing")(e.error))?;
    Ok(files.len())
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), VolumeError> {
    let entries = std::fs::read_dir(dir).map_err(|source| VolumeError::Io {
        what: "listing",
        path: dir.to_owned(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| VolumeError::Io {
            what: "listing",
            path: dir.to_owned(),
            source,
        })?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|source| VolumeError::Io {
            what: "reading the type of",
            path: path.clone(),
            source,
        })?;
        if kind.is_dir() {
            collect(root, &path, out)?;
        } else if kind.is_file() {
            out.push(path.strip_prefix(root).map_or(path.clone(), Path::to_owned));
        }
        // Links and special files are not part of the volume.
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Zeroizing<[u8; 32]> {
        volume_key(&[byte; 32], Address::repeat_byte(0x11), &[0x22; 20])
    }

    #[test]
    fn a_sealed_directory_opens_with_its_key_only() {
        let (state, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::create_dir_all(data.path().join("db/wal")).unwrap();
        std::fs::write(data.path().join("db/wal/0001"), b"log").unwrap();
        std::fs::write(data.path().join("notes.txt"), b"secret notes").unwrap();
        assert_eq!(seal(state.path(), data.path(), &key(1)).unwrap(), 2);
        let image = std::fs::read(state.path().join(FILE)).unwrap();
        assert!(image.starts_with(MAGIC));
        assert!(!image.windows(12).any(|w| w == b"secret notes"));

        let reopened = tempfile::tempdir().unwrap();
        assert_eq!(open(state.path(), reopened.path(), &key(1)).unwrap(), 2);
        assert_eq!(
            std::fs::read(reopened.path().join("notes.txt")).unwrap(),
            b"secret notes"
        );
        assert_eq!(
            std::fs::read(reopened.path().join("db/wal/0001")).unwrap(),
            b"log"
        );

        // Another disk key, another instance or app, a flipped bit: refused, image untouched.
        let other = tempfile::tempdir().unwrap();
        assert!(matches!(
            open(state.path(), other.path(), &key(2)),
            Err(VolumeError::Sealed(_))
        ));
        let other_instance = volume_key(&[1; 32], Address::repeat_byte(0x11), &[0x23; 20]);
        assert!(open(state.path(), other.path(), &other_instance).is_err());
        let mut flipped = image.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        std::fs::write(state.path().join(FILE), &flipped).unwrap();
        assert!(matches!(
            open(state.path(), other.path(), &key(1)),
            Err(VolumeError::Sealed(_))
        ));
        assert_eq!(std::fs::read(state.path().join(FILE)).unwrap(), flipped);
        // No image yet: an empty volume.
        let fresh = tempfile::tempdir().unwrap();
        assert_eq!(open(fresh.path(), other.path(), &key(1)).unwrap(), 0);
    }

    #[test]
    fn any_unix_file_name_round_trips() {
        let (state, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let name = <std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(vec![
            b'n', 0xff, b'x',
        ]);
        std::fs::write(data.path().join(&name), b"bytes").unwrap();
        assert_eq!(seal(state.path(), data.path(), &key(1)).unwrap(), 1);
        let reopened = tempfile::tempdir().unwrap();
        open(state.path(), reopened.path(), &key(1)).unwrap();
        assert_eq!(
            std::fs::read(reopened.path().join(&name)).unwrap(),
            b"bytes"
        );
    }

    #[test]
    fn an_entry_cannot_escape_the_data_directory() {
        for bad in ["../x", "/etc/passwd", "a/../../b", "", "./a"] {
            assert!(relative(bad.as_bytes()).is_err(), "{bad}");
        }
        assert_eq!(relative(b"a/b").unwrap(), PathBuf::from("a/b"));
    }
}
