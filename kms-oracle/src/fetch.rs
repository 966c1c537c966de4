//! What the collateral clients ([`crate::pccs`], [`crate::kds`]) share: a bounded HTTP GET under
//! a base URL, and an atomic write of a cache file. Nothing fetched here is trusted; the callers
//! verify it.

use std::{path::Path, time::Duration};

/// An HTTP client whose every request is bounded by `timeout`.
pub(crate) fn client(timeout: Duration, call: &'static str) -> crate::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| crate::Error::Chain {
            call,
            reason: e.to_string(),
        })
}

/// A successful answer to GET `base`/`path_and_query` whose announced length is within `max`.
pub(crate) async fn get(
    http: &reqwest::Client,
    base: &url::Url,
    path_and_query: &str,
    max: usize,
) -> Result<reqwest::Response, String> {
    let url = base
        .join(path_and_query)
        .map_err(|e| format!("{path_and_query}: {e}"))?;
    let response = http
        .get(url.clone())
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("GET {url}: {}", response.status()));
    }
    if response.content_length().is_some_and(|n| n > max as u64) {
        return Err(format!("GET {url}: response too large"));
    }
    Ok(response)
}

/// `response`'s body, at most `max` bytes.
pub(crate) async fn body(response: reqwest::Response, max: usize) -> Result<Vec<u8>, String> {
    let bytes = response
        .bytes()
        .await
        .map_err(|e| format!("reading the body: {e}"))?;
    if bytes.len() > max {
        return Err("response too large".into());
    }
    Ok(bytes.to_vec())
}

/// Writes `bytes` to `file` through a temporary file and a rename, so a reader never sees half
/// of it. A failure is logged (a cache that cannot be written is only slower).
pub(crate) fn write_cache(file: &Path, bytes: &[u8]) {
    let write = || -> std::io::Result<()> {
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = file.with_extension("tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, file)
    };
    if let Err(e) = write() {
        tracing::warn!(target: "kms::collateral", file = %file.display(), error = %e, "could not write the collateral cache");
    }
}
