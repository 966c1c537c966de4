//! `covenant-guest`: the agent that runs inside an app's TEE VM (or the simulated TEE).
//!
//! It owns what happens inside one instance: the boot up to the app's keys ([`boot`]: the
//! compose and its hash, the runtime events, the key request to a KMS node the chain allows and
//! the check of what it sends), the instance id kept in its state directory ([`instance`]), and
//! the keys it hands the app — `GetKey(path)` keys chained by signatures to the KMS root
//! registered on chain ([`getkey`]) — and it runs the app: the local API ([`api`]), the
//! workload as `docker compose` ([`docker`]) or, under the simulated TEE, as processes
//! ([`workload`]), and the data volume, LUKS2 on a real VM ([`luks`]) or an encrypted directory
//! image under the simulated TEE ([`volume`]).
//!
//! It must not decide policy (the KMS and the chain do; the guest only proves what it booted), and
//! it must not depend on another service crate: what it shares with the KMS (wire types, the
//! digests the KMS signs) comes from `covenant-kms-api`, and evidence from `covenant-tee`.

pub mod api;
pub mod boot;
pub mod docker;
pub mod gateway;
pub mod getkey;
pub mod instance;
pub mod luks;
pub mod volume;
pub mod workload;
