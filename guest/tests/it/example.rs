//! The example app (`test/apps/hello`) under a real guest: its certificate verifies up to the
//! chain's root CA, and its evidence binds that certificate's key to the app's boot.

use std::{sync::Arc, time::Duration};

use alloy::primitives::Address;
use covenant_attest::{Binding, ReportData};
use covenant_testkit::{tools::workspace_bin, wait_for};
use rustls::{
    DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    pki_types::{CertificateDer, ServerName, UnixTime},
};
use serde_json::{Value, json};
use sha2::Digest;

use crate::{Host, compose_hash, stack::Stack};

/// Accepts any certificate during the handshake: the chain is checked right after, the way
/// Covenant clients check app chains (`verify_app_chain` against the on-chain root CA key).
#[derive(Debug)]
struct CheckedAfter;

impl ServerCertVerifier for CheckedAfter {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &rustls::crypto::ring::default_provider().signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &rustls::crypto::ring::default_provider().signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `GET /` over TLS: the certificate chain presented and the answer.
async fn get(addr: std::net::SocketAddr) -> (Vec<Vec<u8>>, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut config = rustls::ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(CheckedAfter))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let chain = tls
        .get_ref()
        .1
        .peer_certificates()
        .unwrap()
        .iter()
        .map(|c| c.to_vec())
        .collect();
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await;
    let text = String::from_utf8(response).unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap();
    (chain, serde_json::from_str(body).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_app_serves_a_chain_verified_certificate_and_its_attested_identity() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let stack = Stack::start().await;
    let host = Host::new(&stack, "host", 0xa1);
    let addr_file = host.state_dir.join("app.addr");
    let bin = workspace_bin("covenant-example-app").unwrap();
    let document = serde_json::to_vec(&json!({
        "manifest_version": 1,
        "name": "hello",
        "containers": [{
            "name": "hello",
            "image": format!("example.invalid/hello@sha256:{}", "12".repeat(32)),
            "command": [bin.to_str().unwrap(), "--listen", "127.0.0.1:0",
                        "--addr-file", addr_file.to_str().unwrap()]
        }],
        "ports": [{"container": "hello", "port": 8443, "protocol": "tls-passthrough"}],
        "kms": {
            "chain_id": stack.deployment.chain_id,
            "registry": stack.registry_address().to_string().to_lowercase()
        }
    }))
    .unwrap();
    let app = stack.create_app(compose_hash(&document)).await;
    stack.settle().await;
    let guest = host.run(app, &document, &[]);
    let addr: std::net::SocketAddr = wait_for("the example app to serve")
        .timeout(Duration::from_secs(60))
        .watching(&guest)
        .until_ok(|| {
            std::fs::read_to_string(&addr_file)
                .map_err(|e| e.to_string())
                .and_then(|a| {
                    a.parse()
                        .map_err(|e: std::net::AddrParseError| e.to_string())
                })
        })
        .unwrap();

    let (chain, identity) = get(addr).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // The certificate: under this app's CA, up to the root CA key registered on chain.
    let verified =
        covenant_kms_api::verify_app_chain(&chain, &stack.kms().roots, Some(app), now as i64)
            .unwrap();
    assert_eq!(verified.dns_names, ["localhost"]);
    // The identity: this app, the compose the chain allows, a database key chained to the root.
    assert_eq!(
        identity["appId"]
            .as_str()
            .unwrap()
            .parse::<Address>()
            .unwrap(),
        app
    );
    assert_eq!(identity["composeHash"], compose_hash(&document).to_string());
    assert_eq!(
        identity["rootSigner"]
            .as_str()
            .unwrap()
            .parse::<Address>()
            .unwrap(),
        stack.kms().root_signer
    );
    // The database key: its address and the app key's signature, which recovers; no secret.
    let db = &identity["databaseKey"];
    let mut fields: Vec<&String> = db.as_object().unwrap().keys().collect();
    fields.sort();
    assert_eq!(fields, ["address", "path", "signature"]);
    let digest = covenant_kms_api::signatures::path_key_digest(
        stack.deployment.chain_id,
        stack.registry_address(),
        app,
        identity["keyGeneration"].as_u64().unwrap(),
        b"example/database",
        db["address"].as_str().unwrap().parse().unwrap(),
    );
    let signature = hex::decode(db["signature"].as_str().unwrap()).unwrap();
    assert_eq!(
        covenant_kms_api::signatures::recover(digest, &signature).unwrap(),
        identity["appKey"]
            .as_str()
            .unwrap()
            .parse::<Address>()
            .unwrap()
    );
    // The evidence binds the very key this TLS connection was made with.
    let evidence: covenant_attest::Evidence =
        serde_json::from_value(identity["evidence"].clone()).unwrap();
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    let policy = covenant_attest::Policy {
        platforms: vec![],
        ..covenant_attest::Policy::judged_by_chain(true)
    };
    let spki_digest: [u8; 64] = sha2::Sha512::digest(leaf.public_key().raw).into();
    let bound = ReportData::new(covenant_guest_api::api::quote_report_data(&spki_digest));
    let verified = covenant_attest::verify(
        &evidence,
        &Binding::ReportData(bound),
        &covenant_attest::Collateral::default(),
        &policy,
        now,
    )
    .unwrap();
    // It is not an RA-TLS credential for that key: published evidence cannot ask a KMS for keys.
    assert!(
        covenant_attest::verify(
            &evidence,
            &Binding::TlsKey(leaf.public_key().raw),
            &covenant_attest::Collateral::default(),
            &policy,
            now,
        )
        .is_err()
    );
    assert_eq!(verified.runtime().app_id.as_bytes(), app.as_slice());
    assert_eq!(
        verified.runtime().compose_hash.as_bytes(),
        compose_hash(&document).as_slice()
    );
    guest.stop();
    assert!(
        guest.log_contains("guest stopped"),
        "{}",
        guest.log_tail(20)
    );
}
