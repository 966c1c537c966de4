//! The kit's one error type.

use std::{path::PathBuf, time::Duration};

/// What went wrong while starting, probing or waiting on something a test needs.
///
/// Every variant that concerns a child process carries the tail of that process's own output, so a
/// test that fails because anvil or Postgres died shows why.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tool the kit needs is not installed where it looked.
    #[error("{tool} not found at {}: {hint}", path.display())]
    ToolMissing {
        /// The tool's name.
        tool: &'static str,
        /// Where it was looked for.
        path: PathBuf,
        /// How to install it.
        hint: &'static str,
    },
    /// Starting a program failed before it ran.
    #[error("could not start {}: {source}", program.display())]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// A child process is not running any more.
    #[error("{name} (pid {pid}) exited ({status}); its output:\n{log}")]
    Exited {
        /// Which process.
        name: String,
        /// Its pid.
        pid: u32,
        /// How it ended.
        status: String,
        /// The last lines it wrote to stdout and stderr.
        log: String,
    },
    /// A condition did not hold before its deadline.
    #[error("timed out after {after:?} waiting for {what}{}", last.as_ref().map(|l| format!(" (last: {l})")).unwrap_or_default())]
    Timeout {
        /// What was waited for.
        what: String,
        /// How long the wait lasted.
        after: Duration,
        /// The last observation, e.g. the latest error of a probe or a process log.
        last: Option<String>,
    },
    /// A helper command (initdb, psql) failed.
    #[error("{what} failed ({status}):\n{output}")]
    Command {
        /// What the command was for.
        what: String,
        /// Its exit status.
        status: String,
        /// Its stdout and stderr.
        output: String,
    },
    /// A JSON-RPC probe failed.
    #[error("rpc {method} to {endpoint} failed: {reason}")]
    Rpc {
        /// The method called.
        method: String,
        /// The endpoint called.
        endpoint: String,
        /// Why it failed.
        reason: String,
    },
    /// A file system operation failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// A forge build artifact is missing or is not what forge writes.
    #[error("forge artifact {}: {reason} (run `forge build`)", path.display())]
    Artifact {
        /// The artifact file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Pebble (the test ACME CA) could not be configured or asked.
    #[error("pebble: {0}")]
    Pebble(String),
    /// The shared PostgreSQL cluster of this test process could not be started earlier.
    #[error("the shared PostgreSQL cluster failed to start: {0}")]
    SharedClusterUnavailable(String),
}

/// The kit's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
