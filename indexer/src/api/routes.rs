//! REST handlers. Each reads at the finalized block and names it in `block`.

use std::{collections::BTreeMap, str::FromStr};

use alloy::{
    primitives::{Address, B256, U256, keccak256},
    sol_types::SolCall,
};
use axum::{
    Json,
    extract::{Path, Query, State, rejection::JsonRejection},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use covenant_chain::kms_registry::KmsRegistry;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiState, finalized_view};
use covenant_mirror::{
    facts,
    read::{self, MemberRow},
    rules::{self, BootInfoJson},
};

use crate::{governance, health::Status};

type ApiResult = Result<Json<Value>, ApiError>;

fn parse_address(s: &str) -> Result<Address, ApiError> {
    let ok = s.len() == 42 && s.starts_with("0x") && s[2..].bytes().all(|b| b.is_ascii_hexdigit());
    if !ok {
        return Err(ApiError::BadRequest(format!(
            "malformed address `{s}`: expected 0x followed by 40 hex digits"
        )));
    }
    Address::from_str(s).map_err(|e| ApiError::BadRequest(format!("malformed address `{s}`: {e}")))
}

fn block_json(number: u64, hash: B256) -> Value {
    json!({ "number": number, "hash": hash.to_string() })
}

fn hex32(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

fn address_of(bytes: &[u8]) -> String {
    if bytes.len() == 20 {
        Address::from_slice(bytes).to_checksum(None)
    } else {
        hex32(bytes)
    }
}

fn camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut up = false;
    for c in name.chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn settings_json(settings: BTreeMap<String, Value>) -> Value {
    Value::Object(settings.into_iter().map(|(k, v)| (camel(&k), v)).collect())
}

fn with_member(row: &MemberRow, key: &str, value: String) -> Value {
    let mut v = match &row.data {
        Value::Object(m) => Value::Object(m.clone()),
        _ => json!({}),
    };
    v[key] = json!(value);
    v["addedBlock"] = json!(row.from_block);
    if let Some(to) = row.to_block {
        v["removedBlock"] = json!(to);
    }
    v
}

pub(super) async fn healthz(State(s): State<ApiState>) -> Response {
    let status = s.health.status(s.stale_after);
    let db = match s.pool.acquire().await {
        Ok(mut c) => read::view(&mut c)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match (status, db) {
        (Status::Healthy, Ok(())) => {
            (StatusCode::OK, Json(json!({ "status": "ok" }))).into_response()
        }
        (Status::Unhealthy(why), _) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unhealthy", "reason": why })),
        )
            .into_response(),
        (_, Err(why)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unhealthy", "reason": format!("database: {why}") })),
        )
            .into_response(),
    }
}

pub(super) async fn metrics(State(s): State<ApiState>) -> Response {
    let mut out = String::new();
    match prometheus::TextEncoder::new().encode_utf8(&s.registry.gather(), &mut out) {
        Ok(()) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response(),
        Err(e) => ApiError::Internal(e.to_string()).into_response(),
    }
}

pub(super) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], super::OPENAPI).into_response()
}

pub(super) async fn head(State(s): State<ApiState>) -> ApiResult {
    let (view, f, hash) = finalized_view(&s.pool).await?;
    Ok(Json(json!({
        "chainId": view.chain_id,
        "head": view.head,
        "indexed": { "number": view.indexed, "hash": view.indexed_hash.map(|h| h.to_string()) },
        "finalized": { "number": f, "hash": hash.to_string(), "timestamp": view.finalized_timestamp },
        "lagBlocks": view.head.saturating_sub(f),
    })))
}

