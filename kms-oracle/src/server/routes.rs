//! The router, by kind of endpoint: attested ([`super::release`]: RA-TLS client evidence, one
//! audited path), public ([`super::public`]), audit proofs ([`super::proofs`]). Each is
//! registered with its `#[utoipa::path]`, and `/openapi.json` serves the document generated from
//! them and the `covenant-kms-api` types.

use std::sync::Arc;

use axum::{
    Router,
    http::header,
    response::{IntoResponse, Response},
    routing::get,
};
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{State, proofs, public, refusal::Refusal, release};

/// The document's frame; its paths and schemas come from the handlers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Covenant kms-oracle",
        description = "Attested key release governed by the chain. Attested endpoints need an RA-TLS \
            client certificate; every decision is logged, and the log's Merkle roots are committed \
            on chain. Generated from the handlers and the covenant-kms-api types."
    ),
    tags(
        (name = "attested", description = "RA-TLS client evidence, decided at the finalized block, logged"),
        (name = "public", description = "no client certificate, nothing secret"),
        (name = "audit", description = "the audit log and its on-chain commitments")
    )
)]
struct ApiDoc;

fn documented() -> OpenApiRouter<Arc<State>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(release::keys))
        .routes(routes!(release::certificates))
        .routes(routes!(release::replicate))
        .routes(routes!(public::env_key))
        .routes(routes!(public::metadata))
        .routes(routes!(public::healthz))
        .routes(routes!(public::metrics))
        .routes(routes!(proofs::audit_entry))
        .routes(routes!(proofs::app_audit))
}

/// The OpenAPI 3.1 document of the kms-oracle, generated from its handlers.
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented().split_for_parts().1
}

/// The router.
pub fn router(state: Arc<State>) -> Router {
    let (router, doc) = documented().split_for_parts();
    let doc = Arc::new(doc.to_pretty_json().unwrap_or_default());
    router
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { document(&doc) }
            }),
        )
        .fallback(|| async { Refusal::not_found("no such endpoint") })
        .with_state(state)
}

fn document(doc: &str) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], doc.to_owned()).into_response()
}
