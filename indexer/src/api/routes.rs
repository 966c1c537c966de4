//! REST handlers. Each reads at the finalized block and names it in `block`, answers with a
//! type of [`super::schema`], and is described by its `#[utoipa::path]`, from which the router
//! is built: a route cannot exist without its description.

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

use super::{
    ApiError, ApiState, finalized_view,
    schema::{
        AppDetail, AppSummary, Apps, Block, DomainClaims, DomainRegistry, Domains, ErrorBody,
        Fields, GrantLog, Guardian, Head, Health, KmsNode, KmsNodes, Member, OsImages,
        PolicyAnswer, Proposal, ProposalDetail, Proposals, Registry, Tally, Vote,
    },
};
use covenant_mirror::{
    facts,
    read::{self, MemberRow},
    rules::{self, BootInfoJson},
};

use crate::{governance, health::Status};

type ApiResult<T> = Result<Json<T>, ApiError>;

fn parse_address(s: &str) -> Result<Address, ApiError> {
    let ok = s.len() == 42 && s.starts_with("0x") && s[2..].bytes().all(|b| b.is_ascii_hexdigit());
    if !ok {
        return Err(ApiError::BadRequest(format!(
            "malformed address `{s}`: expected 0x followed by 40 hex digits"
        )));
    }
    Address::from_str(s).map_err(|e| ApiError::BadRequest(format!("malformed address `{s}`: {e}")))
}

fn block_json(number: u64, hash: B256) -> Block {
    Block {
        number,
        hash: hash.to_string(),
    }
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

fn settings_json(settings: BTreeMap<String, Value>) -> Fields {
    settings.into_iter().map(|(k, v)| (camel(&k), v)).collect()
}

/// Names the answers put next to a member's event fields: an event field of the same name is
/// dropped rather than sent twice.
const RESERVED: [&str; 5] = ["addedBlock", "removedBlock", "settings", "serving", "block"];

fn with_member(row: &MemberRow, key: &str, value: String) -> Member {
    let mut fields = match &row.data {
        Value::Object(m) => m.clone(),
        _ => Fields::new(),
    };
    for name in RESERVED {
        fields.remove(name);
    }
    fields.insert(key.to_owned(), Value::String(value));
    Member {
        fields,
        added_block: row.from_block,
        removed_block: row.to_block,
    }
}

/// Healthy while the sync loop succeeds and the database answers.
#[utoipa::path(get, path = "/healthz", tag = "service",
    responses((status = 200, body = Health), (status = 503, description = "unhealthy, with the reason", body = Health)))]
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
        (Status::Healthy, Ok(())) => (
            StatusCode::OK,
            Json(Health {
                status: "ok",
                reason: None,
            }),
        )
            .into_response(),
        (Status::Unhealthy(why), _) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "unhealthy",
                reason: Some(why),
            }),
        )
            .into_response(),
        (_, Err(why)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "unhealthy",
                reason: Some(format!("database: {why}")),
            }),
        )
            .into_response(),
    }
}

/// Prometheus metrics (docs/metrics.md).
#[utoipa::path(get, path = "/metrics", tag = "service",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
pub(super) async fn metrics(State(s): State<ApiState>) -> Response {
    let mut out = String::new();
    match prometheus::TextEncoder::new().encode_utf8(&s.registry.gather(), &mut out) {
        Ok(()) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response(),
        Err(e) => ApiError::Internal(e.to_string()).into_response(),
    }
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "service",
    responses((status = 200, description = "the OpenAPI 3.1 document, generated from the handlers", content_type = "application/json", body = Object)))]
pub(super) async fn openapi(State(s): State<ApiState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        s.openapi.as_ref().clone(),
    )
        .into_response()
}

/// Where the mirror stands: head, indexed and finalized blocks.
#[utoipa::path(get, path = "/v1/head", tag = "mirror",
    responses((status = 200, body = Head), (status = 503, body = ErrorBody)))]
pub(super) async fn head(State(s): State<ApiState>) -> ApiResult<Head> {
    load_head(&s).await.map(Json)
}

pub(super) async fn load_head(s: &ApiState) -> Result<Head, ApiError> {
    let (view, f, hash) = finalized_view(&s.pool).await?;
    Ok(Head {
        chain_id: view.chain_id,
        head: view.head,
        indexed: super::schema::IndexedBlock {
            number: view.indexed,
            hash: view.indexed_hash.map(|h| h.to_string()),
        },
        finalized: super::schema::FinalizedBlock {
            number: f,
            hash: hash.to_string(),
            timestamp: view.finalized_timestamp,
        },
        lag_blocks: view.head.saturating_sub(f),
    })
}

