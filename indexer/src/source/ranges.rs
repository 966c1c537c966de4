//! Adaptive `eth_getLogs` range sizing: ranges grow while they come back sparse and shrink when
//! they are dense or the node refuses them. Pure logic; the fetcher feeds it outcomes.

/// The next range size, from what earlier ranges returned.
#[derive(Clone, Debug)]
pub struct RangeSizer {
    size: u64,
    max: u64,
    target_logs: u64,
}

impl RangeSizer {
    /// Starts at `initial` blocks, never above `max`, aiming at `target_logs` logs per range.
    pub fn new(initial: u64, max: u64, target_logs: u64) -> Self {
        let max = max.max(1);
        Self {
            size: initial.clamp(1, max),
            max,
            target_logs: target_logs.max(1),
        }
    }

    /// The current size in blocks.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The next range starting at `from`, ending no later than `to`.
    pub fn next(&self, from: u64, to: u64) -> (u64, u64) {
        (from, from.saturating_add(self.size - 1).min(to))
    }

    /// A range of `blocks` blocks returned `logs` logs: aim the next one at the target density.
    pub fn record(&mut self, blocks: u64, logs: u64) {
        let blocks = blocks.max(1);
        let ideal = if logs == 0 {
            blocks.saturating_mul(2)
        } else {
            // blocks × target / logs, growing at most 2× per step.
            ((blocks as u128 * self.target_logs as u128) / logs as u128).min(blocks as u128 * 2)
                as u64
        };
        // A range shorter than the current size (the last one before the head) says little
        // about density: it may only shrink the size, and only when it was over the target.
        if blocks >= self.size {
            self.size = ideal.clamp(1, self.max);
        } else if logs > self.target_logs {
            self.size = ideal.clamp(1, self.max).min(self.size);
        }
    }

    /// The node refused a range of `blocks` blocks (too many results, timeout, size limit).
    pub fn refused(&mut self, blocks: u64) {
        self.size = (blocks / 2).clamp(1, self.max).min(self.size);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_when_sparse_and_is_capped() {
        let mut s = RangeSizer::new(100, 1000, 10_000);
        for _ in 0..10 {
            let (a, b) = s.next(0, u64::MAX);
            s.record(b - a + 1, 0);
        }
        assert_eq!(s.size(), 1000);
    }

    #[test]
    fn shrinks_towards_target_density() {
        let mut s = RangeSizer::new(1000, 100_000, 10_000);
        s.record(1000, 50_000); // 50 logs per block
        assert_eq!(s.size(), 200);
        s.record(200, 10_000);
        assert_eq!(s.size(), 200);
    }

    #[test]
    fn refusal_halves_and_never_reaches_zero() {
        let mut s = RangeSizer::new(8, 100, 10);
        for expected in [4, 2, 1, 1] {
            s.refused(s.size());
            assert_eq!(s.size(), expected);
        }
    }

    #[test]
    fn next_never_passes_the_end() {
        let s = RangeSizer::new(500, 1000, 10);
        assert_eq!(s.next(10, 20), (10, 20));
        assert_eq!(s.next(10, 10_000), (10, 509));
        assert_eq!(s.next(u64::MAX - 1, u64::MAX), (u64::MAX - 1, u64::MAX));
    }

    #[test]
    fn a_short_last_range_does_not_inflate_the_size() {
        let mut s = RangeSizer::new(1000, 100_000, 10_000);
        s.record(3, 0);
        assert_eq!(s.size(), 1000);
    }
}
