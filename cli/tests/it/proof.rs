//! `covenant kms proof` against a hostile KMS node: a real TLS server serving an audit entry with
//! a self-consistent inclusion proof (the leaf encodes the entry, the path leads to the root it
//! names) for a range the node never committed on chain. The proof must be refused: only the
//! chain's root makes it one.

use alloy::primitives::{Address, B256, Bytes, FixedBytes};
use covenant_kms_api::{AuditEntry, AuditEntryResponse, Commitment, merkle};

use crate::Devnet;

#[tokio::test(flavor = "multi_thread")]
async fn a_proof_to_a_root_the_chain_does_not_hold_is_refused() {
    let devnet = Devnet::start().await;
    let entry = AuditEntry {
        node: Address::repeat_byte(0x11),
        seq: 1,
        prev: B256::ZERO,
        at_ms: 1_796_000_000_000,
        action: "keys".into(),
        granted: true,
        reason: String::new(),
        app_id: Some(Address::repeat_byte(0x22)),
        instance_id: Some(FixedBytes::repeat_byte(0x33)),
        compose_hash: Some(B256::repeat_byte(0x44)),
        evidence_digest: None,
        block: Some((1, B256::repeat_byte(0x55))),
    };
    let leaves = vec![entry.leaf_hash().0, merkle::leaf_hash(b"another entry")];
    let response = AuditEntryResponse {
        leaf: Bytes::from(entry.leaf_bytes()),
        leaf_hash: entry.leaf_hash(),
        commitment: Some(Commitment {
            from_seq: 1,
            to_seq: 2,
            root: B256::from(merkle::root(&leaves)),
            tx_hash: B256::repeat_byte(0x77),
            index: 0,
            tree_size: 2,
            path: merkle::inclusion_proof(&leaves, 0)
                .unwrap()
                .into_iter()
                .map(B256::from)
                .collect(),
        }),
        entry,
    };
    // On its own, the proof holds.
    assert!(covenant_kms_api::audit::check(&response).is_ok());
    let (port, _) = crate::tls_server("localhost", serde_json::to_string(&response).unwrap());
    let run = devnet.covenant(
        None,
        &[
            "kms",
            "proof",
            "1",
            "--kms-url",
            &format!("https://localhost:{port}"),
        ],
    );
    assert!(
        !run.ok,
        "a proof to no on-chain root passed: {}",
        run.stdout
    );
    assert!(
        run.stderr
            .contains("committed no range starting at 1 on chain"),
        "{}",
        run.stderr
    );
}
