//! The audit log is bounded and tamper-evident: anonymous traffic writes nothing and costs no
//! gas, connections are limited, a row edited or removed in Postgres stops the on-chain commits
//! with an alert, and keys stop while entries wait too long to be committed.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use alloy::primitives::Address;
use covenant_kms_api::client;
use covenant_testkit::wait_for;
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
    task::JoinSet,
};
use tokio_rustls::TlsConnector;

use crate::fixture::*;

fn unauthenticated(kind: &str) -> String {
    format!("covenant_kms_unauthenticated_total{{reason=\"{kind}\"}}")
}

/// A TCP connection to `to` from the loopback address `from`.
async fn connect_from(from: [u8; 4], to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((from, 0)))?;
    socket.connect(to).await
}

/// A TLS session (no client certificate) to `to` from `from`.
async fn tls_from(
    from: [u8; 4],
    to: SocketAddr,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = connect_from(from, to).await?;
    TlsConnector::from(anonymous())
        .connect(
            rustls::pki_types::ServerName::try_from("covenant-kms").unwrap(),
            tcp,
        )
        .await
}

/// `GET /healthz` over a fresh connection from `from`: the status, or the connection error.
async fn healthz_from(from: [u8; 4], to: SocketAddr) -> std::io::Result<u16> {
    let mut tls = tls_from(from, to).await?;
    tls.write_all(b"GET /healthz HTTP/1.1\r\nhost: kms\r\nconnection: close\r\n\r\n")
        .await?;
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await?;
    let text = String::from_utf8_lossy(&out);
    Ok(text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0))
}

