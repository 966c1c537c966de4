//! KMS: the nodes and their standing, their onboarding history, the grant-log commitments, and
//! the check of a grant's inclusion proof against the root the node committed on chain.

use alloy::primitives::Address;
use covenant_kms_api::AuditEntryResponse;
use maud::{Markup, html};
use serde_json::Value;

use super::layout::{self, AsOf, Section, hex, time_at};
use crate::api::{
    ApiError, ApiState,
    routes::{load_grant_log, load_kms_nodes},
    schema::{GrantLog, KmsNodes, Member},
};
use covenant_mirror::read;

/// The most a pasted proof may be (an entry and a path of ≤ 64 hashes fit in a few KiB).
pub(super) const PROOF_MAX: usize = 64 * 1024;

fn field<'a>(m: &'a Member, name: &str) -> &'a str {
    m.fields
        .get(name)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn number(m: &Member, name: &str) -> u64 {
    m.fields
        .get(name)
        .and_then(Value::as_u64)
        .unwrap_or_default()
}

/// What the check of a pasted proof found.
pub(super) enum Verdict {
    /// The entry is in the range the node committed, under the root on chain.
    Proven {
        seq: u64,
        node: String,
        decision: String,
        app: Option<String>,
        from: u64,
        to: u64,
        root: String,
        block: u64,
    },
    /// Why not.
    Refused(String),
}

/// Checks a pasted `GET /v1/audit/{seq}` answer: it proves itself (the leaf is the entry, the
/// path leads to the root it names), and that root is the one the chain holds for the node's
/// range at the finalized block — a self-consistent proof to another root proves nothing.
pub(super) fn check(pasted: &str, log: &GrantLog) -> Verdict {
    let response: AuditEntryResponse = match serde_json::from_str(pasted.trim()) {
        Ok(r) => r,
        Err(e) => {
            return Verdict::Refused(format!(
                "not an audit entry as a KMS node serves it at /v1/audit/<seq>: {e}"
            ));
        }
    };
    let commitment = match covenant_kms_api::audit::check(&response) {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Verdict::Refused(
                "the entry carries no commitment: it is not committed on chain yet".into(),
            );
        }
        Err(e) => return Verdict::Refused(format!("the proof does not hold: {e}")),
    };
    let node = response.entry.node.to_checksum(None);
    let on_chain = log.commitments.iter().find(|m| {
        field(m, "node").parse::<Address>().ok() == Some(response.entry.node)
            && number(m, "fromSeq") == commitment.from_seq
    });
    let Some(on_chain) = on_chain else {
        return Verdict::Refused(format!(
            "node {node} committed no range starting at entry {} on chain (at block {})",
            commitment.from_seq, log.block.number
        ));
    };
    let root = field(on_chain, "merkleRoot");
    if number(on_chain, "toSeq") != commitment.to_seq
        || !root.eq_ignore_ascii_case(&commitment.root.to_string())
    {
        return Verdict::Refused(format!(
            "the chain's commitment of entries {}..={} has root {root}; the proof leads to {} for {}..={}",
            commitment.from_seq,
            number(on_chain, "toSeq"),
            commitment.root,
            commitment.from_seq,
            commitment.to_seq
        ));
    }
    let e = &response.entry;
    Verdict::Proven {
        seq: e.seq,
        node,
        decision: if e.granted {
            format!("{}: granted", e.action)
        } else {
            format!("{}: refused ({})", e.action, e.reason)
        },
        app: e.app_id.map(|a| a.to_checksum(None)),
        from: commitment.from_seq,
        to: commitment.to_seq,
        root: root.to_owned(),
        block: on_chain.added_block,
    }
}

fn verdict_html(v: &Verdict) -> Markup {
    match v {
        Verdict::Proven {
            seq,
            node,
            decision,
            app,
            from,
            to,
            root,
            block,
        } => html! {
            div id="proof-result" class="verdict ok" role="status" data-verdict="proven" {
                p { strong { "Proven." } " Entry " (seq) " of node " (hex(node)) " is in the range " (from) "–" (to) " the node committed on chain (block " (block) "), under root " (hex(root)) "." }
                p { "Decision: " (decision) @if let Some(a) = app { " for app " (layout::app_link(a)) } "." }
            }
        },
        Verdict::Refused(why) => html! {
            div id="proof-result" class="verdict refused" role="alert" data-verdict="refused" {
                p { strong { "Not proven." } " " (why) }
            }
        },
    }
}

