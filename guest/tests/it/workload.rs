//! The workload under the simulated TEE: each container's command runs as a process with its
//! decrypted env secrets and the API socket, restarted by its policy, stopped with the guest.

use std::{collections::BTreeMap, time::Duration};

use alloy::primitives::{Address, B256};
use covenant_guest_api::env::{EncryptedEnv, seal};
use covenant_testkit::{Signal, wait_for};
use serde_json::{Value, json};

use crate::{
    Host, compose_hash,
    stack::{Stack, env_key},
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
                     sleep 600 & echo $! > {out}/child.pid; \
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

pub fn sealed(
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

/// Writes `env` into `host`'s state directory: the path to pass as `--env-secrets`.
pub fn env_file(host: &Host<'_>, env: &EncryptedEnv) -> String {
    let path = host.state_dir.join("env.json");
    std::fs::write(&path, serde_json::to_vec(env).unwrap()).unwrap();
    path.to_str().unwrap().to_owned()
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

    let socket = host.socket();
    let guest = host.run(app, &document, &["--env-secrets", &env_file(&host, &env)]);
    wait_for("the workload to start and the flaky service to settle")
        .timeout(Duration::from_secs(60))
        .watching(&guest)
        .until_ok(|| {
            let runs = read(&out.join("runs")).map_or(0, |r| r.lines().count());
            match (read(&out.join("web.pid")), runs) {
                (Some(_), 3) if read(&out.join("child.pid")).is_some() => Ok(()),
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

    // A guest killed outright takes its services with it: nothing keeps the app's secrets
    // running unsupervised.
    std::fs::remove_file(out.join("web.pid")).unwrap();
    let guest = host.run(app, &document, &["--env-secrets", &env_file(&host, &env)]);
    let web: i32 = wait_for("the workload to start again")
        .timeout(Duration::from_secs(60))
        .watching(&guest)
        .until_ok(|| {
            read(&out.join("web.pid"))
                .ok_or("no pid yet")
                .and_then(|p| p.trim().parse().map_err(|_| "partial pid"))
        })
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(guest.pid()).unwrap()),
        Signal::SIGKILL,
    )
    .unwrap();
    wait_for("the service to die with its guest")
        .timeout(Duration::from_secs(10))
        .until(|| !running(web))
        .unwrap();
    // What the service started itself stays in its group (see docs/guest.md, "Known limits"):
    // the test cleans it up.
    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(web), Signal::SIGKILL);
    guest.stop();
}

/// Whether process `pid` runs (a zombie does not).
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit(") ").next().map(|r| !r.starts_with('Z')))
        .unwrap_or(false)
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
        host.boot(app, &document, &["--env-secrets", &env_file(&host, env)])
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
    // A variable the container lists, stripped by the host.
    let e = boot(&sealed(
        &stack,
        &env_key(&stack, app).await,
        &[("API_TOKEN", "t")],
    ))
    .unwrap_err();
    assert!(
        e.contains("container \"web\" needs DB_PASSWORD, which the env secrets do not provide"),
        "{e}"
    );
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

/// A compose whose one container counts its boots in the data volume and reports the count.
fn counter_compose(stack: &Stack, out: &std::path::Path) -> Vec<u8> {
    let out = out.to_str().unwrap();
    serde_json::to_vec(&json!({
        "manifest_version": 1,
        "name": "counter",
        "containers": [{
            "name": "counter",
            "image": format!("example.invalid/counter@sha256:{}", "ef".repeat(32)),
            "command": ["/bin/sh", "-c", format!(
                "n=$(cat \"$COVENANT_DATA_DIR/count\" 2>/dev/null || echo 0); n=$((n+1)); \
                 mkdir -p \"$COVENANT_DATA_DIR/deep\"; echo $n > \"$COVENANT_DATA_DIR/count\"; \
                 echo $n > \"$COVENANT_DATA_DIR/deep/copy\"; echo $n > {out}/seen; exec sleep 600"
            )]
        }],
        "kms": {
            "chain_id": stack.deployment.chain_id,
            "registry": stack.registry_address().to_string().to_lowercase()
        }
    }))
    .unwrap()
}

/// Runs the guest of `host` until its workload reports a count, stops it, returns the count.
fn boot_and_count(host: &Host<'_>, app: Address, document: &[u8], out: &std::path::Path) -> String {
    let _ = std::fs::remove_file(out.join("seen"));
    let guest = host.run(app, document, &[]);
    let seen = wait_for("the counter to report")
        .timeout(Duration::from_secs(60))
        .watching(&guest)
        .until_ok(|| {
            read(&out.join("seen"))
                .filter(|s| s.ends_with('\n'))
                .ok_or("not yet")
        })
        .unwrap();
    guest.stop();
    assert!(
        guest.log_contains("data volume sealed"),
        "{}",
        guest.log_tail(20)
    );
    assert!(!host.state_dir.join("data").exists());
    seen.trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_volume_keeps_an_instances_data_across_boots_and_hosts_and_nobody_elses() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let stack = Stack::start().await;
    let first = Host::new(&stack, "host-a", 0xa1);
    let out = stack.dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let document = counter_compose(&stack, &out);
    let app = stack.create_app(compose_hash(&document)).await;
    stack.settle().await;

    assert_eq!(boot_and_count(&first, app, &document, &out), "1");
    let image = first.state_dir.join(covenant_guest::volume::FILE);
    assert!(
        std::fs::read(&image)
            .unwrap()
            .starts_with(covenant_guest::volume::MAGIC)
    );
    assert_eq!(boot_and_count(&first, app, &document, &out), "2");

    // The same instance (its state directory) on another host, another device: the same disk key.
    let second = Host::new(&stack, "host-b", 0xb2);
    for file in ["instance-id", covenant_guest::volume::FILE] {
        std::fs::copy(first.state_dir.join(file), second.state_dir.join(file)).unwrap();
    }
    assert_eq!(boot_and_count(&second, app, &document, &out), "3");

    // Another instance given this instance's volume: it does not open, and is left as it was.
    let third = Host::new(&stack, "host-c", 0xc3);
    let stolen = third.state_dir.join(covenant_guest::volume::FILE);
    std::fs::copy(second.state_dir.join(covenant_guest::volume::FILE), &stolen).unwrap();
    let before = std::fs::read(&stolen).unwrap();
    let stderr = third.run_refused(app, &document, &[]);
    // Refused again on the next boot, with nothing half-opened left to seal over the image.
    assert!(!third.state_dir.join("data").exists());
    let again = third.run_refused(app, &document, &[]);
    assert!(
        again.contains("does not open with this instance's disk key"),
        "{again}"
    );
    assert!(
        stderr.contains("does not open with this instance's disk key"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&stolen).unwrap(), before);
}
