//! The attested endpoints: what each decides and releases. Each goes through
//! [`Attested`](super::attested::Attested) (one audited path) and releases keys only through the
//! [`Keyring`](crate::keys::Keyring), against a decision the policy made.

use std::sync::Arc;

use axum::{Extension, body::Body, extract::State as AxState, response::Response};
use covenant_chain::kms_registry::KmsRegistry;
use covenant_kms_api::{
    AppKeys, BlockRef, CertificateRequest, CertificateResponse, KeysRequest, KeysResponse,
    MAX_PATH_LEN, MAX_PATHS, ReplicateRequest, ReplicateResponse, Secret,
};

use super::{
    Peer, State,
    attested::{Attested, AttestedRequest, Release, Released},
    refusal::Refusal,
};
use crate::audit::Action;

type Shared = Arc<State>;

impl AttestedRequest for KeysRequest {
    const ACTION: Action = Action::Keys;
    fn chain_id(&self) -> Option<u64> {
        self.chain_id
    }
    fn validate(&self) -> Result<(), String> {
        let bad = self.paths.len() > MAX_PATHS
            || self
                .paths
                .iter()
                .any(|p| p.is_empty() || p.len() > MAX_PATH_LEN);
        if bad {
            return Err(format!(
                "at most {MAX_PATHS} paths of 1 to {MAX_PATH_LEN} bytes"
            ));
        }
        Ok(())
    }
}

impl AttestedRequest for CertificateRequest {
    const ACTION: Action = Action::Certificate;
    fn chain_id(&self) -> Option<u64> {
        self.chain_id
    }
    fn validate(&self) -> Result<(), String> {
        csr_der(&self.csr).map(|_| ())
    }
}

impl AttestedRequest for ReplicateRequest {
    const ACTION: Action = Action::Replicate;
    fn chain_id(&self) -> Option<u64> {
        self.chain_id
    }
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

impl Release for AppKeys {
    type Response = KeysResponse;
    fn respond(self, audit_seq: u64, block: BlockRef) -> KeysResponse {
        KeysResponse {
            keys: self,
            audit_seq,
            block,
        }
    }
}

struct IssuedCertificate {
    chain: Vec<String>,
    app: alloy::primitives::Address,
    generation: u64,
}

impl Release for IssuedCertificate {
    type Response = CertificateResponse;
    fn respond(self, audit_seq: u64, block: BlockRef) -> CertificateResponse {
        CertificateResponse {
            certificate_chain: self.chain,
            app_id: self.app,
            key_generation: self.generation,
            audit_seq,
            block,
        }
    }
}

struct RootHandover {
    secret: Secret,
    tx: alloy::primitives::B256,
    node: alloy::primitives::Address,
}

impl Release for RootHandover {
    type Response = ReplicateResponse;
    fn respond(self, audit_seq: u64, block: BlockRef) -> ReplicateResponse {
        ReplicateResponse {
            root_secret: self.secret,
            onboarding_tx: self.tx,
            node: self.node,
            audit_seq,
            block,
        }
    }
}

/// An attested instance's app keys: verified RA-TLS client evidence, decided at the finalized
/// block, logged before the answer.
#[utoipa::path(post, path = "/v1/keys", tag = "attested",
    request_body = KeysRequest,
    responses((status = 200, body = KeysResponse),
        (status = 400, description = "malformed request, wrong chain, paths", body = covenant_kms_api::ErrorBody),
        (status = 401, description = "evidence refused", body = covenant_kms_api::ErrorBody),
        (status = 403, description = "the chain's reason, or this node may not serve", body = covenant_kms_api::ErrorBody),
        (status = 503, description = "stale chain view, chain or audit log unavailable", body = covenant_kms_api::ErrorBody)))]
pub(super) async fn keys(
    AxState(state): AxState<Shared>,
    Extension(peer): Extension<Arc<Peer>>,
    body: Body,
) -> Response {
    let req = match Attested::<KeysRequest>::begin(&state, &peer, body).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    let outcome = release_keys(&state, &req).await;
    req.finish(&state, outcome).await
}

