//! `scripts/setup` on a machine without the tools it needs, as a user who cannot install them,
//! names each missing piece and the command that installs it, and fails.

use std::{os::unix::fs::PermissionsExt, process::Command};

use covenant_testkit::tools;

#[test]
fn setup_names_what_is_missing_and_how_to_install_it() {
    // A PATH with the shell utilities only: no node, npm, cargo, pebble; and no PostgreSQL.
    let bin = tempfile::tempdir().unwrap();
    std::fs::set_permissions(bin.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for tool in [
        "bash",
        "env",
        "dirname",
        "ls",
        "sort",
        "tail",
        "cat",
        "cut",
        "sha256sum",
        "sed",
    ] {
        std::os::unix::fs::symlink(format!("/usr/bin/{tool}"), bin.path().join(tool)).unwrap();
    }
    let setup = tools::repo_root().join("scripts/setup");
    // As root, run as `nobody`, who may not install anything.
    let mut command = if nix::unistd::geteuid().is_root() {
        let mut c = Command::new("/usr/bin/setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .arg(&setup);
        c
    } else {
        Command::new(&setup)
    };
    let output = command
        .env_clear()
        .env("PATH", bin.path())
        .env("HOME", "/tmp")
        .env("COVENANT_PG_BIN", "/nonexistent")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("missing system packages: nodejs npm curl pebble postgresql"),
        "{stderr}"
    );
    assert!(
        stderr.contains("apt-get install -y nodejs npm curl pebble postgresql"),
        "{stderr}"
    );
    assert!(stderr.contains("cargo is missing"), "{stderr}");
    assert!(
        stderr.contains("rustup toolchain install 1.95.0"),
        "{stderr}"
    );
}
