//! One story, two stores: what the file service relies on from any `BlobStore`.

use crate::{collect, read, sha256_hex, write_source};
use bytes::Bytes;
use futures::StreamExt;
use ironhand_core::ports::{BlobError, BlobStore};
use ironhand_fakes::s3::S3Server;
use ironhand_files::{LocalBlobStore, S3BlobStore, S3Config};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn s3_config(server: &S3Server, secret: &str, prefix: Option<&str>) -> S3Config {
    S3Config {
        endpoint: server.endpoint(),
        region: server.region().to_string(),
        bucket: server.bucket().to_string(),
        access_key_id: server.access_key().to_string(),
        secret_access_key: secret.into(),
        path_style: true,
        prefix: prefix.map(str::to_string),
    }
}

/// Store a file, read it whole and in ranges, replace it, delete it.
async fn conformance_story(store: &dyn BlobStore, scratch: &Path) {
    store.check().await.unwrap();

    let content: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (source, sha) = write_source(scratch, "upload-1", &content);
    let key = "files/0190f3a2-7b1c-7000-8000-000000000001";
    store
        .put_file(key, &source, content.len() as u64, &sha)
        .await
        .unwrap();

    assert_eq!(read(store, key, None).await, content, "whole object");
    let last = content.len() as u64 - 1;
    for (start, end) in [
        (0, 0),
        (last, last),
        (1000, 70_000),
        (0, last),
        (65_535, 65_536),
    ] {
        let got = read(store, key, Some((start, end))).await;
        assert_eq!(
            got,
            &content[start as usize..=end as usize],
            "range {start}-{end}"
        );
    }

    // Replacing an object leaves only the new content.
    let (source2, sha2) = write_source(scratch, "upload-2", b"second version");
    store.put_file(key, &source2, 14, &sha2).await.unwrap();
    assert_eq!(read(store, key, None).await, b"second version");

    store.delete(key).await.unwrap();
    assert!(matches!(
        store.get(key, None).await,
        Err(BlobError::NotFound)
    ));
    store.delete(key).await.unwrap();
    assert!(matches!(
        store.get("files/never-stored", None).await,
        Err(BlobError::NotFound)
    ));

    // Small in-memory content (files copied out of a sandbox), and an empty one.
    let small = Bytes::from_static(b"# report\nall good\n");
    store
        .put_bytes("agent/s1/report", small.clone(), &sha256_hex(&small))
        .await
        .unwrap();
    assert_eq!(read(store, "agent/s1/report", None).await, small);
    assert_eq!(
        read(store, "agent/s1/report", Some((2, 7))).await,
        b"report"
    );
    store
        .put_bytes("agent/s1/empty", Bytes::new(), &sha256_hex(b""))
        .await
        .unwrap();
    assert!(read(store, "agent/s1/empty", None).await.is_empty());

    for bad in [
        "",
        "/abs",
        "../escape",
        "files/../../etc",
        "a//b",
        "files/x.txt",
        "UPPER",
        "a/",
    ] {
        assert!(
            matches!(
                store
                    .put_bytes(bad, small.clone(), &sha256_hex(&small))
                    .await,
                Err(BlobError::InvalidKey)
            ),
            "put {bad:?}"
        );
        assert!(
            matches!(store.get(bad, None).await, Err(BlobError::InvalidKey)),
            "get {bad:?}"
        );
        assert!(
            matches!(store.delete(bad).await, Err(BlobError::InvalidKey)),
            "delete {bad:?}"
        );
        assert!(
            matches!(
                store
                    .put_file(bad, &source, content.len() as u64, &sha)
                    .await,
                Err(BlobError::InvalidKey)
            ),
            "put_file {bad:?}"
        );
    }
}

/// 64 MiB through put_file and get, checked by hash: both ways stream.
async fn large_file_story(store: &dyn BlobStore, scratch: &Path) {
    const MIB: usize = 1024 * 1024;
    let path = scratch.join("large");
    let mut file = std::fs::File::create(&path).unwrap();
    let mut hasher = Sha256::new();
    let mut block: Vec<u8> = (0..MIB).map(|j| (j * 13 % 257) as u8).collect();
    for i in 0..64u32 {
        // Each MiB differs, so a block served twice or out of order changes the hash.
        block[..4].copy_from_slice(&i.to_le_bytes());
        hasher.update(&block);
        file.write_all(&block).unwrap();
    }
    drop(file);
    let sha = hex::encode(hasher.finalize());

    store
        .put_file("files/large", &path, 64 * MIB as u64, &sha)
        .await
        .unwrap();
    let mut stream = store.get("files/large", None).await.unwrap();
    let mut hasher = Sha256::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        total += chunk.len();
        hasher.update(&chunk);
    }
    assert_eq!(total, 64 * MIB);
    assert_eq!(hex::encode(hasher.finalize()), sha);

    let tail = collect(
        store
            .get(
                "files/large",
                Some((64 * MIB as u64 - 10, 64 * MIB as u64 - 1)),
            )
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(tail.len(), 10);
    store.delete("files/large").await.unwrap();
}

#[tokio::test]
async fn local_store_keeps_the_contract() {
    let root = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::new(root.path().join("blobs"));
    assert_eq!(store.kind(), "local");
    conformance_story(&store, scratch.path()).await;
}

