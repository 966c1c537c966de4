//! `covenant verify <https-url>`: the chain of trust behind a name the gateway serves, link by
//! link, each checked here rather than taken from the gateway's word.
//!
//! 1. TLS: the certificate for the name verifies against the given roots.
//! 2. The decision block the gateway shows is on this chain and recent (`--max-decision-age`):
//!    every other link is checked there, so an old block would show the chain from before a
//!    revocation.
//! 3. The served key: the gateway's `/.well-known/covenant` lists it with evidence made inside an
//!    instance of the chain's `gatewayAppId` over exactly that key.
//! 4. The gateway: the document's node evidence verifies (simulated evidence only while the
//!    chain's `allowSimulatedTee` is set at the decision block), is an instance of
//!    `gatewayAppId`, and the registry allows that boot at the decision block.
//!    Its ACME account (when it has one): the account its evidence binds is the one registered
//!    on chain at the decision block (`DomainRegistry.gatewayAcmeAccount`), and the name's CAA
//!    records (RFC 8659, `accounturi` of RFC 8657) let no other account be issued certificates.
//! 5. The app: the name is `<app id>.<base domain>` of the app the document routes to; or, for a
//!    custom domain, the app claims the name on chain at the decision block and the DNS record
//!    `_covenant.<name>` names it and no other claiming app.
//! 6. Each instance serving it: the registry allows its `BootInfo` at the decision block; its
//!    version's provenance is the one on chain.
//! 7. The KMS root: the chain's root signer, which every evidence's `key-provider` event names.
//!
//! Any broken link makes the command fail, naming it.

use std::{path::PathBuf, sync::Arc};

use alloy::{
    eips::{BlockId, RpcBlockHash},
    primitives::{Address, B256, FixedBytes},
    providers::Provider,
};
use covenant_attest::{Binding, Collateral, Evidence, Policy, ReportData};
use covenant_chain::{BootInfo, app::App, kms_registry::KmsRegistry};
use covenant_guest_api::{api::quote_report_data, statements};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{
    Global,
    context::{Chain, Indexer},
    error::{Context as _, Failure},
    https, progress,
    report::Report,
};

/// The system's CA bundle (Debian's `ca-certificates`), used without `--ca-file`.
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// `covenant verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// What to check: the HTTPS URL (or bare domain) of an app behind a Covenant gateway, a
    /// PEM file of a KMS-issued certificate chain (leaf, app CA, root CA), or a JSON file of an
    /// instance's evidence (its guest's `GetQuote` answer) with `--report-data`.
    target: String,
    /// Trust these CA certificates (PEM) for the TLS link instead of the system's, e.g. the
    /// devnet gateway's development CA.
    #[arg(long, env = "COVENANT_GATEWAY_CA")]
    ca_file: Option<PathBuf>,
    /// The oldest decision block accepted, in seconds behind the chain's head: a gateway that
    /// shows an old block could be showing the chain from before a revocation.
    #[arg(long, default_value_t = 600)]
    max_decision_age: u64,
    /// Ask this DNS server (UDP, `ip:port`) instead of the system's resolvers, for the host's
    /// address, a custom domain's `_covenant` TXT record and the name's CAA records.
    #[arg(long, env = "COVENANT_DNS_SERVER")]
    dns_server: Option<std::net::SocketAddr>,
    /// For an evidence file: the 64 bytes (128 hex digits) the instance was asked to quote
    /// (its guest's `GetQuote`), e.g. a fresh nonce of yours. The evidence must be bound to them.
    #[arg(long, value_name = "HEX")]
    report_data: Option<String>,
    /// For TDX evidence: the quote's PCK collateral (JSON, the PCS v4 set as a PCCS client
    /// caches it: CRLs, TCB info, QE identity and their issuer chains).
    #[arg(long, value_name = "FILE")]
    collateral: Option<PathBuf>,
}

impl VerifyArgs {
    /// Verify `url`, trusting `ca_file` (or the system's roots), with the default decision age.
    pub(crate) fn new(url: url::Url, ca_file: Option<PathBuf>) -> Self {
        Self {
            target: url.to_string(),
            ca_file,
            max_decision_age: 600,
            dns_server: None,
            report_data: None,
            collateral: None,
        }
    }
}

