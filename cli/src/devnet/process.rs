//! The devnet's child processes. Each runs in a process group of its own with its output in a
//! log file, and is stopped by group — a signal, then SIGKILL once a grace period has passed —
//! whatever the others do, so a stop is bounded and leaves nothing behind.

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use nix::{sys::signal, unistd::Pid};
use tokio::process::{Child, Command};

pub(crate) use nix::sys::signal::Signal;

use crate::error::{Context as _, Failure};

/// How often a log or a condition is looked at while waiting.
pub(crate) const POLL: Duration = Duration::from_millis(100);

/// A running service.
pub(crate) struct Service {
    pub(crate) name: &'static str,
    pub(crate) pid: u32,
    pub(crate) log: PathBuf,
    /// Where this run's output starts in the log (earlier runs' output comes before).
    log_start: usize,
    child: Child,
    stop_signal: Signal,
    grace: Duration,
}

/// Opens `log` for appending a process's output (created if missing).
fn log_file(log: &Path) -> Result<(File, File), Failure> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .doing(&format!("opening {}", log.display()))?;
    let err = out
        .try_clone()
        .doing(&format!("opening {}", log.display()))?;
    Ok((out, err))
}

/// `command` with its output appended to `log`, no input, in a process group of its own.
fn prepared(mut command: Command, log: &Path) -> Result<Command, Failure> {
    let (out, err) = log_file(log)?;
    command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .kill_on_drop(true);
    Ok(command)
}

impl Service {
    /// Starts `command` as `name`, its output appended to `log`; stopped with `stop_signal`, then
    /// SIGKILL after `grace`.
    pub(crate) fn spawn(
        name: &'static str,
        command: Command,
        log: &Path,
        stop_signal: Signal,
        grace: Duration,
    ) -> Result<Self, Failure> {
        let log_start = std::fs::metadata(log).map_or(0, |m| m.len() as usize);
        let child = prepared(command, log)?
            .spawn()
            .doing(&format!("starting {name}"))?;
        let pid = child
            .id()
            .ok_or_else(|| Failure::new(format!("{name} exited at once")))?;
        Ok(Self {
            name,
            pid,
            log: log.to_owned(),
            log_start,
            child,
            stop_signal,
            grace,
        })
    }

    /// Whether it still runs.
    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Resolves when it exits, with a failure naming it and the end of its log.
    pub(crate) async fn exited(&mut self) -> Failure {
        let status = self.child.wait().await;
        Failure::new(format!(
            "{} exited ({}); the end of its log:\n{}",
            self.name,
            status.map_or_else(|e| e.to_string(), |s| s.to_string()),
            tail(&self.log, 20)
        ))
    }

    /// Waits until a line it logged gives `found` an answer; fails if it exits first or after
    /// `timeout`, with the end of its log.
    pub(crate) async fn wait_for_log<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        found: impl Fn(&str) -> Option<T>,
    ) -> Result<T, Failure> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(bytes) = std::fs::read(&self.log)
                && let Some(v) = String::from_utf8_lossy(bytes.get(self.log_start..).unwrap_or(&[]))
                    .lines()
                    .find_map(&found)
            {
                return Ok(v);
            }
            if !self.alive() {
                return Err(self.exited().await);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Failure::new(format!(
                    "{} did not report {what} within {} s; the end of its log:\n{}",
                    self.name,
                    timeout.as_secs(),
                    tail(&self.log, 20)
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until `ready` answers `Ok`, failing if the service exits first or after `timeout`
    /// (with `ready`'s last complaint and the end of the log).
    pub(crate) async fn wait_until<F, Fut>(
        &mut self,
        what: &str,
        timeout: Duration,
        ready: F,
    ) -> Result<(), Failure>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let last = match ready().await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if !self.alive() {
                return Err(self.exited().await);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Failure::new(format!(
                    "{what}: not within {} s ({last}); the end of {}'s log:\n{}",
                    timeout.as_secs(),
                    self.name,
                    tail(&self.log, 20)
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Stops its process group: the stop signal, SIGKILL once the grace period has passed.
    pub(crate) async fn stop(&mut self) {
        if !self.alive() {
            return;
        }
        let group = Pid::from_raw(self.pid as i32);
        let _ = signal::killpg(group, self.stop_signal);
        if tokio::time::timeout(self.grace, self.child.wait())
            .await
            .is_err()
        {
            let _ = signal::killpg(group, Signal::SIGKILL);
            let _ = self.child.wait().await;
        }
        // Whatever it left in its group (a guest's app, PostgreSQL's backends).
        let _ = signal::killpg(group, Signal::SIGKILL);
    }
}

/// Runs a one-off `command` as `what` to completion, its output appended to `log`; fails with the
/// end of the log unless it exits 0. Dropped half-way (the devnet is interrupted), it is killed.
pub(crate) async fn run_step(command: Command, log: &Path, what: &str) -> Result<(), Failure> {
    let status = prepared(command, log)?
        .status()
        .await
        .doing(&format!("running {what}"))?;
    if !status.success() {
        return Err(Failure::new(format!(
            "{what} failed ({status}); the end of {}:\n{}",
            log.display(),
            tail(log, 30)
        )));
    }
    Ok(())
}

/// Runs `command` to completion and returns its standard output (trimmed); standard error is
/// appended to `log`.
pub(crate) async fn output(
    mut command: Command,
    log: &Path,
    what: &str,
) -> Result<String, Failure> {
    let (_, err) = log_file(log)?;
    let out = command
        .stdin(Stdio::null())
        .stderr(err)
        .kill_on_drop(true)
        .output()
        .await
        .doing(&format!("running {what}"))?;
    if !out.status.success() {
        return Err(Failure::new(format!(
            "{what} failed ({}); the end of {}:\n{}",
            out.status,
            log.display(),
            tail(log, 20)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The last `n` lines of `log`.
pub(crate) fn tail(log: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Whether process `pid` runs (a zombie does not).
pub(crate) fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

/// Sends `sig` to process `pid` (not its group).
pub(crate) fn signal_pid(pid: u32, sig: Signal) -> Result<(), Failure> {
    signal::kill(Pid::from_raw(pid as i32), sig).doing(&format!("signalling process {pid}"))
}
