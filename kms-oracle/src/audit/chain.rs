//! Checks a run of audit rows before they are committed on chain: contiguous sequence numbers,
//! each entry linking to the hash of the one before it (the first to `anchor`, the last
//! committed entry's hash), the last row no earlier than the last entry this process wrote, and
//! every entry this process wrote hashing to what it wrote. Anything else means a row was
//! edited, removed or inserted behind the node's back.

use std::collections::BTreeMap;

use alloy::primitives::B256;

use super::{Entry, ledger::Link};

/// How the rows differ from the log this node wrote.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Break {
    /// Rows are missing.
    #[error("audit entries {from}..={to} are missing (found {found} rows)")]
    Missing {
        /// First expected.
        from: u64,
        /// Last expected.
        to: u64,
        /// Rows found.
        found: usize,
    },
    /// An entry does not link to the one before it.
    #[error("audit entry {seq} does not link to entry {}: its prev is {found}, the hash is {expected}", seq - 1)]
    Link {
        /// The entry.
        seq: u64,
        /// Its `prev`.
        found: B256,
        /// The previous entry's hash.
        expected: B256,
    },
    /// An entry this process wrote was changed.
    #[error(
        "audit entry {seq} was changed after it was written: it hashes to {found}, this node wrote {expected}"
    )]
    Edited {
        /// The entry.
        seq: u64,
        /// The row's hash now.
        found: B256,
        /// The hash when written.
        expected: B256,
    },
}

/// Checks `entries` (rows `from..=to`, `from` the first after the last commit, whose hash is
/// `anchor`) against `expected` (what this process wrote of that range). Returns the entries'
/// hashes, the Merkle leaves.
pub fn verify(
    from: u64,
    to: u64,
    anchor: B256,
    entries: &[Entry],
    expected: &BTreeMap<u64, Link>,
) -> Result<Vec<B256>, Break> {
    let contiguous = entries.len() as u64 == to.saturating_sub(from) + 1
        && entries.iter().zip(from..).all(|(e, seq)| e.seq == seq);
    if !contiguous {
        return Err(Break::Missing {
            from,
            to,
            found: entries.len(),
        });
    }
    let mut prev = anchor;
    let mut hashes = Vec::with_capacity(entries.len());
    for e in entries {
        if e.prev != prev {
            return Err(Break::Link {
                seq: e.seq,
                found: e.prev,
                expected: prev,
            });
        }
        let hash = e.hash();
        if let Some(link) = expected.get(&e.seq)
            && link.hash != hash
        {
            return Err(Break::Edited {
                seq: e.seq,
                found: hash,
                expected: link.hash,
            });
        }
        hashes.push(hash);
        prev = hash;
    }
    Ok(hashes)
}

#[cfg(test)]
mod tests {
    use alloy::primitives::Address;

    use super::*;
    use crate::audit::{Action, Draft};

    /// A chain of `n` entries after `anchor`, starting at `from`, and the ledger of it.
    fn chain(from: u64, n: u64, anchor: B256) -> (Vec<Entry>, BTreeMap<u64, Link>) {
        let mut prev = anchor;
        let mut entries = Vec::new();
        let mut ledger = BTreeMap::new();
        for seq in from..from + n {
            let e = Entry {
                node: Address::repeat_byte(1),
                seq,
                prev,
                draft: Draft::refusal(Action::Keys, seq * 10, format!("reason {seq}")),
            };
            prev = e.hash();
            ledger.insert(
                seq,
                Link {
                    hash: prev,
                    at_ms: seq * 10,
                },
            );
            entries.push(e);
        }
        (entries, ledger)
    }

    #[test]
    fn an_intact_chain_verifies_and_yields_its_hashes() {
        let anchor = B256::repeat_byte(7);
        let (entries, ledger) = chain(5, 4, anchor);
        let hashes = verify(5, 8, anchor, &entries, &ledger).unwrap();
        assert_eq!(hashes, entries.iter().map(Entry::hash).collect::<Vec<_>>());
        // Entries from before this process (not in its ledger) verify by their links alone.
        verify(5, 8, anchor, &entries, &BTreeMap::new()).unwrap();
    }

    #[test]
    fn an_edited_row_is_caught_even_when_the_links_after_it_are_rewritten() {
        let anchor = B256::repeat_byte(7);
        let (entries, ledger) = chain(1, 5, anchor);
        // A naive edit breaks the next link (seen even for entries this process did not write).
        let mut edited = entries.clone();
        edited[2].draft.granted = true;
        assert!(matches!(
            verify(1, 5, anchor, &edited, &BTreeMap::new()),
            Err(Break::Link { seq: 4, .. })
        ));
        // A careful editor rewrites every link after it: the ledger still knows.
        for i in 3..edited.len() {
            edited[i].prev = edited[i - 1].hash();
        }
        verify(1, 5, anchor, &edited, &BTreeMap::new()).unwrap();
        assert!(matches!(
            verify(1, 5, anchor, &edited, &ledger),
            Err(Break::Edited { seq: 3, .. })
        ));
        // The first entry must link to the committed one.
        assert!(matches!(
            verify(1, 5, B256::ZERO, &entries, &ledger),
            Err(Break::Link { seq: 1, .. })
        ));
    }

    #[test]
    fn a_removed_or_reordered_row_is_caught() {
        let anchor = B256::ZERO;
        let (entries, ledger) = chain(1, 5, anchor);
        let mut removed = entries.clone();
        removed.remove(2);
        assert!(matches!(
            verify(1, 5, anchor, &removed, &ledger),
            Err(Break::Missing { found: 4, .. })
        ));
        // Renumbered to close the gap: the links break.
        for (i, e) in removed.iter_mut().enumerate() {
            e.seq = 1 + i as u64;
        }
        assert!(verify(1, 4, anchor, &removed, &ledger).is_err());
        let mut swapped = entries;
        swapped.swap(1, 2);
        assert!(verify(1, 5, anchor, &swapped, &ledger).is_err());
    }
}
