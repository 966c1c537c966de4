//! Certificates from an ACME CA (RFC 8555, with `instant-acme`) under the gateway app's account.
//!
//! The account key is the gateway app's `GetKey("gateway/acme")` ([`crate::identity`]): every
//! node of the gateway app has the same account, which is what the CAA `accounturi` record and
//! the chain's `gatewayAcmeAccount` pin. Each certificate key is made here, inside the TEE,
//! attested before it is used, and stored only sealed.
//!
//! The challenge is TLS-ALPN-01 (RFC 8737), answered by the gateway's own public listener: the
//! key authorization's digest goes into the shared database, so whichever node the CA connects
//! to answers it ([`challenge_certificate`]).

use std::{path::PathBuf, time::Duration};

use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewOrder, OrderStatus, RetryPolicy,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::store::Store;

/// The ALPN protocol of TLS-ALPN-01.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";
/// How long a published challenge stays answerable.
const CHALLENGE_TTL: Duration = Duration::from_secs(300);

/// Where the CA is.
#[derive(Clone, Debug)]
pub struct AcmeSettings {
    /// The CA's directory URL.
    pub directory: String,
    /// A root (PEM) to trust for the directory's TLS, for a CA on a private PKI (tests).
    pub ca_file: Option<PathBuf>,
}

/// The gateway's account at the CA.
pub struct Acme {
    account: Account,
    account_uri: String,
    directory: String,
}

impl std::fmt::Debug for Acme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acme")
            .field("account", &self.account_uri)
            .field("directory", &self.directory)
            .finish_non_exhaustive()
    }
}

impl Acme {
    /// Opens (or creates, on first use) the account of `account_key` (PKCS#8, P-256) at the CA.
    pub async fn connect(settings: &AcmeSettings, account_key: &[u8]) -> Result<Self, String> {
        let builder = match &settings.ca_file {
            Some(path) => Account::builder_with_root(path),
            None => Account::builder(),
        }
        .map_err(|e| format!("the ACME client: {e}"))?;
        let key = instant_acme::Key::from_pkcs8_der(PrivatePkcs8KeyDer::from(account_key))
            .map_err(|e| format!("the ACME account key: {e}"))?;
        let (account, _) = builder
            .create_from_key(
                (
                    key,
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(account_key.to_vec())),
                ),
                settings.directory.clone(),
            )
            .await
            .map_err(|e| format!("the ACME account at {}: {e}", settings.directory))?;
        Ok(Self {
            account_uri: account.id().to_owned(),
            account,
            directory: settings.directory.clone(),
        })
    }

    /// The account's URI (what CAA `accounturi` and the chain's `gatewayAcmeAccount` name).
    pub fn account_uri(&self) -> &str {
        &self.account_uri
    }

    /// Orders a certificate for `host` over `csr_der` (made with a key that never leaves this
    /// process), answering TLS-ALPN-01 through `store`. Returns the chain (PEM).
    pub async fn order(&self, host: &str, csr_der: &[u8], store: &Store) -> Result<String, String> {
        let identifiers = [Identifier::Dns(host.to_owned())];
        let mut order = self
            .account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .map_err(|e| format!("new order: {e}"))?;
        let mut published = false;
        let result = async {
            let mut authorizations = order.authorizations();
            while let Some(authorization) = authorizations.next().await {
                let mut authorization = authorization.map_err(|e| format!("authorization: {e}"))?;
                match authorization.status {
                    AuthorizationStatus::Valid => continue,
                    AuthorizationStatus::Pending => {}
                    other => return Err(format!("authorization is {other:?}")),
                }
                let mut challenge = authorization
                    .challenge(ChallengeType::TlsAlpn01)
                    .ok_or("the CA offers no tls-alpn-01 challenge")?;
                let digest: [u8; 32] =
                    challenge
                        .key_authorization()
                        .digest()
                        .as_ref()
                        .try_into()
                        .map_err(|_| "key authorization digest is not 32 bytes".to_owned())?;
                store
                    .put_challenge(host, &digest, CHALLENGE_TTL)
                    .await
                    .map_err(|e| format!("publishing the challenge: {e}"))?;
                published = true;
                challenge
                    .set_ready()
                    .await
                    .map_err(|e| format!("challenge ready: {e}"))?;
            }
            let retries = RetryPolicy::new()
                .initial_delay(Duration::from_millis(100))
                .backoff(1.5)
                .timeout(Duration::from_secs(60));
            let status = order
                .poll_ready(&retries)
                .await
                .map_err(|e| format!("waiting for validation: {e}"))?;
            if status != OrderStatus::Ready {
                return Err(format!("the order is {status:?} after validation"));
            }
            order
                .finalize_csr(csr_der)
                .await
                .map_err(|e| format!("finalize: {e}"))?;
            order
                .poll_certificate(&retries)
                .await
                .map_err(|e| format!("certificate: {e}"))
        }
        .await;
        if published && let Err(e) = store.remove_challenge(host).await {
            tracing::warn!(target: "gateway::acme", host, error = %e, "challenge not withdrawn");
        }
        result
    }
}

/// The self-signed certificate (and its key) answering a TLS-ALPN-01 challenge for `host` whose
/// key authorization digest is `digest` (RFC 8737 §3), for a handshake that offers only
/// `acme-tls/1`.
pub fn challenge_certificate(
    host: &str,
    digest: &[u8; 32],
) -> Result<(CertificateDer<'static>, PrivatePkcs8KeyDer<'static>), String> {
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let mut params =
        rcgen::CertificateParams::new(vec![host.to_owned()]).map_err(|e| e.to_string())?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let certificate = params.self_signed(&key).map_err(|e| e.to_string())?;
    Ok((
        certificate.der().clone(),
        PrivatePkcs8KeyDer::from(key.serialize_der()),
    ))
}
