//! Which logs the mirror follows, independent of how many apps exist: the deployment's own
//! contracts and the custom apps governance admitted, by address; every factory app by the App
//! ABI's event signatures (one topic filter, whatever the number of apps), kept when the store
//! knows the emitter as an app. App creation is permissionless, so nothing here grows a query
//! with the number of apps.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::RwLock,
};

use alloy::{
    primitives::{Address, B256},
    rpc::types::Log,
    sol_types::SolEvent,
};
use covenant_chain::{Deployment, app::App, kms_registry::KmsRegistry};

use crate::{abi::Source, project::Lookup, source::LogFilter};

/// How an app is followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppKind {
    /// Created by the registry's factory: only logs with an App ABI event signature are kept.
    Factory,
    /// Admitted by governance as a custom policy contract: every log is kept (by address).
    Custom,
}

/// The topic-0 values of the App ABI's events: the filter that finds every factory app's logs.
pub fn app_event_topics() -> Vec<B256> {
    App::AppEvents::SELECTORS
        .iter()
        .map(|s| B256::from(*s))
        .collect()
}

/// The contracts the mirror follows: the deployment's, plus every app the registry registered.
#[derive(Debug)]
pub struct Contracts {
    statics: HashMap<Address, Source>,
    governor: Address,
    kms_registry: Address,
    app_topics: HashSet<B256>,
    /// The address filter: append-only, so the filter a range was fetched with is a prefix of it
    /// and the custom apps added since are exactly the tail (the sync loop re-fetches a range for
    /// them). Factory apps never enter it.
    addresses: RwLock<Vec<Address>>,
    apps: RwLock<HashMap<Address, AppKind>>,
}

impl Contracts {
    /// The deployment's contracts and the apps already in the mirror (`true`: ever custom).
    pub fn new(
        deployment: &Deployment,
        known_apps: impl IntoIterator<Item = (Address, bool)>,
    ) -> Self {
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
        let apps: HashMap<Address, AppKind> = known_apps
            .into_iter()
            .map(|(a, custom)| {
                (
                    a,
                    if custom {
                        AppKind::Custom
                    } else {
                        AppKind::Factory
                    },
                )
            })
            .collect();
        let mut custom: Vec<Address> = apps
            .iter()
            .filter(|(a, k)| **k == AppKind::Custom && !statics.contains_key(*a))
            .map(|(a, _)| *a)
            .collect();
        custom.sort();
        addresses.extend(custom);
        Self {
            statics,
            governor: c.covenant_governor,
            kms_registry: c.kms_registry,
            app_topics: app_event_topics().into_iter().collect(),
            addresses: RwLock::new(addresses),
            apps: RwLock::new(apps),
        }
    }

    /// The current log filter.
    pub fn filter(&self) -> LogFilter {
        LogFilter {
            addresses: self.addresses.read().map(|a| a.clone()).unwrap_or_default(),
            topics: self.app_topics.iter().copied().collect(),
        }
    }

    /// The address filter's length (see [`Self::addresses_since`]).
    pub fn address_count(&self) -> usize {
        self.addresses.read().map(|a| a.len()).unwrap_or_default()
    }

    /// The addresses added to the filter after its first `count`.
    pub fn addresses_since(&self, count: usize) -> Vec<Address> {
        self.addresses
            .read()
            .map(|a| a.iter().skip(count).copied().collect())
            .unwrap_or_default()
    }

    /// Starts following `app`. A custom app joins the address filter; an app that was ever
    /// custom stays custom.
    pub fn add_app(&self, app: Address, kind: AppKind) {
        let (Ok(mut apps), Ok(mut addresses)) = (self.apps.write(), self.addresses.write()) else {
            return;
        };
        let previous = apps.get(&app).copied();
        if previous == Some(AppKind::Custom) {
            return;
        }
        apps.insert(app, kind);
        if kind == AppKind::Custom && !self.statics.contains_key(&app) {
            addresses.push(app);
        }
    }

    /// Whether the mirror keeps `log` of a contract it follows as `source`: a factory app's logs
    /// only with an App ABI event signature, the same rule for ranges and single blocks (so the
    /// mirror does not depend on how a block was fetched).
    pub fn keeps(&self, log: &Log, source: Source, kind: Option<AppKind>) -> bool {
        if source != Source::App || kind == Some(AppKind::Custom) {
            return true;
        }
        log.topics()
            .first()
            .is_some_and(|t0| self.app_topics.contains(t0))
    }

