//! `covenant-dns`: the DNS side of custom domains. The TXT record `_covenant.<domain>` names the
//! app whose on-chain claim (`DomainRegistry`) counts. Its value is the app id, `0x` and 40 hex
//! digits (case does not matter); records of any other form are ignored. The gateway routes by
//! it, `covenant verify` checks it and the explorer shows it, all through this crate.
//!
//! This crate owns the record's name and format, the resolver's set-up and a bounded cache of
//! answers ([`Records`]). It must not decide anything about claims (callers combine its answer
//! with the chain at their block) and writes nothing.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use alloy::primitives::Address;
use hickory_resolver::{
    TokioResolver,
    config::{ConnectionConfig, NameServerConfig, ResolverConfig},
    net::runtime::TokioRuntimeProvider,
    proto::rr::RData,
};

/// How long an answer (or its absence, or a failure) is kept.
pub const KEPT_FOR: Duration = Duration::from_secs(30);
/// Names whose answers are kept at most (then the cache starts over).
const MAX_KEPT: usize = 10_000;

/// The app ids a TXT record set names (sorted, without repeats).
pub fn apps_named<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Vec<Address> {
    let mut apps: Vec<Address> = values
        .into_iter()
        .filter_map(|v| std::str::from_utf8(v).ok())
        .map(str::trim)
        .filter(|v| v.len() == 42 && v.starts_with("0x"))
        .filter_map(|v| v.parse().ok())
        .collect();
    apps.sort();
    apps.dedup();
    apps
}

/// The TXT record's name for `domain` (canonical, no trailing dot), fully qualified.
pub fn txt_name(domain: &str) -> String {
    format!("_covenant.{domain}.")
}

/// How long one query may take, and how many times it is tried.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
const QUERY_ATTEMPTS: usize = 2;

/// A resolver with the system's DNS configuration, or asking only `server` (UDP) when given;
/// each query waits at most 2 s and is tried twice.
pub fn resolver(server: Option<SocketAddr>) -> Result<TokioResolver, String> {
    let mut builder = match server {
        None => TokioResolver::builder_tokio()
            .map_err(|e| format!("the system DNS configuration: {e}"))?,
        Some(server) => {
            let mut udp = ConnectionConfig::udp();
            udp.port = server.port();
            let config = ResolverConfig::from_name_servers(vec![NameServerConfig::new(
                server.ip(),
                true,
                vec![udp],
            )]);
            TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
        }
    };
    builder.options_mut().timeout = QUERY_TIMEOUT;
    builder.options_mut().attempts = QUERY_ATTEMPTS;
    builder
        .build()
        .map_err(|e| format!("the DNS resolver: {e}"))
}

/// The apps `_covenant.<domain>` names, asked now: none when the name or the record does not
/// exist; an error when the DNS could not answer.
pub async fn lookup_apps(resolver: &TokioResolver, domain: &str) -> Result<Vec<Address>, String> {
    let name = txt_name(domain);
    match resolver.txt_lookup(name.as_str()).await {
        Ok(lookup) => {
            let values: Vec<Vec<u8>> = lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::TXT(txt) => Some(txt.txt_data.concat()),
                    _ => None,
                })
                .collect();
            Ok(apps_named(values.iter().map(Vec::as_slice)))
        }
        Err(e) if e.is_no_records_found() || e.is_nx_domain() => Ok(Vec::new()),
        Err(e) => Err(format!("looking up {name}: {e}")),
    }
}

/// The apps `_covenant.<domain>` names, or why the DNS could not say.
pub type Named = Result<Vec<Address>, String>;

/// `_covenant.<domain>` answers, each kept for [`KEPT_FOR`]: however often a caller asks, each
/// name costs at most one query per 30 s.
pub struct Records {
    resolver: TokioResolver,
    kept: Mutex<HashMap<String, (Instant, Named)>>,
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records").finish_non_exhaustive()
    }
}

impl Records {
    /// Records read with [`resolver`]`(server)`.
    pub fn new(server: Option<SocketAddr>) -> Result<Self, String> {
        Ok(Self {
            resolver: resolver(server)?,
            kept: Mutex::new(HashMap::new()),
        })
    }

    /// The apps `_covenant.<domain>` names (`domain` canonical), from the cache when fresh.
    pub async fn apps(&self, domain: &str) -> Named {
        if let Some((at, named)) = self.lock().get(domain)
            && at.elapsed() < KEPT_FOR
        {
            return named.clone();
        }
        let named = lookup_apps(&self.resolver, domain).await;
        let mut kept = self.lock();
        if kept.len() >= MAX_KEPT {
            kept.clear();
        }
        kept.insert(domain.to_owned(), (Instant::now(), named.clone()));
        named
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Named)>> {
        self.kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_app_ids_are_read_from_the_record() {
        let app = Address::repeat_byte(0xab);
        let upper = format!("0x{}", hex::encode_upper(app.as_slice()));
        let values: Vec<Vec<u8>> = vec![
            app.to_string().into_bytes(),
            format!(" {upper} ").into_bytes(),
            b"v=spf1 -all".to_vec(),
            hex::encode(app.as_slice()).into_bytes(),
            format!("{app}00").into_bytes(),
            vec![0xff, 0xfe],
        ];
        assert_eq!(apps_named(values.iter().map(Vec::as_slice)), vec![app]);
    }
}
