//! Whole-stack tests, one binary: each module runs one of the repository's entry points.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod devnet;
mod explorer;
mod setup;
