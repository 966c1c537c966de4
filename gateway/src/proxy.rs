//! The public listener: a client's TLS connection is routed by its server name (SNI) to an app's
//! port, and from there to instances the routing table holds now, over a hop that is always TLS
//! to the instance's ingress with the very RA-TLS key it registered ([`crate::hop`]).
//!
//! The gateway reads the ClientHello (at most 16 KiB, within 10 s) and resolves its server name
//! to an app and a compose port (`<app-id>.<base>`: the app's first `http` or `tls-passthrough`
//! port; `<app-id>-<port>.<base>`: that port). Then, by the port's protocol:
//! - `tls-passthrough`: the ClientHello is replayed into the hop of an instance (round robin; the
//!   next one when an ingress cannot be reached, safe because nothing reached the app yet) and the
//!   streams are joined; the app terminates the client's TLS, the gateway never sees plaintext.
//! - `http`: the gateway terminates TLS with a certificate for that name ([`crate::certs`]) and
//!   serves HTTP/1.1 and HTTP/2, each request forwarded on its own ([`crate::http`]).
//! - `tcp`: the gateway terminates TLS and joins the plaintext stream to an instance's hop.
//!
//! A name the table does not route (another app, a malformed name, a port the compose does not
//! list) is closed without a byte written back and costs nothing durable: certificates are made
//! only for names that resolved to a routed app.

use std::{
    collections::HashMap,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::watch,
};

use crate::{
    certs::Certificates,
    domains::Domains,
    gateway::Gateway,
    hop::{HopTarget, PinnedHop},
    http::{Backends, HttpFront, Site},
    instance::Registration,
    names::{self, Target},
    upstream::{BackendId, Pool},
    wellknown::Publication,
};

/// The largest ClientHello read before routing.
pub const MAX_CLIENT_HELLO: usize = 16 * 1024;
const CLIENT_HELLO_TIMEOUT: Duration = Duration::from_secs(10);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_CONNECTIONS: usize = 4096;
/// How long an instance whose ingress could not be reached is tried only after the others.
const UNHEALTHY_FOR: Duration = Duration::from_secs(10);
/// How often every routed instance's ingress is checked.
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);

/// Why a connection was not routed.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The ClientHello did not arrive in time, was too large or malformed, or named no server.
    #[error("client hello: {0}")]
    ClientHello(String),
    /// The name is not one the gateway routes.
    #[error("{0}")]
    Name(#[from] names::NameError),
    /// Nothing serves the name now.
    #[error("no instance serves {0}")]
    NoInstance(String),
    /// The app does not serve that port.
    #[error("{0}")]
    Port(String),
    /// A custom domain that routes to no app.
    #[error("{0}")]
    Domain(String),
    /// The client's TLS handshake with the gateway failed.
    #[error("tls: {0}")]
    Tls(String),
    /// Every instance's ingress failed.
    #[error("no instance could be reached: {0}")]
    Hop(String),
}

/// A ClientHello, read.
#[derive(Debug)]
pub struct Hello {
    /// The bytes read (to replay).
    pub bytes: Vec<u8>,
    /// The server name asked for.
    pub name: String,
    /// Whether the only protocol offered is `acme-tls/1`: a CA validating a TLS-ALPN-01
    /// challenge (RFC 8737).
    pub acme_challenge: bool,
}

