//! Covenant's KMS oracle: releases an app's keys to a TEE instance only when its verified
//! evidence is allowed by the chain at a finalized block, logs every decision in an audit log
//! whose Merkle roots it commits on chain, and replicates its root secret only to KMS nodes the
//! chain allows.
//!
//! - [`keys`]: HKDF-SHA256 derivation from the root secret (specified with test vectors in
//!   docs/kms.md), the key bundle, certificates and the root's signatures. Pure.
//! - [`policy`]: the decisions, made through the shared finalized policy view
//!   (`covenant-mirror`): the only constructor of the [`policy::Grant`] values the
//!   [`keys::Keyring`] releases keys against; stale view, node not allowed, disagreement → deny.
//! - [`audit`]: the log, its writer (a key leaves only after its grant is committed), the Merkle
//!   tree and the on-chain committer.
//! - [`server`]: HTTPS with RA-TLS client authentication (clients use `covenant-kms-api`).
//! - [`seal`], [`identity`], [`replicate`]: the node's secrets at rest (SEV-SNP firmware key,
//!   the simulated TEE's file key; nothing on TDX), its own evidence (`--tee`), and obtaining
//!   the root secret from another node.
//! - [`pccs`]: TDX collateral for quotes, from a PCCS with an on-disk cache.
//! - [`kds`]: VCEKs for SEV-SNP reports that come without one, from a key distribution service
//!   with an on-disk cache.
//!
//! It must not parse or verify evidence itself (`covenant-attest` does), nor read the indexer's
//! schema other than through `covenant-mirror`, nor write it; key material never appears in
//! logs, `Debug` output or errors.

pub mod audit;
pub mod chain;
pub mod config;
mod error;
mod fetch;
pub mod identity;
pub mod kds;
pub mod keys;
pub mod metrics;
pub mod pccs;
pub mod policy;
pub mod replicate;
pub mod seal;
pub mod server;
pub mod store;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use alloy::primitives::Address;
use covenant_attest::Collateral;
use covenant_chain::Deployment;
use covenant_mirror::{Clock, SharedClock, SystemClock};
use tokio::{sync::watch, task::JoinSet};
use zeroize::Zeroizing;

pub use config::{Config, TeeChoice};
pub use error::{AuditError, Error, ReplicationError, Result, SealError};

use crate::{
    identity::{NodeTee, OwnIdentity},
    keys::{Domain, Keyring, RootKeys, RootSecret},
    seal::{NodeSecrets, Sealer},
};

fn read_deployment(config: &Config) -> Result<(Deployment, Domain)> {
    let deployment = Deployment::read(&config.deployment)?;
    let domain = Domain {
        chain_id: deployment.chain_id,
        kms_registry: deployment.contracts.kms_registry,
    };
    Ok((deployment, domain))
}

/// The TEE this node runs in: `--tee`, or the configfs-tsm provider.
pub fn tee_choice(config: &Config) -> Result<TeeChoice> {
    if let Some(choice) = config.tee {
        return Ok(choice);
    }
    let tsm = covenant_tee::configfs::ConfigfsTsm::new(&config.tsm_root);
    match tsm.platform() {
        Ok(covenant_attest::Platform::Tdx) => Ok(TeeChoice::Tdx),
        Ok(covenant_attest::Platform::Snp) => Ok(TeeChoice::SevSnp),
        Ok(other) => Err(Error::NoTee {
            root: config.tsm_root.clone(),
            reason: format!("unexpected provider {other:?}"),
        }),
        Err(e) => Err(Error::NoTee {
            root: config.tsm_root.clone(),
            reason: e.to_string(),
        }),
    }
}

/// How this node's secrets are kept: sealed on disk (SEV-SNP firmware key, or the simulated
/// TEE's file key), or — on TDX, which has no sealing key — not at all (`None`).
fn sealer(config: &Config, tee: TeeChoice, domain: Domain) -> Result<Option<Sealer>> {
    match tee {
        TeeChoice::Simulated => {
            tracing::warn!(target: "kms", "simulated TEE: development only; its evidence is accepted only where the chain allows simulated TEEs, and its sealing key is a file");
            Ok(Some(Sealer::simulated(&config.state_dir, domain)))
        }
        TeeChoice::SevSnp => Ok(Some(Sealer::snp(
            &config.state_dir,
            domain,
            Arc::new(seal::SevGuest),
        )?)),
        TeeChoice::Tdx => {
            let file = config.state_dir.join("sealing.key");
            if file.exists() {
                return Err(Error::Sealed(SealError::FileKeyOnRealTee(file)));
            }
            Ok(None)
        }
    }
}

