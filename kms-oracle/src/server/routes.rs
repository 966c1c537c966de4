//! The router, by kind of endpoint: attested ([`super::release`]: RA-TLS client evidence, one
//! audited path), public ([`super::public`]), audit proofs ([`super::proofs`]).

use std::sync::Arc;

use axum::{
    Router,
    routing::{get, post},
};

use super::{State, proofs, public, refusal::Refusal, release};

/// The router.
pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/v1/keys", post(release::keys))
        .route("/v1/certificates", post(release::certificates))
        .route("/v1/replicate", post(release::replicate))
        .route("/v1/apps/{app}/env-key", get(public::env_key))
        .route("/v1/metadata", get(public::metadata))
        .route("/healthz", get(public::healthz))
        .route("/metrics", get(public::metrics))
        .route("/v1/audit/{seq}", get(proofs::audit_entry))
        .fallback(|| async { Refusal::not_found("no such endpoint") })
        .with_state(state)
}
