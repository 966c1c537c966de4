//! What went wrong, and what to do next.

use std::fmt;

/// A command's failure: what went wrong and, where there is one, the next thing to try. Printed
/// to standard error; the process exits with status 1.
#[derive(Debug)]
pub struct Failure {
    what: String,
    next: Option<String>,
}

impl Failure {
    /// A failure without advice.
    pub fn new(what: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            next: None,
        }
    }

    /// Adds what to do next.
    pub fn next(mut self, next: impl Into<String>) -> Self {
        self.next = Some(next.into());
        self
    }

    /// Adds what to do next, unless the failure already says.
    pub(crate) fn or_next(self, next: impl Into<String>) -> Self {
        if self.next.is_some() {
            self
        } else {
            self.next(next)
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.what)?;
        if let Some(next) = &self.next {
            write!(f, "\n  next: {next}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Failure {}

/// Wraps any error with what was being done.
pub(crate) trait Context<T> {
    /// `what` failed because of the error.
    fn doing(self, what: &str) -> Result<T, Failure>;
}

impl<T, E: fmt::Display> Context<T> for Result<T, E> {
    fn doing(self, what: &str) -> Result<T, Failure> {
        self.map_err(|e| Failure::new(format!("{what}: {e}")))
    }
}
