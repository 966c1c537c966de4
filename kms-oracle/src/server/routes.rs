//! The endpoints. Attested ones (`/v1/keys`, `/v1/certificates`, `/v1/replicate`) verify the
//! client's RA-TLS evidence, decide at the finalized block, log the decision (grant or refusal)
//! and only then answer. Public ones (metadata, env keys, audit proofs, health, metrics) need no
//! client certificate.

use std::{str::FromStr, sync::Arc};

use alloy::primitives::{Address, B256, FixedBytes};
use axum::{
    Extension, Json, Router,
    body::{Body, Bytes},
    extract::{Path, State as AxState},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use covenant_chain::kms_registry::KmsRegistry;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Peer, State, now_ms};
use crate::{
    audit::{Action, Draft, merkle},
    chain::Finalized,
    keys::{AppKeys, EnvKeyStatement, MAX_PATH_LEN, MAX_PATHS, pem, sign_leaf},
    policy::Deny,
    store,
};

type Shared = Arc<State>;

/// The router.
pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/v1/keys", post(keys))
        .route("/v1/certificates", post(certificates))
        .route("/v1/replicate", post(replicate))
        .route("/v1/apps/{app}/env-key", get(env_key))
        .route("/v1/metadata", get(metadata))
        .route("/v1/audit/{seq}", get(audit_entry))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint", None) })
        .with_state(state)
}

fn error(status: StatusCode, message: &str, seq: Option<u64>) -> Response {
    let mut body = json!({ "error": message });
    if let Some(seq) = seq {
        body["auditSeq"] = json!(seq);
    }
    (status, Json(body)).into_response()
}

fn block_json(b: &Finalized) -> Value {
    json!({ "number": b.number, "hash": b.hash, "timestamp": b.timestamp })
}

/// Logs a refusal and answers with `status` (503 if the refusal cannot be logged).
async fn refuse(
    state: &State,
    mut draft: Draft,
    stage: &'static str,
    status: StatusCode,
    reason: String,
) -> Response {
    draft.granted = false;
    draft.reason = reason.clone();
    state
        .metrics
        .decisions
        .with_label_values(&[draft.action.as_str(), "denied"])
        .inc();
    state.metrics.refusals.with_label_values(&[stage]).inc();
    tracing::info!(target: "kms::decision", action = draft.action.as_str(), app = ?draft.app_id, %reason, "refused");
    match state.audit.append(draft).await {
        Ok(seq) => error(status, &reason, Some(seq)),
        Err(e) => {
            tracing::error!(target: "kms::audit", error = %e, "refusal not logged");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("{reason} (and the audit log is unavailable)"),
                None,
            )
        }
    }
}

fn deny_status(d: &Deny) -> StatusCode {
    match d.stage {
        "chain_view" | "unavailable" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::FORBIDDEN,
    }
}

/// Reads a body within the size and time limits.
async fn read_body(state: &State, body: Body) -> Result<Bytes, (StatusCode, String)> {
    let limit = state.limits.max_body;
    match tokio::time::timeout(
        state.limits.request_timeout,
        axum::body::to_bytes(body, limit),
    )
    .await
    {
        Err(_) => Err((
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "request body not received within {} ms",
                state.limits.request_timeout.as_millis()
            ),
        )),
        Ok(Err(e)) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_large {
                Err((
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body larger than {limit} bytes"),
                ))
            } else {
                Err((
                    StatusCode::BAD_REQUEST,
                    format!("request body unreadable: {e}"),
                ))
            }
        }
        Ok(Ok(bytes)) => Ok(bytes),
    }
}