/// `covenant verify <file>`: a KMS-issued certificate chain, checked against the KMS root on
/// chain now, and its app's key generation against the app's on chain.
async fn certificate(global: &Global, file: &std::path::Path) -> Result<Report, Failure> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let chain_der: Vec<Vec<u8>> = CertificateDer::pem_file_iter(file)
        .doing(&format!("reading certificates from {}", file.display()))?
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<_, _>>()
        .doing(&format!("reading certificates from {}", file.display()))?;
    let chain = Chain::connect(global).await?;
    let registry = chain.deployment.contracts.kms_registry;
    let roots = chain.root_keys().await?;
    let anchor = covenant_kms_api::RootAnchor {
        chain_id: chain.chain_id,
        kms_registry: registry,
        generation: roots._2,
        ca_public_key: roots._1.to_vec(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut links = Vec::new();
    match covenant_kms_api::verify_app_chain(&chain_der, &anchor, None, now) {
        Err(e) => links.push(Link::broken("certificate", e.to_string())),
        Ok(verified) => {
            links.push(Link::ok(
                "certificate",
                format!(
                    "issued to app {} ({:?} use, names {}) under the KMS root of generation {} on chain",
                    verified.app,
                    verified.usage,
                    verified.dns_names.join(", "),
                    roots._2
                ),
            ));
            let current = App::new(verified.app, &chain.provider)
                .keyGeneration()
                .call()
                .await
                .doing("reading the app's key generation")?;
            links.push(if current == verified.key_generation {
                Link::ok(
                    "key generation",
                    format!("{current}, the app's current one"),
                )
            } else {
                Link::broken(
                    "key generation",
                    format!(
                        "the certificate is of key generation {}, the app is at {current}: its \
                         keys were rotated since",
                        verified.key_generation
                    ),
                )
            });
        }
    }
    report(
        &file.display().to_string(),
        links,
        "the certificate chain holds on chain now",
    )
}

/// What the registry says at a block that every evidence check needs.
struct Trust {
    /// `allowSimulatedTee`: whether the simulator's root is trusted.
    simulated: bool,
    /// `kmsRootKeys`: the root signer, CA key and generation.
    roots: KmsRegistry::kmsRootKeysReturn,
}

async fn trust_at(
    registry: &KmsRegistry::KmsRegistryInstance<&alloy::providers::DynProvider>,
    at: BlockId,
) -> Result<Trust, Failure> {
    Ok(Trust {
        simulated: registry
            .allowSimulatedTee()
            .block(at)
            .call()
            .await
            .doing("reading allowSimulatedTee")?,
        roots: registry
            .kmsRootKeys()
            .block(at)
            .call()
            .await
            .doing("reading the KMS root keys")?,
    })
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// `covenant verify <evidence file>`: an instance's evidence (its guest's `GetQuote` answer, or
/// the bare evidence), bound to `--report-data`, checked against the chain's head block: the
/// platform's signature and the boot log (simulated evidence only while the chain allows it),
/// the registry allowing that boot, and its KMS root being the chain's.
async fn evidence(
    global: &Global,
    file: &std::path::Path,
    document: Value,
    args: &VerifyArgs,
) -> Result<Report, Failure> {
    let evidence: Evidence =
        serde_json::from_value(document.get("evidence").cloned().unwrap_or(document))
            .doing(&format!("reading evidence from {}", file.display()))?;
    let report_data: [u8; 64] = args
        .report_data
        .as_deref()
        .and_then(|h| hex::decode(h.trim_start_matches("0x")).ok())
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            Failure::new("evidence is verified against the bytes it was made over")
                .next("pass --report-data <128 hex digits>: the 64 bytes the instance was asked to quote (e.g. your nonce)")
        })?;
    let collateral = Collateral {
        tdx: match &args.collateral {
            Some(path) => Some(
                serde_json::from_slice(
                    &std::fs::read(path).doing(&format!("reading {}", path.display()))?,
                )
                .doing(&format!("reading TDX collateral from {}", path.display()))?,
            ),
            None => None,
        },
        snp_vcek: None,
    };
    let chain = Chain::connect(global).await?;
    let head = chain.head().await?;
    let number = head.number;
    let at = BlockId::Hash(RpcBlockHash {
        block_hash: head.hash,
        require_canonical: Some(true),
    });
    let registry = KmsRegistry::new(chain.deployment.contracts.kms_registry, &chain.provider);
    let Trust { simulated, roots } = trust_at(&registry, at).await?;
    let now = unix_now();
    let bound = ReportData::new(quote_report_data(&report_data));
    let verified = match covenant_attest::verify(
        &evidence,
        &Binding::ReportData(bound),
        &collateral,
        &Policy::judged_by_chain(simulated),
        now,
    ) {
        Ok(v) => v,
        Err(e) => {
            let why = match e {
                covenant_attest::Error::SimulatedNotAllowed => {
                    format!("{e}: the chain does not allow simulated TEEs at block {number}")
                }
                e => e.to_string(),
            };
            return report(
                &file.display().to_string(),
                vec![Link::broken("evidence", why)],
                "",
            );
        }
    };
    let mut links = vec![Link::ok(
        "evidence",
        format!(
            "{:?} evidence over the given report data, TCB {:?}, boot log replayed",
            verified.platform(),
            verified.tcb_status()
        ),
    )];
    let mut boot = covenant_chain::boot_info(&verified, 0);
    // An address without the App's code has no key generation; the registry then says why.
    boot.keyGeneration = App::new(boot.appId, &chain.provider)
        .keyGeneration()
        .block(at)
        .call()
        .await
        .unwrap_or(0);
    let verdict = registry
        .isAppAllowed(boot.clone())
        .block(at)
        .call()
        .await
        .doing("isAppAllowed for the evidence's boot")?;
    let source = provenance(&Indexer::new(global), boot.appId, boot.composeHash).await;
    links.push(if verdict._0 {
        Link::ok(
            "instance",
            format!(
                "0x{} of app {} runs compose hash {}{source}, allowed at block {number}",
                hex::encode(boot.instanceId),
                boot.appId,
                boot.composeHash
            ),
        )
    } else {
        Link::broken(
            "instance",
            format!(
                "0x{} of app {} (compose hash {}) is refused by the registry at block {number}: {}",
                hex::encode(boot.instanceId),
                boot.appId,
                boot.composeHash,
                verdict._1
            ),
        )
    });
    let trusted = &verified.runtime().key_provider;
    links.push(if roots._2 == 0 {
        Link::broken("KMS root", "no KMS root keys are registered on chain")
    } else if trusted.as_slice() == roots._0.as_slice() {
        Link::ok(
            "KMS root",
            format!(
                "its keys come from the chain's KMS root signer {}",
                roots._0
            ),
        )
    } else {
        Link::broken(
            "KMS root",
            format!(
                "it trusts key provider 0x{}, not the chain's KMS root signer {}",
                hex::encode(trusted),
                roots._0
            ),
        )
    });
    report(
        &file.display().to_string(),
        links,
        "the evidence holds on chain now",
    )
}

