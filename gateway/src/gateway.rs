//! The gateway's state: the registered instances, and the routing table decided from them at the
//! finalized block. Registration verifies an instance's evidence and decides it before anything
//! is written; every new finalized block re-decides every registration, and an instance the chain
//! no longer allows leaves the table (and the database) at once.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use alloy::primitives::Address;
use covenant_attest::{Collateral, VerifiedEvidence};
use covenant_mirror::{Deny, DenyStage, Finalized, PolicyView, SharedClock};
use tokio::sync::watch;

use crate::{
    decide,
    instance::{
        RegisterRequest, Registered, Registration, RegistrationError, Routed, StoredRegistration,
    },
    metrics::Metrics,
    names,
    store::Store,
};

/// The routing table at one block: the instances the chain allows, per app.
#[derive(Debug, Default)]
pub struct RoutingTable {
    /// The block it was decided at (`None` before the first decision).
    pub block: Option<Finalized>,
    /// Routed instances of each app, in registration order.
    pub apps: BTreeMap<Address, Vec<Routed>>,
}

impl RoutingTable {
    /// The instances serving `app`.
    pub fn instances(&self, app: Address) -> &[Routed] {
        self.apps.get(&app).map_or(&[], Vec::as_slice)
    }
}

/// Why a registration was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// No certificate, or evidence that does not verify.
    #[error("evidence refused: {0}")]
    Evidence(String),
    /// The request does not match the evidence or the deployment.
    #[error("{0}")]
    Request(String),
    /// The chain does not allow the boot (or cannot be asked now).
    #[error("{}", .0.reason)]
    Policy(Deny),
    /// The registration could not be stored.
    #[error("cannot record the registration now")]
    Store,
}

impl Refused {
    /// Whether asking again later may succeed without any change (a stale or unreachable
    /// chain view, the database).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Policy(deny) => deny.stage.is_transient(),
            Self::Store => true,
            _ => false,
        }
    }
}

impl From<RegistrationError> for Refused {
    fn from(e: RegistrationError) -> Self {
        Self::Request(e.to_string())
    }
}

/// Settings of a gateway node.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The base domain app names live under (canonical).
    pub base_domain: String,
}

