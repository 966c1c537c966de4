//! The workload under the simulated TEE: each container's command runs as a process with its
//! decrypted env secrets and the API socket, restarted by its policy, stopped with the guest.

use std::{collections::BTreeMap, process::Command, time::Duration};

use alloy::primitives::{Address, B256};
use covenant_guest_api::env::{EncryptedEnv, seal};
use covenant_testkit::{Process, Signal, wait_for};
use serde_json::{Value, json};

use crate::{
    Host, compose_hash,
    stack::{OS_IMAGE, Stack, env_key},
};

/// A compose whose `web` container writes what it was given into `out` and stays up, and whose
/// `flaky` container fails twice before it stays up.
fn workload_compose(stack: &Stack, out: &std::path::Path) -> Vec<u8> {
    let out = out.to_str().unwrap();
    serde_json::to_vec(&json!({
        "manifest_version": 1,
        "name": "worker",
        "containers": [
            {
                "name": "web",
                "image": format!("example.invalid/web@sha256:{}", "ab".repeat(32)),
                "command": ["/bin/sh", "-c", format!(
                    "printf '%s' \"$DB_PASSWORD\" > {out}/secret; \
                     printf '%s' \"$COVENANT_GUEST_SOCKET\" > {out}/socket; \
                     printf '%s' \"${{API_TOKEN-unset}}\" > {out}/unlisted; \
                     echo $$ > {out}/web.pid; exec sleep 600"
                )],
                "env": ["DB_PASSWORD"]
            },
            {
                "name": "flaky",
                "image": format!("example.invalid/flaky@sha256:{}", "cd".repeat(32)),
                "command": ["/bin/sh", "-c", format!(
                    "echo run >> {out}/runs; [ $(wc -l < {out}/runs) -ge 3 ] && exec sleep 600; exit 1"
                )],
                "restart": "on-failure"
            }
        ],
        "allowed_envs": ["DB_PASSWORD", "API_TOKEN"],
        "kms": {
            "chain_id": stack.deployment.chain_id,
            "registry": stack.registry_address().to_string().to_lowercase()
        }
    }))
    .unwrap()
}

fn sealed(
    stack: &Stack,
    statement: &covenant_kms_api::EnvKeyStatement,
    vars: &[(&str, &str)],
) -> EncryptedEnv {
    let vars: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    seal(
        statement,
        stack.deployment.chain_id,
        stack.registry_address(),
        stack.kms().root_signer,
        &vars,
    )
    .unwrap()
}

fn run_args(host: &Host<'_>, app: Address, document: &[u8], env: &EncryptedEnv) -> Vec<String> {
    let env_path = host.state_dir.join("env.json");
    std::fs::write(&env_path, serde_json::to_vec(env).unwrap()).unwrap();
    let mut args = host.args(app, document);
    args.extend([
        "--os-image".to_owned(),
        B256::from(OS_IMAGE).to_string(),
        "--env-secrets".to_owned(),
        env_path.to_str().unwrap().to_owned(),
    ]);
    args
}

fn read(path: &std::path::Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workload_runs_with_its_secrets_restarts_by_policy_and_stops_with_the_guest() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let stack = Stack::start().await;
    let host = Host::new(&stack, "host", 0xa1);
    let out = host.state_dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let document = workload_compose(&stack, &out);
    let app = stack.create_app(compose_hash(&document)).await;
    stack.settle().await;
    let statement = env_key(&stack, app).await;
    let env = sealed(&stack, &statement, &[("DB_PASSWORD", "hunter2")]);

    let socket = host.state_dir.join("guest.sock");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_covenant-guest"));
    cmd.arg("run")
        .args(run_args(&host, app, &document, &env))
        .args(["--socket", socket.to_str().unwrap()]);
    let guest = Process::spawn("guest", cmd, Signal::SIGTERM).unwrap();
    wait_for("the workload to start and the flaky service to settle")
        .timeout(Duration::from_secs(60))
        .watching(&guest)
        .until_ok(|| {
            let runs = read(&out.join("runs")).map_or(0, |r| r.lines().count());
            match (read(&out.join("web.pid")), runs) {
                (Some(_), 3) => Ok(()),
                state => Err(format!("{state:?}")),
            }
        })
        .unwrap();
    assert_eq!(read(&out.join("secret")).unwrap(), "hunter2");
    assert_eq!(read(&out.join("socket")).unwrap(), socket.to_str().unwrap());
    // A variable the container does not list is not given to it, even if the compose allows it.
    assert_eq!(read(&out.join("unlisted")).unwrap(), "unset");
    assert!(guest.log_contains("development only"));

    let web: i32 = read(&out.join("web.pid")).unwrap().trim().parse().unwrap();
    assert!(std::path::Path::new(&format!("/proc/{web}")).exists());
    guest.stop();
    assert!(
        guest.log_contains("guest stopped"),
        "{}",
        guest.log_tail(20)
    );
    // The service and everything it started are gone (no zombie either: /proc entry removed).
    assert!(!std::path::Path::new(&format!("/proc/{web}")).exists());
    // The flaky service was not restarted after it settled (three runs, not more).
    assert_eq!(read(&out.join("runs")).unwrap().lines().count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_secrets_for_another_app_or_an_unlisted_name_stop_the_boot() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let stack = Stack::start().await;
    let host = Host::new(&stack, "host", 0xa1);
    let out = host.state_dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let document = workload_compose(&stack, &out);
    let app = stack.create_app(compose_hash(&document)).await;
    let other = stack.create_app(B256::repeat_byte(0x77)).await;
    stack.settle().await;
    let boot = |env: &EncryptedEnv| -> Result<Value, String> {
        let out = Command::new(env!("CARGO_BIN_EXE_covenant-guest"))
            .arg("boot")
            .args(run_args(&host, app, &document, env))
            .output()
            .unwrap();
        if out.status.success() {
            Ok(serde_json::from_slice(&out.stdout).unwrap())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    };
    // The app's own secrets: opened, names reported, values never printed.
    let own = boot(&sealed(
        &stack,
        &env_key(&stack, app).await,
        &[("DB_PASSWORD", "hunter2")],
    ))
    .unwrap();
    assert_eq!(own["envVariables"], json!(["DB_PASSWORD"]));
    assert!(!own.to_string().contains("hunter2"));
    // Sealed for another app.
    let foreign = sealed(
        &stack,
        &env_key(&stack, other).await,
        &[("DB_PASSWORD", "x")],
    );
    let e = boot(&foreign).unwrap_err();
    assert!(
        e.contains("env secrets: the env secrets are for app"),
        "{e}"
    );
    // Relabelled as this app's: does not decrypt.
    let relabelled = EncryptedEnv {
        app_id: app,
        ..foreign
    };
    let e = boot(&relabelled).unwrap_err();
    assert!(e.contains("do not decrypt"), "{e}");
    // A name the compose does not allow.
    let e = boot(&sealed(
        &stack,
        &env_key(&stack, app).await,
        &[("PATH", "/evil")],
    ))
    .unwrap_err();
    assert!(
        e.contains("\"PATH\" is not in the compose's allowed_envs"),
        "{e}"
    );
}