fn node_key(secrets: &NodeSecrets) -> Result<k256::ecdsa::SigningKey> {
    k256::ecdsa::SigningKey::from_slice(secrets.node_key.as_slice())
        .map_err(|_| Error::Sealed(seal::SealError::NodeKey))
}

/// What `init` reports: what governance must register for this node.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InitReport {
    /// The node's identity address (onboardKmsNode, grant-log commits).
    pub node: Address,
    /// Its aggregated measurement (addKmsMeasurement).
    pub mr_aggregated: alloy::primitives::B256,
    /// Its device id (addKmsDevice).
    pub device_id: alloy::primitives::B256,
    /// The OS image it booted (addOsImage).
    pub os_image_hash: alloy::primitives::B256,
    /// The OS registers it booted with, 0x-hex MRTD ‖ RTMR0..2 (addOsImage's measurement for
    /// its TEE kind).
    pub os_registers: String,
    /// Root keys to register (setKmsRootKeys), for a bootstrapping node.
    pub root: Option<RootReport>,
}

/// Root public keys of one generation.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RootReport {
    /// The generation these keys are for.
    pub generation: u64,
    /// The root signer's address.
    pub root_signer: Address,
    /// The root CA public key (uncompressed SEC1, hex).
    pub ca_public_key: String,
}

/// The PCCS and key distribution service the configuration names, caching in one directory.
fn collateral_sources(config: &Config) -> Result<server::CollateralSources> {
    let cache_dir = config
        .collateral_cache_dir
        .clone()
        .unwrap_or_else(|| config.state_dir.join("collateral"));
    Ok(server::CollateralSources {
        pccs: match &config.pccs_url {
            Some(url) => Some(pccs::Pccs::new(
                url.clone(),
                cache_dir.clone(),
                config.rpc_timeout,
            )?),
            None => None,
        },
        kds: match &config.kds_url {
            Some(url) => Some(kds::Kds::new(url.clone(), cache_dir, config.rpc_timeout)?),
            None => None,
        },
    })
}

async fn own_identity(
    config: &Config,
    secrets: &NodeSecrets,
    deployment: &Deployment,
    clock: &dyn Clock,
    sources: &server::CollateralSources,
) -> Result<(OwnIdentity, covenant_attest::ratls::RaTlsIdentity)> {
    let node = keys::ethereum_address(node_key(secrets)?.verifying_key());
    let registry = deployment.contracts.kms_registry;
    let tsm = || covenant_tee::configfs::ConfigfsTsm::new(&config.tsm_root);
    let tee = match tee_choice(config)? {
        TeeChoice::Simulated => {
            let device = config.device_id.ok_or(Error::InvalidConfig {
                field: "device-id",
                reason: "the simulated TEE needs a device id".into(),
            })?;
            NodeTee::simulated(registry, device, config.os_image, node)?
        }
        TeeChoice::Tdx => NodeTee::booted(
            Box::new(covenant_tee::Tdx::new(
                tsm(),
                covenant_tee::rtmr::Rtmr3::new(&config.rtmr3_path),
            )),
            registry,
            config.os_image,
            node,
        )?,
        TeeChoice::SevSnp => NodeTee::booted(
            Box::new(covenant_tee::Snp::new(tsm())),
            registry,
            config.os_image,
            node,
        )?,
    };
    let identity = tee.ratls_identity()?;
    let collateral = match tee_choice(config)? {
        TeeChoice::Simulated => Collateral::default(),
        TeeChoice::Tdx | TeeChoice::SevSnp => {
            server::collateral_for(sources, &identity.certificate_der, clock.now_secs())
                .await
                .map_err(|reason| Error::Collateral { reason })?
        }
    };
    // Its own evidence is checked by the same code as any peer's; whether a simulated node may
    // serve is the chain's decision (isKmsAllowed refuses simulated boots unless allowed).
    let mut policy = identity::verifier_policy(true);
    policy.snp_minimum_tcb = config.snp_minimum_tcb;
    let evidence = covenant_attest::ratls::verify_certificate(
        &identity.certificate_der,
        &collateral,
        &policy,
        clock.now_secs(),
    )?;
    Ok((
        OwnIdentity {
            certificate_der: identity.certificate_der.clone(),
            evidence,
            node,
        },
        identity,
    ))
}

