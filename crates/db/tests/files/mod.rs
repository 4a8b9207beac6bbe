//! Browser screenshots as files (`0004_screenshots.sql`): the migration keeps every file and
//! the schema around them, and screenshots are stored, counted and deleted like other
//! session files but left out of the session's file list. Run on both backends.

use super::Db;
use super::sessions::{now_ms, session_for, user_for};
use ironhand_core::files::{FileSource, QuotaCheck, StoredFile};
use ironhand_core::ids::{FileId, SessionId, UserId};
use sqlx::Row as _;
use std::str::FromStr as _;
use time::OffsetDateTime;

fn file(
    user: UserId,
    session: Option<SessionId>,
    source: FileSource,
    path: Option<&str>,
) -> StoredFile {
    StoredFile {
        id: FileId::new(),
        user_id: user,
        session_id: session,
        filename: "a.jpg".into(),
        content_type: "image/jpeg".into(),
        size: 10,
        sha256: "00".into(),
        storage_key: format!("k/{}", uuid::Uuid::now_v7().simple()),
        source,
        sandbox_path: path.map(str::to_owned),
        created_at: now_ms(),
    }
}

async fn stored(db: &Db, f: &StoredFile) -> StoredFile {
    match db.store.insert_file(f, 1_000_000).await.expect("insert") {
        QuotaCheck::Stored(file) => file,
        other => panic!("expected Stored, got {other:?}"),
    }
}

pub async fn screenshots_are_session_files_left_out_of_the_list(db: Db) {
    let u = user_for(&db, "shots@example.com").await;
    let s = session_for(&db, u, OffsetDateTime::now_utc()).await;
    let upload = stored(&db, &file(u, Some(s.id), FileSource::Upload, None)).await;
    let shot = file(u, Some(s.id), FileSource::Screenshot, None);
    stored(&db, &shot).await;
    let again = file(u, Some(s.id), FileSource::Screenshot, None);
    stored(&db, &again).await;

    assert_eq!(
        db.store.file_by_id(shot.id).await.expect("q"),
        Some(shot.clone()),
        "read back as a screenshot"
    );
    let listed: Vec<FileId> = db
        .store
        .session_files(s.id)
        .await
        .expect("q")
        .iter()
        .map(|f| f.id)
        .collect();
    assert_eq!(listed, vec![upload.id], "screenshots are not listed");
    assert_eq!(
        db.store.storage_used(u).await.expect("q"),
        30,
        "screenshots count against the quota"
    );
    assert!(matches!(
        db.store
            .insert_file(&file(u, Some(s.id), FileSource::Screenshot, None), 35)
            .await
            .expect("insert"),
        QuotaCheck::OverQuota { used: 30 }
    ));

    // They go with their session, their keys into the garbage list.
    assert!(db.store.delete_session(s.id).await.expect("delete"));
    for id in [upload.id, shot.id, again.id] {
        assert!(db.store.file_by_id(id).await.expect("q").is_none());
    }
    let garbage = db.store.blob_garbage(10).await.expect("q");
    assert!(
        garbage.contains(&shot.storage_key) && garbage.contains(&again.storage_key),
        "{garbage:?}"
    );
    assert_eq!(db.store.storage_used(u).await.expect("q"), 0);
}

/// Each backend's way to stop before 0004 and to describe the schema around `files`.
#[derive(Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    async fn migrate_to_0003(self, url: &str) {
        match self {
            Backend::Sqlite => {
                let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
                    .expect("url")
                    .create_if_missing(true)
                    .foreign_keys(true);
                let pool = sqlx::SqlitePool::connect_with(options)
                    .await
                    .expect("sqlite");
                sqlx::migrate!("./migrations/sqlite")
                    .run_to(3, &pool)
                    .await
                    .expect("migrate to 0003");
                pool.close().await;
            }
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(url).await.expect("postgres");
                sqlx::migrate!("./migrations/postgres")
                    .run_to(3, &pool)
                    .await
                    .expect("migrate to 0003");
                pool.close().await;
            }
        }
    }

    /// Columns, keys, indexes and constraints of `files`, one line each, except its source
    /// check; and that check.
    async fn schema(self, url: &str) -> (Vec<String>, String) {
        let mut lines: Vec<String> = Vec::new();
        match self {
            Backend::Sqlite => {
                let pool = sqlx::SqlitePool::connect(url).await.expect("sqlite");
                for query in SQLITE_SCHEMA {
                    let rows = sqlx::query(*query).fetch_all(&pool).await.expect("schema");
                    lines.extend(rows.iter().map(|r| r.get::<String, _>(0)));
                }
                pool.close().await;
            }
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(url).await.expect("postgres");
                for query in POSTGRES_SCHEMA {
                    let rows = sqlx::query(*query).fetch_all(&pool).await.expect("schema");
                    lines.extend(rows.iter().map(|r| r.get::<String, _>(0)));
                }
                pool.close().await;
            }
        }
        // SQLite keeps the CHECK in the table's SQL (quoting the name after a rename),
        // PostgreSQL as a named constraint.
        let is_check =
            |line: &String| line.contains("CREATE TABLE") || line.contains("source_check");
        let check = lines
            .iter()
            .filter(|l| is_check(l))
            .map(|l| l.replace("CREATE TABLE \"files\"", "CREATE TABLE files"))
            .collect();
        lines.retain(|l| !is_check(l));
        lines.sort();
        (lines, check)
    }

    /// `check` with 'screenshot' admitted, as 0004 writes it.
    fn with_screenshots(self, check: &str) -> String {
        match self {
            Backend::Sqlite => {
                check.replace("'upload', 'agent')", "'upload', 'agent', 'screenshot')")
            }
            Backend::Postgres => {
                check.replace("'agent'::text]", "'agent'::text, 'screenshot'::text]")
            }
        }
    }
}

