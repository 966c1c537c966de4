//! What serves an app beyond the chain: whether DNS proves each domain it claims (the gateway's
//! rule: `_covenant.<domain>` names the app and no other app that claims the name), and which
//! instances a gateway reports routing to it, each judged by the registry's rules at the same
//! finalized block as the rest of the app's view.
//!
//! What a viewer costs: DNS answers are kept 30 s per name (`covenant_dns::Records`) and at most
//! [`MAX_DNS_CHECKS`] names are looked up per view; the gateway is read at most once per 5 s
//! (`crate::gateway`). Both are reads; nothing is written.

use alloy::primitives::{Address, B256, keccak256};
use axum::{
    Json,
    extract::{Path, State},
};
use futures::future::join_all;

use super::{
    ApiError, ApiState,
    routes::{judge_app, load_app},
    schema::{AppDetail, DomainProof, ErrorBody, GatewayRouting, RoutedInstance, Serving},
};

/// Claimed names whose DNS is checked per view (the rest are shown unchecked).
pub(super) const MAX_DNS_CHECKS: usize = 20;

/// What serves one app, at the finalized block.
#[utoipa::path(get, path = "/v1/apps/{address}/serving", tag = "mirror",
    params(("address" = String, Path, description = "the app's address (0x and 40 hex digits)")),
    responses((status = 200, body = Serving), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn serving(
    State(s): State<ApiState>,
    Path(address): Path<String>,
) -> Result<Json<Serving>, ApiError> {
    let app = load_app(&s, &address).await?;
    let timestamp = super::timestamp_at(&s, app.block.number).await?;
    load_serving(&s, &app, timestamp).await.map(Json)
}

/// What serves `app` at the block its view was read at (timestamp `now`).
pub(super) async fn load_serving(
    s: &ApiState,
    app: &AppDetail,
    now: u64,
) -> Result<Serving, ApiError> {
    let address: Address = app
        .address
        .parse()
        .map_err(|e| ApiError::Internal(format!("app address: {e}")))?;
    let hash: B256 = app
        .block
        .hash
        .parse()
        .map_err(|e| ApiError::Internal(format!("block hash: {e}")))?;
    let f = app.block.number;
    let domains = domain_proofs(s, address, &app.domains, f).await?;
    let gateway = match &s.gateway {
        None => None,
        Some(reader) => Some(routing(s, reader, address, f, hash, now).await),
    };
    Ok(Serving {
        block: super::schema::Block {
            number: f,
            hash: app.block.hash.clone(),
        },
        domains,
        gateway,
    })
}

async fn domain_proofs(
    s: &ApiState,
    app: Address,
    domains: &[String],
    f: u64,
) -> Result<Vec<DomainProof>, ApiError> {
    let Some(records) = &s.dns else {
        return Ok(domains
            .iter()
            .map(|d| unchecked(d, "this indexer does not check DNS (--dns-server)"))
            .collect());
    };
    let checked = domains.len().min(MAX_DNS_CHECKS);
    let answers = join_all(domains[..checked].iter().map(|d| records.apps(d))).await;
    let registry = s.deployment.contracts.domain_registry;
    let mut proofs = Vec::with_capacity(domains.len());
    let mut c = s.pool.acquire().await?;
    for (domain, named) in domains.iter().zip(answers) {
        let record = covenant_dns::txt_name(domain);
        let record = record.trim_end_matches('.');
        let named = match named {
            Ok(named) => named,
            Err(e) => {
                proofs.push(DomainProof {
                    domain: domain.clone(),
                    dns: "unknown",
                    detail: format!("the DNS did not answer: {e}"),
                    named: Vec::new(),
                });
                continue;
            }
        };
        let (dns, detail) = if !named.contains(&app) {
            let detail = if named.is_empty() {
                format!("{record} names no app")
            } else {
                format!("{record} names other apps, not this one")
            };
            ("notNamed", detail)
        } else {
            let mut also = Vec::new();
            for other in named.iter().filter(|o| **o != app) {
                let mut member = keccak256(domain.as_bytes()).to_vec();
                member.extend_from_slice(other.as_slice());
                if covenant_mirror::read::is_member_at(
                    &mut c,
                    "domain_claim",
                    registry.as_slice(),
                    &member,
                    f,
                )
                .await?
                {
                    also.push(other.to_checksum(None));
                }
            }
            if also.is_empty() {
                ("proven", format!("{record} names this app"))
            } else {
                (
                    "ambiguous",
                    format!(
                        "{record} also names {}, which claims {domain} too: no app is routed",
                        also.join(", ")
                    ),
                )
            }
        };
        proofs.push(DomainProof {
            domain: domain.clone(),
            dns,
            detail,
            named: named.iter().map(|a| a.to_checksum(None)).collect(),
        });
    }
    proofs.extend(domains[checked..].iter().map(|d| {
        unchecked(
            d,
            &format!("only the first {MAX_DNS_CHECKS} claims are checked per view"),
        )
    }));
    Ok(proofs)
}

fn unchecked(domain: &str, why: &str) -> DomainProof {
    DomainProof {
        domain: domain.to_owned(),
        dns: "unchecked",
        detail: why.to_owned(),
        named: Vec::new(),
    }
}

async fn routing(
    s: &ApiState,
    reader: &crate::gateway::GatewayReader,
    app: Address,
    f: u64,
    hash: B256,
    now: u64,
) -> GatewayRouting {
    let url = reader.url().to_owned();
    let table = match reader.table().await {
        Ok(table) => table,
        Err(e) => {
            return GatewayRouting {
                url,
                error: Some(e),
                decided_at: None,
                instances: Vec::new(),
            };
        }
    };
    let routed = table
        .apps
        .iter()
        .filter(|a| a.app == app)
        .flat_map(|a| a.instances.iter());
    let mut instances = Vec::new();
    for r in routed {
        let (allowed, reason, decided_by) = match judge_app(s, r.boot_info(app), f, hash, now).await
        {
            Ok((d, by)) => (Some(d.allowed), d.reason, Some(by)),
            Err(e) => (None, e.status_and_message().1, None),
        };
        instances.push(RoutedInstance {
            instance_id: r.instance_id.to_string(),
            compose_hash: r.compose_hash.to_string(),
            os_image_hash: r.os_image_hash.to_string(),
            device_id: r.device_id.to_string(),
            tee_kind: r.tee_kind,
            tcb_status: r.tcb_status,
            evidence_digest: r.evidence_digest.to_string(),
            hosts: r.hosts.clone(),
            decided_at: r.decided_at,
            allowed,
            reason,
            decided_by,
        });
    }
    GatewayRouting {
        url,
        error: None,
        decided_at: table.block.as_ref().map(|b| b.number),
        instances,
    }
}
