//! Integration tests of `ironhand-files`, one binary: the blob store conformance story run
//! against the local store and against S3 (a real S3-compatible server), and staging.
#![allow(clippy::unwrap_used)]

mod blob_store;
mod staging;

use futures::TryStreamExt;
use ironhand_core::ports::{BlobStore, ByteStream};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub async fn collect(stream: ByteStream) -> Vec<u8> {
    stream
        .try_fold(Vec::new(), |mut acc, chunk| async move {
            acc.extend_from_slice(&chunk);
            Ok(acc)
        })
        .await
        .unwrap()
}

/// Writes `content` to a new file in `dir` and returns its path and SHA-256.
pub fn write_source(dir: &Path, name: &str, content: &[u8]) -> (PathBuf, String) {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    (path, sha256_hex(content))
}

/// `get` as bytes, for short objects.
pub async fn read(store: &dyn BlobStore, key: &str, range: Option<(u64, u64)>) -> Vec<u8> {
    collect(store.get(key, range).await.unwrap()).await
}
