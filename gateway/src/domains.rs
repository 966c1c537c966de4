//! Custom domains: a name outside the base domain is routed to an app only when the app claims it
//! on chain (`DomainRegistry`, at the finalized block: mirror and `eth_call` agree) **and** the
//! DNS TXT record `_covenant.<domain>` names that app. Any number of apps may claim a name (a
//! claim costs only gas); the DNS record, which only the name's holder can publish, says which
//! claim counts.
//!
//! The record is read through `covenant_dns`, which documents its format and keeps each answer
//! for 30 s. Records naming two claiming apps are refused as ambiguous.
//!
//! What it costs an anonymous client: a name that no app claims at the block is refused from
//! memory (the set of claimed names is read once per block), so only names someone paid gas to
//! claim ever cause a DNS query or a chain read; answers are kept for 30 s.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use alloy::primitives::Address;
use covenant_dns::Records;
use covenant_mirror::{Finalized, PolicyView};

/// Names whose decisions are kept at most (then the cache starts over).
const MAX_KEPT: usize = 10_000;

/// A domain's app (or why none) at a block number.
type Decided = (u64, Result<Address, String>);

/// Custom domain resolution.
#[derive(Debug)]
pub struct Domains {
    records: Records,
    claimed: tokio::sync::Mutex<Option<(u64, Arc<HashSet<String>>)>>,
    decided: Mutex<HashMap<String, Decided>>,
}

impl Domains {
    /// Resolves with the system's DNS configuration, or only with `server` (UDP) when given.
    pub fn new(server: Option<SocketAddr>) -> Result<Self, String> {
        Ok(Self {
            records: Records::new(server)?,
            claimed: tokio::sync::Mutex::new(None),
            decided: Mutex::new(HashMap::new()),
        })
    }

    async fn claimed(
        &self,
        view: &PolicyView,
        block: &Finalized,
    ) -> Result<Arc<HashSet<String>>, String> {
        let mut claimed = self.claimed.lock().await;
        if let Some((number, set)) = claimed.as_ref()
            && *number == block.number
        {
            return Ok(set.clone());
        }
        let set: Arc<HashSet<String>> = Arc::new(
            view.claimed_domains(block)
                .await
                .map_err(|e| format!("the domain claims cannot be read now: {e}"))?
                .into_iter()
                .collect(),
        );
        *claimed = Some((block.number, set.clone()));
        Ok(set)
    }

    /// The app `domain` (canonical) is routed to at `block`, or why none; decided once per
    /// block (each request on an open connection asks again, so a released claim or a changed
    /// record takes effect there too).
    pub async fn app_for(
        &self,
        view: &PolicyView,
        block: &Finalized,
        domain: &str,
    ) -> Result<Address, String> {
        if let Some((number, decided)) = self
            .decided
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(domain)
            && *number == block.number
        {
            return decided.clone();
        }
        let decided = self.decide(view, block, domain).await;
        let mut cache = self
            .decided
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= MAX_KEPT {
            cache.clear();
        }
        cache.insert(domain.to_owned(), (block.number, decided.clone()));
        decided
    }

    async fn decide(
        &self,
        view: &PolicyView,
        block: &Finalized,
        domain: &str,
    ) -> Result<Address, String> {
        if !self.claimed(view, block).await?.contains(domain) {
            return Err(format!("no app claims {domain}"));
        }
        let named = self.records.apps(domain).await?;
        let mut chosen = None;
        for app in named {
            let claimed = view
                .domain_claimed(block, domain, app)
                .await
                .map_err(|e| format!("the claim cannot be read now: {e}"))?;
            if claimed {
                if chosen.is_some() {
                    return Err(format!(
                        "_covenant.{domain} names more than one claiming app"
                    ));
                }
                chosen = Some(app);
            }
        }
        chosen.ok_or_else(|| format!("_covenant.{domain} names no app that claims {domain}"))
    }
}
