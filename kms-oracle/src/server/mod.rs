//! The HTTPS server: an accept loop that admits connections within the connection limits
//! ([`limits`]) and spawns one task per connection; each task runs the TLS handshake under a
//! timeout, then serves HTTP/1.1 with a header-read timeout. Connections refused before any
//! request (over the limits, failed or slow handshakes, slow or malformed headers) and requests
//! whose evidence does not verify are unauthenticated: counted in metrics and logged at a
//! bounded rate, never written to the audit log. The endpoints are split by kind ([`routes`]):
//! attested ones go through one audited path (`attested`), every "no" is a `Refusal`.

mod attested;
pub mod limits;
mod proofs;
mod public;
mod refusal;
mod release;
mod routes;
pub mod tls;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use alloy::primitives::B256;
use covenant_attest::{Collateral, VerifiedEvidence};
use hyper_util::rt::{TokioIo, TokioTimer};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tokio::{net::TcpListener, sync::watch, task::JoinSet};
use tokio_rustls::TlsAcceptor;

pub use routes::{openapi, router};

use covenant_mirror::SharedClock;
use refusal::Refusal;

use crate::{
    audit::writer::AuditLog, chain::Sender, keys::Keyring, metrics::Metrics, policy::Decider,
};

/// Limits that protect the service from slow or greedy clients.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The TLS handshake must finish within this.
    pub handshake_timeout: Duration,
    /// Request headers, and then the body, must arrive within this.
    pub request_timeout: Duration,
    /// The largest request body accepted, in bytes.
    pub max_body: usize,
    /// Keys are not released while an audit entry older than this is not committed on chain.
    pub max_uncommitted_age: Duration,
}

/// What every request handler shares.
pub struct State {
    /// The decision engine.
    pub decider: Arc<Decider>,
    /// The root secret and everything derived from it; releases only against decisions.
    pub keyring: Arc<Keyring>,
    /// "Now" (evidence and certificate times, audit timestamps).
    pub clock: SharedClock,
    /// The audit log.
    pub audit: AuditLog,
    /// The audit database (proofs).
    pub audit_pool: PgPool,
    /// Metrics handles.
    pub metrics: Metrics,
    /// The registry `/metrics` renders.
    pub registry: prometheus::Registry,
    /// Where client evidence's collateral comes from.
    pub collateral: CollateralSources,
    /// The oldest collateral accepted.
    pub max_collateral_age: Duration,
    /// The lowest SEV-SNP TCB counted as up to date.
    pub snp_minimum_tcb: Option<covenant_attest::snp::SnpTcb>,
    /// Sends onboarding records for replicas.
    pub sender: Sender,
    /// Limits.
    pub limits: Limits,
    /// Admission of new connections (concurrent connections, per-source rate).
    pub admission: limits::Admission,
    /// Bounds the log lines about unauthenticated clients.
    pub quiet: limits::LogLimiter,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Why evidence did not verify: whether only because simulated evidence was not trusted, and
/// the reason.
type Failure = (bool, String);
/// A verification result, with whether the simulator root was trusted for it.
type Checked = (bool, Result<Arc<VerifiedEvidence>, Failure>);

/// The client side of one connection: its certificate and, once checked, its evidence.
#[derive(Debug)]
pub struct Peer {
    certificate: Option<Vec<u8>>,
    /// sha256 of the client certificate.
    pub digest: Option<B256>,
    evidence: tokio::sync::Mutex<Option<Checked>>,
}

impl Peer {
    fn new(certificate: Option<Vec<u8>>) -> Self {
        let digest = certificate
            .as_ref()
            .map(|c| B256::from(<[u8; 32]>::from(Sha256::digest(c))));
        Self {
            certificate,
            digest,
            evidence: tokio::sync::Mutex::new(None),
        }
    }

