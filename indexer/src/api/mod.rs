//! The REST API (JSON, described by the OpenAPI document at `/openapi.json`), the change feed
//! (`/v1/feed`, server-sent events), `/metrics` and `/healthz`. Every read is "as of" the
//! mirror's finalized block, which each response names; nothing unfinalized is served.

mod explorer;
mod feed;
mod routes;
mod schema;
mod serving;

use std::{sync::Arc, time::Duration};

use axum::{
    Json, Router,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use covenant_chain::Deployment;
use serde_json::json;
use sqlx::PgPool;
use tokio::sync::watch;
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use covenant_mirror::read::View;

use crate::{health::Health, source::Rpc};

pub use feed::watch_finalized;

/// The document's frame; its paths and schemas come from the handlers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Covenant indexer",
        description = "The finalized view of Covenant's registries and governance, read at the \
            mirror's finalized block (every answer names it), the policy checks, and a change feed. \
            Generated from the handlers and their response types."
    ),
    tags(
        (name = "mirror", description = "registries, apps, KMS nodes, domains, grant log"),
        (name = "governance", description = "proposals, their state and votes"),
        (name = "policy", description = "what the registry would decide"),
        (name = "service", description = "health, metrics, this document")
    )
)]
struct ApiDoc;

/// The routes, each registered with its description (`#[utoipa::path]`): one cannot exist
/// without the other.
fn documented() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(routes::healthz))
        .routes(routes!(routes::metrics))
        .routes(routes!(routes::openapi))
        .routes(routes!(routes::head))
        .routes(routes!(routes::registry))
        .routes(routes!(routes::apps))
        .routes(routes!(routes::app))
        .routes(routes!(serving::serving))
        .routes(routes!(routes::os_images))
        .routes(routes!(routes::kms_nodes))
        .routes(routes!(routes::domains))
        .routes(routes!(routes::domain))
        .routes(routes!(routes::proposals))
        .routes(routes!(routes::proposal))
        .routes(routes!(routes::grant_log))
        .routes(routes!(routes::policy_app))
        .routes(routes!(routes::policy_kms))
        .routes(routes!(feed::feed))
}

/// The OpenAPI 3.1 document of this API, generated from the handlers and their types.
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented().split_for_parts().1
}

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
    /// Where claimed domains' DNS is checked (none: not checked).
    pub dns: Option<Arc<covenant_dns::Records>>,
    /// The gateway whose routing the explorer shows (none: not shown).
    pub gateway: Option<Arc<crate::gateway::GatewayReader>>,
    /// The OpenAPI document served at `/openapi.json` (set by [`router`]).
    pub openapi: Arc<String>,
}

/// The router.
pub fn router(mut state: ApiState) -> Router {
    let (router, doc) = documented().split_for_parts();
    state.openapi = Arc::new(doc.to_pretty_json().unwrap_or_default());
    router
        .merge(explorer::routes())
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

impl ApiError {
    /// The status and the message a client gets (an internal error is logged, not told).
    fn status_and_message(self) -> (StatusCode, String) {
        match self {
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
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = self.status_and_message();
        (status, Json(json!({ "error": message }))).into_response()
    }
}

/// The timestamp of block `number` (a finalized block the page was read at).
pub(crate) async fn timestamp_at(s: &ApiState, number: u64) -> Result<u64, ApiError> {
    let mut c = s.pool.acquire().await?;
    covenant_mirror::read::block_timestamp(&mut c, number)
        .await?
        .ok_or_else(|| ApiError::Unavailable(format!("block {number}'s timestamp is not indexed")))
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
