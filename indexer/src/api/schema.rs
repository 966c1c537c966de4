//! The API's response types. Handlers answer with these, and the OpenAPI document is generated
//! from them (and from the handlers' `#[utoipa::path]`), so a field cannot drift from its
//! description. Event data the mirror keeps as JSON (what an event said about a member, a
//! contract's settings) stays an object here.

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// A JSON object of event fields or settings (camelCase keys).
pub(super) type Fields = Map<String, Value>;

/// The block an answer is read at.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct Block {
    /// Its number.
    pub number: u64,
    /// Its hash (0x-hex).
    pub hash: String,
}

/// An error.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ErrorBody {
    /// What went wrong (internal details are logged, not returned).
    pub error: String,
}

/// `/healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Health {
    /// `ok` or `unhealthy`.
    pub status: &'static str,
    /// Why it is unhealthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The indexed block (its hash once one is indexed).
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct IndexedBlock {
    /// Number.
    pub number: u64,
    /// Hash.
    pub hash: Option<String>,
}

/// The finalized block every read is made at.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct FinalizedBlock {
    /// Number.
    pub number: u64,
    /// Hash.
    pub hash: String,
    /// Timestamp, unix seconds.
    pub timestamp: Option<u64>,
}

/// `/v1/head`: where the mirror stands.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct Head {
    /// Chain id.
    pub chain_id: u64,
    /// The chain head as last seen.
    pub head: u64,
    /// The last indexed block.
    pub indexed: IndexedBlock,
    /// The finalized view's block.
    pub finalized: FinalizedBlock,
    /// Head minus finalized.
    pub lag_blocks: u64,
}

/// A member of a set (an OS image, a compose hash, a device, a node, a domain…): what the event
/// that added it said, its key, and the blocks that added and removed it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct Member {
    /// The adding event's fields and the member's key (named by the endpoint).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub fields: Fields,
    /// The block that added it.
    pub added_block: u64,
    /// The block that removed it, if it was removed at or before the finalized block.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed_block: Option<u64>,
}

/// The domain registry.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct DomainRegistry {
    /// Its address.
    pub address: String,
    /// Its settings (ACME account, …).
    #[schema(value_type = Object)]
    pub settings: Fields,
}

/// The Timelock's cancel-only guardian.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct Guardian {
    /// The guardian contract (it alone holds the Timelock's canceller role besides the Governor).
    pub address: String,
    /// The account that acts through it (absent before its first event is final, or when it
    /// is the zero address, which cannot cancel).
    pub guardian: Option<String>,
    /// When its power ends (block timestamp; it may cancel strictly before).
    pub expires_at: Option<u64>,
    /// Whether it may still cancel at the finalized block's timestamp (absent while that
    /// timestamp is not indexed). The Timelock's canceller role itself is not mirrored: a
    /// governance that revoked it leaves this true until the term ends.
    pub active: Option<bool>,
}

/// `/v1/registry`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct Registry {
    /// Read at.
    pub block: Block,
    /// The KMS registry's address.
    pub kms_registry: String,
    /// Its settings (`allowSimulatedTee`, implementation, gateway app, …).
    #[schema(value_type = Object)]
    pub settings: Fields,
    /// Registered KMS root keys, by generation (`key`).
    pub root_keys: Vec<Member>,
    /// The domain registry.
    pub domain_registry: DomainRegistry,
    /// The guardian and its term.
    pub guardian: Guardian,
}

/// An app in the list.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct AppSummary {
    /// Its registration (`address`, kind, owner).
    #[serde(flatten)]
    pub member: Member,
    /// Its settings.
    #[schema(value_type = Object)]
    pub settings: Fields,
}

/// `/v1/apps`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Apps {
    /// Read at.
    pub block: Block,
    /// Apps registered.
    pub total: usize,
    /// The page's first index.
    pub offset: usize,
    /// The page.
    pub apps: Vec<AppSummary>,
}

/// `/v1/apps/{address}`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct AppDetail {
    /// Read at.
    pub block: Block,
    /// The app.
    pub address: String,
    /// Registered (not deregistered).
    pub registered: bool,
    /// Its registration.
    pub registration: Member,
    /// Its settings.
    #[schema(value_type = Object)]
    pub settings: Fields,
    /// Allowed compose hashes (`composeHash`, provenance).
    pub compose_hashes: Vec<Member>,
    /// Every compose hash ever added, with added and removed blocks.
    pub compose_hash_history: Vec<Member>,
    /// Allowed devices (`deviceId`).
    pub devices: Vec<Member>,
    /// Domains bound to it.
    pub domains: Vec<String>,
}

/// `/v1/os-images`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct OsImages {
    /// Read at.
    pub block: Block,
    /// Allowed OS images (`osImageHash`, provenance, manifest).
    pub os_images: Vec<Member>,
}

/// A KMS node.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct KmsNode {
    /// Its onboarding record (`node`, onboardedBy, mrAggregated, deviceId).
    #[serde(flatten)]
    pub member: Member,
    /// Its measurement and device are still allowed.
    pub serving: bool,
}

/// `/v1/kms-nodes`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct KmsNodes {
    /// Read at.
    pub block: Block,
    /// Active nodes.
    pub nodes: Vec<KmsNode>,
    /// Allowed KMS measurements.
    pub allowed_measurements: Vec<String>,
    /// Allowed KMS devices.
    pub allowed_devices: Vec<String>,
}

