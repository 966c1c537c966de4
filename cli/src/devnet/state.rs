//! Where a devnet keeps its state, and what it remembers between runs.
//!
//! Everything lives in one directory (`.devnet` by default): anvil's chain (dumped on exit,
//! loaded on start), PostgreSQL's data, the KMS node's sealed state, each guest's state, the
//! logs, and `devnet.json` — the ports, contracts and apps of this devnet, so that a restart
//! brings back the same one. Only a directory carrying the marker file is ever deleted.

use std::path::{Path, PathBuf};

use alloy::primitives::{Address, B256};
use serde::{Deserialize, Serialize};

use crate::error::{Context as _, Failure};

/// The file that marks a directory as a devnet's (and so safe to delete with `--fresh`).
const MARKER: &str = ".covenant-devnet";

/// A devnet's directory.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub(crate) dir: PathBuf,
}

impl Layout {
    pub(crate) fn new(dir: &Path) -> Result<Self, Failure> {
        let dir = if dir.is_absolute() {
            dir.to_owned()
        } else {
            std::env::current_dir()
                .doing("reading the working directory")?
                .join(dir)
        };
        Ok(Self { dir })
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// What this devnet remembers.
    pub(crate) fn saved(&self) -> PathBuf {
        self.path("devnet.json")
    }

    /// The endpoints, in shell syntax (`source .devnet/env`).
    pub(crate) fn env(&self) -> PathBuf {
        self.path("env")
    }

    /// The pid of the `covenant devnet up` serving this directory.
    pub(crate) fn pid(&self) -> PathBuf {
        self.path("up.pid")
    }

    pub(crate) fn deployment(&self) -> PathBuf {
        self.path("deployment.json")
    }

    /// Creates the directory (and its marker) if missing.
    pub(crate) fn create(&self) -> Result<(), Failure> {
        std::fs::create_dir_all(&self.dir).doing(&format!("creating {}", self.dir.display()))?;
        std::fs::write(
            self.path(MARKER),
            "a Covenant devnet's state; `covenant devnet up --fresh` deletes it\n",
        )
        .doing(&format!("writing {}", self.path(MARKER).display()))
    }

    /// Deletes the directory, if it is a devnet's (has the marker) or does not exist; refuses
    /// anything else.
    pub(crate) fn delete(&self) -> Result<(), Failure> {
        if !self.dir.exists() {
            return Ok(());
        }
        let empty = std::fs::read_dir(&self.dir)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !empty && !self.path(MARKER).exists() {
            return Err(Failure::new(format!(
                "{} is not a devnet's directory (no {MARKER} in it): not deleting it",
                self.dir.display()
            ))
            .next("pass --dir with an empty or new directory"));
        }
        std::fs::remove_dir_all(&self.dir).doing(&format!("deleting {}", self.dir.display()))
    }

    /// What a previous run saved, if anything.
    pub(crate) fn load(&self) -> Result<Option<Saved>, Failure> {
        let path = self.saved();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                Failure::new(format!("{} is unreadable: {e}", path.display()))
                    .next("start a new devnet with `covenant devnet up --fresh`")
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Failure::new(format!("reading {}: {e}", path.display()))),
        }
    }

    pub(crate) fn store(&self, saved: &Saved) -> Result<(), Failure> {
        let path = self.saved();
        let tmp = self.path("devnet.json.tmp");
        let text = serde_json::to_string_pretty(saved).doing("encoding the devnet's state")?;
        std::fs::write(&tmp, text + "\n").doing(&format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).doing(&format!("writing {}", path.display()))
    }
}

/// The ports a devnet serves on (all on 127.0.0.1).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Ports {
    pub(crate) rpc: u16,
    pub(crate) postgres: u16,
    pub(crate) indexer: u16,
    pub(crate) kms: u16,
    pub(crate) gateway: u16,
    pub(crate) gateway_api: u16,
    pub(crate) app: u16,
    pub(crate) app_http: u16,
}

/// An app the devnet made: its address and the version it runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct DevApp {
    pub(crate) app: Address,
    pub(crate) compose_hash: B256,
    pub(crate) compose: PathBuf,
    pub(crate) device: B256,
}

/// What a devnet remembers between runs, once it was ready the first time.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Saved {
    /// The ports of the first run: the services' composes name some of them, so a restart must
    /// use the same.
    pub(crate) ports: Ports,
    /// PostgreSQL's data directory.
    pub(crate) pg_data: PathBuf,
    /// Confirmations before a block is final.
    pub(crate) finality: u64,
    pub(crate) kms_node: Address,
    pub(crate) os_image: B256,
    pub(crate) kms_device: B256,
    pub(crate) gateway: DevApp,
    pub(crate) app: DevApp,
}
