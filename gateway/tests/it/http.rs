//! Terminated HTTP through the public listener, against two instances of the echo app under real
//! guests: HTTP/1.1 and HTTP/2, the gateway's forwarding headers, a Host that is not the routed
//! name, streaming both ways, server-sent events, WebSocket, limits on headers and slow clients,
//! load balancing, an instance killed, and an eviction seen by an open connection.

use std::{convert::Infallible, sync::Arc, time::Duration};

use bytes::Bytes;
use covenant_test_stack::{Host, Stack, compose_hash, send};
use covenant_testkit::{free_port, wait_for};
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty, StreamBody, combinators::BoxBody};
use hyper::{Request, Response, StatusCode, body::Frame};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tokio_rustls::client::TlsStream;

use crate::{BASE_DOMAIN, GatewayNode, echo_compose};

pub type Body = BoxBody<Bytes, Infallible>;

fn empty() -> Body {
    Empty::new().boxed()
}

/// TLS to the gateway's public listener as `name`, trusting only the root its certificates
/// chain to.
pub async fn connect(gateway: &GatewayNode, name: &str, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
    try_connect(gateway, name, alpn).await.unwrap()
}

/// [`connect`], or why it failed.
pub async fn try_connect(
    gateway: &GatewayNode,
    name: &str,
    alpn: &[&[u8]],
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(gateway.public_root.clone().into()).unwrap();
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(gateway.public).await?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name.to_owned().try_into().unwrap(), tcp)
        .await
}

pub async fn http1(
    gateway: &GatewayNode,
    name: &str,
) -> hyper::client::conn::http1::SendRequest<Body> {
    let tls = connect(gateway, name, &[b"http/1.1"]).await;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(connection.with_upgrades());
    sender
}

