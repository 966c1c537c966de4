//! `covenant verify` against a hostile gateway: a real TLS server (its own CA) publishing a
//! well-known document whose decision block is real but an hour old — the chain as it was, say,
//! before a revocation. The decision link must break, whatever the rest says.

use std::{
    io::{Read, Write},
    sync::Arc,
};

use alloy::providers::Provider;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

use crate::Devnet;

/// A TLS server for `name` on loopback answering every request with `body`; returns its port
/// and the PEM of the CA that issued its certificate. It serves until the process ends.
fn hostile_gateway(name: &str, body: String) -> (u16, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec![name.to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone(), ca.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { continue };
            let connection = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(connection, tcp);
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let _ = write!(
                tls,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tls.flush();
        }
    });
    (port, ca.pem())
}

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
    let (port, ca) = hostile_gateway(&name, document.to_string());
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
