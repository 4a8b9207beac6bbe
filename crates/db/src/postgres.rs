//! The scale-out backend: PostgreSQL, shared by every instance.

use crate::ConnectError;
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

impl_store!(PgStore, PgRow, "postgres");
// Concurrent workers skip the runs another worker is claiming instead of waiting on them.
impl_session_store!(PgStore, PgRow, "FOR UPDATE SKIP LOCKED");
impl_billing_store!(PgStore, PgRow);
impl_mcp_store!(PgStore, PgRow);
impl_workspace_store!(PgStore, PgRow);
