//! TDX collateral from a PCCS in the Intel PCS v4 shape, served here from the shared vectors
//! (`crates/attest/testdata`): a real TDX quote gets its collateral and reaches the binding stage
//! of the node's verification path (refused there, for its report data), the cache answers while
//! it is valid, and expired, stale or unreachable collateral is refused.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    http::{HeaderMap, HeaderValue},
    routing::get,
};
use covenant_attest::{Evidence, Platform, QuoteCollateralV3, ratls};
use covenant_kms_api::Endpoint;
use covenant_kms_oracle::{
    identity,
    pccs::Pccs,
    replicate::source_collateral,
    server::{CollateralSources, collateral_for},
};

/// Inside the vector collateral's window (2025-06-19 … 2025-07-19).
const NOW: u64 = 1_750_377_600;

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/attest/testdata")
        .join(name)
}

/// Percent-encodes everything but unreserved characters, as the PCS does in its headers.
fn encode(text: &str) -> HeaderValue {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    HeaderValue::from_str(&out).unwrap()
}

/// A PCCS serving `c` on a port of its own; counts the requests. Stops when the handle drops.
struct FakePccs {
    url: url::Url,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakePccs {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(c: QuoteCollateralV3) -> FakePccs {
    let requests = Arc::new(AtomicUsize::new(0));
    let c = Arc::new(c);
    let with = |name: &'static str, chain: &str| {
        let mut h = HeaderMap::new();
        h.insert(name, encode(chain));
        h
    };
    let (a, b, d, e) = (c.clone(), c.clone(), c.clone(), c.clone());
    let app = Router::new()
        .route(
            "/sgx/certification/v4/pckcrl",
            get(move || async move {
                (
                    with("SGX-PCK-CRL-Issuer-Chain", &a.pck_crl_issuer_chain),
                    a.pck_crl.clone(),
                )
            }),
        )
        .route(
            "/tdx/certification/v4/tcb",
            get(move || async move {
                (
                    with("TCB-Info-Issuer-Chain", &b.tcb_info_issuer_chain),
                    format!(
                        r#"{{"tcbInfo":{},"signature":"{}"}}"#,
                        b.tcb_info,
                        hex::encode(&b.tcb_info_signature)
                    ),
                )
            }),
        )
        .route(
            "/tdx/certification/v4/qe/identity",
            get(move || async move {
                (
                    with(
                        "SGX-Enclave-Identity-Issuer-Chain",
                        &d.qe_identity_issuer_chain,
                    ),
                    format!(
                        r#"{{"enclaveIdentity":{},"signature":"{}"}}"#,
                        d.qe_identity,
                        hex::encode(&d.qe_identity_signature)
                    ),
                )
            }),
        )
        .route(
            "/sgx/certification/v4/rootcacrl",
            get(move || async move { hex::encode(&e.root_ca_crl) }),
        )
        .layer(axum::middleware::from_fn({
            let requests = requests.clone();
            move |req, next: axum::middleware::Next| {
                requests.fetch_add(1, Ordering::Relaxed);
                async move { next.run(req).await }
            }
        }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap())
        .parse()
        .unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    FakePccs {
        url,
        requests,
        task,
    }
}

fn collateral() -> QuoteCollateralV3 {
    serde_json::from_slice(&std::fs::read(testdata("tdx_quote_collateral.json")).unwrap()).unwrap()
}

/// An RA-TLS certificate carrying the real TDX quote (which binds some other key).
fn certificate() -> Vec<u8> {
    tdx_identity().certificate_der
}

fn tdx_identity() -> ratls::RaTlsIdentity {
    let quote = std::fs::read(testdata("tdx_quote")).unwrap();
    ratls::generate_identity(|_| {
        Ok(Evidence {
            platform: Platform::Tdx,
            quote: quote.clone(),
            vcek: Vec::new(),
            event_log: Vec::new(),
            gpu: None,
        })
    })
    .unwrap()
}

/// What the node's verification path answers for `cert` at `now` (`Peer::verify`: collateral,
/// then `verify_certificate` under the node's policy, simulation not allowed).
async fn node_verdict(pccs: &Pccs, cert: &[u8], now: u64, max_age: Duration) -> String {
    let sources = CollateralSources {
        pccs: Some(pccs.clone()),
        kds: None,
    };
    let collateral = match collateral_for(&sources, cert, now).await {
        Ok(c) => c,
        Err(e) => return format!("collateral: {e}"),
    };
    let mut policy = identity::verifier_policy(false);
    policy.max_collateral_age = max_age;
    match ratls::verify_certificate(cert, &collateral, &policy, now) {
        Ok(_) => "verified".into(),
        Err(e) => format!("{e:?}"),
    }
}

const MONTH: Duration = Duration::from_secs(30 * 24 * 3600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_tdx_quote_gets_its_collateral_and_fails_closed_without_it() {
    let server = serve(collateral()).await;
    let cache = tempfile::tempdir().unwrap();
    let pccs = Pccs::new(
        server.url.clone(),
        cache.path().to_owned(),
        Duration::from_secs(5),
    )
    .unwrap();
    let cert = certificate();

    // Signature, chain to Intel's root, CRLs, TCB and QE identity pass: the quote is refused at
    // the binding stage (it binds another key), not for collateral.
    let verdict = node_verdict(&pccs, &cert, NOW, MONTH).await;
    assert!(verdict.starts_with("ReportDataMismatch"), "{verdict}");
    let fetched = server.requests.load(Ordering::Relaxed);
    assert_eq!(fetched, 4, "PCK CRL, TCB info, QE identity, root CA CRL");
    // Without any collateral source the same quote is refused for that.
    let none = collateral_for(&CollateralSources::default(), &cert, NOW)
        .await
        .unwrap_err();
    assert!(none.contains("no collateral source"), "{none}");

    // Cached: no more requests while it is valid.
    let verdict = node_verdict(&pccs, &cert, NOW + 3600, MONTH).await;
    assert!(verdict.starts_with("ReportDataMismatch"), "{verdict}");
    assert_eq!(server.requests.load(Ordering::Relaxed), fetched);

    // Collateral older than the node's maximum age is refused.
    let verdict = node_verdict(&pccs, &cert, NOW, Duration::from_secs(3600)).await;
    assert!(verdict.starts_with("StaleCollateral"), "{verdict}");

    // The PCCS goes away: the cached set still serves until its nextUpdate, then nothing does.
    let next_update = covenant_kms_oracle::pccs::next_update(&collateral()).unwrap();
    drop(server);
    let near_end = next_update - 60;
    let verdict = node_verdict(&pccs, &cert, near_end, MONTH).await;
    assert!(verdict.starts_with("ReportDataMismatch"), "{verdict}");
    let verdict = node_verdict(&pccs, &cert, next_update, MONTH).await;
    assert!(
        verdict.contains("cached copy expired") && verdict.contains("PCCS failed"),
        "{verdict}"
    );

    // No cache and no PCCS: refused.
    let empty = tempfile::tempdir().unwrap();
    let cold = Pccs::new(
        url_nobody_listens_on().await,
        empty.path().to_owned(),
        Duration::from_secs(5),
    )
    .unwrap();
    let verdict = node_verdict(&cold, &cert, NOW, MONTH).await;
    assert!(
        verdict.starts_with("collateral") && verdict.contains("the PCCS failed"),
        "{verdict}"
    );

    // A PCCS serving collateral already past its nextUpdate is refused too.
    let server = serve(collateral()).await;
    let late = Pccs::new(
        server.url.clone(),
        empty.path().to_owned(),
        Duration::from_secs(5),
    )
    .unwrap();
    let verdict = node_verdict(&late, &cert, next_update + 1, MONTH).await;
    assert!(verdict.contains("expired at"), "{verdict}");
}

/// The URL of a port that was just free (bound, then released).
pub async fn url_nobody_listens_on() -> url::Url {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/").parse().unwrap()
}

/// A TLS server presenting `identity`'s certificate to whoever connects, until dropped.
async fn present(identity: &ratls::RaTlsIdentity) -> (Endpoint, tokio::task::JoinHandle<()>) {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![identity.certificate_der.clone().into()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(identity.private_key_der.to_vec().into()),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = Endpoint::parse(&format!("https://{}", listener.local_addr().unwrap())).unwrap();
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            // The peeking client refuses the certificate: the handshake fails, as it should.
            let _ = acceptor.accept(tcp).await;
        }
    });
    (endpoint, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tdx_replication_source_gets_its_collateral_from_the_certificate_it_presents() {
    let server = serve(collateral()).await;
    let cache = tempfile::tempdir().unwrap();
    let sources = CollateralSources {
        pccs: Some(
            Pccs::new(
                server.url.clone(),
                cache.path().to_owned(),
                Duration::from_secs(5),
            )
            .unwrap(),
        ),
        kds: None,
    };
    // The new node's own identity (any will do for reading the source's certificate).
    let own = tdx_identity();

    // A source presenting the real TDX quote: its platform's collateral is fetched.
    let (endpoint, task) = present(&tdx_identity()).await;
    let got = source_collateral(&sources, &own, &endpoint, NOW)
        .await
        .unwrap();
    assert_eq!(got.tdx.map(|c| c.tcb_info), Some(collateral().tcb_info));
    assert_eq!(server.requests.load(Ordering::Relaxed), 4);
    task.abort();

    // A source that presents nothing (nobody listening) gives no certificate to go by.
    let nobody = Endpoint::parse(
        url_nobody_listens_on()
            .await
            .as_str()
            .replace("http", "https")
            .trim_end_matches('/'),
    )
    .unwrap();
    let err = source_collateral(&sources, &own, &nobody, NOW)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("presented no certificate"),
        "{err}"
    );

    // Without collateral sources nothing is asked of the source.
    let none = source_collateral(&CollateralSources::default(), &own, &nobody, NOW)
        .await
        .unwrap();
    assert!(none.tdx.is_none() && none.snp_vcek.is_none());
}