pub(super) async fn registry(State(s): State<ApiState>) -> ApiResult {
    let (_, f, hash) = finalized_view(&s.pool).await?;
    let mut c = s.pool.acquire().await?;
    let reg = s.deployment.contracts.kms_registry;
    let settings = read::settings_at(&mut c, reg.as_slice(), f).await?;
    let roots = read::members_at(&mut c, "root_keys", Some(reg.as_slice()), f).await?;
    let domain_settings =
        read::settings_at(&mut c, s.deployment.contracts.domain_registry.as_slice(), f).await?;
    Ok(Json(json!({
        "block": block_json(f, hash),
        "kmsRegistry": reg.to_checksum(None),
        "settings": settings_json(settings),
        "rootKeys": roots.iter().map(|r| with_member(r, "key", hex32(&r.member))).collect::<Vec<_>>(),
        "domainRegistry": {
            "address": s.deployment.contracts.domain_registry.to_checksum(None),
            "settings": settings_json(domain_settings),
        },
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Page {
    offset: Option<usize>,
    limit: Option<usize>,
}

/// Apps per page by default, and at most (app creation is permissionless: the list can be long).
const APPS_PAGE: usize = 100;
const APPS_PAGE_MAX: usize = 1000;

pub(super) async fn apps(
    State(s): State<ApiState>,
    q: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let Query(page) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = page.limit.unwrap_or(APPS_PAGE);
    if limit == 0 || limit > APPS_PAGE_MAX {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {APPS_PAGE_MAX}"
        )));
    }
    let offset = page.offset.unwrap_or(0);
    let (_, f, hash) = finalized_view(&s.pool).await?;
    let mut c = s.pool.acquire().await?;
    let reg = s.deployment.contracts.kms_registry;
    let rows = read::members_at(&mut c, "app", Some(reg.as_slice()), f).await?;
    let total = rows.len();
    let mut apps = Vec::with_capacity(limit.min(total));
    for r in rows.iter().skip(offset).take(limit) {
        let settings = read::settings_at(&mut c, &r.member, f).await?;
        let mut v = with_member(r, "address", address_of(&r.member));
        v["settings"] = settings_json(settings);
        apps.push(v);
    }
    Ok(Json(
        json!({ "block": block_json(f, hash), "total": total, "offset": offset, "apps": apps }),
    ))
}

pub(super) async fn app(State(s): State<ApiState>, Path(address): Path<String>) -> ApiResult {
    let app = parse_address(&address)?;
    let (_, f, hash) = finalized_view(&s.pool).await?;
    let mut c = s.pool.acquire().await?;
    let reg = s.deployment.contracts.kms_registry;
    let registration =
        read::member_history(&mut c, "app", reg.as_slice(), Some(app.as_slice()), f).await?;
    let Some(last) = registration.last() else {
        return Err(ApiError::NotFound(format!(
            "no app {} at block {f}",
            app.to_checksum(None)
        )));
    };
    let settings = read::settings_at(&mut c, app.as_slice(), f).await?;
    let hashes = read::members_at(&mut c, "compose_hash", Some(app.as_slice()), f).await?;
    let history = read::member_history(&mut c, "compose_hash", app.as_slice(), None, f).await?;
    let devices = read::members_at(&mut c, "device", Some(app.as_slice()), f).await?;
    let domains: Vec<Value> = read::members_at(&mut c, "domain", None, f)
        .await?
        .into_iter()
        .filter(|d| {
            d.data["app"]
                .as_str()
                .and_then(|a| Address::from_str(a).ok())
                == Some(app)
        })
        .filter_map(|d| {
            d.data["domain"]
                .as_str()
                .map(str::to_owned)
                .map(Value::String)
        })
        .collect();
    Ok(Json(json!({
        "block": block_json(f, hash),
        "address": app.to_checksum(None),
        "registered": last.to_block.is_none(),
        "registration": with_member(last, "address", app.to_checksum(None)),
        "settings": settings_json(settings),
        "composeHashes": hashes.iter().map(|r| with_member(r, "composeHash", hex32(&r.member))).collect::<Vec<_>>(),
        "composeHashHistory": history.iter().map(|r| with_member(r, "composeHash", hex32(&r.member))).collect::<Vec<_>>(),
        "devices": devices.iter().map(|r| with_member(r, "deviceId", hex32(&r.member))).collect::<Vec<_>>(),
        "domains": domains,
    })))
}

pub(super) async fn os_images(State(s): State<ApiState>) -> ApiResult {
    let (_, f, hash) = finalized_view(&s.pool).await?;
    let mut c = s.pool.acquire().await?;
    let reg = s.deployment.contracts.kms_registry;
    let rows = read::members_at(&mut c, "os_image", Some(reg.as_slice()), f).await?;
    Ok(Json(json!({
        "block": block_json(f, hash),
        "osImages": rows.iter().map(|r| with_member(r, "osImageHash", hex32(&r.member))).collect::<Vec<_>>(),
    })))
}

pub(super) async fn kms_nodes(State(s): State<ApiState>) -> ApiResult {
    let (_, f, hash) = finalized_view(&s.pool).await?;
    let mut c = s.pool.acquire().await?;
    let reg = s.deployment.contracts.kms_registry;
    let scope = Some(reg.as_slice());
    let nodes = read::members_at(&mut c, "kms_node", scope, f).await?;
    let measurements = read::members_at(&mut c, "kms_measurement", scope, f).await?;
    let devices = read::members_at(&mut c, "kms_device", scope, f).await?;
    let m: Vec<String> = measurements.iter().map(|r| hex32(&r.member)).collect();
    let d: Vec<String> = devices.iter().map(|r| hex32(&r.member)).collect();
    let nodes: Vec<Value> = nodes
        .iter()
        .map(|r| {
            let mut v = with_member(r, "node", address_of(&r.member));
            let serving = r.data["mrAggregated"]
                .as_str()
                .is_some_and(|x| m.iter().any(|y| y == x))
                && r.data["deviceId"]
                    .as_str()
                    .is_some_and(|x| d.iter().any(|y| y == x));
            v["serving"] = json!(serving);
            v
        })
        .collect();
    Ok(Json(json!({
        "block": block_json(f, hash),
        "nodes": nodes,
        "allowedMeasurements": m,
        "allowedDevices": d,
    })))
}

pub(super) async fn domains(State(s): State<ApiState>) -> ApiResult {
    let (_, f, hash) = finalized_view(&s.pool).await?;
    let mut c = s.pool.acquire().await?;
    let dr = s.deployment.contracts.domain_registry;
    let rows = read::members_at(&mut c, "domain", Some(dr.as_slice()), f).await?;
    Ok(Json(json!({
        "block": block_json(f, hash),
        "domains": rows.iter().map(|r| with_member(r, "domainHash", hex32(&r.member))).collect::<Vec<_>>(),
    })))
}

pub(super) async fn domain(State(s): State<ApiState>, Path(domain): Path<String>) -> ApiResult {
    if domain.is_empty()
        || domain.len() > 253
        || !domain
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return Err(ApiError::BadRequest(format!(
            "malformed domain `{domain}`: expected a lowercase DNS name"
        )));
    }
    let (_, f, hash) = finalized_view(&s.pool).await?;
    let mut c = s.pool.acquire().await?;
    let key = keccak256(domain.as_bytes());
    let row = read::member_at(&mut c, "domain", key.as_slice(), f)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!("domain `{domain}` is not bound at block {f}"))
        })?;
    let mut v = with_member(&row, "domainHash", key.to_string());
    v["block"] = block_json(f, hash);
    Ok(Json(v))
}

