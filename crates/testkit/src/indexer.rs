//! The project's indexer binary as a test service.

use std::{path::Path, process::Command, time::Duration};

use nix::sys::signal::Signal;

use crate::{Process, Result, tools::workspace_bin};

/// Starts `covenant-indexer` on `deployment` against `rpc_url`, mirroring into `database_url`
/// with blocks final after `finality` confirmations, its API on a free loopback port, and waits
/// until that API listens.
pub fn spawn_indexer(
    deployment: &Path,
    rpc_url: &str,
    database_url: &str,
    finality: u64,
) -> Result<Process> {
    let mut command = Command::new(workspace_bin("covenant-indexer")?);
    command
        .arg("--deployment")
        .arg(deployment)
        .args(["--rpc-url", rpc_url])
        .args(["--database-url", database_url])
        .args(["--listen", "127.0.0.1:0"])
        .args(["--finality", &finality.to_string()])
        .args(["--poll-interval-ms", "20", "--progress", "never"]);
    let indexer = Process::spawn("indexer", command, Signal::SIGTERM)?;
    indexer.wait_for_line("the indexer's API", Duration::from_secs(60), |l| {
        l.contains("api listening")
    })?;
    Ok(indexer)
}
