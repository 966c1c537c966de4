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
        .args(["script", "scripts/deploy/Deploy.s.sol", "--broadcast"])
        .args(["--rpc-url", &anvil.endpoint(), "--private-key", &key])
        .env("COVENANT_DEPLOYMENT_FILE", &path)
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
    let output = forge.output().map_err(|source| Error::Spawn {
        program: "forge".into(),
        source,
    })?;
    drop(lock);
    let deployment = TestDeployment { path };
    if !output.status.success() || !deployment.path.is_file() {
        return Err(Error::Command {
            what: "forge script scripts/deploy/Deploy.s.sol".into(),
            status: output.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        });
    }
    Ok(deployment)
}
