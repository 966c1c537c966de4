//! One audit-log entry and its canonical encoding, the Merkle leaf (specified in docs/kms.md).
//! Each entry commits to the hash of the one before it (`prev`), so the log is a hash chain: a
//! row edited or removed breaks every link after it.

use alloy::primitives::{Address, B256, FixedBytes};
use serde::Serialize;

/// What was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// App keys (`POST /v1/keys`).
    Keys,
    /// An app TLS certificate (`POST /v1/certificates`).
    Certificate,
    /// The root secret, by another KMS node (`POST /v1/replicate`).
    Replicate,
}

impl Action {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Keys => "keys",
            Self::Certificate => "certificate",
            Self::Replicate => "replicate",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "keys" => Self::Keys,
            "certificate" => Self::Certificate,
            "replicate" => Self::Replicate,
            _ => return None,
        })
    }
}

/// A decision about to be logged (the writer assigns the sequence number).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Draft {
    /// Unix milliseconds.
    pub at_ms: u64,
    /// What was asked for.
    pub action: Action,
    /// Whether it was granted.
    pub granted: bool,
    /// Why not (empty when granted).
    pub reason: String,
    /// The app, when the evidence verified.
    pub app_id: Option<Address>,
    /// The instance, when the evidence verified.
    pub instance_id: Option<FixedBytes<20>>,
    /// The compose hash, when the evidence verified.
    pub compose_hash: Option<B256>,
    /// sha256 of the client certificate, when one was presented.
    pub evidence_digest: Option<B256>,
    /// The finalized block decided at, when one was used.
    pub block: Option<(u64, B256)>,
}

impl Draft {
    /// A refusal with no evidence and no block.
    pub fn refusal(action: Action, at_ms: u64, reason: impl Into<String>) -> Self {
        Self {
            at_ms,
            action,
            granted: false,
            reason: reason.into(),
            app_id: None,
            instance_id: None,
            compose_hash: None,
            evidence_digest: None,
            block: None,
        }
    }
}

/// A logged decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// The node that decided.
    pub node: Address,
    /// Its sequence number (1, 2, … per node, no gaps).
    pub seq: u64,
    /// The hash ([`Entry::hash`]) of entry `seq - 1`; zero for the first entry.
    pub prev: B256,
    /// The decision.
    #[serde(flatten)]
    pub draft: Draft,
}

impl Entry {
    /// The entry as `GET /v1/audit/{seq}` shows it, whose encoding is the leaf.
    pub fn wire(&self) -> covenant_kms_api::AuditEntry {
        let d = &self.draft;
        covenant_kms_api::AuditEntry {
            node: self.node,
            seq: self.seq,
            prev: self.prev,
            at_ms: d.at_ms,
            action: d.action.as_str().to_owned(),
            granted: d.granted,
            reason: d.reason.clone(),
            app_id: d.app_id,
            instance_id: d.instance_id,
            compose_hash: d.compose_hash,
            evidence_digest: d.evidence_digest,
            block: d.block,
        }
    }

    /// The canonical encoding, the Merkle leaf's content
    /// ([`covenant_kms_api::AuditEntry::leaf_bytes`]: one encoding for the node and its clients).
    pub fn leaf_bytes(&self) -> Vec<u8> {
        self.wire().leaf_bytes()
    }

    /// The Merkle leaf hash, `SHA-256(0x00 ‖ leaf_bytes)`; also the entry's link in the chain
    /// (the next entry's `prev`).
    pub fn leaf_hash(&self) -> super::merkle::Hash {
        super::merkle::leaf_hash(&self.leaf_bytes())
    }

    /// [`Entry::leaf_hash`] as the next entry's `prev`.
    pub fn hash(&self) -> B256 {
        B256::from(self.leaf_hash())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            node: Address::repeat_byte(0x11),
            seq: 7,
            prev: B256::repeat_byte(0x66),
            draft: Draft {
                at_ms: 1_700_000_000_000,
                action: Action::Keys,
                granted: false,
                reason: "compose hash not allowed".into(),
                app_id: Some(Address::repeat_byte(0x22)),
                instance_id: Some(FixedBytes::repeat_byte(0x33)),
                compose_hash: None,
                evidence_digest: Some(B256::repeat_byte(0x44)),
                block: Some((42, B256::repeat_byte(0x55))),
            },
        }
    }

    #[test]
    fn every_field_changes_the_leaf() {
        let base = entry().leaf_hash();
        let mut changes: Vec<Entry> = Vec::new();
        let mut e = entry();
        e.node = Address::repeat_byte(0x12);
        changes.push(e);
        let mut e = entry();
        e.seq = 8;
        changes.push(e);
        let mut e = entry();
        e.prev = B256::repeat_byte(0x67);
        changes.push(e);
        let mut e = entry();
        e.draft.at_ms += 1;
        changes.push(e);
        let mut e = entry();
        e.draft.action = Action::Certificate;
        changes.push(e);
        let mut e = entry();
        e.draft.granted = true;
        changes.push(e);
        let mut e = entry();
        e.draft.reason.push('!');
        changes.push(e);
        let mut e = entry();
        e.draft.app_id = None;
        changes.push(e);
        let mut e = entry();
        e.draft.instance_id = Some(FixedBytes::repeat_byte(0x34));
        changes.push(e);
        let mut e = entry();
        e.draft.compose_hash = Some(B256::ZERO);
        changes.push(e);
        let mut e = entry();
        e.draft.evidence_digest = None;
        changes.push(e);
        let mut e = entry();
        e.draft.block = Some((43, B256::repeat_byte(0x55)));
        changes.push(e);
        for (i, changed) in changes.iter().enumerate() {
            assert_ne!(
                changed.leaf_hash(),
                base,
                "change {i} left the leaf unchanged"
            );
        }
    }

    #[test]
    fn absent_and_empty_fields_encode_differently() {
        // A reason that swallows the following field's bytes must not collide: lengths prevent it.
        let mut a = entry();
        a.draft.reason = String::new();
        let mut b = entry();
        b.draft.reason = "\u{1}".into();
        b.draft.app_id = None;
        assert_ne!(a.leaf_bytes(), b.leaf_bytes());
        assert!(entry().leaf_bytes().starts_with(super::super::LEAF_PREFIX));
    }
}