fn parse_json<T: for<'de> Deserialize<'de> + Default>(bytes: &Bytes) -> Result<T, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| format!("malformed request: {e}"))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KeysRequest {
    /// The chain the client expects this KMS to serve.
    chain_id: Option<u64>,
    /// `GetKey` paths.
    #[serde(default)]
    paths: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CertificateRequest {
    chain_id: Option<u64>,
    /// PEM `CERTIFICATE REQUEST`.
    #[serde(default)]
    csr: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReplicateRequest {
    chain_id: Option<u64>,
    /// The new node's identity address.
    node: Option<Address>,
}

fn check_chain(state: &State, chain_id: Option<u64>) -> Result<(), String> {
    let ours = state.decider.chain().deployment.chain_id;
    match chain_id {
        Some(id) if id != ours => Err(format!(
            "wrong chain id: this KMS serves chain {ours}, the request is for chain {id}"
        )),
        _ => Ok(()),
    }
}

/// The common start of attested requests: body, evidence, decision.
struct Attested {
    draft: Draft,
    body: Bytes,
}

async fn attested_start(
    state: &State,
    peer: &Peer,
    action: Action,
    body: Body,
) -> Result<Attested, Response> {
    let mut draft = Draft::refusal(action, now_ms(), "");
    draft.evidence_digest = peer.digest;
    let body = match read_body(state, body).await {
        Ok(b) => b,
        Err((status, reason)) => return Err(refuse(state, draft, "request", status, reason).await),
    };
    Ok(Attested { draft, body })
}

async fn verified(
    state: &State,
    peer: &Peer,
    draft: &mut Draft,
) -> Result<Arc<covenant_attest::VerifiedEvidence>, String> {
    let evidence = peer.evidence(state).await?;
    let runtime = evidence.runtime();
    draft.app_id = Some(Address::from(*runtime.app_id.as_bytes()));
    draft.instance_id = Some(FixedBytes(*runtime.instance_id.as_bytes()));
    draft.compose_hash = Some(B256::from(*runtime.compose_hash.as_bytes()));
    Ok(evidence)
}

async fn keys(
    AxState(state): AxState<Shared>,
    Extension(peer): Extension<Arc<Peer>>,
    body: Body,
) -> Response {
    let Attested { mut draft, body } = match attested_start(&state, &peer, Action::Keys, body).await
    {
        Ok(a) => a,
        Err(r) => return r,
    };
    let request: KeysRequest = match parse_json(&body) {
        Ok(r) => r,
        Err(reason) => {
            return refuse(&state, draft, "request", StatusCode::BAD_REQUEST, reason).await;
        }
    };
    if let Err(reason) = check_chain(&state, request.chain_id) {
        return refuse(&state, draft, "request", StatusCode::BAD_REQUEST, reason).await;
    }
    if request.paths.len() > MAX_PATHS
        || request
            .paths
            .iter()
            .any(|p| p.is_empty() || p.len() > MAX_PATH_LEN)
    {
        let reason = format!("at most {MAX_PATHS} paths of 1 to {MAX_PATH_LEN} bytes");
        return refuse(&state, draft, "request", StatusCode::BAD_REQUEST, reason).await;
    }
    let evidence = match verified(&state, &peer, &mut draft).await {
        Ok(e) => e,
        Err(reason) => {
            return refuse(&state, draft, "evidence", StatusCode::UNAUTHORIZED, reason).await;
        }
    };
    let started = tokio::time::Instant::now();
    let grant = match state.decider.decide_app(&evidence).await {
        Ok(g) => g,
        Err((deny, _)) => {
            draft.block = deny.block.map(|b| (b.number, b.hash));
            let status = deny_status(&deny);
            return refuse(&state, draft, deny.stage, status, deny.reason).await;
        }
    };
    draft.block = Some((grant.block.number, grant.block.hash));
    let (roots, boot, paths) = (grant.roots.clone(), grant.boot.clone(), request.paths);
    let shared = state.clone();
    let derived = tokio::task::spawn_blocking(move || {
        let (root, domain) = (shared.decider.root_secret(), shared.decider.domain());
        let material = shared.app_material.get_or_derive(
            root,
            domain,
            &roots,
            boot.appId,
            boot.keyGeneration,
        )?;
        Ok::<_, crate::Error>(AppKeys::for_instance(
            root,
            domain,
            &material,
            boot.instanceId,
            &paths,
        ))
    })
    .await;
    let keys = match derived {
        Ok(Ok(k)) => k,
        Ok(Err(e)) => {
            tracing::error!(target: "kms::keys", error = %e, "derivation failed");
            return refuse(
                &state,
                draft,
                "unavailable",
                StatusCode::INTERNAL_SERVER_ERROR,
                "key derivation failed".into(),
            )
            .await;
        }
        Err(_) => {
            return refuse(
                &state,
                draft,
                "unavailable",
                StatusCode::INTERNAL_SERVER_ERROR,
                "key derivation failed".into(),
            )
            .await;
        }
    };
    grant_response(
        &state,
        draft,
        started,
        &grant.block,
        serde_json::to_value(&keys),
    )
    .await
}

async fn grant_response(
    state: &State,
    mut draft: Draft,
    started: tokio::time::Instant,
    block: &Finalized,
    body: serde_json::Result<Value>,
) -> Response {
    let action = draft.action;
    draft.granted = true;
    draft.reason.clear();
    let seq = match state.audit.append(draft).await {
        Ok(seq) => seq,
        Err(e) => {
            tracing::error!(target: "kms::audit", error = %e, "grant not logged: refusing");
            state
                .metrics
                .refusals
                .with_label_values(&["unavailable"])
                .inc();
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the audit log is unavailable; nothing was released",
                None,
            );
        }
    };
    state
        .metrics
        .decision_seconds
        .observe(started.elapsed().as_secs_f64());
    state
        .metrics
        .decisions
        .with_label_values(&[action.as_str(), "granted"])
        .inc();
    let mut body = match body {
        Ok(v) => v,
        Err(_) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "encoding failed",
                Some(seq),
            );
        }
    };
    body["auditSeq"] = json!(seq);
    body["block"] = block_json(block);
    (StatusCode::OK, Json(body)).into_response()
}

