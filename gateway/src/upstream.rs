//! The gateway's side of the hop for traffic it terminates: HTTP/1.1 connections to backends,
//! dialled through a [`Dial`] (in the product: TLS 1.3 to an instance's ingress with its
//! registered key pinned, [`crate::hop::PinnedHop`]) and kept alive in a pool per backend.
//!
//! A connection goes back to the pool only once its response body has been read to the end; a
//! connection the backend closed is dropped when it is next looked at. A request that was never
//! written (no connection could be made, or a pooled connection turned out closed before the
//! request left) comes back to the caller, who may send it elsewhere.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::{
    Request, Response,
    body::{Body, Frame, Incoming, SizeHint},
    client::conn::http1,
};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

/// One backend: an instance id and the compose port on it.
pub type BackendId = ([u8; 20], u16);

/// The body the gateway sends upstream: the client's own as it streams in, or one read whole
/// (a small body of declared length, or none for a retried request).
pub type UpstreamBody = Either<Incoming, Full<Bytes>>;

/// How connections to a backend are made.
pub trait Dial: Send + Sync + 'static {
    /// Where to dial.
    type Target: Send + Sync;
    /// The connection.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// Opens a connection to `target`.
    fn dial(&self, target: &Self::Target) -> impl Future<Output = Result<Self::Io, String>> + Send;
}

/// Why a request got no response.
#[derive(Debug)]
pub enum SendError {
    /// No connection to the backend could be made; the request comes back.
    Unreachable(String, Request<UpstreamBody>),
    /// The request was not written anywhere: it comes back.
    NotSent(String, Request<UpstreamBody>),
    /// The request may have reached the backend.
    Failed(String),
}

type Sender = http1::SendRequest<UpstreamBody>;

struct Idle {
    sender: Sender,
    since: Instant,
}

/// Keep-alive connections per backend.
pub struct Pool<D: Dial> {
    dial: D,
    idle: Mutex<HashMap<BackendId, Vec<Idle>>>,
    max_idle_per_backend: usize,
    idle_timeout: Duration,
}

impl<D: Dial> std::fmt::Debug for Pool<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").finish_non_exhaustive()
    }
}

impl<D: Dial> Pool<D> {
    /// A pool dialling with `dial`.
    pub fn new(dial: D) -> Arc<Self> {
        Arc::new(Self {
            dial,
            idle: Mutex::new(HashMap::new()),
            max_idle_per_backend: 256,
            idle_timeout: Duration::from_secs(60),
        })
    }

    /// The dialler.
    pub fn dialler(&self) -> &D {
        &self.dial
    }

    fn take_idle(&self, id: BackendId) -> Option<Sender> {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let list = idle.get_mut(&id)?;
        while let Some(entry) = list.pop() {
            if !entry.sender.is_closed() {
                return Some(entry.sender);
            }
        }
        None
    }

    fn put_idle(&self, id: BackendId, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let list = idle.entry(id).or_default();
        if list.len() < self.max_idle_per_backend {
            list.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    /// Drops idle connections that are closed, older than the idle timeout, or to backends
    /// `keep` refuses (an evicted instance).
    pub fn sweep(&self, keep: impl Fn(&BackendId) -> bool) {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        idle.retain(|id, list| {
            if !keep(id) {
                return false;
            }
            list.retain(|e| !e.sender.is_closed() && e.since.elapsed() < self.idle_timeout);
            !list.is_empty()
        });
    }

    async fn connect(&self, target: &D::Target, upgrades: bool) -> Result<Sender, String> {
        let io = self.dial.dial(target).await?;
        let (sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| format!("HTTP/1.1 handshake: {e}"))?;
        tokio::spawn(async move {
            let result = if upgrades {
                connection.with_upgrades().await
            } else {
                connection.await
            };
            if let Err(e) = result {
                tracing::debug!(target: "gateway::upstream", error = %e, "backend connection ended");
            }
        });
        Ok(sender)
    }

    /// Sends `request` to backend `id` over a pooled connection (or a new one).
    pub async fn send(
        self: &Arc<Self>,
        id: BackendId,
        target: &D::Target,
        mut request: Request<UpstreamBody>,
    ) -> Result<Response<PooledBody<D>>, SendError> {
        // A pooled connection the backend closed while idle is found out only when used; the
        // request then comes back unsent and goes over a fresh connection (once).
        let mut pooled_tries = 2;
        loop {
            let (mut sender, pooled) = match self.take_idle(id).filter(|_| pooled_tries > 0) {
                Some(s) => (s, true),
                None => match self.connect(target, false).await {
                    Ok(s) => (s, false),
                    Err(e) => return Err(SendError::Unreachable(e, request)),
                },
            };
            if sender.ready().await.is_err() {
                if pooled {
                    pooled_tries -= 1;
                    continue;
                }
                return Err(SendError::NotSent(
                    "the backend closed the connection".into(),
                    request,
                ));
            }
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let (parts, body) = response.into_parts();
                    let mut body = PooledBody {
                        body,
                        give_back: Some((self.clone(), id, sender)),
                    };
                    body.give_back_if_done();
                    return Ok(Response::from_parts(parts, body));
                }
                Err(mut e) => match e.take_message() {
                    Some(unsent) if pooled && pooled_tries > 0 => {
                        pooled_tries -= 1;
                        request = unsent;
                    }
                    Some(unsent) => {
                        return Err(SendError::NotSent(e.into_error().to_string(), unsent));
                    }
                    None => return Err(SendError::Failed(e.into_error().to_string())),
                },
            }
        }
    }

    /// Sends an upgrade request (WebSocket) over a connection of its own.
    pub async fn send_upgrade(
        &self,
        target: &D::Target,
        request: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, SendError> {
        let mut sender = match self.connect(target, true).await {
            Ok(s) => s,
            Err(e) => return Err(SendError::Unreachable(e, request)),
        };
        match sender.try_send_request(request).await {
            Ok(response) => Ok(response),
            Err(mut e) => match e.take_message() {
                Some(unsent) => Err(SendError::NotSent(e.into_error().to_string(), unsent)),
                None => Err(SendError::Failed(e.into_error().to_string())),
            },
        }
    }
}

/// A backend's response body; the connection goes back to the pool when it has been read.
pub struct PooledBody<D: Dial> {
    body: Incoming,
    give_back: Option<(Arc<Pool<D>>, BackendId, Sender)>,
}

impl<D: Dial> PooledBody<D> {
    /// A body whose connection is not pooled (an upgrade's).
    pub fn unpooled(body: Incoming) -> Self {
        Self {
            body,
            give_back: None,
        }
    }

    fn give_back_if_done(&mut self) {
        if self.body.is_end_stream()
            && let Some((pool, id, sender)) = self.give_back.take()
        {
            pool.put_idle(id, sender);
        }
    }
}

impl<D: Dial> Body for PooledBody<D> {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => {
                if let Some((pool, id, sender)) = this.give_back.take() {
                    pool.put_idle(id, sender);
                }
            }
            Poll::Ready(Some(Ok(_))) => this.give_back_if_done(),
            Poll::Ready(Some(Err(_))) => this.give_back = None,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
