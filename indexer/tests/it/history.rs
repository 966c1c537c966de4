//! A scripted history touching every projection: registry changes (as the Timelock), apps and
//! their hashes, devices and flags (as owners), domains, KMS onboarding and grant-log commits,
//! and governance proposals in every state.

use alloy::{
    primitives::{Address, B256, Bytes, U256, keccak256},
    sol_types::SolCall,
};
use covenant_chain::{
    app::App,
    domain_registry::DomainRegistry,
    governor::CovenantGovernor,
    kms_registry::{self, IApp, KmsRegistry},
    token::CovenantToken,
};

use crate::{fixture::Chain, send};

pub fn h(byte: u8) -> B256 {
    B256::repeat_byte(byte)
}

/// OS registers on TDX and SEV-SNP, filled with `byte`.
pub fn os_measurements(byte: u8) -> Vec<KmsRegistry::OsMeasurement> {
    vec![
        KmsRegistry::OsMeasurement {
            teeKind: 1,
            registers: vec![byte; 192].into(),
        },
        KmsRegistry::OsMeasurement {
            teeKind: 2,
            registers: vec![byte; 48].into(),
        },
    ]
}

pub fn kms_prov(commit: &str) -> KmsRegistry::Provenance {
    KmsRegistry::Provenance {
        sourceUrl: "https://git.example/covenant-os".into(),
        sourceCommit: commit.into(),
        artifactDigests: vec![h(0xab)],
    }
}

pub fn init_prov(commit: &str) -> kms_registry::Provenance {
    kms_registry::Provenance {
        sourceUrl: "https://git.example/covenant-os".into(),
        sourceCommit: commit.into(),
        artifactDigests: vec![h(0xab)],
    }
}

pub fn app_prov(commit: &str) -> App::Provenance {
    App::Provenance {
        sourceUrl: "https://git.example/app".into(),
        sourceCommit: commit.into(),
        artifactDigests: vec![h(0xcd), h(0xce)],
    }
}

/// What the history created, for the checks.
#[derive(Debug, Clone)]
pub struct History {
    pub apps: Vec<Address>,
    pub custom_app: Address,
    pub compose_hashes: Vec<B256>,
    pub devices: Vec<B256>,
    pub os_images: Vec<B256>,
    pub kms_node: Address,
    pub domains: Vec<String>,
    pub proposals: Vec<U256>,
    pub executed_proposal: U256,
}

pub async fn create_app(
    chain: &Chain,
    owner: Address,
    hashes: &[B256],
    devices: &[B256],
) -> Address {
    let registry = KmsRegistry::new(chain.deployment.contracts.kms_registry, &chain.provider);
    let init = IApp::AppInit {
        composeHashes: hashes.to_vec(),
        provenances: hashes.iter().map(|_| init_prov("v1")).collect(),
        devices: devices.to_vec(),
        anyDevice: false,
        allowedTeeKinds: 0x0e,
        requireUpToDateTcb: true,
        requireGpu: false,
        noticePeriod: 0,
    };
    let receipt = send!(registry.createApp(owner, init).from(chain.account(0)));
    receipt
        .decoded_log::<KmsRegistry::AppCreated>()
        .unwrap()
        .app
}

/// Proposes `calls` and returns (id, targets, values, calldatas, description hash).
pub async fn propose(
    chain: &Chain,
    calls: Vec<(Address, Bytes)>,
    description: &str,
) -> (U256, Vec<Address>, Vec<U256>, Vec<Bytes>, B256) {
    let governor = CovenantGovernor::new(
        chain.deployment.contracts.covenant_governor,
        &chain.provider,
    );
    let targets: Vec<Address> = calls.iter().map(|c| c.0).collect();
    let values = vec![U256::ZERO; calls.len()];
    let calldatas: Vec<Bytes> = calls.into_iter().map(|c| c.1).collect();
    let r = send!(
        governor
            .propose(
                targets.clone(),
                values.clone(),
                calldatas.clone(),
                description.to_owned()
            )
            .from(chain.account(0))
    );
    let id = r
        .decoded_log::<CovenantGovernor::ProposalCreated>()
        .unwrap()
        .proposalId;
    (
        id,
        targets,
        values,
        calldatas,
        keccak256(description.as_bytes()),
    )
}

