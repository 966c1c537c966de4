//! Benchmarks of `covenant-gateway` (not tests: nothing here asserts a time).
//!
//! - `covenant-bench-gateway candidate`: the `--candidate-cmd` of the nginx peer harness
//!   (`../shared/peers/proxy/run.sh`). It runs the gateway's own public-listener path — the
//!   ClientHello read and its name checked, TLS terminated by rustls, HTTP/1.1 and HTTP/2 served by
//!   [`covenant_gateway::http::HttpFront`] with its limits, headers and pooled backend connections
//!   — in front of the harness's backend. The one difference from the product is the hop: the
//!   harness's backend speaks plain HTTP, as nginx's does, so the candidate dials it with
//!   [`PlainDial`] instead of the pinned RA-TLS hop. That dialler exists only in this crate; the
//!   product has no plaintext path.
//! - `covenant-bench-gateway sse`: time to the first server-sent event through the candidate
//!   against the echo app directly, in alternating rounds.
//! - `benches/eviction.rs` (`cargo bench --bench gateway-eviction`): removal of a compose hash
//!   final → the instance gone from the routing table, on the real stack.
//!
//! This crate owns no product code; it must not be a dependency of anything but benchmarks.

use std::{net::SocketAddr, sync::Arc};

use covenant_gateway::{
    http::{Backends, HttpFront, Site},
    proxy::{Hello, Replayed, read_client_hello},
    upstream::{BackendId, Dial, Pool},
};
use tokio::{net::TcpStream, sync::watch};

/// Plain TCP to a benchmark backend.
#[derive(Debug, Default)]
pub struct PlainDial;

impl Dial for PlainDial {
    type Target = SocketAddr;
    type Io = TcpStream;

    async fn dial(&self, target: &SocketAddr) -> Result<TcpStream, String> {
        let tcp = TcpStream::connect(target)
            .await
            .map_err(|e| format!("{target}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        Ok(tcp)
    }
}

/// One backend for every request.
#[derive(Debug)]
pub struct Fixed {
    pool: Arc<Pool<PlainDial>>,
    upstream: SocketAddr,
}

impl Fixed {
    /// Every request to `upstream`.
    pub fn new(upstream: SocketAddr) -> Self {
        Self {
            pool: Pool::new(PlainDial),
            upstream,
        }
    }
}

impl Backends for Fixed {
    type Dial = PlainDial;

    fn pool(&self) -> &Arc<Pool<PlainDial>> {
        &self.pool
    }

    async fn backends(&self, _: &Site) -> Vec<(BackendId, SocketAddr)> {
        vec![(([0; 20], self.upstream.port()), self.upstream)]
    }

    fn unreachable(&self, _: BackendId) {}

    fn label(&self, _: &SocketAddr) -> Option<hyper::header::HeaderValue> {
        None
    }
}

/// Serves `listener` as the gateway's public listener does for an `http` port named `host`,
/// until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    front: Arc<HttpFront<Fixed>>,
    host: String,
    shutdown: watch::Receiver<bool>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let Ok((mut tcp, remote)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, front, host, shutdown) = (
            acceptor.clone(),
            front.clone(),
            host.clone(),
            shutdown.clone(),
        );
        tokio::spawn(async move {
            let Ok(Hello {
                bytes: hello, name, ..
            }) = read_client_hello(&mut tcp).await
            else {
                return;
            };
            if covenant_gateway::names::canonical(&name).ok().as_deref() != Some(&host) {
                return;
            }
            let Ok(tls) = acceptor.accept(Replayed::new(hello, tcp)).await else {
                return;
            };
            let site = Site {
                host,
                app: alloy::primitives::Address::ZERO,
                port: 0,
                custom: false,
            };
            front.serve(tls, site, remote, shutdown).await;
        });
    }
}
