//! A client for one or more kms-oracle nodes: URLs with DNS names or addresses, one kept-alive
//! HTTP/1.1 connection per node over TLS 1.3 (RA-TLS: the node's certificate is checked by the
//! verifier the caller gives, normally a [`covenant_attest::ratls::RaTlsVerifier`]), and failover
//! in the order the nodes were given.
//!
//! Failover: a node that cannot be reached, whose evidence does not verify, or that answers
//! "cannot answer now" (503, or a 500 of its own) is skipped for the next one. A *decision* — a
//! refusal with a reason (4xx) — is returned at once: every node decides by the same chain, and
//! asking the others would only add audit entries. A `POST` that may have reached a node (its
//! request was written, or the node answered 2xx with something this client cannot read) is never
//! sent again, to that node or another: the node may have granted and logged it.

use std::{sync::Arc, time::Duration};

use http_body_util::{BodyExt, Full};
use hyper::{
    Request, StatusCode,
    body::Bytes,
    client::conn::http1::{self, SendRequest},
};
use hyper_util::rt::TokioIo;
use rustls::{
    client::danger::ServerCertVerifier,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName},
};
use serde::{Serialize, de::DeserializeOwned};
use tokio::sync::Mutex;
use tokio_rustls::TlsConnector;

use crate::{
    CertificateRequest, CertificateResponse, EnvKeyResponse, ErrorBody, Health, KeysRequest,
    KeysResponse, Metadata, ReplicateRequest, ReplicateResponse,
};

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL cannot name a KMS node.
    #[error("invalid kms url `{url}`: {reason}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The node decided "no" (or found the request malformed), with its reason.
    #[error("kms {endpoint} refused ({status}): {reason}")]
    Refused {
        /// The node.
        endpoint: String,
        /// The HTTP status.
        status: u16,
        /// The node's reason.
        reason: String,
        /// The refusal's audit entry, when the node logged it.
        audit_seq: Option<u64>,
    },
    /// The node cannot answer now (stale chain view, unreachable chain, audit log down).
    #[error("kms {endpoint} cannot answer now: {reason}")]
    Unavailable {
        /// The node.
        endpoint: String,
        /// The node's reason.
        reason: String,
    },
    /// The node could not be reached (DNS, TCP, TLS other than its evidence, HTTP, timeout).
    #[error("kms {endpoint} is unreachable: {reason}")]
    Unreachable {
        /// The node.
        endpoint: String,
        /// What failed.
        reason: String,
        /// Whether the request may have reached the node (it was written before the failure).
        sent: bool,
    },
    /// The node's RA-TLS evidence was refused by the verifier.
    #[error("kms {endpoint} presented evidence that does not verify: {reason}")]
    BadEvidence {
        /// The node.
        endpoint: String,
        /// The verifier's reason.
        reason: String,
    },
    /// The node answered something this client cannot read.
    #[error("kms {endpoint} answered something undecodable: {reason}")]
    Malformed {
        /// The node.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// Every node failed; each one's error, in order.
    #[error("every kms node failed: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    AllFailed(Vec<ClientError>),
}

impl ClientError {
    /// Whether asking the next node is safe and may help: the node said it cannot answer now,
    /// could not be reached before anything was sent, or its evidence was refused. For an
    /// idempotent request (`GET`) a failure after sending fails over too.
    pub fn fails_over(&self, idempotent: bool) -> bool {
        match self {
            Self::Unavailable { .. } | Self::BadEvidence { .. } => true,
            Self::Unreachable { sent, .. } => idempotent || !sent,
            Self::Malformed { .. } => idempotent,
            _ => false,
        }
    }
}

/// One KMS node's address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    url: String,
    host: String,
    port: u16,
}

