//! Terminated HTTP: the gateway ends the client's TLS for an app's `http` port and forwards each
//! request to an instance the table holds *at that request* (so an instance evicted mid-connection
//! gets no further requests), over a pooled HTTP/1.1 connection inside the hop.
//!
//! - Clients speak HTTP/1.1 or HTTP/2 (ALPN). The request's `Host` (or `:authority`) must be the
//!   name the TLS connection was routed for; another name is a `421 Misdirected Request`, so a
//!   client cannot ride one app's connection to another.
//! - Bodies stream both ways without buffering (server-sent events, token streams, uploads of
//!   unknown or large size), with one exception: a request body of declared length up to
//!   [`READ_WHOLE_MAX`] is read whole before the request is forwarded (within the header time
//!   limit, `408` after), as nginx does by default. Headers and body then leave in one write and
//!   cross each hop once — streamed, a prompt of a few kilobytes crossed between the client's and
//!   the backend's connection tasks chunk by chunk, +2.35 ms on a model server's time to first
//!   token at rate 1 through an idle gateway against +1.27 ms read whole (docs/inference.md) — and an
//!   instance never holds a request whose body has not arrived. WebSocket upgrades (HTTP/1.1) are joined end to end over a connection of
//!   their own.
//! - Hop-by-hop headers are dropped; `X-Forwarded-For`, `-Proto` and `-Host` are set by the
//!   gateway (a client's own are replaced, never trusted).
//! - A request that was not written to any instance (its ingress cannot be reached) goes to the
//!   next instance; one that may have reached an instance is retried elsewhere only when it is
//!   idempotent and has no body.
//! - Limits: request headers at most 16 KiB and within 10 s (slow clients are cut off), at most
//!   256 concurrent HTTP/2 streams per connection, a backend's response headers within the
//!   response timeout (504 after), graceful draining on shutdown.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use alloy::primitives::Address;
use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::{
    HeaderMap, Method, Request, Response, StatusCode, Version,
    body::Incoming,
    header::{self, HeaderName, HeaderValue},
    http::request::Parts,
};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    sync::watch,
};

use crate::upstream::{BackendId, Dial, Pool, PooledBody, SendError, UpstreamBody};

/// A request body of declared length up to this is read whole before it is forwarded.
pub const READ_WHOLE_MAX: u64 = 64 * 1024;

/// What the front's limits are.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request head (request line and headers).
    pub max_header_bytes: usize,
    /// A client must send a request's headers within this.
    pub header_timeout: Duration,
    /// A backend must answer with response headers within this.
    pub response_timeout: Duration,
    /// Concurrent HTTP/2 streams per connection.
    pub max_streams: u32,
    /// How long connections may drain at shutdown.
    pub drain: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_bytes: 16 * 1024,
            header_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(300),
            max_streams: 256,
            drain: Duration::from_secs(10),
        }
    }
}

/// The name a TLS connection was routed for, and what it routes to.
#[derive(Debug, Clone)]
pub struct Site {
    /// The canonical server name.
    pub host: String,
    /// The app.
    pub app: Address,
    /// The compose port.
    pub port: u16,
    /// Whether `host` is a custom domain (whose app is decided again for each request).
    pub custom: bool,
}

/// Where a site's requests can go.
pub trait Backends: Send + Sync + 'static {
    /// How backends are dialled.
    type Dial: Dial;
    /// The pool of connections to backends.
    fn pool(&self) -> &Arc<Pool<Self::Dial>>;
    /// The backends serving `site` now, in the order to try them.
    fn backends(
        &self,
        site: &Site,
    ) -> impl std::future::Future<Output = Vec<(BackendId, <Self::Dial as Dial>::Target)>> + Send;
    /// `id` could not be reached.
    fn unreachable(&self, id: BackendId);
    /// The `Covenant-Instance` value of answers from `target`, if any.
    fn label(&self, target: &<Self::Dial as Dial>::Target) -> Option<HeaderValue>;
    /// Resolves when `id` stops serving (evicted): an upgraded connection joined to it ends then.
    fn evicted(&self, _id: BackendId) -> impl std::future::Future<Output = ()> + Send + 'static {
        std::future::pending()
    }
    /// The gateway's own answer to `GET /.well-known/covenant` on `site` (JSON), if it makes
    /// one; the request goes to the app otherwise.
    fn well_known(
        &self,
        _site: &Site,
    ) -> impl std::future::Future<Output = Option<Result<Bytes, String>>> + Send {
        std::future::ready(None)
    }
}

/// The path the gateway answers itself on every name it terminates (docs/gateway.md).
pub const WELL_KNOWN_PATH: &str = "/.well-known/covenant";

