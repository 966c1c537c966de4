//! What `run` does on a real VM, on this machine: the workload under `docker compose` and the
//! data volume on a LUKS2 device. Neither a Docker daemon nor device-mapper is available here, so
//! `docker`, `cryptsetup`, `mkfs.ext4`, `mount` and `umount` are the stand-ins in
//! `guest/tests/fake-tools` (they log what they are asked and keep a "LUKS header" as the hash of
//! the key they are piped); the guest, its boot against the real stack and the KMS are real.

use std::{path::Path, process::Command, time::Duration};

use alloy::primitives::Address;
use covenant_testkit::{Process, Signal, wait_for};
use serde_json::Value;

use crate::{
    Host, compose_hash,
    stack::{Stack, env_key},
};

fn fake_tools() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake-tools")
}

/// `run` with the fake tools first on `PATH`, logging into `log`.
fn command(host: &Host<'_>, app: Address, document: &[u8], extra: &[&str], log: &Path) -> Command {
    let mut cmd = host.command("run", app, document, extra);
    let path = format!(
        "{}:{}",
        fake_tools().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    cmd.env("PATH", path).env("FAKE_TOOLS_LOG", log);
    cmd
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_real_vm_the_app_runs_under_docker_compose_on_its_luks2_volume() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let stack = Stack::start().await;
    let document = super::workload_compose_for_docker(&stack);
    let app = stack.create_app(compose_hash(&document)).await;
    stack.settle().await;
    let statement = env_key(&stack, app).await;
    let env = super::workload::sealed(&stack, &statement, &[("DB_PASSWORD", "hunter2")]);
    let host = Host::new(&stack, "vm-a", 0xa1);
    let device = host.state_dir.join("vdb");
    std::fs::write(&device, b"").unwrap();
    let device = device.to_str().unwrap().to_owned();
    let log = host.state_dir.join("tools.log");
    let env_path = super::workload::env_file(&host, &env);
    let args = [
        "--runtime",
        "docker",
        "--data-device",
        device.as_str(),
        "--env-secrets",
        env_path.as_str(),
    ];
    let docker = host.state_dir.join("docker");

    // First boot: the device is formatted, opened, given a file system, mounted; compose is up.
    let guest = Process::spawn(
        "guest",
        command(&host, app, &document, &args, &log),
        Signal::SIGTERM,
    )
    .unwrap();
    wait_for("docker compose up")
        .timeout(Duration::from_secs(60))
        .watching(&guest)
        .until(|| docker.join("env-up").exists())
        .unwrap();
    let calls = lines(&log);
    let verbs: Vec<&str> = calls
        .iter()
        .map(|l| l.split_whitespace().take(2).last().unwrap_or_default())
        .collect();
    assert_eq!(
        verbs,
        ["isLuks", "luksFormat", "open", "-q", "-o"],
        "{calls:?}"
    );
    // The key goes through a pipe, never an argument.
    assert!(
        calls
            .iter()
            .all(|l| !l.contains("--key-file ") || l.contains("--key-file - "))
    );
    assert!(calls.iter().any(|l| l.contains("luksFormat --type luks2")));
    // The Compose file: pinned images, the API socket and the volume mounted, the secret named
    // but not written; its value reaches `docker compose` only through its environment.
    let file = std::fs::read_to_string(host.state_dir.join("docker-compose.json")).unwrap();
    assert!(!file.contains("hunter2"));
    let project: Value = serde_json::from_str(&file).unwrap();
    let web = &project["services"]["web"];
    assert_eq!(
        web["image"],
        format!("example.invalid/web@sha256:{}", "ab".repeat(32))
    );
    assert_eq!(web["restart"], "on-failure");
    let environment: Vec<&str> = web["environment"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(environment.contains(&"DB_PASSWORD"), "{environment:?}");
    assert!(environment.contains(&"COVENANT_GUEST_SOCKET=/run/covenant/guest.sock"));
    let volumes = web["volumes"].to_string();
    assert!(
        volumes.contains(host.socket().to_str().unwrap()),
        "{volumes}"
    );
    assert!(
        volumes.contains(host.state_dir.join("data").to_str().unwrap()),
        "{volumes}"
    );
    let compose_env = std::fs::read_to_string(docker.join("env-up")).unwrap();
    assert!(compose_env.contains("DB_PASSWORD=hunter2"));
    // Nothing else of the guest's environment (the fake tools' log path, for one).
    assert!(!compose_env.contains("FAKE_TOOLS_LOG"), "{compose_env}");

    // A clean stop: compose down, unmount, lock.
    guest.stop();
    assert!(
        guest.log_contains("guest stopped"),
        "{}",
        guest.log_tail(20)
    );
    assert!(
        lines(&docker.join("calls"))
            .iter()
            .any(|l| l.contains(" down --timeout 10"))
    );
    let calls = lines(&log);
    assert!(calls[calls.len() - 2].starts_with("umount "), "{calls:?}");
    assert_eq!(calls[calls.len() - 1], "cryptsetup close covenant-data");

    // The next boot opens the same volume: no format, no new file system.
    std::fs::remove_file(&log).unwrap();
    let again = Process::spawn(
        "guest",
        command(&host, app, &document, &args, &log),
        Signal::SIGTERM,
    )
    .unwrap();
    again
        .wait_for_line("the volume", Duration::from_secs(60), |l| {
            l.contains("data volume open (LUKS2)")
        })
        .unwrap();
    again.stop();
    let verbs: Vec<String> = lines(&log)
        .iter()
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        verbs[..3],
        ["cryptsetup isLuks", "cryptsetup open", "mount -o"],
        "{verbs:?}"
    );

    // Another instance handed this device: its key does not open it, and its app never starts.
    let other = Host::new(&stack, "vm-b", 0xb2);
    let other_env = super::workload::env_file(&other, &env);
    let out = command(
        &other,
        app,
        &document,
        &[
            "--runtime",
            "docker",
            "--data-device",
            &device,
            "--env-secrets",
            &other_env,
        ],
        &other.state_dir.join("tools.log"),
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("No key available"), "{e}");
    assert!(!other.state_dir.join("docker").join("env-up").exists());

    // The host wipes the device: a later boot refuses rather than format an empty volume.
    std::fs::remove_file(format!("{device}.luks")).unwrap();
    let out = command(&host, app, &document, &args, &log)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("formatted before"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_tee_never_runs_bare_processes_or_an_unencrypted_volume() {
    // Refused before anything is measured or asked for: no chain is needed.
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_covenant-guest"))
            .arg("run")
            .args(["--compose", "/nonexistent/app-compose.json"])
            .args(["--app-id", &Address::repeat_byte(1).to_string()])
            .args(["--os-image", &alloy::primitives::B256::ZERO.to_string()])
            .args(["--state-dir", dir.path().to_str().unwrap()])
            .args(["--deployment", "/nonexistent/deployment.json"])
            .args(["--rpc-url", "http://127.0.0.1:1"])
            .args(["--kms-url", "https://127.0.0.1:1"])
            .args(["--socket", dir.path().join("s").to_str().unwrap()])
            .args(["--tee", "tdx"])
            .args(extra)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = run(&["--runtime", "processes", "--data-device", "/dev/vdb"]);
    assert!(e.contains("simulated TEE only"), "{e}");
    let e = run(&[]);
    assert!(e.contains("--data-device"), "{e}");
}