async fn http2(gateway: &GatewayNode, name: &str) -> hyper::client::conn::http2::SendRequest<Body> {
    let tls = connect(gateway, name, &[b"h2"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(connection);
    sender
}

pub fn get(host: &str, path: &str) -> Request<Body> {
    Request::get(path)
        .header("host", host)
        .body(empty())
        .unwrap()
}

pub async fn json_of(response: Response<hyper::body::Incoming>) -> Value {
    let body = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{e}: {body:?}"))
}

/// Sends `request` once the connection is ready for it.
pub async fn send(
    sender: &mut hyper::client::conn::http1::SendRequest<Body>,
    request: Request<Body>,
) -> Response<hyper::body::Incoming> {
    sender.ready().await.unwrap();
    sender.send_request(request).await.unwrap()
}

pub fn instance_of<B>(response: &Response<B>) -> String {
    response.headers()["covenant-instance"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_apps_are_served_by_name_streamed_balanced_and_cut_off_when_evicted() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let stack = Stack::start().await;
    let port = free_port().unwrap();
    let document = echo_compose(&stack, "echo", port);
    let hash = compose_hash(&document);
    let app = stack.create_app(hash).await;
    stack.settle().await;
    let gateway = GatewayNode::start(&stack);
    let hosts = [Host::new(&stack, "a", 0xa1), Host::new(&stack, "b", 0xb2)];
    let mut guests: Vec<_> = hosts
        .iter()
        .map(|h| h.run(app, &document, &["--gateway-url", &gateway.url()]))
        .collect();
    let instances = gateway.wait_routed(app, 2);
    let name = format!("{}.{BASE_DOMAIN}", hex::encode(app.as_slice()));

    // HTTP/1.1: the app sees its public name, and forwarding headers the gateway set (a
    // client's own X-Forwarded-For is replaced); the answer names the instance.
    let mut h1 = http1(&gateway, &name).await;
    let mut request = get(&name, "/?q=1");
    request
        .headers_mut()
        .insert("x-forwarded-for", "6.6.6.6".parse().unwrap());
    wait_for("the app to answer over HTTP/1.1")
        .timeout(Duration::from_secs(30))
        .until_ok_async(|| async {
            let mut h1 = http1(&gateway, &name).await;
            let response = h1
                .send_request(get(&name, "/"))
                .await
                .map_err(|e| e.to_string())?;
            match response.status() {
                StatusCode::OK => Ok(()),
                other => Err(format!("status {other}")),
            }
        })
        .await
        .unwrap();
    let response = send(&mut h1, request).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(instances.contains(&instance_of(&response)));
    let seen = json_of(response).await;
    assert_eq!(seen["path"], "/?q=1");
    assert_eq!(seen["version"], "HTTP/1.1");
    assert_eq!(seen["headers"]["host"], name.as_str());
    assert_eq!(seen["headers"]["x-forwarded-proto"], "https");
    assert_eq!(seen["headers"]["x-forwarded-for"], "127.0.0.1");

    // Load balancing: over one keep-alive connection, requests reach both instances.
    let mut answered = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let response = send(&mut h1, get(&name, "/")).await;
        assert_eq!(response.status(), StatusCode::OK);
        answered.insert(instance_of(&response));
        response.into_body().collect().await.unwrap();
    }
    assert_eq!(answered.len(), 2, "{answered:?}");

    // Another name on this connection is misdirected; a request without a usable Host is bad.
    let other = format!("{}.{BASE_DOMAIN}", "ab".repeat(20));
    let response = send(&mut h1, get(&other, "/")).await;
    assert_eq!(response.status(), StatusCode::MISDIRECTED_REQUEST);
    response.into_body().collect().await.unwrap();

    // HTTP/2: the app gets HTTP/1.1 with the same name; :authority of another name is refused.
    let mut h2 = http2(&gateway, &name).await;
    let response = h2
        .send_request(
            Request::get(format!("https://{name}/?via=h2"))
                .body(empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), hyper::Version::HTTP_2);
    let seen = json_of(response).await;
    assert_eq!(seen["path"], "/?via=h2");
    assert_eq!(seen["version"], "HTTP/1.1");
    assert_eq!(seen["headers"]["host"], name.as_str());
    let response = h2
        .send_request(
            Request::get(format!("https://{other}/"))
                .body(empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::MISDIRECTED_REQUEST);

    // A request body streams through and back as it is sent: each chunk's echo arrives before
    // the next chunk is written.
    let (mut chunks, rx) = futures::channel::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
    let request = Request::post("/echo")
        .header("host", &name)
        .body(BodyExt::boxed(StreamBody::new(rx)))
        .unwrap();
    let mut echo = http1(&gateway, &name).await;
    let sent = tokio::spawn(async move { echo.send_request(request).await });
    chunks
        .send(Ok(Frame::data(Bytes::from_static(b"first"))))
        .await
        .unwrap();
    let mut body = sent.await.unwrap().unwrap().into_body();
    let frame = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&frame[..], b"first");
    chunks
        .send(Ok(Frame::data(Bytes::from_static(b"second"))))
        .await
        .unwrap();
    let frame = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&frame[..], b"second");
    drop(chunks);
    assert!(body.frame().await.is_none());

    // Server-sent events are not buffered: the first event arrives on its own, before the app
    // has written the last one.
    let response = h1
        .send_request(get(&name, "/events?count=4&interval_ms=400"))
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"id: 0\ndata: token 0\n\n");
    let rest = body.collect().await.unwrap().to_bytes();
    assert!(rest.ends_with(b"data: token 3\n\n"), "{rest:?}");

    // WebSocket: the upgrade is joined end to end.
    let tls = connect(&gateway, &name, &[b"http/1.1"]).await;
    let (mut socket, response) = tokio_tungstenite::client_async(format!("wss://{name}/ws"), tls)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    for text in ["hello", "world"] {
        socket.send(text.into()).await.unwrap();
        let echoed = socket.next().await.unwrap().unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), text);
    }
    socket.close(None).await.unwrap();

    // Oversized request headers: 431, nothing forwarded.
    let mut big = get(&name, "/");
    big.headers_mut()
        .insert("x-big", "a".repeat(32 * 1024).parse().unwrap());
    let response = http1(&gateway, &name)
        .await
        .send_request(big)
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );

    // A slow client that never finishes its headers is cut off; one that declares a small body
    // and never sends all of it gets a 408 from the gateway (the body is read whole before the
    // request is forwarded: streamed, the request would reach the instance, which would wait for
    // the rest, and no answer would come before the 300 s response timeout).
    let mut slow = connect(&gateway, &name, &[b"http/1.1"]).await;
    slow.write_all(format!("GET / HTTP/1.1\r\nhost: {name}\r\nx-slow: ").as_bytes())
        .await
        .unwrap();
    let mut slow_body = connect(&gateway, &name, &[b"http/1.1"]).await;
    slow_body
        .write_all(
            format!("POST / HTTP/1.1\r\nhost: {name}\r\ncontent-length: 10\r\n\r\n12345")
                .as_bytes(),
        )
        .await
        .unwrap();
    let (mut rest, mut body_rest) = (Vec::new(), Vec::new());
    let (read, body_read) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(60), slow.read_to_end(&mut rest)),
        tokio::time::timeout(Duration::from_secs(60), async {
            let mut buf = [0u8; 1024];
            let n = slow_body.read(&mut buf).await?;
            body_rest.extend_from_slice(&buf[..n]);
            std::io::Result::Ok(())
        }),
    );
    assert!(read.is_ok(), "the slow client was not cut off");
    assert!(!String::from_utf8_lossy(&rest).contains("200 OK"));
    assert!(body_read.is_ok(), "the slow body was not answered");
    let answer = String::from_utf8_lossy(&body_rest);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    // An instance killed: traffic goes to the other one.
    let killed = guests[0].pid();
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &killed.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let mut h1 = http1(&gateway, &name).await;
    let mut answered = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let response = send(&mut h1, get(&name, "/")).await;
        assert_eq!(response.status(), StatusCode::OK);
        answered.insert(instance_of(&response));
        response.into_body().collect().await.unwrap();
    }
    assert_eq!(answered.len(), 1, "{answered:?}");
    guests.remove(0);

    // A WebSocket joined to the instance before its eviction.
    let tls = connect(&gateway, &name, &[b"http/1.1"]).await;
    let (mut socket, _) = tokio_tungstenite::client_async(format!("wss://{name}/ws"), tls)
        .await
        .unwrap();
    socket.send("before".into()).await.unwrap();
    assert_eq!(
        socket
            .next()
            .await
            .unwrap()
            .unwrap()
            .into_text()
            .unwrap()
            .as_str(),
        "before"
    );

    // Evicted at the next finalized block: an open connection's next request finds no instance,
    // and the WebSocket joined to the instance is closed.
    send!(
        stack
            .app(app)
            .removeComposeHash(hash)
            .from(stack.timelock())
    );
    stack.finalize();
    gateway.wait_routed(app, 0);
    let response = send(&mut h1, get(&name, "/")).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match socket.next().await {
                None | Some(Err(_)) => return,
                Some(Ok(m)) if m.is_close() => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the WebSocket to the evicted instance is still open"
    );
    drop(guests);
}
