//! After a scripted history, every projection served by the API equals what the contracts return
//! by `eth_call` at the mirror's finalized block.

use std::collections::BTreeSet;

use alloy::{
    eips::BlockId,
    primitives::{Address, B256, FixedBytes, U256},
};
use covenant_chain::{
    app::App, domain_registry::DomainRegistry, governor::CovenantGovernor,
    kms_registry::KmsRegistry,
};
use covenant_testkit::postgres;
use serde_json::{Value, json};

use crate::{
    fixture::{Chain, Indexer},
    history::{self, h},
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
