//! A typed client of the guest's local API, for apps: one HTTP/1.1 request per connection to
//! the guest's Unix socket.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use serde::{Serialize, de::DeserializeOwned};

use crate::api::{
    EmitEventRequest, EmitEventResponse, ErrorBody, GetKeyRequest, GetKeyResponse, GetQuoteRequest,
    GetQuoteResponse, GetTlsKeyRequest, GetTlsKeyResponse, InfoResponse, REPORT_DATA_LEN, TlsUsage,
};

/// The largest answer read, in bytes.
const MAX_ANSWER: usize = 4 * 1024 * 1024;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    /// The guest refused the call, with its reason.
    #[error("the guest refused ({status}): {reason}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The guest's reason.
        reason: String,
    },
    /// The socket could not be used.
    #[error("the guest's socket {}: {reason}", socket.display())]
    Unreachable {
        /// The socket.
        socket: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The answer could not be read.
    #[error("the guest answered something undecodable: {0}")]
    Malformed(String),
}

/// A client of the guest at a Unix socket.
#[derive(Clone, Debug)]
pub struct GuestClient {
    socket: PathBuf,
}

impl GuestClient {
    /// A client of the guest listening on `socket`.
    pub fn new(socket: impl AsRef<Path>) -> Self {
        Self {
            socket: socket.as_ref().to_owned(),
        }
    }

    /// `Info`.
    pub async fn info(&self) -> Result<InfoResponse, GuestError> {
        self.call::<(), _>("GET", "/Info", None).await
    }

    /// `GetKey(path)`.
    pub async fn get_key(&self, path: &str) -> Result<GetKeyResponse, GuestError> {
        let request = GetKeyRequest { path: path.into() };
        self.call("POST", "/GetKey", Some(&request)).await
    }

    /// `GetQuote(report_data)`.
    pub async fn get_quote(
        &self,
        report_data: &[u8; REPORT_DATA_LEN],
    ) -> Result<GetQuoteResponse, GuestError> {
        let request = GetQuoteRequest {
            report_data: hex::encode(report_data),
        };
        self.call("POST", "/GetQuote", Some(&request)).await
    }

    /// `EmitEvent(name, payload)`.
    pub async fn emit_event(
        &self,
        name: &str,
        payload: &[u8],
    ) -> Result<EmitEventResponse, GuestError> {
        let request = EmitEventRequest {
            name: name.into(),
            payload: hex::encode(payload),
        };
        self.call("POST", "/EmitEvent", Some(&request)).await
    }

    /// `GetTlsKey(names)`.
    pub async fn get_tls_key(
        &self,
        names: &[&str],
        usage: TlsUsage,
    ) -> Result<GetTlsKeyResponse, GuestError> {
        let request = GetTlsKeyRequest {
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            usage,
        };
        self.call("POST", "/GetTlsKey", Some(&request)).await
    }

    /// One raw call: the status and the body (for callers testing the API's own checks).
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Bytes), GuestError> {
        let unreachable = |reason: String| GuestError::Unreachable {
            socket: self.socket.clone(),
            reason,
        };
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let driver = tokio::spawn(connection);
        let request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "guest")
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| unreachable(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| GuestError::Malformed(e.to_string()))?
            .to_bytes();
        driver.abort();
        Ok((status, body))
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, GuestError> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| GuestError::Malformed(e.to_string()))?;
        let (status, bytes) = self.raw(method, path, body).await?;
        if status != 200 {
            let reason = serde_json::from_slice::<ErrorBody>(&bytes)
                .map(|e| e.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
            return Err(GuestError::Refused { status, reason });
        }
        serde_json::from_slice(&bytes).map_err(|e| GuestError::Malformed(e.to_string()))
    }
}
