//! Receiving an upload: the limit is exact, the hash and head are right, the temp file goes.

use crate::sha256_hex;
use ironhand_files::{HEAD_LEN, Staging, StagingError};
use std::os::unix::fs::PermissionsExt;

#[tokio::test]
async fn a_body_of_exactly_the_limit_is_accepted_with_its_hash_and_head() {
    let dir = tempfile::tempdir().unwrap();
    let content: Vec<u8> = (0..20_000u32).map(|i| (i % 253) as u8).collect();
    let mut staging = Staging::new(dir.path(), content.len() as u64)
        .await
        .unwrap();
    for chunk in content.chunks(3000) {
        staging.write(chunk).await.unwrap();
    }
    assert_eq!(staging.size(), content.len() as u64);
    let staged = staging.finish().await.unwrap();
    assert_eq!(staged.size, content.len() as u64);
    assert_eq!(staged.sha256_hex, sha256_hex(&content));
    assert_eq!(staged.head, &content[..HEAD_LEN]);
    assert_eq!(std::fs::read(staged.path()).unwrap(), content);
    let mode = std::fs::metadata(staged.path())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
}

#[tokio::test]
async fn one_byte_over_the_limit_is_refused_without_writing_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut staging = Staging::new(dir.path(), 10).await.unwrap();
    staging.write(b"0123456789").await.unwrap();
    match staging.write(b"x").await {
        Err(StagingError::TooLarge { limit }) => assert_eq!(limit, 10),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(staging.size(), 10);

    // A single chunk larger than the limit is refused before anything is written.
    let mut staging = Staging::new(dir.path(), 10).await.unwrap();
    assert!(matches!(
        staging.write(&[0u8; 11]).await,
        Err(StagingError::TooLarge { limit: 10 })
    ));
    assert_eq!(staging.size(), 0);
}

#[tokio::test]
async fn temp_files_are_removed_on_drop_and_kept_when_persisted() {
    let dir = tempfile::tempdir().unwrap();
    let count = || std::fs::read_dir(dir.path()).unwrap().count();

    let mut staging = Staging::new(dir.path(), 100).await.unwrap();
    staging.write(b"abandoned").await.unwrap();
    assert_eq!(count(), 1);
    drop(staging);
    assert_eq!(count(), 0, "an abandoned upload leaves nothing");

    let mut staging = Staging::new(dir.path(), 100).await.unwrap();
    staging.write(b"finished").await.unwrap();
    let staged = staging.finish().await.unwrap();
    assert_eq!(count(), 1);
    drop(staged);
    assert_eq!(count(), 0, "a staged upload nobody took leaves nothing");

    let mut staging = Staging::new(dir.path(), 100).await.unwrap();
    staging.write(b"kept").await.unwrap();
    let dest = dir.path().join("kept");
    staging.finish().await.unwrap().persist(&dest).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), b"kept");
}

#[tokio::test]
async fn small_and_empty_bodies_keep_their_whole_head() {
    let dir = tempfile::tempdir().unwrap();
    let staging = Staging::new(dir.path(), 100).await.unwrap();
    let staged = staging.finish().await.unwrap();
    assert_eq!(staged.size, 0);
    assert!(staged.head.is_empty());
    assert_eq!(staged.sha256_hex, sha256_hex(b""));

    let mut staging = Staging::new(dir.path(), 100).await.unwrap();
    staging.write(b"hello ").await.unwrap();
    staging.write(b"world").await.unwrap();
    assert_eq!(staging.finish().await.unwrap().head, b"hello world");
}
