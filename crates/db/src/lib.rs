//! Storage for Ironhand: one implementation of the storage ports per backend, chosen from
//! the database URL. Both share their SQL (SQLite accepts `$1` placeholders) through
//! `impl_store!` (accounts) and `impl_session_store!` (sessions, events, runs, memory, job
//! locks); each has its own migrations folder.

#[macro_use]
mod billing;
#[macro_use]
mod shared;
#[macro_use]
mod sessions;
#[macro_use]
mod mcp;
#[macro_use]
mod workspaces;
pub mod postgres;
pub mod sqlite;
pub mod testing;

use ironhand_core::ports::Store;
use std::sync::Arc;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("DATABASE_URL must start with sqlite:// or postgres:// (got `{0}`)")]
    UnknownScheme(String),
    #[error("could not open the database: {0}")]
    Connect(String),
    #[error("could not apply database migrations: {0}")]
    Migrate(String),
}

/// Opens the database named by `url` (`sqlite://…` or `postgres://…`) and applies pending
/// migrations when `migrate` is set.
pub async fn connect(url: &str, migrate: bool) -> Result<Arc<dyn Store>, ConnectError> {
    let scheme = url.split(':').next().unwrap_or_default();
    match scheme {
        "sqlite" => {
            let store = SqliteStore::connect(url).await?;
            if migrate {
                store.migrate().await?;
            }
            Ok(Arc::new(store))
        }
        "postgres" | "postgresql" => {
            let store = PgStore::connect(url).await?;
            if migrate {
                store.migrate().await?;
            }
            Ok(Arc::new(store))
        }
        _ => Err(ConnectError::UnknownScheme(redact(url))),
    }
}

/// The URL with any password replaced, for messages and logs.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparseable url>".into(),
    }
}

fn store_err(e: sqlx::Error) -> ironhand_core::StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            ironhand_core::StoreError::Conflict(db.constraint().unwrap_or("unique").to_string())
        }
        // PostgreSQL deadlock / serialization failure; SQLite busy or locked.
        sqlx::Error::Database(db)
            if matches!(
                db.code().as_deref(),
                Some("40P01" | "40001" | "5" | "6" | "517")
            ) =>
        {
            ironhand_core::StoreError::Busy(db.message().to_string())
        }
        _ => ironhand_core::StoreError::Backend(e.to_string()),
    }
}