    /// The client's verified evidence, checked off the async runtime once per connection and
    /// again whenever the chain's `allowSimulatedTee` has changed since: the simulator root is
    /// trusted only while the chain allows simulated TEEs at the finalized block. Where that
    /// cannot be known now (no usable chain view), simulated evidence gets the chain view's
    /// refusal (transient), not a verdict.
    pub(crate) async fn evidence(&self, state: &State) -> Result<Arc<VerifiedEvidence>, Refusal> {
        let view = state.decider.view();
        let (simulated, unknown) = match view.current_block() {
            Ok(block) => match view.simulated_allowed(&block).await {
                Ok(allowed) => (allowed, None),
                Err(e) => (
                    false,
                    Some(Refusal::unavailable(
                        "cannot read allowSimulatedTee from the chain",
                        &e,
                    )),
                ),
            },
            Err(deny) => (false, Some(Refusal::from(deny))),
        };
        let result = {
            let mut cached = self.evidence.lock().await;
            match cached.as_ref() {
                Some((flag, result)) if *flag == simulated => result.clone(),
                _ => {
                    let result = self.verify(state, simulated).await;
                    *cached = Some((simulated, result.clone()));
                    result
                }
            }
        };
        match (result, unknown) {
            (Ok(evidence), _) => Ok(evidence),
            (Err((true, _)), Some(unknown)) => Err(unknown),
            (Err((_, reason)), _) => Err(Refusal::evidence(reason)),
        }
    }

    async fn verify(
        &self,
        state: &State,
        simulated: bool,
    ) -> Result<Arc<VerifiedEvidence>, Failure> {
        let Some(cert) = self.certificate.clone() else {
            return Err((
                false,
                "no client certificate: this endpoint needs RA-TLS client authentication"
                    .to_owned(),
            ));
        };
        let mut policy = crate::identity::verifier_policy(simulated);
        policy.max_collateral_age = state.max_collateral_age;
        policy.snp_minimum_tcb = state.snp_minimum_tcb;
        let now = state.clock.now_secs();
        // Parsed once: its evidence chooses the collateral, then it is verified as parsed.
        let parsed = covenant_attest::ratls::ParsedCertificate::parse(&cert)
            .map_err(|e| (false, format!("evidence refused: {e}")))?;
        let collateral = collateral_for_evidence(&state.collateral, parsed.evidence(), now)
            .await
            .map_err(|e| (false, format!("evidence refused: {e}")))?;
        tokio::task::spawn_blocking(move || parsed.verify(&collateral, &policy, now))
            .await
            .map_err(|e| (false, format!("verification task failed: {e}")))?
            .map(Arc::new)
            .map_err(|e| {
                (
                    matches!(e, covenant_attest::Error::SimulatedNotAllowed),
                    format!("evidence refused: {e}"),
                )
            })
    }
}

/// Where the endorsements that evidence does not carry come from.
#[derive(Clone, Debug, Default)]
pub struct CollateralSources {
    /// TDX collateral (`None`: no `--pccs-url`, TDX quotes are refused).
    pub pccs: Option<crate::pccs::Pccs>,
    /// VCEKs for SEV-SNP reports that come without one (`None`: no `--kds-url`, such reports
    /// are refused; reports that carry their VCEK or VLEK need nothing).
    pub kds: Option<crate::kds::Kds>,
}

/// The collateral to verify `certificate`'s evidence with: for a TDX quote, its platform's set
/// from the PCCS (or its cache); for an SEV-SNP report without its VCEK, the VCEK from the key
/// distribution service (or its cache); nothing otherwise.
pub async fn collateral_for(
    sources: &CollateralSources,
    certificate: &[u8],
    now: u64,
) -> Result<Collateral, String> {
    let evidence =
        covenant_attest::ratls::certificate_evidence(certificate).map_err(|e| e.to_string())?;
    collateral_for_evidence(sources, &evidence, now).await
}

/// [`collateral_for`] of a certificate's evidence, already parsed.
pub async fn collateral_for_evidence(
    sources: &CollateralSources,
    evidence: &covenant_attest::Evidence,
    now: u64,
) -> Result<Collateral, String> {
    match evidence.platform {
        covenant_attest::Platform::Tdx => {
            let Some(pccs) = &sources.pccs else {
                return Err(
                    "a TDX quote, and this node has no collateral source (--pccs-url)".into(),
                );
            };
            let tdx = pccs
                .tdx_collateral(&evidence.quote, now)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Collateral {
                tdx: Some(tdx),
                ..Collateral::default()
            })
        }
        covenant_attest::Platform::Snp if evidence.vcek.is_empty() => {
            let Some(kds) = &sources.kds else {
                return Err(
                    "an SEV-SNP report without its VCEK, and this node has no key distribution service (--kds-url)"
                        .into(),
                );
            };
            let vcek = kds
                .vcek(&evidence.quote, now)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Collateral {
                snp_vcek: Some(vcek),
                ..Collateral::default()
            })
        }
        _ => Ok(Collateral::default()),
    }
}

