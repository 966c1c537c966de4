//! After a scripted history, every projection served by the API equals what the contracts return
//! by `eth_call` at the mirror's finalized block.

use std::collections::BTreeSet;

use alloy::{
    eips::BlockId,
    primitives::{Address, B256, FixedBytes, U256},
};
use covenant_chain::{
    app::App,
    domain_registry::DomainRegistry,
    governor::CovenantGovernor,
    guardian::CovenantGuardian,
    kms_registry::{IApp, KmsRegistry},
};
use covenant_testkit::postgres;
use serde_json::{Value, json};

use crate::{
    fixture::{Chain, Indexer},
    history::{self, h},
    send,
};

fn set_of(v: &Value, key: &str) -> BTreeSet<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x[key].as_str().unwrap().to_owned())
        .collect()
}

fn hex(b: B256) -> String {
    b.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_projection_equals_the_contracts_at_the_finalized_block() {
    let chain = Chain::start().await;
    let hist = Box::pin(history::script(&chain)).await;
    let head = chain.head().await;
    let db = postgres::database();
    let indexer = Indexer::start(&chain, &db, &[]);
    let view = indexer.wait_finalized(head).await;
    let f = view["finalized"]["number"].as_u64().unwrap();
    let fh: B256 = view["finalized"]["hash"].as_str().unwrap().parse().unwrap();
    let at = BlockId::hash(fh);
    let c = &chain.deployment.contracts;
    let p = &chain.provider;
    let registry = KmsRegistry::new(c.kms_registry, p);

    // Apps.
    let apps = indexer.get_ok("/v1/apps").await;
    let listed: BTreeSet<String> = set_of(&apps["apps"], "address");
    let mut expected = BTreeSet::new();
    for a in hist
        .apps
        .iter()
        .chain([&hist.custom_app, &Address::repeat_byte(0x99)])
    {
        if registry.appKind(*a).block(at).call().await.unwrap() != 0 {
            expected.insert(a.to_checksum(None));
        }
    }
    assert_eq!(listed, expected);
    assert_eq!(listed.len(), 4, "three factory apps and one custom app");
    for a in &hist.apps {
        let v = indexer.get_ok(&format!("/v1/apps/{a}")).await;
        assert_eq!(v["block"]["number"], f);
        let app = App::new(*a, p);
        let mut hashes = BTreeSet::new();
        for ch in &hist.compose_hashes {
            if app
                .isComposeHashAllowed(*ch)
                .block(at)
                .call()
                .await
                .unwrap()
            {
                hashes.insert(hex(*ch));
            }
        }
        assert_eq!(
            set_of(&v["composeHashes"], "composeHash"),
            hashes,
            "compose hashes of {a}"
        );
        for row in v["composeHashes"].as_array().unwrap() {
            let ch: B256 = row["composeHash"].as_str().unwrap().parse().unwrap();
            let digest = app
                .composeHashProvenance(ch)
                .block(at)
                .call()
                .await
                .unwrap();
            assert_eq!(row["provenanceDigest"], hex(digest));
        }
        let mut devices = BTreeSet::new();
        for d in &hist.devices {
            if app.isDeviceAllowed(*d).block(at).call().await.unwrap() {
                devices.insert(hex(*d));
            }
        }
        assert_eq!(set_of(&v["devices"], "deviceId"), devices, "devices of {a}");
        let s = &v["settings"];
        assert_eq!(
            s["anyDevice"].as_bool().unwrap_or(false),
            app.anyDevice().block(at).call().await.unwrap()
        );
        assert_eq!(
            s["allowedTeeKinds"],
            app.allowedTeeKinds().block(at).call().await.unwrap()
        );
        assert_eq!(
            s["requireUpToDateTcb"].as_bool().unwrap_or(false),
            app.requireUpToDateTcb().block(at).call().await.unwrap()
        );
        assert_eq!(
            s["requireGpu"].as_bool().unwrap_or(false),
            app.requireGpu().block(at).call().await.unwrap()
        );
        assert_eq!(
            s["keyGeneration"],
            app.keyGeneration().block(at).call().await.unwrap()
        );
        assert_eq!(
            s["frozen"].as_bool().unwrap_or(false),
            app.frozen().block(at).call().await.unwrap()
        );
        assert_eq!(
            s["owner"],
            app.owner()
                .block(at)
                .call()
                .await
                .unwrap()
                .to_checksum(None)
        );
        let pending = app.pendingOwner().block(at).call().await.unwrap();
        assert_eq!(
            s["pendingOwner"]
                .as_str()
                .unwrap_or(&Address::ZERO.to_checksum(None)),
            pending.to_checksum(None)
        );
    }
    // The history of app1 shows the removed hash with the block that removed it.
    let v = indexer.get_ok(&format!("/v1/apps/{}", hist.apps[0])).await;
    let removed: Vec<&Value> = v["composeHashHistory"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["composeHash"] == hex(h(0xa1)))
        .collect();
    assert_eq!(removed.len(), 1);
    assert!(
        removed[0]["removedBlock"].as_u64().unwrap() > removed[0]["addedBlock"].as_u64().unwrap()
    );
    assert_eq!(v["domains"], json!(["app1.example.com"]));

    // OS images.
    let v = indexer.get_ok("/v1/os-images").await;
    let mut images = BTreeSet::new();
    for i in &hist.os_images {
        if registry
            .isOsImageAllowed(*i)
            .block(at)
            .call()
            .await
            .unwrap()
        {
            images.insert(hex(*i));
        }
    }
    assert_eq!(set_of(&v["osImages"], "osImageHash"), images);
    assert!(
        images.contains(&hex(h(0x03))),
        "the executed proposal added OS image 3"
    );
    for row in v["osImages"].as_array().unwrap() {
        let i: B256 = row["osImageHash"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            row["effectiveAt"],
            registry
                .osImageEffectiveAt(i)
                .block(at)
                .call()
                .await
                .unwrap()
        );
        // Every served measurement is registered on chain for its platform, with the sha256 of
        // the served registers; the same measurement on the other platform is not.
        let measurements = row["measurements"].as_array().unwrap();
        assert!(!measurements.is_empty(), "{row}");
        for m in measurements {
            use sha2::{Digest, Sha256};
            let registers = hex::decode(&m["registers"].as_str().unwrap()[2..]).unwrap();
            let measured = B256::from(<[u8; 32]>::from(Sha256::digest(&registers)));
            assert_eq!(m["osMeasurement"], hex(measured));
            let tee = m["teeKind"].as_u64().unwrap() as u8;
            assert!(
                registry
                    .isOsMeasurementRegistered(i, tee, measured)
                    .block(at)
                    .call()
                    .await
                    .unwrap(),
                "{m}"
            );
            let other = if tee == 2 { 1 } else { 2 };
            assert!(
                !registry
                    .isOsMeasurementRegistered(i, other, measured)
                    .block(at)
                    .call()
                    .await
                    .unwrap()
            );
        }
        assert_eq!(
            row["provenanceDigest"],
            hex(registry
                .osImageProvenance(i)
                .block(at)
                .call()
                .await
                .unwrap())
        );
    }

    // KMS nodes, measurements, devices.
    let v = indexer.get_ok("/v1/kms-nodes").await;
    let node = registry
        .kmsNode(hist.kms_node)
        .block(at)
        .call()
        .await
        .unwrap();
    let nodes = v["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), usize::from(node.active));
    assert_eq!(nodes[0]["node"], hist.kms_node.to_checksum(None));
    assert_eq!(nodes[0]["onboardedBy"], node.onboardedBy.to_checksum(None));
    assert_eq!(nodes[0]["mrAggregated"], hex(node.mrAggregated));
    assert_eq!(nodes[0]["deviceId"], hex(node.deviceId));
    assert_eq!(nodes[0]["onboardedAt"], node.onboardedAt);
    assert_eq!(nodes[0]["serving"], true);
    let mut m = Vec::new();
    for x in [h(0x11), h(0x12)] {
        if registry
            .isKmsMeasurementAllowed(x)
            .block(at)
            .call()
            .await
            .unwrap()
        {
            m.push(hex(x));
        }
    }
    assert_eq!(v["allowedMeasurements"], json!(m));
    assert_eq!(v["allowedDevices"], json!([hex(h(0x21))]));

    // Registry settings and root keys.
    let v = indexer.get_ok("/v1/registry").await;
    let s = &v["settings"];
    assert_eq!(
        s["allowSimulatedTee"],
        registry.allowSimulatedTee().block(at).call().await.unwrap()
    );
    assert_eq!(
        s["gatewayAppId"],
        registry
            .gatewayAppId()
            .block(at)
            .call()
            .await
            .unwrap()
            .to_checksum(None)
    );
    assert_eq!(
        s["appImplementation"],
        registry
            .appImplementation()
            .block(at)
            .call()
            .await
            .unwrap()
            .to_checksum(None)
    );
    assert_eq!(
        s["owner"],
        registry
            .owner()
            .block(at)
            .call()
            .await
            .unwrap()
            .to_checksum(None)
    );
    let roots = registry.kmsRootKeys().block(at).call().await.unwrap();
    assert_eq!(s["keyGeneration"], roots._2);
    let last = v["rootKeys"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["rootSigner"], roots._0.to_checksum(None));
    assert_eq!(last["caPublicKey"], roots._1.to_string());
    let domains = DomainRegistry::new(c.domain_registry, p);
    assert_eq!(
        v["domainRegistry"]["settings"]["gatewayAcmeAccount"],
        domains.gatewayAcmeAccount().block(at).call().await.unwrap()
    );

    // Domains.
    let v = indexer.get_ok("/v1/domains").await;
    let mut claimed = BTreeSet::new();
    for d in &hist.domains {
        let mut on_chain = BTreeSet::new();
        for app in &hist.apps {
            if domains
                .isClaimed(d.clone(), *app)
                .block(at)
                .call()
                .await
                .unwrap()
            {
                on_chain.insert(app.to_checksum(None));
            }
        }
        if on_chain.is_empty() {
            assert_eq!(indexer.get(&format!("/v1/domains/{d}")).await.0, 404);
            continue;
        }
        claimed.insert(d.clone());
        let one = indexer.get_ok(&format!("/v1/domains/{d}")).await;
        assert_eq!(set_of(&one["claims"], "app"), on_chain, "claims of {d}");
        for claim in one["claims"].as_array().unwrap() {
            assert!(claim["addedBlock"].as_u64().unwrap() <= f, "{claim}");
        }
    }
    assert_eq!(set_of(&v["domains"], "domain"), claimed);

    // Grant-log commitments.
    let v = indexer
        .get_ok(&format!("/v1/grant-log?node={}", hist.kms_node))
        .await;
    let commits = v["commitments"].as_array().unwrap();
    assert_eq!(commits.len(), 2);
    assert_eq!(commits.last().unwrap()["toSeq"], node.committedThrough);
    assert_eq!(commits[0]["merkleRoot"], hex(h(0x77)));

    // Proposals: state, tallies, eta and quorum as the Governor says.
    let governor = CovenantGovernor::new(c.covenant_governor, p);
    let list = indexer.get_ok("/v1/proposals").await;
    assert_eq!(
        list["proposals"].as_array().unwrap().len(),
        hist.proposals.len()
    );
    let mut states = BTreeSet::new();
    for id in &hist.proposals {
        let v = indexer.get_ok(&format!("/v1/proposals/{id}")).await;
        let state = governor.state(*id).block(at).call().await.unwrap();
        assert_eq!(v["stateCode"], state, "state of proposal {id}: {v}");
        states.insert(v["state"].as_str().unwrap().to_owned());
        let votes = governor.proposalVotes(*id).block(at).call().await.unwrap();
        assert_eq!(v["tally"]["against"], votes.againstVotes.to_string());
        assert_eq!(v["tally"]["for"], votes.forVotes.to_string());
        assert_eq!(v["tally"]["abstain"], votes.abstainVotes.to_string());
        let eta = governor.proposalEta(*id).block(at).call().await.unwrap();
        assert_eq!(v["eta"].as_u64().map(U256::from).unwrap_or_default(), eta);
        let snapshot = governor
            .proposalSnapshot(*id)
            .block(at)
            .call()
            .await
            .unwrap();
        if v["state"] != "pending" {
            // The Governor cannot tell the quorum of a snapshot still in the future.
            let quorum = governor.quorum(snapshot).block(at).call().await.unwrap();
            assert_eq!(v["quorum"], quorum.to_string());
        }
    }
    assert_eq!(
        states,
        [
            "active",
            "canceled",
            "defeated",
            "executed",
            "pending",
            "queued",
            "succeeded"
        ]
        .into_iter()
        .map(String::from)
        .collect(),
        "the history covers every state the Governor can be in"
    );
    // The executed proposal's actions are readable calls.
    let v = indexer
        .get_ok(&format!("/v1/proposals/{}", hist.executed_proposal))
        .await;
    let text = v["actions"][0]["text"].as_str().unwrap();
    assert!(
        text.starts_with(&format!(
            "App({}).addComposeHash(composeHash: {}, provenance: ",
            hist.apps[1].to_checksum(None),
            hex(h(0xb2))
        )),
        "{text}"
    );
    assert!(text.contains("\"sourceCommit\":\"v2\""), "{text}");
    assert!(
        v["actions"][1]["text"]
            .as_str()
            .unwrap()
            .starts_with("KmsRegistry("),
        "{v}"
    );
    assert_eq!(v["votes"][0]["support"], "for");

    // Policy checks: the mirror's answer equals isAppAllowed at the same block.
    // The registers history.rs registered with OS image 0x01: 0x31 bytes, 192 on TDX, 48 on SNP.
    let measured = |tee: u8| {
        use sha2::{Digest, Sha256};
        let len = if tee == 2 { 48 } else { 192 };
        B256::from(<[u8; 32]>::from(Sha256::digest(vec![0x31u8; len])))
    };
    let boot = |app: Address, compose: B256, device: B256, tee: u8, tcb: u8, generation: u64| {
        json!({
            "appId": app, "composeHash": compose, "instanceId": FixedBytes::<20>::repeat_byte(0x1d),
            "deviceId": device, "mrAggregated": h(0x11), "osImageHash": h(0x01),
            "osMeasurement": measured(tee),
            "teeKind": tee, "tcbStatus": tcb, "keyGeneration": generation,
        })
    };
    let (app1, app3) = (hist.apps[0], hist.apps[2]);
    let cases = [
        boot(app1, h(0xa2), h(0xd2), 1, 1, 2),
        boot(app1, h(0xa1), h(0xd2), 1, 1, 2),
        boot(app1, h(0xa2), h(0xd1), 1, 1, 2),
        boot(app1, h(0xa2), h(0xd2), 2, 1, 2),
        boot(app1, h(0xa2), h(0xd2), 3, 1, 2),
        boot(app1, h(0xa2), h(0xd2), 1, 5, 2),
        boot(app1, h(0xa2), h(0xd2), 1, 1, 1),
        boot(app3, h(0xc1), h(0x99), 1, 1, 1),
        boot(hist.custom_app, h(0xc1), h(0x99), 1, 1, 1),
        boot(Address::repeat_byte(0x99), h(0xc1), h(0x99), 1, 1, 1),
        {
            let mut b = boot(app1, h(0xa2), h(0xd2), 1, 1, 2);
            b["osImageHash"] = json!(h(0x02));
            b
        },
        {
            // The SNP measurement presented on TDX: not what the image measures to there.
            let mut b = boot(app1, h(0xa2), h(0xd2), 1, 1, 2);
            b["osMeasurement"] = json!(measured(2));
            b
        },
    ];
    let mut reasons = BTreeSet::new();
    for b in cases {
        let (status, v) = indexer.post("/v1/policy/app", &b).await;
        assert_eq!(status, 200, "{v}");
        let chain_boot: covenant_chain::BootInfo = covenant_chain::BootInfo {
            appId: b["appId"].as_str().unwrap().parse().unwrap(),
            composeHash: b["composeHash"].as_str().unwrap().parse().unwrap(),
            instanceId: FixedBytes::repeat_byte(0x1d),
            deviceId: b["deviceId"].as_str().unwrap().parse().unwrap(),
            mrAggregated: h(0x11),
            osImageHash: b["osImageHash"].as_str().unwrap().parse().unwrap(),
            osMeasurement: b["osMeasurement"].as_str().unwrap().parse().unwrap(),
            teeKind: b["teeKind"].as_u64().unwrap() as u8,
            tcbStatus: b["tcbStatus"].as_u64().unwrap() as u8,
            gpuEvidenceHash: B256::ZERO,
            keyGeneration: b["keyGeneration"].as_u64().unwrap(),
        };
        let on_chain = registry
            .isAppAllowed(chain_boot)
            .block(at)
            .call()
            .await
            .unwrap();
        assert_eq!(
            (
                v["allowed"].as_bool().unwrap(),
                v["reason"].as_str().unwrap()
            ),
            (on_chain._0, on_chain._1.as_str()),
            "{b}"
        );
        reasons.insert(on_chain._1.clone());
    }
    assert!(
        reasons.len() >= 8,
        "the cases cover most reasons: {reasons:?}"
    );
}

/// An app with a notice period and changes still pending, and the guardian's term: what the API
/// serves equals the contracts at the finalized block, before and after the times they take effect.
#[tokio::test(flavor = "multi_thread")]
async fn pending_changes_and_the_guardian_term_equal_the_contracts_before_and_after_they_take_effect()
 {
    const NOTICE: u64 = 86_400;
    let chain = Chain::start().await;
    let c = &chain.deployment.contracts;
    let p = &chain.provider;
    let registry = KmsRegistry::new(c.kms_registry, p);
    let guardian = CovenantGuardian::new(c.covenant_guardian, p);
    let timelock = chain.timelock();
    let owner = chain.account(1);
    send!(
        registry
            .addOsImage(
                h(0x01),
                history::kms_prov("os-1"),
                history::os_measurements(0x31)
            )
            .from(timelock)
    );
    let init = IApp::AppInit {
        composeHashes: vec![h(0xa1)],
        provenances: vec![history::init_prov("v1")],
        devices: vec![h(0xd1), h(0xd3)],
        anyDevice: false,
        allowedTeeKinds: 0x02,
        requireUpToDateTcb: true,
        requireGpu: false,
        noticePeriod: NOTICE,
    };
    let app = send!(registry.createApp(owner, init).from(chain.account(0)))
        .decoded_log::<KmsRegistry::AppCreated>()
        .unwrap()
        .app;
    let a = App::new(app, p);
    // Loosenings wait for the notice period; the removal of d3 is immediate.
    send!(
        a.addComposeHash(h(0xa2), history::app_prov("v2"))
            .from(owner)
    );
    send!(a.addDevice(h(0xd2)).from(owner));
    send!(a.removeDevice(h(0xd3)).from(owner));
    send!(a.setAllowedTeeKinds(0x06).from(owner));
    send!(a.setRequireUpToDateTcb(false).from(owner));

    let db = postgres::database();
    let indexer = Indexer::start(&chain, &db, &[]);
    let boot = |compose: B256, device: B256, tee: u8, tcb: u8| {
        use sha2::{Digest, Sha256};
        let len = if tee == 2 { 48 } else { 192 };
        let measured = B256::from(<[u8; 32]>::from(Sha256::digest(vec![0x31u8; len])));
        covenant_chain::BootInfo {
            appId: app,
            composeHash: compose,
            instanceId: FixedBytes::repeat_byte(0x1d),
            deviceId: device,
            mrAggregated: h(0x11),
            osImageHash: h(0x01),
            osMeasurement: measured,
            teeKind: tee,
            tcbStatus: tcb,
            gpuEvidenceHash: B256::ZERO,
            keyGeneration: 1,
        }
    };
    // TEE kind 1 TDX, 2 SEV-SNP; TCB 1 up to date, 5 out of date.
    let cases = [
        boot(h(0xa1), h(0xd1), 1, 1),
        boot(h(0xa2), h(0xd1), 1, 1),
        boot(h(0xa1), h(0xd2), 1, 1),
        boot(h(0xa1), h(0xd3), 1, 1),
        boot(h(0xa1), h(0xd1), 2, 1),
        boot(h(0xa1), h(0xd1), 1, 5),
    ];

    // Compares every served value with the contracts at the finalized block; returns the
    // policy answers and whether the guardian was active.
    let check = async |phase: &str| -> (Vec<String>, bool) {
        let head = chain.head().await;
        let view = indexer.wait_finalized(head).await;
        let fh: B256 = view["finalized"]["hash"].as_str().unwrap().parse().unwrap();
        let at = BlockId::hash(fh);
        let v = indexer.get_ok(&format!("/v1/apps/{app}")).await;
        for row in v["composeHashes"].as_array().unwrap() {
            let ch: B256 = row["composeHash"].as_str().unwrap().parse().unwrap();
            let effective = a.composeHashEffectiveAt(ch).block(at).call().await.unwrap();
            assert_eq!(row["effectiveAt"], effective, "{phase}: {row}");
        }
        assert_eq!(
            set_of(&v["composeHashes"], "composeHash"),
            [hex(h(0xa1)), hex(h(0xa2))].into_iter().collect()
        );
        for row in v["devices"].as_array().unwrap() {
            let d: B256 = row["deviceId"].as_str().unwrap().parse().unwrap();
            let effective = a.deviceEffectiveAt(d).block(at).call().await.unwrap();
            assert_eq!(row["effectiveAt"], effective, "{phase}: {row}");
        }
        assert_eq!(
            set_of(&v["devices"], "deviceId"),
            [hex(h(0xd1)), hex(h(0xd2))].into_iter().collect(),
            "{phase}: the removal is immediate"
        );
        let s = &v["settings"];
        // `settings()` answers (in force, scheduled, effectiveAt); the API serves the schedule
        // (before, scheduled, effectiveAt) and the settings in force next to it.
        let (current, scheduled, effective_at) = {
            let r = a.settings().block(at).call().await.unwrap();
            (r._0, r._1, r._2)
        };
        let now = view["finalized"]["timestamp"]
            .as_u64()
            .expect("the finalized block's timestamp");
        let schedule = &s["settings"];
        assert_eq!(schedule["effectiveAt"], effective_at, "{phase}: {s}");
        let as_json = |x: &covenant_chain::app::IApp::Settings| {
            json!({
                "allowedTeeKinds": x.allowedTeeKinds,
                "anyDevice": x.anyDevice,
                "requireUpToDateTcb": x.requireUpToDateTcb,
                "requireGpu": x.requireGpu,
            })
        };
        assert_eq!(schedule["scheduled"], as_json(&scheduled), "{phase}");
        if now < effective_at {
            assert_eq!(schedule["before"], as_json(&current), "{phase}");
        }
        let in_force = json!({
            "allowedTeeKinds": s["allowedTeeKinds"],
            "anyDevice": s["anyDevice"],
            "requireUpToDateTcb": s["requireUpToDateTcb"],
            "requireGpu": s["requireGpu"],
        });
        assert_eq!(
            in_force,
            as_json(&current),
            "{phase}: the settings in force"
        );
        assert_eq!(
            s["allowedTeeKinds"],
            a.allowedTeeKinds().block(at).call().await.unwrap()
        );
        let mut answers = Vec::new();
        for b in &cases {
            let body = json!({
                "appId": b.appId, "composeHash": b.composeHash, "instanceId": b.instanceId,
                "deviceId": b.deviceId, "mrAggregated": b.mrAggregated,
                "osImageHash": b.osImageHash, "osMeasurement": b.osMeasurement,
                "teeKind": b.teeKind, "tcbStatus": b.tcbStatus, "keyGeneration": b.keyGeneration,
            });
            let (status, mirror) = indexer.post("/v1/policy/app", &body).await;
            assert_eq!(status, 200, "{mirror}");
            let chain_answer = registry
                .isAppAllowed(b.clone())
                .block(at)
                .call()
                .await
                .unwrap();
            assert_eq!(
                (
                    mirror["allowed"].as_bool().unwrap(),
                    mirror["reason"].as_str().unwrap()
                ),
                (chain_answer._0, chain_answer._1.as_str()),
                "{phase}: {body}"
            );
            answers.push(chain_answer._1);
        }
        // The guardian's term.
        let g = &indexer.get_ok("/v1/registry").await["guardian"];
        let expires = guardian.expiresAt().block(at).call().await.unwrap();
        assert_eq!(g["expiresAt"], expires, "{phase}: {g}");
        assert_eq!(
            g["guardian"],
            guardian
                .guardian()
                .block(at)
                .call()
                .await
                .unwrap()
                .to_checksum(None)
        );
        assert_eq!(g["address"], c.covenant_guardian.to_checksum(None));
        assert_eq!(g["active"], now < expires, "{phase}: {g} at {now}");
        (answers, g["active"].as_bool().unwrap())
    };

    let (before, guardian_active) = check("before").await;
    assert_eq!(
        before,
        [
            "",
            "compose hash not yet effective",
            "device not yet effective",
            "device not allowed",
            "tee kind not allowed",
            "tcb not up to date",
        ],
        "pending: the old settings and lists decide"
    );
    assert!(guardian_active);

    // Past the notice period and the guardian's term.
    let expires = guardian.expiresAt().call().await.unwrap();
    let now = chain.timestamp().await;
    chain.advance_time(NOTICE.max(expires.saturating_sub(now)) + 1);
    chain.mine(1);
    let (after, guardian_active) = check("after").await;
    assert_eq!(
        after,
        ["", "", "", "device not allowed", "", ""],
        "in force: the new settings and lists decide"
    );
    assert!(!guardian_active, "the guardian's term has ended");

    // Governance renews the term: active again; then sets the zero address, which cannot cancel.
    let renewed = chain.timestamp().await + 86_400;
    send!(guardian.setTerm(renewed).from(timelock));
    chain.mine(1);
    let (_, guardian_active) = check("renewed").await;
    assert!(guardian_active, "a renewed term");
    send!(guardian.setGuardian(Address::ZERO).from(timelock));
    chain.mine(1);
    let head = chain.head().await;
    indexer.wait_finalized(head).await;
    let g = &indexer.get_ok("/v1/registry").await["guardian"];
    assert_eq!(g["guardian"], Value::Null, "{g}");
    assert_eq!(g["active"], false, "{g}");
}
