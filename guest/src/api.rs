//! The local API the guest serves to the app on a Unix socket (types in
//! `covenant_guest_api::api`): `Info`, `GetKey`, `GetQuote`, `EmitEvent`, `GetTlsKey`.
//!
//! The socket is the boundary: whoever can open it is the app (the workload the guest runs, in
//! the same TEE). It is created owner-only (mode 0600), never over a file that is not a socket. Every input is bounded and checked; bad input gets 400 with the reason,
//! a TEE failure 503.

use std::{
    os::unix::fs::{FileTypeExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use covenant_attest::{ReportData, eventlog::RuntimeEvent};
use covenant_guest_api::api::{
    EmitEventRequest, EmitEventResponse, ErrorBody, GetKeyRequest, GetKeyResponse, GetQuoteRequest,
    GetQuoteResponse, GetTlsKeyRequest, GetTlsKeyResponse, InfoResponse, KmsUsed, MAX_PATH_LEN,
    MAX_TLS_NAMES, REPORT_DATA_LEN,
};
use covenant_kms_api::CertificateRequest;
use covenant_tee::EvidenceProducer;
use serde::de::DeserializeOwned;

use crate::getkey::AppSigner;

/// The largest request body, in bytes.
pub const MAX_BODY: usize = 16 * 1024;

/// What the API serves from: the booted instance.
pub struct Guest {
    /// The TEE, with the boot's events (and the app's since) recorded.
    pub tee: Mutex<Box<dyn EvidenceProducer>>,
    /// The GPU evidence the boot announced (naming the boot key), attached to every quote.
    pub gpu: Option<covenant_attest::nvidia::GpuEvidence>,
    /// The app key, checked against the root's signature.
    pub signer: AppSigner,
    /// The instance id (hex).
    pub instance_id: String,
    /// The compose hash (hex).
    pub compose_hash: String,
    /// The KMS node used.
    pub kms: KmsUsed,
    /// A client of that node over RA-TLS with the boot's evidence (`GetTlsKey`).
    pub kms_client: covenant_kms_api::KmsClient,
    /// The root CA key registered on chain when the node was checked: certificates it issues
    /// are verified against it before they are handed out.
    pub roots: covenant_kms_api::RootAnchor,
}

impl std::fmt::Debug for Guest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guest")
            .field("instance_id", &self.instance_id)
            .finish_non_exhaustive()
    }
}

/// An API error: 400 for bad input, 503 when the TEE fails.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
    }
}

fn bad(reason: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, reason.into())
}

fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| bad(format!("malformed request: {e}")))
}

/// The API's routes.
pub fn router(guest: Arc<Guest>) -> Router {
    Router::new()
        .route("/Info", get(info))
        .route("/GetKey", post(get_key))
        .route("/GetQuote", post(get_quote))
        .route("/EmitEvent", post(emit_event))
        .route("/GetTlsKey", post(get_tls_key))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(guest)
}

fn lock(guest: &Guest) -> std::sync::MutexGuard<'_, Box<dyn EvidenceProducer>> {
    // A panic while holding the lock cannot leave the log half-extended (extend is one call).
    guest
        .tee
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn info(State(guest): State<Arc<Guest>>) -> Json<InfoResponse> {
    let (platform, event_log) = {
        let tee = lock(&guest);
        (tee.platform(), tee.event_log().to_vec())
    };
    let c = guest.signer.context();
    Json(InfoResponse {
        app_id: c.app,
        instance_id: guest.instance_id.clone(),
        compose_hash: guest.compose_hash.clone(),
        key_generation: c.key_generation,
        app_key: guest.signer.address(),
        platform: serde_json::to_value(platform)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        event_log,
        kms: guest.kms.clone(),
    })
}

async fn get_key(
    State(guest): State<Arc<Guest>>,
    body: Bytes,
) -> Result<Json<GetKeyResponse>, ApiError> {
    let request: GetKeyRequest = parse(&body)?;
    let path = request.path.as_bytes();
    if path.is_empty() || path.len() > MAX_PATH_LEN {
        return Err(bad(format!(
            "a path is 1 to {MAX_PATH_LEN} bytes, got {}",
            path.len()
        )));
    }
    let key = guest
        .signer
        .path_key(path)
        .map_err(|e| bad(e.to_string()))?;
    let c = guest.signer.context();
    Ok(Json(GetKeyResponse {
        key: hex::encode(key.secret.as_slice()),
        address: key.address,
        signature: hex::encode(&key.signature),
        app_id: c.app,
        key_generation: c.key_generation,
        app_key: guest.signer.address(),
        app_key_signature: hex::encode(&c.app_key_signature),
        root_signer: c.root_signer,
        chain_id: c.chain_id,
        registry: c.registry,
    }))
}

