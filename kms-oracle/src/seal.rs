//! The node's secrets at rest: its identity key and (once it has one) the KMS root secret,
//! sealed with AES-256-GCM under a key only this node's TEE can obtain, bound to the deployment
//! (chain id and registry in the associated data).
//!
//! Under the simulated TEE the sealing key is a file next to the sealed state: development only,
//! and logged as such at every start. On TDX or SEV-SNP the sealing key must come from the
//! platform (SNP's `MSG_KEY_REQ` derived key, or a TDX key provider); this build has no such
//! source and refuses to seal there rather than pretend.

use std::path::{Path, PathBuf};

use ring::{
    aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey},
    rand::{SecureRandom, SystemRandom},
};
use zeroize::{Zeroize, Zeroizing};

pub use crate::error::SealError;
use crate::{Error, Result, keys::Domain};

const AAD_PREFIX: &[u8] = b"covenant-kms-seal-v1";
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

/// Where the sealed state lives and how it is sealed.
#[derive(Clone, Debug)]
pub struct Sealer {
    dir: PathBuf,
    domain: Domain,
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
        }
    }

    fn aad(&self) -> Vec<u8> {
        let mut aad = AAD_PREFIX.to_vec();
        aad.extend_from_slice(&self.domain.chain_id.to_be_bytes());
        aad.extend_from_slice(self.domain.kms_registry.as_slice());
        aad
    }

    fn key(&self, create: bool) -> Result<LessSafeKey> {
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
        let unbound = UnboundKey::new(&AES_256_GCM, &bytes)
            .map_err(|_| Error::Sealed(SealError::KeyLength))?;
        Ok(LessSafeKey::new(unbound))
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