/// The front's Prometheus metrics.
#[derive(Debug, Clone)]
pub struct HttpMetrics {
    /// Responses to clients, by status code class.
    pub responses: IntCounterVec,
    /// `responses` for 1xx … 5xx, resolved once.
    classes: [IntCounter; 5],
    /// Requests that reached no backend, or whose backend failed.
    pub backend_failures: IntCounter,
}

impl HttpMetrics {
    /// Registers the metrics in `registry`.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let responses = IntCounterVec::new(
            Opts::new(
                "covenant_gateway_http_responses_total",
                "Responses to clients of terminated HTTP, by status class",
            ),
            &["class"],
        )?;
        let backend_failures = IntCounter::new(
            "covenant_gateway_backend_failures_total",
            "Requests that reached no instance, or whose instance failed",
        )?;
        registry.register(Box::new(responses.clone()))?;
        registry.register(Box::new(backend_failures.clone()))?;
        let classes =
            ["1xx", "2xx", "3xx", "4xx", "5xx"].map(|c| responses.with_label_values(&[c]));
        Ok(Self {
            classes,
            responses,
            backend_failures,
        })
    }
}

type ResponseBody<D> = Either<PooledBody<D>, Full<Bytes>>;

/// The HTTP front for terminated connections.
pub struct HttpFront<B: Backends> {
    backends: B,
    limits: Limits,
    metrics: HttpMetrics,
}

impl<B: Backends> std::fmt::Debug for HttpFront<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpFront")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// The response header naming the instance that answered (its instance id, hex).
pub const COVENANT_INSTANCE: HeaderName = HeaderName::from_static("covenant-instance");

/// Drops hop-by-hop headers, and those the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
}

/// The `Upgrade` value of an HTTP/1.1 upgrade request.
fn upgrade_of(request: &Request<Incoming>) -> Option<HeaderValue> {
    if request.version() != Version::HTTP_11 {
        return None;
    }
    let upgrading = request
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    upgrading
        .then(|| request.headers().get(header::UPGRADE).cloned())
        .flatten()
}

/// The name a request asks for: its `:authority` (HTTP/2, absolute form) or `Host`, without a
/// port or trailing dot. Compared ignoring ASCII case with the (canonical) routed name; a name
/// that is not a valid host name never equals one.
pub fn requested_host(parts: &Parts) -> Option<std::borrow::Cow<'_, str>> {
    let host = match parts.uri.authority() {
        Some(a) => a.host(),
        None => {
            let host = parts.headers.get(header::HOST)?.to_str().ok()?;
            match host.rsplit_once(':') {
                Some((name, port))
                    if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    name
                }
                _ => host,
            }
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.ends_with('.') {
        // Two trailing dots: not a name (found by fuzz/host_names).
        return None;
    }
    if !host.is_empty()
        && host.len() <= crate::names::MAX_NAME_LEN
        && host
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return Some(std::borrow::Cow::Borrowed(host));
    }
    crate::names::canonical(host)
        .ok()
        .map(std::borrow::Cow::Owned)
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{text}\n"))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

impl<B: Backends> HttpFront<B> {
    /// A front sending requests to `backends`.
    pub fn new(backends: B, limits: Limits, metrics: HttpMetrics) -> Arc<Self> {
        Arc::new(Self {
            backends,
            limits,
            metrics,
        })
    }

    /// The backends.
    pub fn backends(&self) -> &B {
        &self.backends
    }