/// ", source <url> @ <commit>" of `app`'s version `compose` as the indexer has it (empty when it
/// has none).
async fn provenance(indexer: &Indexer, app: Address, compose: B256) -> String {
    let Ok(Some(info)) = indexer.get(&format!("v1/apps/{app}")).await else {
        return String::new();
    };
    info["composeHashes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|h| b256(&h["composeHash"]) == Some(compose))
        .map(|h| {
            format!(
                ", source {} @ {}",
                h["provenance"]["sourceUrl"].as_str().unwrap_or("?"),
                h["provenance"]["sourceCommit"].as_str().unwrap_or("?")
            )
        })
        .unwrap_or_default()
}

/// The gateway's ACME account: the one its evidence binds (`acme.accountUri`, part of the node's
/// report data) must be the deployment's (`DomainRegistry.gatewayAcmeAccount`) at the decision
/// block — the account CAA `accounturi` records name, so that no other account has certificates
/// issued for the gateway's names. `None` for a gateway without ACME (a development CA).
async fn acme_link(
    chain: &Chain,
    document: &Value,
    at: BlockId,
    number: u64,
) -> Result<Option<Link>, Failure> {
    use covenant_chain::domain_registry::DomainRegistry;
    let Some(account) = document["acme"]["accountUri"].as_str() else {
        return Ok(None);
    };
    let on_chain = DomainRegistry::new(chain.deployment.contracts.domain_registry, &chain.provider)
        .gatewayAcmeAccount()
        .block(at)
        .call()
        .await
        .doing("reading the gateway's ACME account at the decision block")?;
    Ok(Some(if on_chain == account {
        Link::ok(
            "acme",
            format!("the gateway's ACME account {account} is the one on chain at block {number}"),
        )
    } else if on_chain.is_empty() {
        Link::broken(
            "acme",
            format!(
                "the gateway uses ACME account {account}, but none is registered on chain at \
                 block {number}"
            ),
        )
    } else {
        Link::broken(
            "acme",
            format!(
                "the gateway uses ACME account {account}, not {on_chain}, the one on chain at \
                 block {number}"
            ),
        )
    }))
}

/// The CAA link (RFC 8659, with RFC 8657's `accounturi`): the CAA records that govern `host` —
/// those at the closest name, climbing from `host` towards the root, that has any — let only the
/// gateway's `account` be issued certificates for it. Without them any ACME account that can
/// answer a challenge for the name (its DNS or web host, say) could get a certificate outside
/// the gateway's enclave.
async fn caa_link(
    host: &str,
    account: &str,
    dns_server: Option<std::net::SocketAddr>,
) -> Result<Link, Failure> {
    use hickory_resolver::proto::rr::{RData, RecordType};
    let resolver = resolver(dns_server)?;
    let mut name = host.trim_end_matches('.').to_owned();
    let (at, records) = loop {
        let records: Vec<hickory_resolver::proto::rr::rdata::CAA> =
            match resolver.lookup(format!("{name}."), RecordType::CAA).await {
                Ok(lookup) => lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::CAA(caa) => Some(caa.clone()),
                        _ => None,
                    })
                    .collect(),
                Err(e) if e.is_no_records_found() || e.is_nx_domain() => Vec::new(),
                Err(e) => {
                    return Ok(Link::broken(
                        "CAA",
                        format!("looking up CAA of {name}: {e}"),
                    ));
                }
            };
        if !records.is_empty() {
            break (name, records);
        }
        match name.split_once('.') {
            Some((_, parent)) if !parent.is_empty() => name = parent.to_owned(),
            _ => {
                return Ok(Link::broken(
                    "CAA",
                    format!(
                        "no CAA record governs {host}: any ACME account able to answer a \
                         challenge for it could be issued a certificate; publish \
                         `CAA 0 issue \"<ca>; accounturi={account}\"`"
                    ),
                ));
            }
        }
    };
    let mut permits = 0;
    for caa in &records {
        if !matches!(caa.tag.as_str(), "issue" | "issuewild") {
            continue;
        }
        let (issuer, options) = match caa.value_as_issue() {
            Ok(v) => v,
            Err(e) => {
                return Ok(Link::broken(
                    "CAA",
                    format!("a malformed {} record at {at}: {e}", caa.tag),
                ));
            }
        };
        // An empty issuer forbids issuance; every record that permits it must name the account.
        let Some(issuer) = issuer else { continue };
        let accounts: Vec<&str> = options
            .iter()
            .filter(|kv| kv.key() == "accounturi")
            .map(|kv| kv.value())
            .collect();
        if accounts != [account] {
            return Ok(Link::broken(
                "CAA",
                format!(
                    "the {} record for {issuer} at {at} lets {} be issued certificates, not only \
                     the gateway's account {account}",
                    caa.tag,
                    if accounts.is_empty() {
                        "any of its accounts".to_owned()
                    } else {
                        format!("account {}", accounts.join(", "))
                    }
                ),
            ));
        }
        permits += 1;
    }
    Ok(if permits == 0 {
        Link::ok(
            "CAA",
            format!("the CAA records at {at} let no CA issue certificates for {host}"),
        )
    } else {
        Link::ok(
            "CAA",
            format!("the CAA records at {at} let only account {account} be issued certificates"),
        )
    })
}

