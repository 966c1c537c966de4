//! Every SQL statement of the kms-oracle: its own audit schema (`migrations/`). The indexer's
//! mirror is read through `covenant_indexer::facts`, never written.

pub mod audit;

use sqlx::{PgPool, postgres::PgPoolOptions};

use crate::Result;

/// Opens a pool on `url`.
pub async fn connect(url: &str, max: u32) -> Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(std::time::Duration::from_secs(5))
        .connect(url)
        .await?)
}

/// Applies the embedded migrations.
pub async fn migrate(pool: &PgPool) -> Result<()> {
    sqlx::migrate!("./migrations").run(pool).await?;
    Ok(())
}
