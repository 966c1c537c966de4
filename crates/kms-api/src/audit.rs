//! An audit entry's canonical encoding (the Merkle leaf a KMS node commits on chain) and the
//! offline check of what `GET /v1/audit/{seq}` serves: the leaf is the entry, and the inclusion
//! proof leads from it to the root of the commitment covering it. Whether that root is the one on
//! chain is the caller's last step (`KmsRegistry`'s `GrantLogCommitted` event).

use alloy::primitives::B256;

use crate::{
    merkle,
    wire::{AuditEntry, AuditEntryResponse, Commitment},
};

/// The prefix of every leaf.
pub const LEAF_PREFIX: &[u8] = b"covenant-audit-v2";

fn part(out: &mut Vec<u8>, bytes: &[u8]) {
    // Every part is bounded far below 4 GiB (reasons are truncated by the writer).
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn optional(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(b) => {
            out.push(1);
            part(out, b);
        }
        None => out.push(0),
    }
}

impl AuditEntry {
    /// The canonical encoding (the Merkle leaf's content): [`LEAF_PREFIX`], then node (20), seq
    /// (u64 BE), prev (32), at_ms (u64 BE), action (length-prefixed ASCII), granted (1 byte),
    /// reason (length-prefixed UTF-8), then app id, instance id, compose hash, evidence digest
    /// and block (number u64 BE ‖ hash) each as `0` (absent) or `1 ‖ length-prefixed bytes`.
    /// Lengths are u32 BE.
    pub fn leaf_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(LEAF_PREFIX);
        out.extend_from_slice(self.node.as_slice());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(self.prev.as_slice());
        out.extend_from_slice(&self.at_ms.to_be_bytes());
        part(&mut out, self.action.as_bytes());
        out.push(u8::from(self.granted));
        part(&mut out, self.reason.as_bytes());
        optional(&mut out, self.app_id.as_ref().map(|a| a.as_slice()));
        optional(&mut out, self.instance_id.as_ref().map(|i| i.as_slice()));
        optional(&mut out, self.compose_hash.as_ref().map(|h| h.as_slice()));
        optional(
            &mut out,
            self.evidence_digest.as_ref().map(|h| h.as_slice()),
        );
        let block = self.block.map(|(n, h)| {
            let mut b = n.to_be_bytes().to_vec();
            b.extend_from_slice(h.as_slice());
            b
        });
        optional(&mut out, block.as_deref());
        out
    }

    /// `SHA-256(0x00 ‖ leaf_bytes)`: the Merkle leaf hash, and the next entry's `prev`.
    pub fn leaf_hash(&self) -> B256 {
        B256::from(merkle::leaf_hash(&self.leaf_bytes()))
    }
}

/// Why a served audit entry does not prove itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf is not the encoding of the entry shown with it.
    #[error("the leaf is not the encoding of the entry shown")]
    LeafMismatch,
    /// The leaf hash is not the hash of the leaf.
    #[error("the leaf hash is not SHA-256(0x00 ‖ leaf)")]
    LeafHash,
    /// The commitment's range does not hold the entry, or its size is not the range's.
    #[error("the commitment {from}..={to} does not place entry {seq} at index {index} of {size}")]
    Range {
        /// The entry.
        seq: u64,
        /// The commitment's first entry.
        from: u64,
        /// Its last entry.
        to: u64,
        /// The index given.
        index: u64,
        /// The tree size given.
        size: u64,
    },
    /// The inclusion proof does not lead to the commitment's root.
    #[error("the inclusion proof does not lead from the leaf to the root {0}")]
    Inclusion(B256),
}