/// A resolver: the system's, or only `server` (UDP).
fn resolver(
    server: Option<std::net::SocketAddr>,
) -> Result<hickory_resolver::TokioResolver, Failure> {
    covenant_dns::resolver(server).map_err(Failure::new)
}

/// A custom domain's link: the app claims `host` on chain at the decision block, and the DNS
/// record `_covenant.<host>` — which only the name's holder can publish — names that app and no
/// other claiming app (the gateway's rule, docs/gateway.md).
async fn domain_link(
    chain: &Chain,
    host: &str,
    app: Address,
    at: BlockId,
    number: u64,
    dns_server: Option<std::net::SocketAddr>,
) -> Result<Link, Failure> {
    use covenant_chain::domain_registry::DomainRegistry;
    let domains = DomainRegistry::new(chain.deployment.contracts.domain_registry, &chain.provider);
    let claimed = |who: Address| {
        let domains = &domains;
        async move {
            domains
                .isClaimed(host.to_owned(), who)
                .block(at)
                .call()
                .await
                .doing("reading the domain claim at the decision block")
        }
    };
    if !claimed(app).await? {
        return Ok(Link::broken(
            "domain",
            format!("app {app} does not claim {host} on chain at block {number}"),
        ));
    }
    let name = covenant_dns::txt_name(host);
    let named = match covenant_dns::lookup_apps(&resolver(dns_server)?, host).await {
        Ok(named) => named,
        Err(e) => return Ok(Link::broken("domain", e)),
    };
    if !named.contains(&app) {
        return Ok(Link::broken(
            "domain",
            format!("the DNS record {name} does not name app {app} (it names {named:?})"),
        ));
    }
    for other in named.iter().filter(|o| **o != app) {
        if claimed(*other).await? {
            return Ok(Link::broken(
                "domain",
                format!("{name} names more than one app claiming {host} ({app}, {other})"),
            ));
        }
    }
    Ok(Link::ok(
        "domain",
        format!("{name} names app {app}, which claims {host} on chain at block {number}"),
    ))
}

