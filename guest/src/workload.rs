//! Running the workload. Under the simulated TEE each compose container's `command` runs as a
//! local process (development only: no image, no container isolation; said so in the log), with
//! the env variables the container lists (decrypted env secrets), `COVENANT_GUEST_SOCKET` and
//! `COVENANT_DATA_DIR` (the open data volume),
//! restarted by its `restart` policy, and stopped with its whole process group when the guest
//! stops (SIGTERM, then SIGKILL after a grace period).

use std::{collections::BTreeMap, path::Path, process::Stdio, time::Duration};

use covenant_attest::compose::{AppCompose, Restart};
use nix::{sys::signal::Signal, unistd::Pid};
use tokio::sync::watch;
use zeroize::Zeroizing;

/// How long a stopped service gets between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);
/// The pause before a restart.
pub const RESTART_DELAY: Duration = Duration::from_millis(500);

/// One process to run.
pub struct Service {
    /// The container's name.
    pub name: String,
    /// Program and arguments.
    pub command: Vec<String>,
    /// Its environment: the variables it lists that the env secrets provide.
    pub env: Vec<(String, Zeroizing<String>)>,
    /// Its restart policy.
    pub restart: Restart,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("name", &self.name)
            .field("command", &self.command)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("restart", &self.restart)
            .finish()
    }
}

/// The services of `compose`, each with the variables it lists that `secrets` provides. A
/// container without a `command` cannot run outside a container runtime: an error.
pub fn services(
    compose: &AppCompose,
    secrets: &BTreeMap<String, Zeroizing<String>>,
) -> Result<Vec<Service>, String> {
    compose
        .containers
        .iter()
        .map(|c| {
            if c.command.is_empty() {
                return Err(format!(
                    "container {:?} has no command: the process runner cannot start an image",
                    c.name
                ));
            }
            Ok(Service {
                name: c.name.clone(),
                command: c.command.clone(),
                env: c
                    .env
                    .iter()
                    .filter_map(|name| Some((name.clone(), secrets.get(name)?.clone())))
                    .collect(),
                restart: c.restart,
            })
        })
        .collect()
}

/// Runs `services` until `stop` says so, then stops them all and returns. Each gets the API's
/// `socket` and the open data volume `data_dir`.
pub async fn supervise(
    services: Vec<Service>,
    socket: &Path,
    data_dir: &Path,
    stop: watch::Receiver<bool>,
) {
    tracing::warn!(
        "running the workload as local processes: development only (simulated TEE), no container \
         isolation"
    );
    let mut tasks = tokio::task::JoinSet::new();
    for service in services {
        tasks.spawn(run_service(
            service,
            socket.to_owned(),
            data_dir.to_owned(),
            stop.clone(),
        ));
    }
    while tasks.join_next().await.is_some() {}
}

async fn run_service(
    service: Service,
    socket: std::path::PathBuf,
    data_dir: std::path::PathBuf,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        let mut command = tokio::process::Command::new(&service.command[0]);
        command
            .args(&service.command[1..])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("COVENANT_GUEST_SOCKET", &socket)
            .env("COVENANT_DATA_DIR", &data_dir)
            .envs(service.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        // A service must not outlive its guest, even one killed with SIGKILL: it would keep the
        // app's keys, unsupervised.
        // SAFETY: between fork and exec the closure makes one system call (prctl), which is
        // async-signal-safe, and allocates nothing. The signal fires when the spawning thread
        // exits: this runs on a runtime worker thread, which lives as long as the guest.
        // A guest that died before the prctl already orphaned the child: it must not start.
        let guest = nix::unistd::getpid();
        #[allow(unsafe_code)]
        unsafe {
            command.pre_exec(move || {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
                if nix::unistd::getppid() != guest {
                    return Err(std::io::Error::other("the guest is gone"));
                }
                Ok(())
            });
        }
        let mut child = match command.spawn() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(service = %service.name, error = %e, "cannot start");
                return;
            }
        };
        let pid = child.id();
        tracing::info!(service = %service.name, pid, "started");
        let status = tokio::select! {
            status = child.wait() => status,
            () = until_stopped(&mut stop) => {
                stop_group(&service.name, pid, &mut child).await;
                return;
            }
        };
        // Whatever the service left running in its group goes with it.
        if let Some(group) = pid.and_then(|p| i32::try_from(p).ok()).map(Pid::from_raw) {
            let _ = nix::sys::signal::killpg(group, Signal::SIGKILL);
        }
        let failed = !matches!(&status, Ok(s) if s.success());
        tracing::info!(service = %service.name, status = ?status, "exited");
        let again = match service.restart {
            Restart::No => false,
            Restart::OnFailure => failed,
            Restart::Always => true,
        };
        if !again {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(RESTART_DELAY) => {}
            () = until_stopped(&mut stop) => return,
        }
    }
}

/// Resolves once the guest is stopping (or its stop sender is gone).
async fn until_stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}

/// SIGTERM to the service's process group, SIGKILL after [`STOP_GRACE`].
async fn stop_group(name: &str, pid: Option<u32>, child: &mut tokio::process::Child) {
    let group = pid.and_then(|p| i32::try_from(p).ok()).map(Pid::from_raw);
    if let Some(group) = group {
        let _ = nix::sys::signal::killpg(group, Signal::SIGTERM);
    }
    let _ = tokio::time::timeout(STOP_GRACE, child.wait()).await;
    // Whatever is left of the group (the process itself past the grace period, or children it
    // left behind) is killed.
    if let Some(group) = group {
        let _ = nix::sys::signal::killpg(group, Signal::SIGKILL);
    }
    let _ = child.wait().await;
    tracing::info!(service = %name, "stopped");
}
