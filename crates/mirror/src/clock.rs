//! "Now", injected: staleness bounds and certificate times read a [`Clock`] so tests can pin it.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Unix time in milliseconds.
    fn now_ms(&self) -> u64;
    /// Unix time in seconds.
    fn now_secs(&self) -> u64 {
        self.now_ms() / 1000
    }
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that shows what it is set to (tests, replays).
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock showing `ms` (unix milliseconds).
    pub fn at_ms(ms: u64) -> Self {
        Self(Arc::new(AtomicU64::new(ms)))
    }
    /// Sets the time shown (unix milliseconds).
    pub fn set_ms(&self, ms: u64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A shared clock.
pub type SharedClock = Arc<dyn Clock>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_shows_what_it_is_set_to_and_clones_share_it() {
        let clock = ManualClock::at_ms(1_500);
        let other = clock.clone();
        assert_eq!(clock.now_secs(), 1);
        other.set_ms(42_000);
        assert_eq!(clock.now_ms(), 42_000);
        assert!(SystemClock.now_secs() > 1_700_000_000);
    }
}
