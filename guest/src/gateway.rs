//! The instance's side of the gateway: registration by evidence, and the ingress the gateway
//! connects to.
//!
//! - [`register`]: `POST /v1/instances` to a gateway over mutual TLS with the boot's RA-TLS
//!   certificate as the client certificate. The body names the chain, the app-compose document
//!   (which the gateway checks against the evidence's compose hash) and the ingress address.
//!   Nothing secret is sent: the evidence and the compose are public, so the guest does not need
//!   to know which gateway it talks to (it checks only that the server signed the handshake).
//! - [`serve_ingress`]: TLS with the same RA-TLS certificate (so the gateway's hop meets the key
//!   it registered), the compose port named by the server name `<port>.ingress`; each connection
//!   is joined to the app's port on the loopback interface (`127.0.0.1:<port>`: a compose port is
//!   where its container listens inside the instance). Only ports the compose lists are reached.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use covenant_attest::{
    compose::AppCompose,
    ratls::{KeyVerifier, RaTlsIdentity},
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};

/// The ingress's server-name suffix: `<port>.ingress`.
pub const INGRESS_SUFFIX: &str = ".ingress";
/// Connections the ingress serves at once.
pub const MAX_INGRESS_CONNECTIONS: usize = 1024;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The compose port a server name asks the ingress for, if the compose lists it.
pub fn ingress_port(server_name: &str, compose: &AppCompose) -> Option<u16> {
    let port: u16 = server_name.strip_suffix(INGRESS_SUFFIX)?.parse().ok()?;
    let canonical = port.to_string();
    (server_name.len() == canonical.len() + INGRESS_SUFFIX.len()
        && compose.ports.iter().any(|p| p.port == u32::from(port)))
    .then_some(port)
}

/// Registers this instance with the gateway at `url` (`https://host:port`); returns the
/// gateway's answer.
pub async fn register(
    url: &str,
    identity: &RaTlsIdentity,
    chain_id: u64,
    compose: &[u8],
    ingress: SocketAddr,
) -> Result<Value, String> {
    let authority = url
        .strip_prefix("https://")
        .ok_or("the gateway URL must be https://host:port")?
        .trim_end_matches('/');
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(h, _)| h)
        .to_owned();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(KeyVerifier::any_key(&provider)))
        .with_client_auth_cert(
            vec![CertificateDer::from(identity.certificate_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                identity.private_key_der.as_slice().to_vec(),
            )),
        )
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from(host.clone()).map_err(|e| format!("{host}: {e}"))?;
    let body = serde_json::to_vec(&json!({
        "chainId": chain_id,
        "compose": String::from_utf8_lossy(compose),
        "ingress": ingress.to_string(),
    }))
    .map_err(|e| e.to_string())?;
    let exchange = async {
        let tcp = TcpStream::connect(authority)
            .await
            .map_err(|e| format!("{authority}: {e}"))?;
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("{authority}: TLS: {e}"))?;
        let head = format!(
            "POST /v1/instances HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        tls.write_all(head.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        tls.write_all(&body).await.map_err(|e| e.to_string())?;
        let mut response = Vec::new();
        let mut limited = (&mut tls).take(1 << 20);
        // A server that closes without close_notify still sent its whole answer.
        if let Err(e) = limited.read_to_end(&mut response).await
            && e.kind() != std::io::ErrorKind::UnexpectedEof
        {
            return Err(e.to_string());
        }
        Ok::<_, String>(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .map_err(|_| format!("{authority}: no answer within 30 s"))??;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP answer")?;
    let status = head.split(' ').nth(1).unwrap_or_default();
    let value: Value = serde_json::from_str(body).map_err(|e| format!("answer: {e}"))?;
    if status != "200" {
        return Err(format!(
            "the gateway refused ({status}): {}",
            value["error"].as_str().unwrap_or(body)
        ));
    }
    Ok(value)
}

/// The ingress's TLS configuration: TLS 1.3 with the boot's RA-TLS certificate.
pub fn ingress_tls(identity: &RaTlsIdentity) -> Result<rustls::ServerConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(identity.certificate_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                identity.private_key_der.as_slice().to_vec(),
            )),
        )
}

/// Serves the ingress on `listener` until `stop`, joining each connection to the compose port
/// its server name asks for at `workload` (the workload's address: loopback for local
/// processes).
pub async fn serve_ingress(
    listener: TcpListener,
    tls: rustls::ServerConfig,
    compose: AppCompose,
    workload: std::net::IpAddr,
    mut stop: watch::Receiver<bool>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let compose = Arc::new(compose);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_INGRESS_CONNECTIONS));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = stop.wait_for(|s| *s) => break,
        };
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(target: "guest::ingress", error = %e, "accept failed");
                    continue;
                }
            },
            _ = stop.wait_for(|s| *s) => break,
        };
        let acceptor = acceptor.clone();
        let compose = compose.clone();
        connections.spawn(async move {
            let _permit = permit;
            if let Err(e) = join(tcp, acceptor, &compose, workload).await {
                tracing::debug!(target: "guest::ingress", %remote, error = %e, "connection ended");
            }
        });
        while connections.try_join_next().is_some() {}
    }
    connections.shutdown().await;
}

async fn join(
    tcp: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    compose: &AppCompose,
    workload: std::net::IpAddr,
) -> Result<(), String> {
    let _ = tcp.set_nodelay(true);
    let mut tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
        .await
        .map_err(|_| "handshake timed out".to_owned())?
        .map_err(|e| format!("handshake: {e}"))?;
    let name = tls.get_ref().1.server_name().unwrap_or_default().to_owned();
    let port = ingress_port(&name, compose)
        .ok_or_else(|| format!("server name {name:?} names no port of the compose"))?;
    let mut app = TcpStream::connect((workload, port))
        .await
        .map_err(|e| format!("the app's port {port}: {e}"))?;
    let _ = app.set_nodelay(true);
    tokio::io::copy_bidirectional(&mut tls, &mut app)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ingress_reaches_only_ports_the_compose_lists() {
        let compose: AppCompose = serde_json::from_value(json!({
            "manifest_version": 1,
            "name": "web",
            "containers": [{"name": "web", "image": format!("x@sha256:{}", "ab".repeat(32))}],
            "ports": [{"container": "web", "port": 8443, "protocol": "tls-passthrough"}],
            "kms": {"chain_id": 1, "registry": format!("0x{}", "11".repeat(20))}
        }))
        .unwrap();
        assert_eq!(ingress_port("8443.ingress", &compose), Some(8443));
        for name in [
            "22.ingress",
            "08443.ingress",
            "+8443.ingress",
            "8443.ingress.evil",
            "8443",
            "x.ingress",
            "",
        ] {
            assert_eq!(ingress_port(name, &compose), None, "{name}");
        }
    }
}
