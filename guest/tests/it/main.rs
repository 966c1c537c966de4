//! The guest agent booting against the real stack: anvil and the contracts, the indexer, a KMS
//! node, and the `covenant-guest` binary on the simulated TEE (the same verification code as a
//! real one).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

mod api;
mod example;
mod gpu;
mod real_vm;
mod stack;
mod workload;

use std::{path::Path, process::Command, time::Duration};

use alloy::primitives::{Address, B256};
use covenant_attest::Policy;
use covenant_testkit::{Process, Signal};
use serde_json::{Value, json};
use stack::{FINALITY, OS_IMAGE, OS_IMAGE_UNLISTED, Stack, send};

pub fn kms_policy() -> Policy {
    covenant_guest::boot::kms_verifier_policy()
}

fn compose(stack: &Stack, name: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "manifest_version": 1,
        "name": name,
        "containers": [{
            "name": "web",
            "image": format!("example.invalid/{name}@sha256:{}", "ab".repeat(32)),
            "command": ["/bin/serve"]
        }],
        "allowed_envs": ["DB_PASSWORD"],
        "kms": {
            "chain_id": stack.deployment.chain_id,
            "registry": stack.registry_address().to_string().to_lowercase()
        }
    }))
    .unwrap()
}

/// A compose for `docker compose`: its `web` container lists `DB_PASSWORD` and restarts on
/// failure.
fn workload_compose_for_docker(stack: &Stack) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "manifest_version": 1,
        "name": "dockerised",
        "containers": [{
            "name": "web",
            "image": format!("example.invalid/web@sha256:{}", "ab".repeat(32)),
            "env": ["DB_PASSWORD"],
            "restart": "on-failure"
        }],
        "allowed_envs": ["DB_PASSWORD"],
        "kms": {
            "chain_id": stack.deployment.chain_id,
            "registry": stack.registry_address().to_string().to_lowercase()
        }
    }))
    .unwrap()
}

fn compose_hash(document: &[u8]) -> B256 {
    B256::from(
        *covenant_attest::compose::compose_hash(document)
            .unwrap()
            .1
            .as_bytes(),
    )
}

/// One host's boot of `app`: its own state directory and device.
struct Host<'a> {
    stack: &'a Stack,
    state_dir: std::path::PathBuf,
    device: B256,
}

impl<'a> Host<'a> {
    fn new(stack: &'a Stack, name: &str, device: u8) -> Self {
        let state_dir = stack.dir.path().join(name);
        std::fs::create_dir_all(&state_dir).unwrap();
        Self {
            stack,
            state_dir,
            device: B256::repeat_byte(device),
        }
    }

    /// Where `run` serves its API.
    fn socket(&self) -> std::path::PathBuf {
        self.state_dir.join("guest.sock")
    }

    /// `covenant-guest <subcommand>` for `app` booted with `compose` (written into the state
    /// directory), with `extra` arguments; `--os-image` is the listed image unless `extra` names
    /// one, and `run` serves on [`Host::socket`].
    fn command(&self, subcommand: &str, app: Address, compose: &[u8], extra: &[&str]) -> Command {
        let compose_path = self.state_dir.join("app-compose.json");
        std::fs::write(&compose_path, compose).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_covenant-guest"));
        cmd.arg(subcommand)
            .args(["--compose", path(&compose_path)])
            .args(["--app-id", &app.to_string()])
            .args(["--state-dir", path(&self.state_dir)])
            .args(["--deployment", path(&self.stack.deployment_path)])
            .args(["--rpc-url", &self.stack.anvil.endpoint()])
            .args(["--finality", &FINALITY.to_string()])
            .args(["--kms-url", &self.stack.kms().url()])
            .args(["--tee", "simulated"])
            .args(["--device-id", &self.device.to_string()]);
        if !extra.contains(&"--os-image") {
            cmd.args(["--os-image", &B256::from(OS_IMAGE).to_string()]);
        }
        if subcommand == "run" {
            cmd.args(["--socket", path(&self.socket())]);
        }
        cmd.args(extra);
        cmd
    }

