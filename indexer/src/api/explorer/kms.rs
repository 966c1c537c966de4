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

#[cfg(test)]
mod tests {
    use alloy::primitives::{B256, Bytes, FixedBytes};
    use covenant_kms_api::{AuditEntry, Commitment, merkle};
    use serde_json::json;

    use super::*;
    use crate::api::schema::Block;

    /// A node's log of two entries, committed as one range; the served answer for entry 1.
    fn served(node: Address) -> (AuditEntryResponse, B256) {
        let entry = AuditEntry {
            node,
            seq: 1,
            prev: B256::ZERO,
            at_ms: 1_796_000_000_000,
            action: "keys".into(),
            granted: true,
            reason: String::new(),
            app_id: Some(Address::repeat_byte(0x22)),
            instance_id: Some(FixedBytes::repeat_byte(0x33)),
            compose_hash: Some(B256::repeat_byte(0x44)),
            evidence_digest: None,
            block: Some((1, B256::repeat_byte(0x55))),
        };
        let leaves = vec![entry.leaf_hash().0, merkle::leaf_hash(b"entry 2")];
        let root = B256::from(merkle::root(&leaves));
        let response = AuditEntryResponse {
            leaf: Bytes::from(entry.leaf_bytes()),
            leaf_hash: entry.leaf_hash(),
            commitment: Some(Commitment {
                from_seq: 1,
                to_seq: 2,
                root,
                tx_hash: B256::repeat_byte(0x77),
                index: 0,
                tree_size: 2,
                path: merkle::inclusion_proof(&leaves, 0)
                    .unwrap()
                    .into_iter()
                    .map(B256::from)
                    .collect(),
            }),
            entry,
        };
        (response, root)
    }

    fn chain_holding(node: Address, to: u64, root: B256) -> GrantLog {
        let fields = json!({ "node": node.to_checksum(None), "fromSeq": 1, "toSeq": to, "merkleRoot": root.to_string() });
        GrantLog {
            block: Block {
                number: 9,
                hash: B256::ZERO.to_string(),
            },
            commitments: vec![Member {
                fields: fields.as_object().unwrap().clone(),
                added_block: 7,
                removed_block: None,
            }],
        }
    }

    fn refused(v: Verdict) -> String {
        match v {
            Verdict::Refused(why) => why,
            Verdict::Proven { .. } => panic!("proven"),
        }
    }

    #[test]
    fn a_proof_to_the_root_on_chain_is_proven() {
        let node = Address::repeat_byte(0x11);
        let (response, root) = served(node);
        let pasted = serde_json::to_string(&response).unwrap();
        match check(&pasted, &chain_holding(node, 2, root)) {
            Verdict::Proven {
                seq,
                from,
                to,
                block,
                ..
            } => assert_eq!((seq, from, to, block), (1, 1, 2, 7)),
            Verdict::Refused(why) => panic!("{why}"),
        }
    }

    #[test]
    fn a_self_consistent_proof_is_refused_unless_the_chain_holds_its_root() {
        let node = Address::repeat_byte(0x11);
        let (response, root) = served(node);
        let pasted = serde_json::to_string(&response).unwrap();
        // Another root for the same range on chain.
        let why = refused(check(
            &pasted,
            &chain_holding(node, 2, B256::repeat_byte(0x99)),
        ));
        assert!(why.contains("has root"), "{why}");
        // The same root, but the chain's range ends elsewhere.
        let why = refused(check(&pasted, &chain_holding(node, 3, root)));
        assert!(why.contains("has root"), "{why}");
        // Another node's commitment.
        let why = refused(check(
            &pasted,
            &chain_holding(Address::repeat_byte(0x12), 2, root),
        ));
        assert!(why.contains("committed no range"), "{why}");
    }

    #[test]
    fn a_tampered_or_malformed_proof_is_refused() {
        let node = Address::repeat_byte(0x11);
        let (mut response, root) = served(node);
        let chain = chain_holding(node, 2, root);
        let why = refused(check("{\"entry\": 1}", &chain));
        assert!(why.contains("not an audit entry"), "{why}");
        response.entry.granted = false;
        let why = refused(check(&serde_json::to_string(&response).unwrap(), &chain));
        assert!(why.contains("does not hold"), "{why}");
        response.entry.granted = true;
        if let Some(c) = response.commitment.as_mut() {
            c.path[0] = B256::repeat_byte(0x01);
        }
        let why = refused(check(&serde_json::to_string(&response).unwrap(), &chain));
        assert!(why.contains("does not lead"), "{why}");
        response.commitment = None;
        let why = refused(check(&serde_json::to_string(&response).unwrap(), &chain));
        assert!(why.contains("not committed"), "{why}");
    }
}