pub async fn script(chain: &Chain) -> History {
    let c = &chain.deployment.contracts;
    let registry = KmsRegistry::new(c.kms_registry, &chain.provider);
    let domains = DomainRegistry::new(c.domain_registry, &chain.provider);
    let governor = CovenantGovernor::new(c.covenant_governor, &chain.provider);
    let token = CovenantToken::new(c.covenant_token, &chain.provider);
    let timelock = chain.timelock();
    let owner1 = chain.account(1);
    let owner2 = chain.account(2);

    // Registry, as governance would.
    send!(
        registry
            .addOsImage(h(0x01), kms_prov("os-1"), os_measurements(0x31))
            .from(timelock)
    );
    send!(
        registry
            .addOsImage(h(0x02), kms_prov("os-2"), os_measurements(0x32))
            .from(timelock)
    );
    send!(registry.removeOsImage(h(0x02)).from(timelock));
    send!(registry.addKmsMeasurement(h(0x11)).from(timelock));
    send!(registry.addKmsMeasurement(h(0x12)).from(timelock));
    send!(registry.removeKmsMeasurement(h(0x12)).from(timelock));
    send!(registry.addKmsDevice(h(0x21)).from(timelock));
    let node = Address::repeat_byte(0x4e);
    send!(
        registry
            .onboardKmsNode(node, h(0x11), h(0x21))
            .from(timelock)
    );
    let mut ca = vec![0x04u8];
    ca.extend([0x5a; 64]);
    send!(
        registry
            .setKmsRootKeys(Address::repeat_byte(0x5e), ca.into())
            .from(timelock)
    );
    send!(registry.setAllowSimulatedTee(false).from(timelock));
    send!(registry.setAllowSimulatedTee(true).from(timelock));

    // Apps: two owned by account 1, one by the Timelock (changed only by proposals), one frozen.
    let app1 = create_app(chain, owner1, &[h(0xa1), h(0xa2)], &[h(0xd1)]).await;
    let app2 = create_app(chain, timelock, &[h(0xb1)], &[]).await;
    let app3 = create_app(chain, owner1, &[h(0xc1)], &[h(0xd3)]).await;
    send!(registry.setGatewayAppId(app1).from(timelock));
    let a1 = App::new(app1, &chain.provider);
    send!(a1.addComposeHash(h(0xa3), app_prov("v3")).from(owner1));
    send!(a1.removeComposeHash(h(0xa1)).from(owner1));
    send!(a1.addDevice(h(0xd2)).from(owner1));
    send!(a1.removeDevice(h(0xd1)).from(owner1));
    send!(a1.setRequireGpu(true).from(owner1));
    send!(a1.setRequireGpu(false).from(owner1));
    send!(a1.setAllowedTeeKinds(0x0a).from(owner1));
    send!(a1.bumpKeyGeneration().from(owner1));
    send!(a1.transferOwnership(owner2).from(owner1));
    let a3 = App::new(app3, &chain.provider);
    send!(a3.setAnyDevice(true).from(owner1));

    // A custom policy contract (the token: it has code, but no policy, so it always fails).
    send!(registry.registerCustomApp(c.covenant_token).from(timelock));

    // Domains.
    send!(
        domains
            .claimDomain("app1.example.com".into(), app1)
            .from(owner1)
    );
    send!(
        domains
            .claimDomain("old.example.com".into(), app1)
            .from(owner1)
    );
    send!(
        domains
            .claimDomain("three.example.com".into(), app3)
            .from(owner1)
    );
    // Two apps claim one name; governance clears one of them.
    send!(
        domains
            .claimDomain("app1.example.com".into(), app3)
            .from(owner1)
    );
    send!(
        domains
            .releaseClaim("old.example.com".into(), app1)
            .from(owner1)
    );
    send!(
        domains
            .releaseClaim("app1.example.com".into(), app3)
            .from(timelock)
    );
    send!(a3.freeze().from(owner1));
    send!(
        domains
            .setGatewayAcmeAccount("https://acme.example/acct/1".into())
            .from(timelock)
    );

    // A KMS node commits its grant log.
    chain.impersonate(node);
    send!(registry.commitGrantLog(1, 10, h(0x77)).from(node));
    send!(registry.commitGrantLog(11, 12, h(0x78)).from(node));

    // Governance: delegate, then proposals ending executed, defeated, canceled, and one left open.
    send!(token.delegate(chain.account(0)).from(chain.account(0)));
    chain.advance_time(1);
    let add_hash = App::addComposeHashCall {
        composeHash: h(0xb2),
        provenance: app_prov("v2"),
    }
    .abi_encode();
    let add_image = KmsRegistry::addOsImageCall {
        osImageHash: h(0x03),
        provenance: kms_prov("os-3"),
        measurements: os_measurements(0x33),
    }
    .abi_encode();
    let (executed, t, v, cd, dh) = propose(
        chain,
        vec![(app2, add_hash.into()), (c.kms_registry, add_image.into())],
        "Allow app2 v2 and OS 3",
    )
    .await;
    let deregister = KmsRegistry::deregisterAppCall { app: app3 }.abi_encode();
    let (defeated, ..) = propose(
        chain,
        vec![(c.kms_registry, deregister.clone().into())],
        "Deregister app3",
    )
    .await;
    let (canceled, ct, cv, ccd, cdh) = propose(
        chain,
        vec![(c.kms_registry, deregister.clone().into())],
        "Deregister app3 (withdrawn)",
    )
    .await;
    send!(governor.cancel(ct, cv, ccd, cdh).from(chain.account(0)));
    let image = |b: u8| {
        let call = KmsRegistry::addOsImageCall {
            osImageHash: h(b),
            provenance: kms_prov("os"),
            measurements: os_measurements(b),
        };
        vec![(c.kms_registry, Bytes::from(call.abi_encode()))]
    };
    let (succeeded, ..) = propose(chain, image(0x05), "Allow OS 5 (passed, never queued)").await;
    let (queued, qt, qv, qcd, qdh) = propose(chain, image(0x04), "Allow OS 4 (queued)").await;
    chain.advance_time(2);
    for (id, support) in [(executed, 1), (defeated, 0), (succeeded, 1), (queued, 1)] {
        send!(governor.castVote(id, support).from(chain.account(0)));
    }
    chain.advance_time(21);
    send!(governor.queue(qt, qv, qcd, qdh).from(chain.account(0)));
    send!(
        governor
            .queue(t.clone(), v.clone(), cd.clone(), dh)
            .from(chain.account(0))
    );
    chain.advance_time(11);
    send!(governor.execute(t, v, cd, dh).from(chain.account(0)));
    let remove = App::removeComposeHashCall {
        composeHash: h(0xb1),
    }
    .abi_encode();
    let (open, ..) = propose(chain, vec![(app2, remove.into())], "Remove app2 v1").await;
    chain.advance_time(2);
    // Created in the last block: its snapshot is still ahead of the finalized block's clock.
    let (pending, ..) = propose(chain, image(0x06), "Allow OS 6 (pending)").await;

    History {
        apps: vec![app1, app2, app3],
        custom_app: c.covenant_token,
        compose_hashes: vec![
            h(0xa1),
            h(0xa2),
            h(0xa3),
            h(0xb1),
            h(0xb2),
            h(0xc1),
            h(0xff),
        ],
        devices: vec![h(0xd1), h(0xd2), h(0xd3), h(0xff)],
        os_images: vec![h(0x01), h(0x02), h(0x03), h(0xff)],
        kms_node: node,
        domains: vec![
            "app1.example.com".into(),
            "old.example.com".into(),
            "three.example.com".into(),
        ],
        proposals: vec![
            executed, defeated, canceled, open, succeeded, queued, pending,
        ],
        executed_proposal: executed,
    }
}
