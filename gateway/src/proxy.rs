//! The public listener: a client's TLS connection is routed by its server name (SNI) to an
//! instance the routing table holds now, over a hop that is always TLS to the instance's ingress
//! with the very RA-TLS key it registered.
//!
//! Built so far: **passthrough** — for a compose port with protocol `tls-passthrough`, the
//! gateway reads the client's ClientHello (at most 16 KiB, within 10 s), picks an instance of the
//! app (round robin; the next one if its ingress cannot be reached), opens the hop (TLS 1.3, server
//! name `<port>.ingress`, the certificate's key pinned to the registration's), replays the
//! ClientHello into it and joins the two streams. The app terminates the client's TLS itself, so
//! the gateway never sees the plaintext. Names the table cannot route, malformed ClientHellos and
//! ports of other protocols are closed without a byte written back.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use alloy::primitives::B256;
use rustls::{
    DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::CryptoProvider,
    pki_types::{CertificateDer, ServerName, UnixTime},
};
use sha2::{Digest, Sha256};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};

use crate::{
    gateway::Gateway,
    instance::Routed,
    names::{self, Target},
};

/// The largest ClientHello read before routing.
pub const MAX_CLIENT_HELLO: usize = 16 * 1024;
const CLIENT_HELLO_TIMEOUT: Duration = Duration::from_secs(10);
const HOP_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_CONNECTIONS: usize = 4096;

/// Why a connection was not routed.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The ClientHello did not arrive in time, was too large or malformed, or named no server.
    #[error("client hello: {0}")]
    ClientHello(String),
    /// The name is not one the gateway routes.
    #[error("{0}")]
    Name(#[from] names::NameError),
    /// Nothing serves the name now.
    #[error("no instance serves {0}")]
    NoInstance(String),
    /// The port is not a passthrough port of the app.
    #[error("{0}")]
    Port(String),
    /// Every instance's ingress failed.
    #[error("no instance could be reached: {0}")]
    Hop(String),
}

/// Reads the client's ClientHello: the bytes read and the server name it asks for.
pub async fn read_client_hello(tcp: &mut TcpStream) -> Result<(Vec<u8>, String), RouteError> {
    let mut acceptor = rustls::server::Acceptor::default();
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let read = async {
        loop {
            let n = tcp
                .read(&mut chunk)
                .await
                .map_err(|e| RouteError::ClientHello(e.to_string()))?;
            if n == 0 {
                return Err(RouteError::ClientHello(
                    "closed before the ClientHello".into(),
                ));
            }
            if buffer.len() + n > MAX_CLIENT_HELLO {
                return Err(RouteError::ClientHello("larger than 16 KiB".into()));
            }
            buffer.extend_from_slice(&chunk[..n]);
            acceptor
                .read_tls(&mut &chunk[..n])
                .map_err(|e| RouteError::ClientHello(e.to_string()))?;
            match acceptor.accept() {
                Ok(Some(accepted)) => {
                    let name = accepted
                        .client_hello()
                        .server_name()
                        .ok_or_else(|| RouteError::ClientHello("no server name (SNI)".into()))?
                        .to_owned();
                    return Ok(name);
                }
                Ok(None) => {}
                Err((e, _)) => return Err(RouteError::ClientHello(e.to_string())),
            }
        }
    };
    let name = tokio::time::timeout(CLIENT_HELLO_TIMEOUT, read)
        .await
        .map_err(|_| RouteError::ClientHello("not received within 10 s".into()))??;
    Ok((buffer, name))
}

/// Accepts only a server certificate whose SubjectPublicKeyInfo hashes to the registered one,
/// and a handshake signed with it.
#[derive(Debug)]
struct PinnedKey {
    spki_sha256: B256,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedKey {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let spki = crate::instance::spki(end_entity).map_err(rustls::Error::General)?;
        if B256::from(<[u8; 32]>::from(Sha256::digest(&spki))) == self.spki_sha256 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the ingress presented another key than the instance registered".into(),
            ))
        }
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("the hop is TLS 1.3 only".into()))
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Opens the hop to `routed`'s ingress for compose `port`: TLS 1.3 to the key it registered.
pub async fn hop(
    routed: &Routed,
    port: u16,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let registration = &routed.registration;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedKey {
            spki_sha256: registration.spki_sha256,
            provider,
        }))
        .with_no_client_auth();
    let name = ServerName::try_from(format!("{port}.ingress")).map_err(|e| e.to_string())?;
    let connect = async {
        let tcp = TcpStream::connect(registration.ingress)
            .await
            .map_err(|e| format!("{}: {e}", registration.ingress))?;
        let _ = tcp.set_nodelay(true);
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("{}: {e}", registration.ingress))
    };
    tokio::time::timeout(HOP_TIMEOUT, connect)
        .await
        .map_err(|_| format!("{}: no TLS within 10 s", registration.ingress))?
}