/// Reads the client's ClientHello.
pub async fn read_client_hello(tcp: &mut TcpStream) -> Result<Hello, RouteError> {
    let mut acceptor = rustls::server::Acceptor::default();
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let read = async {
        loop {
            let n = tcp
                .read(&mut chunk)
                .await
                .map_err(|e| RouteError::ClientHello(e.to_string()))?;
            if n == 0 {
                return Err(RouteError::ClientHello(
                    "closed before the ClientHello".into(),
                ));
            }
            if buffer.len() + n > MAX_CLIENT_HELLO {
                return Err(RouteError::ClientHello("larger than 16 KiB".into()));
            }
            buffer.extend_from_slice(&chunk[..n]);
            acceptor
                .read_tls(&mut &chunk[..n])
                .map_err(|e| RouteError::ClientHello(e.to_string()))?;
            match acceptor.accept() {
                Ok(Some(accepted)) => {
                    let hello = accepted.client_hello();
                    let name = hello
                        .server_name()
                        .ok_or_else(|| RouteError::ClientHello("no server name (SNI)".into()))?
                        .to_owned();
                    let acme_challenge = hello.alpn().is_some_and(|mut protocols| {
                        protocols.next() == Some(crate::acme::ACME_TLS_ALPN)
                            && protocols.next().is_none()
                    });
                    return Ok((name, acme_challenge));
                }
                Ok(None) => {}
                Err((e, _)) => return Err(RouteError::ClientHello(e.to_string())),
            }
        }
    };
    let (name, acme_challenge) = tokio::time::timeout(CLIENT_HELLO_TIMEOUT, read)
        .await
        .map_err(|_| RouteError::ClientHello("not received within 10 s".into()))??;
    Ok(Hello {
        bytes: buffer,
        name,
        acme_challenge,
    })
}

/// A connection whose first bytes were already read: they are read again first.
#[derive(Debug)]
pub struct Replayed<S> {
    prefix: Vec<u8>,
    offset: usize,
    inner: S,
}