/// The KMS registry's settings and root keys, the domain registry, and the guardian's term.
#[utoipa::path(get, path = "/v1/registry", tag = "mirror",
    responses((status = 200, body = Registry), (status = 503, body = ErrorBody)))]
pub(super) async fn registry(State(s): State<ApiState>) -> ApiResult<Registry> {
    load_registry(&s).await.map(Json)
}

pub(super) async fn load_registry(s: &ApiState) -> Result<Registry, ApiError> {
    let (view, f, hash) = finalized_view(&s.pool).await?;
    let mut c = s.pool.acquire().await?;
    let reg = s.deployment.contracts.kms_registry;
    let settings = read::settings_at(&mut c, reg.as_slice(), f).await?;
    let roots = read::members_at(&mut c, "root_keys", Some(reg.as_slice()), f).await?;
    let domain_settings =
        read::settings_at(&mut c, s.deployment.contracts.domain_registry.as_slice(), f).await?;
    let guardian_contract = s.deployment.contracts.covenant_guardian;
    let guardian_settings = read::settings_at(&mut c, guardian_contract.as_slice(), f).await?;
    let expires_at = guardian_settings
        .get("guardian_expires_at")
        .and_then(Value::as_u64);
    // The zero address cannot call `cancel`: no guardian.
    let guardian = guardian_settings
        .get("guardian")
        .and_then(Value::as_str)
        .filter(|g| Address::from_str(g).is_ok_and(|a| a != Address::ZERO))
        .map(str::to_owned);
    Ok(Registry {
        block: block_json(f, hash),
        kms_registry: reg.to_checksum(None),
        settings: settings_json(settings),
        root_keys: roots
            .iter()
            .map(|r| with_member(r, "key", hex32(&r.member)))
            .collect(),
        domain_registry: DomainRegistry {
            address: s.deployment.contracts.domain_registry.to_checksum(None),
            settings: settings_json(domain_settings),
        },
        guardian: Guardian {
            address: guardian_contract.to_checksum(None),
            active: view
                .finalized_timestamp
                .map(|now| guardian.is_some() && expires_at.is_some_and(|end| now < end)),
            guardian,
            expires_at,
        },
    })
}

/// A page of a list.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct Page {
    /// The first index (default 0).
    pub offset: Option<usize>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// Apps per page by default, and at most (app creation is permissionless: the list can be long).
const APPS_PAGE: usize = 100;
const APPS_PAGE_MAX: usize = 1000;

/// Registered apps with their settings, paged.
#[utoipa::path(get, path = "/v1/apps", tag = "mirror", params(Page),
    responses((status = 200, body = Apps), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn apps(
    State(s): State<ApiState>,
    q: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Apps> {
    let Query(page) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    load_apps(&s, page).await.map(Json)
}

pub(super) async fn load_apps(s: &ApiState, page: Page) -> Result<Apps, ApiError> {
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
        apps.push(AppSummary {
            member: with_member(r, "address", address_of(&r.member)),
            settings: settings_json(settings),
        });
    }
    Ok(Apps {
        block: block_json(f, hash),
        total,
        offset,
        apps,
    })
}

/// One app: registration, settings, compose hashes (current and history), devices, domains.
#[utoipa::path(get, path = "/v1/apps/{address}", tag = "mirror",
    params(("address" = String, Path, description = "the app's address (0x and 40 hex digits)")),
    responses((status = 200, body = AppDetail), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn app(
    State(s): State<ApiState>,
    Path(address): Path<String>,
) -> ApiResult<AppDetail> {
    load_app(&s, &address).await.map(Json)
}

pub(super) async fn load_app(s: &ApiState, address: &str) -> Result<AppDetail, ApiError> {
    let app = parse_address(address)?;
    let (view, f, hash) = finalized_view(&s.pool).await?;
    let now = finalized_time(&view)?;
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
    let mut settings = read::settings_at(&mut c, app.as_slice(), f).await?;
    // The settings in force at the finalized block's timestamp, next to the schedule
    // (`settings`: before, scheduled, effectiveAt) they come from.
    if let Some(schedule) = settings
        .get("settings")
        .and_then(|v| serde_json::from_value::<rules::SettingsSchedule>(v.clone()).ok())
    {
        let current = schedule.at(now);
        settings.insert("allowed_tee_kinds".into(), json!(current.allowed_tee_kinds));
        settings.insert("any_device".into(), json!(current.any_device));
        settings.insert(
            "require_up_to_date_tcb".into(),
            json!(current.require_up_to_date_tcb),
        );
        settings.insert("require_gpu".into(), json!(current.require_gpu));
    }
    let hashes = read::members_at(&mut c, "compose_hash", Some(app.as_slice()), f).await?;
    let history = read::member_history(&mut c, "compose_hash", app.as_slice(), None, f).await?;
    let devices = read::members_at(&mut c, "device", Some(app.as_slice()), f).await?;
    let domains: Vec<String> = read::members_at(&mut c, "domain_claim", None, f)
        .await?
        .into_iter()
        .filter(|d| {
            d.data["app"]
                .as_str()
                .and_then(|a| Address::from_str(a).ok())
                == Some(app)
        })
        .filter_map(|d| d.data["domain"].as_str().map(str::to_owned))
        .collect();
    let keyed = |rows: &[MemberRow], key: &str| -> Vec<Member> {
        rows.iter()
            .map(|r| with_member(r, key, hex32(&r.member)))
            .collect()
    };
    Ok(AppDetail {
        block: block_json(f, hash),
        address: app.to_checksum(None),
        registered: last.to_block.is_none(),
        registration: with_member(last, "address", app.to_checksum(None)),
        settings: settings_json(settings),
        compose_hashes: keyed(&hashes, "composeHash"),
        compose_hash_history: keyed(&history, "composeHash"),
        devices: keyed(&devices, "deviceId"),
        domains,
    })
}

/// Allowed OS images with provenance, registered measurements and effective times.
#[utoipa::path(get, path = "/v1/os-images", tag = "mirror",
    responses((status = 200, body = OsImages), (status = 503, body = ErrorBody)))]
