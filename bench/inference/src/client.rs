//! One streaming request and what it measured, in vLLM's serving-benchmark terms: time to first
//! token (TTFT), every inter-token gap (ITL), time per output token after the first (TPOT) and
//! end-to-end latency (E2EL). A token's time is when its event was read from the connection.
//!
//! A [`Client`] keeps its connections alive between requests, as vLLM's benchmark client does:
//! a request takes an idle connection or opens one (TCP, or TLS to a name), and gives it back
//! when its stream ended cleanly. The clock starts before the connection is taken, so a request
//! that had to open one pays for it; [`Client::opened`] counts them so a report can show that a
//! warmed-up run opened none. Idle connections older than [`MAX_IDLE`] are dropped rather than
//! reused, before a server's own idle timeout can close them under a request.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde_json::Value;
use tokio::net::TcpStream;

use crate::sse;

/// The two OpenAI-compatible streaming APIs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Api {
    /// `POST /v1/completions` (`prompt`, tokens in `choices[0].text`).
    Completions,
    /// `POST /v1/chat/completions` (`messages`, tokens in `choices[0].delta.content`).
    Chat,
}

impl Api {
    /// The request path.
    pub fn path(self) -> &'static str {
        match self {
            Api::Completions => "/v1/completions",
            Api::Chat => "/v1/chat/completions",
        }
    }

    /// A streaming request body for `prompt`, asking for exactly `output` tokens.
    pub fn body(self, model: &str, prompt: &str, output: usize) -> Value {
        let mut body = match self {
            Api::Completions => serde_json::json!({ "prompt": prompt }),
            Api::Chat => {
                serde_json::json!({ "messages": [{ "role": "user", "content": prompt }] })
            }
        };
        body["model"] = model.into();
        body["max_tokens"] = output.into();
        body["stream"] = true.into();
        body["ignore_eos"] = true.into();
        body["stream_options"] = serde_json::json!({ "include_usage": true });
        body
    }

    /// The text a streamed chunk carries (empty for a chunk with none, e.g. usage only).
    fn text(self, chunk: &Value) -> &str {
        let choice = &chunk["choices"][0];
        match self {
            Api::Completions => choice["text"].as_str(),
            Api::Chat => choice["delta"]["content"].as_str(),
        }
        .unwrap_or("")
    }
}

/// What one request measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// Send → first token.
    pub ttft: Duration,
    /// Gaps between successive tokens.
    pub itl: Vec<Duration>,
    /// Send → end of the stream.
    pub e2el: Duration,
    /// Tokens received (chunks carrying text).
    pub output_tokens: usize,
}

impl Outcome {
    /// Time per output token after the first; `None` for a one-token answer.
    pub fn tpot(&self) -> Option<Duration> {
        let n = u32::try_from(self.output_tokens.checked_sub(1)?).ok()?;
        (n > 0).then(|| (self.e2el - self.ttft) / n)
    }
}

/// Idle connections older than this are closed instead of reused (the gateway, like most
/// servers, closes a connection that sends nothing for ten seconds).
pub const MAX_IDLE: Duration = Duration::from_secs(5);

/// Where requests go: plain HTTP to an address, or HTTPS to a name at an address.
#[derive(Clone, Debug)]
pub struct Target {
    addr: SocketAddr,
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    host: String,
}

impl Target {
    /// Plain HTTP/1.1 to `addr`.
    pub fn plain(addr: SocketAddr) -> Self {
        Self {
            addr,
            tls: None,
            host: addr.to_string(),
        }
    }

    /// HTTP/1.1 over TLS to `name` at `addr`, trusting `roots` only.
    pub fn tls(addr: SocketAddr, name: &str, roots: rustls::RootCertStore) -> Result<Self, String> {
        let server_name = ServerName::try_from(name.to_owned())
            .map_err(|e| format!("server name {name}: {e}"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            addr,
            tls: Some((Arc::new(config), server_name)),
            host: name.to_owned(),
        })
    }

    /// The address connections go to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

type Sender = SendRequest<Full<Bytes>>;

/// Streaming requests to one target over kept-alive connections.
#[derive(Debug)]
pub struct Client {
    target: Target,
    idle: Mutex<Vec<(Instant, Sender)>>,
    opened: AtomicUsize,
}

impl Client {
    /// A client of `target` with no connection yet.
    pub fn new(target: Target) -> Self {
        Self {
            target,
            idle: Mutex::new(Vec::new()),
            opened: AtomicUsize::new(0),
        }
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Connections opened so far.
    pub fn opened(&self) -> usize {
        self.opened.load(Ordering::Relaxed)
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<(Instant, Sender)>> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// An idle connection young enough to reuse, or a new one.
    async fn connection(&self) -> Result<Sender, String> {
        loop {
            let Some((since, mut sender)) = self.idle().pop() else {
                break;
            };
            if since.elapsed() < MAX_IDLE && sender.ready().await.is_ok() {
                return Ok(sender);
            }
        }
        let addr = self.target.addr;
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let sender = match &self.target.tls {
            None => handshake(tcp).await?,
            Some((config, name)) => {
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| format!("TLS to {name:?} at {addr}: {e}"))?;
                handshake(tls).await?
            }
        };
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok(sender)
    }

    /// Sends `body` to `api`'s path and reads the stream to its end.
    pub async fn stream(&self, api: Api, body: &Value) -> Result<Outcome, String> {
        let request = hyper::Request::post(api.path())
            .header("host", &self.target.host)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| e.to_string())?;
        let sent = Instant::now();
        let mut sender = self.connection().await?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("request: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("status {}", response.status()));
        }
        let mut body = response.into_body();
        let mut parser = sse::Parser::default();
        let mut times = Vec::new();
        let mut done = false;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("reading the stream: {e}"))?;
            let Some(data) = frame.data_ref() else {
                continue;
            };
            let at = Instant::now();
            for event in parser.feed(data) {
                if event == "[DONE]" {
                    done = true;
                    continue;
                }
                let chunk: Value = serde_json::from_str(&event)
                    .map_err(|e| format!("a chunk is not JSON: {e}"))?;
                if !api.text(&chunk).is_empty() {
                    times.push(at);
                }
            }
        }
        let end = Instant::now();
        if !done {
            return Err("the stream ended without [DONE]".into());
        }
        self.idle().push((end, sender));
        let first = *times.first().ok_or("no token in the stream")?;
        Ok(Outcome {
            ttft: first - sent,
            itl: times.windows(2).map(|w| w[1] - w[0]).collect(),
            e2el: end - sent,
            output_tokens: times.len(),
        })
    }
}

async fn handshake<Io>(io: Io) -> Result<Sender, String>
where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("http handshake: {e}"))?;
    tokio::spawn(connection);
    Ok(sender)
}