/// Counts a refusal of an unauthenticated client (`kind` is the metric label) and logs it at a
/// bounded rate. Writes nothing anywhere else: anonymous traffic costs no durable writes.
pub(crate) fn unauthenticated(state: &State, kind: &'static str, detail: &dyn std::fmt::Display) {
    state
        .metrics
        .unauthenticated
        .with_label_values(&[kind])
        .inc();
    if let Some(suppressed) = state.quiet.allow() {
        tracing::info!(target: "kms::server", kind, %detail, suppressed, "unauthenticated client refused");
    }
}

async fn connection(
    stream: tokio::net::TcpStream,
    remote: SocketAddr,
    acceptor: TlsAcceptor,
    app: axum::Router,
    state: Arc<State>,
) {
    let _ = stream.set_nodelay(true);
    let tls =
        match tokio::time::timeout(state.limits.handshake_timeout, acceptor.accept(stream)).await {
            Err(_) => {
                let ms = state.limits.handshake_timeout.as_millis();
                return unauthenticated(
                    &state,
                    "handshake_timeout",
                    &format_args!("{remote}: tls handshake not finished within {ms} ms"),
                );
            }
            Ok(Err(e)) => {
                return unauthenticated(
                    &state,
                    "handshake",
                    &format_args!("{remote}: tls handshake failed: {e}"),
                );
            }
            Ok(Ok(tls)) => tls,
        };
    let certificate = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec());
    let peer = Arc::new(Peer::new(certificate));
    // Requests this connection carried: a kept-alive connection that then stays idle until the
    // header timeout is closed, not refused.
    let served = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = served.clone();
    let service = tower::ServiceExt::map_request(
        app,
        move |mut req: hyper::Request<hyper::body::Incoming>| {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            req.extensions_mut().insert(peer.clone());
            req
        },
    );
    let result = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(state.limits.request_timeout)
        .max_buf_size(64 * 1024)
        .serve_connection(
            TokioIo::new(tls),
            hyper_util::service::TowerToHyperService::new(service),
        )
        .await;
    if let Err(e) = result {
        // A client closing an idle keep-alive connection, or leaving one idle after its
        // requests, is not a refusal.
        let idle_after_requests =
            e.is_timeout() && served.load(std::sync::atomic::Ordering::Relaxed) > 0;
        if !idle_after_requests && e.is_timeout() {
            let ms = state.limits.request_timeout.as_millis();
            unauthenticated(
                &state,
                "header_timeout",
                &format_args!("{remote}: request headers not received within {ms} ms"),
            );
        } else if e.is_parse() || e.is_parse_too_large() {
            unauthenticated(
                &state,
                "malformed_http",
                &format_args!("{remote}: malformed HTTP request: {e}"),
            );
        } else {
            tracing::debug!(target: "kms::server", %remote, error = %e, "connection ended");
        }
    }
}

/// Serves on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let app = router(state.clone());
    let mut connections = JoinSet::new();
    let mut sweep = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => match state.admission.admit(remote.ip()) {
                    Ok(permit) => {
                        let (acceptor, app, state) = (acceptor.clone(), app.clone(), state.clone());
                        connections.spawn(async move {
                            connection(stream, remote, acceptor, app, state).await;
                            drop(permit);
                        });
                    }
                    Err(closed) => {
                        drop(stream);
                        unauthenticated(&state, closed.as_str(), &format_args!("{remote}: closed on accept"));
                    }
                },
                Err(e) => {
                    tracing::warn!(target: "kms::server", error = %e, "accept failed");
                    // Out of file descriptors and the like: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = sweep.tick() => state.admission.forget_idle_sources(),
            () = stopped(&mut shutdown) => break,
        }
    }
    connections.abort_all();
}

/// Resolves once `shutdown` is set (or its sender is gone), holding no borrow of it after.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}