pub(super) async fn os_images(State(s): State<ApiState>) -> ApiResult<OsImages> {
    let (_, f, hash) = finalized_view(&s.pool).await?;
    let mut c = s.pool.acquire().await?;
    let reg = s.deployment.contracts.kms_registry;
    let rows = read::members_at(&mut c, "os_image", Some(reg.as_slice()), f).await?;
    Ok(Json(OsImages {
        block: block_json(f, hash),
        os_images: rows
            .iter()
            .map(|r| with_member(r, "osImageHash", hex32(&r.member)))
            .collect(),
    }))
}

/// Active KMS nodes, and the measurements and devices KMS nodes may have.
#[utoipa::path(get, path = "/v1/kms-nodes", tag = "mirror",
    responses((status = 200, body = KmsNodes), (status = 503, body = ErrorBody)))]
pub(super) async fn kms_nodes(State(s): State<ApiState>) -> ApiResult<KmsNodes> {
    load_kms_nodes(&s).await.map(Json)
}

pub(super) async fn load_kms_nodes(s: &ApiState) -> Result<KmsNodes, ApiError> {
    let (_, f, hash) = finalized_view(&s.pool).await?;
    let mut c = s.pool.acquire().await?;
    let reg = s.deployment.contracts.kms_registry;
    let scope = Some(reg.as_slice());
    let nodes = read::members_at(&mut c, "kms_node", scope, f).await?;
    let measurements = read::members_at(&mut c, "kms_measurement", scope, f).await?;
    let devices = read::members_at(&mut c, "kms_device", scope, f).await?;
    let m: Vec<String> = measurements.iter().map(|r| hex32(&r.member)).collect();
    let d: Vec<String> = devices.iter().map(|r| hex32(&r.member)).collect();
    let nodes: Vec<KmsNode> = nodes
        .iter()
        .map(|r| {
            let member = with_member(r, "node", address_of(&r.member));
            let serving = r.data["mrAggregated"]
                .as_str()
                .is_some_and(|x| m.iter().any(|y| y == x))
                && r.data["deviceId"]
                    .as_str()
                    .is_some_and(|x| d.iter().any(|y| y == x));
            KmsNode { member, serving }
        })
        .collect();
    Ok(KmsNodes {
        block: block_json(f, hash),
        nodes,
        allowed_measurements: m,
        allowed_devices: d,
    })
}

/// Every standing domain claim.
#[utoipa::path(get, path = "/v1/domains", tag = "mirror",
    responses((status = 200, body = Domains), (status = 503, body = ErrorBody)))]
