//! A gateway's registration API as the indexer sees it: HTTPS (TLS 1.3, a fresh self-signed
//! certificate, as the real one's) answering `GET /v1/instances` with a table the test writes —
//! so the explorer can be shown instances the chain allows and ones it does not.

use std::{net::SocketAddr, sync::Arc};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A running stub; it stops when dropped.
pub struct GatewayStub {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GatewayStub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl GatewayStub {
    /// Serves `table` on 127.0.0.1 (port 0).
    pub async fn start(table: Value) -> Self {
        let certificate =
            rcgen::generate_simple_self_signed(vec!["covenant-gateway".to_owned()]).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![certificate.cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(certificate.signing_key.serialize_der().into()),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let body = table.to_string();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let body = body.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let answer = if request.starts_with(b"GET /v1/instances ") {
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                             content-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    } else {
                        "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                            .to_owned()
                    };
                    let _ = tls.write_all(answer.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        Self { addr, task }
    }
}