fn csr_der(text: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    let text = text.trim();
    let inner = text
        .strip_prefix("-----BEGIN CERTIFICATE REQUEST-----")
        .and_then(|t| t.strip_suffix("-----END CERTIFICATE REQUEST-----"))
        .ok_or("malformed CSR: expected a PEM CERTIFICATE REQUEST")?;
    let b64: String = inner.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("malformed CSR: {e}"))
}

async fn certificates(
    AxState(state): AxState<Shared>,
    Extension(peer): Extension<Arc<Peer>>,
    body: Body,
) -> Response {
    let Attested { mut draft, body } =
        match attested_start(&state, &peer, Action::Certificate, body).await {
            Ok(a) => a,
            Err(r) => return r,
        };
    let request: CertificateRequest = match parse_json(&body) {
        Ok(r) => r,
        Err(reason) => {
            return refuse(&state, draft, "request", StatusCode::BAD_REQUEST, reason).await;
        }
    };
    if let Err(reason) = check_chain(&state, request.chain_id) {
        return refuse(&state, draft, "request", StatusCode::BAD_REQUEST, reason).await;
    }
    let der = match csr_der(&request.csr) {
        Ok(d) => d,
        Err(reason) => {
            return refuse(&state, draft, "request", StatusCode::BAD_REQUEST, reason).await;
        }
    };
    let evidence = match verified(&state, &peer, &mut draft).await {
        Ok(e) => e,
        Err(reason) => {
            return refuse(&state, draft, "evidence", StatusCode::UNAUTHORIZED, reason).await;
        }
    };
    let started = tokio::time::Instant::now();
    let grant = match state.decider.decide_app(&evidence).await {
        Ok(g) => g,
        Err((deny, _)) => {
            draft.block = deny.block.map(|b| (b.number, b.hash));
            let status = deny_status(&deny);
            return refuse(&state, draft, deny.stage, status, deny.reason).await;
        }
    };
    draft.block = Some((grant.block.number, grant.block.hash));
    let decider = state.decider.clone();
    let (app, generation, roots) = (
        grant.boot.appId,
        grant.boot.keyGeneration,
        grant.roots.clone(),
    );
    let now = (now_ms() / 1000) as i64;
    let signed = tokio::task::spawn_blocking(move || {
        sign_leaf(
            decider.root_secret(),
            decider.domain(),
            &roots,
            app,
            generation,
            &der,
            now,
        )
    })
    .await
    .unwrap_or_else(|e| Err(format!("signing task failed: {e}")));
    match signed {
        Ok(chain) => {
            grant_response(
                &state,
                draft,
                started,
                &grant.block,
                Ok(json!({ "certificateChain": chain, "appId": app, "keyGeneration": generation })),
            )
            .await
        }
        Err(reason) => refuse(&state, draft, "request", StatusCode::BAD_REQUEST, reason).await,
    }
}

