//! The gateway's own database: registered instances ([`StoredRegistration`] rows), shared by every
//! gateway node of a deployment. Only verified, allowed registrations are written.

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
            .max_connections(4)
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

fn decode(column: &str) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: format!("malformed {column}").into(),
    }
}
