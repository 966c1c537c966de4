//! Grants and the contract's denials, through the real chain, mirror and RA-TLS.

use alloy::{
    primitives::{Address, B256, Signature},
    providers::Provider,
};
use covenant_attest::TcbStatus;
use serde_json::{Value, json};

use crate::fixture::*;

const SECRETS: [&str; 4] = [
    "envSecretKey",
    "appSecretKey",
    "appCaSecretKey",
    "appAddress",
];

async fn keys(kms: &Kms, boot: &Boot) -> (u16, Value) {
    keys_trusting(kms, boot, kms.root_signer).await
}

/// `boot` asks for keys, its `key-provider` event naming `root`.
async fn keys_trusting(kms: &Kms, boot: &Boot, root: Address) -> (u16, Value) {
    let r = Instance::boot(boot, root)
        .post(kms, "/v1/keys", json!({ "paths": ["db"] }))
        .await;
    (r.status, r.json())
}

async fn granted(kms: &Kms, boot: &Boot) -> Value {
    let (status, body) = keys(kms, boot).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// A refusal names its reason and points at its own audit row.
async fn denied(kms: &Kms, boot: &Boot, reason: &str) {
    refused(kms, boot, keys(kms, boot).await, reason).await;
}

async fn refused(kms: &Kms, boot: &Boot, (status, body): (u16, Value), reason: &str) {
    assert_eq!(status, 403, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains(reason), "expected `{reason}`, got `{error}`");
    let seq = body["auditSeq"]
        .as_u64()
        .expect("a refusal has an audit row");
    let row = kms.get(&format!("/v1/audit/{seq}")).await.json();
    assert_eq!(row["entry"]["granted"], false);
    assert_eq!(row["entry"]["reason"].as_str().unwrap(), error);
    assert_eq!(
        row["entry"]["appId"].as_str().unwrap().to_lowercase(),
        boot.app.to_string().to_lowercase()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_apps_get_stable_keys_and_the_contract_decides_every_denial() {
    let stack = Stack::start().await;
    let kms = first_node(&stack, &[]).await;
    let app = stack.create_app().await;
    stack.finalize();
    kms.wait_serving_at(stack.head().await - FINALITY).await;

    // Keys: identical across requests (new connection, new RA-TLS key each time) and instances;
    // the disk key is per instance.
    let a1 = granted(&kms, &Boot::new(app, 1)).await;
    let a2 = granted(&kms, &Boot::new(app, 1)).await;
    let b = granted(&kms, &Boot::new(app, 2)).await;
    for k in SECRETS.iter().chain(&["diskKey"]) {
        assert_eq!(a1[k], a2[k], "{k} differs between two requests");
    }
    for k in SECRETS {
        assert_eq!(a1[k], b[k], "{k} differs between two instances");
    }
    assert_ne!(a1["diskKey"], b["diskKey"]);
    assert_eq!(a1["paths"]["db"], a2["paths"]["db"]);
    assert_eq!(a1["diskKey"].as_str().unwrap().len(), 64);

    // The app key is signed by the root signer registered on chain (Ethereum-recoverable).
    let registry = stack.registry();
    let roots = registry.kmsRootKeys().call().await.unwrap();
    let app_key: Address = a1["appAddress"].as_str().unwrap().parse().unwrap();
    let digest = covenant_kms_oracle::keys::app_key_digest(
        &covenant_kms_oracle::keys::Domain {
            chain_id: stack.deployment.chain_id,
            kms_registry: stack.registry_address(),
        },
        app,
        a1["keyGeneration"].as_u64().unwrap(),
        app_key,
    );
    let sig = Signature::try_from(
        hex::decode(a1["appKeySignature"].as_str().unwrap())
            .unwrap()
            .as_slice(),
    )
    .unwrap();
    assert_eq!(sig.recover_address_from_prehash(&digest).unwrap(), roots._0);
    // The env key a developer can fetch without attestation is the one the app receives.
    let env = kms.get(&format!("/v1/apps/{app}/env-key")).await.json();
    assert_eq!(env["publicKey"], a1["envPublicKey"]["publicKey"]);
    assert_eq!(env["signature"], a1["envPublicKey"]["signature"]);

    // Denials, each with the contract's reason.
    denied(
        &kms,
        &Boot::new(Address::repeat_byte(0x99), 1),
        "app not registered",
    )
    .await;
    denied(
        &kms,
        &Boot {
            compose: [0xc1; 32],
            ..Boot::new(app, 1)
        },
        "compose hash not allowed",
    )
    .await;
    denied(
        &kms,
        &Boot {
            os_image: OS_IMAGE_UNLISTED,
            ..Boot::new(app, 1)
        },
        "os image not allowed",
    )
    .await;
    // Evidence made after the boot (an app event past system-ready): not the boot asking.
    denied(
        &kms,
        &Boot {
            after_boot: vec![covenant_attest::eventlog::RuntimeEvent::new(
                "app.started",
                vec![1],
            )],
            ..Boot::new(app, 1)
        },
        "the evidence's event log goes past system-ready",
    )
    .await;
    // A boot the chain allows, but whose key-provider event trusts another KMS root.
    let boot = Boot::new(app, 1);
    let other_root = Address::repeat_byte(0x4b);
    refused(
        &kms,
        &boot,
        keys_trusting(&kms, &boot, other_root).await,
        &format!(
            "the boot's key-provider is {}, not this KMS's root signer {}",
            other_root.to_string().to_lowercase(),
            kms.root_signer
        ),
    )
    .await;

    // Device list, TCB requirement: governance narrows the app.
    let owner = stack.app_owner();
    let app_c = stack.app_as(app);
    send!(app_c.setAnyDevice(false).from(owner));
    send!(app_c.addDevice(B256::from(APP_DEVICE)).from(owner));
    send!(app_c.setRequireUpToDateTcb(true).from(owner));
    stack.finalize();
    kms.wait_serving_at(stack.head().await - FINALITY).await;
    denied(
        &kms,
        &Boot {
            device: [0xee; 32],
            ..Boot::new(app, 1)
        },
        "device not allowed",
    )
    .await;
    denied(
        &kms,
        &Boot {
            tcb: TcbStatus::OutOfDate,
            ..Boot::new(app, 1)
        },
        "tcb not up to date",
    )
    .await;
    granted(&kms, &Boot::new(app, 1)).await;

    // An addition is honoured only once final; a removal takes effect once final.
    let new_hash = [0xc2; 32];
    send!(
        app_c
            .addComposeHash(B256::from(new_hash), app_provenance("v2"))
            .from(owner)
    );
    denied(
        &kms,
        &Boot {
            compose: new_hash,
            ..Boot::new(app, 1)
        },
        "compose hash not allowed",
    )
    .await;
    send!(app_c.removeComposeHash(B256::from(COMPOSE)).from(owner));
    granted(&kms, &Boot::new(app, 1)).await;
    stack.finalize();
    kms.wait_serving_at(stack.head().await - FINALITY).await;
    granted(
        &kms,
        &Boot {
            compose: new_hash,
            ..Boot::new(app, 1)
        },
    )
    .await;
    denied(&kms, &Boot::new(app, 1), "compose hash not allowed").await;

    // A key-generation bump by the app's governance (its owner, the Timelock) changes every key.
    let before = granted(
        &kms,
        &Boot {
            compose: new_hash,
            ..Boot::new(app, 1)
        },
    )
    .await;
    send!(app_c.bumpKeyGeneration().from(owner));
    stack.finalize();
    kms.wait_serving_at(stack.head().await - FINALITY).await;
    let after = granted(
        &kms,
        &Boot {
            compose: new_hash,
            ..Boot::new(app, 1)
        },
    )
    .await;
    assert_eq!(
        after["keyGeneration"].as_u64(),
        before["keyGeneration"].as_u64().map(|g| g + 1)
    );
    for k in SECRETS.iter().chain(&["diskKey"]) {
        assert_ne!(before[k], after[k], "{k} survived a key-generation bump");
    }

    // A mirror that disagrees with the chain (tampered here) makes the node deny, with a metric.
    let mirror = sqlx::PgPool::connect(stack.mirror.url()).await.unwrap();
    let tampered = sqlx::query("UPDATE members SET to_block = from_block WHERE set_name = 'compose_hash' AND member = $1 AND to_block IS NULL")
        .bind(new_hash.as_slice())
        .execute(&mirror)
        .await
        .unwrap();
    assert_eq!(tampered.rows_affected(), 1);
    stack.finalize();
    kms.wait_serving_at(stack.head().await - FINALITY).await;
    let (status, body) = keys(
        &kms,
        &Boot {
            compose: new_hash,
            ..Boot::new(app, 1)
        },
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("the mirror and the chain disagree"),
        "{body}"
    );
    let metrics = String::from_utf8(kms.get("/metrics").await.body).unwrap();
    assert!(
        metrics.contains("covenant_kms_policy_disagreements_total 1"),
        "{metrics}"
    );

    // Simulated evidence is refused once governance forbids it: the verifier no longer trusts
    // the (published) simulator root, so the client is not even authenticated — no audit row.
    let timelock = stack.timelock();
    send!(registry.setAllowSimulatedTee(false).from(timelock));
    stack.finalize();
    let head = stack.head().await;
    covenant_testkit::wait_for("the KMS to refuse simulated evidence")
        .timeout(std::time::Duration::from_secs(60))
        .until_ok_async(|| async {
            let (status, body) = keys(
                &kms,
                &Boot {
                    compose: new_hash,
                    ..Boot::new(app, 1)
                },
            )
            .await;
            let error = body["error"].as_str().unwrap_or_default().to_owned();
            if status == 401 && error.contains("simulated TEE evidence is not allowed") {
                assert!(body["auditSeq"].is_null(), "{body}");
                Ok(())
            } else {
                Err(format!("{status} {body} (head {head})"))
            }
        })
        .await
        .unwrap();
    let _ = stack.provider.get_block_number().await.unwrap();
}

/// An app with a notice period: a compose hash it adds is denied, with its own reason, until the
/// finalized block's timestamp reaches `addedAt + noticePeriod`; a removal is immediate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_added_compose_hash_is_denied_until_its_notice_period_ends_at_the_finalized_block() {
    // Within the staleness bound (1800 s): the head runs NOTICE ahead of the finalized block.
    const NOTICE: u64 = 600;
    let stack = Stack::start().await;
    let kms = first_node(&stack, &[]).await;
    let app = stack.create_app().await;
    let owner = stack.app_owner();
    let app_c = stack.app_as(app);
    send!(app_c.setNoticePeriod(NOTICE).from(owner));
    let new_hash = [0xc3; 32];
    let receipt = send!(
        app_c
            .addComposeHash(B256::from(new_hash), app_provenance("v2"))
            .from(owner)
    );
    let added = receipt
        .inner
        .logs()
        .iter()
        .find_map(|l| {
            l.log_decode::<covenant_chain::app::App::ComposeHashAdded>()
                .ok()
        })
        .expect("ComposeHashAdded")
        .inner
        .data;
    let added_at = stack
        .provider
        .get_block_by_number(receipt.block_number.unwrap().into())
        .await
        .unwrap()
        .unwrap()
        .header
        .timestamp;
    assert_eq!(added.effectiveAt, added_at + NOTICE);
    let upgraded = Boot {
        compose: new_hash,
        ..Boot::new(app, 1)
    };

    // Final, but not yet effective: denied with its own reason, the old code still served.
    stack.finalize();
    kms.wait_serving_at(stack.head().await - FINALITY).await;
    denied(&kms, &upgraded, "compose hash not yet effective").await;
    granted(&kms, &Boot::new(app, 1)).await;

    // The notice period has passed at the head, but not yet at the finalized block: still denied.
    stack
        .anvil
        .rpc("evm_increaseTime", json!([NOTICE]))
        .unwrap();
    stack.mine(1);
    let head = stack.head().await;
    let head_time = stack
        .provider
        .get_block_by_number(head.into())
        .await
        .unwrap()
        .unwrap()
        .header
        .timestamp;
    assert!(head_time >= added.effectiveAt);
    kms.wait_serving_at(head - FINALITY).await;
    denied(&kms, &upgraded, "compose hash not yet effective").await;

    // Once the block past the notice period is final, the new code gets the app's keys.
    stack.mine(FINALITY);
    kms.wait_serving_at(head).await;
    let new_keys = granted(&kms, &upgraded).await;
    let old_keys = granted(&kms, &Boot::new(app, 1)).await;
    for k in SECRETS {
        assert_eq!(new_keys[k], old_keys[k], "{k} differs across an upgrade");
    }

    // A removal needs no notice: the old code is refused as soon as the removal is final.
    send!(app_c.removeComposeHash(B256::from(COMPOSE)).from(owner));
    stack.finalize();
    kms.wait_serving_at(stack.head().await - FINALITY).await;
    denied(&kms, &Boot::new(app, 1), "compose hash not allowed").await;
    granted(&kms, &upgraded).await;
}

/// `covenant_kms_chain_reads_total{function="isAppAllowed"}`.
async fn is_app_allowed_reads(kms: &Kms) -> u64 {
    let metrics = String::from_utf8(kms.get("/metrics").await.body).unwrap();
    metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("covenant_kms_chain_reads_total{function=\"isAppAllowed\"} ")
                .map(|n| n.parse().unwrap())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_share_a_chain_answer_only_where_the_deployments_own_code_decides() {
    let stack = Stack::start().await;
    // No grant-log commits: each would mine a block and move the finalized block mid-count.
    let kms = first_node(
        &stack,
        &[
            "--commit-interval-ms",
            "3600000",
            "--max-uncommitted-age-secs",
            "7200",
        ],
    )
    .await;
    let factory_app = stack.create_app().await;
    // A custom policy admitted by governance, deciding by instance id.
    let allowed_instance = [7u8; 20];
    let custom_app = deploy(
        &stack,
        "InstanceAllowlistPolicy",
        alloy::sol_types::SolValue::abi_encode(&alloy::primitives::FixedBytes::from(
            allowed_instance,
        )),
    )
    .await;
    let timelock = stack.timelock();
    send!(
        stack
            .registry()
            .registerCustomApp(custom_app)
            .from(timelock)
    );
    stack.finalize();
    kms.wait_serving_at(stack.head().await - FINALITY).await;

    // Instances of a factory app on the deployment's App implementation: one eth_call for all
    // of them at this block (they differ in instance id and, through RTMR3, in mrAggregated).
    let before = is_app_allowed_reads(&kms).await;
    let mut disk_keys = std::collections::HashSet::new();
    for instance in 1..=4 {
        let keys = granted(&kms, &Boot::new(factory_app, instance)).await;
        disk_keys.insert(keys["diskKey"].as_str().unwrap().to_owned());
    }
    assert_eq!(disk_keys.len(), 4, "a disk key per instance");
    assert_eq!(is_app_allowed_reads(&kms).await - before, 1);

    // The custom policy is asked about every instance, and its answer differs between them.
    let before = is_app_allowed_reads(&kms).await;
    granted(&kms, &Boot::new(custom_app, allowed_instance[0])).await;
    denied(&kms, &Boot::new(custom_app, 8), "instance not allowed").await;
    denied(&kms, &Boot::new(custom_app, 9), "instance not allowed").await;
    assert_eq!(is_app_allowed_reads(&kms).await - before, 3);

    // At the next finalized block nothing is reused: the factory app is asked again, once.
    stack.finalize();
    kms.wait_serving_at(stack.head().await - FINALITY).await;
    let before = is_app_allowed_reads(&kms).await;
    granted(&kms, &Boot::new(factory_app, 5)).await;
    granted(&kms, &Boot::new(factory_app, 6)).await;
    assert_eq!(is_app_allowed_reads(&kms).await - before, 1);

    // Governance moves the app to another App implementation, which this kms-oracle does not
    // know: every instance is asked about again.
    let registry_address = stack.registry_address();
    let next = deploy(
        &stack,
        "App",
        alloy::sol_types::SolValue::abi_encode(&registry_address),
    )
    .await;
    send!(stack.registry().setAppImplementation(next).from(timelock));
    send!(
        stack
            .app_as(factory_app)
            .upgradeToAndCall(next, Default::default())
            .from(stack.app_owner())
    );
    stack.finalize();
    kms.wait_serving_at(stack.head().await - FINALITY).await;
    let before = is_app_allowed_reads(&kms).await;
    for instance in 10..13 {
        granted(&kms, &Boot::new(factory_app, instance)).await;
    }
    assert_eq!(is_app_allowed_reads(&kms).await - before, 3);
}

/// Deploys the forge artifact `name` with ABI-encoded constructor arguments.
async fn deploy(stack: &Stack, name: &str, arguments: Vec<u8>) -> Address {
    let mut code = covenant_testkit::artifact_bytecode(name).unwrap();
    code.extend(arguments);
    let deployer = stack.anvil.accounts()[1]
        .address
        .parse::<Address>()
        .unwrap();
    let tx = alloy::network::TransactionBuilder::with_deploy_code(
        alloy::rpc::types::TransactionRequest::default().from(deployer),
        code,
    );
    stack
        .provider
        .send_transaction(tx)
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap()
        .contract_address
        .unwrap()
}

/// `GET /v1/audit?app=…`: one app's decisions, newest first, paged; another app's are not in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apps_decisions_are_listed_newest_first() {
    let stack = Stack::start().await;
    let kms = first_node(&stack, &[]).await;
    let app = stack.create_app().await;
    let other = stack.create_app().await;
    stack.finalize();
    kms.wait_serving_at(stack.head().await - FINALITY).await;
    for i in 1..=3 {
        granted(&kms, &Boot::new(app, i)).await;
        granted(&kms, &Boot::new(other, i)).await;
    }
    let listed = kms.get(&format!("/v1/audit?app={app}")).await;
    assert_eq!(listed.status, 200);
    let listed = listed.json();
    let entries = listed["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{listed}");
    let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "{seqs:?}");
    for e in entries {
        assert_eq!(e["granted"], true);
        assert_eq!(
            e["appId"].as_str().unwrap().parse::<Address>().unwrap(),
            app,
            "{e}"
        );
        // The same entry as its own proof endpoint shows it.
        let one = kms.get(&format!("/v1/audit/{}", e["seq"])).await.json();
        assert_eq!(&one["entry"], e);
    }
    assert_eq!(listed["nextBefore"], Value::Null);
    // Paged: two, then the rest.
    let page = kms
        .get(&format!("/v1/audit?app={app}&limit=2"))
        .await
        .json();
    assert_eq!(page["entries"].as_array().unwrap().len(), 2);
    let before = page["nextBefore"].as_u64().unwrap();
    assert_eq!(before, seqs[1]);
    let rest = kms
        .get(&format!("/v1/audit?app={app}&before={before}"))
        .await
        .json();
    assert_eq!(rest["entries"][0]["seq"].as_u64(), Some(seqs[2]));
    assert_eq!(rest["entries"].as_array().unwrap().len(), 1);
    assert_eq!(kms.get("/v1/audit?app=nope").await.status, 400);
}