    /// How `app` is followed, if it is.
    pub fn app_kind(&self, app: Address) -> Option<AppKind> {
        self.apps.read().ok().and_then(|a| a.get(&app).copied())
    }

    /// Apps registered in `logs` (by the registry) that are not followed as such yet, with the
    /// positions of the transactions that registered them. A factory app that governance later
    /// admits as custom is listed again, custom from that transaction on.
    pub fn new_apps_in(&self, logs: &[Log]) -> BTreeMap<Address, NewApp> {
        let known = self.apps.read();
        let mut found: BTreeMap<Address, NewApp> = BTreeMap::new();
        for l in logs.iter().filter(|l| l.address() == self.kms_registry) {
            let topics = l.topics();
            let Some(t0) = topics.first() else { continue };
            let kind = if *t0 == KmsRegistry::AppCreated::SIGNATURE_HASH {
                AppKind::Factory
            } else if *t0 == KmsRegistry::CustomAppRegistered::SIGNATURE_HASH {
                AppKind::Custom
            } else {
                continue;
            };
            let Some(app) = topics.get(1).map(|t| Address::from_word(*t)) else {
                continue;
            };
            // The deployment's own contracts admitted as a custom app stay what they are (their
            // whole history is mirrored).
            if self.statics.contains_key(&app) {
                continue;
            }
            let current = known.as_ref().ok().and_then(|k| k.get(&app).copied());
            if current == Some(AppKind::Custom) || current == Some(kind) {
                continue;
            }
            let position = (
                l.block_number.unwrap_or(0),
                l.transaction_index.unwrap_or(0),
            );
            let entry = found.entry(app).or_insert(NewApp {
                since: position,
                custom_since: None,
            });
            if kind == AppKind::Custom && entry.custom_since.is_none() {
                entry.custom_since = Some(position);
            }
        }
        found
    }
}

/// An app registered in a batch of logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewApp {
    /// (block, transaction index) of its first registration in the batch.
    pub since: (u64, u64),
    /// Where it was admitted as a custom app, if it was.
    pub custom_since: Option<(u64, u64)>,
}

impl NewApp {
    /// How a log at `position` of this app is followed by this registration (`None`: the
    /// registration comes later).
    pub fn kind_at(&self, position: (u64, u64)) -> Option<AppKind> {
        match self.custom_since {
            Some(c) if position >= c => Some(AppKind::Custom),
            _ if position >= self.since && self.custom_since != Some(self.since) => {
                Some(AppKind::Factory)
            }
            _ => None,
        }
    }

    /// How the app is followed after the batch.
    pub fn kind(&self) -> AppKind {
        if self.custom_since.is_some() {
            AppKind::Custom
        } else {
            AppKind::Factory
        }
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
            .and_then(|a| a.contains_key(&address).then_some(Source::App))
    }
    fn governor(&self) -> Address {
        self.governor
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Bytes, Log as PrimitiveLog, LogData};

    use super::*;

    fn deployment() -> Deployment {
        let a = |b: u8| Address::repeat_byte(b);
        Deployment {
            chain_id: 31_337,
            start_block: 0,
            contracts: covenant_chain::DeploymentContracts {
                kms_registry: a(1),
                kms_registry_implementation: a(2),
                app_implementation: a(3),
                domain_registry: a(4),
                domain_registry_implementation: a(5),
                covenant_governor: a(6),
                covenant_token: a(7),
                timelock_controller: a(8),
                covenant_guardian: a(9),
            },
        }
    }

    fn log(address: Address, topic0: B256, block: u64, tx: u64, topics: &[B256]) -> Log {
        let mut all = vec![topic0];
        all.extend_from_slice(topics);
        Log {
            inner: PrimitiveLog {
                address,
                data: LogData::new_unchecked(all, Bytes::new()),
            },
            block_number: Some(block),
            transaction_index: Some(tx),
            ..Log::default()
        }
    }

    fn app(n: u32) -> Address {
        let mut b = [0xaa; 20];
        b[16..].copy_from_slice(&n.to_be_bytes());
        Address::from(b)
    }