impl<S> Replayed<S> {
    /// `inner`, with `prefix` read first.
    pub fn new(prefix: Vec<u8>, inner: S) -> Self {
        Self {
            prefix,
            offset: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Replayed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.offset < this.prefix.len() {
            let rest = &this.prefix[this.offset..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.offset += n;
            if this.offset == this.prefix.len() {
                this.prefix = Vec::new();
                this.offset = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replayed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The routed instances of an app's port, in the order to try them: round robin, instances
/// whose ingress recently failed last.
#[derive(Debug)]
pub struct Instances {
    gateway: Arc<Gateway>,
    domains: Arc<Domains>,
    hop: Arc<Pool<PinnedHop>>,
    next: AtomicUsize,
    down_until: Mutex<HashMap<[u8; 20], Instant>>,
    publication: Arc<Publication>,
}

impl Instances {
    /// The instances of `gateway`'s table; custom domains decided by `domains`; the
    /// well-known document made by `publication`.
    pub fn new(
        gateway: Arc<Gateway>,
        domains: Arc<Domains>,
        publication: Arc<Publication>,
    ) -> Self {
        Self {
            gateway,
            domains,
            publication,
            hop: Pool::new(PinnedHop::default()),
            next: AtomicUsize::new(0),
            down_until: Mutex::new(HashMap::new()),
        }
    }

    fn healthy(&self, id: &[u8; 20], now: Instant) -> bool {
        self.down_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .is_none_or(|until| *until <= now)
    }

    fn mark(&self, id: [u8; 20], reachable: bool) {
        let mut down = self
            .down_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if reachable {
            down.remove(&id);
        } else {
            down.insert(id, Instant::now() + UNHEALTHY_FOR);
        }
    }

    /// The registrations of instances serving `app`'s `port` with `protocol`, in the order to
    /// try them.
    fn ordered(
        &self,
        app: alloy::primitives::Address,
        port: u16,
        protocol: &str,
    ) -> Vec<Arc<Registration>> {
        let table = self.gateway.routes();
        let serving: Vec<&Arc<Registration>> = table
            .instances(app)
            .iter()
            .map(|r| &r.registration)
            .filter(|r| {
                r.compose
                    .ports
                    .iter()
                    .any(|p| p.port == u32::from(port) && p.protocol == protocol)
            })
            .collect();
        if serving.is_empty() {
            return Vec::new();
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % serving.len();
        let now = Instant::now();
        let (mut healthy, unhealthy): (Vec<_>, Vec<_>) = serving[start..]
            .iter()
            .chain(&serving[..start])
            .map(|r| Arc::clone(r))
            .partition(|r| self.healthy(r.instance_id(), now));
        healthy.extend(unhealthy);
        healthy
    }

    /// Checks every routed instance's ingress once (a pinned TLS handshake), and drops pooled
    /// connections to instances that are no longer routed.
    pub async fn check(&self) {
        let table = self.gateway.routes();
        let mut checks = tokio::task::JoinSet::new();
        for routed in table.apps.values().flatten() {
            let Some(port) = routed
                .registration
                .compose
                .ports
                .first()
                .and_then(|p| u16::try_from(p.port).ok())
            else {
                continue;
            };
            let target = HopTarget::of(&routed.registration, port);
            let id = *routed.registration.instance_id();
            let pool = self.hop.clone();
            checks.spawn(async move { (id, pool.dialler().open(&target).await.is_ok()) });
        }
        while let Some(Ok((id, reachable))) = checks.join_next().await {
            self.mark(id, reachable);
        }
        let routed: std::collections::HashSet<[u8; 20]> = table
            .apps
            .values()
            .flatten()
            .map(|r| *r.registration.instance_id())
            .collect();
        self.hop.sweep(|(id, _)| routed.contains(id));
        self.down_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|id, _| routed.contains(id));
    }
}

impl Backends for Instances {
    type Dial = PinnedHop;

    fn pool(&self) -> &Arc<Pool<PinnedHop>> {
        &self.hop
    }

    async fn backends(&self, site: &Site) -> Vec<(BackendId, HopTarget)> {
        if site.custom {
            let Some(block) = self.gateway.routes().block else {
                return Vec::new();
            };
            let app = self
                .domains
                .app_for(self.gateway.view(), &block, &site.host)
                .await;
            if app.as_ref().ok() != Some(&site.app) {
                return Vec::new();
            }
        }
        self.ordered(site.app, site.port, "http")
            .iter()
            .map(|r| ((*r.instance_id(), site.port), HopTarget::of(r, site.port)))
            .collect()
    }

    fn unreachable(&self, id: BackendId) {
        self.mark(id.0, false);
    }

    fn label(&self, target: &HopTarget) -> Option<hyper::header::HeaderValue> {
        Some(target.label.clone())
    }

    fn evicted(&self, id: BackendId) -> impl std::future::Future<Output = ()> + Send + 'static {
        let gateway = self.gateway.clone();
        async move { gateway.evicted(&id.0).await }
    }

    async fn well_known(&self, site: &Site) -> Option<Result<bytes::Bytes, String>> {
        Some(self.publication.document(site).await)
    }
}

/// The public listener's state.
#[derive(Debug)]
pub struct Proxy {
    gateway: Arc<Gateway>,
    front: Arc<HttpFront<Instances>>,
    certificates: Arc<Certificates>,
    http_tls: Arc<rustls::ServerConfig>,
    tcp_tls: Arc<rustls::ServerConfig>,
}

impl Proxy {
    /// A proxy routing through `gateway`'s table, terminating TLS with `certificates`.
    pub fn new(
        gateway: Arc<Gateway>,
        certificates: Arc<Certificates>,
        front: Arc<HttpFront<Instances>>,
    ) -> Result<Self, rustls::Error> {
        let config = |alpn: Vec<Vec<u8>>| -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
            let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(certificates.clone());
            config.alpn_protocols = alpn;
            Ok(Arc::new(config))
        };
        Ok(Self {
            http_tls: config(vec![b"h2".to_vec(), b"http/1.1".to_vec()])?,
            tcp_tls: config(Vec::new())?,
            gateway,
            front,
            certificates,
        })
    }

    /// Routes one client connection; returns when it ends.
    pub async fn route(
        &self,
        mut client: TcpStream,
        remote: SocketAddr,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(), RouteError> {
        let Hello {
            bytes: hello,
            name,
            acme_challenge,
        } = read_client_hello(&mut client).await?;
        let base = &self.gateway.settings().base_domain;
        let host = names::canonical(&name)?;
        let table = self.gateway.routes();
        let (app, port, custom) = match names::target(&host, base)? {
            Target::App { app, port } => (app, port, false),
            Target::Custom(domain) => {
                let block = table
                    .block
                    .ok_or_else(|| RouteError::NoInstance(format!("{name} (no decided block)")))?;
                let app = self
                    .front
                    .backends()
                    .domains
                    .app_for(self.gateway.view(), &block, &domain)
                    .await
                    .map_err(RouteError::Domain)?;
                (app, None, true)
            }
        };
        let instances = table.instances(app);
        let Some(first) = instances.first() else {
            return Err(RouteError::NoInstance(name));
        };
        let ports = &first.registration.compose.ports;
        let chosen = match port {
            Some(p) => ports.iter().find(|c| c.port == u32::from(p)),
            None => ports
                .iter()
                .find(|c| c.protocol == "http" || c.protocol == "tls-passthrough"),
        }
        .ok_or_else(|| RouteError::Port(format!("{name}: no such port of the app")))?;
        let port = u16::try_from(chosen.port)
            .map_err(|_| RouteError::Port(format!("{name}: port out of range")))?;
        let protocol = chosen.protocol.clone();
        drop(table);
        if acme_challenge && protocol != "tls-passthrough" {
            // Only for a name that routes to an app the gateway terminates TLS for (asked above,
            // from memory): a CA validating an order this gateway (any node) placed. A
            // passthrough app's own TLS-ALPN-01 validations go through to the app.
            return self
                .answer_challenge(client, hello, &host)
                .await
                .inspect_err(|e| {
                    tracing::warn!(target: "gateway::acme", host, error = %e, "challenge not answered");
                });
        }
        match protocol.as_str() {
            "tls-passthrough" => self.passthrough(client, hello, app, port).await,
            "http" | "tcp" => {
                self.certificates
                    .ensure(&host)
                    .await
                    .map_err(RouteError::Tls)?;
                let config = if protocol == "http" {
                    self.http_tls.clone()
                } else {
                    self.tcp_tls.clone()
                };
                let accept =
                    tokio_rustls::TlsAcceptor::from(config).accept(Replayed::new(hello, client));
                let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, accept)
                    .await
                    .map_err(|_| RouteError::Tls("no handshake within 10 s".into()))?
                    .map_err(|e| RouteError::Tls(e.to_string()))?;
                if protocol == "http" {
                    let site = Site {
                        host,
                        app,
                        port,
                        custom,
                    };
                    self.front.clone().serve(tls, site, remote, shutdown).await;
                    Ok(())
                } else {
                    self.tcp(tls, app, port).await
                }
            }
            other => Err(RouteError::Port(format!(
                "{name}: port {port} is {other}, which the gateway does not serve"
            ))),
        }
    }

    /// Completes a TLS-ALPN-01 handshake for `host` with its challenge certificate, if an order
    /// of it is in progress; closes the connection either way (nothing else is served).
    async fn answer_challenge(
        &self,
        client: TcpStream,
        hello: Vec<u8>,
        host: &str,
    ) -> Result<(), RouteError> {
        let Some((certificate, key)) = self.certificates.challenge(host).await else {
            return Err(RouteError::Tls(format!("no challenge of {host} pending")));
        };
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| RouteError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(ChallengeAnswer(
            certified_challenge(certificate, key).map_err(RouteError::Tls)?,
        )));
        config.alpn_protocols = vec![crate::acme::ACME_TLS_ALPN.to_vec()];
        let accept =
            tokio_rustls::TlsAcceptor::from(Arc::new(config)).accept(Replayed::new(hello, client));
        let mut tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, accept)
            .await
            .map_err(|_| RouteError::Tls("no handshake within 10 s".into()))?
            .map_err(|e| RouteError::Tls(e.to_string()))?;
        tracing::info!(target: "gateway::acme", host, "tls-alpn-01 challenge answered");
        let _ = tls.shutdown().await;
        Ok(())
    }

    /// Opens a hop to an instance serving `app`'s `port` with `protocol`.
    async fn open_hop(
        &self,
        app: alloy::primitives::Address,
        port: u16,
        protocol: &str,
    ) -> Result<(tokio_rustls::client::TlsStream<TcpStream>, [u8; 20]), RouteError> {
        let instances = self.front.backends();
        let mut failures = Vec::new();
        for registration in instances.ordered(app, port, protocol) {
            match instances
                .pool()
                .dialler()
                .open(&HopTarget::of(&registration, port))
                .await
            {
                Ok(upstream) => {
                    instances.mark(*registration.instance_id(), true);
                    return Ok((upstream, *registration.instance_id()));
                }
                Err(e) => {
                    instances.mark(*registration.instance_id(), false);
                    failures.push(e);
                }
            }
        }
        if failures.is_empty() {
            return Err(RouteError::NoInstance(format!("{app} port {port}")));
        }
        Err(RouteError::Hop(failures.join("; ")))
    }

    async fn passthrough(
        &self,
        mut client: TcpStream,
        hello: Vec<u8>,
        app: alloy::primitives::Address,
        port: u16,
    ) -> Result<(), RouteError> {
        let (mut upstream, instance) = self.open_hop(app, port, "tls-passthrough").await?;
        // Nothing reached the app before this write: trying the next instance was safe; from
        // here on the connection belongs to this one.
        upstream
            .write_all(&hello)
            .await
            .map_err(|e| RouteError::Hop(e.to_string()))?;
        self.join(&mut client, &mut upstream, &instance).await;
        Ok(())
    }

    /// Joins `client` and `upstream` until either ends, or `instance` leaves the routing
    /// table (then both are closed: an evicted instance keeps no client).
    async fn join<C, U>(&self, client: &mut C, upstream: &mut U, instance: &[u8; 20])
    where
        C: AsyncRead + AsyncWrite + Unpin,
        U: AsyncRead + AsyncWrite + Unpin,
    {
        tokio::select! {
            _ = tokio::io::copy_bidirectional(client, upstream) => {}
            () = self.gateway.evicted(instance) => {
                tracing::info!(
                    target: "gateway::proxy",
                    instance = %hex::encode(instance),
                    "joined connection closed: its instance was evicted"
                );
            }
        }
    }

    async fn tcp<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut client: S,
        app: alloy::primitives::Address,
        port: u16,
    ) -> Result<(), RouteError> {
        let (mut upstream, instance) = self.open_hop(app, port, "tcp").await?;
        self.join(&mut client, &mut upstream, &instance).await;
        Ok(())
    }
}

/// The one certificate of a TLS-ALPN-01 answer. (rustls's single-certificate configuration
/// parses the certificate, and refuses the critical `acmeIdentifier` extension it does not
/// know; the client here is the CA, which asked for exactly this certificate.)
#[derive(Debug)]
struct ChallengeAnswer(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for ChallengeAnswer {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

fn certified_challenge(
    certificate: rustls::pki_types::CertificateDer<'static>,
    key: rustls::pki_types::PrivatePkcs8KeyDer<'static>,
) -> Result<Arc<rustls::sign::CertifiedKey>, String> {
    let signing = rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(key.into())
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(rustls::sign::CertifiedKey::new(
        vec![certificate],
        signing,
    )))
}

/// Checks the routed instances' ingresses every few seconds until `shutdown`.
pub async fn check_health(proxy: Arc<Proxy>, mut shutdown: watch::Receiver<bool>) {
    loop {
        proxy.front.backends().check().await;
        tokio::select! {
            _ = tokio::time::sleep(HEALTH_INTERVAL) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

/// Serves the public listener until `shutdown`; connections then drain (HTTP ones are asked to
/// finish their requests) for a bounded time.
pub async fn serve(listener: TcpListener, proxy: Arc<Proxy>, mut shutdown: watch::Receiver<bool>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let (tcp, remote): (TcpStream, SocketAddr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(target: "gateway::proxy", error = %e, "accept failed");
                    continue;
                }
            },
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let _ = tcp.set_nodelay(true);
        let proxy = proxy.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let _permit = permit;
            if let Err(e) = proxy.route(tcp, remote, shutdown).await {
                tracing::debug!(target: "gateway::proxy", %remote, error = %e, "not routed");
            }
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(15), drain)
        .await
        .is_err()
    {
        connections.shutdown().await;
    }
}
