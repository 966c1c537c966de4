//! A developer creates an app with the Timelock as owner; the DAO adds a second version through a
//! real vote (propose → vote → time → queue → time → execute), all with `covenant`.

use alloy::{
    primitives::{Address, B256},
    providers::Provider,
};
use covenant_chain::{app::App, token::CovenantToken};
use covenant_testkit::send;

use crate::Devnet;

fn write_compose(dir: &std::path::Path, name: &str, registry: Address) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.json"));
    let compose = serde_json::json!({
        "manifest_version": 1,
        "name": name,
        "containers": [{
            "name": name,
            "image": format!("covenant.local/{name}@sha256:{}", "ab".repeat(32)),
            "restart": "on-failure",
        }],
        "kms": { "chain_id": 31337, "registry": registry.to_string().to_lowercase() },
    });
    std::fs::write(&path, serde_json::to_vec_pretty(&compose).unwrap()).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_goes_through_a_real_vote_with_the_cli_alone() {
    let devnet = Devnet::start().await;
    let dir = tempfile::tempdir().unwrap();
    let registry = devnet.deployment.contracts.kms_registry;
    let v1 = write_compose(dir.path(), "hello", registry);
    let v2 = write_compose(dir.path(), "hello-two", registry);
    let deployer = devnet.key(0);
    let developer = devnet.key(1);

    // The compose hash is the attestation crate's, the one the TEE measures.
    let hashed = devnet.json(None, &["app", "compose-hash", v2.to_str().unwrap()]);
    let (_, want) = covenant_attest::compose::compose_hash(&std::fs::read(&v2).unwrap()).unwrap();
    let v2_hash: B256 = hashed["composeHash"].as_str().unwrap().parse().unwrap();
    assert_eq!(v2_hash.as_slice(), want.as_bytes());

    // A developer creates the app; the Timelock owns it, so only governance changes it.
    let created = devnet.json(
        Some(&developer),
        &[
            "app",
            "create",
            "--compose",
            v1.to_str().unwrap(),
            "--source-url",
            "https://example.invalid/hello",
            "--commit",
            "v1",
            "--any-device",
            "--tee",
            "simulated",
        ],
    );
    let app: Address = created["app"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        App::new(app, &devnet.provider)
            .owner()
            .call()
            .await
            .unwrap(),
        devnet.deployment.contracts.timelock_controller
    );

    // The deployer's tokens vote once delegated.
    let token = CovenantToken::new(devnet.deployment.contracts.covenant_token, &devnet.provider);
    let voter: Address = devnet.anvil.accounts()[0].address.parse().unwrap();
    send!(token.delegate(voter).from(voter));

    // Without a key nothing is sent, and the error says what to do.
    let refused = devnet.covenant(
        None,
        &[
            "gov",
            "propose",
            "--description",
            "x",
            "set-allow-simulated-tee",
            "--allowed",
            "false",
        ],
    );
    assert!(!refused.ok);
    assert!(
        refused.stderr.contains("no key to sign with")
            && refused.stderr.contains("COVENANT_PRIVATE_KEY"),
        "{}",
        refused.stderr
    );

    let description = "Allow hello v2\n\nBuilt from example.invalid/hello at v2.";
    let proposed = devnet.json(
        Some(&deployer),
        &[
            "gov",
            "propose",
            "--description",
            description,
            "add-compose-hash",
            "--app",
            &app.to_string(),
            "--hash",
            &v2_hash.to_string(),
            "--source-url",
            "https://example.invalid/hello",
            "--commit",
            "v2",
            "--digest",
            &B256::repeat_byte(0xab).to_string(),
        ],
    );
    let id = proposed["id"].as_str().unwrap().to_owned();
    assert!(proposed["sent"]["transaction"].is_string(), "{proposed}");

    // Voting opens after the 1 s delay.
    devnet.advance(2);
    let voted = devnet.json(Some(&deployer), &["gov", "vote", &id, "for"]);
    assert_ne!(voted["weight"].as_str().unwrap(), "0", "{voted}");

    // Queueing needs the proposal in the indexer's finalized view, and the vote to be over.
    devnet.advance(21);
    devnet.finalize().await;
    let queued = devnet.covenant(Some(&deployer), &["gov", "queue", &id]);
    assert!(queued.ok, "{}", queued.stderr);
    assert!(
        queued.stdout.contains("App(") && queued.stdout.contains("addComposeHash"),
        "the queued call is shown decoded: {}",
        queued.stdout
    );

    // Executing before the Timelock's delay is refused by the chain, with its reason.
    let early = devnet.covenant(Some(&deployer), &["gov", "execute", &id]);
    assert!(!early.ok);
    assert!(early.stderr.contains("would fail"), "{}", early.stderr);

    devnet.advance(11);
    let executed = devnet.json(Some(&deployer), &["gov", "execute", &id]);
    assert_eq!(executed["step"], "executed");
    assert!(
        App::new(app, &devnet.provider)
            .isComposeHashAllowed(v2_hash)
            .call()
            .await
            .unwrap(),
        "the vote's change is on chain"
    );

    // What voters and users read, at the finalized block.
    devnet.finalize().await;
    let shown = devnet.covenant(None, &["gov", "show", &id]);
    assert!(shown.ok, "{}", shown.stderr);
    let status = devnet.covenant(None, &["app", "status", &app.to_string()]);
    assert!(status.ok, "{}", status.stderr);
    assert!(
        status.stdout.contains(&v2_hash.to_string()),
        "{}",
        status.stdout
    );
    // Times change from run to run; everything else is fixed by the scripted history.
    insta::with_settings!({ filters => vec![
        (r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", "<time>"),
    ] }, {
        insta::assert_snapshot!("gov_show_executed", shown.stdout);
        insta::assert_snapshot!("app_status_two_versions", status.stdout);
    });
}

/// An indexer that answers with the real proposal but another call (a hostile or broken
/// indexer): `covenant gov queue` refuses to send it, because the calls no longer hash to the
/// proposal id. And `--unsigned` sends nothing: it prints the transaction for another signer.
#[tokio::test(flavor = "multi_thread")]
async fn queue_refuses_calls_that_are_not_the_proposals_and_unsigned_sends_nothing() {
    let devnet = Devnet::start().await;
    let deployer = devnet.key(0);
    let voter: Address = devnet.anvil.accounts()[0].address.parse().unwrap();
    let token = CovenantToken::new(devnet.deployment.contracts.covenant_token, &devnet.provider);
    send!(token.delegate(voter).from(voter));

    let args = [
        "gov",
        "propose",
        "--description",
        "Forbid the simulated TEE",
        "set-allow-simulated-tee",
        "--allowed",
        "false",
    ];
    // --unsigned: the proposal transaction is printed, and the chain does not move.
    let nonce = devnet.provider.get_transaction_count(voter).await.unwrap();
    let printed = devnet.json(Some(&deployer), &[&["--unsigned"][..], &args].concat());
    let tx = &printed["sent"]["unsigned"];
    assert_eq!(
        tx["to"].as_str().unwrap().parse::<Address>().unwrap(),
        devnet.deployment.contracts.covenant_governor
    );
    assert!(tx["data"].as_str().unwrap().len() > 10, "{printed}");
    assert_eq!(
        devnet.provider.get_transaction_count(voter).await.unwrap(),
        nonce,
        "nothing was sent"
    );

    let proposed = devnet.json(Some(&deployer), &args);
    let id = proposed["id"].as_str().unwrap().to_owned();
    assert_eq!(
        printed["id"], proposed["id"],
        "the unsigned proposal has the same id"
    );
    devnet.advance(2);
    devnet.json(Some(&deployer), &["gov", "vote", &id, "for"]);
    devnet.advance(21);
    devnet.finalize().await;

    // The real proposal, with its call swapped for one the voters never saw.
    let real: serde_json::Value = reqwest::get(format!("{}/v1/proposals/{id}", devnet.indexer_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut forged = real.clone();
    forged["actions"][0]["calldata"] = serde_json::json!(
        "0x2ee6d4f90000000000000000000000000000000000000000000000000000000000000001"
    );
    let hostile = crate::OneAnswer::serve(forged.to_string());
    let mut run = devnet.covenant_with(
        Some(&deployer),
        &["gov", "queue", &id],
        &[("COVENANT_INDEXER_URL", &hostile.url())],
    );
    assert!(!run.ok, "a forged call was queued: {}", run.stdout);
    assert!(
        run.stderr.contains("refusing to send them"),
        "{}",
        run.stderr
    );

    // The real indexer's calls are the proposal's: queueing works.
    run = devnet.covenant(Some(&deployer), &["gov", "queue", &id]);
    assert!(run.ok, "{}", run.stderr);
}

/// A key from an encrypted keystore file (made by `cast wallet new`) signs; a wrong password is a
/// clear refusal and sends nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_keystore_signs_and_a_wrong_password_is_refused() {
    let devnet = Devnet::start().await;
    let dir = tempfile::tempdir().unwrap();
    let made = std::process::Command::new(covenant_testkit::tools::foundry_bin("cast").unwrap())
        .args([
            "wallet",
            "new",
            dir.path().to_str().unwrap(),
            "--unsafe-password",
            "pw",
        ])
        .output()
        .unwrap();
    assert!(made.status.success());
    let made = String::from_utf8_lossy(&made.stdout).into_owned();
    let address: Address = made
        .lines()
        .find_map(|l| l.strip_prefix("Address:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let keystore = std::fs::read_dir(dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    devnet
        .anvil
        .rpc(
            "anvil_setBalance",
            serde_json::json!([address.to_string(), "0xDE0B6B3A7640000"]),
        )
        .unwrap();
    let registry = devnet.deployment.contracts.kms_registry;
    let compose = write_compose(dir.path(), "kept", registry);
    let args = [
        "--keystore",
        keystore.to_str().unwrap(),
        "app",
        "create",
        "--compose",
        compose.to_str().unwrap(),
        "--source-url",
        "https://example.invalid/kept",
        "--commit",
        "v1",
        "--any-device",
    ];

    let wrong = devnet.covenant_with(None, &args, &[("COVENANT_KEYSTORE_PASSWORD", "nope")]);
    assert!(!wrong.ok);
    assert!(
        wrong.stderr.contains("opening the keystore"),
        "{}",
        wrong.stderr
    );
    assert_eq!(
        devnet
            .provider
            .get_transaction_count(address)
            .await
            .unwrap(),
        0
    );

    let mut json_args = vec!["--json"];
    json_args.extend_from_slice(&args);
    let created = devnet.covenant_with(None, &json_args, &[("COVENANT_KEYSTORE_PASSWORD", "pw")]);
    assert!(created.ok, "{}", created.stderr);
    let created: serde_json::Value = serde_json::from_str(&created.stdout).unwrap();
    let tx: alloy::primitives::B256 = created["sent"]["transaction"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let sent = devnet
        .provider
        .get_transaction_by_hash(tx)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sent.inner.signer(), address, "signed by the keystore's key");
}

/// Several registry changes in one proposal: each printed by `gov calldata`, gathered in a file,
/// proposed with `--calls`, and shown decoded, in order, by `gov show`.
#[tokio::test(flavor = "multi_thread")]
async fn a_proposal_of_several_calls_comes_from_a_file() {
    let devnet = Devnet::start().await;
    let dir = tempfile::tempdir().unwrap();
    let device = B256::repeat_byte(0x07);
    let first = devnet.json(
        None,
        &[
            "gov",
            "calldata",
            "set-allow-simulated-tee",
            "--allowed",
            "false",
        ],
    );
    let second = devnet.json(
        None,
        &[
            "gov",
            "calldata",
            "add-kms-device",
            "--device",
            &device.to_string(),
        ],
    );
    assert_eq!(
        first["target"]
            .as_str()
            .unwrap()
            .parse::<Address>()
            .unwrap(),
        devnet.deployment.contracts.kms_registry
    );
    let file = dir.path().join("calls.json");
    std::fs::write(&file, serde_json::json!([first, second]).to_string()).unwrap();
    let proposed = devnet.json(
        Some(&devnet.key(0)),
        &[
            "gov",
            "propose",
            "--description",
            "Two changes",
            "--calls",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(proposed["calls"], serde_json::json!([first, second]));
    let id = proposed["id"].as_str().unwrap().to_owned();
    devnet.finalize().await;
    let shown = devnet.covenant(None, &["gov", "show", &id]);
    assert!(shown.ok, "{}", shown.stderr);
    let one = shown.stdout.find("1. KmsRegistry").unwrap();
    let two = shown.stdout.find("2. KmsRegistry").unwrap();
    assert!(one < two, "{}", shown.stdout);
    assert!(
        shown.stdout[one..two].contains("setAllowSimulatedTee"),
        "{}",
        shown.stdout
    );
    assert!(
        shown.stdout[two..].contains("addKmsDevice"),
        "{}",
        shown.stdout
    );

    // A file that is not a list of calls is refused before anything is sent.
    std::fs::write(&file, r#"{"target": "0x00"}"#).unwrap();
    let refused = devnet.covenant(
        Some(&devnet.key(0)),
        &[
            "gov",
            "propose",
            "--description",
            "bad",
            "--calls",
            file.to_str().unwrap(),
        ],
    );
    assert!(!refused.ok);
    assert!(
        refused.stderr.contains("is not a list of calls"),
        "{}",
        refused.stderr
    );
}
