//! Which contracts the mirror follows: the deployment's, plus every app the registry registers
//! (the log filter grows as apps appear; it never shrinks, so deregistered apps stay followed).

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::RwLock,
};

use alloy::{primitives::Address, rpc::types::Log, sol_types::SolEvent};
use covenant_chain::{Deployment, kms_registry::KmsRegistry};

use crate::{abi::Source, project::Lookup};

/// The contracts the mirror follows: the deployment's, plus every app the registry registered.
#[derive(Debug)]
pub struct Contracts {
    statics: HashMap<Address, Source>,
    governor: Address,
    kms_registry: Address,
    /// Append-only: the filter a range was fetched with is a prefix of it, so the apps added since
    /// are exactly the tail (the sync loop re-fetches a range for them).
    addresses: RwLock<Vec<Address>>,
    apps: RwLock<HashSet<Address>>,
}

impl Contracts {
    /// The deployment's contracts and the apps already in the mirror.
    pub fn new(deployment: &Deployment, known_apps: impl IntoIterator<Item = Address>) -> Self {
        let c = &deployment.contracts;
        let statics = HashMap::from([
            (c.kms_registry, Source::KmsRegistry),
            (c.domain_registry, Source::DomainRegistry),
            (c.covenant_governor, Source::Governor),
            (c.timelock_controller, Source::Timelock),
            (c.covenant_token, Source::Token),
            (c.covenant_guardian, Source::Guardian),
        ]);
        let mut addresses: Vec<Address> = statics.keys().copied().collect();
        addresses.sort();
        let apps: HashSet<Address> = known_apps.into_iter().collect();
        let mut sorted_apps: Vec<Address> = apps.iter().copied().collect();
        sorted_apps.sort();
        addresses.extend(sorted_apps);
        Self {
            statics,
            governor: c.covenant_governor,
            kms_registry: c.kms_registry,
            addresses: RwLock::new(addresses),
            apps: RwLock::new(apps),
        }
    }

    /// The current log filter: the deployment's contracts, then apps in the order they appeared.
    pub fn addresses(&self) -> Vec<Address> {
        self.addresses.read().map(|a| a.clone()).unwrap_or_default()
    }

    /// Starts following `app`.
    pub fn add_app(&self, app: Address) {
        if let (Ok(mut apps), Ok(mut addresses)) = (self.apps.write(), self.addresses.write())
            && apps.insert(app)
        {
            addresses.push(app);
        }
    }

    /// Apps registered in `logs` (by the registry) that the filter does not know yet, each with
    /// the position (block, transaction index) of the transaction that registered it.
    pub fn new_apps_in(&self, logs: &[Log]) -> BTreeMap<Address, (u64, u64)> {
        let known = self.apps.read();
        let mut found = BTreeMap::new();
        for l in logs.iter().filter(|l| l.address() == self.kms_registry) {
            let topics = l.topics();
            let Some(t0) = topics.first() else { continue };
            if *t0 != KmsRegistry::AppCreated::SIGNATURE_HASH
                && *t0 != KmsRegistry::CustomAppRegistered::SIGNATURE_HASH
            {
                continue;
            }
            let Some(app) = topics.get(1).map(|t| Address::from_word(*t)) else {
                continue;
            };
            // Already followed: a known app, or one of the deployment's own contracts admitted as
            // a custom app (it stays what it is: its whole history is mirrored).
            if known.as_ref().map(|k| k.contains(&app)).unwrap_or(false)
                || self.statics.contains_key(&app)
            {
                continue;
            }
            let position = (
                l.block_number.unwrap_or(0),
                l.transaction_index.unwrap_or(0),
            );
            found.entry(app).or_insert(position);
        }
        found
    }
}

impl Lookup for Contracts {
    fn source_of(&self, address: Address) -> Option<Source> {
        if let Some(s) = self.statics.get(&address) {
            return Some(*s);
        }
        self.apps
            .read()
            .ok()
            .and_then(|a| a.contains(&address).then_some(Source::App))
    }
    fn governor(&self) -> Address {
        self.governor
    }
}
