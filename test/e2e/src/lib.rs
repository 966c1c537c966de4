//! Whole-stack tests for Covenant. The tests in `tests/` run the repository's own entry points
//! (the scripts the README names) and check what a user would see, through `covenant-testkit`.
//!
//! This crate owns no product code; it only reads the devnet's `env` file format.

use std::{collections::BTreeMap, path::Path};

/// Reads a `KEY=value` file as written by `covenant devnet up` (comments and blank lines
/// skipped).
pub fn read_env_file(path: &Path) -> std::io::Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect())
}
