//! The scale-out backend: PostgreSQL, shared by every instance.

use crate::ConnectError;
use ironhand_core::error::StoreError;
use ironhand_core::ports::Store;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use std::time::Duration;

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub async fn connect(url: &str) -> Result<Self, ConnectError> {
        let pool = PgPoolOptions::new()
            .max_connections(20)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|e| ConnectError::Connect(e.to_string()))?;
        Ok(Self { pool })
    }

    pub async fn migrate(&self) -> Result<(), ConnectError> {
        sqlx::migrate!("./migrations/postgres")
            .run(&self.pool)
            .await
            .map_err(|e| ConnectError::Migrate(e.to_string()))
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }
}

impl_store!(PgStore, PgRow);

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(store_err)
    }

    async fn prune_auth_records(
        &self,
        now: time::OffsetDateTime,
        revoked_before: time::OffsetDateTime,
        codes_before: time::OffsetDateTime,
    ) -> Result<ironhand_core::ports::store::PruneReport, StoreError> {
        self.prune_auth(now, revoked_before, codes_before).await
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }
}
