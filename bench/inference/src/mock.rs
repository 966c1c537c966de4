//! The mock model server: OpenAI-compatible `/v1/completions` and `/v1/chat/completions` that
//! stream tokens (server-sent events, as vLLM and OpenAI do) with a configurable prefill time and
//! time per output token. It is the reproducible baseline on machines without a GPU, not a test
//! double: every request gets its own schedule, so the server has no capacity limit of its own
//! and what a proxy in front of it adds shows on top of a known stream.
//!
//! Timing: the first token is sent `prefill_base + prefill_per_token × input tokens` after the
//! request arrived, token k `k × per_token` after the first; each is a deadline from the arrival,
//! so delays do not accumulate (the runtime's timer rounds each up to the next millisecond).
//! Input tokens are the prompt's whitespace-separated words; output tokens are `max_tokens`.

use std::{net::SocketAddr, time::Duration};

use axum::{
    Json, Router,
    body::Body,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
    serve::ListenerExt,
};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;

/// The mock's timing.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Time to first token, fixed part.
    pub prefill_base: Duration,
    /// Time to first token, per input token.
    pub prefill_per_token: Duration,
    /// Time between output tokens.
    pub per_token: Duration,
}

/// The mock's timing as command-line arguments, in milliseconds.
#[derive(Clone, Copy, Debug, clap::Args)]
pub struct TimingArgs {
    /// Time to first token, fixed part, in milliseconds.
    #[arg(long, default_value_t = 20.0)]
    pub prefill_ms: f64,
    /// Time to first token per input token, in milliseconds.
    #[arg(long, default_value_t = 0.05)]
    pub prefill_per_token_ms: f64,
    /// Time between output tokens, in milliseconds.
    #[arg(long, default_value_t = 15.0)]
    pub per_token_ms: f64,
}

impl TimingArgs {
    /// The timing these arguments give (negative values count as zero).
    pub fn timing(&self) -> Timing {
        let ms = |v: f64| Duration::from_secs_f64(v.max(0.0) / 1000.0);
        Timing {
            prefill_base: ms(self.prefill_ms),
            prefill_per_token: ms(self.prefill_per_token_ms),
            per_token: ms(self.per_token_ms),
        }
    }
}

/// The model name the mock answers to (any name is accepted).
pub const MODEL: &str = "covenant-mock";
/// Output tokens when a request names no `max_tokens`.
const DEFAULT_MAX_TOKENS: usize = 16;
/// The most output tokens one request may ask for.
const MAX_TOKENS: usize = 16_384;

#[derive(Deserialize)]
struct Request {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    prompt: Option<Value>,
    #[serde(default)]
    messages: Option<Vec<Message>>,
    #[serde(default)]
    max_tokens: Option<usize>,
    #[serde(default)]
    max_completion_tokens: Option<usize>,
    #[serde(default)]
    stream: bool,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: Value,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Completion,
    Chat,
}

/// Words in a prompt: a string, an array of strings, or chat message contents.
fn words(v: &Value) -> usize {
    match v {
        Value::String(s) => s.split_whitespace().count(),
        Value::Array(items) => items.iter().map(words).sum(),
        Value::Object(o) => o.get("text").map(words).unwrap_or(0),
        _ => 0,
    }
}

/// The router.
pub fn router(timing: Timing) -> Router {
    Router::new()
        .route(
            "/v1/completions",
            post(|s: State<Timing>, b: Json<Request>| answer(s, b, Kind::Completion)),
        )
        .route(
            "/v1/chat/completions",
            post(|s: State<Timing>, b: Json<Request>| answer(s, b, Kind::Chat)),
        )
        .route(
            "/v1/models",
            get(|| async {
                Json(json!({ "object": "list", "data": [{ "id": MODEL, "object": "model" }] }))
            }),
        )
        .with_state(timing)
}

/// Serves on `listener` until the process ends. Every connection sends without Nagle's delay,
/// as model servers do (vLLM's, like every asyncio server, sets `TCP_NODELAY`): without it, a
/// token written while the response head is still unacknowledged waits for the peer's delayed
/// acknowledgement (up to 40 ms on Linux).
pub async fn serve(listener: tokio::net::TcpListener, timing: Timing) -> std::io::Result<()> {
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router(timing)).await
}

/// Binds `addr` and returns the bound address and the serving future.
pub async fn bind(
    addr: SocketAddr,
    timing: Timing,
) -> std::io::Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((bound, serve(listener, timing)))
}

/// The text of output token `i`.
fn token(i: usize) -> String {
    format!(" t{i}")
}

async fn answer(State(timing): State<Timing>, Json(req): Json<Request>, kind: Kind) -> Response {
    let arrived = Instant::now();
    let input = match kind {
        Kind::Completion => req.prompt.as_ref().map(words).unwrap_or(0),
        Kind::Chat => req
            .messages
            .iter()
            .flatten()
            .map(|m| words(&m.content))
            .sum(),
    };
    let output = req
        .max_completion_tokens
        .or(req.max_tokens)
        .unwrap_or(DEFAULT_MAX_TOKENS);
    if output == 0 || output > MAX_TOKENS {
        return (
            StatusCode::BAD_REQUEST,
            Json(
                json!({ "error": { "message": format!("max_tokens must be 1 to {MAX_TOKENS}") } }),
            ),
        )
            .into_response();
    }
    let model = req.model.unwrap_or_else(|| MODEL.to_owned());
    let first = arrived + timing.prefill_base + timing.prefill_per_token * input as u32;
    let usage = json!({ "prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output });
    if !req.stream {
        tokio::time::sleep_until(first + timing.per_token * (output as u32 - 1)).await;
        let text: String = (0..output).map(token).collect();
        let choice = match kind {
            Kind::Completion => json!({ "index": 0, "text": text, "finish_reason": "length" }),
            Kind::Chat => {
                json!({ "index": 0, "message": { "role": "assistant", "content": text }, "finish_reason": "length" })
            }
        };
        return Json(json!({ "id": "mock", "object": object(kind, false), "model": model, "choices": [choice], "usage": usage }))
            .into_response();
    }
    let events = futures::stream::unfold(0usize, move |i| {
        let model = model.clone();
        let usage = usage.clone();
        async move {
            if i > output {
                return None;
            }
            if i == output {
                return Some((
                    Ok::<_, std::convert::Infallible>(Bytes::from_static(b"data: [DONE]\n\n")),
                    i + 1,
                ));
            }
            tokio::time::sleep_until(first + timing.per_token * i as u32).await;
            let last = i + 1 == output;
            let finish = if last { json!("length") } else { Value::Null };
            let choice = match kind {
                Kind::Completion => {
                    json!({ "index": 0, "text": token(i), "finish_reason": finish })
                }
                Kind::Chat => {
                    json!({ "index": 0, "delta": { "content": token(i) }, "finish_reason": finish })
                }
            };
            let mut chunk = json!({ "id": "mock", "object": object(kind, true), "model": model, "choices": [choice] });
            if last {
                chunk["usage"] = usage;
            }
            Some((Ok(Bytes::from(format!("data: {chunk}\n\n"))), i + 1))
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(events))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn object(kind: Kind, stream: bool) -> &'static str {
    match (kind, stream) {
        (Kind::Completion, _) => "text_completion",
        (Kind::Chat, false) => "chat.completion",
        (Kind::Chat, true) => "chat.completion.chunk",
    }
}
