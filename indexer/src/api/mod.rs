//! The REST API (JSON, described by the OpenAPI document at `/openapi.json`), the change feed
//! (`/v1/feed`, server-sent events), `/metrics` and `/healthz`. Every read is "as of" the
//! mirror's finalized block, which each response names; nothing unfinalized is served.

mod feed;
mod routes;

use std::{sync::Arc, time::Duration};

use axum::{
    Json, Router,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use covenant_chain::Deployment;
use serde_json::json;
use sqlx::PgPool;
use tokio::sync::watch;

use covenant_mirror::read::View;

use crate::{health::Health, source::Rpc};

pub use feed::watch_finalized;

/// The OpenAPI document of this API.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The mirror.
    pub pool: PgPool,
    /// For `eth_call`s at the finalized block (policies the mirror does not model).
    pub rpc: Rpc,
    /// The deployment mirrored.
    pub deployment: Arc<Deployment>,
    /// The sync loop's health.
    pub health: Arc<Health>,
    /// How long without a successful sync makes `/healthz` fail.
    pub stale_after: Duration,
    /// The metrics registry served at `/metrics`.
    pub registry: prometheus::Registry,
    /// The finalized block, as announced over `LISTEN/NOTIFY`.
    pub finalized: watch::Receiver<u64>,
}

/// The router.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(routes::healthz))
        .route("/metrics", get(routes::metrics))
        .route("/openapi.json", get(routes::openapi))
        .route("/v1/head", get(routes::head))
        .route("/v1/registry", get(routes::registry))
        .route("/v1/apps", get(routes::apps))
        .route("/v1/apps/{address}", get(routes::app))
        .route("/v1/os-images", get(routes::os_images))
        .route("/v1/kms-nodes", get(routes::kms_nodes))
        .route("/v1/domains", get(routes::domains))
        .route("/v1/domains/{domain}", get(routes::domain))
        .route("/v1/proposals", get(routes::proposals))
        .route("/v1/proposals/{id}", get(routes::proposal))
        .route("/v1/grant-log", get(routes::grant_log))
        .route("/v1/policy/app", post(routes::policy_app))
        .route("/v1/policy/kms", post(routes::policy_kms))
        .route("/v1/feed", get(feed::feed))
        .fallback(|| async { ApiError::NotFound("no such endpoint; see /openapi.json".into()) })
        .with_state(state)
}

/// Why a request failed. Internal details are logged, not returned.
#[derive(Debug)]
pub enum ApiError {
    /// 400: the request is malformed.
    BadRequest(String),
    /// 404: no such thing at the finalized block.
    NotFound(String),
    /// 503: the mirror cannot answer now (not synced, database down).
    Unavailable(String),
    /// 500.
    Internal(String),
}

impl From<crate::Error> for ApiError {
    fn from(e: crate::Error) -> Self {
        match e {
            crate::Error::Db(db) | crate::Error::Mirror(covenant_mirror::Error::Db(db)) => {
                tracing::warn!(target: "indexer::api", error = %db, "database error");
                Self::Unavailable("database unavailable".into())
            }
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<covenant_mirror::Error> for ApiError {
    fn from(e: covenant_mirror::Error) -> Self {
        crate::Error::Mirror(e).into()
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        crate::Error::Db(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            Self::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            Self::NotFound(m) => (StatusCode::NOT_FOUND, m),
            Self::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m),
            Self::Internal(m) => {
                tracing::error!(target: "indexer::api", error = %m, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error".to_owned(),
                )
            }
        };
        (status, Json(json!({ "error": message }))).into_response()
    }
}

/// The finalized view every read is made at.
pub(crate) async fn finalized_view(
    pool: &PgPool,
) -> Result<(View, u64, alloy::primitives::B256), ApiError> {
    let mut conn = pool.acquire().await?;
    let view = covenant_mirror::read::view(&mut conn)
        .await?
        .ok_or_else(|| ApiError::Unavailable("mirror not initialised".into()))?;
    let hash = view
        .finalized_hash
        .ok_or_else(|| ApiError::Unavailable("no finalized block indexed yet".into()))?;
    let number = view.finalized;
    Ok((view, number, hash))
}
