//! `covenant verify` against a hostile gateway: a real TLS server (its own CA) publishing a
//! well-known document whose decision block is real but an hour old — the chain as it was, say,
//! before a revocation. The decision link must break, whatever the rest says.

use alloy::providers::Provider;

use crate::Devnet;

#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_showing_an_old_block_breaks_the_decision_link() {
    let devnet = Devnet::start().await;
    let old = devnet
        .provider
        .get_block_by_number(1.into())
        .await
        .unwrap()
        .unwrap();
    // An hour passes on the chain.
    devnet.advance(3600);
    let name = format!("{}.localhost", "ab".repeat(20));
    let document = serde_json::json!({
        "version": 1,
        "host": name,
        "app": format!("0x{}", "ab".repeat(20)),
        "decision": { "block": old.header.number, "hash": old.header.hash.to_string() },
        "gateway": null,
        "acme": null,
        "instances": [],
        "certificateKeys": [],
    });
    let (port, ca) = crate::tls_server(&name, document.to_string());
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca).unwrap();

    let url = format!("https://{name}:{port}/");
    let run = devnet.covenant(
        None,
        &["verify", &url, "--ca-file", ca_file.to_str().unwrap()],
    );
    assert!(!run.ok, "an old view verified: {}", run.stdout);
    assert!(
        run.stderr.contains("  ok      TLS:"),
        "the TLS link itself holds: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!(
            "BROKEN  decision: block {} is ",
            old.header.number
        )) && run.stderr.contains("behind the head"),
        "{}",
        run.stderr
    );
}

/// A custom domain's link holds only when the app claims the name on chain at the decision block
/// and the DNS record `_covenant.<name>` (a real DNS server, in process) names that app — and no
/// other app that claims it too.
#[tokio::test(flavor = "multi_thread")]
async fn a_custom_domain_needs_the_on_chain_claim_and_the_dns_record() {
    use alloy::primitives::Address;
    use covenant_chain::domain_registry::DomainRegistry;
    use covenant_testkit::{dns::DnsServer, send};

    let devnet = Devnet::start().await;
    let dir = tempfile::tempdir().unwrap();
    let developer: Address = devnet.anvil.accounts()[1].address.parse().unwrap();
    let registry = devnet.deployment.contracts.kms_registry;
    let compose = dir.path().join("shop.json");
    std::fs::write(
        &compose,
        serde_json::json!({
            "manifest_version": 1,
            "name": "shop",
            "containers": [{ "name": "shop", "image": format!("covenant.local/shop@sha256:{}", "ab".repeat(32)) }],
            "kms": { "chain_id": 31337, "registry": registry.to_string().to_lowercase() },
        })
        .to_string(),
    )
    .unwrap();
    let create = || {
        let created = devnet.json(
            Some(&devnet.key(1)),
            &[
                "app",
                "create",
                "--owner",
                &developer.to_string(),
                "--compose",
                compose.to_str().unwrap(),
                "--source-url",
                "https://example.invalid/shop",
                "--commit",
                "v1",
                "--any-device",
            ],
        );
        created["app"].as_str().unwrap().parse::<Address>().unwrap()
    };
    let (shop, squatter) = (create(), create());
    let domains = DomainRegistry::new(
        devnet.deployment.contracts.domain_registry,
        &devnet.provider,
    );
    const NAME: &str = "shop.example.test";
    send!(domains.claimDomain(NAME.to_owned(), shop).from(developer));
    // `.localhost` names never reach a DNS server (RFC 6761): a zone of its own, whose
    // addresses are loopback.
    let dns = DnsServer::start("example.test.").await;
    for name in ["shop.example.test.", "other.example.test."] {
        dns.add_a(name, std::net::Ipv4Addr::LOCALHOST).await;
    }

    // The gateway's document for the name, at the current block (recent and canonical).
    let verify = |host: &str| {
        let dns = dns.addr;
        let host = host.to_owned();
        let devnet = &devnet;
        let dir = dir.path().to_owned();
        async move {
            let head = devnet
                .provider
                .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
                .await
                .unwrap()
                .unwrap();
            let document = serde_json::json!({
                "version": 1,
                "host": host,
                "app": shop,
                "decision": { "block": head.header.number, "hash": head.header.hash },
                "gateway": null,
                "acme": null,
                "instances": [],
                "certificateKeys": [],
            });
            let (port, ca) = crate::tls_server(&host, document.to_string());
            let ca_file = dir.join("ca.pem");
            std::fs::write(&ca_file, ca).unwrap();
            let run = devnet.covenant(
                None,
                &[
                    "verify",
                    // A bare domain (and port) means https://<it>/.
                    &format!("{host}:{port}"),
                    "--ca-file",
                    ca_file.to_str().unwrap(),
                    "--dns-server",
                    &dns.to_string(),
                ],
            );
            // The gateway's own evidence is missing, so the whole check fails; the domain
            // link is what this test reads.
            assert!(!run.ok);
            run.stderr
        }
    };

    // No record yet: the claim alone is not enough.
    let out = verify(NAME).await;
    assert!(
        out.contains(
            "BROKEN  domain: the DNS record _covenant.shop.example.test. does not name app"
        ),
        "{out}"
    );
    // The holder publishes the record: the link holds.
    dns.add_txt("_covenant.shop.example.test.", &shop.to_string())
        .await;
    let out = verify(NAME).await;
    assert!(
        out.contains(&format!(
            "ok      domain: _covenant.shop.example.test. names app {shop}, which claims shop.example.test"
        )),
        "{out}"
    );
    // A record for a name the app never claimed proves nothing.
    dns.add_txt("_covenant.other.example.test.", &shop.to_string())
        .await;
    let out = verify("other.example.test").await;
    assert!(
        out.contains(&format!(
            "BROKEN  domain: app {shop} does not claim other.example.test"
        )),
        "{out}"
    );
    // A squatter claims the name too and the record names both: ambiguous, refused.
    send!(
        domains
            .claimDomain(NAME.to_owned(), squatter)
            .from(developer)
    );
    dns.add_txt("_covenant.shop.example.test.", &squatter.to_string())
        .await;
    let out = verify(NAME).await;
    assert!(
        out.contains("names more than one app claiming shop.example.test"),
        "{out}"
    );
}