async fn replicate(
    AxState(state): AxState<Shared>,
    Extension(peer): Extension<Arc<Peer>>,
    body: Body,
) -> Response {
    let Attested { mut draft, body } =
        match attested_start(&state, &peer, Action::Replicate, body).await {
            Ok(a) => a,
            Err(r) => return r,
        };
    let request: ReplicateRequest = match parse_json(&body) {
        Ok(r) => r,
        Err(reason) => {
            return refuse(&state, draft, "request", StatusCode::BAD_REQUEST, reason).await;
        }
    };
    if let Err(reason) = check_chain(&state, request.chain_id) {
        return refuse(&state, draft, "request", StatusCode::BAD_REQUEST, reason).await;
    }
    let Some(node) = request.node.filter(|n| !n.is_zero()) else {
        return refuse(
            &state,
            draft,
            "request",
            StatusCode::BAD_REQUEST,
            "the new node's identity address is missing".into(),
        )
        .await;
    };
    let evidence = match verified(&state, &peer, &mut draft).await {
        Ok(e) => e,
        Err(reason) => {
            return refuse(&state, draft, "evidence", StatusCode::UNAUTHORIZED, reason).await;
        }
    };
    let started = tokio::time::Instant::now();
    let block = match state.decider.current_block() {
        Ok(b) => b,
        Err(deny) => {
            let status = deny_status(&deny);
            return refuse(&state, draft, deny.stage, status, deny.reason).await;
        }
    };
    draft.block = Some((block.number, block.hash));
    if let Err(deny) = state.decider.serving_at(block).await {
        let status = deny_status(&deny);
        return refuse(&state, draft, deny.stage, status, deny.reason).await;
    }
    match state.decider.kms_allowed(&evidence, &block).await {
        Ok(Ok(())) => {}
        Ok(Err(reason)) => {
            return refuse(
                &state,
                draft,
                "policy",
                StatusCode::FORBIDDEN,
                format!("not an allowed KMS node: {reason}"),
            )
            .await;
        }
        Err(e) => {
            return refuse(
                &state,
                draft,
                "unavailable",
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot decide: {e}"),
            )
            .await;
        }
    }
    // Record the onboarding on chain before handing anything over.
    let registry = state.decider.chain().registry();
    let boot = covenant_chain::boot_info(&evidence, 0);
    let onboard = KmsRegistry::onboardKmsNodeCall {
        node,
        mrAggregated: boot.mrAggregated,
        deviceId: boot.deviceId,
    };
    let tx = match state.sender.send(registry, &onboard).await {
        Ok(tx) => tx,
        Err(e) => {
            return refuse(
                &state,
                draft,
                "unavailable",
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the onboarding could not be recorded on chain: {e}"),
            )
            .await;
        }
    };
    tracing::info!(target: "kms::replication", %node, %tx, "onboarded a KMS node; handing over the root secret");
    let secret = hex::encode(state.decider.root_secret().expose());
    let body = Ok(json!({ "rootSecret": secret, "onboardingTx": tx, "node": node }));
    grant_response(&state, draft, started, &block, body).await
}

async fn env_key(AxState(state): AxState<Shared>, Path(app): Path<String>) -> Response {
    let Ok(app) = Address::from_str(&app) else {
        return error(StatusCode::BAD_REQUEST, "malformed app address", None);
    };
    let block = match state.decider.current_block() {
        Ok(b) => b,
        Err(d) => return error(deny_status(&d), &d.reason, None),
    };
    let serving = match state.decider.serving_at(block).await {
        Ok(s) => s,
        Err(d) => return error(deny_status(&d), &d.reason, None),
    };
    let generation = match state.decider.app_key_generation(app, &block).await {
        Ok(Some(g)) => g,
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                &format!("app {app} is not registered at block {}", block.number),
                None,
            );
        }
        Err(e) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("cannot read the app: {e}"),
                None,
            );
        }
    };
    let d = &state.decider;
    match EnvKeyStatement::new(d.root_secret(), d.domain(), &serving.roots, app, generation) {
        Ok(s) => {
            let mut v = serde_json::to_value(&s).unwrap_or(Value::Null);
            v["block"] = block_json(&block);
            (StatusCode::OK, Json(v)).into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string(), None),
    }
}

