//! `/.well-known/covenant`: what a verifier needs to check the gateway that answered and the
//! instances behind a name, served by the gateway itself on every name it terminates.
//!
//! The document (docs/gateway.md, "Publication"): the name, its app and port; the finalized
//! block the routing was decided at; the gateway node — its app identity and evidence whose
//! report data binds its ACME account and API key ([`crate::identity::node_report_data`]); the
//! ACME account and the one the chain names (`DomainRegistry.gatewayAcmeAccount`); the
//! instances serving the name with their BootInfo and evidence digest; and an attestation over
//! every certificate key the gateway made for the name, from the shared database.
//!
//! Serving it costs no durable write: one read of the database, and of the chain once per block.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use covenant_attest::Evidence;
use serde_json::{Value, json};

use crate::{gateway::Gateway, http::Site, identity::Identity};

/// The node's own facts, fixed at start-up.
#[derive(Debug)]
pub struct Node {
    /// The gateway as an app.
    pub identity: Arc<Identity>,
    /// The ACME account, when certificates come from a CA.
    pub account_uri: Option<String>,
    /// The node's evidence over [`crate::identity::node_report_data`].
    pub evidence: Evidence,
    /// The registration API's certificate key (SubjectPublicKeyInfo, DER).
    pub api_spki: Vec<u8>,
}

/// What the well-known document is made of.
#[derive(Debug)]
pub struct Publication {
    gateway: Arc<Gateway>,
    node: Option<Node>,
    /// `gatewayAcmeAccount` at a block, read once per block.
    on_chain_account: Mutex<Option<(u64, String)>>,
}

impl Publication {
    /// The publication of `gateway`; `node` is `None` for a development gateway (not an app).
    pub fn new(gateway: Arc<Gateway>, node: Option<Node>) -> Self {
        Self {
            gateway,
            node,
            on_chain_account: Mutex::new(None),
        }
    }

    async fn chain_account(&self, block: &covenant_mirror::Finalized) -> Result<String, String> {
        if let Some((at, account)) = self
            .on_chain_account
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            && *at == block.number
        {
            return Ok(account.clone());
        }
        let view = self.gateway.view();
        let registry = view.deployment().contracts.domain_registry;
        let account = view
            .chain()
            .call(
                registry,
                &covenant_chain::domain_registry::DomainRegistry::gatewayAcmeAccountCall {},
                block.hash,
            )
            .await
            .map_err(|e| format!("gatewayAcmeAccount: {e}"))?;
        *self
            .on_chain_account
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((block.number, account.clone()));
        Ok(account)
    }

    /// The document for `site`, as JSON bytes.
    pub async fn document(&self, site: &Site) -> Result<Bytes, String> {
        let table = self.gateway.routes();
        let block = table.block.ok_or("no finalized block decided yet")?;
        let instances: Vec<Value> = table
            .instances(site.app)
            .iter()
            .filter(|r| {
                r.registration
                    .compose
                    .ports
                    .iter()
                    .any(|p| p.port == u32::from(site.port))
            })
            .map(|r| {
                json!({
                    "instanceId": format!("0x{}", hex::encode(r.registration.instance_id())),
                    "bootInfo": {
                        "appId": r.boot.appId,
                        "composeHash": r.boot.composeHash,
                        "instanceId": r.boot.instanceId,
                        "deviceId": r.boot.deviceId,
                        "mrAggregated": r.boot.mrAggregated,
                        "osImageHash": r.boot.osImageHash,
                        "osMeasurement": r.boot.osMeasurement,
                        "teeKind": r.boot.teeKind,
                        "tcbStatus": r.boot.tcbStatus,
                        "gpuEvidenceHash": r.boot.gpuEvidenceHash,
                        "keyGeneration": r.boot.keyGeneration,
                    },
                    "evidenceDigest": r.registration.evidence_digest,
                    "decidedAt": r.block.number,
                })
            })
            .collect();
        drop(table);
        let attestations = self
            .gateway
            .store()
            .attestations(&site.host)
            .await
            .map_err(|e| format!("the gateway database: {e}"))?;
        let keys: Vec<Value> = attestations
            .into_iter()
            .map(|a| {
                json!({
                    "spki": format!("0x{}", hex::encode(&a.spki)),
                    "spkiSha256": format!("0x{}", hex::encode(a.spki_sha256)),
                    "instanceId": format!("0x{}", hex::encode(a.instance_id)),
                    "createdAt": a.created_at,
                    "evidence": a.evidence,
                })
            })
            .collect();
        let gateway = match &self.node {
            Some(node) => {
                let info = node.identity.info();
                json!({
                    "appId": info.app_id,
                    "instanceId": info.instance_id,
                    "composeHash": info.compose_hash,
                    "platform": info.platform,
                    "apiKey": format!("0x{}", hex::encode(&node.api_spki)),
                    "evidence": node.evidence,
                })
            }
            None => Value::Null,
        };
        let account = self.node.as_ref().and_then(|n| n.account_uri.clone());
        let acme = match account {
            Some(uri) => json!({
                "accountUri": uri,
                "onChain": self.chain_account(&block).await?,
            }),
            None => Value::Null,
        };
        let document = json!({
            "version": 1,
            "host": site.host,
            "app": site.app,
            "port": site.port,
            "decision": { "block": block.number, "hash": block.hash },
            "gateway": gateway,
            "acme": acme,
            "instances": instances,
            "certificateKeys": keys,
        });
        serde_json::to_vec(&document)
            .map(Bytes::from)
            .map_err(|e| e.to_string())
    }
}
