//! `covenant verify` against a hostile gateway: a real TLS server (its own CA) publishing a
//! well-known document whose decision block is real but an hour old — the chain as it was, say,
//! before a revocation. The decision link must break, whatever the rest says.

use alloy::providers::Provider;

use crate::Devnet;

#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_showing_an_old_block_breaks_the_decision_link() {
    let devnet = Devnet::start().await;
    let old = devnet
        .provider
        .get_block_by_number(1.into())
        .await
        .unwrap()
        .unwrap();
    // An hour passes on the chain.
    devnet.advance(3600);
    let name = format!("{}.localhost", "ab".repeat(20));
    let document = serde_json::json!({
        "version": 1,
        "host": name,
        "app": format!("0x{}", "ab".repeat(20)),
        "decision": { "block": old.header.number, "hash": old.header.hash.to_string() },
        "gateway": null,
        "acme": null,
        "instances": [],
        "certificateKeys": [],
    });
    let (port, ca) = crate::tls_server(&name, document.to_string());
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca).unwrap();

    let url = format!("https://{name}:{port}/");
    let run = devnet.covenant(
        None,
        &["verify", &url, "--ca-file", ca_file.to_str().unwrap()],
    );
    assert!(!run.ok, "an old view verified: {}", run.stdout);
    assert!(
        run.stderr.contains("  ok      TLS:"),
        "the TLS link itself holds: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!(
            "BROKEN  decision: block {} is ",
            old.header.number
        )) && run.stderr.contains("behind the head"),
        "{}",
        run.stderr
    );
}