async fn metadata(AxState(state): AxState<Shared>) -> Response {
    let d = &state.decider;
    let deployment = &d.chain().deployment;
    let mut body = json!({
        "chainId": deployment.chain_id,
        "kmsRegistry": deployment.contracts.kms_registry,
        "node": d.own().node,
        "mrAggregated": B256::from(*d.own().evidence.mr_aggregated().as_bytes()),
        "deviceId": B256::from(*d.own().evidence.device_id().as_bytes()),
        "osImageHash": B256::from(*d.own().evidence.runtime().os_image_hash.as_bytes()),
    });
    match d.current_block() {
        Ok(block) => {
            body["block"] = block_json(&block);
            match d.serving_at(block).await {
                Ok(s) => {
                    body["serving"] = json!(true);
                    body["rootGeneration"] = json!(s.roots.generation);
                    body["rootSigner"] = json!(s.roots.signer_address);
                    body["rootCaPublicKey"] =
                        json!(format!("0x{}", hex::encode(&s.roots.ca_public_key)));
                    body["rootCaCertificate"] = json!(pem(&s.roots.ca_certificate_der));
                }
                Err(deny) => {
                    body["serving"] = json!(false);
                    body["reason"] = json!(deny.reason);
                }
            }
        }
        Err(deny) => {
            body["serving"] = json!(false);
            body["reason"] = json!(deny.reason);
        }
    }
    (StatusCode::OK, Json(body)).into_response()
}

async fn audit_entry(AxState(state): AxState<Shared>, Path(seq): Path<String>) -> Response {
    let Ok(seq) = seq.parse::<u64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            "the sequence number must be a positive integer",
            None,
        );
    };
    let node = state.decider.own().node;
    let result = async {
        let mut c = state.audit_pool.acquire().await?;
        let entry = store::audit::entry_at(&mut c, node, seq).await?;
        let Some(entry) = entry else { return Ok::<_, crate::Error>(None) };
        let commit = store::audit::commit_covering(&mut c, node, seq).await?;
        let proof = match commit {
            Some(commit) => {
                let batch = store::audit::entries(&mut c, node, commit.from_seq, commit.to_seq).await?;
                let leaves: Vec<merkle::Hash> = batch.iter().map(|e| e.leaf_hash()).collect();
                let index = (seq - commit.from_seq) as usize;
                let path = merkle::inclusion_proof(&leaves, index).unwrap_or_default();
                Some(json!({
                    "fromSeq": commit.from_seq,
                    "toSeq": commit.to_seq,
                    "root": commit.root,
                    "txHash": commit.tx_hash,
                    "index": index,
                    "treeSize": leaves.len(),
                    "path": path.iter().map(|h| format!("0x{}", hex::encode(h))).collect::<Vec<_>>(),
                }))
            }
            None => None,
        };
        Ok(Some((entry, proof)))
    }
    .await;
    match result {
        Ok(Some((entry, proof))) => {
            let body = json!({
                "entry": entry,
                "leaf": format!("0x{}", hex::encode(entry.leaf_bytes())),
                "leafHash": format!("0x{}", hex::encode(entry.leaf_hash())),
                "commitment": proof,
            });
            (StatusCode::OK, Json(body)).into_response()
        }
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            &format!("no audit entry {seq}"),
            None,
        ),
        Err(e) => {
            tracing::warn!(target: "kms::audit", error = %e, "audit read failed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "audit log unavailable",
                None,
            )
        }
    }
}

async fn healthz(AxState(state): AxState<Shared>) -> Response {
    let d = &state.decider;
    let verdict = match d.current_block() {
        Ok(block) => d.serving_at(block).await.map(|s| s.block),
        Err(deny) => Err(deny),
    };
    match verdict {
        Ok(block) => (
            StatusCode::OK,
            Json(json!({ "status": "serving", "block": block_json(&block) })),
        )
            .into_response(),
        Err(deny) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not serving", "reason": deny.reason })),
        )
            .into_response(),
    }
}

async fn metrics(AxState(state): AxState<Shared>) -> Response {
    let mut out = String::new();
    let encoder = prometheus::TextEncoder::new();
    if let Err(e) = encoder.encode_utf8(&state.registry.gather(), &mut out) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string(), None);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