    /// Runs `covenant-guest boot`: the printed identity, or the error it stopped with.
    fn boot(&self, app: Address, compose: &[u8], extra: &[&str]) -> Result<Value, String> {
        let out = self.command("boot", app, compose, extra).output().unwrap();
        if out.status.success() {
            Ok(serde_json::from_slice(&out.stdout).unwrap())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Runs `covenant-guest run` expecting it to stop before serving: the error it stopped with.
    fn run_refused(&self, app: Address, compose: &[u8], extra: &[&str]) -> String {
        let out = self.command("run", app, compose, extra).output().unwrap();
        assert!(!out.status.success(), "run served");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Starts `covenant-guest run` and waits until its API listens on [`Host::socket`].
    fn run(&self, app: Address, compose: &[u8], extra: &[&str]) -> Process {
        let cmd = self.command("run", app, compose, extra);
        let process = Process::spawn("guest", cmd, Signal::SIGTERM).unwrap();
        process
            .wait_for_line(
                "the guest api listening line",
                Duration::from_secs(60),
                |l| l.contains("guest api listening"),
            )
            .unwrap();
        process
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_app_boots_and_every_host_gets_the_same_app_keys() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let stack = Stack::start().await;
    let document = compose(&stack, "hello");
    let app = stack.create_app(compose_hash(&document)).await;
    stack.settle().await;

    let first = Host::new(&stack, "host-a", 0xa1);
    let a = first.boot(app, &document, &[]).unwrap();
    assert_eq!(
        a["appId"].as_str().unwrap().parse::<Address>().unwrap(),
        app
    );
    assert_eq!(
        a["rootSigner"]
            .as_str()
            .unwrap()
            .parse::<Address>()
            .unwrap(),
        stack.kms().root_signer
    );
    assert_eq!(a["composeHash"], compose_hash(&document).to_string());
    assert_eq!(a["firstBoot"], true);
    // The instance id was made and kept in the clear; a reboot keeps it and the app keys.
    let kept = std::fs::read_to_string(first.state_dir.join("instance-id")).unwrap();
    assert_eq!(
        format!("0x{}", kept.trim()),
        a["instanceId"].as_str().unwrap()
    );
    let again = first.boot(app, &document, &[]).unwrap();
    assert_eq!(again["firstBoot"], false);
    assert_eq!(again["instanceId"], a["instanceId"]);
    assert_eq!(again["appKey"], a["appKey"]);

    // Another host (another device, another instance): the same app keys.
    let second = Host::new(&stack, "host-b", 0xb2);
    let b = second.boot(app, &document, &[]).unwrap();
    assert_ne!(b["instanceId"], a["instanceId"]);
    assert_eq!(b["appKey"], a["appKey"]);
    assert_eq!(b["keyGeneration"], a["keyGeneration"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_boot_the_chain_does_not_allow_stops_with_the_kms_reason() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let stack = Stack::start().await;
    let document = compose(&stack, "hello");
    let app = stack.create_app(compose_hash(&document)).await;
    stack.settle().await;
    let host = Host::new(&stack, "host", 0xa1);
    host.boot(app, &document, &[]).unwrap();

    // A compose the app does not allow.
    let other = compose(&stack, "hello-v2");
    let e = host.boot(app, &other, &[]).unwrap_err();
    assert!(
        e.contains("the KMS refused this boot: compose hash not allowed"),
        "{e}"
    );
    // An OS image the registry does not allow.
    let image = B256::from(OS_IMAGE_UNLISTED).to_string();
    let e = host
        .boot(app, &document, &["--os-image", &image])
        .unwrap_err();
    assert!(
        e.contains("the KMS refused this boot: os image not allowed"),
        "{e}"
    );
    // A KMS root the app does not trust: the guest does not present its boot to that node.
    let e = host
        .boot(
            app,
            &document,
            &["--key-provider", &Address::repeat_byte(0x4b).to_string()],
        )
        .unwrap_err();
    assert!(e.contains("not the trusted"), "{e}");
    // A compose naming another deployment is refused before anything is measured.
    let mut foreign: Value = serde_json::from_slice(&document).unwrap();
    foreign["kms"]["chain_id"] = json!(1);
    let e = host
        .boot(app, &serde_json::to_vec(&foreign).unwrap(), &[])
        .unwrap_err();
    assert!(e.contains("not this deployment"), "{e}");

    // Governance revokes the compose hash: once the removal is final, the boot is refused.
    let owner = stack.timelock();
    send!(
        stack
            .app(app)
            .removeComposeHash(compose_hash(&document))
            .from(owner)
    );
    stack.settle().await;
    let e = host.boot(app, &document, &[]).unwrap_err();
    assert!(
        e.contains("the KMS refused this boot: compose hash not allowed"),
        "{e}"
    );
}
