//! The registration API: HTTPS (TLS 1.3) where instances register over mutual RA-TLS, and
//! where anyone can read what is routed.
//!
//! - `POST /v1/instances` (client certificate required: the instance's RA-TLS boot certificate)
//!   → [`Registered`](crate::instance::Registered), or a JSON error: 401 without a certificate
//!   or with evidence that does not verify, 400 for a request that does not match its evidence,
//!   403 when the chain does not allow the boot, 503 when that cannot be decided now.
//! - `GET /v1/instances`: the routing table (app, instance, compose hash, hosts, BootInfo
//!   fields, evidence digest, decided block).
//! - `GET /healthz`: 200 once a routing table was decided at a usable finalized block.
//! - `GET /metrics`: Prometheus.
//!
//! Each connection's handshake must finish within 10 s and each request's headers within 10 s;
//! bodies are limited to 96 KiB; at most 1,024 connections are served at once (others wait in
//! the kernel's backlog). Nothing is written for a client whose evidence does not verify.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Extension, Json, Router,
    extract::{DefaultBodyLimit, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::{net::TcpListener, sync::watch};
use tokio_rustls::TlsAcceptor;

use crate::{
    gateway::{Gateway, Refused},
    instance::RegisterRequest,
};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BODY: usize = 96 * 1024;
const MAX_CONNECTIONS: usize = 1024;

/// The client certificate of a connection (its first one), if it presented one.
#[derive(Clone, Debug)]
struct ClientCertificate(Option<Arc<Vec<u8>>>);

/// What the handlers share.
#[derive(Clone)]
struct Shared {
    gateway: Arc<Gateway>,
    registry: prometheus::Registry,
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": message.to_string() }))).into_response()
}

async fn register(
    State(shared): State<Shared>,
    Extension(ClientCertificate(certificate)): Extension<ClientCertificate>,
    body: axum::body::Bytes,
) -> Response {
    let Some(certificate) = certificate else {
        shared.gateway_metrics_refused();
        return error(
            StatusCode::UNAUTHORIZED,
            "registration needs the instance's RA-TLS certificate as the client certificate",
        );
    };
    let request: RegisterRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            shared.gateway_metrics_refused();
            return error(StatusCode::BAD_REQUEST, format!("malformed request: {e}"));
        }
    };
    match shared
        .gateway
        .register(certificate.as_ref().clone(), request)
        .await
    {
        Ok(registered) => Json(registered).into_response(),
        Err(refused) => {
            shared.gateway_metrics_refused();
            let status = match &refused {
                Refused::Evidence(_) => StatusCode::UNAUTHORIZED,
                Refused::Request(_) => StatusCode::BAD_REQUEST,
                r if r.is_transient() => StatusCode::SERVICE_UNAVAILABLE,
                Refused::Policy(_) | Refused::Store => StatusCode::FORBIDDEN,
            };
            error(status, refused)
        }
    }
}

impl Shared {
    fn gateway_metrics_refused(&self) {
        self.gateway.metrics().registrations_refused.inc();
    }
}

async fn instances(State(shared): State<Shared>) -> Response {
    let table = shared.gateway.routes();
    let apps: Vec<_> = table
        .apps
        .iter()
        .map(|(app, routed)| {
            let instances: Vec<_> = routed
                .iter()
                .map(|r| {
                    json!({
                        "instanceId": format!("0x{}", hex::encode(r.registration.instance_id())),
                        "composeHash": r.boot.composeHash,
                        "osImageHash": r.boot.osImageHash,
                        "osMeasurement": r.boot.osMeasurement,
                        "deviceId": r.boot.deviceId,
                        "mrAggregated": r.boot.mrAggregated,
                        "teeKind": r.boot.teeKind,
                        "tcbStatus": r.boot.tcbStatus,
                        "gpuEvidenceHash": r.boot.gpuEvidenceHash,
                        "keyGeneration": r.boot.keyGeneration,
                        "evidenceDigest": r.registration.evidence_digest,
                        "hosts": shared.gateway.hosts(&r.registration),
                        "decidedAt": r.block.number,
                    })
                })
                .collect();
            json!({ "app": app, "instances": instances })
        })
        .collect();
    Json(json!({
        "block": table.block.map(|b| json!({ "number": b.number, "hash": b.hash })),
        "apps": apps,
    }))
    .into_response()
}

async fn healthz(State(shared): State<Shared>) -> Response {
    match shared.gateway.routes().block {
        Some(b) => Json(json!({ "status": "ok", "block": b.number })).into_response(),
        None => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no usable finalized block: nothing is routed",
        ),
    }
}

async fn metrics(State(shared): State<Shared>) -> Response {
    let mut out = String::new();
    match prometheus::TextEncoder::new().encode_utf8(&shared.registry.gather(), &mut out) {
        Ok(()) => out.into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

fn router(shared: Shared) -> Router {
    Router::new()
        .route("/v1/instances", get(instances).post(register))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(shared)
}

/// The TLS server configuration: TLS 1.3, `certificate`/`key`, client certificates optional
/// (checked by the registration handler), HTTP/1.1.
pub fn tls_config(
    certificate_der: Vec<u8>,
    private_key_der: Vec<u8>,
) -> Result<rustls::ServerConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(covenant_attest::ratls::PossessionVerifier::new(&provider));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![rustls::pki_types::CertificateDer::from(certificate_der)],
            rustls::pki_types::PrivateKeyDer::Pkcs8(private_key_der.into()),
        )?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Serves the registration API on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    tls: rustls::ServerConfig,
    gateway: Arc<Gateway>,
    registry: prometheus::Registry,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let app = router(Shared { gateway, registry });
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(target: "gateway::api", error = %e, "accept failed");
                    continue;
                }
            },
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        connections.spawn(async move {
            let _permit = permit;
            serve_connection(tcp, remote, acceptor, app).await;
        });
        while connections.try_join_next().is_some() {}
    }
    connections.shutdown().await;
}

async fn serve_connection(
    tcp: tokio::net::TcpStream,
    remote: SocketAddr,
    acceptor: TlsAcceptor,
    app: Router,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(target: "gateway::api", %remote, error = %e, "tls handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(target: "gateway::api", %remote, "tls handshake timed out");
            return;
        }
    };
    let certificate = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| Arc::new(c.to_vec()));
    let service = app.layer(Extension(ClientCertificate(certificate)));
    let result = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(64 * 1024)
        .serve_connection(
            TokioIo::new(tls),
            hyper_util::service::TowerToHyperService::new(service),
        )
        .await;
    if let Err(e) = result {
        tracing::debug!(target: "gateway::api", %remote, error = %e, "connection ended");
    }
}