/// Creates this node's sealed state: a fresh identity key and, with `bootstrap`, a fresh root
/// secret. Refuses to overwrite existing state. Reports what governance must register, with the
/// root keys of `root_generation` (the generation `setKmsRootKeys` will start).
pub fn init(config: &Config, bootstrap: bool, root_generation: u64) -> Result<InitReport> {
    let (deployment, domain) = read_deployment(config)?;
    let Some(sealer) = sealer(config, tee_choice(config)?, domain)? else {
        return Err(Error::Sealed(SealError::NoSealingOnTdx));
    };
    if sealer.exists() {
        return Err(Error::StateExists {
            dir: config.state_dir.clone(),
        });
    }
    let node_key = fresh_node_key()?;
    let root = if bootstrap {
        Some(seal::random32()?)
    } else {
        None
    };
    let secrets = NodeSecrets { node_key, root };
    sealer.seal(&secrets)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            what: "starting a runtime",
            path: config.state_dir.clone(),
            source,
        })?;
    let (own, _) = runtime.block_on(own_identity(
        config,
        &secrets,
        &deployment,
        &SystemClock,
        &collateral_sources(config)?,
    ))?;
    report(&own, &secrets, &domain, root_generation)
}

/// What governance must register for `own` (and its root keys of `root_generation`).
fn report(
    own: &OwnIdentity,
    secrets: &NodeSecrets,
    domain: &Domain,
    root_generation: u64,
) -> Result<InitReport> {
    let root = match &secrets.root {
        Some(r) => {
            let keys = RootKeys::derive(&RootSecret::from_bytes(**r), domain, root_generation)?;
            Some(RootReport {
                generation: root_generation,
                root_signer: keys.signer_address,
                ca_public_key: format!("0x{}", hex::encode(&keys.ca_public_key)),
            })
        }
        None => None,
    };
    let boot = own.boot();
    Ok(InitReport {
        node: own.node,
        mr_aggregated: boot.mrAggregated,
        device_id: boot.deviceId,
        os_image_hash: boot.osImageHash,
        os_registers: format!(
            "0x{}",
            hex::encode(own.evidence.measurements().os_registers())
        ),
        root,
    })
}

/// TDX: a fresh identity key every start and, with `bootstrap`, a fresh root secret — in memory
/// only, since there is no sealing key. Without `bootstrap` the root comes from a serving peer.
fn memory_only_secrets(bootstrap: bool) -> Result<NodeSecrets> {
    let node_key = fresh_node_key()?;
    let root = if bootstrap {
        tracing::warn!(target: "kms", "TDX has no sealing key: this root secret lives in this process's memory only. A single node loses it on restart, and with it every app's keys, unless a second node is onboarded (run --replicate-from) before then");
        Some(seal::random32()?)
    } else {
        None
    };
    Ok(NodeSecrets { node_key, root })
}

fn fresh_node_key() -> Result<Zeroizing<[u8; 32]>> {
    loop {
        let candidate = seal::random32()?;
        if k256::ecdsa::SigningKey::from_slice(candidate.as_slice()).is_ok() {
            return Ok(candidate);
        }
    }
}

