//! Waiting on conditions instead of sleeping: poll a check with a short back-off until it holds,
//! fail with a message naming what was awaited when the deadline passes, and fail at once when a
//! watched process dies (with that process's log) instead of waiting out the timeout.

use std::{fmt::Display, future::Future, time::Duration};

use crate::{Error, Result};

/// The default deadline of a wait.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

const FIRST_PAUSE: Duration = Duration::from_millis(1);
const MAX_PAUSE: Duration = Duration::from_millis(50);

/// Something a wait can watch: if it stops running, the wait fails immediately with its error.
pub trait Watched: Sync {
    /// `Ok` while running; otherwise an error that carries the process's own log.
    fn ensure_alive(&self) -> Result<()>;
}

/// Starts describing a wait for `what` (a phrase such as "the indexer to reach block 10").
pub fn wait_for(what: impl Into<String>) -> Wait<'static> {
    Wait {
        what: what.into(),
        timeout: DEFAULT_TIMEOUT,
        watched: Vec::new(),
    }
}

/// A wait being set up; finish it with one of the `until` methods.
#[must_use = "a wait does nothing until one of its `until` methods runs"]
pub struct Wait<'a> {
    what: String,
    timeout: Duration,
    watched: Vec<&'a dyn Watched>,
}

impl<'a> Wait<'a> {
    /// Sets the deadline (default [`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Fails the wait as soon as `process` is no longer running.
    pub fn watching<'b>(self, process: &'b dyn Watched) -> Wait<'b>
    where
        'a: 'b,
    {
        let mut watched: Vec<&'b dyn Watched> = self.watched;
        watched.push(process);
        Wait {
            what: self.what,
            timeout: self.timeout,
            watched,
        }
    }

    /// Polls `condition` until it returns true.
    pub fn until(self, mut condition: impl FnMut() -> bool) -> Result<()> {
        self.until_ok(|| {
            if condition() {
                Ok(())
            } else {
                Err("condition not yet true")
            }
        })
    }

    /// Polls `probe` until it returns `Ok`, and returns that value. The last `Err` is quoted in the
    /// timeout error.
    pub fn until_ok<T, E: Display>(self, mut probe: impl FnMut() -> Result<T, E>) -> Result<T> {
        let start = std::time::Instant::now();
        let mut pause = FIRST_PAUSE;
        loop {
            self.check_watched()?;
            let last = match probe() {
                Ok(value) => return Ok(value),
                Err(e) => e.to_string(),
            };
            if start.elapsed() >= self.timeout {
                return Err(self.timed_out(last));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }

    /// Async form of [`Wait::until`], for tests on a tokio runtime.
    pub async fn until_async<F>(self, mut condition: impl FnMut() -> F) -> Result<()>
    where
        F: Future<Output = bool>,
    {
        self.until_ok_async(|| {
            let check = condition();
            async move {
                if check.await {
                    Ok(())
                } else {
                    Err("condition not yet true")
                }
            }
        })
        .await
    }

    /// Async form of [`Wait::until_ok`], for tests on a tokio runtime.
    pub async fn until_ok_async<T, E: Display, F>(self, mut probe: impl FnMut() -> F) -> Result<T>
    where
        F: Future<Output = Result<T, E>>,
    {
        let start = tokio::time::Instant::now();
        let mut pause = FIRST_PAUSE;
        loop {
            self.check_watched()?;
            let last = match probe().await {
                Ok(value) => return Ok(value),
                Err(e) => e.to_string(),
            };
            if start.elapsed() >= self.timeout {
                return Err(self.timed_out(last));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }

    fn check_watched(&self) -> Result<()> {
        self.watched
            .iter()
            .try_for_each(|process| process.ensure_alive())
    }

    fn timed_out(&self, last: String) -> Error {
        Error::Timeout {
            what: self.what.clone(),
            after: self.timeout,
            last: Some(last),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    struct Dead;
    impl Watched for Dead {
        fn ensure_alive(&self) -> Result<()> {
            Err(Error::Exited {
                name: "fake".into(),
                pid: 1,
                status: "exit status: 3".into(),
                log: "boom\n".into(),
            })
        }
    }

    #[test]
    fn returns_once_the_condition_holds() {
        let mut calls = 0;
        wait_for("the third call")
            .until(|| {
                calls += 1;
                calls == 3
            })
            .unwrap();
        assert_eq!(calls, 3);
    }

    #[test]
    fn returns_the_probe_value() {
        let mut calls = 0;
        let value = wait_for("a value")
            .until_ok(|| {
                calls += 1;
                if calls < 2 {
                    Err("not yet")
                } else {
                    Ok(calls * 10)
                }
            })
            .unwrap();
        assert_eq!(value, 20);
    }

    #[test]
    fn timeout_names_what_was_awaited_and_the_last_observation() {
        let err = wait_for("the moon to turn green")
            .timeout(Duration::from_millis(20))
            .until_ok(|| Err::<(), _>("still grey"))
            .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        let message = err.to_string();
        assert!(message.contains("the moon to turn green"), "{message}");
        assert!(message.contains("still grey"), "{message}");
    }

    #[test]
    fn a_dead_watched_process_fails_the_wait_at_once_with_its_log() {
        let err = wait_for("something that never happens")
            .timeout(Duration::from_secs(3600))
            .watching(&Dead)
            .until(|| false)
            .unwrap_err();
        assert!(matches!(err, Error::Exited { .. }), "{err}");
        assert!(err.to_string().contains("boom"), "{err}");
    }

    #[test]
    fn sees_a_condition_set_by_another_thread() {
        let flag = AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| flag.store(true, Ordering::SeqCst));
            wait_for("the other thread's flag")
                .until(|| flag.load(Ordering::SeqCst))
                .unwrap();
        });
    }

    #[tokio::test]
    async fn async_wait_times_out_with_a_message() {
        let err = wait_for("an async thing")
            .timeout(Duration::from_millis(20))
            .until_async(|| async { false })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("an async thing"), "{err}");
    }

    #[tokio::test]
    async fn async_wait_returns_the_probe_value() {
        let mut calls = 0u32;
        let value = wait_for("an async value")
            .until_ok_async(|| {
                calls += 1;
                let ready = calls >= 3;
                async move { if ready { Ok(calls) } else { Err("not yet") } }
            })
            .await
            .unwrap();
        assert_eq!(value, 3);
    }
}