impl Endpoint {
    /// Parses `https://host[:port]` (default port 443); the host may be a DNS name or an address.
    pub fn parse(url: &str) -> Result<Self, ClientError> {
        let invalid = |reason: &str| ClientError::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let parsed = url::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
        if parsed.scheme() != "https" {
            return Err(invalid("the scheme must be https"));
        }
        if parsed.path() != "/"
            || parsed.query().is_some()
            || parsed.fragment().is_some()
            || !parsed.username().is_empty()
            || parsed.password().is_some()
        {
            return Err(invalid("only https://host[:port] is accepted"));
        }
        let host = match parsed.host() {
            Some(url::Host::Domain(d)) => d.to_owned(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
            None => return Err(invalid("no host")),
        };
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            host,
            port: parsed.port().unwrap_or(443),
        })
    }

    /// The URL as given.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// A node and its kept-alive connection.
struct Node {
    endpoint: Endpoint,
    connection: Mutex<Option<Connection>>,
}

struct Connection {
    sender: SendRequest<Full<Bytes>>,
    server_certificate: Option<Vec<u8>>,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// A response with the certificate the node presented on its connection.
#[derive(Debug)]
pub struct Answer<T> {
    /// The node that answered.
    pub endpoint: Endpoint,
    /// The decoded answer.
    pub body: T,
    /// The node's certificate (its RA-TLS evidence), for checks beyond the verifier's.
    pub server_certificate: Option<Vec<u8>>,
}

/// A client of one or more KMS nodes.
pub struct KmsClient {
    nodes: Vec<Node>,
    tls: TlsConnector,
    timeout: Duration,
}

impl std::fmt::Debug for KmsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsClient")
            .field(
                "endpoints",
                &self
                    .nodes
                    .iter()
                    .map(|n| n.endpoint.url())
                    .collect::<Vec<_>>(),
            )
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl KmsClient {
    /// A client of `urls` (tried in order), connecting with `tls` (its server verifier checks the
    /// nodes' evidence; a client certificate, if any, is this side's RA-TLS identity); every
    /// connection and request is bounded by `timeout`.
    pub fn new(
        urls: &[&str],
        tls: Arc<rustls::ClientConfig>,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        if urls.is_empty() {
            return Err(ClientError::InvalidUrl {
                url: String::new(),
                reason: "no kms node given".into(),
            });
        }
        let nodes = urls
            .iter()
            .map(|u| {
                Ok(Node {
                    endpoint: Endpoint::parse(u)?,
                    connection: Mutex::new(None),
                })
            })
            .collect::<Result<_, ClientError>>()?;
        Ok(Self {
            nodes,
            tls: TlsConnector::from(tls),
            timeout,
        })
    }

    /// `POST /v1/keys`.
    pub async fn keys(&self, request: &KeysRequest) -> Result<Answer<KeysResponse>, ClientError> {
        self.call("POST", "/v1/keys", Some(request)).await
    }

    /// `POST /v1/certificates`.
    pub async fn certificate(
        &self,
        request: &CertificateRequest,
    ) -> Result<Answer<CertificateResponse>, ClientError> {
        self.call("POST", "/v1/certificates", Some(request)).await
    }

    /// `POST /v1/replicate`.
    pub async fn replicate(
        &self,
        request: &ReplicateRequest,
    ) -> Result<Answer<ReplicateResponse>, ClientError> {
        self.call("POST", "/v1/replicate", Some(request)).await
    }

    /// `GET /v1/apps/{app}/env-key`.
    pub async fn env_key(
        &self,
        app: alloy::primitives::Address,
    ) -> Result<Answer<EnvKeyResponse>, ClientError> {
        self.call::<(), _>("GET", &format!("/v1/apps/{app}/env-key"), None)
            .await
    }

    /// `GET /v1/metadata`.
    pub async fn metadata(&self) -> Result<Answer<Metadata>, ClientError> {
        self.call::<(), _>("GET", "/v1/metadata", None).await
    }

    /// `GET /healthz` (a node that does not serve answers 503: [`ClientError::Unavailable`]).
    pub async fn health(&self) -> Result<Answer<Health>, ClientError> {
        self.call::<(), _>("GET", "/healthz", None).await
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&B>,
    ) -> Result<Answer<T>, ClientError> {
        let body = match body {
            Some(b) => Some(serde_json::to_vec(b).map_err(|e| ClientError::Malformed {
                endpoint: String::new(),
                reason: format!("encoding the request: {e}"),
            })?),
            None => None,
        };
        let idempotent = method == "GET";
        let mut failures = Vec::new();
        for node in &self.nodes {
            match self.call_node(node, method, path, body.as_deref()).await {
                Ok(answer) => return Ok(answer),
                Err(e) if e.fails_over(idempotent) => {
                    tracing::debug!(target: "kms_api::client", endpoint = node.endpoint.url(), error = %e, "failing over");
                    failures.push(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(match failures.len() {
            1 => failures.remove(0),
            _ => ClientError::AllFailed(failures),
        })
    }

    async fn call_node<T: DeserializeOwned>(
        &self,
        node: &Node,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Answer<T>, ClientError> {
        let endpoint = node.endpoint.url().to_owned();
        let idempotent = method == "GET";
        // One request at a time per connection (HTTP/1.1); waiting for it is bounded too.
        let mut slot = tokio::time::timeout(self.timeout, node.connection.lock())
            .await
            .map_err(|_| ClientError::Unreachable {
                endpoint: endpoint.clone(),
                reason: format!(
                    "the connection stayed busy for {} ms",
                    self.timeout.as_millis()
                ),
                sent: false,
            })?;
        // A kept-alive connection may have been closed by the node: one retry on a fresh one,
        // when the request cannot have reached it.
        for attempt in 0..2 {
            let reused = slot.is_some();
            let connection = match slot.as_mut() {
                Some(c) if !c.sender.is_closed() => c,
                _ => {
                    *slot = None;
                    slot.insert(self.connect(&node.endpoint).await?)
                }
            };
            let request = build_request(&node.endpoint, method, path, body)?;
            let sent = tokio::time::timeout(self.timeout, async {
                connection.sender.ready().await?;
                let response = connection.sender.send_request(request).await?;
                let status = response.status();
                let bytes = response.into_body().collect().await?.to_bytes();
                Ok::<_, hyper::Error>((status, bytes))
            })
            .await;
            let (status, bytes) = match sent {
                Ok(Ok(r)) => r,
                Ok(Err(e)) if reused && attempt == 0 && is_unsent(&e, idempotent) => {
                    *slot = None;
                    continue;
                }
                Ok(Err(e)) => {
                    *slot = None;
                    return Err(ClientError::Unreachable {
                        endpoint,
                        sent: !e.is_canceled(),
                        reason: format!("http: {e}"),
                    });
                }
                Err(_) => {
                    *slot = None;
                    return Err(ClientError::Unreachable {
                        endpoint,
                        reason: format!("no answer within {} ms", self.timeout.as_millis()),
                        sent: true,
                    });
                }
            };
            let server_certificate = connection.server_certificate.clone();
            return decode(&node.endpoint, status, &bytes).map(|body| Answer {
                endpoint: node.endpoint.clone(),
                body,
                server_certificate,
            });
        }
        Err(ClientError::Unreachable {
            endpoint,
            reason: "the connection closed twice".into(),
            sent: false,
        })
    }

    async fn connect(&self, endpoint: &Endpoint) -> Result<Connection, ClientError> {
        let unreachable = |reason: String| ClientError::Unreachable {
            endpoint: endpoint.url().to_owned(),
            reason,
            sent: false,
        };
        let name =
            ServerName::try_from(endpoint.host.clone()).map_err(|e| ClientError::InvalidUrl {
                url: endpoint.url().to_owned(),
                reason: e.to_string(),
            })?;
        let connecting = async {
            let tcp = tokio::net::TcpStream::connect((endpoint.host.as_str(), endpoint.port))
                .await
                .map_err(|e| unreachable(format!("connecting: {e}")))?;
            let _ = tcp.set_nodelay(true);
            let tls = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| tls_error(endpoint, e))?;
            let server_certificate = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.to_vec());
            let (sender, conn) = http1::handshake(TokioIo::new(tls))
                .await
                .map_err(|e| unreachable(format!("http: {e}")))?;
            let driver = tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(Connection {
                sender,
                server_certificate,
                driver,
            })
        };
        tokio::time::timeout(self.timeout, connecting)
            .await
            .unwrap_or_else(|_| {
                Err(unreachable(format!(
                    "no connection within {} ms",
                    self.timeout.as_millis()
                )))
            })
    }
}

/// A client TLS configuration: TLS 1.3 only, `identity` (certificate DER, PKCS#8 key DER) as the
/// client certificate if given, the node's certificate checked by `server` (normally an
/// RA-TLS verifier).
pub fn client_config(
    identity: Option<(&[u8], &[u8])>,
    server: Arc<dyn ServerCertVerifier>,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<rustls::ClientConfig, rustls::Error> {
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(server);
    let mut config = match identity {
        Some((cert, key)) => builder.with_client_auth_cert(
            vec![CertificateDer::from(cert.to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.to_vec())),
        )?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A raw answer of [`request`].
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: Vec<u8>,
    /// The server's certificate (its RA-TLS evidence).
    pub server_certificate: Option<Vec<u8>>,
}

impl Reply {
    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// One request on a connection of its own (closed after it), with any body: the low-level
/// path for tools and tests that send what the typed client would not. No failover, no
/// decoding; only transport failures are errors.
pub async fn request(
    config: Arc<rustls::ClientConfig>,
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
) -> Result<Reply, ClientError> {
    let endpoint = Endpoint {
        url: format!("https://{addr}"),
        host: addr.ip().to_string(),
        port: addr.port(),
    };
    let unreachable = |reason: String| ClientError::Unreachable {
        endpoint: endpoint.url.clone(),
        reason,
        sent: false,
    };
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| unreachable(format!("connecting: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from("covenant-kms").map_err(|e| unreachable(e.to_string()))?;
    let tls = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| tls_error(&endpoint, e))?;
    let server_certificate = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec());
    let (mut send, conn) = http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| unreachable(format!("http: {e}")))?;
    let driver = tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "covenant-kms")
        .header("connection", "close");
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| unreachable(e.to_string()))?;
    let response = send
        .send_request(req)
        .await
        .map_err(|e| unreachable(format!("request: {e}")))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| unreachable(format!("reading the reply: {e}")))?
        .to_bytes()
        .to_vec();
    driver.abort();
    Ok(Reply {
        status,
        body,
        server_certificate,
    })
}

/// Whether a request failed on a kept-alive connection the node had closed without having
/// received it: never assumed once a `POST` may have been written.
fn is_unsent(e: &hyper::Error, idempotent: bool) -> bool {
    e.is_canceled() || (idempotent && (e.is_closed() || e.is_incomplete_message()))
}

fn build_request(
    endpoint: &Endpoint,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> Result<Request<Full<Bytes>>, ClientError> {
    let host = if endpoint.host.contains(':') {
        format!("[{}]", endpoint.host)
    } else {
        endpoint.host.clone()
    };
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", host);
    if body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    builder
        .body(Full::new(Bytes::copy_from_slice(body.unwrap_or_default())))
        .map_err(|e| ClientError::InvalidUrl {
            url: format!("{}{path}", endpoint.url()),
            reason: e.to_string(),
        })
}

/// A TLS failure: the verifier's refusal of the node's evidence, or anything else.
fn tls_error(endpoint: &Endpoint, e: std::io::Error) -> ClientError {
    let rustls_error = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        Some(rustls::Error::InvalidCertificate(reason)) => ClientError::BadEvidence {
            endpoint: endpoint.url().to_owned(),
            reason: format!("{reason:?}"),
        },
        _ => ClientError::Unreachable {
            endpoint: endpoint.url().to_owned(),
            reason: format!("tls: {e}"),
            sent: false,
        },
    }
}

fn decode<T: DeserializeOwned>(
    endpoint: &Endpoint,
    status: StatusCode,
    bytes: &[u8],
) -> Result<T, ClientError> {
    let url = endpoint.url().to_owned();
    if status.is_success() {
        return serde_json::from_slice(bytes).map_err(|e| ClientError::Malformed {
            endpoint: url,
            reason: e.to_string(),
        });
    }
    let error: Option<ErrorBody> = serde_json::from_slice(bytes).ok();
    // `/healthz` says why in `reason`; every other endpoint in an [`ErrorBody`].
    let health: Option<Health> = serde_json::from_slice(bytes).ok();
    let reason = error
        .as_ref()
        .map(|e| e.error.clone())
        .or_else(|| health.and_then(|h| h.reason))
        .unwrap_or_else(|| format!("status {status} without a reason"));
    // 503: the node's chain view or audit log; 500: a failure of its own (nothing was granted).
    if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::INTERNAL_SERVER_ERROR {
        return Err(ClientError::Unavailable {
            endpoint: url,
            reason,
        });
    }
    if status.is_client_error() {
        return Err(ClientError::Refused {
            endpoint: url,
            status: status.as_u16(),
            reason,
            audit_seq: error.and_then(|e| e.audit_seq),
        });
    }
    Err(ClientError::Malformed {
        endpoint: url,
        reason: format!("unexpected status {status}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_accept_dns_names_and_addresses_and_nothing_else() {
        let e = Endpoint::parse("https://kms.example.org:8600").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("kms.example.org", 8600));
        let e = Endpoint::parse("https://127.0.0.1:9/").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.url()),
            ("127.0.0.1", 9, "https://127.0.0.1:9")
        );
        assert_eq!(Endpoint::parse("https://[::1]").unwrap().port, 443);
        for bad in [
            "http://kms.example.org",
            "https://kms.example.org/v1/keys",
            "https://user@kms.example.org",
            "https://:secret@kms.example.org",
            "https://kms.example.org/#x",
            "kms.example.org:8600",
        ] {
            assert!(
                matches!(Endpoint::parse(bad), Err(ClientError::InvalidUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn statuses_become_typed_errors() {
        let e = Endpoint::parse("https://kms.invalid").unwrap();
        let body = br#"{"error":"compose hash not allowed","auditSeq":7}"#;
        match decode::<Health>(&e, StatusCode::FORBIDDEN, body) {
            Err(ClientError::Refused {
                status: 403,
                reason,
                audit_seq: Some(7),
                ..
            }) => assert_eq!(reason, "compose hash not allowed"),
            other => panic!("{other:?}"),
        }
        let stale = decode::<Health>(&e, StatusCode::SERVICE_UNAVAILABLE, br#"{"error":"stale"}"#);
        assert!(matches!(&stale, Err(e) if e.fails_over(false)), "{stale:?}");
        // A node's own failure (500) is not a decision: the next node is asked.
        let failed = decode::<Health>(&e, StatusCode::INTERNAL_SERVER_ERROR, b"");
        assert!(
            matches!(&failed, Err(e @ ClientError::Unavailable { .. }) if e.fails_over(false)),
            "{failed:?}"
        );
        // A 2xx this client cannot read may have been a grant: never asked again for a POST.
        let garbled = decode::<Health>(&e, StatusCode::OK, b"not json").unwrap_err();
        assert!(matches!(garbled, ClientError::Malformed { .. }));
        assert!(!garbled.fails_over(false) && garbled.fails_over(true));
        let refused = decode::<Health>(&e, StatusCode::BAD_REQUEST, b"");
        assert!(
            matches!(&refused, Err(e) if !e.fails_over(true)),
            "{refused:?}"
        );
        let sent = ClientError::Unreachable {
            endpoint: String::new(),
            reason: String::new(),
            sent: true,
        };
        assert!(!sent.fails_over(false) && sent.fails_over(true));
    }
}