/// A client certificate that is not RA-TLS: the handshake succeeds, the evidence does not.
fn plain_client() -> Arc<rustls::ClientConfig> {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["not-a-tee".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    Arc::new(
        client::client_config(
            Some((cert.der(), &key.serialize_der())),
            kms_verifier(),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_anonymous_connections_write_nothing_and_cost_no_gas() {
    let stack = Stack::start().await;
    let kms = first_node(&stack, &["--connections-per-source-per-sec", "1000000"]).await;
    let rows = kms.audit_rows().await;
    let nonce = stack.nonce(kms.node).await;
    let counted = || async {
        kms.metric(&unauthenticated("handshake")).await
            + kms.metric(&unauthenticated("evidence")).await
    };
    let before = counted().await;

    // A quarter each: garbage bytes, a connection closed at once, TLS without a certificate
    // asking for keys, TLS with a certificate that carries no evidence asking for keys.
    const N: usize = 10_000;
    let (addr, plain, none) = (kms.addr, plain_client(), anonymous());
    let mut tasks = JoinSet::new();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for _ in 0..32 {
        let (next, plain, none) = (next.clone(), plain.clone(), none.clone());
        tasks.spawn(async move {
            let mut statuses = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= N {
                    return statuses;
                }
                match i % 4 {
                    0 => {
                        let mut s = TcpStream::connect(addr).await.unwrap();
                        let _ = s.write_all(b"GET / HTTP/1.1\r\n\r\n").await;
                        let _ = s.read(&mut [0u8; 64]).await;
                    }
                    1 => drop(TcpStream::connect(addr).await.unwrap()),
                    k => {
                        let config = if k == 2 { none.clone() } else { plain.clone() };
                        let r =
                            client::request(config, addr, "POST", "/v1/keys", Some(b"{}".to_vec()))
                                .await
                                .unwrap();
                        statuses.push(r.status);
                    }
                }
            }
        });
    }
    while let Some(statuses) = tasks.join_next().await {
        assert!(statuses.unwrap().iter().all(|s| *s == 401));
    }
    wait_for("every anonymous connection to be counted")
        .timeout(Duration::from_secs(30))
        .watching(&kms.process)
        .until_async(|| async { counted().await - before >= N as f64 })
        .await
        .unwrap();
    assert_eq!(
        counted().await - before,
        N as f64,
        "each connection counted once"
    );
    assert_eq!(
        kms.audit_rows().await,
        rows,
        "anonymous traffic wrote audit rows"
    );
    assert_eq!(
        stack.nonce(kms.node).await,
        nonce,
        "anonymous traffic cost gas"
    );

    // Nor does a connection leave a session behind to resume (state held for every client, its
    // certificate and evidence included): a client that completed a request and then connects
    // again with the same configuration, session store included, gets a full handshake.
    let config = anonymous();
    for _ in 0..2 {
        let tcp = TcpStream::connect(kms.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("covenant-kms").unwrap();
        let mut tls = TlsConnector::from(config.clone())
            .connect(name, tcp)
            .await
            .unwrap();
        assert_eq!(
            tls.get_ref().1.handshake_kind(),
            Some(rustls::HandshakeKind::Full)
        );
        // The request and its answer: tickets, if any were sent, arrive and are stored.
        tls.write_all(b"GET /healthz HTTP/1.1\r\nhost: kms\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        tls.read_to_end(&mut answer).await.unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 200"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_connections_and_each_sources_rate_are_limited() {
    let stack = Stack::start().await;
    let first = first_node(&stack, &[]).await;
    // A process of this node with tight limits; slow clients may hold their connections.
    let kms = Kms::spawn(
        &stack,
        KmsOptions {
            device: KMS_DEVICE,
            state_dir: first.state_dir.clone(),
            extra: &[
                "--max-connections",
                "4",
                "--connections-per-source-per-sec",
                "2",
                "--handshake-timeout-ms",
                "60000",
                "--request-timeout-ms",
                "60000",
            ],
            audit: None,
        },
    );
    let (a, b, c) = ([127, 0, 0, 2], [127, 0, 0, 3], [127, 0, 0, 4]);
    // Source a: its burst of 4 connections, held open (all the node serves at once).
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(tls_from(a, kms.addr).await.unwrap());
    }
    // Source b has its own budget, but the node is full: closed on accept.
    assert!(
        tls_from(b, kms.addr).await.is_err(),
        "a fifth connection was served"
    );
    // Source a is over its rate: closed on accept whatever the node's load.
    assert!(
        tls_from(a, kms.addr).await.is_err(),
        "source a exceeded its rate"
    );
    // One closes: source b gets in.
    drop(held.pop());
    let status = wait_for("a freed connection slot")
        .timeout(Duration::from_secs(10))
        .watching(&kms.process)
        .until_ok_async(|| async { healthz_from(b, kms.addr).await.map_err(|e| e.to_string()) })
        .await
        .unwrap();
    assert_ne!(status, 0);
    drop(held);
    // Source a's budget refills with time; source c was never limited.
    assert_ne!(healthz_from(c, kms.addr).await.unwrap(), 0);
    wait_for("source a's rate to allow it again")
        .timeout(Duration::from_secs(10))
        .until_ok_async(|| async { healthz_from(a, kms.addr).await.map_err(|e| e.to_string()) })
        .await
        .unwrap();
    // Each refusal is a metric (the health checks above do not count).
    let full = kms.metric(&unauthenticated("connection_limit")).await;
    let rate = kms.metric(&unauthenticated("source_rate")).await;
    assert!(full >= 1.0, "connection_limit {full}");
    assert!(rate >= 1.0, "source_rate {rate}");
    assert_eq!(kms.audit_rows().await, 0);
}

/// The highest sequence number this node has committed on chain.
async fn committed_through(stack: &Stack, node: Address) -> u64 {
    stack
        .registry()
        .kmsNode(node)
        .call()
        .await
        .unwrap()
        .committedThrough
}

/// Grants keys and applies `tamper` to the grant's row before the committer commits it (tries
/// again in the rare case it commits first, after `undo`). Returns the row's sequence number.
async fn tamper_pending(
    stack: &Stack,
    kms: &Kms,
    instance: &Instance,
    pool: &sqlx::PgPool,
    tamper: &'static str,
    undo: &'static str,
) -> u64 {
    for _ in 0..5 {
        let r = instance.post(kms, "/v1/keys", json!({})).await;
        assert_eq!(r.status, 200, "{}", r.json());
        let seq = r.json()["auditSeq"].as_u64().unwrap();
        sqlx::query(tamper)
            .bind(kms.node.as_slice())
            .bind(seq as i64)
            .execute(pool)
            .await
            .unwrap();
        if committed_through(stack, kms.node).await < seq {
            return seq;
        }
        sqlx::query(undo)
            .bind(kms.node.as_slice())
            .bind(seq as i64)
            .execute(pool)
            .await
            .unwrap();
    }
    panic!("the committer committed every grant before it could be tampered with");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_or_removed_row_stops_the_commits_and_then_the_keys() {
    let stack = Stack::start().await;
    let kms = first_node(
        &stack,
        &[
            "--commit-interval-ms",
            "1000",
            "--max-uncommitted-age-secs",
            "3",
        ],
    )
    .await;
    let app = stack.create_app().await;
    stack.finalize();
    kms.wait_serving_at(stack.head().await - FINALITY).await;
    let instance = Instance::boot(&Boot::new(app, 1), kms.root_signer);
    let pool = kms.audit_pool().await;
    let broken = "covenant_kms_audit_chain_broken";

    // A grant, committed on chain.
    let r = instance.post(&kms, "/v1/keys", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.json());
    let first = r.json()["auditSeq"].as_u64().unwrap();
    wait_for("the first grant to be committed")
        .timeout(Duration::from_secs(30))
        .watching(&kms.process)
        .until_async(|| async { committed_through(&stack, kms.node).await >= first })
        .await
        .unwrap();
    assert_eq!(kms.metric(broken).await, 0.0);

    // A pending grant's row rewritten as a refusal: the committer refuses, with the alert.
    let edited = tamper_pending(
        &stack,
        &kms,
        &instance,
        &pool,
        "UPDATE audit_log SET granted = false, reason = 'denied' WHERE node = $1 AND seq = $2",
        "UPDATE audit_log SET granted = true, reason = '' WHERE node = $1 AND seq = $2",
    )
    .await;
    wait_for("the alert for the edited row")
        .timeout(Duration::from_secs(30))
        .watching(&kms.process)
        .until_async(|| async { kms.metric(broken).await == 1.0 })
        .await
        .unwrap();
    // Nothing is committed past the edit; keys stop once the pending entries are 3 s old,
    // refused with a clear reason (and an audit entry: the client is authenticated).
    let refused = wait_for("keys to be refused while the log is not committed")
        .timeout(Duration::from_secs(30))
        .watching(&kms.process)
        .until_ok_async(|| async {
            let r = instance.post(&kms, "/v1/keys", json!({})).await;
            let v = r.json();
            let why = v["error"].as_str().unwrap_or_default().to_owned();
            if r.status == 503 && why.contains("not committed on chain") {
                Ok(v)
            } else {
                Err(format!("{} {v}", r.status))
            }
        })
        .await
        .unwrap();
    assert!(refused["auditSeq"].as_u64().is_some(), "{refused}");
    assert!(committed_through(&stack, kms.node).await < edited);
    assert!(refused["key"].is_null() && refused["keys"].is_null());

    // The row restored: the chain verifies again, everything is committed, keys flow.
    sqlx::query("UPDATE audit_log SET granted = true, reason = '' WHERE node = $1 AND seq = $2")
        .bind(kms.node.as_slice())
        .bind(edited as i64)
        .execute(&pool)
        .await
        .unwrap();
    let last = refused["auditSeq"].as_u64().unwrap();
    wait_for("the restored log to be committed")
        .timeout(Duration::from_secs(30))
        .watching(&kms.process)
        .until_async(|| async { committed_through(&stack, kms.node).await >= last })
        .await
        .unwrap();
    assert_eq!(kms.metric(broken).await, 0.0);
    // The node books the commit just after its transaction is mined (and the chain is what the
    // test watched): keys flow again from then on.
    wait_for("keys to flow again once the restored log is committed")
        .timeout(Duration::from_secs(30))
        .watching(&kms.process)
        .until_ok_async(|| async {
            let r = instance.post(&kms, "/v1/keys", json!({})).await;
            if r.status == 200 {
                Ok(())
            } else {
                Err(format!("{} {}", r.status, r.json()))
            }
        })
        .await
        .unwrap();

    // A pending row removed (kept aside, to put back if the committer was first): refused again.
    sqlx::query("CREATE TABLE audit_log_removed (LIKE audit_log)")
        .execute(&pool)
        .await
        .unwrap();
    let removed = tamper_pending(
        &stack,
        &kms,
        &instance,
        &pool,
        "WITH gone AS (DELETE FROM audit_log WHERE node = $1 AND seq = $2 RETURNING *)
         INSERT INTO audit_log_removed SELECT * FROM gone",
        "WITH back AS (DELETE FROM audit_log_removed WHERE node = $1 AND seq = $2 RETURNING *)
         INSERT INTO audit_log SELECT * FROM back",
    )
    .await;
    wait_for("the alert for the removed row")
        .timeout(Duration::from_secs(30))
        .watching(&kms.process)
        .until_async(|| async { kms.metric(broken).await == 1.0 })
        .await
        .unwrap();
    assert!(committed_through(&stack, kms.node).await < removed);
}

/// Keys for instance `n` of `app`: the status and the body.
async fn ask_keys(kms: &Kms, app: Address, n: u8) -> (u16, serde_json::Value) {
    let r = Instance::boot(&Boot::new(app, n), kms.root_signer)
        .post(kms, "/v1/keys", json!({}))
        .await;
    (r.status, r.json())
}

/// The audit log on a database that restarts and then fails: a grant is answered only once its
/// row is committed, so keys stop (503, nothing released, nothing numbered) while rows cannot be
/// written and resume with the next number when they can; a restart that breaks the writer's
/// connection costs no refusal (the group is written again on a fresh connection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_stop_while_the_audit_log_cannot_be_written_and_survive_a_database_restart() {
    let stack = Stack::start().await;
    // Durable, as an audit database must be: with asynchronous commits a crash drops rows
    // already answered (the committer would then find the chain broken).
    let cluster = Arc::new(
        covenant_testkit::postgres::PgCluster::builder()
            .with_setting("fsync", "on")
            .with_setting("synchronous_commit", "on")
            .start(),
    );
    let kms = first_node_with(&stack, &[], Some(cluster.try_create_database().unwrap())).await;
    let app = stack.create_app().await;
    stack.finalize();
    kms.wait_serving_at(stack.head().await - FINALITY).await;
    let seq_of = |body: &serde_json::Value| body["auditSeq"].as_u64().unwrap();

    let (status, body) = ask_keys(&kms, app, 1).await;
    assert_eq!(status, 200, "{body}");
    let first = seq_of(&body);

    cluster.restart().unwrap();
    let (status, body) = ask_keys(&kms, app, 2).await;
    assert_eq!(status, 200, "after a database restart: {body}");
    assert_eq!(seq_of(&body), first + 1);

    // Rows cannot be written (the table is gone, as far as the node can tell).
    let admin = kms.audit_pool().await;
    sqlx::query("ALTER TABLE audit_log RENAME TO audit_log_away")
        .execute(&admin)
        .await
        .unwrap();
    let errors = kms.metric("covenant_kms_audit_write_errors_total").await;
    let (status, body) = ask_keys(&kms, app, 3).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("audit log is unavailable"),
        "{body}"
    );
    assert!(body.get("diskKey").is_none() && body.get("auditSeq").is_none());
    assert!(kms.metric("covenant_kms_audit_write_errors_total").await > errors);

    sqlx::query("ALTER TABLE audit_log_away RENAME TO audit_log")
        .execute(&admin)
        .await
        .unwrap();
    let (status, body) = ask_keys(&kms, app, 3).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(seq_of(&body), first + 2, "the refused group took no number");
    let (rows, last): (i64, i64) = sqlx::query_as("SELECT count(*), max(seq) FROM audit_log")
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!((rows, last as u64), (last, first + 2));
}
