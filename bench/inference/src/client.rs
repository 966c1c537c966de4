//! One streaming request and what it measured, in vLLM's serving-benchmark terms: time to first
//! token (TTFT), every inter-token gap (ITL), time per output token after the first (TPOT) and
//! end-to-end latency (E2EL). A token's time is when its event was read from the connection.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;

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

/// Sends `body` to `addr` + `api`'s path over a new HTTP/1.1 connection and reads the stream.
pub async fn stream(addr: SocketAddr, api: Api, body: &Value) -> Result<Outcome, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| format!("http handshake: {e}"))?;
    tokio::spawn(connection);
    let request = hyper::Request::post(api.path())
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| e.to_string())?;
    let sent = Instant::now();
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
            let chunk: Value =
                serde_json::from_str(&event).map_err(|e| format!("a chunk is not JSON: {e}"))?;
            if !api.text(&chunk).is_empty() {
                times.push(at);
            }
        }
    }
    let end = Instant::now();
    if !done {
        return Err("the stream ended without [DONE]".into());
    }
    let first = *times.first().ok_or("no token in the stream")?;
    Ok(Outcome {
        ttft: first - sent,
        itl: times.windows(2).map(|w| w[1] - w[0]).collect(),
        e2el: end - sent,
        output_tokens: times.len(),
    })
}
