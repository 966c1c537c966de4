//! Whether the sync loop is keeping up: its last success and, if the latest step failed, why.

use std::sync::Mutex;

use tokio::time::Instant;

/// Shared between the sync loop (writer) and `/healthz` (reader).
#[derive(Debug, Default)]
pub struct Health {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    last_ok: Option<Instant>,
    last_error: Option<String>,
}

/// What `/healthz` reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// The latest step succeeded within the staleness bound.
    Healthy,
    /// Why not.
    Unhealthy(String),
}

impl Health {
    /// The latest step succeeded.
    pub fn ok(&self) {
        if let Ok(mut g) = self.inner.lock() {
            g.last_ok = Some(Instant::now());
            g.last_error = None;
        }
    }

    /// The latest step failed with `error`.
    pub fn failed(&self, error: &str) {
        if let Ok(mut g) = self.inner.lock() {
            g.last_error = Some(error.to_owned());
        }
    }

    /// Healthy iff the latest step succeeded and the last success is younger than `stale_after`.
    pub fn status(&self, stale_after: std::time::Duration) -> Status {
        let Ok(g) = self.inner.lock() else {
            return Status::Unhealthy("health state poisoned".into());
        };
        if let Some(e) = &g.last_error {
            return Status::Unhealthy(e.clone());
        }
        match g.last_ok {
            None => Status::Unhealthy("not synced yet".into()),
            Some(t) if t.elapsed() > stale_after => {
                Status::Unhealthy(format!("no successful sync for {:?}", t.elapsed()))
            }
            Some(_) => Status::Healthy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn unhealthy_until_synced_on_error_and_when_stale() {
        let h = Health::default();
        assert!(matches!(
            h.status(Duration::from_secs(5)),
            Status::Unhealthy(_)
        ));
        h.ok();
        assert_eq!(h.status(Duration::from_secs(5)), Status::Healthy);
        h.failed("rpc eth_blockNumber failed: connection refused");
        assert_eq!(
            h.status(Duration::from_secs(5)),
            Status::Unhealthy("rpc eth_blockNumber failed: connection refused".into())
        );
        h.ok();
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(
            matches!(h.status(Duration::from_secs(5)), Status::Unhealthy(m) if m.contains("no successful sync"))
        );
    }
}
