//! VCEKs from a service in the shape of AMD's key distribution service, served here from the
//! vectors (`crates/attest/testdata`): a real SEV-SNP report whose evidence carries no VCEK gets
//! it and reaches the binding stage of the node's verification path, the cache answers without
//! the service, a wrong certificate is neither accepted nor cached, an unreachable service fails
//! closed, and a VLEK is never fetched.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, extract::Path, http::Uri, routing::get};
use covenant_attest::{Evidence, Platform, ratls, snp::SnpTcb};
use covenant_kms_oracle::{
    identity,
    kds::Kds,
    server::{CollateralSources, collateral_for},
};

use crate::pccs::url_nobody_listens_on;

/// Inside the Milan VCEK's validity (2023-04-03 … 2030-04-03).
const NOW: u64 = 1_795_305_600;

fn testdata(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/attest/testdata")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A key distribution service answering every Milan VCEK request with `vcek`; records what was
/// asked. Stops when dropped.
struct FakeKds {
    url: url::Url,
    asked: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeKds {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(vcek: Vec<u8>) -> FakeKds {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let log = asked.clone();
    let app = Router::new().route(
        "/vcek/v1/{product}/{hwid}",
        get(
            move |Path((product, _)): Path<(String, String)>, uri: Uri| {
                log.lock().unwrap().push(uri.to_string());
                let vcek = vcek.clone();
                async move {
                    if product == "Milan" {
                        Ok(vcek)
                    } else {
                        Err(axum::http::StatusCode::NOT_FOUND)
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap())
        .parse()
        .unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    FakeKds { url, asked, task }
}

/// An RA-TLS certificate carrying `report` (which binds some other key) and no VCEK or VLEK.
fn certificate(report: &str) -> Vec<u8> {
    let quote = testdata(report);
    ratls::generate_identity(|_| {
        Ok(Evidence {
            platform: Platform::Snp,
            quote: quote.clone(),
            vcek: Vec::new(),
            event_log: Vec::new(),
            gpu: None,
        })
    })
    .unwrap()
    .certificate_der
}

/// What the node's verification path answers for `cert` (collateral, then `verify_certificate`
/// under the node's policy with the sample's TCB as the minimum).
async fn node_verdict(kds: Option<&Kds>, cert: &[u8]) -> String {
    let sources = CollateralSources {
        pccs: None,
        kds: kds.cloned(),
    };
    let collateral = match collateral_for(&sources, cert, NOW).await {
        Ok(c) => c,
        Err(e) => return format!("collateral: {e}"),
    };
    let mut policy = identity::verifier_policy(false);
    policy.snp_minimum_tcb = Some(SnpTcb {
        bootloader: 3,
        tee: 0,
        snp: 8,
        microcode: 115,
    });
    match ratls::verify_certificate(cert, &collateral, &policy, NOW) {
        Ok(_) => "verified".into(),
        Err(e) => format!("{e:?}"),
    }
}

fn kds(url: url::Url, cache: &tempfile::TempDir) -> Kds {
    Kds::new(url, cache.path().to_owned(), Duration::from_secs(5)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_without_its_vcek_gets_it_from_the_service_and_fails_closed_without_it() {
    let server = serve(testdata("vcek_milan.der")).await;
    let cache = tempfile::tempdir().unwrap();
    let client = kds(server.url.clone(), &cache);
    let cert = certificate("report_milan.bin");

    // The VCEK is fetched for the report's chip and TCB; signature, chain and binding to the chip
    // pass: refused at the binding stage (the report binds another key), not for the VCEK.
    let verdict = node_verdict(Some(&client), &cert).await;
    assert!(verdict.starts_with("ReportDataMismatch"), "{verdict}");
    let asked = server.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 1, "{asked:?}");
    let chip = hex::encode(&testdata("report_milan.bin")[0x1a0..0x1e0]);
    assert_eq!(
        asked[0],
        format!("/vcek/v1/Milan/{chip}?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115")
    );

    // Without a service the same report is refused for that.
    let verdict = node_verdict(None, &cert).await;
    assert!(
        verdict.contains("no key distribution service (--kds-url)"),
        "{verdict}"
    );

    // Cached: the service can go away, in this process (memory) and after a restart (disk).
    drop(server);
    let verdict = node_verdict(Some(&client), &cert).await;
    assert!(verdict.starts_with("ReportDataMismatch"), "{verdict}");
    let restarted = kds(url_nobody_listens_on().await, &cache);
    let verdict = node_verdict(Some(&restarted), &cert).await;
    assert!(verdict.starts_with("ReportDataMismatch"), "{verdict}");

    // No cache and no service: refused.
    let cold_cache = tempfile::tempdir().unwrap();
    let cold = kds(url_nobody_listens_on().await, &cold_cache);
    let verdict = node_verdict(Some(&cold), &cert).await;
    assert!(
        verdict.starts_with("collateral: no VCEK for chip"),
        "{verdict}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_vcek_from_the_service_is_refused_and_not_cached() {
    // Another chip's VCEK: the service (or whoever answers for it) cannot make it verify.
    let server = serve(testdata("vcek_turin.der")).await;
    let cache = tempfile::tempdir().unwrap();
    let client = kds(server.url.clone(), &cache);
    let cert = certificate("report_milan.bin");
    let verdict = node_verdict(Some(&client), &cert).await;
    assert!(
        verdict.contains("the served VCEK") && verdict.contains("Genoa: GET"),
        "a v2 report is tried as Milan, then Genoa: {verdict}"
    );
    assert_eq!(
        std::fs::read_dir(cache.path()).map_or(0, |d| d.count()),
        0,
        "nothing cached"
    );
    // A VLEK-signed report without its VLEK is refused before anything is asked.
    let before = server.asked.lock().unwrap().len();
    let verdict = node_verdict(Some(&client), &certificate("report_vlek_milan_aws.bin")).await;
    assert!(verdict.contains("a VLEK cannot be fetched"), "{verdict}");
    assert_eq!(server.asked.lock().unwrap().len(), before);
}
