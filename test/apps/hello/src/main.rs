//! An example Covenant app: an HTTPS service that takes its database key and its TLS certificate
//! from the guest agent and shows its attested identity (README.md).

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use axum::{Json, Router, routing::get};
use clap::Parser;
use covenant_guest_api::{api::TlsUsage, client::GuestClient};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use sha2::{Digest, Sha512};

#[derive(Parser)]
#[command(name = "covenant-example-app", about = "An example Covenant app")]
struct Cli {
    /// Where to listen (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// The DNS name the certificate is for.
    #[arg(long, default_value = "localhost")]
    name: String,
    /// A file to write the bound address to, once serving.
    #[arg(long)]
    addr_file: Option<PathBuf>,
    /// Also serve the same answers in plain HTTP here: the port a gateway reaches through the
    /// instance's ingress (the gateway terminates TLS; the ingress hop is TLS to this instance's
    /// RA-TLS certificate, so plain HTTP stays on the instance's loopback).
    #[arg(long)]
    http_listen: Option<SocketAddr>,
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let socket = std::env::var_os("COVENANT_GUEST_SOCKET")
        .ok_or("COVENANT_GUEST_SOCKET is not set: run me under covenant-guest")?;
    let guest = GuestClient::new(PathBuf::from(socket));
    let info = guest.info().await.map_err(|e| e.to_string())?;
    // The database key: the same in every instance of this app, and provably the app's.
    let database = guest
        .get_key("example/database")
        .await
        .map_err(|e| e.to_string())?;
    let tls = guest
        .get_tls_key(&[cli.name.as_str()], TlsUsage::Server)
        .await
        .map_err(|e| e.to_string())?;
    let chain: Vec<CertificateDer<'static>> = tls
        .certificate_chain
        .iter()
        .map(|pem| CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    // Evidence that the certificate's key is this instance's: the quote's data is SHA-512 of the
    // key's SubjectPublicKeyInfo (the guest puts SHA-512("covenant-app-quote-v1:" ‖ data) in the
    // report, `covenant_guest_api::api::quote_report_data`).
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).map_err(|e| e.to_string())?;
    let report_data: [u8; 64] = Sha512::digest(leaf.public_key().raw).into();
    let quote = guest
        .get_quote(&report_data)
        .await
        .map_err(|e| e.to_string())?;
    let identity = serde_json::json!({
        "appId": info.app_id,
        "instanceId": info.instance_id,
        "composeHash": info.compose_hash,
        "appKey": info.app_key,
        "keyGeneration": info.key_generation,
        "rootSigner": info.kms.root_signer,
        "databaseKey": {
            "path": "example/database",
            "address": database.address,
            "signature": database.signature,
        },
        "evidence": quote.evidence,
    });
    let key = PrivateKeyDer::from_pem_slice(tls.key.as_bytes()).map_err(|e| e.to_string())?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let app = Router::new().route("/", get(move || async move { Json(identity.clone()) }));
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    if let Some(http) = cli.http_listen {
        let plain = tokio::net::TcpListener::bind(http)
            .await
            .map_err(|e| format!("{http}: {e}"))?;
        let app = app.clone();
        tokio::spawn(async move {
            let _ = axum::serve(plain, app).await;
        });
    }
    if let Some(file) = &cli.addr_file {
        std::fs::write(file, addr.to_string()).map_err(|e| e.to_string())?;
    }
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => accepted.map_err(|e| e.to_string())?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper::service::service_fn(move |request| {
                tower::ServiceExt::oneshot(app.clone(), request)
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