pub(super) async fn domains(State(s): State<ApiState>) -> ApiResult<Domains> {
    let (_, f, hash) = finalized_view(&s.pool).await?;
    let mut c = s.pool.acquire().await?;
    let dr = s.deployment.contracts.domain_registry;
    let rows = read::members_at(&mut c, "domain_claim", Some(dr.as_slice()), f).await?;
    Ok(Json(Domains {
        block: block_json(f, hash),
        domains: rows
            .iter()
            .map(|r| with_member(r, "domainHash", hex32(&r.member[..32.min(r.member.len())])))
            .collect(),
    }))
}

/// Every claim of one domain, each with the block that made it.
#[utoipa::path(get, path = "/v1/domains/{domain}", tag = "mirror",
    params(("domain" = String, Path, description = "a lowercase DNS name")),
    responses((status = 200, body = DomainClaims), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn domain(
    State(s): State<ApiState>,
    Path(domain): Path<String>,
) -> ApiResult<DomainClaims> {
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
    let dr = s.deployment.contracts.domain_registry;
    let claims: Vec<Member> = read::members_at(&mut c, "domain_claim", Some(dr.as_slice()), f)
        .await?
        .iter()
        .filter(|r| r.member.starts_with(key.as_slice()))
        .map(|r| with_member(r, "domainHash", key.to_string()))
        .collect();
    if claims.is_empty() {
        return Err(ApiError::NotFound(format!(
            "domain `{domain}` is not claimed at block {f}"
        )));
    }
    Ok(Json(DomainClaims {
        domain,
        domain_hash: key.to_string(),
        claims,
        block: block_json(f, hash),
    }))
}

fn proposal_json(p: &read::ProposalRow, facts: &read::ProposalFacts, now: u64) -> Proposal {
    let state = governance::state(p, facts, now);
    Proposal {
        id: p.id.clone(),
        proposer: p.proposer.to_checksum(None),
        state,
        state_code: state.as_u8(),
        description: p.description.clone(),
        actions: p.actions.clone(),
        vote_start: p.vote_start,
        vote_end: p.vote_end,
        eta: facts.queued_eta,
        created_block: p.block,
        timelock_operation_id: p.timelock_id.to_string(),
        tally: Tally {
            against: facts.tally[0].clone(),
            in_favour: facts.tally[1].clone(),
            abstain: facts.tally[2].clone(),
        },
        quorum: governance::quorum(facts).to_string(),
    }
}

/// Proposals with decoded actions, state, tally and quorum, newest first.
#[utoipa::path(get, path = "/v1/proposals", tag = "governance",
    responses((status = 200, body = Proposals), (status = 503, body = ErrorBody)))]
pub(super) async fn proposals(State(s): State<ApiState>) -> ApiResult<Proposals> {
    load_proposals(&s).await.map(Json)
}

pub(super) async fn load_proposals(s: &ApiState) -> Result<Proposals, ApiError> {
    let (view, f, hash) = finalized_view(&s.pool).await?;
    let now = view.finalized_timestamp.unwrap_or(0);
    let mut c = s.pool.acquire().await?;
    let rows = read::proposals_at(&mut c, f).await?;
    let mut out = Vec::with_capacity(rows.len());
    for p in &rows {
        let facts = read::proposal_facts(&mut c, p, f).await?;
        out.push(proposal_json(p, &facts, now));
    }
    Ok(Proposals {
        block: block_json(f, hash),
        timestamp: now,
        proposals: out,
    })
}

