//! The gateway as an app with a real ACME CA: two nodes of the gateway app (guests on the
//! simulated TEE) sharing one database, pebble validating TLS-ALPN-01 against the first node's
//! public listener, names resolved by a DNS server in the test process.

use std::{net::Ipv4Addr, time::Duration};

use alloy::primitives::Address;
use covenant_attest::{Binding, ReportData};
use covenant_test_stack::{Host, Stack, compose_hash, send};
use covenant_testkit::{dns::DnsServer, free_port, pebble::PebbleConfig, postgres, wait_for};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{
    BASE_DOMAIN, GatewayNode, echo_compose, gateway_compose,
    http::{get, http1, instance_of, json_of, send as send_request, try_connect},
};

/// The leaf certificate (DER) a node presents for `name`.
async fn leaf_of(node: &GatewayNode, name: &str) -> Vec<u8> {
    let tls = try_connect(node, name, &[b"http/1.1"])
        .await
        .unwrap_or_else(|e| {
            panic!(
                "TLS to {name} via {}: {e}\n{}",
                node.public,
                node.process.log_tail(40)
            )
        });
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

async fn well_known(node: &GatewayNode, name: &str) -> Value {
    let mut h1 = http1(node, name).await;
    let response = send_request(&mut h1, get(name, "/.well-known/covenant")).await;
    assert_eq!(response.status(), 200);
    json_of(response).await
}

fn spki(certificate: &[u8]) -> Vec<u8> {
    covenant_gateway::instance::spki(certificate).unwrap()
}

/// Checks `evidence` (JSON) verifies as the simulated TEE's over the guest's app quote of
/// `report_data`, and was made by an instance of `app`.
fn check_evidence(evidence: &Value, report_data: &[u8; 64], app: Address) {
    let evidence: covenant_attest::Evidence = serde_json::from_value(evidence.clone()).unwrap();
    let policy = covenant_attest::Policy {
        platforms: vec![],
        simulator_root: Some(covenant_attest::simulator::SimulatorRootKey::development().root()),
        ..covenant_attest::Policy::judged_by_chain(true)
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let bound = ReportData::new(covenant_guest_api::api::quote_report_data(report_data));
    let verified = covenant_attest::verify(
        &evidence,
        &Binding::ReportData(bound),
        &covenant_attest::Collateral::default(),
        &policy,
        now,
    )
    .unwrap();
    assert_eq!(verified.runtime().app_id.as_bytes(), app.as_slice());
}

/// Makes `gateway_app` the chain's `gatewayAppId`, creates the echo app, lets both become final,
/// and points the echo app's name at loopback in `dns`: the echo app, its compose, its name.
async fn gateway_and_echo(
    stack: &Stack,
    dns: &DnsServer,
    gateway_app: Address,
) -> (Address, Vec<u8>, String) {
    send!(
        stack
            .registry()
            .setGatewayAppId(gateway_app)
            .from(stack.timelock())
    );
    let echo_document = echo_compose(stack, "echo", free_port().unwrap());
    let echo_app = stack.create_app(compose_hash(&echo_document)).await;
    stack.settle().await;
    let echo_name = format!("{}.{BASE_DOMAIN}", hex::encode(echo_app.as_slice()));
    dns.add_a(&format!("{echo_name}."), Ipv4Addr::LOCALHOST)
        .await;
    (echo_app, echo_document, echo_name)
}

/// How many times the nodes' logs say they ordered a certificate for `name`.
fn orders(nodes: &[&GatewayNode], name: &str) -> usize {
    nodes
        .iter()
        .map(|n| {
            n.process
                .log_tail(100_000)
                .lines()
                .filter(|l| l.contains("certificate ordered") && l.contains(name))
                .count()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_app_orders_certificates_from_acme_once_for_all_nodes_and_publishes_them() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let stack = Stack::start().await;
    let dns = DnsServer::start(&format!("{BASE_DOMAIN}.")).await;
    let pebble = PebbleConfig::new().unwrap();
    let db = postgres::database();
    // Two nodes of the gateway app (their public ports differ, so their composes do; the app
    // allows both). The CA validates at the first node's port.
    let publics = [free_port().unwrap(), free_port().unwrap()]
        .map(|p| std::net::SocketAddr::from((Ipv4Addr::LOCALHOST, p)));
    let composes = publics.map(|public| {
        gateway_compose(
            &stack,
            db.url(),
            public,
            &pebble.directory(),
            &pebble.ca_file(),
            dns.addr,
        )
    });
    let hashes = composes.each_ref().map(|c| compose_hash(c));
    let gateway_app = stack.create_app_allowing(&hashes, false).await;
    let impostor_app = stack.create_app(hashes[0]).await;
    let (echo_app, echo_document, echo_name) = gateway_and_echo(&stack, &dns, gateway_app).await;
    let pebble = pebble.start(publics[0].port(), dns.addr).unwrap();
    let root = pebble.issuing_root().unwrap();

    // The same gateway compose booted as another app than the chain's gatewayAppId: refused.
    let impostor = Host::new(&stack, "impostor", 0xd1).run(impostor_app, &composes[0], &[]);
    impostor
        .wait_for_line("the impostor refused", Duration::from_secs(120), |l| {
            l.contains("but the chain's gatewayAppId is")
        })
        .unwrap();
    drop(impostor);

    let first = GatewayNode::as_app(
        &Host::new(&stack, "gateway-1", 0xc1),
        gateway_app,
        &composes[0],
        db.url(),
        root.clone(),
    );
    // The node names its ACME account and the CAA record that pins it.
    let account_line = first
        .process
        .wait_for_line("the account line", Duration::from_secs(30), |l| {
            l.contains("acme account")
        })
        .unwrap();
    let account = account_line
        .split("account=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .to_owned();
    assert!(account.starts_with("https://127.0.0.1:"), "{account}");
    assert!(
        first.process.log_contains(&format!("accounturi={account}")),
        "no CAA record printed"
    );

    let echo_guest = Host::new(&stack, "echo", 0xe1).run(
        echo_app,
        &echo_document,
        &["--gateway-url", &first.url()],
    );
    first.wait_routed(echo_app, 1);

    // A name nobody routes orders nothing: the handshake fails, nothing is attested.
    let stranger = format!("{}.{BASE_DOMAIN}", "77".repeat(20));
    assert!(
        try_connect(&first, &stranger, &[b"http/1.1"])
            .await
            .is_err()
    );

    // A client trusting only the CA's root reaches the app; the certificate was ordered for
    // the routed name (TLS-ALPN-01 answered by the node) while the handshake waited.
    let leaf = leaf_of(&first, &echo_name).await;
    assert!(first.process.log_contains("tls-alpn-01 challenge answered"));
    let mut h1 = http1(&first, &echo_name).await;
    let response = send_request(&mut h1, get(&echo_name, "/")).await;
    assert_eq!(response.status(), 200);
    let instance = instance_of(&response);

    // The well-known document: the node's evidence over its account, the instance with its
    // BootInfo, and an attestation over the very key the client was served.
    let document = well_known(&first, &echo_name).await;
    assert_eq!(document["host"], echo_name.as_str());
    assert_eq!(document["acme"]["accountUri"], account.as_str());
    assert_eq!(document["acme"]["onChain"], "");
    let node = &document["gateway"];
    assert_eq!(
        node["appId"].as_str().unwrap().parse::<Address>().unwrap(),
        gateway_app
    );
    let api_key = hex::decode(node["apiKey"].as_str().unwrap().trim_start_matches("0x")).unwrap();
    check_evidence(
        &node["evidence"],
        &covenant_gateway::identity::node_report_data(&account, &api_key),
        gateway_app,
    );
    let instances = document["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 1);
    assert_eq!(instances[0]["instanceId"], instance.as_str());
    assert_eq!(
        instances[0]["bootInfo"]["appId"]
            .as_str()
            .unwrap()
            .parse::<Address>()
            .unwrap(),
        echo_app
    );
    let keys = document["certificateKeys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let served = spki(&leaf);
    assert_eq!(keys[0]["spki"], format!("0x{}", hex::encode(&served)));
    assert_eq!(
        keys[0]["spkiSha256"],
        format!("0x{}", hex::encode(Sha256::digest(&served)))
    );
    check_evidence(
        &keys[0]["evidence"],
        &covenant_gateway::identity::certificate_key_report_data(&served),
        gateway_app,
    );
    // Governance puts the account on chain; the document says so once that is final.
    send!(
        stack
            .domains()
            .setGatewayAcmeAccount(account.clone())
            .from(stack.timelock())
    );
    stack.settle().await;
    wait_for("the on-chain account in the document")
        .timeout(Duration::from_secs(60))
        .watching(&first.process)
        .until_ok_async(|| async {
            let document = well_known(&first, &echo_name).await;
            if document["acme"]["onChain"] == account.as_str() {
                Ok(())
            } else {
                Err(document["acme"].to_string())
            }
        })
        .await
        .unwrap();

    // A second node on the same database serves the same certificate, without ordering.
    let second = GatewayNode::as_app(
        &Host::new(&stack, "gateway-2", 0xc2),
        gateway_app,
        &composes[1],
        db.url(),
        root.clone(),
    );
    second.wait_routed(echo_app, 1);
    assert_eq!(leaf_of(&second, &echo_name).await, leaf);
    assert_eq!(orders(&[&first, &second], &echo_name), 1);

    // Both nodes asked at once for a name neither has a certificate for: one orders (the
    // advisory lock), the other waits and serves the same certificate.
    let port_name = format!(
        "{}-{}.{BASE_DOMAIN}",
        hex::encode(echo_app.as_slice()),
        serde_json::from_slice::<Value>(&echo_document).unwrap()["ports"][0]["port"]
    );
    dns.add_a(&format!("{port_name}."), Ipv4Addr::LOCALHOST)
        .await;
    let (a, b) = tokio::join!(leaf_of(&first, &port_name), leaf_of(&second, &port_name));
    assert_eq!(a, b, "the nodes serve different certificates for one name");
    assert_eq!(orders(&[&first, &second], &port_name), 1);
    let document = well_known(&second, &port_name).await;
    assert_eq!(document["certificateKeys"].as_array().unwrap().len(), 1);
    // The nodes' metrics agree: two orders in all, the rest loaded from the database.
    let count = |node: &GatewayNode, source: &str| -> u64 {
        let fetched =
            covenant_testkit::tls::get_with_chain(node.addr, "localhost", "/metrics").unwrap();
        fetched
            .body
            .lines()
            .find(|l| {
                l.starts_with(&format!(
                    "covenant_gateway_certificates_total{{source=\"{source}\"}}"
                ))
            })
            .and_then(|l| l.rsplit(' ').next())
            .map_or(0, |v| v.parse().unwrap())
    };
    assert_eq!(count(&first, "ordered") + count(&second, "ordered"), 2);
    assert_eq!(count(&second, "loaded") + count(&first, "loaded"), 2);
    assert_eq!(count(&first, "failed") + count(&second, "failed"), 0);
    drop(echo_guest);
    drop(pebble);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_is_renewed_before_it_expires_and_the_new_key_is_attested() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let stack = Stack::start().await;
    let dns = DnsServer::start(&format!("{BASE_DOMAIN}.")).await;
    // Certificates valid for 15 s: renewed from 10 s on.
    let pebble = PebbleConfig::new().unwrap().with_certificate_validity(15);
    let db = postgres::database();
    let public = std::net::SocketAddr::from((Ipv4Addr::LOCALHOST, free_port().unwrap()));
    let compose = gateway_compose(
        &stack,
        db.url(),
        public,
        &pebble.directory(),
        &pebble.ca_file(),
        dns.addr,
    );
    let gateway_app = stack.create_app(compose_hash(&compose)).await;
    let (echo_app, echo_document, echo_name) = gateway_and_echo(&stack, &dns, gateway_app).await;
    let pebble = pebble.start(public.port(), dns.addr).unwrap();
    let node = GatewayNode::as_app(
        &Host::new(&stack, "gateway", 0xc1),
        gateway_app,
        &compose,
        db.url(),
        pebble.issuing_root().unwrap(),
    );
    let echo_guest = Host::new(&stack, "echo", 0xe1).run(
        echo_app,
        &echo_document,
        &["--gateway-url", &node.url()],
    );
    node.wait_routed(echo_app, 1);

    let first = leaf_of(&node, &echo_name).await;
    // Connections keep coming; one of them, once the certificate is due, starts the renewal,
    // and the next ones are served the new certificate — never an expired one (the client
    // checks validity).
    let renewed = wait_for("a renewed certificate")
        .timeout(Duration::from_secs(60))
        .watching(&node.process)
        .until_ok_async(|| async {
            let leaf = leaf_of(&node, &echo_name).await;
            if leaf == first {
                Err("still the first certificate".to_owned())
            } else {
                Ok(leaf)
            }
        })
        .await
        .unwrap();
    assert_ne!(spki(&renewed), spki(&first), "a renewal makes a new key");
    // Renewed ahead of time: the new certificate was issued while the first was still valid.
    let validity = |der: &[u8]| {
        use x509_parser::prelude::FromDer;
        let (_, c) = x509_parser::certificate::X509Certificate::from_der(der).unwrap();
        (
            c.validity().not_before.timestamp(),
            c.validity().not_after.timestamp(),
        )
    };
    assert!(
        validity(&renewed).0 < validity(&first).1,
        "renewed only after expiry: {:?} then {:?}",
        validity(&first),
        validity(&renewed)
    );
    assert!(node.process.log_contains("renewing a certificate"));
    let document = well_known(&node, &echo_name).await;
    let keys: Vec<&str> = document["certificateKeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["spki"].as_str().unwrap())
        .collect();
    for leaf in [&first, &renewed] {
        assert!(
            keys.contains(&format!("0x{}", hex::encode(spki(leaf))).as_str()),
            "a served key is not attested: {keys:?}"
        );
    }

    // Governance names another gateway app: this one stops serving once that is final.
    send!(
        stack
            .registry()
            .setGatewayAppId(echo_app)
            .from(stack.timelock())
    );
    stack.settle().await;
    node.process
        .wait_for_line(
            "the deposed gateway stopping",
            Duration::from_secs(60),
            |l| l.contains("the chain's gatewayAppId is now"),
        )
        .unwrap();
    wait_for("the deposed gateway's public listener to close")
        .timeout(Duration::from_secs(60))
        .until(|| std::net::TcpStream::connect(node.public).is_err())
        .unwrap();
    drop(echo_guest);
}