    #[test]
    fn the_log_filter_does_not_grow_with_factory_apps() {
        let known = (0..10_000).map(|n| (app(n), false));
        let contracts = Contracts::new(&deployment(), known);
        let filter = contracts.filter();
        assert_eq!(filter.addresses.len(), 6, "the deployment's six contracts");
        let topics: HashSet<B256> = filter.topics.iter().copied().collect();
        assert!(topics.contains(&App::ComposeHashAdded::SIGNATURE_HASH));
        assert!(topics.contains(&App::SettingsScheduled::SIGNATURE_HASH));
        assert!(topics.contains(&App::OwnershipTransferred::SIGNATURE_HASH));
        for n in 10_000..20_000 {
            contracts.add_app(app(n), AppKind::Factory);
        }
        assert_eq!(contracts.filter().addresses.len(), 6);
        assert_eq!(contracts.source_of(app(19_999)), Some(Source::App));
        // A custom app (admitted by governance) is followed by address, and stays custom.
        contracts.add_app(app(7), AppKind::Custom);
        contracts.add_app(app(7), AppKind::Factory);
        assert_eq!(contracts.addresses_since(6), vec![app(7)]);
        assert_eq!(contracts.app_kind(app(7)), Some(AppKind::Custom));
        // Known at start as custom: in the address filter from the start.
        let contracts = Contracts::new(&deployment(), [(app(1), false), (app(2), true)]);
        assert_eq!(contracts.filter().addresses.len(), 7);
        assert_eq!(contracts.filter().addresses[6], app(2));
    }

    #[test]
    fn a_factory_app_keeps_only_app_events_and_a_custom_app_every_log() {
        let contracts = Contracts::new(&deployment(), [(app(1), false), (app(2), true)]);
        let foreign = B256::repeat_byte(0x77);
        let ours = App::DeviceAdded::SIGNATURE_HASH;
        let factory = contracts.app_kind(app(1));
        let custom = contracts.app_kind(app(2));
        assert!(contracts.keeps(&log(app(1), ours, 1, 0, &[]), Source::App, factory));
        assert!(!contracts.keeps(&log(app(1), foreign, 1, 0, &[]), Source::App, factory));
        assert!(contracts.keeps(&log(app(2), foreign, 1, 0, &[]), Source::App, custom));
        // The deployment's own contracts keep every log.
        assert!(contracts.keeps(
            &log(Address::repeat_byte(7), foreign, 1, 0, &[]),
            Source::Token,
            None
        ));
    }

    #[test]
    fn new_apps_are_found_with_their_registering_transaction_and_kind() {
        let contracts = Contracts::new(&deployment(), [(app(1), false)]);
        let registry = Address::repeat_byte(1);
        let created = KmsRegistry::AppCreated::SIGNATURE_HASH;
        let custom = KmsRegistry::CustomAppRegistered::SIGNATURE_HASH;
        let logs = [
            log(registry, created, 5, 2, &[app(3).into_word()]),
            // Already followed.
            log(registry, created, 5, 3, &[app(1).into_word()]),
            // Factory, then admitted as custom later in the range: custom from its first position.
            log(registry, created, 6, 0, &[app(4).into_word()]),
            log(registry, custom, 8, 1, &[app(4).into_word()]),
            // An already-followed factory app admitted as custom.
            log(registry, custom, 9, 0, &[app(1).into_word()]),
            // The same event from another contract is not a registration.
            log(app(9), created, 9, 1, &[app(5).into_word()]),
            // A deployment contract admitted as custom stays what it is.
            log(
                registry,
                custom,
                9,
                2,
                &[Address::repeat_byte(7).into_word()],
            ),
        ];
        let found = contracts.new_apps_in(&logs);
        let summary: Vec<_> = found
            .iter()
            .map(|(a, n)| (*a, n.since, n.custom_since, n.kind()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (app(1), (9, 0), Some((9, 0)), AppKind::Custom),
                (app(3), (5, 2), None, AppKind::Factory),
                (app(4), (6, 0), Some((8, 1)), AppKind::Custom),
            ]
        );
        // Each log follows the registration in force at its position.
        let four = found[&app(4)];
        assert_eq!(four.kind_at((5, 9)), None);
        assert_eq!(four.kind_at((6, 0)), Some(AppKind::Factory));
        assert_eq!(four.kind_at((8, 0)), Some(AppKind::Factory));
        assert_eq!(four.kind_at((8, 1)), Some(AppKind::Custom));
        // An app followed as a factory app before the batch: the batch decides only from its
        // admission on (before it, the kind already known applies).
        assert_eq!(found[&app(1)].kind_at((8, 0)), None);
        assert_eq!(found[&app(1)].kind_at((9, 0)), Some(AppKind::Custom));
    }
}