/// One link of the chain of trust.
struct Link {
    name: &'static str,
    result: Result<String, String>,
}

impl Link {
    fn ok(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            result: Ok(detail.into()),
        }
    }

    fn broken(name: &'static str, why: impl Into<String>) -> Self {
        Self {
            name,
            result: Err(why.into()),
        }
    }
}

/// Runs `covenant verify`.
pub(crate) async fn run(global: &Global, args: VerifyArgs) -> Result<Report, Failure> {
    let target = args.target.trim();
    if !target.contains("://") && std::path::Path::new(target).is_file() {
        let file = std::path::Path::new(target);
        let bytes = std::fs::read(file).doing(&format!("reading {}", file.display()))?;
        return match serde_json::from_slice::<Value>(&bytes) {
            Ok(document) => evidence(global, file, document, &args).await,
            Err(_) => certificate(global, file).await,
        };
    }
    let url: url::Url = if target.contains("://") {
        target.parse()
    } else {
        format!("https://{target}/").parse()
    }
    .map_err(|e| {
        Failure::new(format!(
            "`{target}` is neither a URL, a domain nor a file: {e}"
        ))
    })?;
    let host = url
        .host_str()
        .ok_or_else(|| Failure::new(format!("{url} names no host")))?
        .to_owned();
    if url.scheme() != "https" {
        return Err(Failure::new("only https URLs can be verified"));
    }
    let port = url.port().unwrap_or(443);
    // With --dns-server, the host's address comes from that server too.
    let address = match args.dns_server {
        Some(server) if !(host == "localhost" || host.ends_with(".localhost")) => Some(
            resolver(Some(server))?
                .lookup_ip(host.as_str())
                .await
                .doing(&format!("resolving {host} with {server}"))?
                .iter()
                .next()
                .ok_or_else(|| Failure::new(format!("{server} has no address for {host}")))?,
        ),
        _ => None,
    };
    let (served_spki, document) = fetch(address, &host, port, args.ca_file.as_deref()).await?;
    let chain = Chain::connect(global).await?;
    // Every other link is read at the decision block: an old or foreign one ends the check.
    let decision = decision_age(&chain, &document, args.max_decision_age).await?;
    let links = if decision.result.is_ok() {
        let mut links = check(
            &chain,
            &Indexer::new(global),
            &host,
            &served_spki,
            &document,
            args.dns_server,
        )
        .await?;
        links.insert(1, decision);
        links
    } else {
        vec![tls_link(&host), decision]
    };

    report(
        &host,
        links,
        "every link holds at the gateway's decision block",
    )
}

