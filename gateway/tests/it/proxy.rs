//! The public listener: a client reaches an app instance by the app's name, through the hop to
//! the instance's ingress, and stops reaching it once the chain revokes it.

use std::{sync::Arc, time::Duration};

use tokio::io::AsyncReadExt;

use covenant_test_stack::{Host, Stack, compose_hash, send};
use covenant_testkit::{free_port, tls, tools::workspace_bin, wait_for};
use serde_json::{Value, json};

use crate::{BASE_DOMAIN, GatewayNode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passthrough_app_is_reached_by_name_until_its_compose_hash_is_removed() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let stack = Stack::start().await;
    // The example app terminates TLS itself with a certificate under its app CA.
    let port = free_port().unwrap();
    let bin = workspace_bin("covenant-example-app").unwrap();
    let document = serde_json::to_vec(&json!({
        "manifest_version": 1,
        "name": "hello",
        "containers": [{
            "name": "hello",
            "image": format!("example.invalid/hello@sha256:{}", "12".repeat(32)),
            "command": [bin.to_str().unwrap(), "--listen", format!("127.0.0.1:{port}")]
        }],
        "ports": [{"container": "hello", "port": port, "protocol": "tls-passthrough"}],
        "kms": {
            "chain_id": stack.deployment.chain_id,
            "registry": stack.registry_address().to_string().to_lowercase()
        }
    }))
    .unwrap();
    let hash = compose_hash(&document);
    let app = stack.create_app(hash).await;
    stack.settle().await;
    let gateway = GatewayNode::start(&stack);
    let host = Host::new(&stack, "host", 0xa1);
    let _guest = host.run(app, &document, &["--gateway-url", &gateway.url()]);
    gateway.wait_routed(app, 1);

    // By the app's name, with or without the port: the app's own certificate and identity come
    // back through the gateway (which never held a key for it).
    let name = format!("{}.{BASE_DOMAIN}", hex::encode(app.as_slice()));
    let named_port = format!("{}-{port}.{BASE_DOMAIN}", hex::encode(app.as_slice()));
    for server_name in [&name, &named_port] {
        let fetched = wait_for(format!(
            "the app to answer through the gateway as {server_name}"
        ))
        .timeout(Duration::from_secs(60))
        .until_ok(|| tls::get_with_chain(gateway.public, server_name, "/"))
        .unwrap();
        assert_eq!(fetched.status, 200, "{}", fetched.body);
        let identity: Value = serde_json::from_str(&fetched.body).unwrap();
        assert_eq!(
            identity["appId"]
                .as_str()
                .unwrap()
                .parse::<alloy::primitives::Address>()
                .unwrap(),
            app
        );
        assert_eq!(identity["composeHash"], hash.to_string());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        covenant_kms_api::verify_app_chain(
            &fetched.chain,
            &stack.kms().roots,
            Some(app),
            now as i64,
        )
        .unwrap();
    }

    // Names the gateway does not route get nothing: another app, a port with a leading zero,
    // the base domain itself, a custom domain nobody proved, a port the compose does not list.
    let other = format!("{}.{BASE_DOMAIN}", "ab".repeat(20));
    let zero = format!("{}-0{port}.{BASE_DOMAIN}", hex::encode(app.as_slice()));
    let unlisted = format!("{}-{}.{BASE_DOMAIN}", hex::encode(app.as_slice()), port ^ 1);
    for server_name in [&other, &zero, BASE_DOMAIN, "shop.example.com", &unlisted] {
        assert!(
            tls::get_with_chain(gateway.public, server_name, "/").is_err(),
            "{server_name} was routed"
        );
    }

    // A passthrough app's own ACME TLS-ALPN-01 validation reaches the app (here it offers only
    // http/1.1, so the app itself refuses the protocol): the gateway answers no challenge for
    // names it does not terminate.
    let mut acme = tls::client_config_checked_by_caller().unwrap();
    acme.alpn_protocols = vec![b"acme-tls/1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(gateway.public)
        .await
        .unwrap();
    let refused = tokio_rustls::TlsConnector::from(Arc::new(acme))
        .connect(name.clone().try_into().unwrap(), tcp)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("NoApplicationProtocol"),
        "not the app's refusal: {refused}"
    );

    // A connection joined to the instance before its revocation (the app's TLS done, no
    // request sent yet).
    let mut joined = open_passthrough(gateway.public, &name).await;

    // Revoked and final: new connections are refused, and the joined one is closed.
    send!(
        stack
            .app(app)
            .removeComposeHash(hash)
            .from(stack.timelock())
    );
    stack.finalize();
    gateway.wait_routed(app, 0);
    assert!(tls::get_with_chain(gateway.public, &name, "/").is_err());
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), joined.read_to_end(&mut rest)).await;
    assert!(
        read.is_ok(),
        "the connection to the revoked instance is still open"
    );
}

/// A TLS connection through the gateway's public listener to a passthrough app named `name`
/// (the app's certificate accepted as presented: this only needs the connection joined).
async fn open_passthrough(
    public: std::net::SocketAddr,
    name: &str,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let config = tls::client_config_checked_by_caller().unwrap();
    let tcp = tokio::net::TcpStream::connect(public).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name.to_owned().try_into().unwrap(), tcp)
        .await
        .unwrap()
}
