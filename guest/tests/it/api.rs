//! The local API of a running guest (`covenant-guest run`), through the typed client apps use.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};

use covenant_attest::{Binding, ReportData, eventlog::names};
use covenant_guest_api::{
    api::TlsUsage,
    client::{GuestClient, GuestError},
};
use covenant_kms_api::signatures;
use serde_json::json;

use crate::{Host, compose, compose_hash, stack::Stack};

fn refused(result: Result<impl std::fmt::Debug, GuestError>, status: u16, reason: &str) {
    match result {
        Err(GuestError::Refused {
            status: s,
            reason: r,
        }) => {
            assert_eq!(s, status, "{r}");
            assert!(r.contains(reason), "expected `{reason}`, got `{r}`");
        }
        other => panic!("expected a {status} refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_local_api_call_answers_and_refuses_bad_input() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let stack = Stack::start().await;
    let document = compose(&stack, "hello");
    let app = stack.create_app(compose_hash(&document)).await;
    stack.settle().await;
    let host = Host::new(&stack, "host-a", 0xa1);
    let guest = host.run(app, &document, &[]);
    let socket = host.socket();
    let client = GuestClient::new(&socket);

    // The socket: a socket, owner only.
    let meta = std::fs::symlink_metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    // Info: who this instance is, and the boot's events in order.
    let info = client.info().await.unwrap();
    assert_eq!(info.app_id, app);
    assert_eq!(info.compose_hash, compose_hash(&document).to_string());
    assert_eq!(info.platform, "simulated");
    assert_eq!(info.kms.root_signer, stack.kms().root_signer);
    let boot_names: Vec<&str> = info.event_log.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        boot_names,
        [
            names::APP_ID,
            names::COMPOSE_HASH,
            names::INSTANCE_ID,
            names::KEY_PROVIDER,
            names::OS_IMAGE_HASH,
            names::SYSTEM_READY
        ]
    );
    assert_eq!(info.event_log[3].payload, stack.kms().root_signer.to_vec());

    // GetKey: a key whose chain recovers to the registered root, the same on every call.
    let key = client.get_key("db/password").await.unwrap();
    let digest = signatures::path_key_digest(
        key.chain_id,
        key.registry,
        key.app_id,
        key.key_generation,
        b"db/password",
        key.address,
    );
    let sig = hex::decode(&key.signature).unwrap();
    assert_eq!(signatures::recover(digest, &sig), Ok(key.app_key));
    let app_digest = signatures::app_key_digest(
        key.chain_id,
        key.registry,
        app,
        key.key_generation,
        key.app_key,
    );
    let app_sig = hex::decode(&key.app_key_signature).unwrap();
    assert_eq!(
        signatures::recover(app_digest, &app_sig),
        Ok(stack.kms().root_signer)
    );
    assert_eq!(
        (key.chain_id, key.registry),
        (stack.deployment.chain_id, stack.registry_address())
    );
    assert_eq!(client.get_key("db/password").await.unwrap().key, key.key);
    assert_ne!(client.get_key("db/other").await.unwrap().key, key.key);
    refused(
        client.get_key("").await,
        400,
        "a path is 1 to 256 bytes, got 0",
    );
    refused(
        client.get_key(&"p".repeat(257)).await,
        400,
        "a path is 1 to 256 bytes, got 257",
    );
    assert!(client.get_key(&"p".repeat(256)).await.is_ok());
    let (status, _) = client
        .raw(
            "POST",
            "/GetKey",
            Some(br#"{"path": "x", "extra": 1}"#.to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(status, 400);
    let (status, _) = client
        .raw("POST", "/GetKey", Some(b"not json".to_vec()))
        .await
        .unwrap();
    assert_eq!(status, 400);
    let (status, _) = client
        .raw("POST", "/GetKey", Some(vec![b' '; 64 * 1024]))
        .await
        .unwrap();
    assert_eq!(status, 413);

    // EmitEvent: after system-ready, validated names only.
    let emitted = client.emit_event("app.migrated", &[1, 2, 3]).await.unwrap();
    assert_eq!(emitted.index, 6);
    refused(
        client.emit_event("compose-hash", &[0; 32]).await,
        400,
        "boot event",
    );
    refused(
        client.emit_event("Bad:Name", b"").await,
        400,
        "invalid name",
    );
    refused(client.emit_event("big", &[0; 4097]).await, 400, "payload");
    let info = client.info().await.unwrap();
    assert_eq!(info.event_log.len(), 7);
    assert_eq!(info.event_log[6].name, "app.migrated");

    // GetQuote: evidence over the caller's bytes, with the log so far, that verifies.
    let mut report_data = [0u8; 64];
    report_data[..5].copy_from_slice(b"nonce");
    let quote = client.get_quote(&report_data).await.unwrap();
    assert_eq!(quote.evidence.event_log, info.event_log);
    let policy = covenant_attest::Policy {
        platforms: vec![],
        simulator_root: Some(covenant_attest::simulator::SimulatorRootKey::development().root()),
        ..covenant_attest::Policy::judged_by_chain(true)
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let quoted = ReportData::new(covenant_guest_api::api::quote_report_data(&report_data));
    let verified = covenant_attest::verify(
        &quote.evidence,
        &Binding::ReportData(quoted),
        &covenant_attest::Collateral::default(),
        &policy,
        now,
    )
    .unwrap();
    assert_eq!(verified.runtime().app_id.as_bytes(), app.as_slice());
    let mut other = report_data;
    other[0] ^= 1;
    let other = covenant_guest_api::api::quote_report_data(&other);
    assert!(
        covenant_attest::verify(
            &quote.evidence,
            &Binding::ReportData(ReportData::new(other)),
            &covenant_attest::Collateral::default(),
            &policy,
            now,
        )
        .is_err()
    );
    let (status, body) = client
        .raw(
            "POST",
            "/GetQuote",
            Some(
                json!({"reportData": hex::encode([0u8; 63])})
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("63 bytes, expected 64"));
    let (status, _) = client
        .raw(
            "POST",
            "/GetQuote",
            Some(json!({"reportData": "zz"}).to_string().into_bytes()),
        )
        .await
        .unwrap();
    assert_eq!(status, 400);

    // GetTlsKey: a fresh key, certified under the app CA for exactly the names asked.
    let tls = client
        .get_tls_key(&["app.example", "*.app.example"], TlsUsage::ServerAndClient)
        .await
        .unwrap();
    let chain = covenant_kms_api::pem_chain_to_der(&tls.certificate_chain).unwrap();
    let verified =
        covenant_kms_api::verify_app_chain(&chain, &stack.kms().roots, Some(app), now as i64)
            .unwrap();
    let mut names = verified.dns_names.clone();
    names.sort();
    assert_eq!(names, ["*.app.example", "app.example"]);
    let tls_key = rcgen::KeyPair::from_pem(&tls.key).unwrap();
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    assert_eq!(
        leaf.public_key().subject_public_key.data.as_ref(),
        tls_key.public_key_raw()
    );
    assert_eq!(verified.usage, TlsUsage::ServerAndClient);
    // A certificate for one role only says so, and a verifier checks the role it accepts.
    for usage in [TlsUsage::Server, TlsUsage::Client] {
        let one = client.get_tls_key(&["app.example"], usage).await.unwrap();
        assert_ne!(one.key, tls.key);
        let chain = covenant_kms_api::pem_chain_to_der(&one.certificate_chain).unwrap();
        let verified =
            covenant_kms_api::verify_app_chain(&chain, &stack.kms().roots, Some(app), now as i64)
                .unwrap();
        assert_eq!(verified.usage, usage);
        assert_eq!(verified.usage.serves(), usage == TlsUsage::Server);
        assert_eq!(
            verified.usage.authenticates_clients(),
            usage == TlsUsage::Client
        );
    }
    let usage = TlsUsage::ServerAndClient;
    refused(
        client.get_tls_key(&[], usage).await,
        400,
        "1 to 32 names, got 0",
    );
    refused(
        client.get_tls_key(&["Not_A_Name"], usage).await,
        400,
        "is not a DNS name",
    );
    let many: Vec<String> = (0..33).map(|i| format!("n{i}.example")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    refused(client.get_tls_key(&many, usage).await, 400, "got 33");
    let (status, body) = client
        .raw(
            "POST",
            "/GetTlsKey",
            Some(br#"{"names":["app.example"],"usage":"code-signing"}"#.to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(status, 400, "{body:?}");

    // Another host's instance of the app derives the same path keys.
    let other_host = Host::new(&stack, "host-b", 0xb2);
    let other_guest = other_host.run(app, &document, &[]);
    let other_socket = other_host.socket();
    let theirs = GuestClient::new(&other_socket)
        .get_key("db/password")
        .await
        .unwrap();
    assert_eq!(theirs.key, key.key);
    assert_ne!(
        GuestClient::new(&other_socket)
            .info()
            .await
            .unwrap()
            .instance_id,
        info.instance_id
    );
    other_guest.stop();

    // SIGTERM: the guest stops cleanly and removes its socket.
    guest.stop();
    assert!(
        guest.log_contains("guest stopped"),
        "{}",
        guest.log_tail(20)
    );
    assert!(!socket.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guest_never_replaces_a_file_that_is_not_a_socket() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let stack = Stack::start().await;
    let document = compose(&stack, "hello");
    let app = stack.create_app(compose_hash(&document)).await;
    stack.settle().await;
    let host = Host::new(&stack, "host", 0xa1);
    let path = host.socket();
    std::fs::write(&path, b"precious").unwrap();
    let e = host.run_refused(app, &document, &[]);
    assert!(e.contains("is not a socket"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
}