/// One proposal with its votes.
#[utoipa::path(get, path = "/v1/proposals/{id}", tag = "governance",
    params(("id" = String, Path, description = "the proposal id (decimal uint256)")),
    responses((status = 200, body = ProposalDetail), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn proposal(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<ProposalDetail> {
    load_proposal(&s, &id).await.map(Json)
}

pub(super) async fn load_proposal(s: &ApiState, id: &str) -> Result<ProposalDetail, ApiError> {
    // Digits only (no sign, no 0x), within uint256; normalised so `007` is proposal 7.
    let id = Some(id)
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
    let votes = votes
        .iter()
        .map(|v| Vote {
            voter: v.voter.to_checksum(None),
            support: ["against", "for", "abstain"]
                .get(v.support as usize)
                .copied()
                .unwrap_or("unknown"),
            weight: v.weight.clone(),
            reason: v.reason.clone(),
            block: v.block,
        })
        .collect();
    Ok(ProposalDetail {
        proposal: proposal_json(&p, &facts, now),
        block: block_json(f, hash),
        timestamp: now,
        votes,
    })
}

/// Which grant-log commitments to list.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct GrantLogQuery {
    /// Only this KMS node's commitments (its address).
    node: Option<String>,
}

/// KMS nodes' grant-log commitments (Merkle roots of their audit logs).
#[utoipa::path(get, path = "/v1/grant-log", tag = "mirror", params(GrantLogQuery),
    responses((status = 200, body = GrantLog), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn grant_log(
    State(s): State<ApiState>,
    q: Result<Query<GrantLogQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<GrantLog> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let node = q.node.as_deref().map(parse_address).transpose()?;
    load_grant_log(&s, node).await.map(Json)
}

pub(super) async fn load_grant_log(
    s: &ApiState,
    node: Option<Address>,
) -> Result<GrantLog, ApiError> {
    let (_, f, hash) = finalized_view(&s.pool).await?;
    let mut c = s.pool.acquire().await?;
    let reg = s.deployment.contracts.kms_registry;
    let rows = read::members_at(&mut c, "grant_log", Some(reg.as_slice()), f).await?;
    let commitments = rows
        .iter()
        .filter(|r| node.is_none_or(|n| r.member.get(..20) == Some(n.as_slice())))
        .map(|r| with_member(r, "key", hex32(&r.member)))
        .collect();
    Ok(GrantLog {
        block: block_json(f, hash),
        commitments,
    })
}

fn boot_from(
    body: Result<Json<BootInfoJson>, JsonRejection>,
) -> Result<covenant_chain::BootInfo, ApiError> {
    let Json(boot) =
        body.map_err(|e| ApiError::BadRequest(format!("malformed BootInfo: {}", e.body_text())))?;
    boot.to_boot_info().map_err(ApiError::BadRequest)
}

/// `isAppAllowed(boot)` at block `f` (hash `hash`, timestamp `now`): by the mirror for factory
/// apps on the deployment's App implementation, by `eth_call` at the block's hash otherwise.
pub(super) async fn judge_app(
    s: &ApiState,
    boot: covenant_chain::BootInfo,
    f: u64,
    hash: B256,
    now: u64,
) -> Result<(rules::Decision, &'static str), ApiError> {
    let mut c = s.pool.acquire().await?;
    let reg = s.deployment.contracts.kms_registry;
    let answer = facts::app_at(
        &mut c,
        reg,
        s.deployment.contracts.app_implementation,
        &boot,
        f,
        now,
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
    Ok((decision, source))
}

/// What `isAppAllowed(boot)` answers at the finalized block: the mirror for factory apps on the
/// deployment's App implementation, `eth_call` at the block's hash otherwise. Informational: the
/// kms-oracle decides on its own.
#[utoipa::path(post, path = "/v1/policy/app", tag = "policy",
    request_body(content = covenant_mirror::rules::BootInfoJson, description = "the boot to judge"),
    responses((status = 200, body = PolicyAnswer), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn policy_app(
    State(s): State<ApiState>,
    body: Result<Json<BootInfoJson>, JsonRejection>,
) -> ApiResult<PolicyAnswer> {
    let boot = boot_from(body)?;
    let (view, f, hash) = finalized_view(&s.pool).await?;
    let now = finalized_time(&view)?;
    let (decision, source) = judge_app(&s, boot, f, hash, now).await?;
    Ok(Json(PolicyAnswer {
        block: block_json(f, hash),
        allowed: decision.allowed,
        reason: decision.reason,
        decided_by: source,
    }))
}

/// The finalized block's timestamp: notice periods are judged against it.
fn finalized_time(view: &covenant_mirror::read::View) -> Result<u64, ApiError> {
    view.finalized_timestamp.ok_or_else(|| {
        ApiError::Unavailable("the finalized block's timestamp is not indexed yet".into())
    })
}

/// What `isKmsAllowed(boot)` answers at the finalized block (by the mirror).
#[utoipa::path(post, path = "/v1/policy/kms", tag = "policy",
    request_body(content = covenant_mirror::rules::BootInfoJson, description = "the KMS node's boot"),
    responses((status = 200, body = PolicyAnswer), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn policy_kms(
    State(s): State<ApiState>,
    body: Result<Json<BootInfoJson>, JsonRejection>,
) -> ApiResult<PolicyAnswer> {
    let boot = boot_from(body)?;
    let (view, f, hash) = finalized_view(&s.pool).await?;
    let now = finalized_time(&view)?;
    let mut c = s.pool.acquire().await?;
    let decision =
        facts::kms_at(&mut c, s.deployment.contracts.kms_registry, &boot, f, now).await?;
    Ok(Json(PolicyAnswer {
        block: block_json(f, hash),
        allowed: decision.allowed,
        reason: decision.reason,
        decided_by: "mirror",
    }))
}