/// The links as text (the first broken one fails the command) and JSON.
fn report(subject: &str, links: Vec<Link>, verdict: &str) -> Result<Report, Failure> {
    let broken: Vec<&Link> = links.iter().filter(|l| l.result.is_err()).collect();
    let mut text = vec![format!("chain of trust for {subject}:")];
    for link in &links {
        match &link.result {
            Ok(detail) => text.push(format!(
                "  {}      {}: {detail}",
                progress::good("ok"),
                link.name
            )),
            Err(why) => text.push(format!(
                "  {}  {}: {why}",
                progress::bad("BROKEN"),
                link.name
            )),
        }
    }
    let json = json!({
        "subject": subject,
        "verified": broken.is_empty(),
        "links": links.iter().map(|l| match &l.result {
            Ok(d) => json!({ "link": l.name, "ok": true, "detail": d }),
            Err(w) => json!({ "link": l.name, "ok": false, "reason": w }),
        }).collect::<Vec<_>>(),
    });
    if let Some(first) = broken.first() {
        let why = first.result.as_ref().err().cloned().unwrap_or_default();
        return Err(Failure::new(format!(
            "{}\nbroken link: {}: {why}",
            text.join("\n"),
            first.name
        )));
    }
    text.push(format!("verified: {verdict}"));
    Ok(Report::new(text.join("\n"), json))
}

