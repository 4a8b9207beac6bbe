//! Test support: a fresh, empty database per test on either backend, so tests never share
//! state and can run in parallel.

use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// Creates a new database on the PostgreSQL server of `base_url` and returns its URL.
pub async fn fresh_postgres_database(base_url: &str) -> Result<String, String> {
    let name = format!("ironhand_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(base_url)
        .await
        .map_err(|e| format!("connect {}: {e}", crate::redact(base_url)))?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    let mut url = url::Url::parse(base_url).map_err(|e| e.to_string())?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}

/// A SQLite URL for a new file in `dir`.
pub fn fresh_sqlite_url(dir: &std::path::Path) -> String {
    format!("sqlite://{}", dir.join("ironhand.db").display())
}

/// The PostgreSQL server tests run against (`TEST_DATABASE_URL`, which `.cargo/config.toml`
/// and `.ci/run` set). Tests fail loudly without it rather than silently skip PostgreSQL.
pub fn test_database_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "TEST_DATABASE_URL is not set: the PostgreSQL half of the suite needs it (see README)"
        )
    })
}