/// One gateway node's state.
pub struct Gateway {
    view: Arc<PolicyView>,
    store: Store,
    clock: SharedClock,
    settings: Settings,
    metrics: Metrics,
    /// Registrations by instance id.
    registrations: Mutex<HashMap<[u8; 20], Arc<Registration>>>,
    routes: std::sync::RwLock<Arc<RoutingTable>>,
    /// Serialises re-decisions (a registration's decision and a block's).
    deciding: tokio::sync::Mutex<()>,
    /// Counts published tables: connections joined to an instance wait on it.
    published: watch::Sender<u64>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Gateway {
    /// A gateway deciding through `view`, keeping registrations in `store`.
    pub fn new(
        view: Arc<PolicyView>,
        store: Store,
        clock: SharedClock,
        settings: Settings,
        metrics: Metrics,
    ) -> Self {
        Self {
            view,
            store,
            clock,
            settings,
            metrics,
            registrations: Mutex::new(HashMap::new()),
            routes: std::sync::RwLock::new(Arc::new(RoutingTable::default())),
            deciding: tokio::sync::Mutex::new(()),
            published: watch::channel(0).0,
        }
    }

    /// The shared database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The policy view.
    pub fn view(&self) -> &PolicyView {
        &self.view
    }

    /// The metric handles.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The routing table now.
    pub fn routes(&self) -> Arc<RoutingTable> {
        self.routes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Verifies an RA-TLS certificate's evidence, trusting the simulator root only where the
    /// chain allows simulated TEEs at the current finalized block.
    pub async fn verify(&self, certificate: &[u8]) -> Result<Arc<VerifiedEvidence>, Refused> {
        let block = self.view.current_block().map_err(Refused::Policy)?;
        let simulated = self.view.simulated_allowed(&block).await.map_err(|e| {
            tracing::warn!(target: "gateway", error = %e, "cannot read allowSimulatedTee");
            Refused::Policy(Deny {
                stage: DenyStage::Unavailable,
                reason: "cannot read allowSimulatedTee from the chain now".into(),
                block: Some(block),
            })
        })?;
        let policy = covenant_attest::Policy::judged_by_chain(simulated);
        let now = self.clock.now_secs();
        let certificate = certificate.to_vec();
        tokio::task::spawn_blocking(move || {
            covenant_attest::ratls::verify_certificate(
                &certificate,
                &Collateral::default(),
                &policy,
                now,
            )
        })
        .await
        .map_err(|e| Refused::Evidence(format!("verification failed: {e}")))?
        .map(Arc::new)
        .map_err(|e| Refused::Evidence(e.to_string()))
    }

    /// Registers the instance whose RA-TLS `certificate` the client proved it holds: its
    /// evidence verifies, the request matches it and this deployment, and the chain allows the
    /// boot at the finalized block — then it is stored and routed.
    pub async fn register(
        &self,
        certificate: Vec<u8>,
        request: RegisterRequest,
    ) -> Result<Registered, Refused> {
        let deployment = self.view.deployment();
        if request.chain_id != deployment.chain_id {
            return Err(Refused::Request(format!(
                "this gateway serves chain {}, not {}",
                deployment.chain_id, request.chain_id
            )));
        }
        let evidence = self.verify(&certificate).await?;
        let runtime = evidence.runtime();
        let stored = StoredRegistration {
            instance_id: *runtime.instance_id.as_bytes(),
            app: Address::from(*runtime.app_id.as_bytes()),
            certificate,
            compose: request.compose.into_bytes(),
            ingress: request.ingress.to_string(),
            key_generation: 0,
        };
        let mut registration = Registration::new(stored, evidence)?;
        let kms = &registration.compose.kms;
        if kms.chain_id != deployment.chain_id
            || !kms
                .registry
                .eq_ignore_ascii_case(&deployment.contracts.kms_registry.to_string())
        {
            return Err(Refused::Request(
                "the compose trusts another KMS deployment than this gateway's".into(),
            ));
        }
        let _deciding = self.deciding.lock().await;
        let block = self.view.current_block().map_err(Refused::Policy)?;
        let boot = decide::decide(&self.view, &block, &registration.evidence)
            .await
            .map_err(Refused::Policy)?;
        registration.stored.key_generation = boot.keyGeneration;
        self.store.upsert(&registration.stored).await.map_err(|e| {
            tracing::error!(target: "gateway", error = %e, "cannot store a registration");
            Refused::Store
        })?;
        let registration = Arc::new(registration);
        lock(&self.registrations).insert(*registration.instance_id(), registration.clone());
        let hosts = self.hosts(&registration);
        self.publish(|table| {
            let routed = table.apps.entry(registration.app()).or_default();
            routed.retain(|r| r.registration.instance_id() != registration.instance_id());
            routed.push(Routed {
                registration: registration.clone(),
                boot: boot.clone(),
                block,
            });
        });
        self.metrics.registrations.inc();
        tracing::info!(
            target: "gateway",
            app = %registration.app(),
            instance = %hex::encode(registration.instance_id()),
            block = block.number,
            "instance registered"
        );
        Ok(Registered {
            app: registration.app(),
            instance_id: format!("0x{}", hex::encode(registration.instance_id())),
            block: block.number,
            key_generation: boot.keyGeneration,
            hosts,
        })
    }

    /// The names `registration` is served under.
    pub fn hosts(&self, registration: &Registration) -> Vec<String> {
        let base = &self.settings.base_domain;
        let mut hosts = vec![names::app_host(registration.app(), None, base)];
        hosts.extend(
            registration
                .compose
                .ports
                .iter()
                .filter_map(|p| u16::try_from(p.port).ok())
                .map(|port| names::app_host(registration.app(), Some(port), base)),
        );
        hosts
    }

    /// A new table from the current one changed by `change`, published at once.
    fn publish(&self, change: impl FnOnce(&mut RoutingTable)) {
        let mut routes = self
            .routes
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = routes.clone();
        let mut table = RoutingTable {
            block: current.block,
            apps: current.apps.clone(),
        };
        change(&mut table);
        table.apps.retain(|_, routed| !routed.is_empty());
        self.metrics
            .routed_instances
            .set(table.apps.values().map(|r| r.len() as i64).sum());
        *routes = Arc::new(table);
        drop(routes);
        self.published.send_modify(|n| *n += 1);
    }

    /// Resolves once `instance` is no longer in the routing table: what a connection joined to
    /// it (passthrough, TCP, an upgraded WebSocket) waits on, to end when the instance is
    /// evicted.
    pub async fn evicted(&self, instance: &[u8; 20]) {
        let mut tables = self.published.subscribe();
        loop {
            let routed = self
                .routes()
                .apps
                .values()
                .flatten()
                .any(|r| r.registration.instance_id() == instance);
            if !routed || tables.changed().await.is_err() {
                return;
            }
        }
    }

    /// Loads every stored registration whose certificate still verifies (others are dropped
    /// from the database); [`Gateway::follow`] decides them at its first block.
    pub async fn load(&self) -> Result<usize, sqlx::Error> {
        let _deciding = self.deciding.lock().await;
        self.sync().await
    }

    /// Makes the registrations in memory those of the database, which every node of the
    /// deployment shares: a row another node stored is verified and taken in, an entry whose row
    /// is gone (another node evicted it, or the instance registered again with a new boot) is
    /// dropped. Returns how many rows were taken in. Called with `deciding` held.
    async fn sync(&self) -> Result<usize, sqlx::Error> {
        let stored = self.store.all().await?;
        let known: HashMap<[u8; 20], Arc<Registration>> = lock(&self.registrations).clone();
        let mut current = HashMap::with_capacity(stored.len());
        let mut taken = 0;
        for row in stored {
            if let Some(r) = known
                .get(&row.instance_id)
                .filter(|r| r.stored.certificate == row.certificate)
            {
                current.insert(row.instance_id, r.clone());
                continue;
            }
            let instance = hex::encode(row.instance_id);
            let registration = match self.verify(&row.certificate).await {
                Ok(evidence) => Registration::new(row.clone(), evidence).map_err(Refused::from),
                Err(e) => Err(e),
            };
            match registration {
                Ok(r) => {
                    current.insert(row.instance_id, Arc::new(r));
                    taken += 1;
                }
                Err(e) if e.is_transient() => {
                    tracing::warn!(target: "gateway", instance, error = %e, "registration not loaded now");
                }
                Err(e) => {
                    tracing::warn!(target: "gateway", instance, error = %e, "stored registration no longer verifies; dropped");
                    self.store
                        .remove(&row.instance_id, &row.certificate)
                        .await?;
                }
            }
        }
        *lock(&self.registrations) = current;
        Ok(taken)
    }

    /// Decides every registration at `block` and publishes the table: an instance the chain no
    /// longer allows is evicted (and forgotten); one that cannot be decided now is not routed
    /// but kept.
    pub async fn redecide(&self, block: Finalized) {
        let _deciding = self.deciding.lock().await;
        if let Err(e) = self.sync().await {
            tracing::warn!(target: "gateway", error = %e, "cannot read the shared registrations; deciding those known");
        }
        let registrations: Vec<Arc<Registration>> =
            lock(&self.registrations).values().cloned().collect();
        let mut apps: BTreeMap<Address, Vec<Routed>> = BTreeMap::new();
        for registration in registrations {
            let verdict = decide::redecide(
                &self.view,
                &block,
                &registration.evidence,
                registration.stored.key_generation,
            )
            .await;
            match verdict {
                Ok(boot) => apps.entry(registration.app()).or_default().push(Routed {
                    registration,
                    boot,
                    block,
                }),
                Err(deny) if deny.stage.is_transient() => {
                    tracing::warn!(target: "gateway", block = block.number, reason = %deny.reason, "cannot decide an instance now: not routed");
                }
                Err(deny) => {
                    tracing::info!(
                        target: "gateway",
                        app = %registration.app(),
                        instance = %hex::encode(registration.instance_id()),
                        block = block.number,
                        reason = %deny.reason,
                        "instance evicted"
                    );
                    self.metrics.evictions.inc();
                    {
                        let mut all = lock(&self.registrations);
                        if all
                            .get(registration.instance_id())
                            .is_some_and(|r| Arc::ptr_eq(r, &registration))
                        {
                            all.remove(registration.instance_id());
                        }
                    }
                    if let Err(e) = self
                        .store
                        .remove(registration.instance_id(), &registration.stored.certificate)
                        .await
                    {
                        tracing::error!(target: "gateway", error = %e, "cannot forget an evicted instance");
                    }
                }
            }
        }
        for routed in apps.values_mut() {
            routed.sort_by_key(|r| *r.registration.instance_id());
        }
        self.publish(|table| {
            table.block = Some(block);
            table.apps = apps;
        });
        self.metrics
            .decided_block
            .set(i64::try_from(block.number).unwrap_or(i64::MAX));
    }

    /// Re-decides at every new finalized block the view confirms (the view's notifications are
    /// the wake-up; the decision reads the chain at that block), until `shutdown`; when the view
    /// goes stale, nothing is routed.
    pub async fn follow(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut blocks = self.view.subscribe();
        let mut stale_check = tokio::time::interval(std::time::Duration::from_secs(1));
        let mut last: Option<Finalized> = None;
        loop {
            match self.view.current_block() {
                Ok(block) if last.map(|b| b.hash) != Some(block.hash) => {
                    self.redecide(block).await;
                    last = Some(block);
                }
                Ok(_) => {}
                Err(deny) => {
                    let table = self.routes();
                    if table.block.is_some() || !table.apps.is_empty() {
                        tracing::warn!(target: "gateway", reason = %deny.reason, "no usable finalized block: nothing is routed");
                        self.publish(|table| {
                            table.block = None;
                            table.apps.clear();
                        });
                    }
                    last = None;
                }
            }
            tokio::select! {
                changed = blocks.changed() => if changed.is_err() { return },
                _ = stale_check.tick() => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
    }
}