fn proposal_json(p: &read::ProposalRow, facts: &read::ProposalFacts, now: u64) -> Value {
    let state = governance::state(p, facts, now);
    json!({
        "id": p.id,
        "proposer": p.proposer.to_checksum(None),
        "state": state,
        "stateCode": state.as_u8(),
        "description": p.description,
        "actions": p.actions,
        "voteStart": p.vote_start,
        "voteEnd": p.vote_end,
        "eta": facts.queued_eta,
        "createdBlock": p.block,
        "timelockOperationId": p.timelock_id.to_string(),
        "tally": { "against": facts.tally[0], "for": facts.tally[1], "abstain": facts.tally[2] },
        "quorum": governance::quorum(facts).to_string(),
    })
}

pub(super) async fn proposals(State(s): State<ApiState>) -> ApiResult {
    let (view, f, hash) = finalized_view(&s.pool).await?;
    let now = view.finalized_timestamp.unwrap_or(0);
    let mut c = s.pool.acquire().await?;
    let rows = read::proposals_at(&mut c, f).await?;
    let mut out = Vec::with_capacity(rows.len());
    for p in &rows {
        let facts = read::proposal_facts(&mut c, p, f).await?;
        out.push(proposal_json(p, &facts, now));
    }
    Ok(Json(
        json!({ "block": block_json(f, hash), "timestamp": now, "proposals": out }),
    ))
}

