//! The node's secrets at rest: its identity key and (once it has one) the KMS root secret,
//! sealed with AES-256-GCM under a key only this node's TEE can obtain, bound to the deployment
//! (chain id and registry in the associated data).
//!
//! Where the sealing key comes from ([`SealingKey`]):
//! - SEV-SNP: derived by the firmware (`MSG_KEY_REQ` through `/dev/sev-guest`, the `sev` crate's
//!   guest API) from the chip's VCEK, mixing in the launch measurement and the guest policy, so
//!   only the same image, launched with the same policy, on the same chip, can open it.
//! - Simulated TEE: a file next to the sealed state, development only, logged as such at every
//!   start. A real-TEE node refuses to start where that file exists.
//! - Intel TDX has no sealing key: nothing is sealed (see `lib.rs`: the root lives in memory and
//!   a restarted node obtains it again from a serving peer).

use std::path::{Path, PathBuf};

use ring::{
    aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey},
    rand::{SecureRandom, SystemRandom},
};
use zeroize::{Zeroize, Zeroizing};

pub use crate::error::SealError;
use crate::{Error, Result, keys::Domain};

const AAD_PREFIX: &[u8] = b"covenant-kms-seal-v1";
const SNP_KEY_INFO: &[u8] = b"covenant-kms-seal-snp-v1";
const SEALED_FILE: &str = "node.sealed";
const KEY_FILE: &str = "sealing.key";

/// The secrets a node keeps.
pub struct NodeSecrets {
    /// The node's secp256k1 identity key (it signs grant-log commits and onboardings).
    pub node_key: Zeroizing<[u8; 32]>,
    /// The KMS root secret, once generated or replicated.
    pub root: Option<Zeroizing<[u8; 32]>>,
}

impl std::fmt::Debug for NodeSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeSecrets")
            .field("has_root", &self.root.is_some())
            .finish_non_exhaustive()
    }
}

/// Fresh random bytes.
pub fn random32() -> Result<Zeroizing<[u8; 32]>> {
    let mut out = Zeroizing::new([0u8; 32]);
    SystemRandom::new()
        .fill(out.as_mut_slice())
        .map_err(|_| Error::Sealed(SealError::Random))?;
    Ok(out)
}

/// The kernel interface that derives SEV-SNP keys (`/dev/sev-guest`): [`SevGuest`] on a real
/// guest, a fake in tests.
pub trait SnpKeyDevice: Send + Sync + std::fmt::Debug {
    /// The firmware's answer to `MSG_KEY_REQ` for `request`.
    fn derived_key(&self, request: sev::firmware::guest::DerivedKey) -> Result<[u8; 32]>;
}

/// The guest's `/dev/sev-guest`, through the `sev` crate.
#[derive(Debug, Default)]
pub struct SevGuest;

impl SnpKeyDevice for SevGuest {
    fn derived_key(&self, request: sev::firmware::guest::DerivedKey) -> Result<[u8; 32]> {
        let mut fw = sev::firmware::guest::Firmware::open()
            .map_err(|e| Error::Sealed(SealError::Firmware(format!("/dev/sev-guest: {e}"))))?;
        // Message version 1: no launch mitigation vector to supply.
        fw.get_derived_key(Some(1), request)
            .map_err(|e| Error::Sealed(SealError::Firmware(e.to_string())))
    }
}

/// The key request: derived from the VCEK (not the VM root key, which the host chooses), at
/// VMPL 0, mixing in the guest policy and the launch measurement.
pub fn snp_key_request() -> sev::firmware::guest::DerivedKey {
    let mut fields = sev::firmware::guest::GuestFieldSelect(0);
    fields.set_guest_policy(true);
    fields.set_measurement(true);
    sev::firmware::guest::DerivedKey::new(false, fields, 0, 0, 0, None)
}

/// Where the sealing key comes from.
#[derive(Clone, Debug)]
pub enum SealingKey {
    /// A file next to the sealed state (simulated TEE only).
    File,
    /// Derived by the SEV-SNP firmware.
    Snp(std::sync::Arc<dyn SnpKeyDevice>),
}

/// Where the sealed state lives and how it is sealed.
#[derive(Clone, Debug)]
pub struct Sealer {
    dir: PathBuf,
    domain: Domain,
    key: SealingKey,
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

impl Sealer {
    /// Sealed state in `dir` for the deployment `domain`, with the simulated TEE's file key.
    pub fn simulated(dir: &Path, domain: Domain) -> Self {
        tracing::warn!(
            target: "kms::seal",
            dir = %dir.display(),
            "simulated TEE: the sealing key is a file next to the sealed state; development only, it protects nothing"
        );
        Self {
            dir: dir.to_owned(),
            domain,
            key: SealingKey::File,
        }
    }