/// Checks `response` on its own: its leaf encodes its entry and, when a commitment is given, the
/// proof leads from the leaf to the commitment's root. Returns the commitment (still to be found
/// on chain), or `None` when the entry is not committed yet.
pub fn check(response: &AuditEntryResponse) -> Result<Option<&Commitment>, ProofError> {
    let leaf = response.entry.leaf_bytes();
    if leaf != response.leaf.as_ref() {
        return Err(ProofError::LeafMismatch);
    }
    let hash = merkle::leaf_hash(&leaf);
    if B256::from(hash) != response.leaf_hash {
        return Err(ProofError::LeafHash);
    }
    let Some(c) = &response.commitment else {
        return Ok(None);
    };
    let seq = response.entry.seq;
    let in_range = c.from_seq <= seq
        && seq <= c.to_seq
        && c.index == seq - c.from_seq
        && c.tree_size == c.to_seq - c.from_seq + 1;
    if !in_range {
        return Err(ProofError::Range {
            seq,
            from: c.from_seq,
            to: c.to_seq,
            index: c.index,
            size: c.tree_size,
        });
    }
    let path: Vec<merkle::Hash> = c.path.iter().map(|h| h.0).collect();
    if !merkle::verify_inclusion(&hash, c.index, c.tree_size, &path, &c.root.0) {
        return Err(ProofError::Inclusion(c.root));
    }
    Ok(Some(c))
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Address, Bytes, FixedBytes};

    use super::*;

    fn entry(seq: u64, prev: B256) -> AuditEntry {
        AuditEntry {
            node: Address::repeat_byte(0x11),
            seq,
            prev,
            at_ms: 1_700_000_000_000 + seq,
            action: "keys".into(),
            granted: seq.is_multiple_of(2),
            reason: if seq.is_multiple_of(2) {
                String::new()
            } else {
                "refused".into()
            },
            app_id: Some(Address::repeat_byte(0x22)),
            instance_id: Some(FixedBytes::repeat_byte(0x33)),
            compose_hash: Some(B256::repeat_byte(0x44)),
            evidence_digest: None,
            block: Some((9, B256::repeat_byte(0x55))),
        }
    }

    /// A committed batch of entries 5..=11 and the response for entry `seq`.
    fn served(seq: u64) -> AuditEntryResponse {
        let mut prev = B256::ZERO;
        let entries: Vec<AuditEntry> = (5..=11)
            .map(|s| {
                let e = entry(s, prev);
                prev = e.leaf_hash();
                e
            })
            .collect();
        let leaves: Vec<merkle::Hash> = entries.iter().map(|e| e.leaf_hash().0).collect();
        let index = (seq - 5) as usize;
        let e = entries[index].clone();
        AuditEntryResponse {
            leaf: Bytes::from(e.leaf_bytes()),
            leaf_hash: e.leaf_hash(),
            entry: e,
            commitment: Some(Commitment {
                from_seq: 5,
                to_seq: 11,
                root: B256::from(merkle::root(&leaves)),
                tx_hash: B256::repeat_byte(0x77),
                index: index as u64,
                tree_size: 7,
                path: merkle::inclusion_proof(&leaves, index)
                    .unwrap()
                    .into_iter()
                    .map(B256::from)
                    .collect(),
            }),
        }
    }

    #[test]
    fn a_served_entry_proves_itself_up_to_its_commitments_root() {
        for seq in 5..=11 {
            let r = served(seq);
            assert_eq!(check(&r).unwrap(), r.commitment.as_ref());
        }
        let mut uncommitted = served(7);
        uncommitted.commitment = None;
        assert_eq!(check(&uncommitted).unwrap(), None);
    }

    #[test]
    fn every_tampering_is_refused() {
        // The entry shown says granted; the leaf committed says refused.
        let mut r = served(7);
        r.entry.granted = !r.entry.granted;
        assert_eq!(check(&r), Err(ProofError::LeafMismatch));
        // Another entry's leaf with this one's fields.
        let mut r = served(7);
        r.leaf = served(8).leaf;
        assert_eq!(check(&r), Err(ProofError::LeafMismatch));
        let mut r = served(7);
        r.leaf_hash = B256::repeat_byte(1);
        assert_eq!(check(&r), Err(ProofError::LeafHash));
        // A proof for a sibling position.
        let mut r = served(7);
        r.commitment.as_mut().unwrap().index = 3;
        assert!(matches!(check(&r), Err(ProofError::Range { .. })));
        let mut r = served(7);
        r.commitment.as_mut().unwrap().tree_size = 8;
        assert!(matches!(check(&r), Err(ProofError::Range { .. })));
        let mut r = served(7);
        r.commitment.as_mut().unwrap().path[0] = B256::repeat_byte(2);
        assert!(matches!(check(&r), Err(ProofError::Inclusion(_))));
        let mut r = served(7);
        r.commitment.as_mut().unwrap().root = B256::repeat_byte(3);
        assert!(matches!(check(&r), Err(ProofError::Inclusion(_))));
        let mut r = served(12 - 1);
        r.entry.seq = 12;
        assert!(matches!(check(&r), Err(ProofError::LeafMismatch)));
    }
}