async fn release_keys(
    state: &Shared,
    req: &Attested<KeysRequest>,
) -> Result<Released<AppKeys>, Refusal> {
    let grant = state.decider.decide_app(&req.evidence).await?;
    let block = *grant.block();
    // An app's first grant derives its app-wide keys (elliptic-curve work: a blocking thread);
    // every other grant only hashes, here, without the thread hand-off.
    if let Some(keys) = state.keyring.app_keys_if_cheap(&grant, &req.request.paths) {
        return Ok(Released {
            block,
            release: keys,
        });
    }
    let (keyring, paths) = (state.keyring.clone(), req.request.paths.clone());
    let derived = tokio::task::spawn_blocking(move || keyring.app_keys(&grant, &paths)).await;
    match derived {
        Ok(Ok(keys)) => Ok(Released {
            block,
            release: keys,
        }),
        Ok(Err(e)) => Err(Refusal::internal("key derivation failed", &e).at(block)),
        Err(e) => Err(Refusal::internal("key derivation failed", &e).at(block)),
    }
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

/// A TLS certificate for an attested instance's app, issued by its app CA.
#[utoipa::path(post, path = "/v1/certificates", tag = "attested",
    request_body = CertificateRequest,
    responses((status = 200, body = CertificateResponse),
        (status = 400, body = covenant_kms_api::ErrorBody), (status = 401, body = covenant_kms_api::ErrorBody),
        (status = 403, body = covenant_kms_api::ErrorBody), (status = 503, body = covenant_kms_api::ErrorBody)))]
pub(super) async fn certificates(
    AxState(state): AxState<Shared>,
    Extension(peer): Extension<Arc<Peer>>,
    body: Body,
) -> Response {
    let req = match Attested::<CertificateRequest>::begin(&state, &peer, body).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    let outcome = issue_certificate(&state, &req).await;
    req.finish(&state, outcome).await
}

async fn issue_certificate(
    state: &Shared,
    req: &Attested<CertificateRequest>,
) -> Result<Released<IssuedCertificate>, Refusal> {
    // Checked by `validate` before the evidence; decoded again here.
    let der = csr_der(&req.request.csr).map_err(Refusal::bad_request)?;
    let grant = state.decider.decide_app(&req.evidence).await?;
    let block = *grant.block();
    let (app, generation) = (grant.boot().appId, grant.boot().keyGeneration);
    let keyring = state.keyring.clone();
    let now = i64::try_from(state.clock.now_secs()).unwrap_or(i64::MAX);
    let usage = req.request.usage;
    let signed =
        tokio::task::spawn_blocking(move || keyring.certificate(&grant, &der, usage, now)).await;
    match signed {
        Ok(Ok(chain)) => Ok(Released {
            block,
            release: IssuedCertificate {
                chain,
                app,
                generation,
            },
        }),
        Ok(Err(reason)) => Err(Refusal::bad_request(reason).at(block)),
        Err(e) => Err(Refusal::internal("certificate signing failed", &e).at(block)),
    }
}

/// The root secret, for an attested KMS node the chain allows; its onboarding is recorded on
/// chain first.
#[utoipa::path(post, path = "/v1/replicate", tag = "attested",
    request_body = ReplicateRequest,
    responses((status = 200, body = ReplicateResponse),
        (status = 400, body = covenant_kms_api::ErrorBody), (status = 401, body = covenant_kms_api::ErrorBody),
        (status = 403, body = covenant_kms_api::ErrorBody), (status = 503, body = covenant_kms_api::ErrorBody)))]
pub(super) async fn replicate(
    AxState(state): AxState<Shared>,
    Extension(peer): Extension<Arc<Peer>>,
    body: Body,
) -> Response {
    let req = match Attested::<ReplicateRequest>::begin(&state, &peer, body).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    let outcome = hand_over_root(&state, &req).await;
    req.finish(&state, outcome).await
}

async fn hand_over_root(
    state: &Shared,
    req: &Attested<ReplicateRequest>,
) -> Result<Released<RootHandover>, Refusal> {
    let grant = state.decider.decide_replica(&req.evidence).await?;
    let block = *grant.block();
    let node = grant.node();
    // Record the onboarding on chain before handing anything over.
    let onboard = KmsRegistry::onboardKmsNodeCall {
        node,
        mrAggregated: grant.boot().mrAggregated,
        deviceId: grant.boot().deviceId,
    };
    let registry = state.decider.view().registry();
    let tx = state.sender.send(registry, &onboard).await.map_err(|e| {
        Refusal::unavailable("the onboarding could not be recorded on chain", &e).at(block)
    })?;
    tracing::info!(target: "kms::replication", %node, %tx, "onboarding recorded on chain");
    let secret = Secret::new(hex::encode(state.keyring.root_secret_for(&grant).expose()));
    Ok(Released {
        block,
        release: RootHandover { secret, tx, node },
    })
}
