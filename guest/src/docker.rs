//! Running the workload with `docker compose`, as on a real TEE: the app-compose containers
//! become a Compose project whose images are pinned by digest and never built, each container
//! with the local API's socket at [`SOCKET_IN_CONTAINER`], the data volume at
//! [`DATA_IN_CONTAINER`], its restart policy, and the env variables it lists.
//!
//! Secret values are never written to the Compose file: it names the variables only
//! (`environment: [NAME]`), and `docker compose` takes their values from its own environment,
//! which the guest sets to exactly those variables (and `PATH`, and `DOCKER_CONFIG` in the state
//! directory).

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

/// A `docker compose` project of the app, in `dir` (its Compose file and Docker config).
#[derive(Debug)]
pub struct Project {
    file: PathBuf,
    config_dir: PathBuf,
    env: Vec<(String, Zeroizing<String>)>,
}

impl Project {
    /// Writes the Compose file of `compose` into `dir`; `secrets` gives the values of the
    /// variables the containers list.
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
        let env = compose
            .containers
            .iter()
            .flat_map(|c| c.env.iter())
            .filter_map(|name| Some((name.clone(), secrets.get(name)?.clone())))
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .collect();
        Ok(Self {
            file,
            config_dir,
            env,
        })
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("docker");
        command
            .arg("compose")
            .arg("--file")
            .arg(&self.file)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DOCKER_CONFIG", &self.config_dir)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null());
        command
    }

    /// `docker compose up` until `stop` says so, then `docker compose down`. Containers restart
    /// by their policy under Docker; a project that could not start is an error.
    pub async fn run(&self, mut stop: watch::Receiver<bool>) -> Result<(), String> {
        let mut up = self
            .command(&["up", "--no-build", "--remove-orphans"])
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run docker compose: {e}"))?;
        tracing::info!(file = %self.file.display(), "docker compose up");
        let exited = tokio::select! {
            status = up.wait() => Some(status),
            _ = stop.wait_for(|s| *s) => None,
        };
        if let Some(status) = exited {
            // `up` returns when no container runs any more (none restarts): the API keeps
            // serving until the guest is stopped.
            tracing::info!(status = ?status, "docker compose up returned");
            let _ = stop.wait_for(|s| *s).await;
        }
        let down = self
            .command(&["down", "--timeout", &STOP_GRACE_SECS.to_string()])
            .status()
            .await
            .map_err(|e| format!("cannot run docker compose down: {e}"))?;
        let _ = up.wait().await;
        if down.success() {
            tracing::info!("docker compose down");
            Ok(())
        } else {
            Err(format!("docker compose down failed: {down}"))
        }
    }
}