    /// Serves one terminated client connection until it ends (draining it at `shutdown`).
    pub async fn serve<Io>(
        self: Arc<Self>,
        io: Io,
        site: Site,
        remote: SocketAddr,
        mut shutdown: watch::Receiver<bool>,
    ) where
        Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_timeout)
            // One buffer per response, so headers and a small body leave in one TLS record.
            .writev(false)
            .max_buf_size(self.limits.max_header_bytes.max(8192));
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(self.limits.max_header_bytes).unwrap_or(u32::MAX))
            .max_concurrent_streams(self.limits.max_streams)
            .keep_alive_interval(Duration::from_secs(30));
        let site = Arc::new(site);
        let Ok(forwarded_for) = HeaderValue::from_str(&remote.ip().to_string()) else {
            return;
        };
        let drain = self.limits.drain;
        let front = self;
        let service = hyper::service::service_fn(move |request| {
            let front = front.clone();
            let site = site.clone();
            let forwarded_for = forwarded_for.clone();
            async move { Ok::<_, Infallible>(front.handle(request, &site, &forwarded_for).await) }
        });
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        tokio::pin!(connection);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(target: "gateway::http", %remote, error = %e, "client connection ended");
                }
            }
            () = async { let _ = shutdown.wait_for(|s| *s).await; } => {
                connection.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(drain, connection).await;
            }
        }
    }

    async fn handle(
        &self,
        request: Request<Incoming>,
        site: &Site,
        forwarded_for: &HeaderValue,
    ) -> Response<ResponseBody<B::Dial>> {
        let response = self.forward(request, site, forwarded_for).await;
        let class = usize::from(response.status().as_u16() / 100).clamp(1, 5) - 1;
        self.metrics.classes[class].inc();
        response
    }

    async fn forward(
        &self,
        mut request: Request<Incoming>,
        site: &Site,
        forwarded_for: &HeaderValue,
    ) -> Response<ResponseBody<B::Dial>> {
        let fail = |status, text: &str| plain(status, text).map(Either::Right);
        let upgrade = upgrade_of(&request);
        let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut request));
        let (mut parts, body) = request.into_parts();
        match requested_host(&parts) {
            Some(host) if host.eq_ignore_ascii_case(&site.host) => {}
            Some(_) => {
                return fail(
                    StatusCode::MISDIRECTED_REQUEST,
                    "this connection serves another name",
                );
            }
            None => return fail(StatusCode::BAD_REQUEST, "no valid Host"),
        }
        if parts.uri.path() == WELL_KNOWN_PATH
            && let Some(document) = self.backends.well_known(site).await
        {
            return match (parts.method.clone(), document) {
                (Method::GET | Method::HEAD, Ok(json)) => {
                    let mut response = Response::new(Either::Right(Full::new(json)));
                    response.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    response
                        .headers_mut()
                        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                    response
                }
                (Method::GET | Method::HEAD, Err(e)) => {
                    tracing::warn!(target: "gateway::http", error = %e, "well-known document");
                    fail(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the document is not available now",
                    )
                }
                _ => fail(StatusCode::METHOD_NOT_ALLOWED, "GET only"),
            };
        }
        let host = parts
            .uri
            .authority()
            .map(|a| HeaderValue::from_str(a.as_str()))
            .transpose()
            .ok()
            .flatten()
            .or_else(|| parts.headers.get(header::HOST).cloned());
        parts.uri = match parts.uri.path_and_query() {
            Some(pq) => match pq.as_str().parse() {
                Ok(uri) => uri,
                Err(_) => return fail(StatusCode::BAD_REQUEST, "bad request target"),
            },
            None => hyper::Uri::from_static("/"),
        };
        parts.version = Version::HTTP_11;
        strip_hop_by_hop(&mut parts.headers);
        if let Some(host) = host {
            parts.headers.insert(header::HOST, host.clone());
            parts.headers.insert(X_FORWARDED_HOST, host);
        }
        parts.headers.insert(X_FORWARDED_FOR, forwarded_for.clone());
        parts
            .headers
            .insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));

        let backends = self.backends.backends(site).await;
        if backends.is_empty() {
            self.metrics.backend_failures.inc();
            return fail(
                StatusCode::SERVICE_UNAVAILABLE,
                "no instance serves this name now",
            );
        }
        if let (Some(value), Some(client_upgrade)) = (upgrade, client_upgrade) {
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            parts.headers.insert(header::UPGRADE, value);
            return self
                .upgrade(
                    Request::from_parts(parts, Either::Left(body)),
                    client_upgrade,
                    &backends,
                )
                .await;
        }

        // A request without a body that is safe to repeat may go to the next instance even
        // after it may have been written.
        let idempotent = matches!(
            parts.method,
            hyper::Method::GET | hyper::Method::HEAD | hyper::Method::OPTIONS
        );
        let repeatable =
            backends.len() > 1 && idempotent && hyper::body::Body::is_end_stream(&body);
        let body = match hyper::body::Body::size_hint(&body).exact() {
            Some(length) if length <= READ_WHOLE_MAX => {
                match tokio::time::timeout(self.limits.header_timeout, body.collect()).await {
                    Ok(Ok(read)) => Either::Right(Full::new(read.to_bytes())),
                    Ok(Err(_)) => {
                        return fail(StatusCode::BAD_REQUEST, "the request body ended early");
                    }
                    Err(_) => {
                        return fail(
                            StatusCode::REQUEST_TIMEOUT,
                            "the request body did not arrive in time",
                        );
                    }
                }
            }
            _ => Either::Left(body),
        };
        let request = Request::from_parts(parts, body);
        let repeatable = repeatable.then(|| copy_request(&request));
        let mut pending = Some(request);
        let mut failures = Vec::new();
        let deadline = Instant::now() + self.limits.response_timeout;
        for (id, target) in &backends {
            let Some(request) = pending.take() else { break };
            let sent = tokio::time::timeout_at(
                deadline.into(),
                self.backends.pool().send(*id, target, request),
            )
            .await;
            match sent {
                Ok(Ok(response)) => {
                    let (mut parts, body) = response.into_parts();
                    strip_hop_by_hop(&mut parts.headers);
                    if let Ok(instance) = HeaderValue::from_str(&format!("0x{}", hex::encode(id.0)))
                    {
                        parts.headers.insert(COVENANT_INSTANCE, instance);
                    }
                    return Response::from_parts(parts, Either::Left(body));
                }
                Ok(Err(SendError::Unreachable(e, request))) => {
                    self.backends.unreachable(*id);
                    failures.push(e);
                    pending = Some(request);
                }
                Ok(Err(SendError::NotSent(e, request))) => {
                    failures.push(e);
                    pending = Some(request);
                }
                Ok(Err(SendError::Failed(e))) => {
                    failures.push(e);
                    pending = repeatable.as_ref().map(copy_request);
                }
                Err(_) => {
                    self.metrics.backend_failures.inc();
                    return fail(
                        StatusCode::GATEWAY_TIMEOUT,
                        "the instance did not answer in time",
                    );
                }
            }
        }
        self.metrics.backend_failures.inc();
        tracing::debug!(target: "gateway::http", host = %site.host, failures = %failures.join("; "), "no instance answered");
        fail(StatusCode::BAD_GATEWAY, "no instance could answer")
    }

    async fn upgrade(
        &self,
        mut request: Request<UpstreamBody>,
        client_upgrade: hyper::upgrade::OnUpgrade,
        backends: &[(BackendId, <B::Dial as Dial>::Target)],
    ) -> Response<ResponseBody<B::Dial>> {
        let fail = |status, text: &str| plain(status, text).map(Either::Right);
        for (id, target) in backends {
            match self.backends.pool().send_upgrade(target, request).await {
                Ok(mut response) => {
                    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
                        let (mut parts, body) = response.into_parts();
                        strip_hop_by_hop(&mut parts.headers);
                        return Response::from_parts(
                            parts,
                            Either::Left(PooledBody::unpooled(body)),
                        );
                    }
                    let backend_upgrade = hyper::upgrade::on(&mut response);
                    let evicted = self.backends.evicted(*id);
                    tokio::spawn(async move {
                        match tokio::try_join!(client_upgrade, backend_upgrade) {
                            Ok((client, backend)) => {
                                let (mut client, mut backend) =
                                    (TokioIo::new(client), TokioIo::new(backend));
                                let joined =
                                    tokio::io::copy_bidirectional(&mut client, &mut backend);
                                // An evicted instance keeps no client: both ends are closed.
                                tokio::select! {
                                    _ = joined => {}
                                    () = evicted => {
                                        tracing::info!(target: "gateway::http", "upgraded connection closed: its instance was evicted");
                                    }
                                }
                            }
                            Err(e) => {
                                tracing::debug!(target: "gateway::http", error = %e, "upgrade failed");
                            }
                        }
                    });
                    let (parts, body) = response.into_parts();
                    return Response::from_parts(parts, Either::Left(PooledBody::unpooled(body)));
                }
                Err(SendError::Unreachable(_, unsent)) => {
                    self.backends.unreachable(*id);
                    request = unsent;
                }
                Err(SendError::NotSent(_, unsent)) => request = unsent,
                Err(SendError::Failed(_)) => break,
            }
        }
        self.metrics.backend_failures.inc();
        fail(StatusCode::BAD_GATEWAY, "no instance could answer")
    }
}

