//! The public endpoints: no client certificate, nothing secret. Who this node is and whether it
//! serves (`/v1/metadata`, `/healthz`), an app's env-encryption key signed by the root
//! (`/v1/apps/{app}/env-key`), and `/metrics`.

use std::{str::FromStr, sync::Arc};

use alloy::primitives::{Address, B256, Bytes};
use axum::{
    Json,
    extract::{Path, State as AxState},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use covenant_kms_api::{EnvKeyResponse, Health, Metadata, RootKeysInfo};

use super::{State, attested::block_ref, refusal::Refusal};
use crate::keys::pem;

type Shared = Arc<State>;

/// An app's env-encryption public key, signed by the KMS root, at the app's key generation.
#[utoipa::path(get, path = "/v1/apps/{app}/env-key", tag = "public",
    params(("app" = String, Path, description = "the app's address")),
    responses((status = 200, body = EnvKeyResponse), (status = 400, body = covenant_kms_api::ErrorBody),
        (status = 403, body = covenant_kms_api::ErrorBody), (status = 404, body = covenant_kms_api::ErrorBody),
        (status = 503, body = covenant_kms_api::ErrorBody)))]
pub(super) async fn env_key(
    AxState(state): AxState<Shared>,
    Path(app): Path<String>,
) -> Result<Json<EnvKeyResponse>, Refusal> {
    let app = Address::from_str(&app).map_err(|_| Refusal::bad_request("malformed app address"))?;
    let d = &state.decider;
    let block = d.current_block()?;
    let serving = d.serving_at(block).await?;
    let generation = d
        .app_key_generation(app, &block)
        .await
        .map_err(|e| Refusal::unavailable("cannot read the app's key generation", &e))?
        .ok_or_else(|| {
            Refusal::not_found(format!(
                "app {app} is not registered at block {}",
                block.number
            ))
        })?;
    let statement = state
        .keyring
        .env_key(&serving, app, generation)
        .map_err(|e| Refusal::internal("signing the env key failed", &e))?;
    Ok(Json(EnvKeyResponse {
        statement,
        block: block_ref(&block),
    }))
}

/// Who this node is, and whether (and with which root keys) it serves.
#[utoipa::path(get, path = "/v1/metadata", tag = "public", responses((status = 200, body = Metadata)))]
pub(super) async fn metadata(AxState(state): AxState<Shared>) -> Json<Metadata> {
    let d = &state.decider;
    let own = d.own();
    let deployment = d.view().deployment();
    let mut m = Metadata {
        chain_id: deployment.chain_id,
        kms_registry: deployment.contracts.kms_registry,
        node: own.node,
        mr_aggregated: own.boot().mrAggregated,
        device_id: B256::from(*own.evidence.device_id().as_bytes()),
        os_image_hash: B256::from(*own.evidence.runtime().os_image_hash.as_bytes()),
        block: None,
        serving: false,
        reason: None,
        root: None,
    };
    let serving = match d.current_block() {
        Ok(block) => {
            m.block = Some(block_ref(&block));
            d.serving_at(block).await
        }
        Err(deny) => Err(deny),
    };
    match serving {
        Ok(s) => {
            let roots = s.roots();
            m.serving = true;
            m.root = Some(RootKeysInfo {
                root_generation: roots.generation,
                root_signer: roots.signer_address,
                root_ca_public_key: Bytes::from(roots.ca_public_key.clone()),
                root_ca_certificate: pem(&roots.ca_certificate_der),
            });
        }
        Err(deny) => m.reason = Some(deny.reason),
    }
    Json(m)
}

/// 200 while the node serves, 503 with the reason otherwise.
#[utoipa::path(get, path = "/healthz", tag = "public",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub(super) async fn healthz(AxState(state): AxState<Shared>) -> (StatusCode, Json<Health>) {
    let d = &state.decider;
    let verdict = match d.current_block() {
        Ok(block) => d.serving_at(block).await.map(|s| *s.block()),
        Err(deny) => Err(deny),
    };
    match verdict {
        Ok(block) => (
            StatusCode::OK,
            Json(Health {
                status: "serving".into(),
                block: Some(block_ref(&block)),
                reason: None,
            }),
        ),
        Err(deny) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "not serving".into(),
                block: None,
                reason: Some(deny.reason),
            }),
        ),
    }
}

/// Prometheus metrics (docs/metrics.md).
#[utoipa::path(get, path = "/metrics", tag = "public",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
pub(super) async fn metrics(AxState(state): AxState<Shared>) -> Response {
    let mut out = String::new();
    let encoder = prometheus::TextEncoder::new();
    if let Err(e) = encoder.encode_utf8(&state.registry.gather(), &mut out) {
        return Refusal::internal("metrics could not be encoded", &e).into_response();
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