    /// Sealed state in `dir` for `domain`, under the key the SEV-SNP firmware derives through
    /// `device`. Refuses a state directory that holds a file sealing key.
    pub fn snp(
        dir: &Path,
        domain: Domain,
        device: std::sync::Arc<dyn SnpKeyDevice>,
    ) -> Result<Self> {
        let file = dir.join(KEY_FILE);
        if file.exists() {
            return Err(Error::Sealed(SealError::FileKeyOnRealTee(file)));
        }
        Ok(Self {
            dir: dir.to_owned(),
            domain,
            key: SealingKey::Snp(device),
        })
    }

    fn aad(&self) -> Vec<u8> {
        let mut aad = AAD_PREFIX.to_vec();
        aad.extend_from_slice(&self.domain.chain_id.to_be_bytes());
        aad.extend_from_slice(self.domain.kms_registry.as_slice());
        aad
    }

    fn key(&self, create: bool) -> Result<LessSafeKey> {
        let bytes = match &self.key {
            SealingKey::File => self.file_key(create)?,
            SealingKey::Snp(device) => {
                let derived = Zeroizing::new(device.derived_key(snp_key_request())?);
                let mut okm = Zeroizing::new(vec![0u8; 32]);
                hkdf::Hkdf::<sha2::Sha256>::new(None, derived.as_slice())
                    .expand(SNP_KEY_INFO, okm.as_mut_slice())
                    .map_err(|_| Error::Sealed(SealError::KeyLength))?;
                okm
            }
        };
        let unbound = UnboundKey::new(&AES_256_GCM, &bytes)
            .map_err(|_| Error::Sealed(SealError::KeyLength))?;
        Ok(LessSafeKey::new(unbound))
    }

    fn file_key(&self, create: bool) -> Result<Zeroizing<Vec<u8>>> {
        let path = self.dir.join(KEY_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => Zeroizing::new(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let key = random32()?;
                write_private(&path, key.as_slice())?;
                Zeroizing::new(key.to_vec())
            }
            Err(e) => return Err(io("reading the sealing key", &path)(e)),
        };
        Ok(bytes)
    }

    /// Whether sealed state exists.
    pub fn exists(&self) -> bool {
        self.dir.join(SEALED_FILE).exists()
    }