/// Runs the service until `shutdown` turns true. `on_listening` receives the bound address.
/// `bootstrap` matters on TDX only (no sealed state): generate the root secret in memory.
pub async fn run(
    config: Config,
    bootstrap: bool,
    shutdown: watch::Receiver<bool>,
    on_listening: impl FnOnce(SocketAddr),
) -> Result<()> {
    config.validate()?;
    tracing::info!(target: "kms", config = ?config, "starting");
    let (deployment, domain) = read_deployment(&config)?;
    let sealer = sealer(&config, tee_choice(&config)?, domain)?;
    let mut secrets = match &sealer {
        Some(sealer) if sealer.exists() => sealer.unseal()?,
        Some(_) => {
            return Err(Error::NoState {
                dir: config.state_dir.clone(),
            });
        }
        None => memory_only_secrets(bootstrap)?,
    };
    let clock: SharedClock = Arc::new(SystemClock);
    let collateral = collateral_sources(&config)?;
    let (own, tls_identity) =
        own_identity(&config, &secrets, &deployment, &*clock, &collateral).await?;
    tracing::info!(target: "kms", node = %own.node, "node identity");
    if sealer.is_none() {
        // Nothing was initialised on disk: what governance registers comes from this start.
        let report = report(&own, &secrets, &domain, 1)?;
        tracing::warn!(target: "kms", report = %serde_json::to_string(&report).unwrap_or_default(), "memory-only node (TDX): register this identity (root keys shown for generation 1)");
    }

    let registry = prometheus::Registry::new_custom(Some("covenant".into()), None)?;
    let metrics = metrics::Metrics::new(&registry)?;
    let reader = covenant_mirror::ChainReader::connect(
        config.rpc_url.as_str(),
        config.rpc_timeout,
        deployment.chain_id,
        metrics.chain_reads.clone(),
    )
    .await?;
    let witness = match &config.witness_rpc_url {
        Some(url) => Some(
            covenant_mirror::ChainReader::connect(
                url.as_str(),
                config.rpc_timeout,
                deployment.chain_id,
                metrics.chain_reads.clone(),
            )
            .await?,
        ),
        None => None,
    };
    let mirror = covenant_mirror::connect_mirror(&config.mirror_database_url, 8).await?;
    let view = Arc::new(
        covenant_mirror::PolicyView::new(
            reader,
            witness,
            mirror,
            deployment,
            covenant_mirror::ViewSettings {
                max_age: config.max_finalized_age,
                poll: Duration::from_secs(1),
                finality: config.finality,
            },
            clock.clone(),
            metrics.view(),
        )
        .await?,
    );
    let mut tasks = JoinSet::new();
    tasks.spawn(view.follow(shutdown.clone()));

    let root = match secrets.root.take() {
        Some(r) => RootSecret::from_bytes(*r),
        None => {
            let source = config.replicate_from.clone().ok_or(Error::NoRootSecret)?;
            let mut shutdown = shutdown.clone();
            let root = loop {
                match replicate::obtain_root(
                    &view,
                    &*clock,
                    &own,
                    &tls_identity,
                    &collateral,
                    &source,
                )
                .await
                {
                    Ok(root) => break root,
                    Err(e) => {
                        tracing::warn!(target: "kms::replication", source = source.url(), error = %e, "replication failed; retrying");
                        let stopping = tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(1)) => false,
                            _ = shutdown.wait_for(|s| *s) => true,
                        };
                        if stopping {
                            tasks.shutdown().await;
                            return Err(Error::Shutdown);
                        }
                    }
                }
            };
            if let Some(sealer) = &sealer {
                sealer.seal(&NodeSecrets {
                    node_key: Zeroizing::new(*secrets.node_key),
                    root: Some(Zeroizing::new(*root.expose())),
                })?;
            }
            tracing::info!(target: "kms::replication", source = source.url(), sealed = sealer.is_some(), "root secret received");
            root
        }
    };

    let audit_pool = store::connect(&config.database_url, 8).await?;
    store::migrate(&audit_pool).await?;
    tracing::info!(target: "kms", "database migrated");

    let (audit, writer) = audit::writer::spawn(
        audit_pool.clone(),
        own.node,
        config.audit_queue,
        metrics.clone(),
        shutdown.clone(),
    )
    .await?;
    let sender = chain::Sender::new(config.rpc_url.clone(), &node_key(&secrets)?)?;
    let committer = audit::committer::Committer {
        registry: view.registry(),
        sender: sender.clone(),
        pool: audit_pool.clone(),
        ledger: audit.ledger().clone(),
        node: own.node,
        max_batch: config.commit_max_entries,
        metrics: metrics.clone(),
    };
    tasks.spawn(committer.run(config.commit_interval, shutdown.clone()));

    let keyring = Arc::new(Keyring::new(root, domain));
    let decider = Arc::new(policy::Decider::new(
        view,
        Arc::new(own.clone()),
        keyring.clone(),
        metrics.clone(),
    ));
    let state = Arc::new(server::State {
        decider,
        keyring,
        clock,
        audit,
        audit_pool,
        metrics,
        registry,
        collateral,
        max_collateral_age: Duration::from_secs(config.max_collateral_age_days * 24 * 3600),
        snp_minimum_tcb: config.snp_minimum_tcb,
        sender,
        limits: server::Limits {
            handshake_timeout: config.handshake_timeout,
            request_timeout: config.request_timeout,
            max_body: config.max_body_bytes,
            max_uncommitted_age: config.max_uncommitted_age,
        },
        admission: server::limits::Admission::new(server::limits::ConnectionLimits {
            max_connections: config.max_connections,
            per_source_per_sec: config.connections_per_source_per_sec,
        }),
        quiet: server::limits::LogLimiter::default(),
    });
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = server::tls::server_config(
        own.certificate_der.clone(),
        &tls_identity.private_key_der,
        provider,
    )?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Io {
            what: "binding the listener",
            path: config.listen.to_string().into(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| Error::Io {
        what: "reading the bound address",
        path: config.listen.to_string().into(),
        source,
    })?;
    tracing::info!(target: "kms", %addr, node = %own.node, "kms listening");
    on_listening(addr);
    server::serve(listener, Arc::new(tls), state, shutdown.clone()).await;
    tasks.shutdown().await;
    drop(writer);
    Ok(())
}
