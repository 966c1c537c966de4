//! `covenant-gateway`: the TLS front door that routes only to instances the chain allows right
//! now.
//!
//! What it owns:
//! - [`names`]: which app a server name or `Host` asks for (`<app-id>[-<port>].<base-domain>`,
//!   or a custom domain), strictly parsed;
//! - [`instance`] and [`server`]: instances register over mutual RA-TLS with their boot
//!   certificate; the evidence is verified, the compose checked against it, and the boot decided
//!   at the finalized block before anything is stored ([`store`]);
//! - [`decide`] and [`gateway`]: the one rule — the chain's `isAppAllowed` through the shared
//!   finalized policy view (`covenant_mirror::PolicyView`, the same as the kms-oracle's), the
//!   registered KMS root as the boot's key provider, the app's key generation unchanged — applied
//!   at registration and again at every new finalized block; an instance the chain no longer
//!   allows leaves the routing table at once;
//! - [`proxy`]: the public listener — a client's connection routed by its server name to a
//!   routed instance's port: passed through, or terminated ([`certs`]) and served as HTTP
//!   ([`http`], pooled over [`upstream`]) or TCP; custom domains by on-chain claim and DNS
//!   ([`domains`]);
//! - [`hop`]: the gateway → instance hop, always TLS to the key the instance registered;
//! - [`identity`], [`acme`] and [`wellknown`]: the gateway as an app — booted as the chain's
//!   `gatewayAppId`, its keys from the KMS through the guest, certificates from an ACME CA under
//!   that account, and the `/.well-known/covenant` document verifiers read.
//!
//! What it must not do: write the indexer's schema, read the chain at `latest`, hold any other
//! app's keys, store a certificate key unsealed, or route to an instance whose decision is older than the current finalized block.
//! It depends on no other service crate.

pub mod acme;
pub mod certs;
pub mod decide;
pub mod domains;
pub mod gateway;
pub mod hop;
pub mod http;
pub mod identity;
pub mod instance;
pub mod metrics;
pub mod names;
pub mod proxy;
pub mod server;
pub mod store;
pub mod upstream;
pub mod wellknown;

pub use gateway::{Gateway, Refused, RoutingTable, Settings};
