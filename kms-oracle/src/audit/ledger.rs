//! What this process knows about its own audit log, in memory: the hash and time of every entry
//! written but not yet committed on chain. The writer records each entry once its row is in
//! Postgres; the committer checks the rows it is about to commit against it (so a row edited
//! or removed in Postgres is caught) and prunes what it committed; the release path reads the
//! age of the oldest pending entry (keys are not released while it is past the bound).
//!
//! Rows written by an earlier process of this node and not committed when it stopped are loaded
//! from Postgres at start: for them the chain's links are checked, but an edit made while the
//! node was down cannot be told from the original (docs/kms.md, "known limits").

use std::{collections::BTreeMap, sync::Mutex};

use alloy::primitives::B256;

/// One pending entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    /// The entry's hash ([`super::Entry::hash`]).
    pub hash: B256,
    /// When it was decided, unix milliseconds.
    pub at_ms: u64,
}

#[derive(Debug, Default)]
struct State {
    /// The last sequence number committed on chain, and its hash when this process knows it.
    committed: (u64, Option<B256>),
    /// Entries after `committed`, by sequence number.
    pending: BTreeMap<u64, Link>,
}

/// The shared record; cheap to consult (one short lock).
#[derive(Debug, Default)]
pub struct Ledger {
    state: Mutex<State>,
}

impl Ledger {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock leaves plain data behind; keep using it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A ledger that starts after `committed` with `pending` entries (read from Postgres).
    pub fn new(committed: u64, pending: impl IntoIterator<Item = (u64, Link)>) -> Self {
        let ledger = Self::default();
        {
            let mut s = ledger.lock();
            s.committed = (committed, None);
            s.pending = pending
                .into_iter()
                .filter(|(seq, _)| *seq > committed)
                .collect();
        }
        ledger
    }

    /// Records entries whose rows are written.
    pub fn written(&self, entries: impl IntoIterator<Item = (u64, Link)>) {
        let mut s = self.lock();
        let committed = s.committed.0;
        s.pending
            .extend(entries.into_iter().filter(|(seq, _)| *seq > committed));
    }

    /// Everything through `through` is committed on chain.
    pub fn committed(&self, through: u64) {
        let mut s = self.lock();
        if through < s.committed.0 {
            return;
        }
        let hash = s
            .pending
            .get(&through)
            .map(|l| l.hash)
            .or(if through == s.committed.0 {
                s.committed.1
            } else {
                None
            });
        s.pending = s.pending.split_off(&(through + 1));
        s.committed = (through, hash);
    }

    /// The hash of entry `seq` when this process knows it: a pending entry, or the last
    /// committed one.
    pub fn hash_of(&self, seq: u64) -> Option<B256> {
        let s = self.lock();
        if seq == s.committed.0 {
            return s.committed.1;
        }
        s.pending.get(&seq).map(|l| l.hash)
    }

    /// The pending entries with `from <= seq <= to`.
    pub fn expected(&self, from: u64, to: u64) -> BTreeMap<u64, Link> {
        if from > to {
            return BTreeMap::new();
        }
        self.lock()
            .pending
            .range(from..=to)
            .map(|(s, l)| (*s, *l))
            .collect()
    }

    /// The highest sequence number written (pending or committed).
    pub fn last_written(&self) -> u64 {
        let s = self.lock();
        s.pending
            .keys()
            .next_back()
            .copied()
            .unwrap_or(s.committed.0)
    }

    /// How long the oldest pending entry has waited at `now_ms`, in milliseconds (`None` when
    /// everything is committed).
    pub fn oldest_pending_age_ms(&self, now_ms: u64) -> Option<u64> {
        let s = self.lock();
        s.pending
            .values()
            .next()
            .map(|l| now_ms.saturating_sub(l.at_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(i: u8) -> Link {
        Link {
            hash: B256::repeat_byte(i),
            at_ms: 1_000 * u64::from(i),
        }
    }

    #[test]
    fn committing_prunes_and_keeps_the_last_committed_hash() {
        let ledger = Ledger::new(2, [(2, link(2)), (3, link(3))]);
        assert_eq!(
            ledger.hash_of(2),
            None,
            "entry 2 was committed before this process"
        );
        ledger.written([(4, link(4)), (5, link(5))]);
        assert_eq!(ledger.last_written(), 5);
        assert_eq!(ledger.oldest_pending_age_ms(10_000), Some(7_000));
        assert_eq!(ledger.expected(3, 4).len(), 2);
        ledger.committed(4);
        assert_eq!(ledger.hash_of(4), Some(link(4).hash));
        assert_eq!(ledger.hash_of(3), None);
        assert_eq!(ledger.oldest_pending_age_ms(10_000), Some(5_000));
        ledger.committed(3);
        assert_eq!(ledger.hash_of(4), Some(link(4).hash), "never goes back");
        ledger.committed(5);
        assert_eq!(ledger.oldest_pending_age_ms(10_000), None);
        assert_eq!(ledger.last_written(), 5);
        ledger.written([(5, link(9))]);
        assert_eq!(
            ledger.oldest_pending_age_ms(10_000),
            None,
            "already committed"
        );
    }
}
