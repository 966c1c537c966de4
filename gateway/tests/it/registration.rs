//! Registration by evidence, and eviction at the first finalized block where the chain no longer
//! allows an instance.

use std::time::Duration;

use covenant_test_stack::{Host, Stack, compose_hash, send};
use covenant_testkit::{tls, wait_for};

use crate::{GatewayNode, sleeper_compose};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_revocation_evicts_its_instance_at_the_next_finalized_block() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let stack = Stack::start().await;
    let document = sleeper_compose(&stack, "web", 8080);
    let hash = compose_hash(&document);
    let mut apps = Vec::new();
    for _ in 0..4 {
        apps.push(stack.create_app(hash).await);
    }
    stack.settle().await;
    let gateway = GatewayNode::start(&stack);

    // An instance of each app registers through its guest.
    let hosts: Vec<Host<'_>> = (0..4)
        .map(|i| Host::new(&stack, &format!("host-{i}"), 0xa0 + i as u8))
        .collect();
    let url = gateway.url();
    let guests: Vec<_> = hosts
        .iter()
        .zip(&apps)
        .map(|(host, app)| host.run(*app, &document, &["--gateway-url", &url]))
        .collect();
    for app in &apps {
        gateway.wait_routed(*app, 1);
    }
    let routes = gateway.routes();
    let first = &routes["apps"][0]["instances"][0];
    assert_eq!(first["composeHash"], hash.to_string());
    assert_eq!(first["keyGeneration"], 1);
    let hosts_json = first["hosts"].to_string();
    assert!(
        hosts_json.contains("-8080.apps.covenant.test"),
        "{hosts_json}"
    );

    // Four revocations, one per app, each by its owner (the Timelock).
    let timelock = stack.timelock();
    // All four in one block, so none is final before the others (with one block each, the
    // first would have two confirmations once the third was mined).
    stack
        .anvil
        .rpc("evm_setAutomine", serde_json::json!([false]))
        .unwrap();
    let pending = vec![
        stack
            .app(apps[0])
            .removeComposeHash(hash)
            .from(timelock)
            .send()
            .await
            .unwrap(),
        stack
            .app(apps[1])
            .bumpKeyGeneration()
            .from(timelock)
            .send()
            .await
            .unwrap(),
        stack
            .app(apps[2])
            .setAnyDevice(false)
            .from(timelock)
            .send()
            .await
            .unwrap(),
        stack
            .registry()
            .deregisterApp(apps[3])
            .from(timelock)
            .send()
            .await
            .unwrap(),
    ];
    stack.anvil.rpc("evm_mine", serde_json::json!([])).unwrap();
    stack
        .anvil
        .rpc("evm_setAutomine", serde_json::json!([true]))
        .unwrap();
    for tx in pending {
        assert!(tx.get_receipt().await.unwrap().status());
    }
    // Not final yet: still routed.
    for app in &apps {
        assert_eq!(gateway.instances_of(*app).len(), 1);
    }
    stack.finalize();
    for app in &apps {
        gateway.wait_routed(*app, 0);
    }
    for reason in [
        "compose hash not allowed",
        "key generation is 2, the instance booted with 1",
        "device not allowed",
        "not registered",
    ] {
        wait_for(format!("the eviction log line for {reason:?}"))
            .timeout(Duration::from_secs(10))
            .until(|| gateway.process.log_contains(reason))
            .unwrap_or_else(|e| panic!("{e}\n{}", gateway.process.log_tail(30)));
    }
    drop(guests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_needs_verified_evidence_and_an_allowed_boot() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let stack = Stack::start().await;
    let document = sleeper_compose(&stack, "web", 8080);
    let allowed = stack.create_app(compose_hash(&document)).await;
    let other = sleeper_compose(&stack, "other", 8080);
    let not_allowed = stack.create_app(compose_hash(&other)).await;
    stack.settle().await;
    let gateway = GatewayNode::start(&stack);

    // Anonymous: no client certificate, nothing stored or routed.
    let body = serde_json::to_vec(&serde_json::json!({
        "chainId": stack.deployment.chain_id,
        "compose": String::from_utf8(document.clone()).unwrap(),
        "ingress": "127.0.0.1:9",
    }))
    .unwrap();
    let anonymous = tls::request_with_chain(
        gateway.addr,
        "localhost",
        "POST",
        "/v1/instances",
        Some(&body),
    )
    .unwrap();
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    assert!(
        anonymous.body.contains("RA-TLS certificate"),
        "{}",
        anonymous.body
    );

    // An instance running a compose its app does not allow boots nowhere: the KMS refuses it,
    // so it never reaches the gateway. One whose app allows it registers.
    let host = Host::new(&stack, "host", 0xa1);
    let refused = host.run_refused(not_allowed, &document, &["--gateway-url", &gateway.url()]);
    assert!(refused.contains("compose hash not allowed"), "{refused}");
    let _guest = host.run(allowed, &document, &["--gateway-url", &gateway.url()]);
    gateway.wait_routed(allowed, 1);
    assert_eq!(gateway.instances_of(not_allowed).len(), 0);

    // The gateway judges by the chain, not the guest: when simulated TEEs are switched off, the
    // instance goes at the next finalized block.
    let timelock = stack.timelock();
    send!(stack.registry().setAllowSimulatedTee(false).from(timelock));
    stack.finalize();
    gateway.wait_routed(allowed, 0);
    assert!(gateway.process.log_contains("simulated tee not allowed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_registrations_and_both_evict() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let stack = Stack::start().await;
    let document = sleeper_compose(&stack, "web", 8080);
    let hash = compose_hash(&document);
    let app = stack.create_app(hash).await;
    stack.settle().await;
    let first = GatewayNode::start(&stack);
    let second = GatewayNode::start_sharing(&stack, &first);

    // The instance registers with the first node only; the second routes it from the shared
    // database at its next finalized block.
    let host = Host::new(&stack, "host", 0xa1);
    let _guest = host.run(app, &document, &["--gateway-url", &first.url()]);
    let registered = first.wait_routed(app, 1);
    stack.finalize();
    assert_eq!(second.wait_routed(app, 1), registered);

    send!(
        stack
            .app(app)
            .removeComposeHash(hash)
            .from(stack.timelock())
    );
    stack.finalize();
    first.wait_routed(app, 0);
    second.wait_routed(app, 0);
}

/// A simulated boot of `app` running `compose` that trusts `key_provider`, as a guest would make
/// it (the guest itself would never get keys for it, so it never registers): with `app_event`,
/// its certificate's evidence goes past `system-ready`.
fn simulated_boot(
    app: alloy::primitives::Address,
    compose: &[u8],
    key_provider: alloy::primitives::Address,
    app_event: bool,
) -> covenant_attest::ratls::RaTlsIdentity {
    use covenant_attest::{
        AppId, DeviceId, InstanceId, OsImageHash, eventlog::RuntimeEvent,
        eventlog::RuntimeIdentity, simulator::SimulatedTee, simulator::SimulatorRootKey,
    };
    use covenant_tee::EvidenceProducer;
    let (mrtd, rtmr) = covenant_tee::simulated_os_registers(covenant_test_stack::OS_IMAGE);
    let mut tee = covenant_tee::Simulated::new(SimulatedTee::new(
        SimulatorRootKey::development(),
        DeviceId::new([0xa7; 32]),
        mrtd,
        rtmr,
    ));
    let identity = RuntimeIdentity {
        app_id: AppId::new(app.into_array()),
        compose_hash: covenant_attest::compose::compose_hash(compose).unwrap().1,
        instance_id: InstanceId::new([0x17; 20]),
        key_provider: key_provider.to_vec(),
        os_image_hash: OsImageHash::new(covenant_test_stack::OS_IMAGE),
        gpu_evidence_hash: None,
    };
    let boot = tee.boot(&identity, None).unwrap();
    if !app_event {
        return boot.identity;
    }
    tee.extend(RuntimeEvent::new("app-started", b"1".to_vec()))
        .unwrap();
    covenant_attest::ratls::generate_identity(|report_data| {
        tee.evidence(report_data)
            .map_err(|e| covenant_attest::Error::RaTls(e.to_string()))
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_boot_trusting_another_kms_root_or_past_system_ready_is_not_registered() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let stack = Stack::start().await;
    let document = sleeper_compose(&stack, "web", 8080);
    let app = stack.create_app(compose_hash(&document)).await;
    stack.settle().await;
    let gateway = GatewayNode::start(&stack);
    let body = serde_json::to_vec(&serde_json::json!({
        "chainId": stack.deployment.chain_id,
        "compose": String::from_utf8(document.clone()).unwrap(),
        "ingress": "127.0.0.1:9",
    }))
    .unwrap();
    let register = |identity: &covenant_attest::ratls::RaTlsIdentity| {
        tls::request_as(
            gateway.addr,
            "localhost",
            "POST",
            "/v1/instances",
            Some(&body),
            &identity.certificate_der,
            &identity.private_key_der,
        )
        .unwrap()
    };

    // Its app and compose are allowed, but it trusts another KMS root.
    let foreign = simulated_boot(
        app,
        &document,
        alloy::primitives::Address::repeat_byte(7),
        false,
    );
    let refused = register(&foreign);
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("not the registered KMS root signer"),
        "{}",
        refused.body
    );

    // It trusts this KMS root, but its evidence was made after the app extended the log.
    let root = stack.kms().root_signer;
    let later = simulated_boot(app, &document, root, true);
    let refused = register(&later);
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("past system-ready"),
        "{}",
        refused.body
    );
    assert_eq!(gateway.instances_of(app).len(), 0);

    // The same boot as of system-ready registers: the refusals were those checks.
    let accepted = register(&simulated_boot(app, &document, root, false));
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    gateway.wait_routed(app, 1);
}
