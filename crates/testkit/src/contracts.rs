//! Deploys Covenant's contracts onto a test anvil with the repository's own deploy script, so
//! tests exercise exactly what `scripts/devnet` and production deploy.

use std::{
    path::PathBuf,
    process::Command,
    sync::atomic::{AtomicU64, Ordering},
};

use crate::{Anvil, Error, Result, tools};

/// A deployment made for one test: the `deployments/…json` file the deploy script wrote, removed
/// on drop.
#[derive(Debug)]
pub struct TestDeployment {
    path: PathBuf,
}

impl TestDeployment {
    /// The deployment file (the format of `deployments/<chainId>.json`).
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for TestDeployment {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The creation bytecode of `contract` from its forge artifact (`out/<contract>.sol/<contract>.json`;
/// append ABI-encoded constructor arguments to deploy it).
pub fn artifact_bytecode(contract: &str) -> Result<Vec<u8>> {
    let path = tools::repo_root()
        .join("out")
        .join(format!("{contract}.sol"))
        .join(format!("{contract}.json"));
    let artifact_error = |reason: String| Error::Artifact {
        path: path.clone(),
        reason,
    };
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
        what: "read",
        path: path.clone(),
        source,
    })?;
    let artifact: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| artifact_error(e.to_string()))?;
    let object = artifact["bytecode"]["object"]
        .as_str()
        .ok_or_else(|| artifact_error("no bytecode.object".into()))?;
    hex::decode(object.trim_start_matches("0x")).map_err(|e| artifact_error(e.to_string()))
}

/// How long a deployment may take (it takes seconds; a hung forge is killed after this).
const DEPLOY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(180);

fn read_all(mut file: std::fs::File) -> String {
    use std::io::{Read, Seek};
    let mut out = String::new();
    let _ = file.rewind();
    let _ = file.read_to_string(&mut out);
    out
}

/// Deploys with anvil account 0, simulated TEEs allowed, short governance timings (voting delay
/// 1 s, period 20 s, timelock 10 s); `extra_env` overrides any deploy-script variable.
pub fn deploy_contracts(anvil: &Anvil, extra_env: &[(&str, &str)]) -> Result<TestDeployment> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let root = tools::repo_root();
    // forge may write only under deployments/ (foundry.toml fs_permissions).
    let path = root.join("deployments").join(format!(
        ".test-{}-{}.json",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let key = anvil
        .accounts()
        .first()
        .map(|a| a.private_key.clone())
        .unwrap_or_default();
    let mut forge = Command::new(tools::foundry_bin("forge")?);
    forge
        .current_dir(&root)
        // --slow: one transaction at a time, each after the previous receipt. Without it a send
        // lost under load leaves a nonce gap and forge waits for receipts forever.
        .args([
            "script",
            "scripts/deploy/Deploy.s.sol",
            "--broadcast",
            "--slow",
        ])
        .args(["--rpc-url", &anvil.endpoint(), "--private-key", &key])
        .env("COVENANT_DEPLOYMENT_FILE", &path)
        .env("COVENANT_PRESET", "devnet")
        // No registry minimum: each test picks its apps' notice periods (and moves anvil's clock).
        .env("COVENANT_MIN_NOTICE_PERIOD", "0")
        .env("COVENANT_ALLOW_SIMULATED_TEE", "true")
        .env("COVENANT_VOTING_DELAY", "1")
        .env("COVENANT_VOTING_PERIOD", "20")
        .env("COVENANT_TIMELOCK_DELAY", "10");
    for (name, value) in extra_env {
        forge.env(name, value);
    }
    // Concurrent forge runs (other test processes, the devnet script) may compile into the same
    // out/ and cache/: serialise them on one lock file.
    let lock_path = root.join("cache/.covenant-forge.lock");
    let _ = std::fs::create_dir_all(root.join("cache"));
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|source| Error::Io {
            what: "open",
            path: lock_path.clone(),
            source,
        })?;
    lock.lock().map_err(|source| Error::Io {
        what: "lock",
        path: lock_path,
        source,
    })?;
    // Output to a file and a deadline: a hung forge fails the test (with its output) instead of
    // hanging it, and releases the lock.
    let log = tempfile::tempfile().map_err(|source| Error::Io {
        what: "create temp file",
        path: "$TMPDIR".into(),
        source,
    })?;
    let clone = |f: &std::fs::File| {
        f.try_clone().map_err(|source| Error::Io {
            what: "dup",
            path: "forge log".into(),
            source,
        })
    };
    forge.stdout(clone(&log)?).stderr(clone(&log)?);
    let mut child = forge.spawn().map_err(|source| Error::Spawn {
        program: "forge".into(),
        source,
    })?;
    let deadline = std::time::Instant::now() + DEPLOY_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    drop(lock);
    let output = read_all(log);
    let deployment = TestDeployment { path };
    match status {
        Some(status) if status.success() && deployment.path.is_file() => {}
        Some(status) => {
            return Err(Error::Command {
                what: "forge script scripts/deploy/Deploy.s.sol".into(),
                status: status.to_string(),
                output,
            });
        }
        None => {
            return Err(Error::Timeout {
                what: "forge script scripts/deploy/Deploy.s.sol".into(),
                after: DEPLOY_TIMEOUT,
                last: Some(output),
            });
        }
    }
    Ok(deployment)
}

/// Sends an alloy contract call with a quarter more gas than estimated, waits for its receipt and
/// requires success (the calling crate provides `alloy` with its `rpc-types` and `contract`
/// features).
///
/// The margin is not decoration: anvil mines blocks that share a second, and a call whose gas
/// depends on `block.timestamp` (a notice period's end written to storage) is estimated against
/// one timestamp and may run under the next, where a storage write that was a no-op costs more —
/// with the bare estimate such a transaction runs out of gas now and then.
#[macro_export]
macro_rules! send {
    // `match` keeps the call's temporaries (a contract instance it borrows) alive throughout.
    ($call:expr) => {
        match $call {
            call => {
                let gas = call.estimate_gas().await.expect("estimate gas");
                let receipt: alloy::rpc::types::TransactionReceipt = call
                    .gas(gas + gas / 4)
                    .send()
                    .await
                    .expect("send")
                    .get_receipt()
                    .await
                    .expect("receipt");
                assert!(receipt.status(), "transaction reverted: {receipt:?}");
                receipt
            }
        }
    };
}