async fn get_quote(
    State(guest): State<Arc<Guest>>,
    body: Bytes,
) -> Result<Json<GetQuoteResponse>, ApiError> {
    let request: GetQuoteRequest = parse(&body)?;
    let bytes = hex::decode(&request.report_data).map_err(|_| bad("reportData is not hex"))?;
    let report_data: [u8; REPORT_DATA_LEN] = bytes.as_slice().try_into().map_err(|_| {
        bad(format!(
            "reportData is {} bytes, expected {REPORT_DATA_LEN}",
            bytes.len()
        ))
    })?;
    let mut evidence = lock(&guest)
        .evidence(&ReportData::new(
            covenant_guest_api::api::quote_report_data(&report_data),
        ))
        .map_err(|e| {
            ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the TEE failed: {e}"),
            )
        })?;
    evidence.gpu = guest.gpu.clone();
    Ok(Json(GetQuoteResponse { evidence }))
}

async fn emit_event(
    State(guest): State<Arc<Guest>>,
    body: Bytes,
) -> Result<Json<EmitEventResponse>, ApiError> {
    let request: EmitEventRequest = parse(&body)?;
    let payload = hex::decode(&request.payload).map_err(|_| bad("payload is not hex"))?;
    let event = RuntimeEvent::new(&request.name, payload);
    covenant_attest::eventlog::check_app_event(&event).map_err(|e| bad(e.to_string()))?;
    let mut tee = lock(&guest);
    let index = tee.event_log().len();
    if index >= covenant_attest::eventlog::MAX_EVENTS {
        return Err(bad(format!(
            "the event log is full ({} events)",
            covenant_attest::eventlog::MAX_EVENTS
        )));
    }
    tee.extend(event).map_err(|e| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the TEE failed: {e}"),
        )
    })?;
    Ok(Json(EmitEventResponse { index }))
}

async fn get_tls_key(
    State(guest): State<Arc<Guest>>,
    body: Bytes,
) -> Result<Json<GetTlsKeyResponse>, ApiError> {
    let request: GetTlsKeyRequest = parse(&body)?;
    if request.names.is_empty() || request.names.len() > MAX_TLS_NAMES {
        return Err(bad(format!(
            "1 to {MAX_TLS_NAMES} names, got {}",
            request.names.len()
        )));
    }
    for name in &request.names {
        if !covenant_guest_api::api::is_tls_name(name) {
            return Err(bad(format!("{name:?} is not a DNS name")));
        }
    }
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| unavailable(format!("making a key: {e}")))?;
    let csr = rcgen::CertificateParams::new(request.names.clone())
        .and_then(|p| p.serialize_request(&key))
        .and_then(|csr| csr.pem())
        .map_err(|e| bad(format!("the names: {e}")))?;
    let answer = guest
        .kms_client
        .certificate(&CertificateRequest {
            chain_id: Some(guest.roots.chain_id),
            csr,
            usage: request.usage,
        })
        .await
        .map_err(|e| unavailable(format!("the KMS: {e}")))?;
    let chain = covenant_kms_api::pem_chain_to_der(&answer.body.certificate_chain)
        .map_err(|e| unavailable(format!("the KMS's chain: {e}")))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let app = guest.signer.context().app;
    let verified = covenant_kms_api::verify_app_chain(&chain, &guest.roots, Some(app), now)
        .map_err(|e| unavailable(format!("the KMS's chain does not verify: {e}")))?;
    let mut issued = verified.dns_names.clone();
    let mut asked = request.names.clone();
    issued.sort();
    asked.sort();
    if issued != asked {
        return Err(unavailable(format!(
            "the KMS certified {issued:?}, not {asked:?}"
        )));
    }
    if verified.usage != request.usage {
        return Err(unavailable(format!(
            "the KMS certified the usage {:?}, not {:?}",
            verified.usage, request.usage
        )));
    }
    Ok(Json(GetTlsKeyResponse {
        key: key.serialize_pem(),
        certificate_chain: answer.body.certificate_chain,
    }))
}

fn unavailable(reason: String) -> ApiError {
    ApiError(StatusCode::SERVICE_UNAVAILABLE, reason)
}

/// Binds the API's socket at `path` (mode 0600: the app runs as the guest's user). A stale socket there is replaced; any other
/// file is left alone and refused.
pub fn bind(path: &Path) -> std::io::Result<tokio::net::UnixListener> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // Created owner-only (no window with the umask's wider mode), and kept so.
    let previous = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = tokio::net::UnixListener::bind(path);
    nix::sys::stat::umask(previous);
    let listener = bound?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Removes the socket file when dropped.
#[derive(Debug)]
pub struct SocketFile(pub PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
