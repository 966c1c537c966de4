//! The instance id: 20 random bytes made at an instance's first boot and kept, in the clear, in
//! its state directory (`instance-id`, 40 lower-case hex digits and a newline).
//!
//! It is not a secret and not protected: the host can read, change or delete it. That is safe
//! because the id is measured (the `instance-id` runtime event) before any key is asked for, and
//! the KMS derives the instance's disk key from the id the evidence shows. A host that changes
//! the id boots an instance that gets a *different* disk key: it cannot read the old instance's
//! data volume, and cannot make two instances share one (that would need the same id, which
//! gives the same key only to code the chain allows for the same app). What the host can do is
//! deny service (delete the id, lose access to the volume), which it can do anyway.
//!
//! A file that is there but malformed is an error, never silently replaced: a new id would
//! orphan the instance's data.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use covenant_attest::InstanceId;
use ring::rand::{SecureRandom, SystemRandom};

/// The file's name in the state directory.
pub const FILE: &str = "instance-id";

/// Why the instance id could not be had.
#[derive(Debug, thiserror::Error)]
pub enum InstanceIdError {
    /// The file could not be read or written.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not 40 lower-case hex digits and a newline.
    #[error("{} is not an instance id (40 lower-case hex digits and a newline); refusing to replace it", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
    },
    /// No randomness.
    #[error("the system's random source failed")]
    Random,
}

/// Whether the id was made by this boot or kept from an earlier one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Made now: this is the instance's first boot.
    Created,
    /// Read from the state directory.
    Kept,
}

/// The instance id kept in `state_dir`, made (with [`Origin::Created`]) if there is none yet.
pub fn load_or_create(state_dir: &Path) -> Result<(InstanceId, Origin), InstanceIdError> {
    let path = state_dir.join(FILE);
    let io = |what: &'static str| {
        let path = path.clone();
        move |source| InstanceIdError::Io { what, path, source }
    };
    match std::fs::read(&path) {
        Ok(bytes) => {
            return parse(&bytes)
                .map(|id| (id, Origin::Kept))
                .ok_or(InstanceIdError::Malformed { path });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("reading")(e)),
    }
    let mut id = [0u8; 20];
    SystemRandom::new()
        .fill(&mut id)
        .map_err(|_| InstanceIdError::Random)?;
    // Written whole to a temporary file, synced, then linked into place without replacing
    // anything: two boots racing on one directory keep the first id and both read it.
    let mut tmp = tempfile::NamedTempFile::new_in(state_dir).map_err(io("creating a file in"))?;
    tmp.write_all(format!("{}\n", hex::encode(id)).as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(io("writing"))?;
    match tmp.persist_noclobber(&path) {
        Ok(_) => Ok((InstanceId::new(id), Origin::Created)),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
            let bytes = std::fs::read(&path).map_err(io("reading"))?;
            parse(&bytes)
                .map(|id| (id, Origin::Kept))
                .ok_or(InstanceIdError::Malformed { path })
        }
        Err(e) => Err(io("writing")(e.error)),
    }
}

fn parse(bytes: &[u8]) -> Option<InstanceId> {
    let digits = bytes.strip_suffix(b"\n")?;
    if digits.len() != 40
        || !digits
            .iter()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    let mut id = [0u8; 20];
    hex::decode_to_slice(digits, &mut id).ok()?;
    Some(InstanceId::new(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_boot_makes_an_id_and_later_boots_keep_it() {
        let dir = tempfile::tempdir().unwrap();
        let (first, origin) = load_or_create(dir.path()).unwrap();
        assert_eq!(origin, Origin::Created);
        let (again, origin) = load_or_create(dir.path()).unwrap();
        assert_eq!((again, origin), (first, Origin::Kept));
        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert_eq!(text, format!("{}\n", hex::encode(first.as_bytes())));
        // Another instance's directory gets another id.
        let other = tempfile::tempdir().unwrap();
        assert_ne!(load_or_create(other.path()).unwrap().0, first);
    }

    #[test]
    fn a_malformed_id_is_an_error_and_is_left_in_place() {
        let dir = tempfile::tempdir().unwrap();
        for bad in [
            "".as_bytes(),
            b"00",
            b"0123456789abcdef0123456789abcdef01234567",
            b"0123456789ABCDEF0123456789abcdef01234567\n",
            b"0123456789abcdef0123456789abcdef0123456g\n",
            b"0123456789abcdef0123456789abcdef0123456789\n",
        ] {
            std::fs::write(dir.path().join(FILE), bad).unwrap();
            assert!(
                matches!(
                    load_or_create(dir.path()),
                    Err(InstanceIdError::Malformed { .. })
                ),
                "{bad:?}"
            );
            assert_eq!(std::fs::read(dir.path().join(FILE)).unwrap(), bad);
        }
    }

    #[test]
    fn an_unwritable_state_directory_is_an_error() {
        let missing = tempfile::tempdir().unwrap().path().join("absent");
        assert!(matches!(
            load_or_create(&missing),
            Err(InstanceIdError::Io { .. })
        ));
    }
}
