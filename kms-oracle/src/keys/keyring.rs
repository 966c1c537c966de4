//! The keyring: the only holder of the root secret once the node serves, and the only way keys
//! leave it. Every method that releases secret material takes a decision value — a
//! [`Grant`](crate::policy::Grant) or a [`ReplicaGrant`](crate::policy::ReplicaGrant) — that only
//! [`crate::policy`] can construct, so the compiler shows that no key leaves without a decision.
//! Public statements (the env-key signature, root public keys) take a
//! [`Serving`](crate::policy::Serving), the policy's proof that the chain lets this node serve.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use alloy::primitives::Address;

use covenant_kms_api::{AppKeys, EnvKeyStatement};

use super::{
    AppMaterialCache, Domain, LeafRequest, RootKeys, RootSecret, env_key_statement, instance_keys,
    sign_leaf,
};
use crate::{
    Result,
    policy::{Grant, ReplicaGrant, Serving},
};

/// The root secret and what is derived from it, kept per root generation and per app.
pub struct Keyring {
    root: RootSecret,
    domain: Domain,
    roots: Mutex<HashMap<u64, Arc<RootKeys>>>,
    material: AppMaterialCache,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// A keyring for `domain` around `root`.
    pub fn new(root: RootSecret, domain: Domain) -> Self {
        Self {
            root,
            domain,
            roots: Mutex::new(HashMap::new()),
            material: AppMaterialCache::default(),
        }
    }

    /// The deployment the keys belong to.
    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    /// The root keys of `generation` (derived once). Crate-private: the policy compares their
    /// public halves with the registered ones and hands them on inside its decisions.
    pub(crate) fn root_keys(&self, generation: u64) -> Result<Arc<RootKeys>> {
        let mut map = self.roots.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(k) = map.get(&generation) {
            return Ok(k.clone());
        }
        let keys = Arc::new(RootKeys::derive(&self.root, &self.domain, generation)?);
        map.insert(generation, keys.clone());
        Ok(keys)
    }

    /// The keys `grant` allows: the app-wide material of the granted app and generation, the
    /// instance's disk key and the `GetKey` keys of `paths`.
    pub fn app_keys(&self, grant: &Grant, paths: &[String]) -> Result<AppKeys> {
        let boot = grant.boot();
        let material = self.material.get_or_derive(
            &self.root,
            &self.domain,
            grant.roots(),
            boot.appId,
            boot.keyGeneration,
        )?;
        Ok(instance_keys(
            &self.root,
            &self.domain,
            &material,
            boot.instanceId,
            paths,
        ))
    }

    /// [`Self::app_keys`] when it costs only hashing (the app-wide material was derived
    /// already): `None` when the material still has to be derived (elliptic-curve work, for a
    /// blocking thread).
    pub fn app_keys_if_cheap(&self, grant: &Grant, paths: &[String]) -> Option<AppKeys> {
        let boot = grant.boot();
        let material =
            self.material
                .cached(boot.appId, boot.keyGeneration, grant.roots().generation)?;
        Some(instance_keys(
            &self.root,
            &self.domain,
            &material,
            boot.instanceId,
            paths,
        ))
    }

    /// A leaf certificate for the granted app from `csr_der`, issued by its app CA at `now_unix`
    /// (see [`sign_leaf`]). `Err`: the CSR cannot be signed (a reason for the client).
    pub fn certificate(
        &self,
        grant: &Grant,
        csr_der: &[u8],
        usage: covenant_kms_api::TlsUsage,
        now_unix: i64,
    ) -> Result<Vec<String>, String> {
        let boot = grant.boot();
        sign_leaf(
            &self.root,
            &self.domain,
            grant.roots(),
            LeafRequest {
                app: boot.appId,
                generation: boot.keyGeneration,
                csr_der,
                usage,
            },
            now_unix,
        )
    }

    /// `app`'s env-encryption public key at `generation`, signed by the root keys `serving`
    /// names.
    pub fn env_key(
        &self,
        serving: &Serving,
        app: Address,
        generation: u64,
    ) -> Result<EnvKeyStatement> {
        env_key_statement(&self.root, &self.domain, serving.roots(), app, generation)
    }

    /// The root secret, for the replica `grant` names (over its mutually attested connection;
    /// it leaves only once the grant's audit row is committed).
    pub fn root_secret_for(&self, _grant: &ReplicaGrant) -> &RootSecret {
        &self.root
    }
}
