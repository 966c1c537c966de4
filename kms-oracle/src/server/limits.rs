//! What anonymous traffic may cost: a cap on concurrent connections, a per-source rate of new
//! connections, and log lines about unauthenticated clients at a bounded rate. None of it
//! touches Postgres or the chain: a refused connection is a metric and, now and then, a line.

use std::{
    net::IpAddr,
    num::NonZeroU32,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Connection limits (flags `--max-connections`, `--connections-per-source-per-sec`).
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// Connections served at once; more are closed on accept.
    pub max_connections: usize,
    /// New connections per second from one source address (bursts of twice that).
    pub per_source_per_sec: NonZeroU32,
}

/// Why a connection was closed on accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// `max_connections` are open.
    Busy,
    /// Its source opened too many connections lately.
    SourceRate,
}

impl Closed {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Busy => "connection_limit",
            Self::SourceRate => "source_rate",
        }
    }
}

/// Admission of new connections.
#[derive(Debug)]
pub struct Admission {
    open: Arc<Semaphore>,
    per_source: DefaultKeyedRateLimiter<IpAddr>,
}

impl Admission {
    /// Admission under `limits`.
    pub fn new(limits: ConnectionLimits) -> Self {
        let burst = limits
            .per_source_per_sec
            .saturating_mul(NonZeroU32::MIN.saturating_add(1));
        Self {
            open: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            per_source: RateLimiter::keyed(
                Quota::per_second(limits.per_source_per_sec).allow_burst(burst),
            ),
        }
    }

    /// Admits a connection from `source`: the permit is held until it closes.
    pub fn admit(&self, source: IpAddr) -> Result<OwnedSemaphorePermit, Closed> {
        if self.per_source.check_key(&source).is_err() {
            return Err(Closed::SourceRate);
        }
        self.open
            .clone()
            .try_acquire_owned()
            .map_err(|_| Closed::Busy)
    }

    /// Forgets sources whose budget is full again (bounds the table; called periodically).
    pub fn forget_idle_sources(&self) {
        self.per_source.retain_recent();
        self.per_source.shrink_to_fit();
    }

    /// Sources currently tracked.
    pub fn tracked_sources(&self) -> usize {
        self.per_source.len()
    }
}

/// At most one line per second per kind of event; the lines not written are counted into the
/// next one.
#[derive(Debug)]
pub struct LogLimiter {
    limiter: DefaultDirectRateLimiter,
    suppressed: AtomicU64,
}

impl Default for LogLimiter {
    fn default() -> Self {
        Self {
            limiter: RateLimiter::direct(Quota::per_second(NonZeroU32::MIN)),
            suppressed: AtomicU64::new(0),
        }
    }
}

impl LogLimiter {
    /// `Some(lines suppressed since the last one)` when a line may be written now.
    pub fn allow(&self) -> Option<u64> {
        if self.limiter.check().is_ok() {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_gets_its_burst_then_is_refused_while_others_are_not() {
        let admission = Admission::new(ConnectionLimits {
            max_connections: 100,
            per_source_per_sec: NonZeroU32::new(5).unwrap(),
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let held: Vec<_> = (0..10).map(|_| admission.admit(a).unwrap()).collect();
        assert_eq!(admission.admit(a).unwrap_err(), Closed::SourceRate);
        assert!(admission.admit(b).is_ok());
        assert_eq!(admission.tracked_sources(), 2);
        drop(held);
    }

    #[test]
    fn connections_over_the_cap_are_refused_until_one_closes() {
        let admission = Admission::new(ConnectionLimits {
            max_connections: 2,
            per_source_per_sec: NonZeroU32::new(1000).unwrap(),
        });
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let first = admission.admit(ip).unwrap();
        let _second = admission.admit(ip).unwrap();
        assert_eq!(admission.admit(ip).unwrap_err(), Closed::Busy);
        drop(first);
        assert!(admission.admit(ip).is_ok());
    }

    #[test]
    fn log_lines_are_limited_and_the_rest_counted() {
        let limiter = LogLimiter::default();
        assert_eq!(limiter.allow(), Some(0));
        for _ in 0..99 {
            assert_eq!(limiter.allow(), None);
        }
        assert_eq!(limiter.suppressed.load(Ordering::Relaxed), 99);
    }
}
