//! `covenant-echo-app`: a test app for the gateway (see the README): it shows what reached it,
//! echoes bodies as they stream, sends server-sent events and echoes WebSocket messages.

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use bytes::Bytes;
use clap::Parser;
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::{
    Request, Response, StatusCode,
    body::{Frame, Incoming},
    header,
};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{handshake::derive_accept_key, protocol::Role},
};

#[derive(Parser)]
#[command(name = "covenant-echo-app", about = "A test app for the gateway")]
struct Cli {
    /// Where to listen (plain HTTP/1.1).
    #[arg(long)]
    listen: SocketAddr,
    /// A name to tell instances apart.
    #[arg(long, default_value = "echo")]
    name: String,
}

type Body = BoxBody<Bytes, hyper::Error>;

fn full(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).map_err(|e| match e {}).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

fn query(request: &Request<Incoming>, key: &str, default: u64) -> u64 {
    request
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(default)
}

fn events(count: u64, interval: Duration) -> Response<Body> {
    let stream = futures::stream::unfold(0u64, move |i| async move {
        if i >= count {
            return None;
        }
        if i > 0 {
            tokio::time::sleep(interval).await;
        }
        let event = Bytes::from(format!("id: {i}\ndata: token {i}\n\n"));
        Some((Ok::<_, hyper::Error>(Frame::data(event)), i + 1))
    });
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    response
}

fn websocket(mut request: Request<Incoming>) -> Response<Body> {
    let Some(key) = request.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return full(
            StatusCode::BAD_REQUEST,
            "text/plain",
            "not a WebSocket request\n",
        );
    };
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let mut socket =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        while let Some(Ok(message)) = socket.next().await {
            if message.is_close() {
                break;
            }
            if (message.is_text() || message.is_binary()) && socket.send(message).await.is_err() {
                break;
            }
        }
    });
    let mut response = full(StatusCode::SWITCHING_PROTOCOLS, "text/plain", "");
    let headers = response.headers_mut();
    headers.remove(header::CONTENT_TYPE);
    headers.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("upgrade"),
    );
    headers.insert(
        header::UPGRADE,
        header::HeaderValue::from_static("websocket"),
    );
    if let Ok(accept) = header::HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

async fn handle(name: &str, request: Request<Incoming>) -> Response<Body> {
    match (request.method().as_str(), request.uri().path()) {
        ("GET", "/") => {
            let headers: serde_json::Map<String, serde_json::Value> = request
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
                .collect();
            let shown = serde_json::json!({
                "name": name,
                "method": request.method().as_str(),
                "path": request.uri().to_string(),
                "version": format!("{:?}", request.version()),
                "headers": headers,
            });
            full(StatusCode::OK, "application/json", shown.to_string())
        }
        ("POST", "/echo") => {
            let mut response = Response::new(request.into_body().boxed());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/octet-stream"),
            );
            response
        }
        ("GET", "/events") => events(
            query(&request, "count", 5).min(10_000),
            Duration::from_millis(query(&request, "interval_ms", 100).min(60_000)),
        ),
        ("GET", "/ws") => websocket(request),
        ("GET", "/slow") => {
            tokio::time::sleep(Duration::from_millis(
                query(&request, "ms", 1000).min(600_000),
            ))
            .await;
            full(StatusCode::OK, "text/plain", "slow\n")
        }
        _ => full(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let cli = Cli::parse();
    // Several simulated instances on one machine share its loopback interface: each binds the
    // compose port with SO_REUSEPORT (on a real TEE, each instance has its own).
    let socket = if cli.listen.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseport(true)?;
    socket.bind(cli.listen)?;
    let listener = socket.listen(1024)?;
    eprintln!(
        "echo app {} listening on {}",
        cli.name,
        listener.local_addr()?
    );
    let name: &'static str = Box::leak(cli.name.into_boxed_str());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = term.recv() => return Ok(()),
        };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| async move {
                Ok::<_, Infallible>(handle(name, request).await)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades()
                .await;
        });
    }
}