/// `/v1/domains`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Domains {
    /// Read at.
    pub block: Block,
    /// Every standing claim (`domainHash`, domain, app, and the block that made it). Which claim
    /// of a domain counts is proven by its DNS TXT record `_covenant.<domain>`.
    pub domains: Vec<Member>,
}

/// `/v1/domains/{domain}`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct DomainClaims {
    /// The domain.
    pub domain: String,
    /// keccak256 of the domain.
    pub domain_hash: String,
    /// Every standing claim of it (`app`, and `addedBlock`, the block that made it).
    pub claims: Vec<Member>,
    /// Read at.
    pub block: Block,
}

/// Votes so far.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Tally {
    /// Against (decimal).
    pub against: String,
    /// For (decimal).
    #[serde(rename = "for")]
    pub in_favour: String,
    /// Abstain (decimal).
    pub abstain: String,
}

/// A proposal with its state at the finalized block.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct Proposal {
    /// Decimal id.
    pub id: String,
    /// Proposer.
    pub proposer: String,
    /// `pending`, `active`, `canceled`, `defeated`, `succeeded`, `queued`, `expired`, `executed`.
    #[schema(value_type = String)]
    pub state: crate::governance::ProposalState,
    /// The Governor's state number.
    pub state_code: u8,
    /// Description.
    pub description: String,
    /// The calls, decoded with parameter names.
    #[schema(value_type = Object)]
    pub actions: Value,
    /// Voting starts after this timepoint.
    pub vote_start: u64,
    /// Voting ends at this timepoint.
    pub vote_end: u64,
    /// When the queued operation may execute.
    pub eta: Option<u64>,
    /// Created at.
    pub created_block: u64,
    /// The timelock operation id.
    pub timelock_operation_id: String,
    /// Votes.
    pub tally: Tally,
    /// Votes needed (decimal).
    pub quorum: String,
}

/// `/v1/proposals`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Proposals {
    /// Read at.
    pub block: Block,
    /// Its timestamp (the token's clock).
    pub timestamp: u64,
    /// Newest first.
    pub proposals: Vec<Proposal>,
}

/// A vote.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Vote {
    /// Voter.
    pub voter: String,
    /// `against`, `for` or `abstain`.
    pub support: &'static str,
    /// Weight (decimal).
    pub weight: String,
    /// Reason.
    pub reason: String,
    /// Block.
    pub block: u64,
}

/// `/v1/proposals/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ProposalDetail {
    /// The proposal.
    #[serde(flatten)]
    pub proposal: Proposal,
    /// Read at.
    pub block: Block,
    /// Its timestamp.
    pub timestamp: u64,
    /// Votes in order.
    pub votes: Vec<Vote>,
}

/// `/v1/grant-log`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct GrantLog {
    /// Read at.
    pub block: Block,
    /// Committed grant-log ranges (`key`, node, fromSeq, toSeq, merkleRoot).
    pub commitments: Vec<Member>,
}

/// `/v1/policy/app`, `/v1/policy/kms`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct PolicyAnswer {
    /// Decided at.
    pub block: Block,
    /// Whether the registry would allow the boot.
    pub allowed: bool,
    /// The contract's reason (empty when allowed).
    pub reason: String,
    /// `mirror` or `eth_call`.
    pub decided_by: &'static str,
}

/// `/v1/apps/{address}/serving`: what serves an app beyond the chain — whether DNS proves each
/// domain it claims, and the instances a gateway reports routing to it, each judged against the
/// chain at `block`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct Serving {
    /// The block the claims and judgements are read at.
    pub block: Block,
    /// The app's claimed domains.
    pub domains: Vec<DomainProof>,
    /// What the configured gateway routes to the app (absent when none is configured).
    pub gateway: Option<GatewayRouting>,
}

/// Whether DNS proves one claim.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct DomainProof {
    /// The domain.
    pub domain: String,
    /// `proven` (`_covenant.<domain>` names this app and no other claiming app), `notNamed`,
    /// `ambiguous` (it also names another app that claims the domain), `unknown` (the DNS did
    /// not answer) or `unchecked` (this indexer does not check DNS, or too many claims).
    pub dns: &'static str,
    /// In words.
    pub detail: String,
    /// The app ids the record names.
    pub named: Vec<String>,
}

/// A gateway's routing of one app, as the gateway reports it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct GatewayRouting {
    /// The gateway's registration API.
    pub url: String,
    /// Why its table could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The finalized block the gateway's table was decided at.
    pub decided_at: Option<u64>,
    /// The instances it routes to the app.
    pub instances: Vec<RoutedInstance>,
}

/// One instance a gateway routes, and what the chain says of its boot at the page's block.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct RoutedInstance {
    /// Instance id.
    pub instance_id: String,
    /// Compose hash.
    pub compose_hash: String,
    /// OS image hash.
    pub os_image_hash: String,
    /// Device id.
    pub device_id: String,
    /// TEE kind (the contract enum's number).
    pub tee_kind: u8,
    /// TCB status (the contract enum's number).
    pub tcb_status: u8,
    /// sha256 of the RA-TLS certificate it registered with.
    pub evidence_digest: String,
    /// Names it is served under.
    pub hosts: Vec<String>,
    /// The block the gateway last decided it at.
    pub decided_at: u64,
    /// `isAppAllowed` of its boot at `block` (absent when it could not be decided now).
    pub allowed: Option<bool>,
    /// The registry's reason, or why it could not be decided.
    pub reason: String,
    /// `mirror` or `eth_call`.
    pub decided_by: Option<&'static str>,
}
