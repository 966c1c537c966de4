//! Custom domains: routed to the app whose on-chain claim the DNS record `_covenant.<domain>`
//! names — never to a squatter that claimed the name too, never on a claim without the record
//! or a record without a claim, and no longer once the claim is released and final.

use std::time::Duration;

use covenant_test_stack::{Host, Stack, compose_hash, send};
use covenant_testkit::{dns::DnsServer, free_port, wait_for};
use hyper::StatusCode;

use crate::{
    BASE_DOMAIN, GatewayNode, echo_compose,
    http::{get, json_of, send, try_connect},
};

const SHOP: &str = "shop.example.test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_domain_routes_to_the_claim_its_dns_record_names_and_never_to_a_squatter() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let stack = Stack::start().await;
    let dns = DnsServer::start("example.test.").await;
    let shop_compose = echo_compose(&stack, "shop", free_port().unwrap());
    let squatter_compose = echo_compose(&stack, "squatter", free_port().unwrap());
    let shop = stack.create_app(compose_hash(&shop_compose)).await;
    let squatter = stack.create_app(compose_hash(&squatter_compose)).await;
    let timelock = stack.timelock();
    // Both claim the shop's name (a claim costs only gas); the squatter claims another name too.
    for (domain, app) in [
        (SHOP, shop),
        (SHOP, squatter),
        ("squat.example.test", squatter),
    ] {
        send!(
            stack
                .domains()
                .claimDomain(domain.to_owned(), app)
                .from(timelock)
        );
    }
    stack.settle().await;
    // Only the shop's holder publishes a record; one more names the shop for a name it never
    // claimed.
    dns.add_txt(&format!("_covenant.{SHOP}."), &shop.to_string())
        .await;
    dns.add_txt("_covenant.unclaimed.example.test.", &shop.to_string())
        .await;

    let gateway = GatewayNode::start_with(&stack, &["--dns-server", &dns.addr.to_string()]);
    let hosts = [
        Host::new(&stack, "shop", 0xa1),
        Host::new(&stack, "squat", 0xb2),
    ];
    let url = gateway.url();
    let _guests = [
        hosts[0].run(shop, &shop_compose, &["--gateway-url", &url]),
        hosts[1].run(squatter, &squatter_compose, &["--gateway-url", &url]),
    ];
    gateway.wait_routed(shop, 1);
    gateway.wait_routed(squatter, 1);

    // The shop's name reaches the shop; the squatter is live under its own app name.
    for (name, expected) in [
        (SHOP.to_owned(), "shop"),
        (
            format!("{}.{BASE_DOMAIN}", hex::encode(squatter.as_slice())),
            "squatter",
        ),
    ] {
        let seen = wait_for(format!("{name} to be served"))
            .timeout(Duration::from_secs(30))
            .until_ok_async(|| async {
                let tls = try_connect(&gateway, &name, &[b"http/1.1"])
                    .await
                    .map_err(|e| e.to_string())?;
                let mut h1 = http1_over(tls).await;
                let response = send(&mut h1, get(&name, "/")).await;
                match response.status() {
                    StatusCode::OK => Ok(json_of(response).await),
                    other => Err(format!("status {other}")),
                }
            })
            .await
            .unwrap();
        assert_eq!(seen["name"], expected, "{name}");
        assert_eq!(seen["headers"]["host"], name.as_str());
    }

    // A claim without the record, a record without a claim, a name nobody claims: no TLS.
    for name in [
        "squat.example.test",
        "unclaimed.example.test",
        "nobody.example.test",
    ] {
        assert!(
            try_connect(&gateway, name, &[b"http/1.1"]).await.is_err(),
            "{name} was served"
        );
    }

    // The shop releases its claim; once final, its name is no longer served: not on new
    // connections, and not on one opened before.
    let tls = try_connect(&gateway, SHOP, &[b"http/1.1"]).await.unwrap();
    let mut open = http1_over(tls).await;
    assert_eq!(
        json_of(send(&mut open, get(SHOP, "/")).await).await["name"],
        "shop"
    );
    send!(
        stack
            .domains()
            .releaseClaim(SHOP.to_owned(), shop)
            .from(timelock)
    );
    stack.finalize();
    wait_for("the released name to stop being served")
        .timeout(Duration::from_secs(30))
        .until_async(|| async { try_connect(&gateway, SHOP, &[b"http/1.1"]).await.is_err() })
        .await
        .unwrap();
    assert_eq!(
        send(&mut open, get(SHOP, "/")).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
}

async fn http1_over(
    tls: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) -> hyper::client::conn::http1::SendRequest<crate::http::Body> {
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(connection);
    sender
}