#[tokio::test]
async fn local_store_streams_a_large_file() {
    let root = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    large_file_story(
        &LocalBlobStore::new(root.path().to_path_buf()),
        scratch.path(),
    )
    .await;
}

#[tokio::test]
async fn local_store_files_are_private_and_no_temp_files_remain() {
    let root = tempfile::tempdir().unwrap();
    let blobs = root.path().join("blobs");
    let store = LocalBlobStore::new(blobs.clone());
    store
        .put_bytes("files/a", Bytes::from_static(b"x"), &sha256_hex(b"x"))
        .await
        .unwrap();
    store.check().await.unwrap();
    // A key that is only a prefix of stored keys is a directory here, and no object.
    // (Not in the shared story: the fake S3 server answers this one differently from S3.)
    assert!(matches!(
        store.get("files", None).await,
        Err(BlobError::NotFound)
    ));

    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&blobs), 0o700);
    assert_eq!(mode(&blobs.join("files")), 0o700);
    assert_eq!(mode(&blobs.join("files/a")), 0o600);
    let leftovers: Vec<_> = std::fs::read_dir(&blobs)
        .unwrap()
        .chain(std::fs::read_dir(blobs.join("files")).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn local_store_refuses_a_source_shorter_than_announced() {
    let root = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::new(root.path().to_path_buf());
    let (source, sha) = write_source(scratch.path(), "short", b"abc");
    assert!(matches!(
        store.put_file("files/short", &source, 10, &sha).await,
        Err(BlobError::Unavailable(_))
    ));
    assert!(matches!(
        store.get("files/short", None).await,
        Err(BlobError::NotFound)
    ));
}

#[tokio::test]
async fn s3_store_keeps_the_contract() {
    let server = S3Server::start().await.unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let store = S3BlobStore::new(s3_config(&server, server.secret_key(), None)).unwrap();
    assert_eq!(store.kind(), "s3");
    conformance_story(&store, scratch.path()).await;
}

#[tokio::test]
async fn s3_store_streams_a_large_file() {
    let server = S3Server::start().await.unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let store = S3BlobStore::new(s3_config(&server, server.secret_key(), None)).unwrap();
    large_file_story(&store, scratch.path()).await;
}

#[tokio::test]
async fn s3_store_puts_objects_under_its_prefix() {
    let server = S3Server::start().await.unwrap();
    let store =
        S3BlobStore::new(s3_config(&server, server.secret_key(), Some("/tenant-a/"))).unwrap();
    store
        .put_bytes(
            "files/p",
            Bytes::from_static(b"prefixed"),
            &sha256_hex(b"prefixed"),
        )
        .await
        .unwrap();
    let on_disk = server
        .data_dir()
        .join(server.bucket())
        .join("tenant-a/files/p");
    assert_eq!(std::fs::read(on_disk).unwrap(), b"prefixed");
    assert_eq!(read(&store, "files/p", None).await, b"prefixed");
}

#[tokio::test]
async fn s3_store_refuses_content_that_does_not_match_its_hash() {
    // The payload hash is signed: the server refuses bytes that differ from it.
    let server = S3Server::start().await.unwrap();
    let store = S3BlobStore::new(s3_config(&server, server.secret_key(), None)).unwrap();
    let wrong = sha256_hex(b"something else");
    let result = store
        .put_bytes("files/h", Bytes::from_static(b"content"), &wrong)
        .await;
    assert!(
        matches!(result, Err(BlobError::Unavailable(_))),
        "{result:?}"
    );
    assert!(matches!(
        store.get("files/h", None).await,
        Err(BlobError::NotFound)
    ));
}

#[tokio::test]
async fn s3_store_with_a_wrong_secret_is_unavailable_and_never_shows_the_secret() {
    let server = S3Server::start().await.unwrap();
    let secret = "wrong-secret-that-must-not-leak-42";
    let config = s3_config(&server, secret, None);
    assert!(!format!("{config:?}").contains(secret));
    let store = S3BlobStore::new(config).unwrap();
    assert!(!format!("{store:?}").contains(secret));

    let mut errors = vec![
        store.check().await.unwrap_err(),
        store
            .put_bytes("files/x", Bytes::from_static(b"x"), &sha256_hex(b"x"))
            .await
            .unwrap_err(),
        store.delete("files/x").await.unwrap_err(),
    ];
    match store.get("files/x", None).await {
        Err(e) => errors.push(e),
        Ok(_) => panic!("a GET with a wrong signature succeeded"),
    }
    for error in errors {
        assert!(matches!(error, BlobError::Unavailable(_)), "{error:?}");
        assert!(!error.to_string().contains(secret) && !format!("{error:?}").contains(secret));
        assert!(error.to_string().contains("403"), "{error}");
    }
}

#[tokio::test]
async fn s3_store_that_cannot_be_reached_is_unavailable() {
    // A port nothing listens on: bind one and drop it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let store = S3BlobStore::new(S3Config {
        endpoint: format!("http://127.0.0.1:{port}").parse().unwrap(),
        region: "us-east-1".into(),
        bucket: "b".into(),
        access_key_id: "a".into(),
        secret_access_key: "s".into(),
        path_style: true,
        prefix: None,
    })
    .unwrap();
    assert!(matches!(
        store.check().await,
        Err(BlobError::Unavailable(_))
    ));
}
