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
    let compose = devnet.compose_file(dir.path(), "shop", "ab");
    let create = || devnet.create_own_app(&compose, "https://example.invalid/shop", &[]);
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
/// refused while none is; holds once a vote registers it. The name's CAA records must then let
/// only that account be issued certificates: the closest name with records governs.
#[tokio::test(flavor = "multi_thread")]
async fn the_gateways_acme_account_must_be_the_one_on_chain() {
    use alloy::primitives::Address;
    use covenant_chain::token::CovenantToken;
    use covenant_testkit::send;

    const ACCOUNT: &str = "https://acme.example.test/acct/7";
    let devnet = Devnet::start().await;
    let dir = tempfile::tempdir().unwrap();
    let name = format!("{}.example.test", "ab".repeat(20));
    // The whole `test.` zone: CAA records are looked for up to the top-level name.
    let dns = covenant_testkit::dns::DnsServer::start("test.").await;
    dns.add_a(&format!("{name}."), std::net::Ipv4Addr::LOCALHOST)
        .await;
    let verify = || {
        let name = name.clone();
        let devnet = &devnet;
        let dns = dns.addr.to_string();
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
                    "--dns-server",
                    &dns,
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
    assert!(
        out.contains(&format!("BROKEN  CAA: no CAA record governs {name}")),
        "{out}"
    );

    // A CAA record on the parent lets another account of the CA be issued certificates.
    const OTHER: &str = "https://acme.example.test/acct/8";
    dns.add_caa_issue("example.test.", "ca.example.test", Some(OTHER))
        .await;
    let out = verify().await;
    assert!(
        out.contains(&format!(
            "BROKEN  CAA: the issue record for ca.example.test at example.test lets account \
             {OTHER} be issued certificates"
        )),
        "{out}"
    );

    // The name's own record governs it, and names only the gateway's account.
    dns.add_caa_issue(&format!("{name}."), "ca.example.test", Some(ACCOUNT))
        .await;
    let out = verify().await;
    assert!(
        out.contains(&format!(
            "ok      CAA: the CAA records at {name} let only account {ACCOUNT} be issued"
        )),
        "{out}"
    );
}

/// `covenant verify <evidence>`: an instance's `GetQuote` answer over the caller's bytes, checked
/// against the chain now. Refused over other bytes; refused, naming the registry's reason, while
/// its OS image is not allowed, and while no KMS root is registered or another one is; holds once
/// governance has both on chain.
#[tokio::test(flavor = "multi_thread")]
async fn an_instances_evidence_is_checked_against_the_chain_now() {
    use alloy::primitives::{Address, B256};
    use covenant_attest::{
        AppId, DeviceId, Evidence, InstanceId, Measurement, OsImageHash, Platform, ReportData,
        eventlog::RuntimeIdentity,
        simulator::{SimulatedTee, SimulatorRootKey},
    };
    use covenant_chain::kms_registry::KmsRegistry;
    use covenant_testkit::send;

    let devnet = Devnet::start().await;
    let dir = tempfile::tempdir().unwrap();
    let registry_address = devnet.deployment.contracts.kms_registry;
    let compose = devnet.compose_file(dir.path(), "notes", "cd");
    let app = devnet.create_own_app(
        &compose,
        "https://example.invalid/notes",
        &["--tee", "simulated"],
    );
    let (_, compose_hash) =
        covenant_attest::compose::compose_hash(&std::fs::read(&compose).unwrap()).unwrap();

    // An instance of it on the simulated TEE, trusting the KMS root signer ROOT, quoting the
    // caller's NONCE through its guest's GetQuote.
    const ROOT: Address = Address::repeat_byte(0x77);
    const NONCE: [u8; 64] = [0x42; 64];
    let (mrtd, rtmr) = ([0x11u8; 48], [0x22u8; 48]);
    let os_image = B256::repeat_byte(0x05);
    let mut tee = SimulatedTee::new(
        SimulatorRootKey::development(),
        DeviceId::new([0xad; 32]),
        Measurement::new(mrtd),
        [Measurement::new(rtmr); 3],
    );
    tee.record_boot(&RuntimeIdentity {
        app_id: AppId::new(app.into_array()),
        compose_hash,
        instance_id: InstanceId::new([0x01; 20]),
        key_provider: ROOT.to_vec(),
        os_image_hash: OsImageHash::new(os_image.0),
        gpu_evidence_hash: None,
    });
    let bound = ReportData::new(covenant_guest_api::api::quote_report_data(&NONCE));
    let answer = serde_json::json!({
        "evidence": Evidence {
            platform: Platform::Simulated,
            quote: tee.quote(&bound),
            vcek: Vec::new(),
            event_log: tee.event_log().to_vec(),
            gpu: None,
        }
    });
    let file = dir.path().join("quote.json");
    std::fs::write(&file, answer.to_string()).unwrap();
    let verify = |report_data: &[u8; 64]| {
        devnet.covenant(
            None,
            &[
                "verify",
                file.to_str().unwrap(),
                "--report-data",
                &hex::encode(report_data),
            ],
        )
    };

    // Over other bytes than the caller's: not this caller's quote.
    let run = verify(&[0x43; 64]);
    assert!(!run.ok);
    assert!(run.stderr.contains("BROKEN  evidence: "), "{}", run.stderr);
    assert!(!run.stderr.contains("instance"), "{}", run.stderr);

    // The evidence holds, but the chain allows no such OS image.
    let run = verify(&NONCE);
    assert!(!run.ok);
    assert!(
        run.stderr
            .contains("ok      evidence: Simulated evidence over the given report data"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!(
            "BROKEN  instance: 0x{} of app {app} (compose hash 0x{}) is refused by the registry",
            "01".repeat(20),
            hex::encode(compose_hash.as_bytes())
        )),
        "{}",
        run.stderr
    );

    // Governance (the Timelock, impersonated here) allows the image with the instance's
    // registers, then registers another KMS root, then ROOT.
    let timelock = devnet.deployment.contracts.timelock_controller;
    devnet
        .anvil
        .rpc(
            "anvil_impersonateAccount",
            serde_json::json!([timelock.to_string()]),
        )
        .unwrap();
    devnet
        .anvil
        .rpc(
            "anvil_setBalance",
            serde_json::json!([timelock.to_string(), "0x56BC75E2D63100000"]),
        )
        .unwrap();
    let registry = KmsRegistry::new(registry_address, &devnet.provider);
    send!(
        registry
            .addOsImage(
                os_image,
                KmsRegistry::Provenance {
                    sourceUrl: "https://example.invalid/os".into(),
                    sourceCommit: "os-v1".into(),
                    artifactDigests: vec![B256::repeat_byte(0x42)],
                },
                vec![KmsRegistry::OsMeasurement {
                    teeKind: 3,
                    registers: [mrtd, rtmr, rtmr, rtmr].concat().into(),
                }],
            )
            .from(timelock)
    );
    let run = verify(&NONCE);
    assert!(!run.ok);
    assert!(
        run.stderr.contains("ok      instance: 0x0101"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("BROKEN  KMS root: no KMS root keys are registered on chain"),
        "{}",
        run.stderr
    );
    let ca_key = [0x04u8; 65];
    let other = Address::repeat_byte(0x78);
    send!(
        registry
            .setKmsRootKeys(other, ca_key.to_vec().into())
            .from(timelock)
    );
    let run = verify(&NONCE);
    assert!(
        run.stderr.contains(&format!(
            "BROKEN  KMS root: it trusts key provider 0x{}, not the chain's KMS root signer {other}",
            hex::encode(ROOT)
        )),
        "{}",
        run.stderr
    );
    send!(
        registry
            .setKmsRootKeys(ROOT, ca_key.to_vec().into())
            .from(timelock)
    );
    let run = verify(&NONCE);
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout.contains(&format!(
            "ok      KMS root: its keys come from the chain's KMS root signer {ROOT}"
        )),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("verified: the evidence holds on chain now"),
        "{}",
        run.stdout
    );
}

/// A real TDX quote (the shared vectors') with its collateral reaches the platform's checks: the
/// collateral is read and judged (too old today), not ignored.
#[tokio::test(flavor = "multi_thread")]
async fn a_real_tdx_quote_is_judged_with_the_collateral_given() {
    let devnet = Devnet::start().await;
    let dir = tempfile::tempdir().unwrap();
    let vectors = covenant_testkit::tools::repo_root().join("crates/attest/testdata");
    let quote = std::fs::read(vectors.join("tdx_quote")).unwrap();
    let file = dir.path().join("tdx.json");
    std::fs::write(
        &file,
        serde_json::json!({ "platform": "tdx", "quote": hex::encode(&quote), "event_log": [] })
            .to_string(),
    )
    .unwrap();
    let collateral = vectors.join("tdx_quote_collateral.json");
    let args = |extra: &[&str]| {
        let mut a = vec![
            "verify".to_owned(),
            file.to_str().unwrap().to_owned(),
            "--report-data".to_owned(),
            "00".repeat(64),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let run_with = |extra: &[&str]| {
        let a = args(extra);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        devnet.covenant(None, &a)
    };
    let without = run_with(&[]);
    assert!(!without.ok);
    let with = run_with(&["--collateral", collateral.to_str().unwrap()]);
    assert!(!with.ok);
    let broken = |run: &crate::Run| {
        run.stderr
            .lines()
            .find(|l| l.contains("BROKEN  evidence:"))
            .unwrap_or_else(|| panic!("{}", run.stderr))
            .to_owned()
    };
    assert_ne!(broken(&without), broken(&with), "the collateral was used");
    // Intel's CRLs in the collateral of June 2025 have passed their next update.
    assert!(broken(&with).contains("CrlExpired"), "{}", with.stderr);
}