/// The ACME account the gateway names must be the one registered on chain at the decision block:
/// refused while none is, and while another is; holds once a vote registers it.
#[tokio::test(flavor = "multi_thread")]
async fn the_gateways_acme_account_must_be_the_one_on_chain() {
    use alloy::primitives::Address;
    use covenant_chain::token::CovenantToken;
    use covenant_testkit::send;

    const ACCOUNT: &str = "https://acme.example.test/acct/7";
    let devnet = Devnet::start().await;
    let dir = tempfile::tempdir().unwrap();
    let name = format!("{}.localhost", "ab".repeat(20));
    let verify = || {
        let name = name.clone();
        let devnet = &devnet;
        let dir = dir.path().to_owned();
        async move {
            let head = devnet
                .provider
                .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
                .await
                .unwrap()
                .unwrap();
            let document = serde_json::json!({
                "version": 1,
                "host": name,
                "app": format!("0x{}", "ab".repeat(20)),
                "decision": { "block": head.header.number, "hash": head.header.hash },
                "gateway": null,
                "acme": { "accountUri": ACCOUNT },
                "instances": [],
                "certificateKeys": [],
            });
            let (port, ca) = crate::tls_server(&name, document.to_string());
            let ca_file = dir.join("ca.pem");
            std::fs::write(&ca_file, ca).unwrap();
            let run = devnet.covenant(
                None,
                &[
                    "verify",
                    &format!("https://{name}:{port}/"),
                    "--ca-file",
                    ca_file.to_str().unwrap(),
                ],
            );
            assert!(!run.ok, "the rest of the document is hostile");
            run.stderr
        }
    };
    let out = verify().await;
    assert!(
        out.contains(&format!(
            "BROKEN  acme: the gateway uses ACME account {ACCOUNT}, but none is registered"
        )),
        "{out}"
    );

    // The DAO registers the account: propose, vote, time, queue, time, execute.
    let deployer = devnet.key(0);
    let voter: Address = devnet.anvil.accounts()[0].address.parse().unwrap();
    let token = CovenantToken::new(devnet.deployment.contracts.covenant_token, &devnet.provider);
    send!(token.delegate(voter).from(voter));
    let proposed = devnet.json(
        Some(&deployer),
        &[
            "gov",
            "propose",
            "--description",
            "Register the gateway's ACME account",
            "set-gateway-acme-account",
            "--uri",
            ACCOUNT,
        ],
    );
    let id = proposed["id"].as_str().unwrap().to_owned();
    devnet.advance(2);
    devnet.json(Some(&deployer), &["gov", "vote", &id, "for"]);
    devnet.advance(21);
    devnet.finalize().await;
    devnet.json(Some(&deployer), &["gov", "queue", &id]);
    devnet.advance(11);
    devnet.json(Some(&deployer), &["gov", "execute", &id]);

    let out = verify().await;
    assert!(
        out.contains(&format!(
            "ok      acme: the gateway's ACME account {ACCOUNT} is the one on chain"
        )),
        "{out}"
    );
}