/// The public listener's state.
#[derive(Debug)]
pub struct Proxy {
    gateway: Arc<Gateway>,
    next: AtomicUsize,
}

impl Proxy {
    /// A proxy routing through `gateway`'s table.
    pub fn new(gateway: Arc<Gateway>) -> Self {
        Self {
            gateway,
            next: AtomicUsize::new(0),
        }
    }

    /// Routes one client connection; returns when it ends.
    pub async fn route(&self, mut client: TcpStream) -> Result<(), RouteError> {
        let (hello, name) = read_client_hello(&mut client).await?;
        let base = &self.gateway.settings().base_domain;
        let Target::App { app, port } = names::target(&name, base)? else {
            return Err(RouteError::NoInstance(format!(
                "{name} (custom domains are not routed yet)"
            )));
        };
        let table = self.gateway.routes();
        let instances = table.instances(app);
        let Some(first) = instances.first() else {
            return Err(RouteError::NoInstance(name));
        };
        let ports = &first.registration.compose.ports;
        let chosen = match port {
            Some(p) => ports.iter().find(|c| c.port == u32::from(p)),
            None => ports.iter().find(|c| c.protocol == "tls-passthrough"),
        }
        .ok_or_else(|| RouteError::Port(format!("{name}: no such port of the app")))?;
        if chosen.protocol != "tls-passthrough" {
            return Err(RouteError::Port(format!(
                "{name}: port {} is {} (only tls-passthrough is served yet)",
                chosen.port, chosen.protocol
            )));
        }
        let port = u16::try_from(chosen.port)
            .map_err(|_| RouteError::Port(format!("{name}: port out of range")))?;
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut failures = Vec::new();
        for i in 0..instances.len() {
            let routed = &instances[(start + i) % instances.len()];
            match hop(routed, port).await {
                Ok(mut upstream) => {
                    // Nothing reached the app before this write: trying the next instance was
                    // safe; from here on the connection belongs to this one.
                    upstream
                        .write_all(&hello)
                        .await
                        .map_err(|e| RouteError::Hop(e.to_string()))?;
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    return Ok(());
                }
                Err(e) => failures.push(e),
            }
        }
        Err(RouteError::Hop(failures.join("; ")))
    }
}

/// Serves the public listener until `shutdown`.
pub async fn serve(listener: TcpListener, proxy: Arc<Proxy>, mut shutdown: watch::Receiver<bool>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let (tcp, remote): (TcpStream, SocketAddr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(target: "gateway::proxy", error = %e, "accept failed");
                    continue;
                }
            },
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let _ = tcp.set_nodelay(true);
        let proxy = proxy.clone();
        connections.spawn(async move {
            let _permit = permit;
            if let Err(e) = proxy.route(tcp).await {
                tracing::debug!(target: "gateway::proxy", %remote, error = %e, "not routed");
            }
        });
        while connections.try_join_next().is_some() {}
    }
    connections.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate() -> Vec<u8> {
        rcgen::generate_simple_self_signed(vec!["x.ingress".to_owned()])
            .unwrap()
            .cert
            .der()
            .to_vec()
    }

    #[test]
    fn the_hop_accepts_only_the_registered_key() {
        let registered = certificate();
        let spki = crate::instance::spki(&registered).unwrap();
        let verifier = PinnedKey {
            spki_sha256: B256::from(<[u8; 32]>::from(Sha256::digest(&spki))),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        };
        let name = ServerName::try_from("8443.ingress").unwrap();
        let check = |der: &[u8]| {
            verifier.verify_server_cert(
                &CertificateDer::from(der.to_vec()),
                &[],
                &name,
                &[],
                UnixTime::now(),
            )
        };
        assert!(check(&registered).is_ok());
        let err = check(&certificate()).unwrap_err().to_string();
        assert!(err.contains("another key"), "{err}");
        assert!(check(b"not a certificate").is_err());
    }
}
