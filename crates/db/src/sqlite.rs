//! The embedded backend: one SQLite file in WAL mode, with a single writer connection (so
//! transactions never fail on lock upgrades) and a pool of readers.

use crate::ConnectError;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use std::str::FromStr;
use std::time::Duration;

#[derive(Clone)]
pub struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
}

impl SqliteStore {
    pub async fn connect(url: &str) -> Result<Self, ConnectError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| ConnectError::Connect(e.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(|e| ConnectError::Connect(e.to_string()))?;
        let read = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options.read_only(true))
            .await
            .map_err(|e| ConnectError::Connect(e.to_string()))?;
        Ok(Self { read, write })
    }

    pub async fn migrate(&self) -> Result<(), ConnectError> {
        sqlx::migrate!("./migrations/sqlite")
            .run(&self.write)
            .await
            .map_err(|e| ConnectError::Migrate(e.to_string()))
    }

    fn reader(&self) -> &SqlitePool {
        &self.read
    }

    fn writer(&self) -> &SqlitePool {
        &self.write
    }
}

impl_store!(SqliteStore, SqliteRow, "sqlite");
// Claims need no row lock: the single writer connection serialises them.
impl_session_store!(SqliteStore, SqliteRow, "");
impl_billing_store!(SqliteStore, SqliteRow);
impl_mcp_store!(SqliteStore, SqliteRow);
impl_workspace_store!(SqliteStore, SqliteRow);