async fn onboarding(
    s: &ApiState,
    at: u64,
) -> Result<Vec<covenant_mirror::read::MemberRow>, ApiError> {
    let mut c = s.pool.acquire().await?;
    let reg = s.deployment.contracts.kms_registry;
    Ok(read::member_history(&mut c, "kms_node", reg.as_slice(), None, at).await?)
}

/// The KMS page's data, all read at one finalized block.
async fn load(s: &ApiState) -> Result<(KmsNodes, GrantLog), ApiError> {
    for _ in 0..5 {
        let nodes = load_kms_nodes(s).await?;
        let log = load_grant_log(s, None).await?;
        if nodes.block.number == log.block.number {
            return Ok((nodes, log));
        }
    }
    Err(ApiError::Unavailable(
        "the finalized block moves too fast to read one view; retry".into(),
    ))
}

/// `/kms`, and with `pasted`, the result of checking it.
pub(super) async fn page(s: &ApiState, pasted: Option<&str>) -> Result<Markup, ApiError> {
    let (nodes, log) = load(s).await?;
    let f = nodes.block.number;
    let timestamp = super::timestamp_at(s, f).await?;
    let history = onboarding(s, f).await?;
    let verdict = pasted.map(|p| check(p, &log));
    let body = html! {
        section aria-labelledby="nodes" id="nodes-section" data-live {
            h2 id="nodes" { "Nodes" }
            @if nodes.nodes.is_empty() { p { "No KMS node is onboarded." } }
            @else {
                table {
                    caption { "Onboarded KMS nodes and whether their measurement and device are still allowed" }
                    thead { tr { th scope="col" { "Node" } th scope="col" { "Standing" } th scope="col" { "Measurement" } th scope="col" { "Device" } th scope="col" { "Onboarded" } } }
                    tbody {
                        @for n in &nodes.nodes {
                            tr {
                                th scope="row" { (hex(field(&n.member, "node"))) }
                                td { @if n.serving { "serving" } @else { "not serving: its measurement or device was removed" } }
                                td { (hex(field(&n.member, "mrAggregated"))) }
                                td { (hex(field(&n.member, "deviceId"))) }
                                td { "block " (n.member.added_block) ", " (time_at(number(&n.member, "onboardedAt"))) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="onboarding" {
            h2 id="onboarding" { "Onboarding history" }
            @if history.is_empty() { p { "No node was ever onboarded." } }
            @else {
                table {
                    caption { "Every onboarding and removal, in order" }
                    thead { tr { th scope="col" { "Node" } th scope="col" { "Onboarded by" } th scope="col" { "Added at block" } th scope="col" { "Removed at block" } } }
                    tbody {
                        @for r in &history {
                            tr {
                                th scope="row" { (hex(&Address::from_slice(&r.member[..20.min(r.member.len())]).to_checksum(None))) }
                                td { (hex(r.data["onboardedBy"].as_str().unwrap_or_default())) }
                                td { (r.from_block) }
                                td { @match r.to_block { Some(b) => (b), None => "—" } }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="commitments" id="commitments-section" data-live {
            h2 id="commitments" { "Grant-log commitments" }
            p { "Each KMS node commits the Merkle root of its audit log (every key it granted or refused) on chain, range by range." }
            @if log.commitments.is_empty() { p { "Nothing committed yet." } }
            @else {
                table {
                    caption { "Committed ranges of the nodes' audit logs" }
                    thead { tr { th scope="col" { "Node" } th scope="col" { "Entries" } th scope="col" { "Merkle root" } th scope="col" { "Block" } } }
                    tbody {
                        @for m in &log.commitments {
                            tr { th scope="row" { (hex(field(m, "node"))) } td { (number(m, "fromSeq")) "–" (number(m, "toSeq")) } td { (hex(field(m, "merkleRoot"))) } td { (m.added_block) } }
                        }
                    }
                }
            }
        }
        section aria-labelledby="proof" {
            h2 id="proof" { "Check a grant's inclusion proof" }
            p { "Paste what a KMS node serves at " code { "/v1/audit/<seq>" } " (JSON). It is checked here against the root the node committed on chain at the finalized block above." }
            form method="post" action="/kms/proof#proof" {
                label for="proof-input" { "Audit entry with its inclusion proof (JSON)" }
                textarea id="proof-input" name="proof" rows="10" required spellcheck="false" { (pasted.unwrap_or_default()) }
                button type="submit" { "Check the proof" }
            }
            @if let Some(v) = &verdict { (verdict_html(v)) }
        }
    };
    Ok(layout::page(
        Section::Kms,
        "KMS nodes and grant log",
        &AsOf {
            block: &nodes.block,
            timestamp,
        },
        &["/v1/kms-nodes", "/v1/grant-log"],
        body,
    ))
}
