//! A minimal blocking JSON-RPC call over loopback HTTP, used to probe readiness and drive anvil from
//! synchronous test code. Services use alloy; this only exists so the kit needs no async stack.
//! Also the one way tests pick a free port.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use serde_json::{Value, json};

use crate::{Error, Result};

const RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// Calls `method` with `params` on the JSON-RPC server at `addr` (HTTP, no TLS) and returns its
/// `result`; an RPC error object becomes [`Error::Rpc`].
pub fn json_rpc(addr: SocketAddr, method: &str, params: Value) -> Result<Value> {
    let fail = |reason: String| Error::Rpc {
        method: method.to_owned(),
        endpoint: format!("http://{addr}"),
        reason,
    };
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    // HTTP/1.0 makes the server close the connection after a plain (unchunked) body.
    let request = format!(
        "POST / HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream =
        TcpStream::connect_timeout(&addr, RPC_TIMEOUT).map_err(|e| fail(e.to_string()))?;
    stream
        .set_read_timeout(Some(RPC_TIMEOUT))
        .map_err(|e| fail(e.to_string()))?;
    stream
        .set_write_timeout(Some(RPC_TIMEOUT))
        .map_err(|e| fail(e.to_string()))?;
    stream
        .write_all(request.as_bytes())
        .map_err(|e| fail(e.to_string()))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| fail(e.to_string()))?;
    let response = String::from_utf8_lossy(&response);
    let (head, payload) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| fail("malformed HTTP response".into()))?;
    let status = head.lines().next().unwrap_or_default();
    if !status.contains(" 200") {
        return Err(fail(format!("HTTP status {status}: {payload}")));
    }
    let mut reply: Value = serde_json::from_str(payload)
        .map_err(|e| fail(format!("invalid JSON ({e}): {payload}")))?;
    if let Some(error) = reply.get("error") {
        return Err(fail(error.to_string()));
    }
    reply
        .get_mut("result")
        .map(Value::take)
        .ok_or_else(|| fail(format!("no result in {payload}")))
}

/// A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it). Another process may
/// take it before the caller binds it; the kit's own start-up code retries for that reason.
pub fn free_port() -> Result<u16> {
    let listener =
        std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).map_err(|source| {
            Error::Io {
                what: "bind",
                path: "127.0.0.1:0".into(),
                source,
            }
        })?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|source| Error::Io {
            what: "bind",
            path: "127.0.0.1:0".into(),
            source,
        })
}
