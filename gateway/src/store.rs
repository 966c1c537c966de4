//! The gateway's own database, shared by every gateway node of a deployment: registered instances
//! ([`StoredRegistration`] rows; only verified, allowed registrations are written), and — when the
//! gateway runs as an app with an ACME CA — the certificates it ordered (keys sealed), the
//! TLS-ALPN-01 challenges of orders in progress, and an attestation over every certificate key.
//! Anonymous traffic writes none of it: orders happen only for names that route to an app.

use alloy::primitives::Address;
use sqlx::{PgPool, Row};

use crate::instance::StoredRegistration;

/// The gateway's tables.
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    /// Connects to `url` and applies the gateway's migrations.
    pub async fn connect(url: &str) -> Result<Self, sqlx::Error> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self { pool })
    }

    /// Records `r`, replacing an earlier registration of the same instance (a reboot).
    pub async fn upsert(&self, r: &StoredRegistration) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO gateway_instances
                 (instance_id, app, certificate, compose, ingress, key_generation)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (instance_id) DO UPDATE SET
                 app = EXCLUDED.app, certificate = EXCLUDED.certificate,
                 compose = EXCLUDED.compose, ingress = EXCLUDED.ingress,
                 key_generation = EXCLUDED.key_generation, registered_at = now()",
        )
        .bind(r.instance_id.as_slice())
        .bind(r.app.as_slice())
        .bind(&r.certificate)
        .bind(&r.compose)
        .bind(&r.ingress)
        .bind(i64::try_from(r.key_generation).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets the instance — only if its row still holds `certificate` (a newer registration
    /// of the same instance is not the one being evicted).
    pub async fn remove(
        &self,
        instance_id: &[u8; 20],
        certificate: &[u8],
    ) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM gateway_instances WHERE instance_id = $1 AND certificate = $2")
            .bind(instance_id.as_slice())
            .bind(certificate)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every registration.
    pub async fn all(&self) -> Result<Vec<StoredRegistration>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT instance_id, app, certificate, compose, ingress, key_generation
             FROM gateway_instances ORDER BY registered_at",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                let id: Vec<u8> = row.try_get("instance_id")?;
                let app: Vec<u8> = row.try_get("app")?;
                let generation: i64 = row.try_get("key_generation")?;
                Ok(StoredRegistration {
                    instance_id: id.try_into().map_err(|_| decode("instance_id"))?,
                    app: Address::try_from(app.as_slice()).map_err(|_| decode("app"))?,
                    certificate: row.try_get("certificate")?,
                    compose: row.try_get("compose")?,
                    ingress: row.try_get("ingress")?,
                    key_generation: u64::try_from(generation)
                        .map_err(|_| decode("key_generation"))?,
                })
            })
            .collect()
    }
}

/// A certificate as stored.
#[derive(Clone, Debug)]
pub struct StoredCertificate {
    /// The name.
    pub host: String,
    /// The chain (PEM), leaf first.
    pub chain_pem: String,
    /// The leaf's key, sealed.
    pub key_sealed: Vec<u8>,
    /// SHA-256 of the leaf's SubjectPublicKeyInfo.
    pub spki_sha256: [u8; 32],
    /// When the leaf expires (Unix seconds).
    pub not_after: i64,
    /// The ACME account it was ordered under.
    pub account_uri: String,
}

/// An attestation over a certificate key, as stored.
#[derive(Clone, Debug)]
pub struct KeyAttestation {
    /// SHA-256 of the key's SubjectPublicKeyInfo.
    pub spki_sha256: [u8; 32],
    /// The SubjectPublicKeyInfo (DER).
    pub spki: Vec<u8>,
    /// The name the key was made for.
    pub host: String,
    /// The gateway instance that made it.
    pub instance_id: [u8; 20],
    /// The evidence (the guest's `GetQuote` answer's `evidence`).
    pub evidence: serde_json::Value,
    /// When it was made (Unix seconds).
    pub created_at: i64,
}

/// An order in progress, holding the name's advisory lock until it is committed or dropped.
#[derive(Debug)]
pub struct OrderLock {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    host: String,
}

impl OrderLock {
    /// Stores the ordered certificate and releases the lock.
    pub async fn commit(mut self, c: &StoredCertificate) -> Result<(), sqlx::Error> {
        debug_assert_eq!(c.host, self.host);
        sqlx::query(
            "INSERT INTO gateway_certificates
                 (host, chain_pem, key_sealed, spki_sha256, not_after, account_uri)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (host) DO UPDATE SET
                 chain_pem = EXCLUDED.chain_pem, key_sealed = EXCLUDED.key_sealed,
                 spki_sha256 = EXCLUDED.spki_sha256, not_after = EXCLUDED.not_after,
                 account_uri = EXCLUDED.account_uri, ordered_at = now()",
        )
        .bind(&c.host)
        .bind(&c.chain_pem)
        .bind(&c.key_sealed)
        .bind(c.spki_sha256.as_slice())
        .bind(c.not_after)
        .bind(&c.account_uri)
        .execute(&mut *self.tx)
        .await?;
        self.tx.commit().await
    }

