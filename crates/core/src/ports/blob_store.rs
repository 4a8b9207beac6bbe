//! The blob store port: where the bytes of uploaded and generated files live, under an
//! opaque key. `ironhand-files` implements it on local disk (embedded default) and on an
//! S3-compatible object store (scale-out). File records (owner, name, type, size, hash) are
//! kept by the database; this port only moves bytes.

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use std::path::Path;
use std::pin::Pin;

/// A stream of an object's bytes, read as the client downloads (never buffered whole).
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("no object under this key")]
    NotFound,
    /// The key is not one this store hands out (keys are `[a-z0-9/_-]`, no `..`).
    #[error("invalid key")]
    InvalidKey,
    /// The backend failed or cannot be reached (the text is for the log, not for users).
    #[error("blob store unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Stores the content of the local file `source` (`size` bytes, SHA-256 `sha256_hex`)
    /// under `key`, replacing any object there. Streams from disk; never holds it in memory.
    async fn put_file(
        &self,
        key: &str,
        source: &Path,
        size: u64,
        sha256_hex: &str,
    ) -> Result<(), BlobError>;
    /// Stores small in-memory content (files copied out of a sandbox) under `key`.
    async fn put_bytes(&self, key: &str, bytes: Bytes, sha256_hex: &str) -> Result<(), BlobError>;
    /// Streams the object, or only bytes `start..=end` of it (the caller has checked the
    /// range against the recorded size).
    async fn get(&self, key: &str, range: Option<(u64, u64)>) -> Result<ByteStream, BlobError>;
    /// Removes the object; a missing object is not an error.
    async fn delete(&self, key: &str) -> Result<(), BlobError>;
    /// For readiness: can the store be reached and written?
    async fn check(&self) -> Result<(), BlobError>;
    /// `local` or `s3`.
    fn kind(&self) -> &'static str;
}
