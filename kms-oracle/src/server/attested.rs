//! The one audited path of every attested endpoint (`/v1/keys`, `/v1/certificates`,
//! `/v1/replicate`): [`Attested::begin`] verifies the client's RA-TLS evidence — a client whose
//! evidence does not verify is unauthenticated, refused without an audit entry (metrics and a
//! rate-limited log line only) — then reads the body within the limits, parses the typed
//! request and checks its chain id and its own limits; the endpoint then decides and prepares
//! what it releases; [`Attested::finish`] logs the outcome — grant or refusal — and answers only
//! after the audit row is committed. A grant whose row cannot be written, or made while the
//! oldest entry not committed on chain is past its bound, is answered 503 and releases nothing.

use std::sync::Arc;

use axum::{
    Json,
    body::{Body, Bytes},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use covenant_attest::VerifiedEvidence;
use covenant_kms_api::{BlockRef, ErrorBody};
use covenant_mirror::Finalized;
use serde::{Serialize, de::DeserializeOwned};

use super::{Peer, State, refusal::Refusal};
use crate::audit::{Action, Draft};

/// A request type of an attested endpoint.
pub(super) trait AttestedRequest: DeserializeOwned + Default {
    /// What the audit log calls it.
    const ACTION: Action;
    /// The chain the client expects.
    fn chain_id(&self) -> Option<u64>;
    /// The request's own limits.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

/// What an endpoint releases once its decision is logged.
pub(super) trait Release {
    /// The response.
    type Response: Serialize;
    /// The response, naming the grant's audit entry and block.
    fn respond(self, audit_seq: u64, block: BlockRef) -> Self::Response;
}

/// A decided release at a block.
pub(super) struct Released<R> {
    pub block: Finalized,
    pub release: R,
}

/// A verified attested request, on its way to being decided and logged.
pub(super) struct Attested<Req> {
    pub request: Req,
    pub evidence: Arc<VerifiedEvidence>,
    draft: Draft,
    started: tokio::time::Instant,
}

pub(super) fn block_ref(b: &Finalized) -> BlockRef {
    BlockRef {
        number: b.number,
        hash: b.hash,
        timestamp: b.timestamp,
    }
}

/// Reads a body within the size and time limits.
async fn read_body(state: &State, body: Body) -> Result<Bytes, Refusal> {
    let limit = state.limits.max_body;
    let timeout = state.limits.request_timeout;
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Err(_) => Err(Refusal::request(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "request body not received within {} ms",
                timeout.as_millis()
            ),
        )),
        Ok(Err(e)) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            Err(if too_large {
                Refusal::request(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body larger than {limit} bytes"),
                )
            } else {
                Refusal::bad_request(format!("request body unreadable: {e}"))
            })
        }
        Ok(Ok(bytes)) => Ok(bytes),
    }
}

fn parse<T: DeserializeOwned + Default>(bytes: &Bytes) -> Result<T, Refusal> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes)
        .map_err(|e| Refusal::bad_request(format!("malformed request: {e}")))
}

impl<Req: AttestedRequest> Attested<Req> {
    /// Everything before the decision. A refusal here is answered at once; it is logged in the
    /// audit log only once the client is authenticated (its evidence verified).
    pub(super) async fn begin(state: &State, peer: &Peer, body: Body) -> Result<Self, Response> {
        let evidence = match peer.evidence(state).await {
            Ok(e) => e,
            Err(refusal) => {
                state
                    .metrics
                    .refusals
                    .with_label_values(&[refusal.stage.as_str()])
                    .inc();
                super::unauthenticated(state, refusal.stage.as_str(), &refusal.reason);
                return Err(refusal.into_response());
            }
        };
        let mut draft = Draft::refusal(Req::ACTION, state.clock.now_ms(), "");
        draft.evidence_digest = peer.digest;
        let runtime = evidence.runtime();
        draft.app_id = Some(alloy::primitives::Address::from(*runtime.app_id.as_bytes()));
        draft.instance_id = Some(alloy::primitives::FixedBytes(
            *runtime.instance_id.as_bytes(),
        ));
        draft.compose_hash = Some(alloy::primitives::B256::from(
            *runtime.compose_hash.as_bytes(),
        ));
        let request = match Self::checked_request(state, body).await {
            Ok(r) => r,
            Err(refusal) => return Err(finish_refused(state, draft, refusal).await),
        };
        Ok(Self {
            request,
            evidence,
            draft,
            started: tokio::time::Instant::now(),
        })
    }