/// Connects to `host:port` over TLS (roots from `ca_file` or the system), returns the served
/// certificate's public key (SPKI DER) and the gateway's `/.well-known/covenant` for the name.
async fn fetch(
    address: Option<std::net::IpAddr>,
    host: &str,
    port: u16,
    ca_file: Option<&std::path::Path>,
) -> Result<(Vec<u8>, Value), Failure> {
    let roots_path = ca_file.unwrap_or(std::path::Path::new(SYSTEM_ROOTS));
    let config = Arc::new(https::trusting(roots_path)?);
    let answer = https::get_at(address, host, port, config, "/.well-known/covenant")
        .await
        .map_err(|e| match e {
            https::GetError::Other(f) => f,
            e if e.bad_certificate() => Failure::new(format!("TLS to {host}: {e}"))
                .next("pass the CA that issued the gateway's certificates with --ca-file"),
            // A Covenant gateway ends the handshake for a name it routes to no allowed
            // instance: nothing is served for it.
            e => Failure::new(format!(
                "TLS to {host}: {e}: the server refused the name (a Covenant gateway does for a name \
                 that routes to no allowed instance)"
            )),
        })?;
    let (_, parsed) = x509_parser::parse_x509_certificate(&answer.leaf)
        .doing("parsing the served certificate")?;
    let spki = parsed.public_key().raw.to_vec();
    if !(200..300).contains(&answer.status) {
        return Err(Failure::new(format!(
            "{host} answered {} to /.well-known/covenant: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        ))
        .next("is it served by a Covenant gateway that routes this name?"));
    }
    let document: Value = serde_json::from_slice(&answer.body).doing("the well-known document")?;
    Ok((spki, document))
}

fn hex_bytes(v: &Value) -> Option<Vec<u8>> {
    hex::decode(v.as_str()?.trim_start_matches("0x")).ok()
}

fn b256(v: &Value) -> Option<B256> {
    v.as_str()?.parse().ok()
}

/// A `BootInfo` as the document writes it.
fn boot_info(v: &Value) -> Option<BootInfo> {
    let small = |v: &Value| -> Option<u8> {
        v.as_u64()
            .and_then(|n| u8::try_from(n).ok())
            .or_else(|| v.as_str()?.parse().ok())
    };
    Some(BootInfo {
        appId: v["appId"].as_str()?.parse().ok()?,
        composeHash: b256(&v["composeHash"])?,
        instanceId: v["instanceId"].as_str()?.parse::<FixedBytes<20>>().ok()?,
        deviceId: b256(&v["deviceId"])?,
        mrAggregated: b256(&v["mrAggregated"])?,
        osImageHash: b256(&v["osImageHash"])?,
        osMeasurement: b256(&v["osMeasurement"])?,
        teeKind: small(&v["teeKind"])?,
        tcbStatus: small(&v["tcbStatus"])?,
        gpuEvidenceHash: b256(&v["gpuEvidenceHash"])?,
        keyGeneration: v["keyGeneration"].as_u64()?,
    })
}

/// The TLS link: [`fetch`] only returns once the certificate verified.
fn tls_link(host: &str) -> Link {
    Link::ok(
        "TLS",
        format!("the certificate for {host} verifies against the trusted roots"),
    )
}

/// Whether the document's decision block is on this chain and recent: every other link is
/// checked at that block, so an old one would show the chain as it was (before a revocation).
async fn decision_age(chain: &Chain, document: &Value, max_age: u64) -> Result<Link, Failure> {
    let Some(hash) = b256(&document["decision"]["hash"]) else {
        return Ok(Link::broken(
            "decision",
            "the document names no decision block",
        ));
    };
    let Some(decided) = chain
        .provider
        .get_block_by_hash(hash)
        .await
        .doing("reading the decision block")?
    else {
        return Ok(Link::broken(
            "decision",
            format!("block {hash} is not on this chain"),
        ));
    };
    let age = chain
        .head()
        .await?
        .timestamp
        .saturating_sub(decided.header.timestamp);
    Ok(if age > max_age {
        Link::broken(
            "decision",
            format!(
                "block {} is {age} s behind the head (at most {max_age} s): the gateway shows an old view of the chain",
                decided.header.number
            ),
        )
    } else {
        Link::ok(
            "decision",
            format!(
                "block {} ({age} s behind the head) is on this chain",
                decided.header.number
            ),
        )
    })
}

/// Every link, checked at the document's decision block.
async fn check(
    chain: &Chain,
    indexer: &Indexer,
    host: &str,
    served_spki: &[u8],
    document: &Value,
    dns_server: Option<std::net::SocketAddr>,
) -> Result<Vec<Link>, Failure> {
    let mut links = vec![tls_link(host)];
    let block: B256 = b256(&document["decision"]["hash"])
        .ok_or_else(|| Failure::new("the well-known document has no decision block"))?;
    let at = BlockId::Hash(RpcBlockHash {
        block_hash: block,
        require_canonical: Some(true),
    });
    let number = document["decision"]["block"].as_u64().unwrap_or_default();
    let registry = KmsRegistry::new(chain.deployment.contracts.kms_registry, &chain.provider);
    let gateway_app = registry
        .gatewayAppId()
        .block(at)
        .call()
        .await
        .map_err(|e| {
            Failure::new(format!(
                "reading gatewayAppId at the decision block {number}: {e}"
            ))
            .next("the block may not be on this chain (another chain, or a reorg)")
        })?;
    let Trust { simulated, roots } = trust_at(&registry, at).await?;
    let policy = Policy::judged_by_chain(simulated);
    let now = unix_now();
    // Evidence over `statement` by an instance of the gateway app; its `key-provider` event.
    let attested = |evidence: &Value, statement: [u8; 64]| -> Result<(BootInfo, Vec<u8>), String> {
        let evidence: Evidence =
            serde_json::from_value(evidence.clone()).map_err(|e| format!("malformed: {e}"))?;
        let bound = ReportData::new(quote_report_data(&statement));
        let verified = covenant_attest::verify(
            &evidence,
            &Binding::ReportData(bound),
            &Collateral::default(),
            &policy,
            now,
        )
        .map_err(|e| e.to_string())?;
        let app = Address::from(*verified.runtime().app_id.as_bytes());
        if app != gateway_app {
            return Err(format!(
                "made by app {app}, not the chain's gateway app {gateway_app}"
            ));
        }
        Ok((
            covenant_chain::boot_info(&verified, 0),
            verified.runtime().key_provider.clone(),
        ))
    };

    // The served key.
    let served_hash = format!("0x{}", hex::encode(Sha256::digest(served_spki)));
    let key = document["certificateKeys"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["spkiSha256"].as_str() == Some(served_hash.as_str()));
    links.push(match key {
        None => Link::broken(
            "served key",
            "the certificate's key is not among the gateway's attested keys",
        ),
        Some(k) if hex_bytes(&k["spki"]).as_deref() != Some(served_spki) => {
            Link::broken("served key", "the listed key differs from the served one")
        }
        Some(k) => match attested(
            &k["evidence"],
            statements::certificate_key_report_data(served_spki),
        ) {
            Ok(_) => Link::ok(
                "served key",
                format!("made and attested inside the gateway app {gateway_app}"),
            ),
            Err(why) => Link::broken("served key", format!("its evidence: {why}")),
        },
    });

    // The gateway node.
    let node = &document["gateway"];
    let mut key_providers = Vec::new();
    if node.is_null() {
        links.push(Link::broken(
            "gateway",
            "a development gateway: it publishes no evidence",
        ));
    } else {
        let account = document["acme"]["accountUri"].as_str().unwrap_or("");
        let api_key = hex_bytes(&node["apiKey"]).unwrap_or_default();
        match attested(
            &node["evidence"],
            statements::node_report_data(account, &api_key),
        ) {
            Err(why) => links.push(Link::broken("gateway", format!("its evidence: {why}"))),
            Ok((mut boot, provider)) => {
                key_providers.push(provider);
                boot.keyGeneration = App::new(gateway_app, &chain.provider)
                    .keyGeneration()
                    .block(at)
                    .call()
                    .await
                    .doing("reading the gateway app's key generation")?;
                let verdict = registry
                    .isAppAllowed(boot.clone())
                    .block(at)
                    .call()
                    .await
                    .doing("isAppAllowed for the gateway")?;
                links.push(if verdict._0 {
                    Link::ok(
                        "gateway",
                        format!(
                            "instance 0x{} of the gateway app, compose hash {}, allowed at block {number}",
                            hex::encode(boot.instanceId),
                            boot.composeHash
                        ),
                    )
                } else {
                    Link::broken(
                        "gateway",
                        format!("the registry refuses its boot: {}", verdict._1),
                    )
                });
            }
        }
    }

    // The gateway's ACME account (when it has one: a development CA has none), and the CAA
    // records that should keep every other account from certificates for the name.
    if let Some(link) = acme_link(chain, document, at, number).await? {
        links.push(link);
        if let Some(account) = document["acme"]["accountUri"].as_str() {
            links.push(caa_link(host, account, dns_server).await?);
        }
    }

    // The app the name routes to.
    let app: Option<Address> = document["app"].as_str().and_then(|a| a.parse().ok());
    let first_label = host.split('.').next().unwrap_or("");
    let label_app = first_label
        .split('-')
        .next()
        .and_then(|h| hex::decode(h).ok())
        .filter(|b| b.len() == 20)
        .map(|b| Address::from_slice(&b));
    links.push(match (app, label_app) {
        (Some(a), Some(l)) if a == l => Link::ok("app", format!("{host} names app {a}")),
        (Some(a), Some(l)) => Link::broken(
            "app",
            format!("{host} names app {l}, but the gateway routes it to {a}"),
        ),
        (Some(a), None) => domain_link(chain, host, a, at, number, dns_server).await?,
        (None, _) => Link::broken("app", "the document names no app"),
    });

    // The instances serving it.
    let instances = document["instances"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if instances.is_empty() {
        links.push(Link::broken(
            "instances",
            "no instance serves this name at the decision block",
        ));
    }
    for instance in &instances {
        let Some(boot) = boot_info(&instance["bootInfo"]) else {
            links.push(Link::broken("instance", "a malformed BootInfo"));
            continue;
        };
        if Some(boot.appId) != app {
            links.push(Link::broken(
                "instance",
                format!("an instance of another app, {}", boot.appId),
            ));
            continue;
        }
        let verdict = registry
            .isAppAllowed(boot.clone())
            .block(at)
            .call()
            .await
            .doing("isAppAllowed for an instance")?;
        let source = provenance(indexer, boot.appId, boot.composeHash).await;
        links.push(if verdict._0 {
            Link::ok(
                "instance",
                format!(
                    "0x{} runs compose hash {}{source}, allowed at block {number}",
                    hex::encode(boot.instanceId),
                    boot.composeHash
                ),
            )
        } else {
            Link::broken(
                "instance",
                format!(
                    "0x{} (compose hash {}) is refused by the registry: {}",
                    hex::encode(boot.instanceId),
                    boot.composeHash,
                    verdict._1
                ),
            )
        });
    }

    // The KMS root the gateway's keys come from.
    let root = roots._0;
    links.push(
        if !key_providers.is_empty()
            && key_providers
                .iter()
                .all(|p| p.as_slice() == root.as_slice())
        {
            Link::ok(
                "KMS root",
                format!("the gateway's keys come from the chain's KMS root signer {root}"),
            )
        } else if key_providers.is_empty() {
            Link::broken("KMS root", "no gateway evidence to check it against")
        } else {
            Link::broken(
                "KMS root",
                format!("the gateway trusts another key provider than the chain's root {root}"),
            )
        },
    );
    Ok(links)
}
