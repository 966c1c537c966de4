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

/// The second word of each logged call (`cryptsetup open …` → `open`, `mount -o …` → `-o`).
fn verbs(log: &Path) -> Vec<String> {
    lines(log)
        .iter()
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
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
    // The guest's private directory (tmpfs in a VM), apart from the host's state directory.
    let run_dir = stack.dir.path().join("run-vm-a");
    let run_dir_arg = run_dir.to_str().unwrap().to_owned();
    let args = [
        "--runtime",
        "docker",
        "--data-device",
        device.as_str(),
        "--env-secrets",
        env_path.as_str(),
        "--run-dir",
        run_dir_arg.as_str(),
    ];
    let docker = run_dir.join("docker");
    let boot = |log: &Path| {
        let guest = Process::spawn(
            "guest",
            command(&host, app, &document, &args, log),
            Signal::SIGTERM,
        )
        .unwrap();
        guest
            .wait_for_line("the guest api", Duration::from_secs(60), |l| {
                l.contains("guest api listening")
            })
            .unwrap();
        guest
    };

    // First boot: formatted with the derived volume key, opened with it, its cipher checked, a
    // file system made, mounted in the private directory; compose is up.
    let guest = boot(&log);
    wait_for("docker compose up")
        .timeout(Duration::from_secs(60))
        .watching(&guest)
        // Up once the guest says `up` succeeded (the fake writes env-up while it runs; a stop
        // before it returned would interrupt it).
        .until(|| docker.join("env-up").exists() && guest.log_contains("docker compose up file="))
        .unwrap();
    assert_eq!(
        verbs(&log),
        [
            "cryptsetup isLuks",
            "cryptsetup luksFormat",
            "cryptsetup open",
            "cryptsetup status",
            "blkid -p",
            "mkfs.ext4 -q",
            "mount -o",
        ]
    );
    let calls = lines(&log);
    // The volume key comes from a memory file and the passphrase through a pipe: no argument
    // carries key material.
    for call in calls
        .iter()
        .filter(|l| l.contains("luksFormat") || l.contains(" open "))
    {
        assert!(call.contains("--volume-key-file /dev/fd/"), "{call}");
    }
    assert!(calls[1].contains("--key-file - "), "{}", calls[1]);
    assert!(
        calls[6].contains(run_dir.join("data").to_str().unwrap()),
        "{}",
        calls[6]
    );
    // The Compose file, in the private directory: pinned images, the API socket and the volume
    // mounted, the secret named but not written; its value reaches `docker compose` only
    // through its environment, with no env file and nothing else of the guest's environment.
    let file = std::fs::read_to_string(run_dir.join("docker-compose.json")).unwrap();
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
        volumes.contains(run_dir.join("data").to_str().unwrap()),
        "{volumes}"
    );
    let compose_env = std::fs::read_to_string(docker.join("env-up")).unwrap();
    assert!(compose_env.contains("DB_PASSWORD=hunter2"), "{compose_env}");
    assert!(compose_env.contains("COMPOSE_DISABLE_ENV_FILE=1"));
    assert!(!compose_env.contains("FAKE_TOOLS_LOG"), "{compose_env}");
    let up = lines(&docker.join("calls"));
    assert!(
        up[0].contains(&format!("--project-directory {}", run_dir.display()))
            && up[0].contains(" up --detach"),
        "{up:?}"
    );

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

    // The next boot opens the same volume: no format, no new file system; nor when the host
    // deletes the format marker (the file system is found).
    for delete_marker in [false, true] {
        if delete_marker {
            std::fs::remove_file(host.state_dir.join("volume-luks2")).unwrap();
        }
        std::fs::remove_file(&log).unwrap();
        boot(&log).stop();
        assert_eq!(
            verbs(&log)[..5],
            [
                "cryptsetup isLuks",
                "cryptsetup open",
                "cryptsetup status",
                "blkid -p",
                "mount -o"
            ]
        );
    }

    // The mapping reports another cipher than the key is for: closed again, the app never runs.
    std::fs::write(format!("{device}.cipher"), "cipher_null").unwrap();
    let out = command(&host, app, &document, &args, &log)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("\"cipher_null\""), "{e}");
    assert_eq!(
        lines(&log).last().unwrap(),
        "cryptsetup close covenant-data"
    );
    std::fs::remove_file(format!("{device}.cipher")).unwrap();

    // Another instance handed this device: its key does not open it, and its app never starts.
    let other = Host::new(&stack, "vm-b", 0xb2);
    let other_env = super::workload::env_file(&other, &env);
    let other_run = stack.dir.path().join("run-vm-b");
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
            "--run-dir",
            other_run.to_str().unwrap(),
        ],
        &other.state_dir.join("tools.log"),
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("does not match"), "{e}");
    assert!(!other_run.join("docker").join("env-up").exists());

    // The host wipes the device: a later boot refuses rather than format an empty volume.
    std::fs::remove_file(format!("{device}.luks")).unwrap();
    let out = command(&host, app, &document, &args, &log)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("formatted before"), "{e}");

    // The private directory must be one: a symlink there is refused.
    let linked = stack.dir.path().join("run-linked");
    std::os::unix::fs::symlink(&host.state_dir, &linked).unwrap();
    let mut redirected = args;
    redirected[7] = linked.to_str().unwrap();
    let out = command(&host, app, &document, &redirected, &log)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("is not a directory"), "{e}");
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
    // Nor a GPU whose signing key is public.
    let e = run(&[
        "--data-device",
        "/dev/vdb",
        "--gpu",
        "simulated",
        "--gpu-device-id",
        &alloy::primitives::B256::ZERO.to_string(),
    ]);
    assert!(e.contains("--tee simulated only"), "{e}");
}
