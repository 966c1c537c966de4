//! `GET /v1/audit/{seq}`: a logged decision, its canonical leaf and, once committed on chain, the
//! commitment covering it with an RFC 6962 inclusion proof.

use std::sync::Arc;

use alloy::primitives::{Address, B256, Bytes};
use axum::{
    Json,
    extract::{Path, Query, State as AxState},
};
use covenant_kms_api::{AppAudit, AuditEntryResponse, Commitment};

use super::{State, refusal::Refusal};
use crate::{audit::merkle, store};

type Shared = Arc<State>;

/// A logged decision, its canonical leaf and, once committed on chain, the commitment with an
/// inclusion proof.
#[utoipa::path(get, path = "/v1/audit/{seq}", tag = "audit",
    params(("seq" = u64, Path, description = "the entry's sequence number")),
    responses((status = 200, body = AuditEntryResponse), (status = 400, body = covenant_kms_api::ErrorBody),
        (status = 404, body = covenant_kms_api::ErrorBody), (status = 503, body = covenant_kms_api::ErrorBody)))]
pub(super) async fn audit_entry(
    AxState(state): AxState<Shared>,
    Path(seq): Path<String>,
) -> Result<Json<AuditEntryResponse>, Refusal> {
    let seq = seq
        .parse::<u64>()
        .map_err(|_| Refusal::bad_request("the sequence number must be a positive integer"))?;
    let node = state.decider.own().node;
    let read = async {
        let mut c = state.audit_pool.acquire().await?;
        let Some(entry) = store::audit::entry_at(&mut c, node, seq).await? else {
            return Ok::<_, crate::Error>(None);
        };
        let commitment = match store::audit::commit_covering(&mut c, node, seq).await? {
            Some(commit) => {
                let batch =
                    store::audit::entries(&mut c, node, commit.from_seq, commit.to_seq).await?;
                let leaves: Vec<merkle::Hash> = batch.iter().map(|e| e.leaf_hash()).collect();
                let index = seq - commit.from_seq;
                let path = usize::try_from(index)
                    .ok()
                    .and_then(|i| merkle::inclusion_proof(&leaves, i))
                    .unwrap_or_default();
                Some(Commitment {
                    from_seq: commit.from_seq,
                    to_seq: commit.to_seq,
                    root: commit.root,
                    tx_hash: commit.tx_hash,
                    index,
                    tree_size: leaves.len() as u64,
                    path: path.into_iter().map(B256::from).collect(),
                })
            }
            None => None,
        };
        Ok(Some((entry, commitment)))
    };
    match read.await {
        Ok(Some((entry, commitment))) => Ok(Json(AuditEntryResponse {
            entry: entry.wire(),
            leaf: Bytes::from(entry.leaf_bytes()),
            leaf_hash: B256::from(entry.leaf_hash()),
            commitment,
        })),
        Ok(None) => Err(Refusal::not_found(format!("no audit entry {seq}"))),
        Err(e) => Err(Refusal::unavailable("audit log unavailable", &e)),
    }
}

/// The most entries one `GET /v1/audit?app=…` lists.
pub(super) const MAX_LISTED: u32 = 100;

/// The query of `GET /v1/audit`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct AppQuery {
    /// The app (its address).
    app: String,
    /// List entries with a sequence number below this (default: from the newest).
    before: Option<u64>,
    /// At most this many (default and maximum 100).
    limit: Option<u32>,
}

/// An app's decisions by this node, newest first; each is provable with `GET /v1/audit/{seq}`.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AppQuery),
    responses((status = 200, body = AppAudit), (status = 400, body = covenant_kms_api::ErrorBody),
        (status = 503, body = covenant_kms_api::ErrorBody)))]
pub(super) async fn app_audit(
    AxState(state): AxState<Shared>,
    Query(query): Query<AppQuery>,
) -> Result<Json<AppAudit>, Refusal> {
    let app: Address = query
        .app
        .parse()
        .map_err(|_| Refusal::bad_request("app must be an address (0x and 40 hex digits)"))?;
    let limit = query.limit.unwrap_or(MAX_LISTED).clamp(1, MAX_LISTED);
    let before = query.before.unwrap_or(u64::MAX);
    let node = state.decider.own().node;
    let read = async {
        let mut c = state.audit_pool.acquire().await?;
        store::audit::entries_of_app(&mut c, node, app, before, limit).await
    };
    let entries = read
        .await
        .map_err(|e| Refusal::unavailable("audit log unavailable", &e))?;
    let next_before = (entries.len() == limit as usize)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    Ok(Json(AppAudit {
        app,
        entries: entries.iter().map(|e| e.wire()).collect(),
        next_before,
    }))
}