fn copy_request(original: &Request<UpstreamBody>) -> Request<UpstreamBody> {
    let mut copy = Request::new(Either::Right(Full::default()));
    *copy.method_mut() = original.method().clone();
    *copy.uri_mut() = original.uri().clone();
    *copy.headers_mut() = original.headers().clone();
    copy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_dropped() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/event-stream"),
        );
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert!(headers.contains_key(header::ACCEPT));
    }

    #[test]
    fn the_requested_host_is_canonical_and_portless() {
        let parts = |host: &str| {
            Request::builder()
                .uri("/x")
                .header(header::HOST, host)
                .body(())
                .unwrap()
                .into_parts()
                .0
        };
        assert_eq!(
            requested_host(&parts("A.Example:443")).as_deref(),
            Some("a.example")
        );
        assert_eq!(
            requested_host(&parts("a.example.")).as_deref(),
            Some("a.example")
        );
        assert_eq!(requested_host(&parts("bad host")), None);
        for not_a_name in ["..", "a.example..", "."] {
            assert_eq!(requested_host(&parts(not_a_name)), None, "{not_a_name}");
        }
        let absolute = Request::builder()
            .uri("https://b.example/x")
            .header(header::HOST, "a.example")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        assert_eq!(requested_host(&absolute).as_deref(), Some("b.example"));
    }
}
