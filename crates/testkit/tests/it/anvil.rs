use std::{net::TcpListener, panic, time::Duration};

use covenant_testkit::{Anvil, Error, TEST_MNEMONIC, Watched, wait_for};
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use serde_json::json;

use crate::{port_accepts, process_exists};

#[test]
fn answers_rpc_with_the_configured_chain_id_and_fixed_accounts() {
    let anvil = Anvil::builder().with_chain_id(1_337).spawn();
    assert_eq!(anvil.rpc("eth_chainId", json!([])).unwrap(), json!("0x539"));
    assert_eq!(anvil.chain_id(), 1_337);
    assert!(anvil.endpoint().starts_with("http://127.0.0.1:"));
    assert_eq!(
        anvil.ws_endpoint(),
        format!("ws://127.0.0.1:{}", anvil.port())
    );
    // The accounts of TEST_MNEMONIC: the same in every run.
    let accounts = anvil.accounts();
    assert_eq!(accounts.len(), 10);
    assert_eq!(
        accounts[0].address,
        "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    );
    assert_eq!(
        accounts[0].private_key,
        "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
    );
    assert!(anvil.log().contains(TEST_MNEMONIC));
    let funded = anvil
        .rpc("eth_getBalance", json!([accounts[9].address, "latest"]))
        .unwrap();
    assert_ne!(funded, json!("0x0"));
}

#[test]
fn automines_only_on_request_by_default() {
    let anvil = Anvil::spawn();
    assert_eq!(anvil.block_number().unwrap(), 0);
    anvil.rpc("evm_mine", json!([])).unwrap();
    anvil.rpc("evm_mine", json!([])).unwrap();
    assert_eq!(anvil.block_number().unwrap(), 2);
}

#[test]
fn block_time_mines_blocks_on_its_own() {
    let anvil = Anvil::builder()
        .with_block_time(Duration::from_millis(100))
        .spawn();
    wait_for("anvil to mine three blocks by itself")
        .watching(&anvil)
        .until(|| anvil.block_number().is_ok_and(|n| n >= 3))
        .unwrap();
}

#[test]
fn two_instances_get_distinct_ports() {
    let a = Anvil::spawn();
    let b = Anvil::spawn();
    assert_ne!(a.port(), b.port());
    assert_eq!(a.block_number().unwrap(), 0);
    assert_eq!(b.block_number().unwrap(), 0);
}

#[test]
fn a_taken_port_falls_back_to_a_free_one() {
    let squatter = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap().port();
    let anvil = Anvil::builder().with_port(taken).spawn();
    assert_ne!(anvil.port(), taken);
    assert_eq!(anvil.block_number().unwrap(), 0);
}

#[test]
fn a_free_requested_port_is_used() {
    let port = {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let anvil = Anvil::builder().with_port(port).spawn();
    assert_eq!(anvil.port(), port);
}

#[test]
fn is_killed_on_drop() {
    let anvil = Anvil::spawn();
    let (pid, port) = (anvil.pid(), anvil.port());
    assert!(process_exists(pid) && port_accepts(port));
    drop(anvil);
    assert!(!process_exists(pid), "anvil {pid} still running after drop");
    assert!(!port_accepts(port));
}

#[test]
fn is_killed_when_the_test_panics() {
    let (tx, rx) = std::sync::mpsc::channel();
    let outcome = panic::catch_unwind(move || {
        let anvil = Anvil::spawn();
        tx.send((anvil.pid(), anvil.port())).unwrap();
        panic!("a failing test body");
    });
    assert!(outcome.is_err());
    let (pid, port) = rx.recv().unwrap();
    assert!(
        !process_exists(pid),
        "anvil {pid} outlived the panicking test"
    );
    assert!(!port_accepts(port));
}

#[test]
fn a_start_up_failure_reports_anvils_own_output() {
    let err = Anvil::builder()
        .with_arg("--no-such-flag")
        .try_spawn()
        .unwrap_err();
    assert!(matches!(err, Error::Exited { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("anvil"), "{message}");
    assert!(
        message.contains("unexpected argument '--no-such-flag'"),
        "{message}"
    );
}

#[test]
fn a_crashed_anvil_fails_waits_and_calls_with_its_log() {
    let anvil = Anvil::spawn();
    assert!(anvil.ensure_alive().is_ok());
    kill(Pid::from_raw(anvil.pid() as i32), Signal::SIGKILL).unwrap();

    // A wait watching anvil fails as soon as anvil is gone, not at its (long) deadline.
    let err = wait_for("a block that will never come")
        .timeout(Duration::from_secs(3600))
        .watching(&anvil)
        .until(|| false)
        .unwrap_err();
    assert!(matches!(err, Error::Exited { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("signal: 9"), "{message}");
    assert!(message.contains("Listening on 127.0.0.1"), "{message}");

    let err = anvil.block_number().unwrap_err();
    assert!(matches!(err, Error::Exited { .. }), "{err}");
}

#[test]
fn artifact_bytecode_reads_forge_output_and_names_a_missing_artifact() {
    let code = covenant_testkit::artifact_bytecode("CovenantToken").unwrap();
    assert!(code.len() > 1000, "creation code of {} bytes", code.len());
    let err = covenant_testkit::artifact_bytecode("NoSuchContract").unwrap_err();
    assert!(
        err.to_string()
            .contains("out/NoSuchContract.sol/NoSuchContract.json"),
        "{err}"
    );
}