    /// The certificate another node stored while this one waited for the lock.
    pub async fn stored(&mut self) -> Result<Option<StoredCertificate>, sqlx::Error> {
        certificate_row(&mut *self.tx, &self.host).await
    }
}

/// The advisory lock key of ordering `host`'s certificate.
fn order_lock_key(host: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("covenant-gateway-order:{host}"));
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

async fn certificate_row<'e, E: sqlx::PgExecutor<'e>>(
    executor: E,
    host: &str,
) -> Result<Option<StoredCertificate>, sqlx::Error> {
    let Some(row) = sqlx::query(
        "SELECT host, chain_pem, key_sealed, spki_sha256, not_after, account_uri
         FROM gateway_certificates WHERE host = $1",
    )
    .bind(host)
    .fetch_optional(executor)
    .await?
    else {
        return Ok(None);
    };
    let spki: Vec<u8> = row.try_get("spki_sha256")?;
    Ok(Some(StoredCertificate {
        host: row.try_get("host")?,
        chain_pem: row.try_get("chain_pem")?,
        key_sealed: row.try_get("key_sealed")?,
        spki_sha256: spki.try_into().map_err(|_| decode("spki_sha256"))?,
        not_after: row.try_get("not_after")?,
        account_uri: row.try_get("account_uri")?,
    }))
}

impl Store {
    /// The stored certificate of `host`.
    pub async fn certificate(&self, host: &str) -> Result<Option<StoredCertificate>, sqlx::Error> {
        certificate_row(&self.pool, host).await
    }

    /// Takes the lock on ordering `host`'s certificate, waiting at most `wait` for another
    /// node's order to finish. Only the holder orders; the lock goes with the returned value
    /// (and with its connection, should the node die).
    pub async fn lock_order(
        &self,
        host: &str,
        wait: std::time::Duration,
    ) -> Result<OrderLock, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT set_config('lock_timeout', $1, true)")
            .bind(format!("{}ms", wait.as_millis()))
            .execute(&mut *tx)
            .await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(order_lock_key(host))
            .execute(&mut *tx)
            .await?;
        Ok(OrderLock {
            tx,
            host: host.to_owned(),
        })
    }

    /// Publishes the TLS-ALPN-01 challenge of `host` for every node.
    pub async fn put_challenge(
        &self,
        host: &str,
        digest: &[u8; 32],
        ttl: std::time::Duration,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO gateway_acme_challenges (host, digest, expires_at)
             VALUES ($1, $2, now() + make_interval(secs => $3))
             ON CONFLICT (host) DO UPDATE SET digest = EXCLUDED.digest,
                 expires_at = EXCLUDED.expires_at",
        )
        .bind(host)
        .bind(digest.as_slice())
        .bind(ttl.as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The unexpired TLS-ALPN-01 challenge of `host`.
    pub async fn challenge(&self, host: &str) -> Result<Option<[u8; 32]>, sqlx::Error> {
        let digest: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT digest FROM gateway_acme_challenges WHERE host = $1 AND expires_at > now()",
        )
        .bind(host)
        .fetch_optional(&self.pool)
        .await?;
        digest
            .map(|d| d.try_into().map_err(|_| decode("digest")))
            .transpose()
    }

    /// Withdraws `host`'s challenge (its order is over).
    pub async fn remove_challenge(&self, host: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM gateway_acme_challenges WHERE host = $1")
            .bind(host)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records the attestation over a certificate key (before the key is used).
    pub async fn put_attestation(&self, a: &KeyAttestation) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO gateway_key_attestations (spki_sha256, spki, host, instance_id, evidence)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (spki_sha256) DO NOTHING",
        )
        .bind(a.spki_sha256.as_slice())
        .bind(&a.spki)
        .bind(&a.host)
        .bind(a.instance_id.as_slice())
        .bind(&a.evidence)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The attestations over every key made for `host`, oldest first.
    pub async fn attestations(&self, host: &str) -> Result<Vec<KeyAttestation>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT spki_sha256, spki, host, instance_id, evidence,
                    EXTRACT(EPOCH FROM created_at)::BIGINT AS created_at
             FROM gateway_key_attestations WHERE host = $1 ORDER BY created_at, spki_sha256",
        )
        .bind(host)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                let digest: Vec<u8> = row.try_get("spki_sha256")?;
                let instance: Vec<u8> = row.try_get("instance_id")?;
                Ok(KeyAttestation {
                    spki_sha256: digest.try_into().map_err(|_| decode("spki_sha256"))?,
                    spki: row.try_get("spki")?,
                    host: row.try_get("host")?,
                    instance_id: instance.try_into().map_err(|_| decode("instance_id"))?,
                    evidence: row.try_get("evidence")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }
}

fn decode(column: &str) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: format!("malformed {column}").into(),
    }
}
