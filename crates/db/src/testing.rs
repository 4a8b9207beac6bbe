//! Test support: a fresh, empty database per test on either backend, so tests never share
//! state and can run in parallel.

use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// Why a fresh test database could not be made.
#[derive(Debug, thiserror::Error)]
pub enum FreshDatabaseError {
    /// The server could not be reached (`url` has its password redacted).
    #[error("connect {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error(transparent)]
    Create(sqlx::Error),
    #[error(transparent)]
    Url(#[from] url::ParseError),
}

/// Creates a new database on the PostgreSQL server of `base_url` and returns its URL.
pub async fn fresh_postgres_database(base_url: &str) -> Result<String, FreshDatabaseError> {
    let name = format!("ironhand_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn =
        PgConnection::connect(base_url)
            .await
            .map_err(|source| FreshDatabaseError::Connect {
                url: crate::redact(base_url),
                source,
            })?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await
        .map_err(FreshDatabaseError::Create)?;
    let mut url = url::Url::parse(base_url)?;
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

/// Runs each story of a test file once per backend: the one definition of this macro, for
/// the storage conformance suite and the HTTP tests alike. A story is an `async fn` of one
/// argument; for each backend the macro makes a module with one test per story, which
/// calls the story with that backend's argument. The argument is evaluated inside the test,
/// with the calling module's items in scope:
///
/// ```ignore
/// ironhand_db::on_both_backends! {
///     worker_threads = 4,
///     sqlite_backend => sqlite().await,
///     postgres_backend => postgres().await;
///     first_story,
///     second_story,
/// }
/// ```
///
/// makes `sqlite_backend::first_story`, `postgres_backend::first_story` and so on, each on
/// a multi-threaded Tokio runtime of `worker_threads` threads (the calling crate needs
/// `tokio` with its `macros` and `rt-multi-thread` features).
#[macro_export]
macro_rules! on_both_backends {
    (@backend $threads:literal, $module:ident, $argument:expr; $($story:ident),*) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = $threads)]
                async fn $story() {
                    super::$story($argument).await
                }
            )*
        }
    };
    (
        worker_threads = $threads:literal,
        $first:ident => $first_argument:expr,
        $second:ident => $second_argument:expr;
        $($story:ident),* $(,)?
    ) => {
        $crate::on_both_backends!(@backend $threads, $first, $first_argument; $($story),*);
        $crate::on_both_backends!(@backend $threads, $second, $second_argument; $($story),*);
    };
}