pub(super) async fn proposal(State(s): State<ApiState>, Path(id): Path<String>) -> ApiResult {
    // Digits only (no sign, no 0x), within uint256; normalised so `007` is proposal 7.
    let id = Some(&id)
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|id| U256::from_str_radix(id, 10).ok())
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "malformed proposal id `{id}`: expected a decimal uint256"
            ))
        })?
        .to_string();
    let (view, f, hash) = finalized_view(&s.pool).await?;
    let now = view.finalized_timestamp.unwrap_or(0);
    let mut c = s.pool.acquire().await?;
    let p = read::proposal_at(&mut c, &id, f)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no proposal {id} at block {f}")))?;
    let facts = read::proposal_facts(&mut c, &p, f).await?;
    let votes = read::votes_at(&mut c, &id, f).await?;
    let mut v = proposal_json(&p, &facts, now);
    v["block"] = block_json(f, hash);
    v["timestamp"] = json!(now);
    v["votes"] = Value::Array(
        votes
            .iter()
            .map(|v| {
                let support = ["against", "for", "abstain"]
                    .get(v.support as usize)
                    .copied()
                    .unwrap_or("unknown");
                json!({
                    "voter": v.voter.to_checksum(None),
                    "support": support,
                    "weight": v.weight,
                    "reason": v.reason,
                    "block": v.block,
                })
            })
            .collect(),
    );
    Ok(Json(v))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GrantLogQuery {
    node: Option<String>,
}

pub(super) async fn grant_log(
    State(s): State<ApiState>,
    q: Result<Query<GrantLogQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let node = q.node.as_deref().map(parse_address).transpose()?;
    let (_, f, hash) = finalized_view(&s.pool).await?;
    let mut c = s.pool.acquire().await?;
    let reg = s.deployment.contracts.kms_registry;
    let rows = read::members_at(&mut c, "grant_log", Some(reg.as_slice()), f).await?;
    let commits: Vec<Value> = rows
        .iter()
        .filter(|r| node.is_none_or(|n| r.member.get(..20) == Some(n.as_slice())))
        .map(|r| with_member(r, "key", hex32(&r.member)))
        .collect();
    Ok(Json(
        json!({ "block": block_json(f, hash), "commitments": commits }),
    ))
}

fn boot_from(
    body: Result<Json<BootInfoJson>, JsonRejection>,
) -> Result<covenant_chain::BootInfo, ApiError> {
    let Json(boot) =
        body.map_err(|e| ApiError::BadRequest(format!("malformed BootInfo: {}", e.body_text())))?;
    boot.to_boot_info().map_err(ApiError::BadRequest)
}

pub(super) async fn policy_app(
    State(s): State<ApiState>,
    body: Result<Json<BootInfoJson>, JsonRejection>,
) -> ApiResult {
    let boot = boot_from(body)?;
    let (_, f, hash) = finalized_view(&s.pool).await?;
    let mut c = s.pool.acquire().await?;
    let reg = s.deployment.contracts.kms_registry;
    let answer = facts::app_at(
        &mut c,
        reg,
        s.deployment.contracts.app_implementation,
        &boot,
        f,
    )
    .await?;
    drop(c);
    let (decision, source) = match answer.decision {
        Some(d) => (d, "mirror"),
        None => {
            let call = KmsRegistry::isAppAllowedCall { boot };
            let out = s
                .rpc
                .call_at(reg, call.abi_encode().into(), hash)
                .await
                .map_err(|e| {
                    tracing::warn!(target: "indexer::api", error = %e, "policy eth_call failed");
                    ApiError::Unavailable(
                        "the app's policy contract must be asked and the chain is unreachable"
                            .into(),
                    )
                })?;
            let ret = KmsRegistry::isAppAllowedCall::abi_decode_returns(&out).map_err(|e| {
                ApiError::Internal(format!("isAppAllowed returned undecodable data: {e}"))
            })?;
            (
                rules::Decision {
                    allowed: ret._0,
                    reason: ret._1,
                },
                "eth_call",
            )
        }
    };
    Ok(Json(json!({
        "block": block_json(f, hash),
        "allowed": decision.allowed,
        "reason": decision.reason,
        "decidedBy": source,
    })))
}

pub(super) async fn policy_kms(
    State(s): State<ApiState>,
    body: Result<Json<BootInfoJson>, JsonRejection>,
) -> ApiResult {
    let boot = boot_from(body)?;
    let (_, f, hash) = finalized_view(&s.pool).await?;
    let mut c = s.pool.acquire().await?;
    let decision = facts::kms_at(&mut c, s.deployment.contracts.kms_registry, &boot, f).await?;
    Ok(Json(json!({
        "block": block_json(f, hash),
        "allowed": decision.allowed,
        "reason": decision.reason,
        "decidedBy": "mirror",
    })))
}
