//! Running the workload with `docker compose`, as on a real TEE: the app-compose containers
//! become a Compose project whose images are pinned by digest and never built, each container
//! with the local API's socket at [`SOCKET_IN_CONTAINER`], the data volume at
//! [`DATA_IN_CONTAINER`], its restart policy, and the env variables it lists.
//!
//! Secret values are never written to the Compose file: it names the variables only
//! (`environment: [NAME]`), and `docker compose` takes their values from its own environment,
//! which the guest sets to exactly those variables, `PATH`, `DOCKER_HOST` if the guest has one,
//! `DOCKER_CONFIG` and `COMPOSE_DISABLE_ENV_FILE=1`. The Compose file, the project directory and
//! the Docker configuration live in the guest's private run directory (tmpfs inside the VM), never
//! in the state directory the host can write: a host-planted CLI plugin, context, proxy setting
//! or `.env` file would run code beside the secrets or read them.
//!
//! Containers run detached; their logs stay with Docker unless the compose sets
//! `flags.public_logs`, when `docker compose logs --follow` copies them to the guest's output.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Stdio,
};

use covenant_attest::compose::{AppCompose, Restart};
use serde_json::{Value, json};
use tokio::sync::watch;
use zeroize::Zeroizing;

/// Where a container finds the local API.
pub const SOCKET_IN_CONTAINER: &str = "/run/covenant/guest.sock";
/// Where a container finds the data volume.
pub const DATA_IN_CONTAINER: &str = "/data";
/// Seconds a container gets between SIGTERM and SIGKILL when the guest stops.
pub const STOP_GRACE_SECS: u32 = 10;

/// The Compose file for `compose` (JSON, which Compose reads as YAML).
pub fn compose_file(compose: &AppCompose, socket: &Path, data_dir: &Path) -> Value {
    let services: serde_json::Map<String, Value> = compose
        .containers
        .iter()
        .map(|c| {
            let mut environment = vec![
                format!("COVENANT_GUEST_SOCKET={SOCKET_IN_CONTAINER}"),
                format!("COVENANT_DATA_DIR={DATA_IN_CONTAINER}"),
            ];
            environment.extend(c.env.iter().cloned());
            let mut service = json!({
                "image": c.image,
                "pull_policy": "missing",
                "environment": environment,
                "volumes": [
                    format!("{}:{SOCKET_IN_CONTAINER}", socket.display()),
                    format!("{}:{DATA_IN_CONTAINER}", data_dir.display()),
                ],
                "restart": match c.restart {
                    Restart::No => "no",
                    Restart::OnFailure => "on-failure",
                    Restart::Always => "always",
                },
                "stop_grace_period": format!("{STOP_GRACE_SECS}s"),
            });
            if !c.command.is_empty() {
                service["command"] = json!(c.command);
            }
            (c.name.clone(), service)
        })
        .collect();
    json!({ "name": format!("covenant-{}", compose.name), "services": services })
}

/// A `docker compose` project of the app, in the guest's private `dir` (its Compose file and
/// Docker config).
#[derive(Debug)]
pub struct Project {
    dir: PathBuf,
    file: PathBuf,
    config_dir: PathBuf,
    env: Vec<(String, Zeroizing<String>)>,
    public_logs: bool,
}

impl Project {
    /// Writes the Compose file of `compose` into the guest-private `dir`; `secrets` gives the
    /// values of the variables the containers list (each must be there).
    pub fn new(
        compose: &AppCompose,
        secrets: &BTreeMap<String, Zeroizing<String>>,
        socket: &Path,
        data_dir: &Path,
        dir: &Path,
    ) -> std::io::Result<Self> {
        let file = dir.join("docker-compose.json");
        let config_dir = dir.join("docker");
        std::fs::create_dir_all(&config_dir)?;
        std::fs::write(
            &file,
            serde_json::to_vec_pretty(&compose_file(compose, socket, data_dir))?,
        )?;
        let mut env = BTreeMap::new();
        for name in compose.containers.iter().flat_map(|c| c.env.iter()) {
            let value = secrets
                .get(name)
                .ok_or_else(|| std::io::Error::other(format!("no env secret provides {name}")))?;
            env.insert(name.clone(), value.clone());
        }
        Ok(Self {
            dir: dir.to_owned(),
            file,
            config_dir,
            env: env.into_iter().collect(),
            public_logs: compose.flags.public_logs,
        })
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("docker");
        command
            .arg("compose")
            .arg("--project-directory")
            .arg(&self.dir)
            .arg("--file")
            .arg(&self.file)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DOCKER_CONFIG", &self.config_dir)
            .env("COMPOSE_DISABLE_ENV_FILE", "1")
            .envs(std::env::var_os("DOCKER_HOST").map(|h| ("DOCKER_HOST", h)))
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null());
        command
    }

    /// `docker compose up --detach`, then, at `stop`, `docker compose down`. Containers
    /// restart by their policy under Docker; a project that could not start is an error.
    pub async fn run(&self, mut stop: watch::Receiver<bool>) -> Result<(), String> {
        let up = self
            .command(&["up", "--detach", "--no-build", "--remove-orphans"])
            .stdout(Stdio::null())
            .status()
            .await
            .map_err(|e| format!("cannot run docker compose: {e}"))?;
        if !up.success() {
            return Err(format!("docker compose up failed: {up}"));
        }
        tracing::info!(file = %self.file.display(), "docker compose up");
        let logs = if self.public_logs {
            self.command(&["logs", "--follow", "--no-color"])
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| tracing::warn!(error = %e, "cannot follow the containers' logs"))
                .ok()
        } else {
            None
        };
        let _ = stop.wait_for(|s| *s).await;
        let down = self
            .command(&["down", "--timeout", &STOP_GRACE_SECS.to_string()])
            .stdout(Stdio::null())
            .status()
            .await
            .map_err(|e| format!("cannot run docker compose down: {e}"))?;
        drop(logs);
        if down.success() {
            tracing::info!("docker compose down");
            Ok(())
        } else {
            Err(format!("docker compose down failed: {down}"))
        }
    }
}