    /// Seals `secrets` (replacing what was sealed before).
    pub fn seal(&self, secrets: &NodeSecrets) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .map_err(io("creating the state directory", &self.dir))?;
        let key = self.key(true)?;
        let mut plain = Zeroizing::new(Vec::with_capacity(65));
        plain.extend_from_slice(secrets.node_key.as_slice());
        match &secrets.root {
            Some(root) => {
                plain.push(1);
                plain.extend_from_slice(root.as_slice());
            }
            None => plain.push(0),
        }
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| Error::Sealed(SealError::Random))?;
        let mut sealed = plain.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(self.aad()),
            &mut sealed,
        )
        .map_err(|_| Error::Sealed(SealError::Seal))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        sealed.zeroize();
        let path = self.dir.join(SEALED_FILE);
        let tmp = self.dir.join(format!("{SEALED_FILE}.tmp"));
        write_private(&tmp, &out)?;
        std::fs::rename(&tmp, &path).map_err(io("replacing the sealed state", &path))?;
        Ok(())
    }

    /// Opens the sealed state.
    pub fn unseal(&self) -> Result<NodeSecrets> {
        let path = self.dir.join(SEALED_FILE);
        let bytes = std::fs::read(&path).map_err(io("reading the sealed state", &path))?;
        if bytes.len() < NONCE_LEN {
            return Err(Error::Sealed(SealError::Truncated));
        }
        let key = self.key(false)?;
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| Error::Sealed(SealError::Nonce))?;
        let mut buf = Zeroizing::new(rest.to_vec());
        let plain = key
            .open_in_place(nonce, Aad::from(self.aad()), buf.as_mut_slice())
            .map_err(|_| Error::Sealed(SealError::Open))?;
        let mut node_key = Zeroizing::new([0u8; 32]);
        let root = match plain.len() {
            33 if plain[32] == 0 => None,
            65 if plain[32] == 1 => {
                let mut r = Zeroizing::new([0u8; 32]);
                r.copy_from_slice(&plain[33..65]);
                Some(r)
            }
            _ => return Err(Error::Sealed(SealError::Layout)),
        };
        node_key.copy_from_slice(&plain[..32]);
        Ok(NodeSecrets { node_key, root })
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io("creating", path))?;
    f.write_all(bytes).map_err(io("writing", path))?;
    f.sync_all().map_err(io("syncing", path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use alloy::primitives::Address;

    use super::*;

    fn domain(chain_id: u64) -> Domain {
        Domain {
            chain_id,
            kms_registry: Address::repeat_byte(7),
        }
    }

    #[test]
    fn sealed_state_opens_only_for_its_deployment_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let sealer = Sealer::simulated(dir.path(), domain(1));
        assert!(!sealer.exists());
        let secrets = NodeSecrets {
            node_key: Zeroizing::new([1; 32]),
            root: Some(Zeroizing::new([2; 32])),
        };
        sealer.seal(&secrets).unwrap();
        let back = sealer.unseal().unwrap();
        assert_eq!(*back.node_key, [1; 32]);
        assert_eq!(back.root.as_deref(), Some(&[2; 32]));
        let raw = std::fs::read(dir.path().join(SEALED_FILE)).unwrap();
        assert!(
            !raw.windows(32).any(|w| w == [2; 32]),
            "root secret stored in clear"
        );

        // Another chain: the associated data differs.
        let err = Sealer::simulated(dir.path(), domain(2))
            .unseal()
            .unwrap_err();
        assert!(err.to_string().contains("cannot open"), "{err}");
        // One flipped byte.
        let mut tampered = raw.clone();
        *tampered.last_mut().unwrap() ^= 1;
        std::fs::write(dir.path().join(SEALED_FILE), &tampered).unwrap();
        assert!(sealer.unseal().is_err());
        // Another sealing key.
        std::fs::write(dir.path().join(SEALED_FILE), &raw).unwrap();
        std::fs::write(dir.path().join(KEY_FILE), [9u8; 32]).unwrap();
        assert!(sealer.unseal().is_err());
    }

    /// Plays the firmware: a key from a chip secret and the request's selected fields of this
    /// guest's launch (measurement, policy).
    #[derive(Debug)]
    struct FakeSevGuest {
        chip: [u8; 32],
        measurement: [u8; 48],
        policy: u64,
        requests: std::sync::Mutex<Vec<u64>>,
    }

    impl SnpKeyDevice for FakeSevGuest {
        fn derived_key(&self, request: sev::firmware::guest::DerivedKey) -> Result<[u8; 32]> {
            use sha2::Digest;
            let fields = request.guest_field_select;
            self.requests.lock().unwrap().push(fields.0);
            let mut h = sha2::Sha256::new();
            h.update(self.chip);
            if fields.get_measurement() {
                h.update(self.measurement);
            }
            if fields.get_guest_policy() {
                h.update(self.policy.to_le_bytes());
            }
            Ok(h.finalize().into())
        }
    }

    fn guest(measurement: u8, policy: u64) -> std::sync::Arc<FakeSevGuest> {
        std::sync::Arc::new(FakeSevGuest {
            chip: [0x5e; 32],
            measurement: [measurement; 48],
            policy,
            requests: std::sync::Mutex::new(Vec::new()),
        })
    }

    #[test]
    fn snp_sealed_state_opens_only_for_the_same_measurement_and_policy() {
        let dir = tempfile::tempdir().unwrap();
        let device = guest(1, 0x30000);
        let sealer = Sealer::snp(dir.path(), domain(1), device.clone()).unwrap();
        sealer
            .seal(&NodeSecrets {
                node_key: Zeroizing::new([4; 32]),
                root: Some(Zeroizing::new([5; 32])),
            })
            .unwrap();
        assert!(!dir.path().join(KEY_FILE).exists(), "no key on disk");
        assert_eq!(sealer.unseal().unwrap().root.as_deref(), Some(&[5; 32]));
        // The request selects the measurement and the guest policy, from the VCEK.
        let selected = device.requests.lock().unwrap()[0];
        assert_eq!(selected & 0b1001, 0b1001, "fields {selected:#b}");
        // Another image, or the same image under another policy: cannot open.
        for other in [guest(2, 0x30000), guest(1, 0x30001)] {
            let err = Sealer::snp(dir.path(), domain(1), other)
                .unwrap()
                .unseal()
                .unwrap_err();
            assert!(err.to_string().contains("cannot open"), "{err}");
        }
        // The firmware failing is an error, never a fallback.
        #[derive(Debug)]
        struct Dead;
        impl SnpKeyDevice for Dead {
            fn derived_key(&self, _: sev::firmware::guest::DerivedKey) -> Result<[u8; 32]> {
                Err(Error::Sealed(SealError::Firmware("no device".into())))
            }
        }
        let dead = Sealer::snp(dir.path(), domain(1), std::sync::Arc::new(Dead)).unwrap();
        assert!(dead.unseal().unwrap_err().to_string().contains("firmware"));
    }

    #[test]
    fn a_real_tee_refuses_a_state_directory_with_a_file_key() {
        let dir = tempfile::tempdir().unwrap();
        Sealer::simulated(dir.path(), domain(1))
            .seal(&NodeSecrets {
                node_key: Zeroizing::new([4; 32]),
                root: None,
            })
            .unwrap();
        let err = Sealer::snp(dir.path(), domain(1), guest(1, 0)).unwrap_err();
        assert!(err.to_string().contains("refuses to start"), "{err}");
    }

    #[test]
    fn a_node_without_root_secret_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let sealer = Sealer::simulated(dir.path(), domain(1));
        sealer
            .seal(&NodeSecrets {
                node_key: Zeroizing::new([3; 32]),
                root: None,
            })
            .unwrap();
        let back = sealer.unseal().unwrap();
        assert!(back.root.is_none());
        assert_eq!(*back.node_key, [3; 32]);
    }
}
