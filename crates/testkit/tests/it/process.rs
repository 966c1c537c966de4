//! Stopping a child stops everything it started, even when it ignores its stop signal, and its
//! output is read to the end before `stop` returns.

use std::process::Command;

use covenant_testkit::{Process, Signal};

/// `pid`'s state letter (`None` once it is gone).
fn state(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(") ")
        .next()
        .and_then(|r| r.split(' ').next())
        .map(str::to_owned)
}

#[test]
fn a_child_ignoring_its_stop_signal_is_stopped_with_everything_it_started() {
    // A shell that ignores SIGINT (as background commands of a non-interactive shell do) and
    // starts a grandchild that ignores it too, then prints its last words on SIGTERM.
    let mut command = Command::new("bash");
    command.args([
        "-c",
        "trap '' INT; sleep 600 & echo \"grandchild $!\"; trap 'echo last words; exit 0' TERM; \
         while true; do sleep 0.1; done",
    ]);
    let process = Process::spawn("stubborn", command, Signal::SIGINT).unwrap();
    let line = process
        .wait_for_line(
            "the grandchild's pid",
            std::time::Duration::from_secs(10),
            |l| l.starts_with("grandchild "),
        )
        .unwrap();
    let grandchild: u32 = line["grandchild ".len()..].parse().unwrap();
    assert!(state(grandchild).is_some_and(|s| s != "Z"));
    process.stop();
    // SIGINT was ignored, SIGTERM reached the whole group: the shell said its last words (read
    // to the end before stop returned) and the grandchild is gone.
    assert!(
        process.log_contains("last words"),
        "{}",
        process.log_tail(10)
    );
    assert!(
        state(grandchild).is_none_or(|s| s == "Z"),
        "the grandchild survived: {:?}",
        state(grandchild)
    );
    assert!(!crate::process_exists(process.pid()));
}