    async fn checked_request(state: &State, body: Body) -> Result<Req, Refusal> {
        let bytes = read_body(state, body).await?;
        let request: Req = parse(&bytes)?;
        let ours = state.decider.view().deployment().chain_id;
        if let Some(id) = request.chain_id()
            && id != ours
        {
            return Err(Refusal::bad_request(format!(
                "wrong chain id: this KMS serves chain {ours}, the request is for chain {id}"
            )));
        }
        request.validate().map_err(Refusal::bad_request)?;
        Ok(request)
    }

    /// Logs the outcome and answers.
    pub(super) async fn finish<R: Release>(
        self,
        state: &State,
        outcome: Result<Released<R>, Refusal>,
    ) -> Response {
        let mut draft = self.draft;
        let released = match outcome {
            Ok(r) => r,
            Err(refusal) => return finish_refused(state, draft, refusal).await,
        };
        if let Some(refusal) = uncommitted_too_long(state) {
            return finish_refused(state, draft, refusal.at(released.block)).await;
        }
        let action = draft.action;
        draft.granted = true;
        draft.reason.clear();
        draft.block = Some((released.block.number, released.block.hash));
        let seq = match state.audit.append(draft).await {
            Ok(seq) => seq,
            Err(e) => {
                tracing::error!(target: "kms::audit", error = %e, "grant not logged: refusing");
                state
                    .metrics
                    .refusals
                    .with_label_values(&["unavailable"])
                    .inc();
                let body = ErrorBody {
                    error: "the audit log is unavailable; nothing was released".into(),
                    audit_seq: None,
                };
                return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
            }
        };
        state
            .metrics
            .decision_seconds
            .observe(self.started.elapsed().as_secs_f64());
        state
            .metrics
            .decisions
            .with_label_values(&[action.as_str(), "granted"])
            .inc();
        let body = released.release.respond(seq, block_ref(&released.block));
        (StatusCode::OK, Json(body)).into_response()
    }
}

/// A refusal while the oldest audit entry not committed on chain is older than the bound: a
/// grant is only worth its audit entry once that entry can be proven on chain.
fn uncommitted_too_long(state: &State) -> Option<Refusal> {
    let age_ms = state
        .audit
        .ledger()
        .oldest_pending_age_ms(state.clock.now_ms())
        .unwrap_or(0);
    state
        .metrics
        .audit_pending_age_seconds
        .set((age_ms / 1000) as i64);
    let bound = state.limits.max_uncommitted_age;
    (u128::from(age_ms) > bound.as_millis()).then(|| {
        Refusal::unavailable(
            format!(
                "the audit log has entries not committed on chain for {} s (bound {} s); nothing is released until they are",
                age_ms / 1000,
                bound.as_secs()
            ),
            &"audit commits are behind",
        )
    })
}

/// Logs a refusal and answers it (503 if it cannot be logged).
async fn finish_refused(state: &State, mut draft: Draft, mut refusal: Refusal) -> Response {
    draft.granted = false;
    draft.reason = refusal.reason.clone();
    draft.block = refusal.block.map(|b| (b.number, b.hash));
    state
        .metrics
        .decisions
        .with_label_values(&[draft.action.as_str(), "denied"])
        .inc();
    state
        .metrics
        .refusals
        .with_label_values(&[refusal.stage.as_str()])
        .inc();
    tracing::info!(target: "kms::decision", action = draft.action.as_str(), app = ?draft.app_id, reason = %refusal.reason, "refused");
    match state.audit.append(draft).await {
        Ok(seq) => {
            refusal.audit_seq = Some(seq);
            refusal.into_response()
        }
        Err(e) => {
            tracing::error!(target: "kms::audit", error = %e, "refusal not logged");
            let body = ErrorBody {
                error: format!("{} (and the audit log is unavailable)", refusal.reason),
                audit_seq: None,
            };
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}