const SQLITE_SCHEMA: &[&str] = &[
    "SELECT name || ' ' || type || ' ' || \"notnull\" || ' ' || pk FROM pragma_table_info('files')",
    "SELECT \"table\" || '.' || \"to\" || ' ' || \"from\" || ' ' || on_delete FROM pragma_foreign_key_list('files')",
    "SELECT name || ' ' || \"unique\" || ' ' || origin || ' ' || partial FROM pragma_index_list('files')",
    "SELECT name || ' ' || sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'files' AND sql IS NOT NULL",
    "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'files'",
    // Nothing may be left pointing at the table the rebuild went through.
    "SELECT 'refers to files_new: ' || name FROM sqlite_master WHERE sql LIKE '%files_new%'",
];

const POSTGRES_SCHEMA: &[&str] = &[
    "SELECT column_name::text || ' ' || data_type::text || ' ' || is_nullable::text
     FROM information_schema.columns WHERE table_name = 'files'",
    "SELECT indexdef FROM pg_indexes WHERE tablename = 'files'",
    "SELECT conname::text || ' ' || pg_get_constraintdef(oid)
     FROM pg_constraint WHERE conrelid = 'files'::regclass",
];

/// A database made before screenshots: its files survive 0004 unchanged, the schema
/// around them is the same, and the new source is accepted (only it).
async fn migrating_to_0004_keeps_files_and_admits_screenshots(backend: Backend, url: &str) {
    backend.migrate_to_0003(url).await;
    let (schema_before, check_before) = backend.schema(url).await;
    assert!(!check_before.contains("screenshot"), "{check_before}");
    // 11 columns, and the keys, indexes and constraints on them.
    assert!(schema_before.len() >= 20, "{schema_before:#?}");
    let old = Db {
        store: ironhand_db::connect(url, false).await.expect("connect"),
        _dir: None,
    };
    let u = user_for(&old, "before@example.com").await;
    let s = session_for(&old, u, OffsetDateTime::now_utc()).await;
    let files = [
        file(u, None, FileSource::Upload, None),
        file(u, Some(s.id), FileSource::Upload, None),
        file(
            u,
            Some(s.id),
            FileSource::Agent,
            Some("/home/ubuntu/out.md"),
        ),
    ];
    for f in &files {
        stored(&old, f).await;
    }
    drop(old);

    let db = Db {
        store: ironhand_db::connect(url, true).await.expect("migrate"),
        _dir: None,
    };
    for f in &files {
        assert_eq!(
            db.store.file_by_id(f.id).await.expect("q").as_ref(),
            Some(f)
        );
    }
    let (schema_after, check_after) = backend.schema(url).await;
    assert_eq!(
        schema_after, schema_before,
        "the rest of the schema is kept"
    );
    assert_ne!(check_after, check_before);
    assert_eq!(
        check_after,
        backend.with_screenshots(&check_before),
        "only the source check changed"
    );
    // The indexes still hold: one record per sandbox path (replaced in place), unique keys.
    let copy = file(
        u,
        Some(s.id),
        FileSource::Agent,
        Some("/home/ubuntu/out.md"),
    );
    assert_eq!(stored(&db, &copy).await.id, files[2].id);
    let shot = file(u, Some(s.id), FileSource::Screenshot, None);
    stored(&db, &shot).await;
    assert_eq!(
        db.store
            .file_by_id(shot.id)
            .await
            .expect("q")
            .map(|f| f.source),
        Some(FileSource::Screenshot)
    );
    let duplicate_key = StoredFile {
        id: FileId::new(),
        ..shot.clone()
    };
    assert!(
        db.store
            .insert_file(&duplicate_key, 1_000_000)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn sqlite_migrating_to_0004_keeps_files_and_admits_screenshots() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = ironhand_db::testing::fresh_sqlite_url(dir.path());
    migrating_to_0004_keeps_files_and_admits_screenshots(Backend::Sqlite, &url).await;
}

#[tokio::test]
async fn postgres_migrating_to_0004_keeps_files_and_admits_screenshots() {
    let url =
        ironhand_db::testing::fresh_postgres_database(&ironhand_db::testing::test_database_url())
            .await
            .expect("postgres test database");
    migrating_to_0004_keeps_files_and_admits_screenshots(Backend::Postgres, &url).await;
}
