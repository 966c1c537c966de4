//! Which TEE a node runs in, and what it refuses: no TEE detected without `--tee`, no sealed
//! state on TDX, no file sealing key on a real TEE, no SEV-SNP sealing without the firmware. The
//! real binary, failing closed with a message that says why.

use std::process::Command;

use crate::fixture::*;

/// `covenant-kms-oracle <command>` for node state in `dir`, with `tee` (`None`: no `--tee`).
fn kms(stack: &Stack, command: &str, dir: &std::path::Path, tee: Option<&str>) -> (bool, String) {
    let mut args = common_args(stack, dir, "postgres://unused", KMS_DEVICE);
    let at = args.iter().position(|a| a == "--tee").unwrap();
    args.drain(at..at + 2);
    if let Some(tee) = tee {
        args.extend(["--tee".into(), tee.into()]);
    }
    // An empty configfs-tsm directory: no provider will answer.
    let tsm = stack.dir.path().join("tsm");
    std::fs::create_dir_all(&tsm).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_covenant-kms-oracle"))
        .arg(command)
        .args(args)
        .args(["--tsm-root", tsm.to_str().unwrap()])
        .arg("--bootstrap")
        .env("COVENANT_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tee_mode_refuses_what_it_cannot_protect() {
    let stack = Stack::start().await;
    let dir = stack.dir.path().join("node");

    // No --tee and no configfs-tsm provider: not silently simulated.
    let (ok, err) = kms(&stack, "init", &dir, None);
    assert!(!ok);
    assert!(
        err.contains("no TEE detected") && err.contains("--tee simulated"),
        "{err}"
    );

    // TDX: nothing can be sealed; init says so plainly and points at the in-memory bootstrap.
    let (ok, err) = kms(&stack, "init", &dir, Some("tdx"));
    assert!(!ok);
    assert!(
        err.contains("no sealing key") && err.contains("loses it on restart"),
        "{err}"
    );
    // A TDX node that cannot quote does not start (no evidence, no identity).
    let (ok, err) = kms(&stack, "run", &dir, Some("tdx"));
    assert!(!ok);
    assert!(err.contains("own evidence"), "{err}");

    // SEV-SNP without the firmware device: the sealing key cannot be derived, nothing is written.
    let (ok, err) = kms(&stack, "init", &dir, Some("sev-snp"));
    assert!(!ok);
    assert!(err.contains("SEV-SNP firmware"), "{err}");
    assert!(!dir.join("node.sealed").exists());

    // State sealed under the simulated TEE's file key: a real-TEE node refuses it.
    let (ok, err) = kms(&stack, "init", &dir, Some("simulated"));
    assert!(ok, "{err}");
    assert!(err.contains("development only"), "{err}");
    for tee in ["sev-snp", "tdx"] {
        let (ok, err) = kms(&stack, "run", &dir, Some(tee));
        assert!(!ok);
        assert!(err.contains("refuses to start"), "{tee}: {err}");
    }
}
